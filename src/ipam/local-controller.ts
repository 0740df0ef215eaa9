/**
 * The IPAM controller of manifests mode: this agent is the only one, so it
 * allocates for every service itself, lays status over the store (there is
 * no API server) and persists its allocations in --state-dir so addresses
 * survive a restart although manifests carry no status. The allocation and
 * status logic is the same IpamController as Kubernetes mode's
 * (kube-controller.ts); only the sink and the persistence differ.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Condition } from '../model/types.js';
import type { SnapshotOf, Store } from '../store/store.js';
import { IPAM_CONDITION, type AllocationState } from './allocator.js';
import { IPAM_KINDS, IpamController, type IpamKind, type IpamStatusSink } from './controller.js';
import type { PoolStatus } from './pool-status.js';
import { writeFileAtomic } from '../sinks/state-dir.js';
import type { AgentController } from '../store/controller.js';
import type { Logger } from '../model/log.js';

const IPAM_STATE_FILE = 'ipam-state.json';

export interface IpamView {
  poolStatuses(): ReadonlyMap<string, PoolStatus>;
  /** Who allocates: this node, another, or unknown. */
  leader(): string | undefined;
}

/**
 * Manifests mode's sink: status is laid over the store (pharos is the only
 * writer: there is no API server); pool status is kept for `pharos pool list`.
 */
class StoreStatusSink implements IpamStatusSink {
  constructor(private readonly store: Store, private readonly onWrite: (key: string, ingress: string[], condition: Condition | null) => void) {}

  async writeServiceStatus(key: string, ingress: string[], condition: Condition | null): Promise<void> {
    const svc = this.store.get('Service', key);
    const others = svc?.status.conditions.filter((c) => c.type !== IPAM_CONDITION) ?? [];
    if (!condition && ingress.length === 0 && others.length === 0) this.store.setServiceStatus(key, undefined);
    else this.store.setServiceStatus(key, { ingress: ingress.map((ip) => ({ ip })), conditions: condition ? [...others, condition] : others });
    this.onWrite(key, ingress, condition);
  }

  async writePoolStatus(): Promise<void> {
    // Pools in manifests mode have no status to write; IpamController keeps the counts (poolStatuses()).
  }
}

/** Past this many address changes in one pass, one summary line instead of one line each. */
const LOG_EACH_UP_TO = 20;

/**
 * Manifests mode: the same incremental IpamController as Kubernetes mode,
 * writing status into the store, with allocations persisted in --state-dir
 * so addresses survive a restart although manifests carry no status.
 */
export class LocalIpamController implements AgentController<IpamKind>, IpamView {
  readonly name = 'ipam';
  readonly kinds = IPAM_KINDS;
  private readonly controller: IpamController;
  private readonly statePath: string;
  private lastPersisted = '';
  private persisting?: Promise<void>;
  private persistAgain = false;
  private written: Array<{ key: string; ingress: string[]; condition: Condition | null }> = [];

  constructor(
    store: Store,
    private readonly opts: { stateDir: string; nodeName: string; pharosIsDefaultClass: boolean; log: Logger },
  ) {
    this.statePath = join(opts.stateDir, IPAM_STATE_FILE);
    this.controller = new IpamController({
      sink: new StoreStatusSink(store, (key, ingress, condition) => this.written.push({ key, ingress, condition })),
      pharosIsDefaultClass: opts.pharosIsDefaultClass,
    });
    if (existsSync(this.statePath)) {
      try {
        const text = readFileSync(this.statePath, 'utf8');
        this.controller.importState(JSON.parse(text) as AllocationState);
        this.lastPersisted = text;
      } catch (err) {
        opts.log.warn('IPAM state file unreadable; rebuilding from service status', { file: this.statePath, error: (err as Error).message });
      }
    }
  }

  poolStatuses(): ReadonlyMap<string, PoolStatus> {
    return this.controller.poolStatuses();
  }

  leader(): string {
    return this.opts.nodeName;
  }

  async reconcile(snap: SnapshotOf<IpamKind>): Promise<void> {
    this.written = [];
    const report = await this.controller.sync(snap);
    this.logWrites();
    for (const c of report.conflicts) this.opts.log.warn('pool conflicts with another: it hands out and keeps nothing until the overlap goes', { pool: c });
    for (const e of report.errors.slice(0, 5)) this.opts.log.warn('IPAM status write failed; retried on the next pass', { error: e });
    if (report.servicesWritten > 0) this.schedulePersist();
  }

  private logWrites(): void {
    const written = this.written;
    if (written.length <= LOG_EACH_UP_TO) {
      for (const w of written) {
        if (!w.condition) this.opts.log.info('service left pharos\'s scope: address released', { service: w.key });
        else this.opts.log.info(w.ingress.length ? 'address assigned' : 'no address assigned', {
          service: w.key, addresses: w.ingress.join(','), reason: w.condition.reason, message: w.condition.status === 'True' ? undefined : w.condition.message,
        });
      }
      return;
    }
    const assigned = written.filter((w) => w.condition && w.ingress.length > 0).length;
    const pending = written.filter((w) => w.condition && w.ingress.length === 0);
    this.opts.log.info('addresses assigned', {
      services: written.length, assigned, pending: pending.length, released: written.filter((w) => !w.condition).length,
      firstPendingReason: pending[0]?.condition?.reason,
    });
  }

  /**
   * Saves the allocations after every pass that changed status, without
   * holding the next pass back: one write at a time, and passes that end
   * meanwhile coalesce into one more write of the latest state (a restart
   * must find every address it handed out).
   */
  private schedulePersist(): void {
    if (this.persisting) {
      this.persistAgain = true;
      return;
    }
    this.persisting = this.persist()
      .catch((err: unknown) => {
        this.opts.log.error('cannot save IPAM state; retried', { file: this.statePath, error: (err as Error).message });
        this.persistAgain = true;
      })
      .finally(() => {
        this.persisting = undefined;
        if (this.persistAgain) {
          this.persistAgain = false;
          this.schedulePersist();
        }
      });
  }

  private async persist(): Promise<void> {
    const state = JSON.stringify(this.controller.exportState());
    if (state === this.lastPersisted) return;
    await writeFileAtomic(this.statePath, state);
    this.lastPersisted = state;
  }

  async stop(): Promise<void> {
    while (this.persisting) await this.persisting;
  }
}
