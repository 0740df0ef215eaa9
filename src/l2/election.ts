/**
 * The L2 lease election against the Kubernetes API: keeps this node's
 * liveness Lease (`pharos-node-<node>`) renewed, watches every node's and
 * address's Lease through the store (the informer: no polling reads), runs
 * the pure `decide()` of election-core.ts on every change and every tick,
 * and carries its actions out with resourceVersion-checked writes.
 *
 * The node lease has its own writer (its own token bucket), so a burst of
 * address-lease writes can never delay it past its deadline.
 *
 * Fencing: `healthy` means the node lease was renewed (request sent) within
 * nodeLease − renew; past that nothing is announced. The same send time is
 * stamped into the data path's liveness word, whose age limit is set to the
 * same bound at load, so a wedged or killed agent's XDP responder falls
 * silent before any other node may take over.
 */
import type { KubeWriter, LeaseRecord } from '../sinks/kube/writer.js';
import { WriteConflictError, NotFoundError } from '../sinks/kube/writer.js';
import type { Lease } from '../model/types.js';
import { addressLeaseName, decide, isAddressLeaseName, legacyServiceLeaseName, nodeLeaseName, type AddressCandidate, type ElectionAction, type ElectionOutput, type HeldLease, type LeaseView, type LegacyLease } from './election-core.js';

export interface ElectionLog {
  info(msg: string, fields?: Record<string, string | number | boolean | undefined>): void;
  warn(msg: string, fields?: Record<string, string | number | boolean | undefined>): void;
  debug(msg: string, fields?: Record<string, string | number | boolean | undefined>): void;
}

export interface L2ElectionOptions {
  node: string;
  namespace: string;
  /** Address leases. */
  writer: KubeWriter;
  /** The node lease only. */
  nodeWriter: KubeWriter;
  nodeLeaseMs: number;
  nodeRenewMs: number;
  /** Written as the address leases' duration (informational: an address lease is held while its holder's node lease is renewed). */
  serviceLeaseMs: number;
  /** How long a lease assigned to another node may stay untaken before anyone takes it (the retry period). */
  graceMs: number;
  log: ElectionLog;
  /** After each successful node-lease renewal: the CLOCK_MONOTONIC time the request was sent. */
  onNodeRenewed?: (sentAtNs: bigint) => void;
  /** Something changed that may change what to announce. */
  onChange?: () => void;
  /** Leases live peers claim and leases this node took over during an API outage (outage.ts), read on every decision. */
  outage?: () => { peerClaimed: ReadonlySet<string>; outageServed: ReadonlySet<string> };
  /**
   * While this node drains: how long it keeps answering for an address after
   * the successor's lease write is seen (default 2000 ms). The successor
   * announces (gratuitous ARP/NA) as soon as its write returns, which is when
   * the watch shows it here too: the overlap covers the successor's first
   * announcement and a client's ARP request already on its way.
   */
  drainLingerMs?: number;
  now?: () => number;
}

export interface ElectionInputs {
  candidates: AddressCandidate[];
  /** By address: the nodes that could compete for it. */
  eligible: ReadonlyMap<string, readonly string[]>;
  /** By service: its announced addresses (to read old per-service leases during an upgrade). */
  serviceAddresses?: Map<string, string[]>;
  leases: Iterable<Lease>;
  /** Nodes being drained (src/model/drain.ts), this one included when it is. */
  draining?: ReadonlySet<string>;
}

type ObservedLease = LeaseView & { acquireTime?: string; transitions?: number; renewTime?: string; pass: number };

const NODE_PREFIX = 'pharos-node-';
const SERVICE_PREFIX = 'pharos-l2announce-';
const TICK_MS = 50;

export class L2Election {
  private readonly now: () => number;
  private nodeLease?: LeaseRecord;
  private lastRenewSentAt = -Infinity;
  private nodeRenewTimer?: NodeJS.Timeout;
  private nodeRenewing = false;
  /** rv of each own node-lease write → its send time; the view is confirmed fresh when the watch brings one back. */
  private readonly ownWrites = new Map<string, number>();
  private confirmedSentAt = -Infinity;
  private freshSince: number | undefined;
  private readonly views = new Map<string, ObservedLease>();
  /** The same views split for decide(): node leases by node name, address leases by lease name, old per-service ones apart. */
  private readonly nodeViews = new Map<string, ObservedLease>();
  private readonly addressViews = new Map<string, ObservedLease>();
  private readonly legacyViews = new Map<string, ObservedLease>();
  /** Old per-service lease name → the address leases of its service (built when needed, after serviceAddresses is a new map). */
  private legacyAddresses?: Map<string, string[]>;
  private legacyInput = new Map<string, LegacyLease>();
  private legacyInputStale = true;
  private viewPass = 0;
  private readonly held = new Map<string, HeldLease & { acquireTime: Date; transitions: number }>();
  private readonly takeableSince = new Map<string, number>();
  private readonly inFlight = new Set<string>();
  /** Addresses handed over while draining, still answered until the given local time (make-before-break). */
  private readonly lingering = new Map<string, { address: string; until: number }>();
  private inputs: ElectionInputs = { candidates: [], eligible: new Map(), leases: [] };
  private eligibleByLease = new Map<string, readonly string[]>();
  private tickTimer?: NodeJS.Timeout;
  private last?: ElectionOutput;
  private stopped = false;
  /** Takeovers by this node (counted for pharos_l2_lease_transitions_total). */
  takeovers = 0;

