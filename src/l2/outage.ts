/**
 * L2 through an API outage (issue 18 item 2): the I/O around
 * outage-core.ts. Runs the peer heartbeats, reads the foreign answers the
 * XDP program noted, remembers outage takeovers and fences, decides every
 * 100 ms (and on every heartbeat or election change), and tells the
 * controller what to announce. Logs and counts what an operator must know:
 * the API gone and back, each fence with its reason (warning), each
 * duplicate answer, each takeover.
 */
import type { ElectionLog } from './election.js';
import { decideHold, peerAlive, type Claim, type FenceReason, type HoldInput, type PeerView } from './outage-core.js';
import { PeerHeartbeats } from './peers.js';

const TICK_MS = 100;
export const HEARTBEAT_INTERVAL_MS = 200;

export interface ForeignAnswer {
  address: string;
  /** Foreign answers counted by the XDP program (summed over interfaces). */
  count: number;
  /** How long ago the last one came. */
  ageMs: number;
  mac: string;
}

export interface OutageGuardOptions {
  node: string;
  /** UDP port of the heartbeats; 0: none (no peer evidence: a silent holder is never replaced without the API). */
  port: number;
  interfaces: readonly string[];
  /** Longer than the responder's liveness limit: a peer declared dead has stopped answering ARP. */
  peerTimeoutMs: number;
  log: ElectionLog;
  /** The election's view, read on every decision. */
  view: () => Omit<HoldInput, 'now' | 'me' | 'outageSince' | 'takenOver' | 'peers' | 'peerTimeoutMs' | 'foreign'>;
  readForeign: () => ForeignAnswer[];
  /** The announce set changed. */
  onChange: () => void;
  /** While answering without the API: refresh the responder's liveness stamp (the node-lease renewals that normally do are failing). */
  stampLiveness: () => void;
  now?: () => number;
}

export interface FenceRecord {
  reason: FenceReason;
  since: number;
  at: string;
}

export interface DuplicateRecord {
  mac: string;
  count: number;
  at: string;
}

export class OutageGuard {
  private readonly now: () => number;
  private readonly heartbeats?: PeerHeartbeats;
  private timer?: NodeJS.Timeout;
  private outageSince: number | undefined;
  private outageStartedAt?: string;
  private wasReachable = true;
  private readonly takenOver = new Map<string, Claim>();
  private readonly foreign = new Map<string, { at: number; mac: string; firstAt: number }>();
  private readonly foreignCounts = new Map<string, number>();
  /** Last duplicate answer per address (pharos l2 list, status). */
  readonly duplicates = new Map<string, DuplicateRecord>();
  /** Addresses held but not answered, and why. */
  readonly fences = new Map<string, FenceRecord>();
  private announce = new Map<string, Claim>();
  /** The foreign-answer map has been read once (counts found then are an earlier agent's). */
  private primed = false;
  private announceKey = '';
  /** Counts for metrics. */
  readonly counts = { fences: new Map<string, number>(), duplicates: 0, takeovers: 0 };

  constructor(private readonly opts: OutageGuardOptions) {
    this.now = opts.now ?? (() => performance.now());
    if (opts.port > 0) {
      this.heartbeats = new PeerHeartbeats({
        node: opts.node, port: opts.port, intervalMs: HEARTBEAT_INTERVAL_MS, interfaces: opts.interfaces,
        state: () => ({ api: this.wasReachable, claims: this.announce }),
        onHeard: () => undefined,
        onError: (err) => opts.log.debug('L2 heartbeat send/receive failed', { error: err.message }),
        now: this.now,
      });
    }
  }

  async start(): Promise<void> {
    try {
      await this.heartbeats?.start();
    } catch (err) {
      this.opts.log.warn('L2 peer heartbeats not started: a holder silent during an API outage will not be replaced', { port: this.opts.port, error: (err as Error).message });
    }
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.announce = new Map();
    await this.heartbeats?.stop();
  }

  /** What to announce now (addresses). */
  announced(): string[] {
    return [...this.announce.keys()].sort();
  }

  get apiReachable(): boolean {
    return this.wasReachable;
  }

  /** ISO time the API became unreachable from here; undefined while reachable. */
  get apiUnreachableSince(): string | undefined {
    return this.wasReachable ? undefined : this.outageStartedAt;
  }

  /** Addresses answered without a lease record confirming them (API unreachable, or an outage takeover not yet written). */
  get unconfirmed(): number {
    return this.wasReachable ? this.takenOver.size : this.announce.size;
  }

  livePeers(): string[] {
    const now = this.now();
    return [...this.heartbeats?.table.peers ?? []].filter(([, p]) => peerAlive(p, now, this.opts.peerTimeoutMs)).map(([n]) => n).sort();
  }

  get peers(): ReadonlyMap<string, PeerView> {
    return this.heartbeats?.table.peers ?? new Map();
  }

  /** Lease names live peers claim (for the election: not to be taken from them). */
  peerClaimed(leaseOf: (address: string) => string): Set<string> {
    const now = this.now();
    const out = new Set<string>();
    for (const [, p] of this.peers) if (peerAlive(p, now, this.opts.peerTimeoutMs)) for (const a of p.claims.keys()) out.add(leaseOf(a));
    return out;
  }

