/**
 * The IPAM controller in its two settings:
 * - manifests mode: this agent is the only one; allocations persist in
 *   --state-dir and status is laid over the store (there is no API server);
 * - Kubernetes mode: only the holder of Lease `pharos-ipam` allocates and
 *   writes Service/pool status (IpamController through KubeStatusSink). A new
 *   leader starts from a fresh controller that adopts what the services'
 *   status already shows; a leader that loses the lease stops writing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Condition, Kind } from '../model/types.js';
import type { Snapshot, Store } from '../store/store.js';
import { Ipam, IPAM_CONDITION, type AllocationState } from '../ipam/allocator.js';
import { IpamController } from '../ipam/controller.js';
import type { PoolStatus } from '../ipam/pool-status.js';
import { writeFileAtomic } from '../sources/manifests/source.js';
import type { KubeWriter } from '../sources/kube/writer.js';
import type { AgentController } from './controller.js';
import type { Logger } from './log.js';
import { LeaderElector } from './leader.js';
import { KubeStatusSink } from './kube-status.js';

const IPAM_STATE_FILE = 'ipam-state.json';
const IPAM_KINDS: ReadonlySet<Kind> = new Set<Kind>(['Service', 'LoadBalancerIPPool']);

export interface IpamView {
  poolStatuses(): ReadonlyMap<string, PoolStatus>;
  /** Who allocates: this node, another, or unknown. */
  leader(): string | undefined;
}

export class LocalIpamController implements AgentController, IpamView {
  readonly name = 'ipam';
  readonly kinds = IPAM_KINDS;
  private readonly ipam: Ipam;
  private statuses = new Map<string, PoolStatus>();
  private readonly conditionTimes = new Map<string, string>();
  private lastPersisted = '';

  constructor(
    private readonly store: Store,
    private readonly opts: { stateDir: string; nodeName: string; pharosIsDefaultClass: boolean; log: Logger },
  ) {
    this.ipam = new Ipam({ pharosIsDefaultClass: opts.pharosIsDefaultClass });
  }

  poolStatuses(): ReadonlyMap<string, PoolStatus> {
    return this.statuses;
  }

  leader(): string {
    return this.opts.nodeName;
  }

  async reconcile(snap: Snapshot): Promise<void> {
    const statePath = join(this.opts.stateDir, IPAM_STATE_FILE);
    let previous: AllocationState | undefined;
    if (this.lastPersisted) previous = JSON.parse(this.lastPersisted) as AllocationState;
    else if (existsSync(statePath)) {
      try {
        previous = JSON.parse(readFileSync(statePath, 'utf8')) as AllocationState;
        this.lastPersisted = JSON.stringify(previous);
      } catch (err) {
        this.opts.log.warn('IPAM state file unreadable; rebuilding from service status', { file: statePath, error: (err as Error).message });
      }
    }
    const ipam = this.ipam;
    ipam.loadAll(snap.pools.values(), snap.services.values(), previous);
    for (const [key, outcome] of ipam.allOutcomes()) {
      if (outcome.kind === 'leave-alone') continue;
      const svc = snap.services.get(key);
      if (!svc) continue;
      if (outcome.kind === 'managed') {
        const condition = this.stampCondition(key, outcome.condition);
        const status = { ingress: outcome.ingress.map((ip) => ({ ip })), conditions: [...svc.status.conditions.filter((c) => c.type !== IPAM_CONDITION), condition] };
        if (JSON.stringify(status) !== JSON.stringify(svc.status)) {
          this.store.setServiceStatus(key, status);
          this.opts.log.info(outcome.ingress.length ? 'address assigned' : 'no address assigned', {
            service: key, addresses: outcome.ingress.join(','), reason: condition.reason, message: condition.status === 'True' ? undefined : condition.message,
          });
        }
      } else {
        this.store.setServiceStatus(key, undefined);
        this.conditionTimes.delete(key);
        this.opts.log.info('service left pharos\'s scope: address released', { service: key });
      }
    }
    this.statuses = new Map(ipam.allPoolStatuses());
    const state = JSON.stringify(ipam.exportState());
    if (state !== this.lastPersisted) {
      await writeFileAtomic(statePath, state);
      this.lastPersisted = state;
    }
  }

  private stampCondition(key: string, c: Condition): Condition {
    const id = `${key}|${c.status}|${c.reason}`;
    let at = this.conditionTimes.get(id);
    if (!at) {
      at = new Date().toISOString();
      for (const k of [...this.conditionTimes.keys()]) if (k.startsWith(`${key}|`)) this.conditionTimes.delete(k);
      this.conditionTimes.set(id, at);
    }
    return { ...c, lastTransitionTime: at };
  }

  stop(): void {}
}

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

export class KubeIpamController implements AgentController, IpamView {
  readonly name = 'ipam';
  readonly kinds = IPAM_KINDS;
  private readonly elector: LeaderElector;
  private readonly sink: KubeStatusSink;
  private controller?: IpamController;
  /** Follower's view: the snapshot last seen, and pool counts worked out from it on demand. */
  private lastSnap?: Snapshot;
  private followerView?: { snap: Snapshot; statuses: ReadonlyMap<string, PoolStatus> };

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

  async reconcile(snap: Snapshot): Promise<void> {
    this.lastSnap = snap;
    const ctrl = this.controller;
    if (!ctrl || !this.elector.isLeader) return;
    const report = await ctrl.sync(snap);
    if (report.servicesWritten || report.poolsWritten) this.opts.log.info('IPAM status written', { services: report.servicesWritten, pools: report.poolsWritten });
    for (const e of report.errors.slice(0, 5)) this.opts.log.warn('IPAM status write failed; retried on the next pass', { error: e });
    if (report.errors.length > 0) setTimeout(() => this.opts.requestReconcile(), 1000).unref();
  }

  stop(): Promise<void> {
    return this.elector.stop();
  }
}
