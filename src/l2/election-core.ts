/**
 * The L2 lease election, as a pure function: given what this node sees of
 * the Leases (node liveness leases and one lease per announced address),
 * which addresses it could announce, and its own health, decide which leases
 * to write (acquire, release) and which addresses to announce now.
 * No clock, no I/O: `election.ts` feeds it and carries the actions out.
 *
 * One election per address (issue 18): services that share an address
 * (`lb.pharos.io/sharing-key`) share its one lease, so one node answers for
 * it whatever number of services carry it; fair shares count addresses.
 *
 * Rules (issue 7, DESIGN.md "Control plane"):
 * - Ownership is sticky: a lease held by a live node stays with it; a node
 *   that recovers does not take anything back.
 * - An address lease is held for as long as its holder's node lease is
 *   renewed: it is written when it changes hands (acquire, release,
 *   takeover), never renewed, so API writes scale with nodes, not addresses
 *   (2,000 addresses renewed every 5 s would be 400 writes a second). A lease
 *   whose holder's node lease has expired may be taken at once. Every write
 *   is resourceVersion-checked by the caller, so exactly one taker wins.
 * - Expiry is judged on local observation time (client-go's rule: clocks of
 *   other nodes are never compared), and only while this node's view is
 *   fresh — its watch delivered its own latest renewal recently — counted
 *   from when it became fresh, so an API outage or a stalled watch never
 *   makes live nodes look dead.
 * - Free leases are spread: every node computes the same balanced
 *   assignment (least-loaded live eligible node, ties by rendezvous hash) and
 *   takes only what is assigned to it; what another node was assigned but
 *   did not take within `graceMs` (it may lack a matching interface, which
 *   only it knows) — while that node has not taken any lease within
 *   `graceMs` either (one that is taking its share at its writer's rate is
 *   left to it) — goes to whoever wants it, up to a fair share of
 *   ceil(candidates / live eligible nodes) — summed per address, 1/(live
 *   nodes eligible for it), when eligibility differs between addresses.
 * - Fencing: an unhealthy node (node lease not renewed in time, API
 *   unreachable) announces nothing and writes nothing; an address it no
 *   longer qualifies for (policy, interface down, no local endpoint) is
 *   released at once so another node takes it without waiting.
 * - API outages (outage-core.ts): a lease a live peer claims in its
 *   heartbeats is not taken, even when its holder's node lease has lapsed
 *   (the holder kept answering through its outage); a lease this node took
 *   over during an outage is acquired as soon as it is takeable.
 * - Drain (issue 18 item 7, src/model/drain.ts): a draining node is no
 *   voter (it takes no free lease, fair shares count the others) but keeps
 *   announcing what it holds; every other node sees its leases as takeable
 *   ('drain') and the balanced assignment picks the successor, which takes
 *   the lease by a resourceVersion-checked write and announces. The
 *   draining node answers until its lease is taken (the caller lingers a
 *   moment past that, election.ts): make-before-break. With no live
 *   non-draining eligible node, the draining node keeps the address.
 * - Upgrade from per-service leases: while a live node other than this one
 *   holds an old-name lease of a service of an address (an agent not yet
 *   upgraded: it answers for the address and knows nothing of address
 *   leases), the address is nobody's to take, and a holder gives it up;
 *   an old-name lease the API says is this node's is cleared.
 */

import { canonicalAddress } from '../model/cidr.js';

export interface LeaseView {
  name: string;
  /** Empty or absent: released. */
  holder?: string;
  durationMs: number;
  resourceVersion: string;
  /** Local time (ms) at which this node saw the lease's current version first. */
  observedAt: number;
  /** For a released lease: who released it (seen in the previous version), so it is not assigned back to it. */
  releasedBy?: string;
}

/** An address this node may announce, and its lease (addressLeaseName). */
export interface AddressCandidate {
  address: string;
  lease: string;
}

/**
 * A lease of the per-service naming an agent before issue 18 wrote
 * (`pharos-l2announce-<namespace>-<service>`), with the address leases of
 * its service's addresses: while a live node other than this one holds it,
 * that (older) agent answers for those addresses, so nobody else may.
 */
export interface LegacyLease extends LeaseView {
  addressLeases: readonly string[];
}

export interface HeldLease {
  address: string;
  resourceVersion: string;
  /** The version our last write replaced: a view still showing it is merely behind, not lost. */
  replacedResourceVersion?: string;
}

