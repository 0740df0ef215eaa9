/**
 * The data path's bookkeeping, without I/O: what is programmed (frontends,
 * backends, Maglev tables, source ranges, affinity members, echo VIPs),
 * who claims it, and — given the new frontends of some services — the
 * operations that bring the maps in line. `sync.ts` performs them.
 *
 *   const planner = new DatapathPlanner({ maglev: { max: 65521 }, maxFrontends, maxBackends, maxTables });
 *   const ops = planner.plan(new Map([['ns/web', frontendsOfWeb]]));  // one service changed
 *   const all = planner.plan(everyService, { full: true });            // start or resync
 *
 * Cost is in proportion to the change: a pass touches only the frontends
 * of the services it is given (plus those retried after capacity was
 * freed). A full pass also removes whatever nobody claims any more.
 *
 * Rules kept from the first version:
 * - ids are stable while an object exists and are reused only after the id
 *   space went round (a stale flow never lands on a new object quickly);
 * - a backend (address|port, shared by frontends) takes new flows if any
 *   frontend lists it active, else it drains (keeps flows, takes no new);
 * - a frontend claimed by two services stays with the one that has it;
 *   the other is reported;
 * - a frontend whose backends do not all fit is programmed with those that
 *   do and reported; one whose table cannot be built keeps its previous one.
 *
 * New: Maglev tables are shared by every frontend with the same backend
 * set and sized from the backend count (maglev.ts `maglevTableSize`), and a
 * frontend moves to a new table by one update of its value (table id and
 * size travel together), so tables are never written while in use.
 */
import { createHash } from 'node:crypto';
import {
  encodeSourceRangeKey, familyOf, FE_AFFINITY, FE_DSR, FE_DSR_ENCAP, FE_DSR_L2, FE_LOCAL_ONLY, FE_RESET_ON_REMOVE, FE_SOURCE_RANGES, type FrontendValue,
} from './abi.js';
import { buildMaglevTable, maglevTableSize, MaglevError, type MaglevSizing } from './maglev.js';
import type { Frontend, FrontendKind } from '../model/types.js';

/** Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds. */
export const DEFAULT_AFFINITY_TIMEOUT_S = 10800;

export function frontendKeyString(f: { address: string; port: number; protocol: string }): string {
  return `${f.protocol}/${f.address}/${f.port}`;
}

export function backendKeyString(b: { address: string; port: number }): string {
  return `${b.address}|${b.port}`;
}

// ---------------------------------------------------------------- what is programmed

export interface ProgrammedBackend {
  /** 0 while it has no slot (backend map full). */
  id: number;
  address: string;
  port: number;
  draining: boolean;
  local: boolean;
  /** Frontends listing it, and those listing it active. */
  refs: number;
  activeRefs: number;
}

export interface ProgrammedFrontend {
  key: string;
  id: number;
  address: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  /** Owning service ('' for a frontend re-adopted from the maps and not claimed yet). */
  service: string;
  kind?: FrontendKind;
  value: FrontendValue;
  /** The desired frontend it was programmed from (backend references are counted from it). */
  source?: Frontend;
  /** Signature of its table (undefined: no table, or a re-adopted table not identified yet). */
  table?: string;
  sourceRangeKeys: Set<string>;
  memberIds: Set<number>;
  /** Its last write failed: write it again on the next pass even if nothing changed. */
  dirty?: boolean;
}

interface Table {
  id: number;
  m: number;
  refs: number;
  /** False after the kernel refused it: published again when next used. */
  published: boolean;
}

/** Why a frontend is not (fully) in the data path. */
export type ProblemReason =
  | 'FrontendMapFull' | 'BackendMapFull' | 'TableMapFull' | 'TooManyBackends' | 'FrontendConflict' | 'InvalidFrontend' | 'WriteFailed'
  | 'DsrBackendNotOnLink';

export interface FrontendProblem {
  /** The frontend (`TCP/VIP/port`) or, for a backend, `address|port`. */
  object: string;
  service: string;
  reason: ProblemReason;
  /** The map that was full, when one was. */
  map?: string;
  message: string;
  /** False for warnings: the frontend serves, with a limitation (e.g. an ignored source range). */
  blocking: boolean;
}

export interface ServiceProgramStatus {
  /** Frontends the service asked for. */
  frontends: number;
  /** Of those, fully in the data path. */
  programmed: number;
  problems: FrontendProblem[];
}

// ---------------------------------------------------------------- operations

export interface BackendOp {
  id: number;
  address: string;
  port: number;
  draining: boolean;
  local: boolean;
}

export interface TableOp {
  id: number;
  m: number;
  /** Backend id per slot (M entries). */
  slots: Uint32Array;
  /** The id is a spare the executor published ahead (empty, referenced by no frontend): fill it in place, no publish. */
  spare?: boolean;
}

/**
 * Empty tables published ahead of need, by size (sync.ts keeps them): a new
 * table then costs a memcpy instead of a publish, which waits an RCU grace
 * period (~12 ms) — most of a single edit's latency otherwise.
 */
export interface SpareTables {
  take(m: number): number | undefined;
}

export interface FrontendOp {
  key: string;
  address: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  value: FrontendValue;
}

