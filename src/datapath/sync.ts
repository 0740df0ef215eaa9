/**
 * Keeps the data path's maps equal to the desired frontends: the I/O half
 * of plan.ts.
 *
 *   const sync = new DatapathSync(addon, loaded.maps, { maglev: { max: 65521 } });
 *   sync.readState();                        // re-adopt what the (pinned) maps hold
 *   sync.apply(frontends);                   // everything (start, resync, tests)
 *   sync.applyServices(new Map([[svc, fs]])); // one service changed
 *
 * A pass writes in an order where no packet sees a half state: backends
 * first; then new Maglev tables (each a fresh inner array, filled, then all
 * of a pass published with one batched update of the outer map — each
 * update of a map-in-map from userspace waits an RCU grace period, ~12 ms
 * here, and a batch waits once); source ranges and affinity members; the
 * frontend entries (one batch: a frontend moves to its new table by one
 * atomic value update); then removals (entries, then tables, then backends).
 *
 * Writes the kernel refuses are reported per object and retried by a later
 * pass; everything else in the pass still goes in.
 */
import { BpfError, type BpfMap, type NativeAddon } from '../native/libbpf.js';
import {
  decodeBackend, decodeFrontendKey, decodeFrontendValue, decodeRuntime, decodeSourceRangeKey, decodeVipKey, encodeBackend, encodeFrontendKey, encodeFrontendValue,
  encodeIfSnat, encodeLiveness, encodeMaglevTable, encodeMemberKey, encodeResponderKey, encodeResponderValue, encodeRuntime, encodeVipKey, isFreeBackendSlot, maglevTableElements,
  SIZE, u32Key, type FrontendValue, type Runtime,
} from './abi.js';
import {
  DatapathPlanner, type AdoptedState, type DatapathOps, type ProgrammedBackend, type ProgrammedFrontend, type ServiceProgramStatus,
} from './plan.js';
import { DEFAULT_MAGLEV_MAX_M, type MaglevSizing } from './maglev.js';
import type { DatapathMaps } from './loader.js';
import type { Frontend } from '../model/types.js';

export { frontendKeyString, backendKeyString, DEFAULT_AFFINITY_TIMEOUT_S } from './plan.js';

/** BPF_F_INNER_MAP: inner tables of any size; BPF_F_MMAPABLE: filled by one memcpy (bpf/lib/maps.h). */
const BPF_F_INNER_MAP = 1 << 12;
const BPF_F_MMAPABLE = 1 << 10;
const TABLE_FLAGS = BPF_F_INNER_MAP | BPF_F_MMAPABLE;
/** Spare tables kept per size in use, and how long a size counts as in use after it was last needed. */
const SPARES_PER_SIZE = 4;
const SPARE_SIZE_IDLE_MS = 10 * 60_000;

// ---------------------------------------------------------------- the view (what is in the maps)

export type ViewFrontend = ProgrammedFrontend;

export interface ViewBackend {
  id: number;
  address: string;
  port: number;
  /** No frontend lists it as active: keeps its flows, takes no new ones (affinity included). */
  draining?: boolean;
  /** An address of this node: the data path hands its flows to the local stack. */
  local?: boolean;
}

export interface View {
  frontends: ReadonlyMap<string, ViewFrontend>;
  backends: ReadonlyMap<string, ViewBackend>;
  /** ph_src_ranges keys (hex) by frontend id. */
  sourceRanges: Map<number, Set<string>>;
  /** ph_fe_members: backend ids that may take new flows, by frontend id (affinity frontends only). */
  members: Map<number, Set<number>>;
}

export interface SyncError {
  /** The frontend (`TCP/VIP/port`) or backend it concerns, and the owning service when known. */
  object: string;
  service?: string;
  /** Set when a map is full. */
  map?: string;
  message: string;
}

export interface SyncResult {
  frontendsWritten: number;
  frontendsRemoved: number;
  backendsAdded: number;
  backendsRemoved: number;
  tablesPublished: number;
  /** Addresses of the backends added and removed, once per backend (the next-hop primer follows them). */
  backendAddressesAdded: string[];
  backendAddressesRemoved: string[];
  /** Problems of the services this pass touched (blocking ones and warnings). */
  errors: SyncError[];
  /** Services whose programmed status may have changed. */
  services: Set<string>;
}