  /** Outage takeovers still answered here (a fenced one is not: another node's claim won, its lease is not ours to write). */
  outageServed(): ReadonlySet<string> {
    return new Set([...this.takenOver.keys()].filter((a) => !this.fences.has(a)));
  }

  stateOf(address: string): string {
    const fence = this.fences.get(address);
    if (fence) return `fenced: ${describeFence(fence.reason)}`;
    if (!this.announce.has(address)) return '';
    const t = this.takenOver.get(address);
    if (t) return `taken over (API outage, claim ${t.rv}+${t.takeovers})`;
    return this.wasReachable ? 'announcing' : 'held through API outage';
  }

  tick(): void {
    const now = this.now();
    const view = this.opts.view();
    const reachable = view.apiReachable;
    if (reachable !== this.wasReachable) {
      this.wasReachable = reachable;
      if (!reachable) {
        this.outageSince = now;
        this.outageStartedAt = new Date().toISOString();
        this.opts.log.warn('Kubernetes API unreachable (node lease not renewed): L2 addresses held so far stay announced while nothing shows another node has them', {
          held: view.held.size, livePeers: this.livePeers().length,
        });
      } else {
        this.opts.log.info('Kubernetes API reachable again: the leases decide L2 holders', { takenOver: this.takenOver.size });
      }
    }
    if (reachable && this.takenOver.size === 0) this.outageSince = undefined;
    this.readForeign(now, view.held, view.electionAnnounce);
    const out = decideHold({
      ...view, now, me: this.opts.node, outageSince: this.outageSince, takenOver: this.takenOver,
      peers: this.peers, peerTimeoutMs: this.opts.peerTimeoutMs, foreign: this.foreign,
    });
    for (const a of out.resolved) this.takenOver.delete(a);
    for (const [a, claim] of out.takeovers) {
      this.takenOver.set(a, claim);
      this.counts.takeovers++;
      this.opts.log.warn('L2 address taken over during the API outage: its holder fell silent', { address: a, claim: `${claim.rv}+${claim.takeovers}` });
    }
    for (const [a, reason] of out.fenced) {
      if (this.fences.has(a) && sameFence(this.fences.get(a)!.reason, reason)) continue;
      this.fences.set(a, { reason, since: now, at: new Date().toISOString() });
      this.counts.fences.set(reason.kind, (this.counts.fences.get(reason.kind) ?? 0) + 1);
      this.opts.log.warn(`L2 address fenced: ${describeFence(reason)}`, { address: a, reason: reason.kind });
    }
    for (const a of [...this.fences.keys()]) {
      if (out.fenced.has(a)) continue;
      this.fences.delete(a);
      if (out.announce.has(a)) this.opts.log.info('L2 address no longer fenced', { address: a });
    }
    const key = [...out.announce.keys()].sort().join(',');
    const changed = key !== this.announceKey || [...out.announce].some(([a, c]) => this.announce.get(a)?.rv !== c.rv || this.announce.get(a)?.takeovers !== c.takeovers);
    this.announce = out.announce;
    this.announceKey = key;
    // No node-lease renewal stamps the responder now: the agent's own decisions do, so a wedged agent still falls silent.
    if (!reachable && out.announce.size > 0) this.opts.stampLiveness();
    if (changed) {
      void this.heartbeats?.beat();
      this.opts.onChange();
    }
  }

  private readForeign(now: number, held: ReadonlyMap<string, Claim>, announced: ReadonlyMap<string, Claim>): void {
    let answers: ForeignAnswer[];
    try {
      answers = this.opts.readForeign();
    } catch {
      return;
    }
    const primed = this.primed;
    this.primed = true;
    for (const f of answers) {
      const before = this.foreignCounts.get(f.address) ?? 0;
      if (f.count === before) continue;
      this.foreignCounts.set(f.address, f.count);
      if (f.count < before) continue;
      const at = now - f.ageMs;
      // A run of answers (a peer's gratuitous ARP repeats) keeps the time of its first: a silent peer's run fences a peer timeout in.
      const prev = this.foreign.get(f.address);
      const continues = prev && prev.mac === f.mac && at - prev.at < 5000;
      this.foreign.set(f.address, { at, mac: f.mac, firstAt: continues ? prev.firstAt : at });
      if (!primed) {
        // The map is pinned: what an earlier agent saw is shown, not announced again as news.
        this.duplicates.set(f.address, { mac: f.mac, count: f.count, at: new Date(Date.now() - f.ageMs).toISOString() });
        continue;
      }
      this.counts.duplicates += f.count - before;
      this.duplicates.set(f.address, { mac: f.mac, count: f.count, at: new Date(Date.now() - f.ageMs).toISOString() });
      this.opts.log.warn('duplicate answer for one of our L2 addresses: another MAC answers or announces it (split brain?)', {
        address: f.address, mac: f.mac, seen: f.count - before, held: held.has(f.address) || announced.has(f.address),
      });
    }
  }
}

export function describeFence(r: FenceReason): string {
  return r.kind === 'foreign-answer'
    ? `another MAC (${r.mac}) answers for it during the API outage`
    : `node ${r.node} claims it with a later lease record (${r.claim.rv}+${r.claim.takeovers})`;
}

function sameFence(a: FenceReason, b: FenceReason): boolean {
  return a.kind === b.kind && (a.kind === 'foreign-answer' ? a.mac === (b as typeof a).mac : a.node === (b as typeof a).node);
}
