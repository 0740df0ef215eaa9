/**
 * The BGP controller: on a pass of the agent's reconcile loop (a change of a
 * kind it reads, coalesced; agent/reconcile-loop.ts) recompute
 * `desiredBgp(snapshot)` and hand it to the speaker.
 * Nothing is applied before the store has synced — a half-listed world
 * would withdraw routes, and after a restart the router must get the whole
 * table before End-of-RIB (see speaker.ts).
 *
 * A draining node (labelled lb.pharos.io/drain or cordoned) first sends its
 * routes with GRACEFUL_SHUTDOWN and a worse path, then withdraws them after
 * `drainWithdrawMs` (drain.ts).
 */
import type { SnapshotOf, Store } from '../store/store.js';
import type { AgentController } from '../store/controller.js';
import { BGP_KINDS, desiredBgp, type BgpKind, type BgpPolicyOptions } from './policy.js';
import { drainReason, type DrainReason } from '../model/drain.js';
import { drainedPeers, drainPhase, type DrainPhase } from './drain.js';
import type { BgpSpeaker, Log } from './speaker.js';


export interface BgpControllerOptions extends BgpPolicyOptions {
  nodeName: string;
  log?: Log;
  /** How long a draining node advertises with GRACEFUL_SHUTDOWN before it withdraws (default 10 s). */
  drainWithdrawMs?: number;
}

export interface BgpDrainState {
  reason: DrainReason;
  /** Wall-clock ISO time the drain was seen. */
  since: string;
  phase: Exclude<DrainPhase, 'none'>;
  /** When the routes are (or were) withdrawn. */
  withdrawAt: string;
}

export class BgpController implements AgentController<BgpKind> {
  readonly name = 'bgp';
  readonly kinds = BGP_KINDS;
  private lastProblems = '';
  /** The problems of the last reconcile (a missing Secret, a duplicate neighbor), each naming its policy, with when it was first seen. */
  problems: ReadonlyArray<{ message: string; since: string }> = [];
  /** Wall-clock time of the last apply (for tests and benchmarks). */
  lastAppliedAt = 0;
  /** The drain as seen at the last reconcile (undefined: not draining). */
  drain: BgpDrainState | undefined;
  private drainSince: number | undefined;
  private drainTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly speaker: BgpSpeaker,
    private readonly options: BgpControllerOptions,
  ) {}

  /** Recomputes and applies now (the store must have synced); `snapshot` defaults to the store's current one. */
  reconcile(snapshot: SnapshotOf<BgpKind> = this.store.snapshot()): void {
    if (!this.store.synced) return;
    const desired = desiredBgp(snapshot, this.options.nodeName, this.options);
    const since = new Map(this.problems.map((p) => [p.message, p.since]));
    this.problems = desired.problems.map((message) => ({ message, since: since.get(message) ?? new Date().toISOString() }));
    const problems = desired.problems.join('\n');
    if (problems !== this.lastProblems) {
      this.lastProblems = problems;
      for (const p of desired.problems) this.options.log?.('warn', p);
    }
    const routerId = desired.routerId;
    const phase = this.drainPhaseNow(snapshot);
    this.speaker.apply({ peers: drainedPeers(desired.peers, phase).map((p) => (routerId && !p.routerId ? { ...p, routerId } : p)) });
    this.lastAppliedAt = Date.now();
  }

  /** Follows this node's drain label / cordon: starts the GRACEFUL_SHUTDOWN phase, times the withdrawal, ends on undrain. */
  private drainPhaseNow(snapshot: SnapshotOf<BgpKind>): DrainPhase {
    const reason = drainReason(snapshot.nodes.get(this.options.nodeName));
    const delay = this.options.drainWithdrawMs ?? 10_000;
    const now = Date.now();
    if (reason && this.drainSince === undefined) {
      this.drainSince = now;
      this.options.log?.('info', 'node draining: BGP routes sent with GRACEFUL_SHUTDOWN (65535:0) and a worse path, withdrawn after the delay', { reason, withdrawDelayMs: delay });
      // Withdraw on time even if nothing else changes in the store.
      this.drainTimer = setTimeout(() => this.reconcile(), delay + 1);
      this.drainTimer.unref?.();
    } else if (!reason && this.drainSince !== undefined) {
      this.drainSince = undefined;
      clearTimeout(this.drainTimer);
      this.options.log?.('info', 'node no longer draining: BGP routes advertised as usual');
    }
    const phase = drainPhase(this.drainSince, now, delay);
    if (phase === 'withdrawn' && this.drain?.phase === 'shutdown') this.options.log?.('info', 'node draining: BGP routes withdrawn');
    this.drain = reason && phase !== 'none'
      ? { reason, phase, since: new Date(this.drainSince!).toISOString(), withdrawAt: new Date(this.drainSince! + delay).toISOString() }
      : undefined;
    return phase;
  }

  stop(): void {
    clearTimeout(this.drainTimer);
  }
}
