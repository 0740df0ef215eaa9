/**
 * Who may announce an address when the lease record cannot be trusted or
 * read: the Kubernetes API is unreachable from this node, or a partition
 * between nodes has healed and two of them answer for one address. A pure
 * function over what a node sees without the API: its own lease record from
 * before the outage, the peers' heartbeats (src/l2/peers.ts: who is alive
 * on the segment, what each claims) and foreign answers the XDP program
 * noted (bpf/lib/l2_foreign.h). `outage.ts` feeds it and acts.
 *
 * Rules (issue 18 item 2; src/l2/README.md "When the API is unreachable"):
 * - A holder keeps announcing what it held when the API went away, for as
 *   long as nothing shows another node has taken it: no foreign answer for
 *   the address since the outage began (from a MAC that is not a live
 *   peer's: those are settled by claims), no live peer claiming it with a
 *   better claim.
 * - Claims rank by the lease record they rest on (the resourceVersion of
 *   the holder's own lease write: the latest record wins), then by outage
 *   takeovers since that record, then by node name: every node ranks two
 *   claims alike, so after a partition heals exactly one keeps answering,
 *   the others stop at their next decision (heartbeats every 200 ms).
 * - A holder that falls silent (no heartbeat for the peer timeout, longer
 *   than its responder's liveness limit, so its XDP program has stopped
 *   answering too) may be replaced without the API — only if it was heard
 *   before (heartbeats reach this node at all), only by a node that cannot
 *   reach the API either (one that can takes the lease the ordinary way),
 *   and only by the one live eligible node of highest rendezvous hash.
 * - With the API reachable the lease election decides; this adds only the
 *   yielding to a better peer claim, and keeps an outage takeover answered
 *   until its lease is written (the election acquires it at once).
 */

import { rendezvous } from './election-core.js';

/** What a holder states about one address in its heartbeats. */
export interface Claim {
  /** resourceVersion of the lease record the claim rests on ('' when none was seen). */
  rv: string;
  /** Takeovers during API outages since that record (0: the record names this holder). */
  takeovers: number;
}

export interface PeerView {
  /** Local time (ms) of the last heartbeat. */
  lastHeard: number;
  apiReachable: boolean;
  /** Address → claim, as of its last heartbeat. */
  claims: ReadonlyMap<string, Claim>;
  /** MACs of its announcing interfaces: its answers are judged by its claims, not as foreign. */
  macs?: readonly string[];
}

export type FenceReason =
  | { kind: 'foreign-answer'; mac: string }
  | { kind: 'peer-claim'; node: string; claim: Claim };

export interface HoldInput {
  now: number;
  me: string;
  apiReachable: boolean;
  /** Start of the current (or last unresolved) outage; foreign answers before it are old news. */
  outageSince: number | undefined;
  /** With the API reachable: what the lease election announces, with the claim of each (its held lease). */
  electionAnnounce: ReadonlyMap<string, Claim>;
  /** Leases this node holds (by its last successful write), by address: what it keeps through an outage. */
  held: ReadonlyMap<string, Claim>;
  /** Addresses this node took over during an outage (answered without a lease record of its own yet, unless fenced since). */
  takenOver: ReadonlyMap<string, Claim>;
  /** Addresses this node may announce (some service of it: policy, interface up, programmed). */
  candidates: ReadonlySet<string>;
  /** The lease record of each address as last seen. */
  leases: ReadonlyMap<string, { holder?: string; rv: string; lease: string }>;
  /** Nodes some policy selects for a service of each address. */
  eligible: ReadonlyMap<string, readonly string[]>;
  peers: ReadonlyMap<string, PeerView>;
  peerTimeoutMs: number;
  /** Last foreign answer per address (local ms, MAC), and the first of the run it belongs to (`firstAt`, default `at`). */
  foreign: ReadonlyMap<string, { at: number; mac: string; firstAt?: number }>;
}

export interface HoldOutput {
  /** Addresses to answer for, with the claim to state in heartbeats. */
  announce: Map<string, Claim>;
  /** Addresses this node would answer for but must not, and why. */
  fenced: Map<string, FenceReason>;
  /** Addresses taken over in this decision (the holder fell silent during the outage). */
  takeovers: Map<string, Claim>;
  /** Outage takeovers no longer needed (the lease was written since, by anyone; or no longer a candidate). */
  resolved: string[];
}

