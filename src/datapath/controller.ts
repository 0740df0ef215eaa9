/**
 * The data-path controller: store changes → the frontends of the services
 * they touch (desired.ts) → DatapathSync (plan + maps). A change to one
 * Service or EndpointSlice costs only that service; the first pass, a
 * change of the node's addresses (NodePort frontends, local backends) and an
 * explicit resync recompute everything.
 *
 * It also keeps, per service, whether everything it asked for is in the
 * data path (`programmed`), tells the agent when that changes (conditions,
 * L2/BGP stop announcing what is not served), and keeps the id → label
 * tables metrics render from, versioned so a scrape never recomputes them.
 */
import type { EndpointSlice, ForwardingMode, Frontend, Kind, Service } from '../model/types.js';
import type { SnapshotOf } from '../store/store.js';
import type { AgentController, ChangeSet } from '../store/controller.js';
import { frontendsForService, serviceKeyOfSlice, slicesByService } from './desired.js';
import type { DatapathSync, SyncError, SyncResult } from './sync.js';
import type { ServiceProgramStatus } from './plan.js';
import { formatEndpoint } from '../model/cidr.js';

/** The kinds the data path reads: services and their endpoint slices (the node's addresses come from the agent). */
export type DatapathKind = Extract<Kind, 'Service' | 'EndpointSlice'>;
export const DATAPATH_KINDS: ReadonlySet<DatapathKind> = new Set<DatapathKind>(['Service', 'EndpointSlice']);

/** Target time of one batch of a large pass (ms), and the bounds of its size (services). */
const BATCH_MS = 8;
const MIN_BATCH = 8;
const MAX_BATCH = 2000;

function emptyResult(): SyncResult {
  return {
    frontendsWritten: 0, frontendsRemoved: 0, backendsAdded: 0, backendsRemoved: 0, tablesPublished: 0, backendAddressesAdded: [], backendAddressesRemoved: [],
    errors: [], services: new Set(),
  };
}

export interface DatapathControllerOptions {
  sync: DatapathSync;
  nodeName: string;
  isOurService: (svc: Service) => boolean;
  /** The node's addresses NodePort frontends answer on (read each pass; a change recomputes every service). */
  nodeAddresses: () => string[];
  /** --forwarding-mode: services without the annotation. */
  forwardingMode?: ForwardingMode;
  /** Every address of the node (backends there are delivered locally). */
  localAddresses: () => string[];
  /** A service's programmed state changed (undefined: it has no frontends any more). */
  onStatus?: (service: string, status: ServiceProgramStatus | undefined) => void;
  /** After a full pass: every backend's address, for the next-hop primer (called after the map writes). */
  onBackends?: (addresses: Iterable<string>) => void;
  /** After any other pass that added or removed backends: their addresses, once per backend. */
  onBackendChanges?: (added: readonly string[], removed: readonly string[]) => void;
  /** Ask for another pass soon (room was freed for objects refused before). */
  requestPass?: () => void;
  log: { info(msg: string, f?: Record<string, unknown>): void; error(msg: string, f?: Record<string, unknown>): void };
}

/** Metric labels by id; `version` moves whenever they may have changed. */
export interface DatapathLabelTable {
  version: number;
  frontends: Iterable<readonly [number, { service: string; frontend: string }]>;
  backends: Iterable<readonly [number, { backend: string }]>;
}

export class DatapathController implements AgentController<DatapathKind> {
  readonly name = 'datapath';
  readonly kinds = DATAPATH_KINDS;
  /** EndpointSlice key → the service it belongs to (to find the service again when a slice is deleted). */
  private readonly sliceOwner = new Map<string, string>();
  private readonly slicesOf = new Map<string, Set<string>>();
  private nodeAddressKey = '';
  private indexed = false;
  private readonly statuses = new Map<string, ServiceProgramStatus>();
  /** Problems already logged (object|message), so a pass logs only what is new. */
  private logged = new Set<string>();
  private version = 0;

  constructor(private readonly opts: DatapathControllerOptions) {}

