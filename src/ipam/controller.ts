/**
 * The IPAM controller: the thin I/O shell around the allocator. It reads the
 * store's snapshot, feeds what changed since the last sync to the
 * incremental `Ipam`, and writes service and pool status through a sink —
 * only where the desired status differs from what it last wrote (or, for a
 * service that just changed, from what the service now shows).
 *
 * Both modes run it: Kubernetes mode writes through KubeStatusSink
 * (kube-controller.ts, only while this agent holds the IPAM lease), manifests
 * mode lays status over the store and persists the allocations with
 * `exportState()`/`importState()` (local-controller.ts), so addresses survive
 * a restart although manifests carry no status. A failed write is retried on
 * the next sync.
 */
import type { Kind } from '../model/types.js';
import type { SnapshotOf } from '../store/store.js';

/** The kinds IPAM reads: services and their pools. */
export type IpamKind = Extract<Kind, 'Service' | 'LoadBalancerIPPool'>;
export const IPAM_KINDS: ReadonlySet<IpamKind> = new Set<IpamKind>(['Service', 'LoadBalancerIPPool']);
import type { Condition, IPPool, Service } from '../model/types.js';
import { IPAM_CONDITION, Ipam, type AllocationState, type ServiceOutcome } from './allocator.js';
import type { PoolStatus } from './pool-status.js';
import { serviceOrder } from './request.js';

export interface IpamStatusSink {
  /** Set status.loadBalancer.ingress and our condition; `condition` null removes our condition (and only ours). */
  writeServiceStatus(key: string, ingress: string[], condition: Condition | null): Promise<void>;
  writePoolStatus(name: string, status: PoolStatus): Promise<void>;
}

export interface IpamControllerOptions {
  sink: IpamStatusSink;
  /** Whether LoadBalancer services without loadBalancerClass are ours. */
  pharosIsDefaultClass: boolean;
  now?: () => Date;
}

export interface SyncReport {
  servicesWritten: number;
  poolsWritten: number;
  /** One line per failed write (retried on the next sync). */
  errors: string[];
  /** Pools that became conflicting in this pass: `name: why` (they hand out nothing new). */
  conflicts: string[];
}

export interface WrittenService {
  ingress: string[];
  condition: Condition | null;
  /** False when seeded from what the service showed before we wrote anything. */
  byUs?: boolean;
}

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function sameCondition(a: Condition | null | undefined, b: Condition | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.type === b.type && a.status === b.status && a.reason === b.reason && a.message === b.message && a.observedGeneration === b.observedGeneration;
}

function sameWrite(a: WrittenService | undefined, b: WrittenService): boolean {
  return !!a && a.ingress.length === b.ingress.length && a.ingress.every((ip, i) => ip === b.ingress[i]) && sameCondition(a.condition, b.condition);
}

/** How long the write loop may hold the event loop before it yields. */
const WRITE_SLICE_MS = 8;

/** The same service but for its status: every other field is the very same value (a store status overlay makes such copies). */
function onlyStatusChanged(a: Service, b: Service): boolean {
  for (const k of Object.keys(b) as Array<keyof Service>) if (k !== 'status' && a[k] !== b[k]) return false;
  return Object.keys(a).length === Object.keys(b).length;
}

function observed(svc: Service): WrittenService {
  return { ingress: svc.status.ingress.map((i) => i.ip), condition: svc.status.conditions.find((c) => c.type === IPAM_CONDITION) ?? null };
}

/** Same conditions, ignoring lastTransitionTime. */
function samePoolStatus(a: PoolStatus | undefined, b: PoolStatus): boolean {
  if (!a) return false;
  const strip = (s: PoolStatus): string => JSON.stringify({ ...s, conditions: s.conditions.map(({ lastTransitionTime: _t, ...c }) => c) });
  return strip(a) === strip(b);
}