/** What one pass writes, in the order sync.ts applies it (no packet sees a half state). */
export interface DatapathOps {
  /** New backends (counters and cached next hop zeroed first: an id may have served another backend). */
  addBackends: BackendOp[];
  /** Existing backends whose draining/local flags change. */
  updateBackends: BackendOp[];
  /** Tables to build and publish before the frontends that use them. */
  addTables: TableOp[];
  addSourceRanges: Buffer[];
  addMembers: Array<[frontendId: number, backendId: number]>;
  /** New frontend ids whose counters start at zero. */
  newFrontendIds: number[];
  writeFrontends: FrontendOp[];
  removeFrontends: FrontendOp[];
  removeSourceRanges: Buffer[];
  removeMembers: Array<[frontendId: number, backendId: number]>;
  removeTables: number[];
  removeBackends: number[];
  /** The address of each removed backend (for the next-hop primer, which counts backends per address). */
  removedBackendAddresses: string[];
  /** Service addresses answered for ICMP echo. */
  addVips: string[];
  removeVips: string[];
  /** Services whose ServiceProgramStatus may have changed in this pass. */
  services: Set<string>;
}

function emptyOps(): DatapathOps {
  return {
    addBackends: [], updateBackends: [], addTables: [], addSourceRanges: [], addMembers: [], newFrontendIds: [], writeFrontends: [],
    removeFrontends: [], removeSourceRanges: [], removeMembers: [], removeTables: [], removeBackends: [], removedBackendAddresses: [], addVips: [], removeVips: [],
    services: new Set(),
  };
}

// ---------------------------------------------------------------- ids

/**
 * Ids 1..max-1 (0 means none), handed out round-robin so a freed id comes
 * back only after the rest of the space was used.
 */
export class IdAllocator {
  private readonly used = new Set<number>();
  private cursor = 1;

  constructor(private readonly max: number) {}

  get capacity(): number {
    return Math.max(0, this.max - 1);
  }

  get size(): number {
    return this.used.size;
  }

  take(): number | undefined {
    if (this.used.size >= this.capacity) return undefined;
    for (;;) {
      const id = this.cursor;
      this.cursor = this.cursor >= this.max - 1 ? 1 : this.cursor + 1;
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
  }

  /** Mark an id in use (re-adopted from the maps); the cursor continues after the highest. */
  claim(id: number): void {
    this.used.add(id);
    if (id >= this.cursor) this.cursor = id + 1 >= this.max ? 1 : id + 1;
  }

  release(id: number): void {
    this.used.delete(id);
  }
}

// ---------------------------------------------------------------- the planner

export interface PlannerOptions {
  maglev: MaglevSizing;
  /** Capacities: ids 1..max-1 (the maps' max_entries). */
  maxFrontends: number;
  maxBackends: number;
  maxTables: number;
}

/** What the maps held at start (sync.ts reads it), for a hitless restart. */
export interface AdoptedState {
  frontends: Array<{ address: string; port: number; protocol: 'TCP' | 'UDP'; value: FrontendValue }>;
  backends: Array<{ id: number; address: string; port: number; draining?: boolean; local?: boolean }>;
  tables: number[];
  sourceRanges: Map<number, Set<string>>;
  members: Map<number, Set<number>>;
  vips: string[];
}

/** Reads a re-adopted table's slots (lazily, once): lets a restart keep tables that are already right. */
export type TableReader = (tableId: number, m: number) => Uint32Array | undefined;

interface PlanPass {
  ops: DatapathOps;
  /** Ids freed in this pass, released at its end (never reused within the pass that freed them). */
  released: Array<{ allocator: IdAllocator; id: number }>;
  /** Backends whose refs changed in this pass. */
  touchedBackends: Set<string>;
  /** Tables whose refs dropped in this pass. */
  touchedTables: Set<string>;
  /** Addresses whose VIP refcount changed. */
  touchedVips: Set<string>;
}

export class DatapathPlanner {
  readonly frontends = new Map<string, ProgrammedFrontend>();
  readonly backends = new Map<string, ProgrammedBackend>();
  private readonly tables = new Map<string, Table>();
  /** Table ids from the maps not yet identified (restart), with their size. */
  private readonly adoptedTables = new Map<number, number>();
  private readonly frontendIds: IdAllocator;
  private readonly backendIds: IdAllocator;
  private readonly tableIds: IdAllocator;
  /** Claims: frontend key → the services that ask for it, with their desired frontend. */
  private readonly claims = new Claims();
  /** Current frontends of each service (validated ones, keys unique), and its invalid ones. */
  private readonly byService = new Map<string, Frontend[]>();
  private readonly invalid = new Map<string, FrontendProblem[]>();
  /** Problems by frontend key (blocking or warnings), owner's service. */
  private readonly problems = new Map<string, FrontendProblem[]>();
  /** Frontends to plan again when capacity frees up. */
  private readonly retry = new Set<string>();
  private freed = false;
  private readonly vipRefs = new Map<string, number>();
  private adoptedVips = new Set<string>();
  private localAddresses: ReadonlySet<string> = new Set();
  /** Backend address → gateway, for backends not on a segment of this node (the neighbour primer's routes). */
  private offLink: ReadonlyMap<string, string> = new Map();
  private tableReader?: TableReader;

  constructor(private readonly opts: PlannerOptions) {
    this.frontendIds = new IdAllocator(opts.maxFrontends);
    this.backendIds = new IdAllocator(opts.maxBackends);
    this.tableIds = new IdAllocator(opts.maxTables);
  }

