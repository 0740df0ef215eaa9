/**
 * The IPAM controller of Kubernetes mode: only the holder of Lease
 * `pharos-ipam` allocates and writes Service/pool status (IpamController
 * through KubeStatusSink). A new leader starts from a fresh controller that
 * adopts what the services' status already shows; a leader that loses the
 * lease stops writing. Followers work pool counts out from the status the
 * leader wrote, for `pharos pool list` and metrics.
 */
import type { SnapshotOf, Store } from '../store/store.js';
import { Ipam } from './allocator.js';
import { IPAM_KINDS, IpamController, type IpamKind } from './controller.js';
import type { PoolStatus } from './pool-status.js';
import type { KubeWriter } from '../sinks/kube/writer.js';
import { LeaderElector } from '../sinks/kube/leader-election.js';
import type { AgentController } from '../store/controller.js';
import type { Logger } from '../model/log.js';
import { KubeStatusSink } from './kube-status-sink.js';
import type { IpamView } from './local-controller.js';

export interface KubeIpamOptions {
  writer: KubeWriter;
  nodeName: string;
  pharosIsDefaultClass: boolean;
  leaseMs: number;
  renewDeadlineMs: number;
  retryMs: number;
  log: Logger;
  requestReconcile: () => void;
}

export class KubeIpamController implements AgentController<IpamKind>, IpamView {
  readonly name = 'ipam';
  readonly kinds = IPAM_KINDS;
  private readonly elector: LeaderElector;
  private readonly sink: KubeStatusSink;
  private controller?: IpamController;
  /** Follower's view: the snapshot last seen, and pool counts worked out from it on demand. */
  private lastSnap?: SnapshotOf<IpamKind>;
  private followerView?: { snap: SnapshotOf<IpamKind>; statuses: ReadonlyMap<string, PoolStatus> };

  constructor(store: Store, private readonly opts: KubeIpamOptions) {
    this.sink = new KubeStatusSink(opts.writer, store, () => this.elector.isLeader);
    this.elector = new LeaderElector({
      writer: opts.writer,
      lease: 'pharos-ipam',
      identity: opts.nodeName,
      leaseMs: opts.leaseMs,
      renewDeadlineMs: opts.renewDeadlineMs,
      retryMs: opts.retryMs,
      log: opts.log,
      onStartedLeading: () => {
        // A fresh controller: its first sync adopts every address the services' status shows.
        this.controller = new IpamController({ sink: this.sink, pharosIsDefaultClass: opts.pharosIsDefaultClass });
        opts.requestReconcile();
      },
      onStoppedLeading: () => {
        this.controller = undefined;
      },
    });
  }

  start(): void {
    this.elector.start();
  }

  /**
   * The leader's controller knows the counts. A follower works them out
   * from what the leader wrote (every address in Service status is adopted,
   * as a new leader would), without writing anything; computed when asked,
   * once per snapshot.
   */
  poolStatuses(): ReadonlyMap<string, PoolStatus> {
    if (this.controller) return this.controller.poolStatuses();
    const snap = this.lastSnap;
    if (!snap) return new Map();
    if (this.followerView?.snap !== snap) {
      const shadow = new Ipam({ pharosIsDefaultClass: this.opts.pharosIsDefaultClass });
      shadow.loadAll(snap.pools.values(), snap.services.values());
      this.followerView = { snap, statuses: new Map(shadow.allPoolStatuses()) };
    }
    return this.followerView.statuses;
  }

  leader(): string | undefined {
    return this.elector.holder;
  }

  async reconcile(snap: SnapshotOf<IpamKind>): Promise<void> {
    this.lastSnap = snap;
    const ctrl = this.controller;
    if (!ctrl || !this.elector.isLeader) return;
    const report = await ctrl.sync(snap);
    if (report.servicesWritten || report.poolsWritten) this.opts.log.info('IPAM status written', { services: report.servicesWritten, pools: report.poolsWritten });
    for (const c of report.conflicts) this.opts.log.warn('pool conflicts with another: it hands out and keeps nothing until the overlap goes', { pool: c });
    for (const e of report.errors.slice(0, 5)) this.opts.log.warn('IPAM status write failed; retried on the next pass', { error: e });
    if (report.errors.length > 0) setTimeout(() => this.opts.requestReconcile(), 1000).unref();
  }

  stop(): Promise<void> {
    return this.elector.stop();
  }
}