export interface ElectionInput {
  now: number;
  me: string;
  /** My node lease is fresh (renewed within its deadline): false fences everything. */
  healthy: boolean;
  /** Since when the view has been fresh without a break; undefined while stale (no time-based takeover). */
  freshSince: number | undefined;
  nodeLeases: ReadonlyMap<string, LeaseView>;
  /** Address leases by lease name. */
  addressLeases: ReadonlyMap<string, LeaseView>;
  /** Old per-service leases (see LegacyLease) by lease name; absent: none. */
  legacy?: ReadonlyMap<string, LegacyLease>;
  /** Addresses this node may announce right now (some service of it: policy, interfaces up, local endpoints). */
  candidates: readonly AddressCandidate[];
  /** For every address lease name that anyone could hold: the nodes some policy selects for a service of it (interfaces unknown for others). */
  eligible: ReadonlyMap<string, readonly string[]>;
  /** Leases this node holds, by lease name (from its own successful writes). */
  held: ReadonlyMap<string, HeldLease>;
  /** Local time each lease was first seen takeable (kept by the caller from `takeable`). */
  takeableSince: ReadonlyMap<string, number>;
  graceMs: number;
  /** Lease names a live peer claims in its heartbeats (outage.ts): nobody else's to take, whatever the lease says. */
  peerClaimed?: ReadonlySet<string>;
  /** Lease names this node took over during an API outage and still answers for: acquired as soon as takeable, whoever is assigned. */
  outageServed?: ReadonlySet<string>;
  /** Nodes being drained (labelled or cordoned; may include me): no voters, and their leases are handed over. */
  draining?: ReadonlySet<string>;
}

export type AcquireReason = 'free' | 'released' | 'holder-dead' | 'reclaim' | 'drain';

export type ElectionAction =
  | { type: 'acquire'; lease: string; address: string; reason: AcquireReason; /** absent: create */ resourceVersion?: string }
  /** `legacy`: an old per-service lease the API says is ours (an older agent of this node held it): cleared. */
  | { type: 'release'; lease: string; address?: string; legacy?: boolean }
  /** Someone else wrote a lease we held: drop the hold (nothing to write). */
  | { type: 'lost'; lease: string; address: string };

export interface ElectionOutput {
  actions: ElectionAction[];
  /** Addresses to announce now (held, healthy, still a candidate, no older agent answering for them). */
  announce: string[];
  /** Leases currently takeable by somebody (for the caller's takeableSince bookkeeping). */
  takeable: string[];
  /** Live nodes as judged by this view. */
  liveNodes: string[];
  /** This node's fair share of its candidates. */
  fairShare: number;
}

const NO_NODES: ReadonlySet<string> = new Set();