  /** Take over what the maps hold (restart). Call before the first (full) plan. */
  adopt(state: AdoptedState, reader?: TableReader): void {
    this.tableReader = reader;
    for (const b of state.backends) {
      this.backendIds.claim(b.id);
      this.backends.set(backendKeyString(b), {
        id: b.id, address: b.address, port: b.port, draining: Boolean(b.draining), local: Boolean(b.local), refs: 0, activeRefs: 0,
      });
    }
    for (const id of state.tables) this.tableIds.claim(id);
    for (const f of state.frontends) {
      const key = frontendKeyString(f);
      this.frontendIds.claim(f.value.id);
      if (f.value.table && f.value.tableSize) this.adoptedTables.set(f.value.table, f.value.tableSize);
      this.frontends.set(key, {
        key, id: f.value.id, address: f.address, port: f.port, protocol: f.protocol, service: '', value: f.value,
        sourceRangeKeys: state.sourceRanges.get(f.value.id) ?? NO_KEYS,
        memberIds: state.members.get(f.value.id) ?? NO_IDS,
      });
    }
    // Tables in the outer map that no frontend points at: removed by the first full pass.
    for (const id of state.tables) if (!this.adoptedTables.has(id)) this.adoptedTables.set(id, 0);
    this.adoptedVips = new Set(state.vips);
    const adoptedIds = new Set([...this.frontends.values()].map((f) => f.id));
    this.orphanRanges = new Map([...state.sourceRanges].filter(([id]) => !adoptedIds.has(id)));
    this.orphanMembers = new Map([...state.members].filter(([id]) => !adoptedIds.has(id)));
  }

  private orphanRanges = new Map<number, Set<string>>();
  private orphanMembers = new Map<number, Set<number>>();

  /** This node's own addresses: backends there are delivered by the local stack (BE_LOCAL). */
  setLocalAddresses(addresses: ReadonlySet<string>): boolean {
    const same = addresses.size === this.localAddresses.size && [...addresses].every((a) => this.localAddresses.has(a));
    this.localAddresses = addresses;
    return !same;
  }

  /**
   * The operations that make the maps hold `changes` (service → all its
   * desired frontends; an empty list removes the service). With `full`,
   * `changes` is every service and anything else is removed.
   */
  plan(changes: ReadonlyMap<string, readonly Frontend[]>, opts: { full?: boolean } = {}): DatapathOps {
    return this.run(changes, opts.full ? (svc) => changes.has(svc) : undefined);
  }

  /**
   * A full pass in pieces, so no single call holds the event loop: after
   * `beginFull()`, every `plan(batch)` records the services it saw, and
   * `finishFull()` removes the services (and anything re-adopted) that no
   * batch claimed. Until then, what was programmed keeps serving.
   */
  beginFull(): void {
    this.seen = new Set();
  }

  finishFull(): DatapathOps {
    const seen = this.seen ?? new Set<string>();
    this.seen = undefined;
    return this.run(new Map(), (svc) => seen.has(svc));
  }

  private seen?: Set<string>;

  /** One pass; with `keepOnly`, a full one: services it rejects are removed, and unclaimed and re-adopted state is swept. */
  private run(changes: ReadonlyMap<string, readonly Frontend[]>, keepOnly?: (svc: string) => boolean): DatapathOps {
    const pass: PlanPass = { ops: emptyOps(), released: [], touchedBackends: new Set(), touchedTables: new Set(), touchedVips: new Set() };
    const affected = new Set<string>();
    const full = keepOnly !== undefined;
    if (keepOnly) {
      for (const svc of [...this.byService.keys()]) if (!changes.has(svc) && !keepOnly(svc)) this.setService(svc, [], affected, pass);
      // Frontends nobody claims (re-adopted at start, or left by an earlier failure).
      for (const key of this.frontends.keys()) if (!this.claims.has(key)) affected.add(key);
    }
    for (const [svc, list] of changes) this.setService(svc, list, affected, pass);
    if (this.freed || full) {
      for (const key of this.retry) affected.add(key);
      this.freed = false;
    }
    // Frontends leave before others arrive, so a full map makes room for this pass's additions.
    const ordered = [...affected].sort((a, b) => Number(this.wantedFor(a) !== undefined) - Number(this.wantedFor(b) !== undefined));
    for (const key of ordered) this.planFrontend(key, pass);
    // Room freed by this pass (frontend ids) goes to what was refused before, at once.
    if (this.freed) {
      this.freed = false;
      for (const key of [...this.retry]) if (!affected.has(key)) this.planFrontend(key, pass);
    }
    this.settleBackends(pass, full);
    this.settleTables(pass, full);
    this.settleVips(pass, full);
    if (full) this.dropOrphans(pass);
    dedupe(pass.ops);
    // Backend and table slots freed here are reused only by a later pass (a slot is written before the old one is cleared).
    for (const r of pass.released) r.allocator.release(r.id);
    if (pass.released.length > 0) this.freed = true;
    return pass.ops;
  }

  /** Something was refused for lack of room and room has been freed since: another pass would place it. */
  get wantsRetry(): boolean {
    return this.freed && this.retry.size > 0;
  }

  // ------------------------------------------------------------ claims

  private setService(svc: string, list: readonly Frontend[], affected: Set<string>, pass: PlanPass): void {
    const previous = this.byService.get(svc) ?? NO_FRONTENDS;
    const next: Frontend[] = [];
    const keys = new Set<string>();
    const invalid: FrontendProblem[] = [];
    for (const f of list) {
      const key = frontendKeyString(f);
      const problem = validate(f, key);
      if (problem) {
        invalid.push(problem);
        continue;
      }
      if (keys.has(key)) continue;
      keys.add(key);
      next.push(f);
    }
    for (const f of previous) {
      const key = frontendKeyString(f);
      if (keys.has(key)) continue;
      this.claims.remove(key, svc);
      affected.add(key);
    }
    for (const f of next) {
      const key = frontendKeyString(f);
      this.claims.add(key, f);
      affected.add(key);
    }
    if (next.length > 0) this.byService.set(svc, next);
    else this.byService.delete(svc);
    if (invalid.length > 0) this.invalid.set(svc, invalid);
    else this.invalid.delete(svc);
    pass.ops.services.add(svc);
    this.seen?.add(svc);
  }

