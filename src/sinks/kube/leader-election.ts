/**
 * Leader election on one Lease (`pharos-ipam`), as client-go's
 * leaderelection does it: every retry period read the lease; take it when
 * it is free, ours, or unrenewed for a full duration by local observation
 * (clocks of other nodes are never compared); renew with a
 * resourceVersion-checked update; a leader that cannot renew within the
 * renew deadline steps down before anyone may take over (renew deadline <
 * duration), and stops writing. Clean shutdown releases the lease.
 */
import type { KubeWriter, LeaseRecord } from './writer.js';

export interface LeaderElectorOptions {
  writer: KubeWriter;
  lease: string;
  identity: string;
  leaseMs: number;
  renewDeadlineMs: number;
  retryMs: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  log: { info(msg: string, f?: Record<string, string | number | undefined>): void; debug(msg: string, f?: Record<string, string | number | undefined>): void };
  now?: () => number;
}

export class LeaderElector {
  private leading = false;
  private current?: LeaseRecord;
  private observedRv = '';
  private observedAt = 0;
  private lastRenewAt = -Infinity;
  private timer?: NodeJS.Timeout;
  private running = false;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly opts: LeaderElectorOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  get isLeader(): boolean {
    return this.leading && this.now() - this.lastRenewAt < this.opts.renewDeadlineMs;
  }

  get holder(): string | undefined {
    return this.leading ? this.opts.identity : this.current?.holderIdentity;
  }

  start(): void {
    void this.round();
    this.timer = setInterval(() => void this.round(), this.opts.retryMs);
  }

  private async round(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    const sentAt = this.now();
    try {
      const { writer, lease, identity } = this.opts;
      const cur = await writer.getLease(lease);
      if (cur && cur.resourceVersion !== this.observedRv) {
        this.observedRv = cur.resourceVersion;
        this.observedAt = sentAt;
      }
      const now = new Date();
      const spec = { holderIdentity: identity, leaseDurationSeconds: Math.round(this.opts.leaseMs / 1000), renewTime: now };
      if (!cur) {
        this.current = await writer.createLease(lease, { ...spec, acquireTime: now, leaseTransitions: 0 });
        this.won(sentAt);
      } else if (cur.holderIdentity === identity) {
        this.current = await writer.updateLease(cur, { ...spec, acquireTime: cur.acquireTime ?? now, leaseTransitions: cur.leaseTransitions ?? 0 });
        this.won(sentAt);
      } else if (!cur.holderIdentity || sentAt - this.observedAt > (cur.leaseDurationSeconds ?? 15) * 1000) {
        this.current = await writer.updateLease(cur, { ...spec, acquireTime: now, leaseTransitions: (cur.leaseTransitions ?? 0) + 1 });
        this.won(sentAt);
      } else {
        this.current = cur;
        this.checkDeadline();
      }
    } catch (err) {
      this.opts.log.debug('leader election round failed', { lease: this.opts.lease, error: (err as Error).message });
      this.checkDeadline();
    } finally {
      this.running = false;
    }
  }

  private won(sentAt: number): void {
    if (this.stopped) return;
    this.lastRenewAt = sentAt;
    this.observedRv = this.current?.resourceVersion ?? this.observedRv;
    this.observedAt = sentAt;
    if (!this.leading) {
      this.leading = true;
      this.opts.log.info('became leader', { lease: this.opts.lease });
      this.opts.onStartedLeading();
    }
  }

  private checkDeadline(): void {
    if (this.leading && this.now() - this.lastRenewAt >= this.opts.renewDeadlineMs) {
      this.leading = false;
      this.opts.log.info('lost leadership: stopped writing', { lease: this.opts.lease });
      this.opts.onStoppedLeading();
    }
  }

  /** Stops; a leader releases the lease so the next one need not wait it out. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    if (this.leading && this.current) {
      this.leading = false;
      this.opts.onStoppedLeading();
      await Promise.race([this.opts.writer.releaseLease(this.current).catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
  }
}