  constructor(private readonly opts: L2ElectionOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  start(): void {
    this.renewNodeLease();
    this.nodeRenewTimer = setInterval(() => this.renewNodeLease(), this.opts.nodeRenewMs);
    // Time alone changes decisions (node-lease expiries, grace periods): look again often.
    this.tickTimer = setInterval(() => this.tick(), TICK_MS);
  }

  get healthy(): boolean {
    return this.now() - this.lastRenewSentAt < this.opts.nodeLeaseMs - this.opts.nodeRenewMs;
  }

  get viewFresh(): boolean {
    return this.freshSince !== undefined;
  }

  /** The latest decision (what to announce, live nodes). */
  get output(): ElectionOutput | undefined {
    return this.last;
  }

  /** Leases as observed (for `pharos l2 list`). */
  leaseView(name: string): { holder?: string; acquireTime?: string; transitions?: number } | undefined {
    return this.views.get(name);
  }

  /** A lease's record as observed: holder and resourceVersion. */
  leaseRecord(name: string): { holder?: string; resourceVersion: string } | undefined {
    return this.views.get(name);
  }

  /** When the last node-lease renewal that succeeded was sent (local ms; -Infinity before the first). */
  get lastRenewal(): number {
    return this.lastRenewSentAt;
  }

  heldLeases(): ReadonlyMap<string, HeldLease> {
    return this.held;
  }

  /** New store contents: leases observed, candidates recomputed. Runs a decision. */
  update(inputs: ElectionInputs): void {
    // The controller hands the same eligible map while nothing changed: re-key it only when it is a new one.
    if (inputs.eligible !== this.inputs.eligible) this.eligibleByLease = new Map([...inputs.eligible].map(([address, nodes]) => [addressLeaseName(address), nodes]));
    if (inputs.serviceAddresses !== this.inputs.serviceAddresses) {
      this.legacyAddresses = undefined;
      this.legacyInputStale = true;
    }
    this.inputs = inputs;
    const now = this.now();
    const pass = ++this.viewPass;
    let seen = 0;
    for (const l of inputs.leases) {
      if (l.meta.namespace !== this.opts.namespace) continue;
      const name = l.meta.name;
      if (!name.startsWith(NODE_PREFIX) && !name.startsWith(SERVICE_PREFIX)) continue;
      seen++;
      const rv = l.meta.resourceVersion ?? '';
      const prev = this.views.get(name);
      if (prev && prev.resourceVersion === rv) {
        prev.pass = pass;
      } else {
        const releasedBy = l.holderIdentity ? undefined : prev?.holder ?? prev?.releasedBy;
        this.setView(name, {
          ...(releasedBy ? { releasedBy } : {}),
          name,
          ...(l.holderIdentity ? { holder: l.holderIdentity } : {}),
          durationMs: (l.leaseDurationSeconds ?? 15) * 1000,
          resourceVersion: rv,
          observedAt: now,
          ...(l.acquireTime ? { acquireTime: l.acquireTime } : {}),
          ...(l.renewTime ? { renewTime: l.renewTime } : {}),
          ...(l.leaseTransitions !== undefined ? { transitions: l.leaseTransitions } : {}),
          pass,
        });
      }
      if (name === nodeLeaseName(this.opts.node)) {
        const sentAt = this.ownWrites.get(rv);
        if (sentAt !== undefined && sentAt > this.confirmedSentAt) this.confirmedSentAt = sentAt;
      }
    }
    if (this.views.size > seen) for (const [name, v] of this.views) if (v.pass !== pass) this.setView(name, undefined);
    this.tick();
  }

  /** Keeps the views and their split by kind (what decide() reads) in step. */
  private setView(name: string, view: ObservedLease | undefined): void {
    const isNode = name.startsWith(NODE_PREFIX);
    const byName = isNode ? undefined : isAddressLeaseName(name) ? this.addressViews : this.legacyViews;
    if (byName === this.legacyViews) this.legacyInputStale = true;
    if (view) {
      this.views.set(name, view);
      if (isNode) this.nodeViews.set(name.slice(NODE_PREFIX.length), view);
      else byName!.set(name, view);
    } else {
      this.views.delete(name);
      if (isNode) this.nodeViews.delete(name.slice(NODE_PREFIX.length));
      else byName!.delete(name);
    }
  }

  /** One decision over the current view; writes what it decides. */
  tick(): void {
    if (this.stopped) return;
    const now = this.now();
    // Fresh: the watch has shown us one of our own renewals sent within half a node lease.
    const fresh = now - this.confirmedSentAt <= this.opts.nodeLeaseMs / 2;
    if (!fresh) this.freshSince = undefined;
    else if (this.freshSince === undefined) this.freshSince = now;
    const addressLeases = this.addressViews;
    if (this.legacyInputStale) {
      // Old-name leases are few (an upgrade's leftovers) and rarely change: their input is rebuilt only then.
      this.legacyInputStale = false;
      if (this.legacyViews.size > 0) {
        this.legacyAddresses ??= new Map([...this.inputs.serviceAddresses ?? []].map(([svc, addresses]) => [legacyServiceLeaseName(svc), addresses.map(addressLeaseName)]));
      }
      const byName = this.legacyAddresses;
      this.legacyInput = new Map([...this.legacyViews].map(([name, v]) => [name, { ...v, addressLeases: byName?.get(name) ?? [] }]));
    }
    const out = decide({
      now,
      me: this.opts.node,
      healthy: this.healthy,
      freshSince: this.freshSince,
      nodeLeases: this.nodeViews,
      addressLeases,
      legacy: this.legacyInput,
      candidates: this.inputs.candidates,
      eligible: this.eligibleByLease,
      held: this.held,
      takeableSince: this.takeableSince,
      graceMs: this.opts.graceMs,
      ...this.opts.outage?.(),
      ...(this.inputs.draining ? { draining: this.inputs.draining } : {}),
    });
    this.lingerHandedOver(out, now);
    const takeable = new Set(out.takeable);
    for (const name of [...this.takeableSince.keys()]) if (!takeable.has(name)) this.takeableSince.delete(name);
    for (const name of takeable) if (!this.takeableSince.has(name)) this.takeableSince.set(name, now);
    const changed = !sameStrings(this.last?.announce, out.announce);
    this.last = out;
    for (const a of out.actions) this.carryOut(a, a.type === 'release' && a.legacy ? this.legacyViews.get(a.lease) : addressLeases.get(a.lease));
    if (changed) this.opts.onChange?.();
  }

  /**
   * A draining node whose lease the successor wrote keeps answering for a
   * moment (drainLingerMs): added to what decide() announces, never while
   * fenced, and dropped early if the address is ours again.
   */
  private lingerHandedOver(out: ElectionOutput, now: number): void {
    if (this.draining) {
      const linger = this.opts.drainLingerMs ?? 2000;
      for (const a of out.actions) if (a.type === 'lost' && !this.inFlight.has(a.lease)) this.lingering.set(a.lease, { address: a.address, until: now + linger });
    }
    if (this.lingering.size === 0) return;
    const announce = new Set(out.announce);
    for (const [lease, l] of this.lingering) {
      if (now >= l.until || this.held.has(lease) || !this.healthy) {
        this.lingering.delete(lease);
        continue;
      }
      announce.add(l.address);
    }
    out.announce = [...announce].sort();
  }

  /** This node is being drained (labelled or cordoned). */
  get draining(): boolean {
    return this.inputs.draining?.has(this.opts.node) ?? false;
  }

  /** Addresses handed over and still answered for a moment (`pharos l2 list`: handing over). */
  handingOver(address: string): boolean {
    for (const l of this.lingering.values()) if (l.address === address) return true;
    return false;
  }

  private carryOut(a: ElectionAction, view: LeaseView | undefined): void {
    if (this.inFlight.has(a.lease)) return;
    const { writer, log } = this.opts;
    const me = this.opts.node;
    const seconds = Math.round(this.opts.serviceLeaseMs / 1000);
    if (a.type === 'lost') {
      this.held.delete(a.lease);
      if (this.lingering.has(a.lease)) log.info('L2 lease handed over (node draining): answering a moment longer, then stopping', { address: a.address, lease: a.lease, holder: view?.holder, lingerMs: this.opts.drainLingerMs ?? 2000 });
      else log.warn('L2 lease taken by another node: stopped announcing', { address: a.address, lease: a.lease, holder: view?.holder });
      this.opts.onChange?.();
      return;
    }
    this.inFlight.add(a.lease);
    const done = (): void => {
      this.inFlight.delete(a.lease);
      this.tick();
    };
    if (a.type === 'acquire') {
      const now = new Date();
      const prevTransitions = (view && this.views.get(a.lease)?.transitions) ?? 0;
      const transitions = a.reason === 'reclaim' ? prevTransitions : a.resourceVersion ? prevTransitions + 1 : 0;
      const spec = { holderIdentity: me, leaseDurationSeconds: seconds, acquireTime: now, renewTime: now, leaseTransitions: transitions };
      const write = a.resourceVersion
        ? writer.updateLease({ name: a.lease, namespace: this.opts.namespace, resourceVersion: a.resourceVersion }, spec)
        : writer.createLease(a.lease, spec);
      write.then(
        (rec) => {
          if (this.stopped) return;
          this.held.set(a.lease, {
            address: a.address, resourceVersion: rec.resourceVersion, acquireTime: now, transitions,
            ...(a.resourceVersion ? { replacedResourceVersion: a.resourceVersion } : {}),
          });
          if (a.reason !== 'reclaim') this.takeovers++;
          log.info('L2 lease acquired', { address: a.address, lease: a.lease, reason: a.reason, previousHolder: view?.holder });
          this.opts.onChange?.();
        },
        (err: Error) => {
          if (!(err instanceof WriteConflictError)) log.warn('L2 lease acquire failed', { address: a.address, lease: a.lease, error: err.message });
          else log.debug('L2 lease acquire lost the race', { address: a.address, lease: a.lease });
        },
      ).finally(done);
      return;
    }
    const held = this.held.get(a.lease);
    // release: stop announcing first, then hand the lease over.
    const rv = held?.resourceVersion ?? view?.resourceVersion;
    this.held.delete(a.lease);
    this.opts.onChange?.();
    if (!rv) return void this.inFlight.delete(a.lease);
    writer.releaseLease({ name: a.lease, namespace: this.opts.namespace, resourceVersion: rv, leaseTransitions: held?.transitions ?? (view ? this.views.get(a.lease)?.transitions : undefined) }).then(
      () => log.info(a.legacy ? 'L2 lease of the per-service naming (older agent) released' : 'L2 lease released', { address: a.address, lease: a.lease }),
      (err: Error) => log.debug('L2 lease release failed (another node may have it already)', { lease: a.lease, error: err.message }),
    ).finally(done);
  }

  private renewNodeLease(): void {
    if (this.nodeRenewing || this.stopped) return;
    this.nodeRenewing = true;
    const name = nodeLeaseName(this.opts.node);
    const sentAt = this.now();
    const sentAtNs = process.hrtime.bigint();
    const seconds = this.opts.nodeLeaseMs / 1000;
    const spec = { holderIdentity: this.opts.node, leaseDurationSeconds: Math.max(1, Math.round(seconds)), renewTime: new Date(), acquireTime: new Date() };
    const attempt = async (): Promise<LeaseRecord> => {
      const { nodeWriter } = this.opts;
      if (this.nodeLease) {
        try {
          return await nodeWriter.updateLease(this.nodeLease, { ...spec, acquireTime: this.nodeLease.acquireTime ?? spec.acquireTime });
        } catch (err) {
          if (!(err instanceof WriteConflictError) && !(err instanceof NotFoundError)) throw err;
        }
      }
      const current = await nodeWriter.getLease(name);
      if (!current) return nodeWriter.createLease(name, spec);
      return nodeWriter.updateLease(current, spec);
    };
    attempt().then(
      (rec) => {
        if (this.stopped) return;
        this.nodeLease = rec;
        this.lastRenewSentAt = sentAt;
        this.ownWrites.set(rec.resourceVersion, sentAt);
        if (this.ownWrites.size > 64) this.ownWrites.delete(this.ownWrites.keys().next().value!);
        this.opts.onNodeRenewed?.(sentAtNs);
      },
      (err: Error) => this.opts.log.debug('node lease renewal failed', { lease: name, error: err.message }),
    ).finally(() => {
      this.nodeRenewing = false;
    });
  }

  /**
   * Clean shutdown: stop announcing, drop the node lease (others see this node
   * gone at once) and release every held lease in parallel, so another node
   * takes over within one watch round trip.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.nodeRenewTimer);
    clearInterval(this.tickTimer);
    const held = [...this.held.entries()];
    this.held.clear();
    this.last = undefined;
    this.opts.onChange?.();
    const deadline = <T>(p: Promise<T>): Promise<T | undefined> =>
      Promise.race([p.catch(() => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000).unref())]);
    await Promise.all([
      deadline(this.opts.nodeWriter.deleteLease(nodeLeaseName(this.opts.node))),
      ...held.map(([lease, h]) =>
        deadline(this.opts.writer.releaseLease({ name: lease, namespace: this.opts.namespace, resourceVersion: h.resourceVersion, leaseTransitions: h.transitions })),
      ),
    ]);
  }
}

function sameStrings(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}