  /** The service that owns a frontend key: the one programmed with it while it still claims it, else the first claimant by name. */
  private ownerOf(key: string): string | undefined {
    const current = this.frontends.get(key)?.service;
    if (current && this.claims.of(key, current)) return current;
    return this.claims.first(key)?.service;
  }

  private wantedFor(key: string): Frontend | undefined {
    const owner = this.ownerOf(key);
    return owner === undefined ? undefined : this.claims.of(key, owner);
  }

  // ------------------------------------------------------------ one frontend

  private planFrontend(key: string, pass: PlanPass): void {
    const cur = this.frontends.get(key);
    const want = this.wantedFor(key);
    const claimants = this.claims.all(key);
    for (const c of claimants) pass.ops.services.add(c.service);
    if (cur?.service) pass.ops.services.add(cur.service);
    const problems: FrontendProblem[] = [];
    if (want && claimants.length > 1) {
      for (const { service: other } of claimants) {
        if (other === want.service) continue;
        this.addProblem(key, other, { reason: 'FrontendConflict', message: `frontend ${key} is also claimed by ${want.service}, which keeps it`, blocking: true });
      }
    }
    this.clearProblems(key, want?.service);
    this.retry.delete(key);
    if (!want) {
      if (cur) this.removeFrontend(cur, pass);
      return;
    }
    let id = cur?.id;
    const isNew = id === undefined;
    if (id === undefined) {
      id = this.frontendIds.take();
      if (id === undefined) {
        this.retry.add(key);
        this.setProblems(key, want.service, [{
          object: key, service: want.service, reason: 'FrontendMapFull', map: 'ph_frontends', blocking: true,
          message: `frontend map full (${this.frontendIds.capacity} frontends, --frontend-map-size): ${key} not added`,
        }]);
        return;
      }
      pass.ops.newFrontendIds.push(id);
    }

    // Backends: reference the new set before releasing the old one, so a backend that stays is never removed.
    for (const b of want.backends) this.refBackend(b.address, b.port, b.state === 'active', +1, pass);
    if (cur?.source) for (const b of cur.source.backends) this.refBackend(b.address, b.port, b.state === 'active', -1, pass);
    for (const b of want.backends) {
      const pb = this.backends.get(backendKeyString(b))!;
      if (pb.id === 0) {
        problems.push({
          object: backendKeyString(b), service: want.service, reason: 'BackendMapFull', map: 'ph_backends', blocking: true,
          message: `backend map full (${this.backendIds.capacity} backends, --backend-map-size): backend ${backendKeyString(b)} of ${key} not added`,
        });
      }
    }

    // The table: shared by signature (M and the eligible backends with their weights).
    const eligible = want.backends.filter((b) => b.state === 'active' && b.weight > 0 && this.backends.get(backendKeyString(b))!.id !== 0);
    let tableSig: string | undefined;
    let table: Table | undefined;
    let backendsInTable = eligible.length;
    if (eligible.length > 0) {
      try {
        const size = maglevTableSize(eligible.length, this.opts.maglev);
        const members = eligible.map((b) => ({ key: backendKeyString(b), weight: b.weight })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        // A digest of M and the members names the table (the member list itself is ~200 bytes a table, kept 10,000 times).
        tableSig = createHash('sha1').update(`${size.m}#${members.map((m) => `${m.key}*${m.weight}`).join(',')}`).digest('base64');
        table = this.acquireTable(tableSig, size.m, members, cur, pass, size.fullRatio);
        if (!table) {
          problems.push({ object: key, service: want.service, reason: 'TableMapFull', map: 'ph_maglev', blocking: true, message: `Maglev table map full (${this.tableIds.capacity} tables): ${key} keeps its previous table` });
        }
      } catch (err) {
        if (!(err instanceof MaglevError)) throw err;
        problems.push({ object: key, service: want.service, reason: 'TooManyBackends', blocking: true, message: `${err.message}; ${key} keeps its previous table` });
      }
      if (!table) {
        // Keep what is published (possibly nothing).
        tableSig = cur?.table ?? this.keepAdoptedTable(cur);
        if (tableSig) this.tables.get(tableSig)!.refs++;
        backendsInTable = cur?.value.backends ?? 0;
        this.retry.add(key);
      }
    }
    if (cur?.table) {
      const t = this.tables.get(cur.table);
      if (t) {
        t.refs--;
        pass.touchedTables.add(cur.table);
      }
    }
    const t = tableSig ? this.tables.get(tableSig) : undefined;
    if (problems.some((p) => p.reason === 'BackendMapFull')) this.retry.add(key);

    // Source ranges: like kube-proxy, ranges count per family (only IPv4 ranges leave an IPv6 frontend open).
    const ownRanges = want.sourceRanges.filter((c) => c.includes(':') === want.address.includes(':'));
    const rangeKeys = ownRanges.length > 0 ? new Set<string>() : NO_KEYS;
    for (const cidr of ownRanges) {
      try {
        rangeKeys.add(encodeSourceRangeKey(id, cidr).toString('hex'));
      } catch (err) {
        problems.push({ object: key, service: want.service, reason: 'InvalidFrontend', blocking: false, message: `loadBalancerSourceRanges: ${(err as Error).message}; range ignored` });
      }
    }
    for (const message of dsrLimits(want)) problems.push({ object: key, service: want.service, reason: 'InvalidFrontend', blocking: false, message });
    const memberIds = want.sessionAffinity ? new Set<number>(eligible.map((b) => this.backends.get(backendKeyString(b))!.id)) : NO_IDS;
    const value: FrontendValue = {
      id,
      flags: (want.removedBackendPolicy === 'reset' ? FE_RESET_ON_REMOVE : 0) | (want.localOnly ? FE_LOCAL_ONLY : 0) |
        (want.sessionAffinity ? FE_AFFINITY : 0) | (ownRanges.length > 0 ? FE_SOURCE_RANGES : 0) |
        (want.forwardingMode === 'dsr' ? FE_DSR | (want.dsrDispatch === 'ipip' ? FE_DSR_ENCAP : want.dsrDispatch === 'l2' ? FE_DSR_L2 : 0) : 0),
      backends: t ? Math.max(1, backendsInTable) : 0,
      affinityTimeout: want.sessionAffinity ? (want.sessionAffinityTimeoutSeconds > 0 ? want.sessionAffinityTimeoutSeconds : DEFAULT_AFFINITY_TIMEOUT_S) : 0,
      table: t?.id ?? 0,
      tableSize: t?.m ?? 0,
    };

    // Ranges and members are added before the entry relies on them, pruned after.
    const oldRanges = cur?.sourceRangeKeys ?? new Set<string>();
    for (const k of rangeKeys) if (!oldRanges.has(k)) pass.ops.addSourceRanges.push(Buffer.from(k, 'hex'));
    for (const k of oldRanges) if (!rangeKeys.has(k)) pass.ops.removeSourceRanges.push(Buffer.from(k, 'hex'));
    const oldMembers = cur?.memberIds ?? new Set<number>();
    for (const b of memberIds) if (!oldMembers.has(b)) pass.ops.addMembers.push([id, b]);
    for (const b of oldMembers) if (!memberIds.has(b)) pass.ops.removeMembers.push([id, b]);

    if (isNew || cur!.dirty || !sameValue(cur!.value, value)) {
      pass.ops.writeFrontends.push({ key, address: want.address, port: want.port, protocol: want.protocol as 'TCP' | 'UDP', value });
    }
    this.vipRef(cur, -1, pass);
    const next: ProgrammedFrontend = {
      key, id, address: want.address, port: want.port, protocol: want.protocol as 'TCP' | 'UDP', service: want.service, kind: want.kind,
      value, source: want, ...(tableSig ? { table: tableSig } : {}), sourceRangeKeys: rangeKeys, memberIds,
    };
    this.frontends.set(key, next);
    this.vipRef(next, +1, pass);
    this.setProblems(key, want.service, problems);
  }

  private removeFrontend(cur: ProgrammedFrontend, pass: PlanPass): void {
    pass.ops.removeFrontends.push({ key: cur.key, address: cur.address, port: cur.port, protocol: cur.protocol, value: cur.value });
    for (const k of cur.sourceRangeKeys) pass.ops.removeSourceRanges.push(Buffer.from(k, 'hex'));
    for (const b of cur.memberIds) pass.ops.removeMembers.push([cur.id, b]);
    if (cur.source) for (const b of cur.source.backends) this.refBackend(b.address, b.port, b.state === 'active', -1, pass);
    if (cur.table) {
      const t = this.tables.get(cur.table);
      if (t) {
        t.refs--;
        pass.touchedTables.add(cur.table);
      }
    }
    this.vipRef(cur, -1, pass);
    this.frontends.delete(cur.key);
    // A frontend id may serve another frontend in this same pass: its range and member keys are deduplicated below.
    this.frontendIds.release(cur.id);
    this.freed = true;
  }

  private refBackend(address: string, port: number, active: boolean, delta: 1 | -1, pass: PlanPass): void {
    const key = backendKeyString({ address, port });
    let b = this.backends.get(key);
    if (!b) {
      if (delta < 0) return;
      b = { id: 0, address, port, draining: false, local: false, refs: 0, activeRefs: 0 };
      this.backends.set(key, b);
    }
    b.refs += delta;
    if (active) b.activeRefs += delta;
    pass.touchedBackends.add(key);
    if (b.id === 0 && delta > 0) {
      const id = this.backendIds.take();
      if (id !== undefined) {
        b.id = id;
        b.draining = b.activeRefs === 0;
        b.local = this.localAddresses.has(address);
        pass.ops.addBackends.push({ id, address, port, draining: b.draining, local: b.local });
      }
    }
  }

  /** A re-adopted table kept as it is (its frontend's new table could not be built): tracked under its own name. */
  private keepAdoptedTable(cur: ProgrammedFrontend | undefined): string | undefined {
    const id = cur && !cur.table ? cur.value.table : 0;
    if (!id) return undefined;
    const sig = `adopted#${id}`;
    if (!this.tables.has(sig)) {
      this.adoptedTables.delete(id);
      this.tables.set(sig, { id, m: cur!.value.tableSize, refs: 0, published: true });
    }
    return sig;
  }

  private acquireTable(sig: string, m: number, members: Array<{ key: string; weight: number }>, cur: ProgrammedFrontend | undefined, pass: PlanPass, fullRatio: boolean): Table | undefined {
    const existing = this.tables.get(sig);
    if (existing) {
      existing.refs++;
      if (!existing.published && !pass.ops.addTables.some((t) => t.id === existing.id)) {
        existing.published = true;
        pass.ops.addTables.push({ id: existing.id, m, slots: this.buildSlots(members, m, fullRatio) });
      }
      return existing;
    }
    const slots = this.buildSlots(members, m, fullRatio);
    // After a restart: the table this frontend already points at may be exactly this one.
    const adoptedId = cur && !cur.table ? cur.value.table : 0;
    if (adoptedId && this.adoptedTables.get(adoptedId) === m) {
      const have = this.tableReader?.(adoptedId, m);
      if (have && sameSlots(have, slots)) {
        this.adoptedTables.delete(adoptedId);
        const t: Table = { id: adoptedId, m, refs: 1, published: true };
        this.tables.set(sig, t);
        return t;
      }
    }
    const spare = this.spares?.take(m);
    const id = spare ?? this.tableIds.take();
    if (id === undefined) return undefined;
    const t: Table = { id, m, refs: 1, published: true };
    this.tables.set(sig, t);
    pass.ops.addTables.push({ id, m, slots, ...(spare !== undefined ? { spare: true } : {}) });
    return t;
  }

  /** Where spare tables come from (their ids are reserved with reserveTableId). */
  useSpares(spares: SpareTables): void {
    this.spares = spares;
  }

  private spares?: SpareTables;

  /** An id for a spare table (in use from now on); undefined when the table map is full. */
  reserveTableId(): number | undefined {
    return this.tableIds.take();
  }

  /** A spare that was never used goes back (its slot is cleared by the executor). */
  releaseTableId(id: number): void {
    this.tableIds.release(id);
  }

  private buildSlots(members: Array<{ key: string; weight: number }>, m: number, fullRatio: boolean): Uint32Array {
    const index = buildMaglevTable(members, m, fullRatio ? undefined : 1);
    const ids = members.map((mb) => this.backends.get(mb.key)!.id);
    const out = new Uint32Array(m);
    for (let i = 0; i < m; i++) out[i] = ids[index[i]!]!;
    return out;
  }

  private vipRef(f: ProgrammedFrontend | undefined, delta: 1 | -1, pass: PlanPass): void {
    if (!f || !f.kind || f.kind === 'NodePort') return;
    const n = (this.vipRefs.get(f.address) ?? 0) + delta;
    if (n > 0) this.vipRefs.set(f.address, n);
    else this.vipRefs.delete(f.address);
    pass.touchedVips.add(f.address);
  }

  // ------------------------------------------------------------ settling shared objects

  private settleBackends(pass: PlanPass, full: boolean, remove = true): void {
    const keys = full ? [...this.backends.keys()] : [...pass.touchedBackends];
    for (const key of keys) {
      const b = this.backends.get(key);
      if (!b) continue;
      if (b.refs <= 0 && !remove) continue;
      if (b.refs <= 0) {
        this.backends.delete(key);
        if (b.id !== 0) {
          pass.ops.removeBackends.push(b.id);
          pass.ops.removedBackendAddresses.push(b.address);
          pass.released.push({ allocator: this.backendIds, id: b.id });
        }
        continue;
      }
      if (b.id === 0) continue;
      const draining = b.activeRefs <= 0;
      const local = this.localAddresses.has(b.address);
      if (draining !== b.draining || local !== b.local) {
        b.draining = draining;
        b.local = local;
        if (!pass.ops.addBackends.some((a) => a.id === b.id)) pass.ops.updateBackends.push({ id: b.id, address: b.address, port: b.port, draining, local });
        else Object.assign(pass.ops.addBackends.find((a) => a.id === b.id)!, { draining, local });
      }
    }
  }

  /** After the local addresses changed: every backend's local flag is checked (nothing is removed here: re-adopted backends wait for the full pass). */
  relocalize(): DatapathOps {
    const pass: PlanPass = { ops: emptyOps(), released: [], touchedBackends: new Set(this.backends.keys()), touchedTables: new Set(), touchedVips: new Set() };
    this.settleBackends(pass, false, false);
    return pass.ops;
  }

  private settleTables(pass: PlanPass, full: boolean): void {
    const sigs = full ? [...this.tables.keys()] : [...pass.touchedTables];
    for (const sig of sigs) {
      const t = this.tables.get(sig);
      if (!t || t.refs > 0) continue;
      this.tables.delete(sig);
      pass.ops.removeTables.push(t.id);
      pass.released.push({ allocator: this.tableIds, id: t.id });
    }
    if (full) {
      // Re-adopted tables no frontend turned out to match.
      for (const id of this.adoptedTables.keys()) {
        pass.ops.removeTables.push(id);
        pass.released.push({ allocator: this.tableIds, id });
      }
      this.adoptedTables.clear();
    }
  }

  private settleVips(pass: PlanPass, full: boolean): void {
    const addresses = full ? new Set([...this.vipRefs.keys(), ...this.adoptedVips, ...pass.touchedVips]) : pass.touchedVips;
    for (const a of addresses) {
      const want = (this.vipRefs.get(a) ?? 0) > 0;
      const have = this.adoptedVips.has(a);
      if (want && !have) pass.ops.addVips.push(a);
      if (!want && have) pass.ops.removeVips.push(a);
      if (want) this.adoptedVips.add(a);
      else this.adoptedVips.delete(a);
    }
  }

  private dropOrphans(pass: PlanPass): void {
    for (const keys of this.orphanRanges.values()) for (const k of keys) pass.ops.removeSourceRanges.push(Buffer.from(k, 'hex'));
    for (const [fid, ids] of this.orphanMembers) for (const b of ids) pass.ops.removeMembers.push([fid, b]);
    this.orphanRanges.clear();
    this.orphanMembers.clear();
  }

  // ------------------------------------------------------------ problems and status

  private setProblems(key: string, service: string, problems: FrontendProblem[]): void {
    const others = (this.problems.get(key) ?? []).filter((p) => p.service !== service);
    const all = [...others, ...problems];
    if (all.length > 0) this.problems.set(key, all);
    else this.problems.delete(key);
  }

  private addProblem(key: string, service: string, p: Omit<FrontendProblem, 'object' | 'service'>): void {
    const list = (this.problems.get(key) ?? []).filter((x) => !(x.service === service && x.reason === p.reason));
    list.push({ object: key, service, ...p });
    this.problems.set(key, list);
  }

  /** Drops the problems of services that no longer claim the key, and of the owner (recomputed by the caller). */
  private clearProblems(key: string, owner: string | undefined): void {
    const list = this.problems.get(key);
    if (!list) return;
    const keep = list.filter((p) => p.service !== owner && this.claims.of(key, p.service) !== undefined && p.reason === 'FrontendConflict');
    if (keep.length > 0) this.problems.set(key, keep);
    else this.problems.delete(key);
  }

  /** Record a write the kernel refused (sync.ts): the frontend is reported and written again on the next pass. */
  writeFailed(key: string, message: string, map: string): void {
    const f = this.frontends.get(key);
    const service = f?.service ?? this.ownerOf(key) ?? '';
    if (f) f.dirty = true;
    this.addProblem(key, service, { reason: 'WriteFailed', map, message, blocking: true });
    this.retry.add(key);
    this.freed = true;
  }

  /** A table the kernel refused: published again by the next pass that uses it. */
  tableFailed(tableId: number): void {
    for (const t of this.tables.values()) if (t.id === tableId) t.published = false;
  }

  /**
   * Where backends' routes go (the neighbour primer learns it after the
   * maps are written). Returns: the services whose status may have changed
   * (those with a DSR frontend).
   */
  setOffLinkBackends(offLink: ReadonlyMap<string, string>): string[] {
    this.offLink = new Map(offLink);
    const out: string[] = [];
    for (const [svc, list] of this.byService) if (list.some((f) => f.forwardingMode === 'dsr' && f.dsrDispatch === 'l2')) out.push(svc);
    return out;
  }

  status(service: string): ServiceProgramStatus {
    const mine = this.byService.get(service);
    const problems: FrontendProblem[] = [...(this.invalid.get(service) ?? [])];
    let programmed = 0;
    for (const want of mine ?? NO_FRONTENDS) {
      const key = frontendKeyString(want);
      const own = [...(this.problems.get(key) ?? []).filter((p) => p.service === service), ...dsrUnreachableBackends(want, this.offLink)];
      problems.push(...own);
      const f = this.frontends.get(key);
      if (f && f.service === service && !own.some((p) => p.blocking)) programmed++;
    }
    return { frontends: (mine?.length ?? 0) + (this.invalid.get(service)?.length ?? 0), programmed, problems };
  }

  /** Every service with a blocking problem, with its status (for `pharos status` and metrics). */
  notProgrammed(): Map<string, ServiceProgramStatus> {
    const services = new Set<string>([...this.invalid.keys()]);
    for (const list of this.problems.values()) for (const p of list) if (p.blocking) services.add(p.service);
    if (this.offLink.size > 0) {
      for (const [svc, list] of this.byService) if (list.some((f) => dsrUnreachableBackends(f, this.offLink).length > 0)) services.add(svc);
    }
    const out = new Map<string, ServiceProgramStatus>();
    for (const s of services) {
      const st = this.status(s);
      if (st.programmed < st.frontends) out.set(s, st);
    }
    return out;
  }

  claimedFrontends(): number {
    let n = 0;
    for (const list of this.byService.values()) n += list.length;
    return n;
  }

  /** Every frontend services ask for, with what is programmed for it (undefined: not in the data path). */
  *desired(): Iterable<{ frontend: Frontend; programmed?: ProgrammedFrontend }> {
    for (const [svc, list] of this.byService) {
      for (const f of list) {
        const p = this.frontends.get(frontendKeyString(f));
        yield p && p.service === svc ? { frontend: f, programmed: p } : { frontend: f };
      }
    }
  }

  /** Counts for capacity metrics. */
  usage(): { frontends: number; backends: number; tables: number; frontendCapacity: number; backendCapacity: number; tableCapacity: number } {
    return {
      frontends: this.frontendIds.size, backends: this.backendIds.size, tables: this.tableIds.size,
      frontendCapacity: this.frontendIds.capacity, backendCapacity: this.backendIds.capacity, tableCapacity: this.tableIds.capacity,
    };
  }

  /** Tables in use by size M (for their kernel memory). */
  tableSizes(): Map<number, number> {
    const out = new Map<number, number>();
    for (const t of this.tables.values()) out.set(t.m, (out.get(t.m) ?? 0) + 1);
    return out;
  }

  /** Entries of the maps this planner fills, as it wrote them (no map walk). */
  entries(): Map<string, number> {
    let ranges = 0;
    let members = 0;
    for (const f of this.frontends.values()) {
      ranges += f.sourceRangeKeys.size;
      members += f.memberIds.size;
    }
    return new Map([
      ['ph_frontends', this.frontends.size], ['ph_backends', this.backendIds.size], ['ph_maglev', this.tableIds.size],
      ['ph_vips', this.adoptedVips.size], ['ph_src_ranges', ranges], ['ph_fe_members', members],
    ]);
  }
}

/**
 * Which services claim each frontend key. Nearly every key has exactly one
 * claimant, stored as its Frontend (which names its service); a Map only
 * for the rare shared key (10,000 one-entry Maps cost megabytes).
 */
class Claims {
  private readonly byKey = new Map<string, Frontend | Map<string, Frontend>>();

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  add(key: string, f: Frontend): void {
    const cur = this.byKey.get(key);
    if (cur === undefined || (!(cur instanceof Map) && cur.service === f.service)) this.byKey.set(key, f);
    else if (cur instanceof Map) cur.set(f.service, f);
    else this.byKey.set(key, new Map([[cur.service, cur], [f.service, f]]));
  }

