/**
 * Keeps the data path's maps equal to the desired frontends.
 *
 *   const sync = new DatapathSync(addon, loaded.maps, { maglevM: loaded.config.maglevM });
 *   sync.readState();                 // rebuild the view from the (possibly re-adopted) maps
 *   const result = sync.apply(frontends);
 *
 * `planSync` is the pure part (desired vs current view → operations);
 * `apply` performs them in an order where no packet sees a half state:
 * backends first, then Maglev tables (each a fresh inner array, filled, then
 * swapped in with one outer-map update), then frontend entries, then removals.
 * Ids are stable: a frontend or backend keeps its id for as long as it
 * exists, and ids are reused only after the whole id space went round, so a
 * stale conntrack entry never lands on an unrelated new backend quickly.
 */
import { BpfError, type BpfMap, type NativeAddon } from './libbpf.js';
import {
  decodeBackend, decodeFrontendKey, decodeRuntime, decodeFrontendValue, encodeBackend, encodeFrontendKey, encodeFrontendValue, encodeResponderKey,
  encodeResponderValue, encodeRuntime, encodeSourceRangeKey, decodeSourceRangeKey, encodeMemberKey, encodeVipKey, familyOf, u32Key, FE_AFFINITY, FE_LOCAL_ONLY,
  FE_RESET_ON_REMOVE, FE_SOURCE_RANGES, SIZE, type FrontendValue, type Runtime,
} from './abi.js';
import { buildMaglevTable, MaglevError } from './maglev.js';
import type { DatapathMaps } from './loader.js';
import type { Frontend } from '../model/types.js';

/** BPF_F_INNER_MAP: inner tables of any size (bpf/lib/maps.h). */
const BPF_F_INNER_MAP = 1 << 12;

/** Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds. */
export const DEFAULT_AFFINITY_TIMEOUT_S = 10800;

export function frontendKeyString(f: { address: string; port: number; protocol: string }): string {
  return `${f.protocol}/${f.address}/${f.port}`;
}

export function backendKeyString(b: { address: string; port: number }): string {
  return `${b.address}|${b.port}`;
}

// ---------------------------------------------------------------- the view (what is in the maps)

export interface ViewFrontend {
  id: number;
  address: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  value: FrontendValue;
  /** Backend ids of the published table; empty = none. */
  table: Uint32Array;
}

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
  frontends: Map<string, ViewFrontend>;
  backends: Map<string, ViewBackend>;
  /** ph_src_ranges keys (hex) by frontend id. */
  sourceRanges: Map<number, Set<string>>;
  /** ph_fe_members: backend ids that may take new flows, by frontend id (affinity frontends only). */
  members?: Map<number, Set<number>>;
}

// ---------------------------------------------------------------- the plan (pure)

export interface SyncError {
  /** The frontend (`TCP/VIP/port`) or backend it concerns, and the owning service when known. */
  object: string;
  service?: string;
  /** Set when a map is full. */
  map?: string;
  message: string;
}

export interface PlannedFrontend {
  key: string;
  id: number;
  address: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  value: FrontendValue;
  /** New table to publish, or undefined when the published one is already right. */
  table?: Uint32Array;
  /** Whether the frontend entry must be written. */
  writeValue: boolean;
  /** ph_src_ranges keys (hex) the frontend must have. */
  sourceRangeKeys: Set<string>;
  /** Backend ids for ph_fe_members (affinity frontends; empty otherwise). */
  memberIds: Set<number>;
}

export interface SyncPlan {
  addBackends: ViewBackend[];
  /** Existing backends whose draining or local state changes. */
  updateBackends: ViewBackend[];
  frontends: PlannedFrontend[];
  removeFrontends: ViewFrontend[];
  removeBackends: ViewBackend[];
  errors: SyncError[];
}