export interface SyncOptions {
  /** How Maglev tables are sized (default: by backend count, at most 65521 slots). */
  maglev?: MaglevSizing;
}

function isMapFull(err: unknown): boolean {
  return err instanceof BpfError && (err.code === 'E2BIG' || err.code === 'ENOSPC' || err.code === 'ENOMEM');
}

/** Syscalls between two yields while the maps are read back on a restart (~10 ms). */
const READ_BACK_SLICE = 4096;

export class DatapathSync {
  private planner: DatapathPlanner;
  /** Refusals because a map (or id space) was full, by map name: counted once per object refused. */
  readonly mapFull: Record<string, number> = {};
  private readonly refused = new Set<string>();
  private runtime: Runtime = { portMin: 0, portMax: 0 };
  private responderEntries = 0;

  constructor(
    private readonly addon: NativeAddon,
    private readonly maps: DatapathMaps,
    private readonly opts: SyncOptions = {},
  ) {
    this.planner = this.newPlanner();
  }

  private newPlanner(): DatapathPlanner {
    const planner = new DatapathPlanner({
      maglev: this.opts.maglev ?? { max: DEFAULT_MAGLEV_MAX_M },
      maxFrontends: this.maps.frontends.maxEntries,
      maxBackends: this.maps.backends.maxEntries,
      maxTables: this.maps.maglev.maxEntries,
    });
    // Spares of an earlier planner are strays to this one (a restart): drop them, the full pass clears their slots.
    for (const list of this.spares.values()) for (const s of list) s.map.close();
    this.spares.clear();
    planner.useSpares({ take: (m) => this.takeSpare(m) });
    return planner;
  }

  // ------------------------------------------------------------ spare tables

  /** Published, empty tables by size, ready to be filled in place (see plan.ts SpareTables). */
  private readonly spares = new Map<number, Array<{ id: number; map: BpfMap }>>();
  /** Spares taken by a plan and not filled yet, by id. */
  private readonly takenSpares = new Map<number, BpfMap>();
  /** When each table size was last needed: sizes in use keep spares. */
  private readonly sizeLastUsed = new Map<number, number>();

  private takeSpare(m: number): number | undefined {
    this.sizeLastUsed.set(m, Date.now());
    const s = this.spares.get(m)?.pop();
    if (!s) return undefined;
    this.takenSpares.set(s.id, s.map);
    return s.id;
  }

  /**
   * Between passes, off the critical path: clear the slots of tables no
   * frontend uses any more, and publish SPARES_PER_SIZE empty tables for
   * each size needed lately, all in one outer update on a worker thread
   * (one RCU grace period), so the next change fills a table in place.
   */
  async maintainTables(): Promise<void> {
    const keys: Buffer[] = [];
    const fds: Buffer[] = [];
    const created: Array<{ id: number; m: number; map: BpfMap }> = [];
    const now = Date.now();
    for (const [m, at] of this.sizeLastUsed) {
      if (now - at > SPARE_SIZE_IDLE_MS) {
        this.sizeLastUsed.delete(m);
        continue;
      }
      const have = this.spares.get(m)?.length ?? 0;
      for (let i = have; i < SPARES_PER_SIZE; i++) {
        const id = this.planner.reserveTableId();
        if (id === undefined) break;
        try {
          const map = this.addon.createMap('array', 4, 8, maglevTableElements(m), { name: `ph_mg_${id}`.slice(0, 15), flags: TABLE_FLAGS });
          created.push({ id, m, map });
          keys.push(u32Key(id));
          fds.push(u32Key(map.fd));
          this.pendingTableRemovals.delete(id);
        } catch {
          this.planner.releaseTableId(id);
          break;
        }
      }
    }
    this.takeTableRemovals(keys, fds);
    if (keys.length === 0) return;
    let done = 0;
    try {
      done = await this.maps.maglev.updateBatchAsync(Buffer.concat(keys), Buffer.concat(fds), keys.length);
    } catch {
      done = 0;
    }
    for (let i = 0; i < created.length; i++) {
      const c = created[i]!;
      if (i < done) {
        const list = this.spares.get(c.m) ?? [];
        list.push({ id: c.id, map: c.map });
        this.spares.set(c.m, list);
      } else {
        c.map.close();
        this.planner.releaseTableId(c.id);
      }
    }
    for (let i = created.length; i < keys.length; i++) if (i >= done) this.pendingTableRemovals.add(keys[i]!.readUInt32LE(0));
  }