  remove(key: string, service: string): void {
    const cur = this.byKey.get(key);
    if (cur === undefined) return;
    if (!(cur instanceof Map)) {
      if (cur.service === service) this.byKey.delete(key);
      return;
    }
    cur.delete(service);
    if (cur.size === 1) this.byKey.set(key, cur.values().next().value!);
    else if (cur.size === 0) this.byKey.delete(key);
  }

  of(key: string, service: string): Frontend | undefined {
    const cur = this.byKey.get(key);
    if (cur === undefined) return undefined;
    return cur instanceof Map ? cur.get(service) : cur.service === service ? cur : undefined;
  }

  /** The claimant first by service name. */
  first(key: string): Frontend | undefined {
    const cur = this.byKey.get(key);
    if (cur === undefined || !(cur instanceof Map)) return cur;
    return [...cur.values()].sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0))[0];
  }

  all(key: string): Frontend[] {
    const cur = this.byKey.get(key);
    return cur === undefined ? [] : cur instanceof Map ? [...cur.values()] : [cur];
  }
}

const NO_FRONTENDS: Frontend[] = [];

/** Shared empty sets: most frontends have no source ranges and no affinity (20,000 empty Sets otherwise). */
const NO_KEYS: Set<string> = new Set();
const NO_IDS: Set<number> = new Set();