  async reconcile(snap: SnapshotOf<DatapathKind>, changes?: ChangeSet): Promise<void> {
    const nodeAddresses = this.opts.nodeAddresses();
    const nodeKey = nodeAddresses.join(',');
    const full = !changes || changes.all || !this.indexed || nodeKey !== this.nodeAddressKey;
    this.nodeAddressKey = nodeKey;
    this.opts.sync.setLocalAddresses(this.opts.localAddresses());
    const frontendOpts = { nodeName: this.opts.nodeName, isOurService: this.opts.isOurService, nodeAddresses, ...(this.opts.forwardingMode ? { forwardingMode: this.opts.forwardingMode } : {}) };
    const total = emptyResult();
    const frontendsOf = (svc: Service | undefined, slices: () => readonly EndpointSlice[]): Frontend[] =>
      svc ? frontendsForService(svc, slices(), frontendOpts) : [];
    this.inFullPass = full;
    if (full) {
      this.reindex(snap);
      const bySvc = slicesByService(snap.endpointSlices.values());
      this.opts.sync.beginFull();
      await this.inBatches(snap.services.keys(), (key) => frontendsOf(snap.services.get(key), () => bySvc.get(key) ?? []), total);
      this.merge(total, await this.opts.sync.finishFullAsync());
    } else {
      const dirty = this.dirtyServices(snap, changes);
      if (dirty.size === 0 && !this.opts.sync.wantsRetry) return;
      const slicesOf = (key: string): EndpointSlice[] => {
        const out: EndpointSlice[] = [];
        for (const s of this.slicesOf.get(key) ?? []) {
          const slice = snap.endpointSlices.get(s);
          if (slice) out.push(slice);
        }
        return out;
      };
      if (dirty.size === 0) this.merge(total, await this.opts.sync.applyServicesAsync(new Map()));
      else await this.inBatches(dirty, (key) => frontendsOf(snap.services.get(key), () => slicesOf(key)), total);
    }
    this.report(total, full);
    // Removed tables cleared and spares published for the next change, in one outer update (after the report: off the edit's path).
    await this.opts.sync.maintainTables();
    if (this.opts.sync.wantsRetry) this.opts.requestPass?.();
  }

  /**
   * Applies services a batch at a time and yields to the event loop between
   * batches, so a start with 10,000 services never holds the loop (the
   * liveness stamp, lease renewals and scrapes keep running). Batches are
   * sized from the cost of the previous one, aiming at BATCH_MS each.
   */
  private async inBatches(keys: Iterable<string>, frontendsOf: (key: string) => Frontend[], total: SyncResult): Promise<void> {
    let batch = new Map<string, Frontend[]>();
    let size = this.batchSize;
    let computeMs = 0;
    const flush = async (): Promise<void> => {
      this.merge(total, await this.opts.sync.applyServicesAsync(batch));
      // The loop was held while the batch was computed, planned and written; not while a worker thread waited for the table publish.
      const perService = (computeMs + this.opts.sync.lastBusyMs) / Math.max(1, batch.size);
      size = Math.max(MIN_BATCH, Math.min(MAX_BATCH, Math.floor(BATCH_MS / Math.max(perService, 0.001))));
      this.batchSize = size;
      batch = new Map();
      computeMs = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    };
    for (const key of keys) {
      const t0 = performance.now();
      batch.set(key, frontendsOf(key));
      computeMs += performance.now() - t0;
      if (batch.size >= size) await flush();
    }
    if (batch.size > 0) await flush();
  }

  private batchSize = 64;
  private inFullPass = false;

  private merge(total: SyncResult, r: SyncResult): void {
    total.frontendsWritten += r.frontendsWritten;
    total.frontendsRemoved += r.frontendsRemoved;
    total.backendsAdded += r.backendsAdded;
    total.backendsRemoved += r.backendsRemoved;
    total.tablesPublished += r.tablesPublished;
    // A full pass hands the primer every backend instead; a start would otherwise copy 80,000 addresses here.
    if (!this.inFullPass) {
      for (const a of r.backendAddressesAdded) total.backendAddressesAdded.push(a);
      for (const a of r.backendAddressesRemoved) total.backendAddressesRemoved.push(a);
    }
    total.errors.push(...r.errors);
    for (const s of r.services) total.services.add(s);
  }

  /** Recompute everything on the next pass (e.g. after a write the kernel refused). */
  resync(): void {
    this.indexed = false;
  }

  private reindex(snap: SnapshotOf<DatapathKind>): void {
    this.sliceOwner.clear();
    this.slicesOf.clear();
    for (const [key, slice] of snap.endpointSlices) this.indexSlice(key, slice);
    this.indexed = true;
  }

  private indexSlice(key: string, slice: EndpointSlice | undefined): void {
    const before = this.sliceOwner.get(key);
    const after = slice ? serviceKeyOfSlice(slice) : undefined;
    if (before === after) return;
    if (before) {
      const set = this.slicesOf.get(before);
      set?.delete(key);
      if (set?.size === 0) this.slicesOf.delete(before);
      this.sliceOwner.delete(key);
    }
    if (after) {
      this.sliceOwner.set(key, after);
      let set = this.slicesOf.get(after);
      if (!set) this.slicesOf.set(after, (set = new Set()));
      set.add(key);
    }
  }

  /** Services touched by a set of changes: changed services, and the services of changed slices (before and after). */
  private dirtyServices(snap: SnapshotOf<DatapathKind>, changes: ChangeSet): Set<string> {
    const dirty = new Set<string>(changes.keys.get('Service') ?? []);
    for (const key of changes.keys.get('EndpointSlice') ?? []) {
      const before = this.sliceOwner.get(key);
      if (before) dirty.add(before);
      const slice = snap.endpointSlices.get(key);
      this.indexSlice(key, slice);
      if (slice) dirty.add(serviceKeyOfSlice(slice));
    }
    return dirty;
  }

