/**
 * Glue between the store and the speaker: on every store change (coalesced
 * per tick) recompute `desiredBgp(snapshot)` and hand it to the speaker.
 * Nothing is applied before the store has synced — a half-listed world
 * would withdraw routes, and after a restart the router must get the whole
 * table before End-of-RIB (see speaker.ts).
 */
import type { Kind } from '../model/types.js';
import type { Store } from '../store/store.js';
import { desiredBgp, type BgpPolicyOptions } from './policy.js';
import type { BgpSpeaker, Log } from './speaker.js';

/** Kinds desiredBgp reads; Lease renewals (every second or so) must not recompute BGP. */
const RELEVANT: ReadonlySet<Kind> = new Set<Kind>(['Service', 'EndpointSlice', 'Node', 'LoadBalancerIPPool', 'BGPPeeringPolicy', 'Secret']);

export interface BgpControllerOptions extends BgpPolicyOptions {
  nodeName: string;
  log?: Log;
}

export class BgpController {
  private scheduled = false;
  private started = false;
  private lastProblems = '';
  /** The problems of the last reconcile (a missing Secret, a duplicate neighbor), each naming its policy, with when it was first seen. */
  problems: ReadonlyArray<{ message: string; since: string }> = [];
  /** Wall-clock time of the last apply (for tests and benchmarks). */
  lastAppliedAt = 0;

  constructor(
    private readonly store: Store,
    private readonly speaker: BgpSpeaker,
    private readonly options: BgpControllerOptions,
  ) {}

  start(): void {
    if (this.started) return;
    this.started = true;
    this.store.on('change', (changes) => {
      if (changes.some((c) => RELEVANT.has(c.kind))) this.schedule();
    });
    if (this.store.synced) this.schedule();
    else this.store.once('synced', () => this.schedule());
  }

  /** Recomputes and applies now (the store must have synced). */
  reconcile(): void {
    if (!this.store.synced) return;
    const desired = desiredBgp(this.store.snapshot(), this.options.nodeName, this.options);
    const since = new Map(this.problems.map((p) => [p.message, p.since]));
    this.problems = desired.problems.map((message) => ({ message, since: since.get(message) ?? new Date().toISOString() }));
    const problems = desired.problems.join('\n');
    if (problems !== this.lastProblems) {
      this.lastProblems = problems;
      for (const p of desired.problems) this.options.log?.('warn', p);
    }
    const routerId = desired.routerId;
    this.speaker.apply({ peers: desired.peers.map((p) => (routerId && !p.routerId ? { ...p, routerId } : p)) });
    this.lastAppliedAt = Date.now();
  }

  private schedule(): void {
    if (this.scheduled || !this.started) return;
    this.scheduled = true;
    // Many store events in one tick (a relist) make one recomputation.
    queueMicrotask(() => {
      this.scheduled = false;
      this.reconcile();
    });
  }
}