/** A key both added and removed in one pass (a frontend id reused at once) must stay: drop it from the removals. */
function dedupe(ops: DatapathOps): void {
  if (ops.removeSourceRanges.length > 0 && ops.addSourceRanges.length > 0) {
    const added = new Set(ops.addSourceRanges.map((k) => k.toString('hex')));
    ops.removeSourceRanges = ops.removeSourceRanges.filter((k) => !added.has(k.toString('hex')));
  }
  if (ops.removeMembers.length > 0 && ops.addMembers.length > 0) {
    const added = new Set(ops.addMembers.map(([f, b]) => `${f}/${b}`));
    ops.removeMembers = ops.removeMembers.filter(([f, b]) => !added.has(`${f}/${b}`));
  }
}

function validate(f: Frontend, key: string): FrontendProblem | undefined {
  const problem = (message: string): FrontendProblem => ({ object: key, service: f.service, reason: 'InvalidFrontend', message, blocking: true });
  if (f.protocol !== 'TCP' && f.protocol !== 'UDP') return problem(`${f.protocol} frontends are not supported by the data path; skipped`);
  let family;
  try {
    family = familyOf(f.address);
  } catch (err) {
    return problem((err as Error).message);
  }
  for (const b of f.backends) {
    let ok = false;
    try {
      ok = familyOf(b.address) === family;
    } catch {
      ok = false;
    }
    if (!ok) return problem(`backend ${b.address} is not an ${family} address; frontend skipped`);
  }
  return undefined;
}