  private report(result: SyncResult, full: boolean): void {
    const changed = result.frontendsWritten || result.frontendsRemoved || result.backendsAdded || result.backendsRemoved;
    if (changed) {
      this.version++;
      this.opts.log.info('data path updated', {
        frontendsWritten: result.frontendsWritten, frontendsRemoved: result.frontendsRemoved, backendsAdded: result.backendsAdded,
        backendsRemoved: result.backendsRemoved, tablesPublished: result.tablesPublished, services: result.services.size,
      });
    }
    if (full) this.opts.onBackends?.(this.backendAddresses());
    else if (result.backendAddressesAdded.length > 0 || result.backendAddressesRemoved.length > 0) {
      this.opts.onBackendChanges?.(result.backendAddressesAdded, result.backendAddressesRemoved);
    }
    this.logProblems(result.errors, full);
    for (const svc of result.services) {
      const st = this.opts.sync.status(svc);
      const prev = this.statuses.get(svc);
      if (st.frontends === 0 && st.problems.length === 0) {
        if (prev) {
          this.statuses.delete(svc);
          this.opts.onStatus?.(svc, undefined);
        }
        continue;
      }
      this.statuses.set(svc, st);
      if (!prev || !sameStatus(prev, st)) this.opts.onStatus?.(svc, st);
    }
  }

  /**
   * The neighbour primer learned where backends' routes go (after the maps
   * were written): DSR frontends with a backend behind a gateway are
   * reported now, not at the next pass.
   */
  offLinkBackendsChanged(offLink: ReadonlyMap<string, string>): void {
    for (const svc of this.opts.sync.setOffLinkBackends(offLink)) {
      const st = this.opts.sync.status(svc);
      const prev = this.statuses.get(svc);
      if (st.frontends === 0 && st.problems.length === 0) continue;
      this.statuses.set(svc, st);
      if (!prev || !sameStatus(prev, st)) this.opts.onStatus?.(svc, st);
    }
  }

  private *backendAddresses(): Iterable<string> {
    for (const b of this.opts.sync.backends.values()) if (b.id !== 0) yield b.address;
  }

  /** One line per new problem while there are few; a summary when a pass brings many (10,000 lines help nobody). */
  private logProblems(errors: SyncError[], full: boolean): void {
    const now = new Set(errors.map((e) => `${e.object}|${e.message}`));
    const fresh = errors.filter((e) => !this.logged.has(`${e.object}|${e.message}`));
    if (full) this.logged = now;
    else for (const k of now) this.logged.add(k);
    if (fresh.length === 0) return;
    for (const e of fresh.slice(0, 20)) {
      this.opts.log.error('data path refused an object; everything else is unchanged', { object: e.object, service: e.service, map: e.map, error: e.message });
    }
    if (fresh.length > 20) {
      const byMap = new Map<string, number>();
      for (const e of fresh) byMap.set(e.map ?? 'none', (byMap.get(e.map ?? 'none') ?? 0) + 1);
      this.opts.log.error('data path refused more objects (not logged one by one)', { more: fresh.length - 20, ...Object.fromEntries([...byMap].map(([m, n]) => [`map_${m}`, n])) });
    }
  }

  /**
   * Is every frontend of the service in the data path? A service this
   * controller has not programmed yet is not (L2 and BGP run after it in a
   * pass, but may see a service added while it was busy).
   */
  isProgrammed(service: string): boolean {
    const st = this.statuses.get(service);
    return st !== undefined && st.programmed >= st.frontends;
  }

  status(service: string): ServiceProgramStatus | undefined {
    return this.statuses.get(service);
  }

  /** Services not fully in the data path, with why. */
  notProgrammed(): Map<string, ServiceProgramStatus> {
    const out = new Map<string, ServiceProgramStatus>();
    for (const [svc, st] of this.statuses) if (st.programmed < st.frontends) out.set(svc, st);
    return out;
  }

  /**
   * Labels for metrics by frontend/backend id, made while the scrape walks
   * them from the programmed objects themselves: a table kept between
   * scrapes would be 65,000 objects and strings at 10,000 services, and the
   * renderer keeps its own compact copy per version anyway.
   */
  labelTable(): DatapathLabelTable {
    const { frontends, backends } = this.opts.sync;
    return {
      version: this.version,
      frontends: (function* () {
        for (const f of frontends.values()) yield [f.id, { service: f.service, frontend: `${formatEndpoint(f.address, f.port)}/${f.protocol}` }] as const;
      })(),
      backends: (function* () {
        for (const b of backends.values()) if (b.id !== 0) yield [b.id, { backend: formatEndpoint(b.address, b.port) }] as const;
      })(),
    };
  }

  stop(): void {}
}

function sameStatus(a: ServiceProgramStatus, b: ServiceProgramStatus): boolean {
  return a.frontends === b.frontends && a.programmed === b.programmed && a.problems.length === b.problems.length &&
    a.problems.every((p, i) => p.reason === b.problems[i]!.reason && p.message === b.problems[i]!.message && p.object === b.problems[i]!.object);
}