export class IpamController {
  private readonly ipam: Ipam;
  private readonly sink: IpamStatusSink;
  private readonly now: () => Date;
  private started = false;
  private importedState?: AllocationState;
  private seenServices = new Map<string, Service>();
  private seenPools = new Map<string, IPPool>();
  private writtenServices = new Map<string, WrittenService>();
  private writtenPools = new Map<string, PoolStatus>();
  /** Keys whose last write failed, or that need a look regardless of change. */
  private retryServices = new Set<string>();
  private retryPools = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: IpamControllerOptions) {
    this.ipam = new Ipam({ pharosIsDefaultClass: options.pharosIsDefaultClass });
    this.sink = options.sink;
    this.now = options.now ?? (() => new Date());
  }

  /** Allocations to start from (manifests mode: read from --state-dir). Call before the first sync. */
  importState(state: AllocationState): void {
    if (this.started) throw new Error('importState must come before the first sync');
    if (state?.version !== 1 || typeof state.services !== 'object') throw new Error('unsupported IPAM state (want {"version": 1, "services": {...}})');
    this.importedState = state;
  }

  exportState(): AllocationState {
    return this.ipam.exportState();
  }

  outcome(key: string): ServiceOutcome | undefined {
    return this.ipam.outcome(key);
  }

  poolStatuses(): ReadonlyMap<string, PoolStatus> {
    return this.ipam.allPoolStatuses();
  }

  /** Bring allocations and status in line with `snapshot`. Calls are serialised. */
  sync(snapshot: SnapshotOf<IpamKind>): Promise<SyncReport> {
    const run = this.queue.then(() => this.syncNow(snapshot));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async syncNow(snapshot: SnapshotOf<IpamKind>): Promise<SyncReport> {
    const serviceKeys = new Set<string>(this.retryServices);
    const poolNames = new Set<string>(this.retryPools);
    this.retryServices.clear();
    this.retryPools.clear();
    const changedServices = new Set<string>();

    if (!this.started) {
      this.started = true;
      const changes = this.ipam.loadAll(snapshot.pools.values(), snapshot.services.values(), this.importedState);
      for (const k of changes.services) serviceKeys.add(k);
      for (const n of changes.pools) poolNames.add(n);
      for (const key of snapshot.services.keys()) changedServices.add(key);
    } else {
      const poolsChanged =
        snapshot.pools.size !== this.seenPools.size || [...snapshot.pools].some(([name, p]) => this.seenPools.get(name) !== p);
      if (poolsChanged) {
        // One full pass for any number of pool edits (they are rare; services keep covered addresses).
        const changes = this.ipam.loadAll(snapshot.pools.values(), snapshot.services.values(), this.ipam.exportState());
        for (const k of changes.services) serviceKeys.add(k);
        for (const n of changes.pools) poolNames.add(n);
      }
      // Deletions first: an address freed in this batch is the lowest free one for a service added in it.
      for (const key of this.seenServices.keys()) {
        if (snapshot.services.has(key)) continue;
        const changes = this.ipam.deleteService(key);
        for (const k of changes.services) serviceKeys.add(k);
        for (const n of changes.pools) poolNames.add(n);
      }
      const upserted: Service[] = [];
      for (const [key, svc] of snapshot.services) {
        const seen = this.seenServices.get(key);
        if (seen === svc) continue;
        // Our own status write comes back as a changed service (a copy with the new status, everything else the same
        // objects): nothing to allocate, and 10,000 of them at start would be 10,000 upserts for nothing.
        if (seen && onlyStatusChanged(seen, svc) && sameWrite(this.writtenServices.get(key), observed(svc))) continue;
        changedServices.add(key);
        if (!poolsChanged) upserted.push(svc); // else loadAll above already saw it
      }
      // In service order, as the full reconcile would hand out addresses.
      upserted.sort((a, b) => (serviceOrder(a) < serviceOrder(b) ? -1 : 1));
      for (const svc of upserted) {
        const changes = this.ipam.upsertService(svc);
        for (const k of changes.services) serviceKeys.add(k);
        for (const n of changes.pools) poolNames.add(n);
      }
    }
    for (const key of changedServices) serviceKeys.add(key);
    for (const name of this.seenPools.keys()) if (!snapshot.pools.has(name)) this.writtenPools.delete(name);
    this.seenServices = new Map(snapshot.services);
    this.seenPools = new Map(snapshot.pools);

    const report: SyncReport = { servicesWritten: 0, poolsWritten: 0, errors: [], conflicts: [] };
    let slice = performance.now();
    for (const key of [...serviceKeys].sort()) {
      await this.writeService(key, snapshot.services.get(key), changedServices.has(key), report);
      // Thousands of writes at start: let timers (the liveness pet, lease renewals, scrapes) run every few ms.
      if (performance.now() - slice > WRITE_SLICE_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        slice = performance.now();
      }
    }
    for (const name of [...poolNames].sort()) await this.writePool(name, report);
    return report;
  }

  private async writeService(key: string, svc: Service | undefined, changed: boolean, report: SyncReport): Promise<void> {
    const outcome = this.ipam.outcome(key);
    if (!svc || !outcome || outcome.kind === 'leave-alone') {
      this.writtenServices.delete(key);
      return;
    }
    const seen = observed(svc);
    if (!this.writtenServices.has(key)) this.writtenServices.set(key, seen);
    const last = this.writtenServices.get(key)!;
    let desired: WrittenService;
    if (outcome.kind === 'release') {
      // Besides addresses inside our pools (outcome.ingress has those removed), drop what we wrote ourselves.
      const ours = new Set(last.byUs && last.condition ? last.ingress : []);
      desired = { ingress: outcome.ingress.filter((ip) => !ours.has(ip)), condition: null };
    } else {
      const generation = svc.meta.generation;
      const condition: Condition = { ...outcome.condition, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
      const previous = last.condition ?? seen.condition;
      condition.lastTransitionTime =
        previous && previous.status === condition.status && previous.lastTransitionTime ? previous.lastTransitionTime : rfc3339(this.now());
      desired = { ingress: outcome.ingress, condition };
    }
    // Written already, and the service does not show something else: nothing to do.
    if (sameWrite(last, desired) && (!changed || sameWrite(seen, desired))) return;
    try {
      await this.sink.writeServiceStatus(key, desired.ingress, desired.condition);
      this.writtenServices.set(key, { ...desired, byUs: true });
      report.servicesWritten++;
    } catch (err) {
      this.retryServices.add(key);
      report.errors.push(`service ${key}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private async writePool(name: string, report: SyncReport): Promise<void> {
    const status = this.ipam.poolStatus(name);
    if (!status) {
      this.writtenPools.delete(name);
      return;
    }
    const last = this.writtenPools.get(name);
    if (samePoolStatus(last, status)) return;
    if (status.conflicting && !last?.conflicting) {
      report.conflicts.push(`${name}: ${status.conditions.find((c) => c.status === 'True')?.message ?? 'conflicting'}`);
    }
    const stamped: PoolStatus = {
      ...status,
      conditions: status.conditions.map((c) => {
        const before = last?.conditions.find((x) => x.type === c.type);
        return { ...c, lastTransitionTime: before && before.status === c.status && before.lastTransitionTime ? before.lastTransitionTime : rfc3339(this.now()) };
      }),
    };
    try {
      await this.sink.writePoolStatus(name, stamped);
      this.writtenPools.set(name, stamped);
      report.poolsWritten++;
    } catch (err) {
      this.retryPools.add(name);
      report.errors.push(`pool ${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