/**
 * A DSR frontend limited to L2 dispatch (`lb.pharos.io/dsr-dispatch: l2`)
 * reaches a backend only on a segment of this node: a frame for one behind
 * a router is dropped (`dsr_offlink`), so 1/N of the flows would fail
 * silently. Blocking: the frontend is reported not programmed (condition,
 * `pharos status`, metric, explain) and this node does not announce it.
 * With auto (the default) such a backend gets its packets encapsulated.
 * `offLink`: backend address → gateway.
 */
export function dsrUnreachableBackends(f: Frontend, offLink: ReadonlyMap<string, string>): FrontendProblem[] {
  if (f.forwardingMode !== 'dsr' || f.dsrDispatch !== 'l2' || offLink.size === 0) return [];
  const out: FrontendProblem[] = [];
  const key = frontendKeyString(f);
  for (const b of f.backends) {
    const gateway = offLink.get(b.address);
    if (gateway === undefined) continue;
    out.push({
      object: key, service: f.service, reason: 'DsrBackendNotOnLink', blocking: true,
      message: `service ${f.service}: DSR backend ${b.address} is reached through gateway ${gateway}, not on a segment of this node: dsr-dispatch l2 cannot reach it (its flows would be dropped; auto or ipip would encapsulate)`,
    });
  }
  return out;
}

/** What a DSR frontend (L2 dispatch, bpf/lib/dsr.h) serves differently from what the service asks: warnings, it still serves. */
function dsrLimits(f: Frontend): string[] {
  if (f.forwardingMode !== 'dsr') return [];
  const out: string[] = [];
  const otherPorts = [...new Set(f.backends.filter((b) => b.port !== f.port).map((b) => b.port))];
  if (otherPorts.length > 0) {
    out.push(`forwarding mode dsr keeps the destination port ${f.port}, but endpoints listen on ${otherPorts.join(', ')}: they must also serve ${f.address}:${f.port} (targetPort = port)`);
  }
  if (f.sessionAffinity) out.push('forwarding mode dsr keeps no per-client state: sessionAffinity ClientIP is not applied (Maglev places each flow)');
  return out;
}

function sameValue(a: FrontendValue, b: FrontendValue): boolean {
  return a.id === b.id && a.flags === b.flags && a.backends === b.backends && a.affinityTimeout === b.affinityTimeout &&
    a.table === b.table && a.tableSize === b.tableSize;
}

function sameSlots(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