export interface PlanOptions {
  maglevM: number;
  maxFrontends: number;
  maxBackends: number;
  /** Next id to try (round-robin allocation); updated in place. */
  cursor: { frontend: number; backend: number };
  /** This node's own addresses: backends there are delivered locally (BE_LOCAL). */
  localAddresses?: ReadonlySet<string>;
}

function allocId(used: Set<number>, max: number, cursor: { next: number }): number | undefined {
  for (let i = 0; i < max - 1; i++) {
    const id = ((cursor.next - 1 + i) % (max - 1)) + 1; // 1..max-1; 0 is "none"
    if (!used.has(id)) {
      used.add(id);
      cursor.next = id + 1;
      return id;
    }
  }
  return undefined;
}

function sameTable(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameValue(a: FrontendValue, b: FrontendValue): boolean {
  return a.id === b.id && a.flags === b.flags && a.backends === b.backends && a.affinityTimeout === b.affinityTimeout;
}

/** Source-range keys of one frontend; a CIDR that does not parse is reported and left out (the frontend then admits less, never more). */
function sourceRangeKeys(id: number, f: Frontend, key: string, errors: SyncError[]): Set<string> {
  const out = new Set<string>();
  const family = familyOf(f.address);
  for (const cidr of f.sourceRanges) {
    try {
      if (cidr.includes(':') !== (family === 'IPv6')) continue; // the other family's ranges belong to the twin frontend
      out.add(encodeSourceRangeKey(id, cidr).toString('hex'));
    } catch (err) {
      errors.push({ object: key, service: f.service, message: `loadBalancerSourceRanges: ${(err as Error).message}; range ignored` });
    }
  }
  return out;
}


/** Desired frontends + current view → the operations that make the maps equal to the desired state. */
export function planSync(view: View, desired: readonly Frontend[], opts: PlanOptions): SyncPlan {
  const errors: SyncError[] = [];
  const wanted = new Map<string, Frontend>();
  for (const f of desired) {
    const key = frontendKeyString(f);
    if (f.protocol === 'SCTP') {
      errors.push({ object: key, service: f.service, message: 'SCTP frontends are not supported by the data path; skipped' });
      continue;
    }
    let family;
    try {
      family = familyOf(f.address);
    } catch (err) {
      errors.push({ object: key, service: f.service, message: (err as Error).message });
      continue;
    }
    const bad = f.backends.find((b) => { try { return familyOf(b.address) !== family; } catch { return true; } });
    if (bad) {
      errors.push({ object: key, service: f.service, message: `backend ${bad.address} is not an ${family} address; frontend skipped` });
      continue;
    }
    if (wanted.has(key)) {
      errors.push({ object: key, service: f.service, message: `frontend also claimed by ${wanted.get(key)!.service}; first one kept` });
      continue;
    }
    wanted.set(key, f);
  }

  // Backends: every backend of a wanted frontend exists (terminating ones keep their flows).
  const usedBackendIds = new Set([...view.backends.values()].map((b) => b.id));
  const backendIds = new Map<string, number>();
  for (const [k, b] of view.backends) backendIds.set(k, b.id);
  const addBackends: ViewBackend[] = [];
  const updateBackends: ViewBackend[] = [];
  const bcursor = { next: opts.cursor.backend };
  const unplaceable = new Set<string>();
  // A backend (address|port, shared by frontends) takes new flows if any frontend lists it active.
  const active = new Set<string>();
  for (const f of wanted.values()) for (const b of f.backends) if (b.state === 'active') active.add(backendKeyString(b));
  for (const [fkey, f] of wanted) {
    for (const b of f.backends) {
      const bk = backendKeyString(b);
      const draining = !active.has(bk);
      const local = opts.localAddresses?.has(b.address) ?? false;
      const flags = { ...(draining ? { draining } : {}), ...(local ? { local } : {}) };
      const existing = view.backends.get(bk);
      if (existing) {
        const changed = Boolean(existing.draining) !== draining || Boolean(existing.local) !== local;
        if (changed && !updateBackends.some((u) => u.id === existing.id)) {
          updateBackends.push({ id: existing.id, address: b.address, port: b.port, ...flags });
        }
        continue;
      }
      if (backendIds.has(bk) || unplaceable.has(bk)) continue;
      const id = allocId(usedBackendIds, opts.maxBackends, bcursor);
      if (id === undefined) {
        unplaceable.add(bk);
        errors.push({ object: bk, service: f.service, map: 'ph_backends', message: `backend map full (${opts.maxBackends} entries): backend ${bk} of ${fkey} not added` });
        continue;
      }
      backendIds.set(bk, id);
      addBackends.push({ id, address: b.address, port: b.port, ...flags });
    }
  }
  opts.cursor.backend = bcursor.next;

  // Frontends and their tables.
  const usedFrontendIds = new Set([...view.frontends.values()].map((f) => f.id));
  const fcursor = { next: opts.cursor.frontend };
  const frontends: PlannedFrontend[] = [];
  for (const [key, f] of wanted) {
    const current = view.frontends.get(key);
    const id = current?.id ?? allocId(usedFrontendIds, opts.maxFrontends, fcursor);
    if (id === undefined) {
      errors.push({ object: key, service: f.service, map: 'ph_frontends', message: `frontend map full (${opts.maxFrontends} entries): ${key} not added` });
      continue;
    }
    const eligible = f.backends.filter((b) => b.state === 'active' && b.weight > 0 && backendIds.has(backendKeyString(b)));
    let table: Uint32Array = new Uint32Array(0);
    if (eligible.length > 0) {
      try {
        const idx = buildMaglevTable(eligible.map((b) => ({ key: backendKeyString(b), weight: b.weight })), opts.maglevM);
        table = Uint32Array.from(idx, (i) => backendIds.get(backendKeyString(eligible[i]!))!);
      } catch (err) {
        if (!(err instanceof MaglevError)) throw err;
        errors.push({ object: key, service: f.service, message: `${err.message}; previous table kept` });
        if (current) table = current.table;
        else continue;
      }
    }
    // Like kube-proxy, ranges count per family: only IPv4 ranges leave an IPv6 frontend open.
    const ownRanges = f.sourceRanges.filter((c) => c.includes(':') === f.address.includes(':'));
    const srcKeys = ownRanges.length > 0 ? sourceRangeKeys(id, f, key, errors) : new Set<string>();
    const value: FrontendValue = {
      id,
      flags: (f.removedBackendPolicy === 'reset' ? FE_RESET_ON_REMOVE : 0) | (f.localOnly ? FE_LOCAL_ONLY : 0) |
        (f.sessionAffinity ? FE_AFFINITY : 0) | (ownRanges.length > 0 ? FE_SOURCE_RANGES : 0),
      backends: table.length > 0 ? Math.max(1, eligible.length) : 0,
      affinityTimeout: f.sessionAffinity ? (f.sessionAffinityTimeoutSeconds > 0 ? f.sessionAffinityTimeoutSeconds : DEFAULT_AFFINITY_TIMEOUT_S) : 0,
    };
    const tableChanged = !current || !sameTable(current.table, table);
    frontends.push({
      key, id, address: f.address, port: f.port, protocol: f.protocol as 'TCP' | 'UDP', value,
      ...(tableChanged ? { table } : {}),
      writeValue: !current || !sameValue(current.value, value),
      sourceRangeKeys: srcKeys,
      memberIds: new Set(f.sessionAffinity ? eligible.map((b) => backendIds.get(backendKeyString(b))!) : []),
    });
  }
  opts.cursor.frontend = fcursor.next;

  const removeFrontends = [...view.frontends.entries()].filter(([k]) => !wanted.has(k)).map(([, f]) => f);
  const referenced = new Set<string>();
  for (const f of wanted.values()) for (const b of f.backends) referenced.add(backendKeyString(b));
  const removeBackends = [...view.backends.entries()].filter(([k]) => !referenced.has(k)).map(([, b]) => b);
  return { addBackends, updateBackends, frontends, removeFrontends, removeBackends, errors };
}

// ---------------------------------------------------------------- applying

export interface SyncResult {
  frontendsWritten: number;
  frontendsRemoved: number;
  backendsAdded: number;
  backendsRemoved: number;
  tablesPublished: number;
  errors: SyncError[];
}

export interface SyncOptions {
  maglevM: number;
}

function isMapFull(err: unknown): boolean {
  return err instanceof BpfError && (err.code === 'E2BIG' || err.code === 'ENOSPC' || err.code === 'ENOMEM');
}

export class DatapathSync {
  private view: View = { frontends: new Map(), backends: new Map(), sourceRanges: new Map(), members: new Map() };
  private readonly cursor = { frontend: 1, backend: 1 };
  /** Refusals because a map (or id space) was full, by map name: for a metric. */
  readonly mapFull: Record<string, number> = {};
  private runtime: Runtime = { livenessNs: 0n, portMin: 0, portMax: 0 };
  private localAddresses: ReadonlySet<string> = new Set();

  constructor(
    private readonly addon: NativeAddon,
    private readonly maps: DatapathMaps,
    private readonly opts: SyncOptions,
  ) {}

  /** Rebuild the view from the maps: frontends (with their published tables) and backends. */
  readState(): View {
    const backends = new Map<string, ViewBackend>();
    let maxB = 0;
    for (const [k, v] of this.maps.backends.entries()) {
      if (v[18] === 0) continue; // free slot (family 0)
      const id = k.readUInt32LE(0);
      const b = decodeBackend(v);
      backends.set(backendKeyString(b), { id, ...b });
      maxB = Math.max(maxB, id);
    }
    const frontends = new Map<string, ViewFrontend>();
    let maxF = 0;
    for (const [k, v] of this.maps.frontends.entries()) {
      const key = decodeFrontendKey(k);
      const value = decodeFrontendValue(v);
      frontends.set(frontendKeyString(key), { ...key, id: value.id, value, table: this.readTable(value.id) });
      maxF = Math.max(maxF, value.id);
    }
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
    this.view = { frontends, backends, sourceRanges, members };
    this.cursor.frontend = maxF + 1;
    this.cursor.backend = maxB + 1;
    const rt = this.maps.runtime.lookup(u32Key(0));
    if (rt) this.runtime = decodeRuntime(rt.subarray(0, SIZE.runtime));
    return this.view;
  }

  private readTable(frontendId: number): Uint32Array {
    const innerId = this.maps.maglev.lookup(u32Key(frontendId));
    if (!innerId) return new Uint32Array(0);
    const inner = this.addon.mapFromId(innerId.readUInt32LE(0));
    try {
      const out = new Uint32Array(inner.maxEntries);
      for (const [k, v] of inner.entries()) out[k.readUInt32LE(0)] = v.readUInt32LE(0);
      // A table of another size than M (config changed) must be rebuilt: report it as different.
      return inner.maxEntries === this.opts.maglevM ? out : new Uint32Array(0);
    } finally {
      inner.close();
    }
  }

  /**
   * Map pressure for metrics: entries in use vs capacity of the maps sync
   * fills (conntrack pressure shows as LRU evictions, not as refusals).
   */
  pressure(): Record<'ph_frontends' | 'ph_backends' | 'ph_responder', { used: number; max: number }> {
    return {
      ph_frontends: { used: this.view.frontends.size, max: this.maps.frontends.maxEntries },
      // Id 0 is never used, so one slot less.
      ph_backends: { used: this.view.backends.size, max: this.maps.backends.maxEntries - 1 },
      ph_responder: { used: this.maps.responder.keys().length, max: this.maps.responder.maxEntries },
    };
  }

  /** The current view (ids for metrics labels, `pharos service list`). */
  current(): View {
    return this.view;
  }

  apply(desired: readonly Frontend[]): SyncResult {
    const plan = planSync(this.view, desired, {
      maglevM: this.opts.maglevM,
      maxFrontends: this.maps.frontends.maxEntries,
      maxBackends: this.maps.backends.maxEntries,
      cursor: this.cursor,
      localAddresses: this.localAddresses,
    });
    const errors = [...plan.errors];
    for (const e of errors) if (e.map) this.mapFull[e.map] = (this.mapFull[e.map] ?? 0) + 1;
    const result: SyncResult = { frontendsWritten: 0, frontendsRemoved: 0, backendsAdded: 0, backendsRemoved: 0, tablesPublished: 0, errors };
    const failedBackends = new Set<number>();

    // 1. Backends (their counters zeroed: an id may have served an older backend).
    for (const b of plan.addBackends) {
      try {
        // Forget any next hop cached for an earlier backend with this id, then publish the backend.
        this.zeroCounters(this.maps.backendNextHop, b.id);
        this.maps.backends.update(u32Key(b.id), encodeBackend(b));
        this.zeroCounters(this.maps.backendStats, b.id);
        this.view.backends.set(backendKeyString(b), b);
        result.backendsAdded++;
      } catch (err) {
        failedBackends.add(b.id);
        this.fail(errors, err, 'ph_backends', backendKeyString(b));
      }
    }

    for (const b of plan.updateBackends) {
      try {
        this.maps.backends.update(u32Key(b.id), encodeBackend(b));
        this.view.backends.set(backendKeyString(b), b);
      } catch (err) {
        this.fail(errors, err, 'ph_backends', backendKeyString(b));
      }
    }

    // Source ranges added before the frontend entries that rely on them (a new range never drops a packet it admits).
    for (const f of plan.frontends) {
      const have = this.view.sourceRanges.get(f.id) ?? new Set<string>();
      for (const k of f.sourceRangeKeys) {
        if (have.has(k)) continue;
        try {
          this.maps.sourceRanges.update(Buffer.from(k, 'hex'), u32Key(1));
          have.add(k);
        } catch (err) {
          this.fail(errors, err, 'ph_src_ranges', f.key);
        }
      }
      if (have.size > 0) this.view.sourceRanges.set(f.id, have);
      const mine = this.members(f.id);
      for (const id of f.memberIds) {
        if (mine.has(id) || failedBackends.has(id)) continue;
        try {
          this.maps.members.update(encodeMemberKey(f.id, id), u32Key(1));
          mine.add(id);
        } catch (err) {
          this.fail(errors, err, 'ph_fe_members', f.key);
        }
      }
    }

    // 2 + 3. Tables, then frontend entries.
    const feKeys: Buffer[] = [];
    const feValues: Buffer[] = [];
    const feWritten: PlannedFrontend[] = [];
    for (const f of plan.frontends) {
      let table = f.table;
      if (table && table.some((id) => failedBackends.has(id))) {
        errors.push({ object: f.key, message: 'some backends could not be added; previous table kept' });
        table = undefined;
      }
      const isNew = !this.view.frontends.has(f.key);
      if (table) {
        try {
          this.publishTable(f.id, table);
          result.tablesPublished++;
        } catch (err) {
          this.fail(errors, err, 'ph_maglev', f.key);
          continue;
        }
      }
      if (isNew) this.zeroCounters(this.maps.frontendStats, f.id);
      const prev = this.view.frontends.get(f.key);
      this.view.frontends.set(f.key, {
        id: f.id, address: f.address, port: f.port, protocol: f.protocol, value: prev?.value ?? f.value,
        table: table ?? prev?.table ?? new Uint32Array(0),
      });
      if (f.writeValue || isNew) {
        feKeys.push(encodeFrontendKey(f));
        feValues.push(encodeFrontendValue(f.value));
        feWritten.push(f);
      }
    }
    this.writeFrontends(feKeys, feValues, feWritten, errors, result);

    // Ranges no longer wanted go after the entries stopped needing them.
    for (const f of plan.frontends) {
      this.pruneSourceRanges(f.id, f.sourceRangeKeys);
      this.pruneMembers(f.id, f.memberIds);
    }

    // 4. Removed frontends: entry first (packets stop matching), then the table.
    for (const f of plan.removeFrontends) {
      this.maps.frontends.delete(encodeFrontendKey(f));
      this.maps.maglev.delete(u32Key(f.id));
      this.view.frontends.delete(frontendKeyString(f));
      this.pruneSourceRanges(f.id, new Set());
      this.pruneMembers(f.id, new Set());
      result.frontendsRemoved++;
    }
    this.syncVips(desired);

    // 5. Backends no frontend references: their flows re-balance or reset by frontend policy.
    // ph_backends is an array: a removed backend is a zeroed slot.
    if (plan.removeBackends.length > 0) {
      const keys = Buffer.concat(plan.removeBackends.map((b) => u32Key(b.id)));
      const zeros = Buffer.alloc(SIZE.backend * plan.removeBackends.length);
      let n = 0;
      try {
        n = this.maps.backends.updateBatch(keys, zeros, plan.removeBackends.length);
      } catch {
        n = 0;
      }
      for (const b of plan.removeBackends.slice(n)) this.maps.backends.update(u32Key(b.id), Buffer.alloc(SIZE.backend));
      for (const b of plan.removeBackends) this.view.backends.delete(backendKeyString(b));
      result.backendsRemoved += plan.removeBackends.length;
    }
    return result;
  }

  private writeFrontends(keys: Buffer[], values: Buffer[], planned: PlannedFrontend[], errors: SyncError[], result: SyncResult): void {
    if (keys.length === 0) return;
    let done = 0;
    try {
      done = this.maps.frontends.updateBatch(Buffer.concat(keys), Buffer.concat(values), keys.length);
    } catch {
      done = 0; // fall back to one by one below, to name the one that failed
    }
    for (let i = 0; i < keys.length; i++) {
      const f = planned[i]!;
      if (i >= done) {
        try {
          this.maps.frontends.update(keys[i]!, values[i]!);
        } catch (err) {
          this.fail(errors, err, 'ph_frontends', f.key);
          // Not in the map: forget it so the next apply retries, and drop its table.
          this.view.frontends.delete(f.key);
          this.maps.maglev.delete(u32Key(f.id));
          continue;
        }
      }
      const v = this.view.frontends.get(f.key);
      if (v) v.value = f.value;
      result.frontendsWritten++;
    }
  }

  /** A fresh inner array, filled, then swapped in with one update of the outer map. */
  private publishTable(frontendId: number, table: Uint32Array): void {
    if (table.length === 0) {
      this.maps.maglev.delete(u32Key(frontendId));
      return;
    }
    const inner = this.addon.createMap('array', 4, 4, table.length, { name: `ph_mg_${frontendId}`.slice(0, 15), flags: BPF_F_INNER_MAP });
    try {
      const keys = Buffer.alloc(4 * table.length);
      for (let i = 0; i < table.length; i++) keys.writeUInt32LE(i, 4 * i);
      const values = Buffer.from(table.buffer, table.byteOffset, table.byteLength);
      const n = inner.updateBatch(keys, values, table.length);
      if (n !== table.length) throw new BpfError(`Maglev table for frontend ${frontendId}: wrote ${n} of ${table.length} slots`, 5, 'EIO');
      this.maps.maglev.update(u32Key(frontendId), u32Key(inner.fd));
    } finally {
      inner.close(); // the outer map holds its own reference
    }
  }

  /** Service addresses answered for ICMP echo: those of the frontends in the maps (NodePorts are the node's own). */
  private syncVips(desired: readonly Frontend[]): void {
    const want = new Map<string, string>();
    for (const f of desired) {
      if (f.kind === 'NodePort' || !this.view.frontends.has(frontendKeyString(f))) continue;
      want.set(encodeVipKey(f.address).toString('hex'), f.address);
    }
    const have = new Set(this.maps.vips.keys().map((k) => k.toString('hex')));
    for (const k of want.keys()) {
      if (have.has(k)) continue;
      try {
        this.maps.vips.update(Buffer.from(k, 'hex'), u32Key(1));
      } catch {
        // A full map only costs echo replies (the kernel may still answer where the address is local).
      }
    }
    for (const k of have) if (!want.has(k)) this.maps.vips.delete(Buffer.from(k, 'hex'));
  }

  private members(frontendId: number): Set<number> {
    this.view.members ??= new Map();
    let set = this.view.members.get(frontendId);
    if (!set) this.view.members.set(frontendId, (set = new Set()));
    return set;
  }

  private pruneMembers(frontendId: number, keep: Set<number>): void {
    const have = this.view.members?.get(frontendId);
    if (!have) return;
    for (const id of [...have]) {
      if (keep.has(id)) continue;
      this.maps.members.delete(encodeMemberKey(frontendId, id));
      have.delete(id);
    }
    if (have.size === 0) this.view.members!.delete(frontendId);
  }

  private pruneSourceRanges(frontendId: number, keep: Set<string>): void {
    const have = this.view.sourceRanges.get(frontendId);
    if (!have) return;
    for (const k of [...have]) {
      if (keep.has(k)) continue;
      this.maps.sourceRanges.delete(Buffer.from(k, 'hex'));
      have.delete(k);
    }
    if (have.size === 0) this.view.sourceRanges.delete(frontendId);
  }

  private zeroCounters(map: BpfMap, id: number): void {
    map.update(u32Key(id), Buffer.alloc(map.valueBufferSize));
  }

  private fail(errors: SyncError[], err: unknown, map: string, object: string): void {
    if (isMapFull(err)) {
      this.mapFull[map] = (this.mapFull[map] ?? 0) + 1;
      errors.push({ object, map, message: `map ${map} is full: ${object} not written` });
    } else {
      errors.push({ object, map, message: `writing ${object} to ${map}: ${(err as Error).message}` });
    }
  }

  // ---------------------------------------------------------------- node-wide state and responder

  /**
   * This node's own addresses, applied with the next `apply`. The FIB says
   * "not forwarded" both for a local address and for no route at all; only
   * backends listed here are handed to the local stack, the rest count as
   * fib_fail.
   */
  setLocalAddresses(addresses: Iterable<string>): void {
    this.localAddresses = new Set(addresses);
  }

  /** SNAT addresses and port range (keep them outside net.ipv4.ip_local_port_range). */
  setNodeConfig(c: { snatV4?: string; snatV6?: string; portMin: number; portMax: number }): void {
    if (!(c.portMin >= 1 && c.portMax <= 65535 && c.portMin <= c.portMax)) {
      throw new RangeError(`SNAT port range ${c.portMin}-${c.portMax} is invalid`);
    }
    const { snatV4, snatV6, ...ports } = c;
    this.runtime = { livenessNs: this.runtime.livenessNs, ...ports, ...(snatV4 ? { snatV4 } : {}), ...(snatV6 ? { snatV6 } : {}) };
    this.maps.runtime.update(u32Key(0), encodeRuntime(this.runtime));
  }

  /** Stamp the agent's liveness (CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads); ARP/NDP answers need it fresh. */
  touchLiveness(nowNs: bigint = process.hrtime.bigint()): void {
    this.runtime.livenessNs = nowNs;
    this.maps.runtime.update(u32Key(0), encodeRuntime(this.runtime));
  }

  /** Answer ARP/NS for `address` on `ifindex` with `mac`. */
  setResponder(address: string, ifindex: number, mac: string): void {
    this.maps.responder.update(encodeResponderKey({ address, ifindex }), encodeResponderValue(mac));
  }

  deleteResponder(address: string, ifindex: number): boolean {
    return this.maps.responder.delete(encodeResponderKey({ address, ifindex }));
  }
}