/** FNV-1a, 32 bit: the rendezvous hash every node computes alike. */
export function rendezvous(lease: string, node: string): number {
  let h = 0x811c9dc5;
  const s = `${lease}\u0000${node}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Has `lease` expired in this view? Never while the view is stale. */
export function expired(lease: LeaseView, now: number, freshSince: number | undefined): boolean {
  if (freshSince === undefined) return false;
  return now - Math.max(lease.observedAt, freshSince) > lease.durationMs;
}

export function nodeAlive(input: Pick<ElectionInput, 'me' | 'healthy' | 'nodeLeases' | 'now' | 'freshSince'>, node: string): boolean {
  if (node === input.me) return input.healthy;
  const lease = input.nodeLeases.get(node);
  if (!lease || !lease.holder) return false;
  return !expired(lease, input.now, input.freshSince);
}

/**
 * My candidates by lease name, and every lease name some node could take
 * (eligible or mine) sorted: the one order all nodes share. Remembered for
 * the last inputs seen: they stay the same objects from one tick to the next.
 */
interface LeaseIndex {
  byLease: Map<string, AddressCandidate>;
  names: string[];
}
let indexMemo: (LeaseIndex & { eligible: ElectionInput['eligible']; candidates: ElectionInput['candidates'] }) | undefined;
function leaseIndex(eligible: ElectionInput['eligible'], candidates: ElectionInput['candidates']): LeaseIndex {
  if (indexMemo && indexMemo.eligible === eligible && indexMemo.candidates === candidates) return indexMemo;
  const byLease = new Map(candidates.map((c) => [c.lease, c]));
  const names = [...eligible.keys()];
  for (const lease of byLease.keys()) if (!eligible.has(lease)) names.push(lease);
  names.sort();
  indexMemo = { eligible, candidates, byLease, names };
  return indexMemo;
}

export function decide(input: ElectionInput): ElectionOutput {
  const { now, me } = input;
  const actions: ElectionAction[] = [];
  const announce: string[] = [];
  const takeable: string[] = [];
  const alive = new Map<string, boolean>();
  const isAlive = (node: string): boolean => {
    let a = alive.get(node);
    if (a === undefined) alive.set(node, (a = nodeAlive(input, node)));
    return a;
  };
  const liveNodes = [...new Set([...input.nodeLeases.keys(), me])].filter(isAlive).sort();
  const draining = input.draining ?? NO_NODES;
  const meDraining = draining.has(me);

  // Fair shares: ceil(candidates / live eligible nodes), generalised to services whose eligible
  // sets differ — each service counts 1/(live nodes eligible for it) towards each of them.
  const { byLease: candidates, names } = leaseIndex(input.eligible, input.candidates);
  // Services selected by the same policies share one eligible list: their electorates are computed once.
  const electorates = new Map<readonly string[] | undefined, Map<string, string[]>>();
  const electorate = (lease: string, exclude?: string): string[] => {
    const eligible = input.eligible.get(lease);
    const withMe = candidates.has(lease) && input.healthy && !meDraining;
    let byVariant = electorates.get(eligible);
    if (!byVariant) electorates.set(eligible, (byVariant = new Map()));
    const variant = `${withMe ? 1 : 0}${exclude ?? ''}`;
    let voters = byVariant.get(variant);
    if (!voters) {
      const set = new Set((eligible ?? []).filter((n) => n !== exclude && isAlive(n) && !draining.has(n)));
      if (withMe) set.add(me);
      byVariant.set(variant, (voters = [...set].sort()));
    }
    return voters;
  };

  if (!input.healthy) {
    // Fenced: nothing announced, nothing written (writes would fail or race a takeover).
    return { actions, announce, takeable, liveNodes, fairShare: 0 };
  }

  // Leases I hold but no longer qualify for: give them up at once.
  for (const [lease, h] of input.held) {
    if (!candidates.has(lease)) actions.push({ type: 'release', lease, address: h.address });
  }
  // Leases the API says are mine that I do not track (e.g. after a restart, with a changed config): release too.
  for (const [name, view] of input.addressLeases) {
    if (view.holder === me && !input.held.has(name) && !candidates.has(name)) actions.push({ type: 'release', lease: name });
  }

  // Addresses an older agent still answers for (a live holder of an old-name lease): hands off.
  const blocked = new Set<string>();
  for (const [name, view] of input.legacy ?? []) {
    if (!view.holder) continue;
    if (view.holder === me) actions.push({ type: 'release', lease: name, legacy: true });
    else if (isAlive(view.holder)) for (const l of view.addressLeases) blocked.add(l);
  }

  // Load per live node, from every address lease anyone holds; and when each last took one (seen here).
  const load = new Map<string, number>();
  const lastGain = new Map<string, number>();
  for (const view of input.addressLeases.values()) {
    if (view.holder) lastGain.set(view.holder, Math.max(lastGain.get(view.holder) ?? -Infinity, view.observedAt));
    if (!view.holder) continue;
    if (view.holder === me ? !input.held.has(view.name) && !candidates.has(view.name) : !isAlive(view.holder) || draining.has(view.holder)) continue;
    load.set(view.holder, (load.get(view.holder) ?? 0) + 1);
  }
  let mine = 0;
  for (const lease of input.held.keys()) if (candidates.has(lease)) mine++;

  // Classify every lease that some node could take, in one order all nodes share.
  interface Free { lease: string; reason: AcquireReason; resourceVersion?: string; exclude?: string }
  const free: Free[] = [];
  for (const name of names) {
    const view = input.addressLeases.get(name);
    const held = input.held.get(name);
    const cand = candidates.get(name);
    if (blocked.has(name)) {
      if (held && candidates.has(name)) actions.push({ type: 'release', lease: name, address: held.address });
      continue;
    }
    // A draining holder hands it over (it keeps answering until the successor's write: make-before-break),
    // whatever its heartbeats claim; nobody among the voters: it keeps it.
    if (!held && view?.holder && view.holder !== me && draining.has(view.holder) && isAlive(view.holder)) {
      if (electorate(name).length > 0) free.push({ lease: name, reason: 'drain', resourceVersion: view.resourceVersion, exclude: view.holder });
      continue;
    }
    // A live peer answers for it (it kept it through an API outage, or took it over then): not ours to take.
    if (!held && input.peerClaimed?.has(name)) continue;
    if (held && cand) {
      if (view && view.holder && view.holder !== me && view.resourceVersion !== held.resourceVersion && view.resourceVersion !== held.replacedResourceVersion) {
        // Someone else wrote it: it is theirs now (we were fenced or slow).
        actions.push({ type: 'lost', lease: name, address: held.address });
        continue;
      }
      // Held while this node is healthy (checked above): nothing to write.
      announce.push(cand.address);
      continue;
    }
    if (!view) {
      free.push({ lease: name, reason: 'free' });
    } else if (!view.holder) {
      // Whoever just released it cannot serve it (link down, policy, shutting down): assign it elsewhere.
      free.push({ lease: name, reason: 'released', resourceVersion: view.resourceVersion, ...(view.releasedBy ? { exclude: view.releasedBy } : {}) });
    } else if (view.holder === me) {
      // Ours by the API's record but not tracked (agent restart): confirm it by a write, then announce.
      if (cand) actions.push({ type: 'acquire', lease: name, address: cand.address, reason: 'reclaim', resourceVersion: view.resourceVersion });
      continue;
    } else if (cand && input.outageServed?.has(name)) {
      // Taken over during an outage from a holder that is alive again (a healed partition): it yielded to our claim, the record follows.
      free.push({ lease: name, reason: 'holder-dead', resourceVersion: view.resourceVersion });
    } else if (!isAlive(view.holder)) {
      free.push({ lease: name, reason: 'holder-dead', resourceVersion: view.resourceVersion });
    }
  }

  // Shares, summed per distinct electorate (many services share one).
  const excluded = new Map(free.map((f) => [f.lease, f.exclude]));
  const electorateCounts = new Map<string[], number>();
  for (const lease of names) {
    const voters = electorate(lease, excluded.get(lease));
    electorateCounts.set(voters, (electorateCounts.get(voters) ?? 0) + 1);
  }
  const shares = new Map<string, number>();
  for (const [voters, count] of electorateCounts) {
    for (const n of voters) shares.set(n, (shares.get(n) ?? 0) + count / voters.length);
  }
  const capOf = (n: string): number => Math.ceil((shares.get(n) ?? 0) - 1e-9);
  const fairShare = capOf(me);

  // The shared balanced assignment: the live eligible node with the least load for its share
  // (none past its fair share while another has room), ties by rendezvous hash.
  // Most constrained first (fewest voters; then by name, the order all nodes share): a lease only
  // one node may take is counted before that node's room goes to a lease others could take too.
  const order = free.map((f) => ({ f, voters: electorate(f.lease, f.exclude) }));
  if (order.some((o) => o.voters.length !== order[0]!.voters.length)) order.sort((x, y) => x.voters.length - y.voters.length);
  for (const { f, voters } of order) {
    takeable.push(f.lease);
    const cand = candidates.get(f.lease);
    if (cand && input.outageServed?.has(f.lease)) {
      // Answered by this node since an API outage: its lease record follows at once (peers leave it alone).
      actions.push({ type: 'acquire', lease: f.lease, address: cand.address, reason: f.reason, ...(f.resourceVersion ? { resourceVersion: f.resourceVersion } : {}) });
      load.set(me, (load.get(me) ?? 0) + 1);
      mine++;
      continue;
    }
    if (voters.length === 0) continue;
    const withRoom = voters.filter((n) => (load.get(n) ?? 0) < capOf(n));
    let best: string | undefined;
    let bestScore = Infinity;
    for (const n of withRoom.length > 0 ? withRoom : voters) {
      const score = ((load.get(n) ?? 0) + 1) / Math.max(shares.get(n) ?? 1, 1e-9);
      if (best === undefined || score < bestScore - 1e-12 || (Math.abs(score - bestScore) <= 1e-12 && rendezvous(f.lease, n) > rendezvous(f.lease, best))) {
        best = n;
        bestScore = score;
      }
    }
    load.set(best!, (load.get(best!) ?? 0) + 1);
    if (!cand) continue;
    const assignedToMe = best === me;
    const since = input.takeableSince.get(f.lease) ?? now;
    // An assignee that took a lease within the grace period is working through its share at its
    // writer's rate (hundreds after a node left): not overdue yet, or every node would race it.
    const assigneeBusy = best !== me && now - (lastGain.get(best!) ?? -Infinity) < input.graceMs;
    const overdue = now - since >= input.graceMs && !assigneeBusy;
    // Assigned to me, or left untaken by its assignee past the grace period: up to my fair share.
    // Still untaken after five grace periods (its assignee lacks a matching interface, which only
    // it knows, or is wedged): whoever can announce it takes it, fair share or not.
    // (Never a draining node: what it would take it would hand over again.)
    const abandoned = now - since >= 5 * input.graceMs && !meDraining;
    if (((assignedToMe || overdue) && mine < fairShare) || abandoned) {
      actions.push({ type: 'acquire', lease: f.lease, address: cand.address, reason: f.reason, ...(f.resourceVersion ? { resourceVersion: f.resourceVersion } : {}) });
      mine++;
    }
  }
  return { actions, announce: announce.sort(), takeable, liveNodes, fairShare };
}

/**
 * Who may compete for each address: every node eligible for one of the
 * services that carry it (services sharing an address may be selected by
 * different policies, or have local endpoints on different nodes). A list
 * shared by all the address's services is passed on as the same object, so
 * decide() computes each electorate once.
 */
export function addressElectorates(eligibleByService: ReadonlyMap<string, readonly string[]>, addressesByService: ReadonlyMap<string, readonly string[]>): Map<string, readonly string[]> {
  const byAddress = new Map<string, readonly string[]>();
  for (const [service, nodes] of eligibleByService) {
    for (const address of addressesByService.get(service) ?? []) {
      const known = byAddress.get(address);
      if (!known) byAddress.set(address, nodes);
      else if (known !== nodes) byAddress.set(address, [...new Set([...known, ...nodes])].sort());
    }
  }
  return byAddress;
}

const ADDRESS_LEASE_PREFIX = 'pharos-l2announce-';

/**
 * The lease of an address: `pharos-l2announce-<address>`, the address in its
 * canonical text (dotted quad, RFC 5952 IPv6) with dots and colons turned
 * into dashes — `pharos-l2announce-198-51-100-200`,
 * `pharos-l2announce-2001-db8--200` — so `kubectl get lease` names the
 * address. A name cannot end in a dash: an IPv6 address ending in `::`
 * gets a `0` (`2001:db8::` is `2001:db8::0`).
 */
export function addressLeaseName(address: string): string {
  let name = leaseNames.get(address);
  if (name === undefined) {
    const text = canonicalAddress(address) ?? address.toLowerCase();
    name = `${ADDRESS_LEASE_PREFIX}${text.replace(/[.:]/g, '-')}`;
    if (name.endsWith('-')) name = `${name}0`;
    // A memo (parsing an address is the cost at 10,000 of them), bounded however many come and go.
    if (leaseNames.size >= 100_000) leaseNames.clear();
    leaseNames.set(address, name);
  }
  return name;
}
const leaseNames = new Map<string, string>();

/**
 * Whether `name` is an address lease (else, under the same prefix, an old
 * per-service one): it decodes to an address that encodes back to it. A
 * per-service name cannot be a dotted quad (a service name starts with a
 * letter); it could only pass for an IPv6 address if a namespace were named
 * like one (`2001-db8-1-2-3-4-5` with a service `beef`).
 */
export function isAddressLeaseName(name: string): boolean {
  if (!name.startsWith(ADDRESS_LEASE_PREFIX)) return false;
  const rest = name.slice(ADDRESS_LEASE_PREFIX.length);
  for (const sep of ['.', ':']) {
    const address = canonicalAddress(rest.replace(/-/g, sep));
    if (address !== undefined && addressLeaseName(address) === name) return true;
  }
  return false;
}

/**
 * The per-service lease name of agents before issue 18,
 * `pharos-l2announce-<namespace>-<name>` (within the 253-character object
 * name limit): read only, to hand over from an older agent during an upgrade.
 */
export function legacyServiceLeaseName(serviceKey: string): string {
  const name = `pharos-l2announce-${serviceKey.replace('/', '-')}`;
  return name.length <= 253 ? name : `${name.slice(0, 244)}-${rendezvous(name, '').toString(16).padStart(8, '0')}`;
}

export function nodeLeaseName(node: string): string {
  return `pharos-node-${node}`;
}