  /** Re-adopt what the maps hold (a restart): frontends, backends, tables, ranges, members. Apply everything next. */
  readState(): View {
    const steps = this.readStateSteps();
    let next = steps.next();
    while (!next.done) next = steps.next();
    return next.value;
  }

  /** readState, yielding to the event loop between pieces: at 10,000 services reading the maps back holds it ~0.5 s. */
  async readStateAsync(): Promise<View> {
    const steps = this.readStateSteps();
    let next = steps.next();
    while (!next.done) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      next = steps.next();
    }
    return next.value;
  }

  /** readState's work; yields where a caller may let the event loop run. */
  private *readStateSteps(): Generator<void, View> {
    const backends: AdoptedState['backends'] = [];
    const rawBackends = this.maps.backends.entriesRaw();
    for (let i = 0; i < rawBackends.count; i++) {
      const v = rawBackends.values.subarray(i * SIZE.backend, (i + 1) * SIZE.backend);
      if (isFreeBackendSlot(v)) continue;
      backends.push({ id: rawBackends.keys.readUInt32LE(i * 4), ...decodeBackend(v) });
    }
    const frontends: AdoptedState['frontends'] = [];
    yield;
    for (const [k, v] of this.maps.frontends.entries()) frontends.push({ ...decodeFrontendKey(k), value: decodeFrontendValue(v) });
    yield;
    const sourceRanges = new Map<number, Set<string>>();
    for (const k of this.maps.sourceRanges.keys()) {
      const id = decodeSourceRangeKey(k).frontendId;
      const set = sourceRanges.get(id) ?? new Set<string>();
      set.add(k.toString('hex'));
      sourceRanges.set(id, set);
    }
    const members = new Map<number, Set<number>>();
    for (const k of this.maps.members.keys()) {
      const id = k.readUInt32LE(0);
      const set = members.get(id) ?? new Set<number>();
      set.add(k.readUInt32LE(4));
      members.set(id, set);
    }
    // An array of maps has every index as a key; only the slots holding a table count. One batch lookup returns
    // just those (the kernel skips empty slots); a kernel without it gets one lookup per slot (~1 s at 131,072).
    const tables: number[] = [];
    let published: { keys: Buffer; count: number } | undefined;
    try {
      published = this.maps.maglev.entriesRaw();
    } catch {
      published = undefined;
    }
    if (published) {
      for (let i = 0; i < published.count; i++) tables.push(published.keys.readUInt32LE(i * 4));
    } else {
      const slots = this.maps.maglev.keys();
      for (let i = 0; i < slots.length; i++) {
        if (i % READ_BACK_SLICE === READ_BACK_SLICE - 1) yield;
        if (this.maps.maglev.lookup(slots[i]!) !== null) tables.push(slots[i]!.readUInt32LE(0));
      }
    }
    yield;
    const vips = this.maps.vips.keys().map((k) => decodeVipKey(k));
    this.planner = this.newPlanner();
    this.planner.adopt({ frontends, backends, tables, sourceRanges, members, vips }, (id, m) => this.readTable(id, m));
    this.responderEntries = this.maps.responder.keys().length;
    const rt = this.maps.runtime.lookup(u32Key(0));
    if (rt) this.runtime = decodeRuntimeSafe(rt);
    return this.current();
  }

  /** The slots of a published table (undefined when it is not there or has another size). */
  readTable(tableId: number, m: number): Uint32Array | undefined {
    const innerId = this.maps.maglev.lookup(u32Key(tableId));
    if (!innerId) return undefined;
    const inner = this.addon.mapFromId(innerId.readUInt32LE(0));
    try {
      if (inner.maxEntries !== maglevTableElements(m) || inner.valueSize !== 8) return undefined;
      const raw = inner.entriesRaw();
      const out = new Uint32Array(m);
      for (let i = 0; i < raw.count; i++) {
        const e = raw.keys.readUInt32LE(i * 4);
        const lo = raw.values.readUInt32LE(i * 8);
        const hi = raw.values.readUInt32LE(i * 8 + 4);
        if (2 * e < m) out[2 * e] = lo;
        if (2 * e + 1 < m) out[2 * e + 1] = hi;
      }
      return out;
    } finally {
      inner.close();
    }
  }

  /** The Maglev slots a frontend's packets are balanced with, read back from the kernel. */
  frontendTable(key: string): Uint32Array | undefined {
    const f = this.planner.frontends.get(key);
    if (!f || !f.value.table) return undefined;
    return this.readTable(f.value.table, f.value.tableSize);
  }

  /** What is programmed (ids for metrics labels, `pharos service list`). */
  current(): View {
    const backends = new Map<string, ViewBackend>();
    for (const [k, b] of this.planner.backends) if (b.id !== 0) backends.set(k, viewBackend(b));
    const sourceRanges = new Map<number, Set<string>>();
    const members = new Map<number, Set<number>>();
    for (const f of this.planner.frontends.values()) {
      if (f.sourceRangeKeys.size > 0) sourceRanges.set(f.id, f.sourceRangeKeys);
      if (f.memberIds.size > 0) members.set(f.id, f.memberIds);
    }
    return { frontends: this.planner.frontends, backends, sourceRanges, members };
  }

  /** Programmed frontends by key (no copy). */
  get frontends(): ReadonlyMap<string, ProgrammedFrontend> {
    return this.planner.frontends;
  }

  /** Backends by `address|port` (no copy; id 0 = waiting for a free slot). */
  get backends(): ReadonlyMap<string, ProgrammedBackend> {
    return this.planner.backends;
  }

  /** Room was freed for something refused before: another pass would place it. */
  get wantsRetry(): boolean {
    return this.planner.wantsRetry;
  }

  /** How many frontends services ask for (programmed or not). */
  claimedFrontends(): number {
    return this.planner.claimedFrontends();
  }

  /** Every frontend services ask for, with what is programmed for it. */
  desired(): Iterable<{ frontend: Frontend; programmed?: ProgrammedFrontend }> {
    return this.planner.desired();
  }

  /** Backends behind a gateway (address → gateway). Returns: the services whose status may have changed. */
  setOffLinkBackends(offLink: ReadonlyMap<string, string>): string[] {
    return this.planner.setOffLinkBackends(offLink);
  }

  status(service: string): ServiceProgramStatus {
    return this.planner.status(service);
  }

  notProgrammed(): Map<string, ServiceProgramStatus> {
    return this.planner.notProgrammed();
  }

  /**
   * Kernel memory of the Maglev tables (inner arrays, not in the outer map's
   * own memlock): M/2 8-byte elements, page-aligned because the arrays are
   * mmapable, plus the map itself; spares included.
   */
  tableMemory(): number {
    const page = 4096;
    const bytesOf = (m: number): number => Math.ceil((maglevTableElements(m) * 8) / page) * page + page;
    let total = 0;
    for (const [m, n] of this.planner.tableSizes()) total += n * bytesOf(m);
    for (const [m, list] of this.spares) total += list.length * bytesOf(m);
    return total;
  }

  /** Entries of the maps sync fills, as written (for metrics: no map walk). */
  mapEntries(): Map<string, number> {
    const out = this.planner.entries();
    out.set('ph_responder', this.responderEntries);
    return out;
  }

  /** Entries in use vs capacity of the maps sync fills (conntrack pressure shows as LRU evictions, not as refusals). */
  pressure(): Record<'ph_frontends' | 'ph_backends' | 'ph_maglev' | 'ph_responder', { used: number; max: number }> {
    const u = this.planner.usage();
    return {
      ph_frontends: { used: u.frontends, max: u.frontendCapacity },
      ph_backends: { used: u.backends, max: u.backendCapacity },
      ph_maglev: { used: u.tables, max: u.tableCapacity },
      ph_responder: { used: this.responderEntries, max: this.maps.responder.maxEntries },
    };
  }

  /** Make the maps hold exactly `desired` (every service). */
  apply(desired: readonly Frontend[]): SyncResult {
    const byService = new Map<string, Frontend[]>();
    for (const f of desired) {
      const list = byService.get(f.service);
      if (list) list.push(f);
      else byService.set(f.service, [f]);
    }
    return this.run(this.planner.plan(byService, { full: true }));
  }

  /** A full pass in pieces (plan.ts beginFull): applyServices per batch, then finishFull removes what no batch claimed. */
  beginFull(): void {
    this.planner.beginFull();
  }

  finishFull(): SyncResult {
    return this.run(this.planner.finishFull());
  }

  /** finishFull, and applyServicesAsync below: the table publish runs on a worker thread. */
  finishFullAsync(): Promise<SyncResult> {
    const t0 = performance.now();
    return this.runAsync(this.planner.finishFull(), performance.now() - t0);
  }

  applyServicesAsync(changes: ReadonlyMap<string, readonly Frontend[]>): Promise<SyncResult> {
    const t0 = performance.now();
    return this.runAsync(this.planner.plan(changes), performance.now() - t0);
  }

  private flushTableRemovalsSync(): void {
    const keys: Buffer[] = [];
    const fds: Buffer[] = [];
    this.takeTableRemovals(keys, fds);
    if (keys.length === 0) return;
    try {
      this.maps.maglev.updateBatch(Buffer.concat(keys), Buffer.concat(fds), keys.length);
    } catch {
      for (const k of keys) this.pendingTableRemovals.add(k.readUInt32LE(0));
    }
  }

  /**
   * Appends the pending removals to an outer update, except ids it
   * republishes; returns how many. A slot is cleared by pointing it at a
   * one-element placeholder table: an array of maps has no batched delete,
   * and each single delete waits an RCU grace period (~10 ms). Until then a
   * removed table only costs kernel memory: no frontend points at it.
   */
  private takeTableRemovals(keys: Buffer[], fds: Buffer[]): number {
    if (this.pendingTableRemovals.size === 0) return 0;
    const publishing = new Set(keys.map((k) => k.readUInt32LE(0)));
    this.placeholder ??= this.addon.createMap('array', 4, 8, 1, { name: 'ph_mg_free', flags: TABLE_FLAGS });
    let n = 0;
    for (const id of this.pendingTableRemovals) {
      if (publishing.has(id)) continue;
      keys.push(u32Key(id));
      fds.push(u32Key(this.placeholder.fd));
      n++;
    }
    this.pendingTableRemovals.clear();
    return n;
  }

  private readonly pendingTableRemovals = new Set<number>();
  private placeholder?: BpfMap;

  /** Apply the frontends of the given services (an empty list removes a service); others are untouched. */
  applyServices(changes: ReadonlyMap<string, readonly Frontend[]>): SyncResult {
    return this.run(this.planner.plan(changes));
  }

  /**
   * This node's own addresses: backends there are handed to the local stack
   * (the FIB says "not forwarded" both for a local address and for no route
   * at all; only these count as local, the rest as fib_fail). Rewrites the
   * backends whose flag changes.
   */
  setLocalAddresses(addresses: Iterable<string>): void {
    if (!this.planner.setLocalAddresses(new Set(addresses))) return;
    this.run(this.planner.relocalize());
  }

  // ------------------------------------------------------------ applying a plan

  /** Applies a plan with blocking calls (tests, benches, a full apply). */
  private run(ops: DatapathOps): SyncResult {
    const steps = this.execute(ops);
    let next = steps.next();
    while (!next.done) {
      const { keys, values, count } = next.value;
      let written: number | Error;
      try {
        written = this.maps.maglev.updateBatch(keys, values, count);
      } catch (err) {
        written = err as Error;
      }
      next = steps.next(written);
    }
    this.flushTableRemovalsSync();
    return next.value;
  }

  /**
   * Applies a plan without holding the event loop while the kernel publishes
   * tables (an RCU grace period). `planMs`: what making the plan held the
   * loop (Maglev tables built, adopted ones read back after a restart) —
   * counted in lastBusyMs, which sizes the next batch: left out, batches
   * grew to 2,000 services and held the loop 150-360 ms each on a restart.
   */
  private async runAsync(ops: DatapathOps, planMs: number): Promise<SyncResult> {
    const steps = this.execute(ops);
    let t0 = performance.now();
    let next = steps.next();
    let busy = planMs;
    while (!next.done) {
      busy += performance.now() - t0;
      const { keys, values, count } = next.value;
      let written: number | Error;
      try {
        written = await this.maps.maglev.updateBatchAsync(keys, values, count);
      } catch (err) {
        written = err as Error;
      }
      t0 = performance.now();
      next = steps.next(written);
    }
    this.lastBusyMs = busy + performance.now() - t0;
    return next.value;
  }

  /** Time the last async pass held the event loop (ms): planning and writing, not the publish it waited for on a worker thread. */
  lastBusyMs = 0;

  /**
   * A plan's writes in order. The one write that waits on the kernel — the
   * batch that publishes new tables (and clears removed ones) in ph_maglev —
   * is yielded to the driver, which performs it blocking or on a worker
   * thread and resumes with how many entries went in (or the error).
   */
  private *execute(ops: DatapathOps): Generator<{ keys: Buffer; values: Buffer; count: number }, SyncResult, number | Error> {
    const result: SyncResult = {
      frontendsWritten: 0, frontendsRemoved: 0, backendsAdded: 0, backendsRemoved: 0, tablesPublished: 0,
      backendAddressesAdded: ops.addBackends.map((b) => b.address), backendAddressesRemoved: ops.removedBackendAddresses, errors: [], services: ops.services,
    };
    const failed = (key: string, map: string, err: unknown): void => {
      const message = isMapFull(err) ? `map ${map} is full: ${key} not written` : `writing ${key} to ${map}: ${(err as Error).message}`;
      this.planner.writeFailed(key, message, map);
    };

    // 1. Backends, their counters and cached next hop zeroed first (an id may have served another backend).
    if (ops.addBackends.length > 0) {
      const ids = ops.addBackends.map((b) => b.id);
      this.zeroBatch(this.maps.backendNextHop, ids);
      this.zeroBatch(this.maps.backendStats, ids);
      result.backendsAdded += this.writeBatch(this.maps.backends, ids.map(u32Key), ops.addBackends.map((b) => encodeBackend(b)),
        (i, err) => this.noteRefusal(`backend ${ops.addBackends[i]!.address}|${ops.addBackends[i]!.port}`, 'ph_backends', err));
    }
    if (ops.updateBackends.length > 0) {
      this.writeBatch(this.maps.backends, ops.updateBackends.map((b) => u32Key(b.id)), ops.updateBackends.map((b) => encodeBackend(b)),
        (i, err) => this.noteRefusal(`backend ${ops.updateBackends[i]!.address}|${ops.updateBackends[i]!.port}`, 'ph_backends', err));
    }

    // 2. Tables: each built in a fresh inner array, then all of them published with one outer update
    //    (tables removed by earlier passes are cleared in the same update).
    const failedTables = new Set<number>();
    const keys: Buffer[] = [];
    const fds: Buffer[] = [];
    const inners: BpfMap[] = [];
    for (const t of ops.addTables) {
      const spare = t.spare ? this.takenSpares.get(t.id) : undefined;
      if (spare) {
        // Published already and referenced by no frontend until this pass writes one: fill it in place.
        this.takenSpares.delete(t.id);
        try {
          spare.writeMmapped(encodeMaglevTable(t.slots));
          result.tablesPublished++;
        } catch (err) {
          failedTables.add(t.id);
          this.planner.tableFailed(t.id);
          this.noteRefusal(`Maglev table ${t.id}`, 'ph_maglev', err);
        } finally {
          spare.close();
        }
        continue;
      }
      try {
        const n = maglevTableElements(t.m);
        const inner = this.addon.createMap('array', 4, 8, n, { name: `ph_mg_${t.id}`.slice(0, 15), flags: TABLE_FLAGS });
        inners.push(inner);
        inner.writeMmapped(encodeMaglevTable(t.slots));
        keys.push(u32Key(t.id));
        fds.push(u32Key(inner.fd));
        this.pendingTableRemovals.delete(t.id);
      } catch (err) {
        failedTables.add(t.id);
        this.planner.tableFailed(t.id);
        this.noteRefusal(`Maglev table ${t.id}`, 'ph_maglev', err);
      }
    }
    const publishing = keys.length;
    this.takeTableRemovals(keys, fds);
    if (keys.length > 0) {
      const answer = yield { keys: Buffer.concat(keys), values: Buffer.concat(fds), count: keys.length };
      const done = answer instanceof Error ? 0 : answer;
      // A batch stops at its first failure: the tables after it are not in; removals not done are tried again later.
      for (let i = done; i < keys.length; i++) {
        const id = keys[i]!.readUInt32LE(0);
        if (i < publishing) {
          failedTables.add(id);
          this.planner.tableFailed(id);
          this.noteRefusal(`Maglev table ${id}`, 'ph_maglev', answer instanceof Error ? answer : new BpfError('not published', 5, 'EIO'));
        } else {
          this.pendingTableRemovals.add(id);
        }
      }
      result.tablesPublished += Math.min(done, publishing);
    }
    for (const inner of inners) inner.close(); // the outer map holds its own reference

    // 3. Source ranges and affinity members before the entries that rely on them (a new range never drops a packet it admits).
    for (const k of ops.addSourceRanges) {
      try {
        this.maps.sourceRanges.update(k, u32Key(1));
      } catch (err) {
        this.noteRefusal(`source range ${k.toString('hex')}`, 'ph_src_ranges', err);
      }
    }
    for (const [fid, bid] of ops.addMembers) {
      try {
        this.maps.members.update(encodeMemberKey(fid, bid), u32Key(1));
      } catch (err) {
        this.noteRefusal(`member ${fid}/${bid}`, 'ph_fe_members', err);
      }
    }

    // 4. Frontend entries (counters of new ids zeroed first), skipping those whose new table did not make it.
    this.zeroBatch(this.maps.frontendStats, ops.newFrontendIds);
    const writes = ops.writeFrontends.filter((f) => {
      if (!failedTables.has(f.value.table)) return true;
      this.planner.writeFailed(f.key, `its Maglev table could not be published; ${f.key} keeps its previous state`, 'ph_maglev');
      return false;
    });
    result.frontendsWritten += this.writeBatch(this.maps.frontends, writes.map((f) => encodeFrontendKey(f)), writes.map((f) => encodeFrontendValue(f.value)),
      (i, err) => failed(writes[i]!.key, 'ph_frontends', err));

    // 5. Removals: entries (packets stop matching), then what only they used.
    if (ops.removeFrontends.length > 0) {
      this.deleteBatch(this.maps.frontends, ops.removeFrontends.map((f) => encodeFrontendKey(f)));
      result.frontendsRemoved += ops.removeFrontends.length;
    }
    for (const k of ops.removeSourceRanges) this.maps.sourceRanges.delete(k);
    for (const [fid, bid] of ops.removeMembers) this.maps.members.delete(encodeMemberKey(fid, bid));
    // Tables no frontend uses any more are cleared by a later outer update (the next pass's, or flushTableRemovals).
    for (const id of ops.removeTables) this.pendingTableRemovals.add(id);
    if (ops.removeBackends.length > 0) {
      // ph_backends is an array: a removed backend is a zeroed slot.
      this.writeBatch(this.maps.backends, ops.removeBackends.map(u32Key), ops.removeBackends.map(() => Buffer.alloc(SIZE.backend)), () => undefined);
      result.backendsRemoved += ops.removeBackends.length;
    }

    // 6. Addresses answered for ICMP echo.
    for (const a of ops.addVips) {
      try {
        this.maps.vips.update(encodeVipKey(a), u32Key(1));
      } catch {
        // A full map only costs echo replies (the kernel may still answer where the address is local).
      }
    }
    for (const a of ops.removeVips) this.maps.vips.delete(encodeVipKey(a));

    for (const svc of ops.services) {
      for (const p of this.planner.status(svc).problems) {
        result.errors.push({ object: p.object, service: p.service, ...(p.map ? { map: p.map } : {}), message: p.message });
        if (p.map && p.blocking) this.noteRefusal(`${p.service} ${p.object}`, p.map);
      }
    }
    return result;
  }

  /** Counts an object refused for lack of room once (not once per pass), for pharos_bpf_map_full_total. */
  private noteRefusal(object: string, map: string, err?: unknown): void {
    if (err !== undefined && !isMapFull(err)) return;
    const key = `${map}\0${object}`;
    if (this.refused.has(key)) return;
    this.refused.add(key);
    this.mapFull[map] = (this.mapFull[map] ?? 0) + 1;
  }

  /** One batched update; the entries it could not write are retried one by one to name the failing one. Returns how many were written. */
  private writeBatch(map: BpfMap, keys: Buffer[], values: Buffer[], onError: (index: number, err: unknown) => void): number {
    if (keys.length === 0) return 0;
    let done = 0;
    try {
      done = map.updateBatch(Buffer.concat(keys), Buffer.concat(values), keys.length);
    } catch {
      done = 0;
    }
    let written = done;
    for (let i = done; i < keys.length; i++) {
      try {
        map.update(keys[i]!, values[i]!);
        written++;
      } catch (err) {
        onError(i, err);
      }
    }
    return written;
  }

  private deleteBatch(map: BpfMap, keys: Buffer[]): void {
    let done = 0;
    try {
      done = map.deleteBatch(Buffer.concat(keys), keys.length);
    } catch {
      done = 0;
    }
    for (let i = done; i < keys.length; i++) map.delete(keys[i]!);
  }

  private zeroBatch(map: BpfMap, ids: number[]): void {
    if (ids.length === 0) return;
    const zero = Buffer.alloc(map.valueBufferSize);
    this.writeBatch(map, ids.map(u32Key), ids.map(() => zero), () => undefined);
  }

  // ---------------------------------------------------------------- node-wide state and responder

  /** SNAT addresses and port range (keep them outside net.ipv4.ip_local_port_range). */
  setNodeConfig(c: { snatV4?: string; snatV6?: string; portMin: number; portMax: number }): void {
    if (!(c.portMin >= 1 && c.portMax <= 65535 && c.portMin <= c.portMax)) {
      throw new RangeError(`SNAT port range ${c.portMin}-${c.portMax} is invalid`);
    }
    const { snatV4, snatV6, ...ports } = c;
    this.runtime = { ...ports, ...(snatV4 ? { snatV4 } : {}), ...(snatV6 ? { snatV6 } : {}) };
    this.maps.runtime.update(u32Key(0), encodeRuntime(this.runtime));
  }

  /** Each egress interface's own SNAT source (src/datapath/snat.ts); interfaces left out lose theirs. */
  setInterfaceSnat(perInterface: ReadonlyMap<number, { v4?: string; v6?: string }>): void {
    for (const key of this.maps.ifSnat.keys()) if (!perInterface.has(key.readUInt32LE(0))) this.maps.ifSnat.delete(key);
    for (const [ifindex, a] of perInterface) this.maps.ifSnat.update(u32Key(ifindex), encodeIfSnat(a));
  }

  /** Stamp the agent's liveness (CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads); ARP/NDP answers need it fresh. */
  touchLiveness(nowNs: bigint = process.hrtime.bigint()): void {
    this.maps.liveness.update(u32Key(0), encodeLiveness(nowNs));
  }

  /** Answer ARP/NS for `address` on `ifindex` with `mac`. */
  setResponder(address: string, ifindex: number, mac: string): void {
    const key = encodeResponderKey({ address, ifindex });
    const had = this.maps.responder.lookup(key) !== null;
    this.maps.responder.update(key, encodeResponderValue(mac));
    if (!had) this.responderEntries++;
  }

  deleteResponder(address: string, ifindex: number): boolean {
    const gone = this.maps.responder.delete(encodeResponderKey({ address, ifindex }));
    if (gone) this.responderEntries = Math.max(0, this.responderEntries - 1);
    return gone;
  }
}

function viewBackend(b: ProgrammedBackend): ViewBackend {
  return { id: b.id, address: b.address, port: b.port, ...(b.draining ? { draining: true } : {}), ...(b.local ? { local: true } : {}) };
}

function decodeRuntimeSafe(b: Buffer): Runtime {
  try {
    return decodeRuntime(b.subarray(0, SIZE.runtime));
  } catch {
    return { portMin: 0, portMax: 0 };
  }
}

export type { FrontendValue };