/** Compares resourceVersions: numerically when both are integers (etcd's and the emulator's are), else by length then text. */
export function compareRv(a: string, b: string): number {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

/** > 0 when `a` (by `nodeA`) beats `b` (by `nodeB`). Total: two nodes never both win. */
export function compareClaims(a: Claim, nodeA: string, b: Claim, nodeB: string): number {
  return compareRv(a.rv, b.rv) || a.takeovers - b.takeovers || (nodeA < nodeB ? 1 : nodeA > nodeB ? -1 : 0);
}

export function peerAlive(p: PeerView | undefined, now: number, timeoutMs: number): boolean {
  return p !== undefined && now - p.lastHeard <= timeoutMs;
}

export function decideHold(input: HoldInput): HoldOutput {
  const { now, me } = input;
  const announce = new Map<string, Claim>();
  const fenced = new Map<string, FenceReason>();
  const takeovers = new Map<string, Claim>();
  const resolved: string[] = [];
  const live = [...input.peers].filter(([node, p]) => node !== me && peerAlive(p, now, input.peerTimeoutMs));
  // A live peer's answers (its gratuitous ARP repeats after a partition heals) are settled by claims below;
  // a known peer's not yet (its heartbeat may be a moment behind its ARP): only if it stays silent a peer
  // timeout from its first answer (its heartbeats may be blocked while its ARP is not).
  const livePeerMacs = new Set(live.flatMap(([, p]) => p.macs ?? []));
  const knownPeerMacs = new Set([...input.peers].filter(([node]) => node !== me).flatMap(([, p]) => p.macs ?? []));
  const foreignFence = (f: { at: number; mac: string; firstAt?: number } | undefined): boolean =>
    f !== undefined && input.outageSince !== undefined && f.at >= input.outageSince && !livePeerMacs.has(f.mac) &&
    (!knownPeerMacs.has(f.mac) || now - Math.max(f.firstAt ?? f.at, input.outageSince) > input.peerTimeoutMs);

  const base = new Map<string, Claim>();
  if (input.apiReachable) {
    for (const [address, claim] of input.electionAnnounce) base.set(address, claim);
  } else {
    for (const [address, claim] of input.held) if (input.candidates.has(address)) base.set(address, claim);
  }
  for (const [address, claim] of input.takenOver) {
    const lease = input.leases.get(address);
    // Answered until a lease record newer than the one the takeover rested on exists (ours, once the API is back).
    if (!input.candidates.has(address) || (input.apiReachable && lease && lease.rv !== claim.rv) || input.electionAnnounce.has(address)) {
      resolved.push(address);
      continue;
    }
    if (!base.has(address)) base.set(address, claim);
  }

  for (const [address, claim] of base) {
    const unconfirmed = !input.apiReachable || input.takenOver.has(address);
    const foreign = input.foreign.get(address);
    if (unconfirmed && foreignFence(foreign)) {
      fenced.set(address, { kind: 'foreign-answer', mac: foreign!.mac });
      continue;
    }
    let better: { node: string; claim: Claim } | undefined;
    for (const [node, p] of live) {
      const theirs = p.claims.get(address);
      if (theirs && compareClaims(theirs, node, claim, me) > 0 && (!better || compareClaims(theirs, node, better.claim, better.node) > 0)) better = { node, claim: theirs };
    }
    if (better) {
      fenced.set(address, { kind: 'peer-claim', ...better });
      continue;
    }
    announce.set(address, claim);
  }

  if (!input.apiReachable) {
    const claimedByLive = new Set<string>();
    for (const [, p] of live) for (const address of p.claims.keys()) claimedByLive.add(address);
    for (const address of input.candidates) {
      if (base.has(address) || fenced.has(address) || claimedByLive.has(address)) continue;
      const lease = input.leases.get(address);
      if (!lease) continue;
      // The last one known to answer: the lease's holder, or a (now silent) peer whose claim beats its record.
      let prev: { node: string; claim: Claim } | undefined;
      if (lease.holder && lease.holder !== me) prev = { node: lease.holder, claim: input.peers.get(lease.holder)?.claims.get(address) ?? { rv: lease.rv, takeovers: 0 } };
      for (const [node, p] of input.peers) {
        const c = node !== me ? p.claims.get(address) : undefined;
        if (c && (!prev || compareClaims(c, node, prev.claim, prev.node) > 0)) prev = { node, claim: c };
      }
      if (!prev) continue;
      // Only a holder heard before and silent now: one never heard may be alive beyond our segment's reach.
      const gone = input.peers.get(prev.node);
      if (!gone || peerAlive(gone, now, input.peerTimeoutMs)) continue;
      const electorate = input.eligible.get(address) ?? [];
      // A live eligible peer that reaches the API takes the lease itself (the holder's node lease lapses).
      if (live.some(([node, p]) => p.apiReachable && electorate.includes(node))) continue;
      const voters = [me, ...live.filter(([node]) => electorate.includes(node)).map(([node]) => node)];
      const winner = voters.reduce((best, n) => (rendezvous(lease.lease, n) > rendezvous(lease.lease, best) ? n : best));
      if (winner !== me) continue;
      const was = prev.claim;
      const claim = { rv: was.rv, takeovers: was.takeovers + 1 };
      takeovers.set(address, claim);
      announce.set(address, claim);
    }
  }
  return { announce, fenced, takeovers, resolved };
}
