/**
 * The LB IPAM allocator: which address each LoadBalancer service gets from
 * which pool, and the condition that explains it. Pure: no I/O, no clock;
 * the same input always gives the same answer.
 *
 * A full reconcile runs three phases over the in-scope services, taken in a
 * fixed order (creationTimestamp, then namespace/name):
 *   A. adopt what the previous allocation state says each service holds;
 *   B. adopt addresses found in status.loadBalancer.ingress (a restart, a
 *      migration from Cilium or MetalLB) — both only while a pool that
 *      selects the service still covers the address (any pool: disabled,
 *      invalid and conflicting ones keep, they only hand out nothing), and
 *      before anything new is handed out, so live addresses never move;
 *   C. give every service still missing a family an address: its requested
 *      one, else a shared one (same sharing key, ports apart), else the lowest
 *      free address of the oldest selecting pool that has one.
 *
 * `Ipam` keeps the result and applies one service change in O(log n)-ish
 * time: it releases and re-adopts only that service (and anyone it displaces
 * from a shared address), then retries the services still waiting for a
 * family whose free space just changed. Pool changes (rare) rerun the full
 * reconcile with the current allocations as "previous". The result is, by
 * construction and by property test, exactly what `reconcile()` returns for
 * the same services, pools and previous state.
 */
import { formatAddress, parseAddress, IntervalSet, type IPAddress } from '../model/cidr.js';
import { matchesSelectorWith } from '../model/selector.js';
import { objectKey, type Condition, type IPFamily, type IPPool, type Service } from '../model/types.js';
import { analysePools, type AnalysedPool } from './pools.js';
import { poolStatus, type PoolStatus } from './pool-status.js';
import {
  clashingPorts,
  isIpamService,
  readRequest,
  shareProblem,
  type IpamRequest,
  type RequestedAddress,
  type ScopeOptions,
} from './request.js';

export const IPAM_CONDITION = 'lb.pharos.io/IPAMRequestSatisfied';

export type IpamReason =
  | 'satisfied'
  | 'no_pool'
  | 'out_of_ips'
  | 'pool_selector_mismatch'
  | 'already_allocated'
  | 'conflicting_ports'
  | 'invalid_request';

export interface AllocatedAddress {
  ip: string;
  family: IPFamily;
  pool: string;
}

/**
 * What the IPAM wants for one service:
 * - `managed`: ours; status.loadBalancer.ingress should be `ingress` and our
 *   condition `condition` (without lastTransitionTime: the controller stamps it).
 * - `release`: it left our scope but still carries our condition; write
 *   `ingress` (its status minus addresses from our pools) and drop our condition.
 * - `leave-alone`: never ours (another class, not LoadBalancer): touch nothing.
 */
export type ServiceOutcome =
  | { kind: 'managed'; ingress: string[]; condition: Condition; allocations: AllocatedAddress[] }
  | { kind: 'release'; ingress: string[] }
  | { kind: 'leave-alone' };

/** JSON-serialisable allocations (manifests mode keeps them in --state-dir). Keys are `namespace/name`. */
export interface AllocationState {
  version: 1;
  services: Record<string, string[]>;
}

export interface ReconcileInput {
  pools: Iterable<IPPool>;
  services: Iterable<Service>;
  previous?: AllocationState;
}

export interface ReconcileResult {
  services: Map<string, ServiceOutcome>;
  pools: Map<string, PoolStatus>;
  state: AllocationState;
}

/** Which outcomes and pool statuses an operation changed (a deleted service appears with no outcome). */
export interface ChangeSet {
  services: Set<string>;
  pools: Set<string>;
}

export type IpamOptions = ScopeOptions;

// ---------------------------------------------------------------- internal state

interface PoolRuntime {
  a: AnalysedPool;
  /** Free addresses per family; conflicting pools have none. */
  free: Record<IPFamily, IntervalSet>;
  /** Conflicting pools: how many held addresses they account for (those no non-conflicting pool covers: `Group.owner`). */
  kept: Record<IPFamily, bigint>;
}

/** One handed-out address and the services on it (more than one only when shared). */
interface Group {
  family: IPFamily;
  value: bigint;
  /** The address as written in status (canonical form). */
  text: string;
  /**
   * The pool that accounts for the address: the non-conflicting pool covering
   * it (the address leaves its free space), else the oldest conflicting pool
   * covering it (counted in its `kept`). It depends on the address alone, not
   * on which member came first; each member's own pool is its slot's.
   */
  owner: PoolRuntime;
  sharingKey?: string;
  /** Sorted by service order. */
  members: Entry[];
}

interface Failure {
  reason: Exclude<IpamReason, 'satisfied'>;
  message: string;
}

interface Slot {
  family: IPFamily;
  requested?: RequestedAddress;
  group?: Group;
  /** With `group`: the pool the service holds the address from (`keepingPool`: shown in its condition). */
  pool?: PoolRuntime;
}

interface Entry {
  svc: Service;
  req: IpamRequest;
  slots: Slot[];
  /** Everything about the service that decides its allocation, except its status; computed when first compared. */
  signature?: string;
  statusClaims: IPAddress[];
}

const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

function covers(p: PoolRuntime, addr: IPAddress): boolean {
  return p.a.allocatable[addr.family].some((r) => r.first <= addr.value && addr.value <= r.last);
}

function compareOrder(a: Entry, b: Entry): number {
  return a.req.order < b.req.order ? -1 : a.req.order > b.req.order ? 1 : 0;
}

const NO_ADDRESSES: IPAddress[] = [];

function statusAddresses(svc: Service): IPAddress[] {
  if (svc.status.ingress.length === 0) return NO_ADDRESSES;
  const out: IPAddress[] = [];
  for (const ing of svc.status.ingress) {
    const parsed = parseAddress(ing.ip ?? '', 'status.loadBalancer.ingress');
    if (parsed.ok) out.push(parsed.value);
  }
  return out;
}

function signatureOf(e: Entry): string {
  const req = e.req;
  const labels = Object.entries(e.svc.meta.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([
    req.order,
    req.families,
    req.requireAll,
    [...req.requested.entries()].map(([f, r]) => [f, String(r.value)]),
    req.sharingKey ?? null,
    req.shareWithNamespaces === '*' ? '*' : [...req.shareWithNamespaces].sort(),
    [...req.ports].sort(),
    labels,
    req.error ?? null,
  ]);
}

function hasOurCondition(svc: Service): boolean {
  return svc.status.conditions.some((c) => c.type === IPAM_CONDITION);
}

function sameOutcome(a: ServiceOutcome | undefined, b: ServiceOutcome | undefined): boolean {
  if (a === undefined || b === undefined || a.kind !== b.kind) return a === b;
  if (a.kind === 'leave-alone') return true;
  const bi = (b as typeof a).ingress;
  if (a.ingress.length !== bi.length || a.ingress.some((ip, i) => ip !== bi[i])) return false;
  if (a.kind === 'release') return true;
  const bm = b as typeof a;
  return (
    a.condition.status === bm.condition.status &&
    a.condition.reason === bm.condition.reason &&
    a.condition.message === bm.condition.message &&
    a.allocations.every((x, i) => x.pool === bm.allocations[i]?.pool)
  );
}

function signature(e: Entry): string {
  return (e.signature ??= signatureOf(e));
}

// ---------------------------------------------------------------- the allocator

export class Ipam {
  private readonly options: IpamOptions;
  private pools: PoolRuntime[] = [];
  private poolsByName = new Map<string, PoolRuntime>();
  private poolObjects = new Map<string, IPPool>();
  private services = new Map<string, Service>();
  private entries = new Map<string, Entry>();
  private groups: Record<IPFamily, Map<bigint, Group>> = { IPv4: new Map(), IPv6: new Map() };
  private groupsByKey = new Map<string, Set<Group>>();
  /** Entries still missing an address of the family that something could fill (`updatePending`). */
  private pending: Record<IPFamily, Set<Entry>> = { IPv4: new Set(), IPv6: new Set() };
  private outcomes = new Map<string, ServiceOutcome>();
  private poolStatuses = new Map<string, PoolStatus>();
  /** Pools whose free space changed since their status was last computed. */
  private dirtyPools = new Set<PoolRuntime>();
  /** Families whose holders or free space changed during the current operation. */
  private touched = new Set<IPFamily>();

  constructor(options: IpamOptions) {
    this.options = options;
  }

  // ------------------------------------------------------------ public API

  /** Replace everything and run the full reconcile. Returns what changed compared to before. */
  loadAll(pools: Iterable<IPPool>, services: Iterable<Service>, previous?: AllocationState): ChangeSet {
    const oldOutcomes = this.outcomes;
    const oldPools = this.poolStatuses;
    this.reset();
    for (const p of pools) this.poolObjects.set(p.meta.name, p);
    this.buildPools();
    for (const svc of services) this.services.set(objectKey(svc.meta), svc);
    const inScope: Entry[] = [];
    for (const [key, svc] of this.services) {
      if (isIpamService(svc, this.options)) {
        const e = this.makeEntry(svc);
        this.entries.set(key, e);
        inScope.push(e);
      }
    }
    inScope.sort(compareOrder);
    // Phase A: the previous state, in service order (a shared address goes to the earliest compatible holders).
    for (const e of inScope) {
      for (const text of previous?.services[e.req.key] ?? []) {
        const parsed = parseAddress(text, 'state');
        if (parsed.ok) this.adopt(e, parsed.value, 'ordered', []);
      }
    }
    this.runPhasesBC(inScope);
    for (const [key, svc] of this.services) {
      const e = this.entries.get(key);
      this.outcomes.set(key, e ? this.managedOutcome(e) : this.outOfScopeOutcome(svc));
    }
    for (const p of this.pools) this.poolStatuses.set(p.a.name, this.computePoolStatus(p));
    this.dirtyPools.clear();
    return this.diff(oldOutcomes, oldPools);
  }

  /** A service was added or changed. */
  upsertService(svc: Service): ChangeSet {
    const key = objectKey(svc.meta);
    this.services.set(key, svc);
    const old = this.entries.get(key);
    const changes: ChangeSet = { services: new Set(), pools: new Set() };
    if (!isIpamService(svc, this.options)) {
      this.touched.clear();
      if (old) {
        this.release(old);
        this.entries.delete(key);
        this.forgetPending(old);
      }
      this.setOutcome(key, this.outOfScopeOutcome(svc), changes);
      this.retryPending([], changes);
      return changes;
    }
    const next = this.makeEntry(svc);
    if (old && signature(old) === signature(next) && !this.couldAdoptMore(old, next.statusClaims)) {
      old.svc = svc;
      old.statusClaims = next.statusClaims;
      return changes;
    }
    const claims = old ? this.held(old) : [];
    this.touched.clear();
    if (old) {
      this.release(old);
      this.forgetPending(old);
    }
    this.entries.set(key, next);
    const displaced: Entry[] = [];
    for (const c of claims) this.adopt(next, c, 'ordered', displaced);
    for (const d of displaced) this.forgetPending(d);
    this.retryPending([next, ...displaced], changes);
    return changes;
  }

  deleteService(key: string): ChangeSet {
    const changes: ChangeSet = { services: new Set(), pools: new Set() };
    if (!this.services.delete(key)) return changes;
    const e = this.entries.get(key);
    this.touched.clear();
    if (e) {
      this.release(e);
      this.entries.delete(key);
      this.forgetPending(e);
    }
    this.outcomes.delete(key);
    changes.services.add(key);
    this.retryPending([], changes);
    return changes;
  }

  /** Pool changes rerun the full reconcile, keeping every address still covered. */
  upsertPool(pool: IPPool): ChangeSet {
    const pools = new Map(this.poolObjects);
    pools.set(pool.meta.name, pool);
    return this.loadAll(pools.values(), [...this.services.values()], this.exportState());
  }

  deletePool(name: string): ChangeSet {
    if (!this.poolObjects.has(name)) return { services: new Set(), pools: new Set() };
    const pools = new Map(this.poolObjects);
    pools.delete(name);
    return this.loadAll(pools.values(), [...this.services.values()], this.exportState());
  }

  outcome(key: string): ServiceOutcome | undefined {
    return this.outcomes.get(key);
  }

  allOutcomes(): ReadonlyMap<string, ServiceOutcome> {
    return this.outcomes;
  }

  poolStatus(name: string): PoolStatus | undefined {
    return this.poolStatuses.get(name);
  }

  allPoolStatuses(): ReadonlyMap<string, PoolStatus> {
    return this.poolStatuses;
  }

  /** Current allocations, keys and addresses in a stable order. */
  exportState(): AllocationState {
    const services: Record<string, string[]> = {};
    for (const key of [...this.entries.keys()].sort()) {
      const e = this.entries.get(key)!;
      const ips = e.slots.filter((s) => s.group).map((s) => s.group!.text);
      if (ips.length) services[key] = ips;
    }
    return { version: 1, services };
  }

  // ------------------------------------------------------------ phases

  private reset(): void {
    this.pools = [];
    this.poolsByName = new Map();
    this.poolObjects = new Map();
    this.services = new Map();
    this.entries = new Map();
    this.groups = { IPv4: new Map(), IPv6: new Map() };
    this.groupsByKey = new Map();
    this.pending = { IPv4: new Set(), IPv6: new Set() };
    this.outcomes = new Map();
    this.poolStatuses = new Map();
    this.dirtyPools = new Set();
  }

  private buildPools(): void {
    for (const a of analysePools(this.poolObjects.values())) {
      const free = {
        IPv4: a.state === 'conflicting' ? new IntervalSet() : IntervalSet.of(a.allocatable.IPv4),
        IPv6: a.state === 'conflicting' ? new IntervalSet() : IntervalSet.of(a.allocatable.IPv6),
      };
      const rt: PoolRuntime = { a, free, kept: { IPv4: 0n, IPv6: 0n } };
      this.pools.push(rt);
      this.poolsByName.set(a.name, rt);
    }
  }

  private makeEntry(svc: Service): Entry {
    const req = readRequest(svc);
    const slots: Slot[] = req.families.map((family) => {
      const requested = req.error ? undefined : req.requested.get(family);
      return requested ? { family, requested } : { family };
    });
    return { svc, req, slots, statusClaims: statusAddresses(svc) };
  }

  /**
   * Phase B (status claims) for every entry in `entries`, then phase C, each
   * in service order — the same order the full reconcile uses.
   */
  private runPhasesBC(entries: Entry[]): void {
    const sorted = [...entries].sort(compareOrder);
    for (const e of sorted) {
      for (const c of e.statusClaims) this.adopt(e, c, 'append', []);
    }
    for (const e of sorted) {
      this.allocateMissing(e);
      this.updatePending(e);
    }
  }

  /**
   * After a change: the changed service and anyone displaced get phases B and
   * C, together with every waiting service of a family whose free space or
   * sharing groups changed. Waiting services of other families cannot have
   * become satisfiable (nothing they could use appeared).
   */
  private retryPending(affected: Entry[], changes: ChangeSet): void {
    const rerun = new Set(affected);
    for (const family of this.touched) for (const e of this.pending[family]) rerun.add(e);
    for (const e of rerun) this.forgetPending(e);
    this.runPhasesBC([...rerun]);
    // Why a waiting service waits depends on who holds what now: refresh every
    // waiting service of a family whose holders changed during this change.
    const explain = new Set(rerun);
    for (const family of this.touched) for (const e of this.pending[family]) explain.add(e);
    for (const e of explain) this.setOutcome(e.req.key, this.managedOutcome(e), changes);
    this.flushPools(changes);
  }

  /**
   * An empty slot waits for its family to change. An invalid request gets
   * nothing new, but still adopts an address its status shows once that is
   * free (phase B of the full reconcile does; a restart would), so it waits
   * too when its status names an address of the family.
   */
  private updatePending(e: Entry): void {
    for (const slot of e.slots) {
      const waits = !slot.group && (!e.req.error || e.statusClaims.some((c) => c.family === slot.family));
      if (waits) this.pending[slot.family].add(e);
      else this.pending[slot.family].delete(e);
    }
  }

  private forgetPending(e: Entry): void {
    for (const family of FAMILIES) this.pending[family].delete(e);
  }

  private held(e: Entry): IPAddress[] {
    return e.slots.filter((s) => s.group).map((s) => ({ family: s.family, value: s.group!.value }));
  }

  /** Whether a status claim could fill a slot that is still empty (else a status echo changes nothing). */
  private couldAdoptMore(e: Entry, claims: IPAddress[]): boolean {
    return claims.some((c) => e.slots.some((s) => s.family === c.family && !s.group));
  }

  // ------------------------------------------------------------ pools and groups

  private selects(pool: PoolRuntime, e: Entry): boolean {
    const selector = pool.a.pool.serviceSelector;
    return selector === undefined || matchesSelectorWith(selector, e.req.selectorLabel);
  }

  /** The non-conflicting pool whose allocatable ranges hold `addr` (pools never overlap once conflicts are out). */
  private coveringPool(addr: IPAddress): PoolRuntime | undefined {
    for (const p of this.pools) {
      if (p.a.state !== 'conflicting' && covers(p, addr)) return p;
    }
    return undefined;
  }

  /**
   * The pool in which `e` keeps an address it holds: the non-conflicting pool
   * covering it if that one selects `e`, else the oldest conflicting pool that
   * covers it and selects `e` (issue 17). Conflicts decide which pool hands
   * out, never whether a live address stays: a pool added, edited or
   * re-created over a serving one, whatever its age, takes nothing away. This
   * depends only on the pools and the service, not on history, so the full
   * reconcile (given the previous state) and the incremental path agree.
   * A pool whose selector cannot be checked keeps regardless of it.
   */
  private keepingPool(e: Entry, addr: IPAddress): PoolRuntime | undefined {
    let conflicting: PoolRuntime | undefined;
    for (const p of this.pools) {
      if (!covers(p, addr) || !(p.a.selectorInvalid || this.selects(p, e))) continue;
      if (p.a.state !== 'conflicting') return p;
      conflicting ??= p;
    }
    return conflicting;
  }

  private flushPools(changes: ChangeSet): void {
    for (const pool of this.dirtyPools) {
      const status = this.computePoolStatus(pool);
      if (JSON.stringify(status) !== JSON.stringify(this.poolStatuses.get(pool.a.name))) {
        this.poolStatuses.set(pool.a.name, status);
        changes.pools.add(pool.a.name);
      }
    }
    this.dirtyPools.clear();
  }

  private computePoolStatus(pool: PoolRuntime): PoolStatus {
    return poolStatus(pool.a, { IPv4: pool.free.IPv4.size, IPv6: pool.free.IPv6.size }, pool.kept);
  }

  /** The pool that accounts for `addr` (see `Group.owner`); `pool` covers it. */
  private ownerOf(addr: IPAddress, pool: PoolRuntime): PoolRuntime {
    if (pool.a.state !== 'conflicting') return pool;
    return this.coveringPool(addr) ?? this.pools.find((p) => covers(p, addr))!;
  }

  /** `pool` covers `value` and is the one `e` holds it from (`keepingPool`). */
  private newGroup(e: Entry, slot: Slot, pool: PoolRuntime, value: bigint): void {
    const owner = this.ownerOf({ family: slot.family, value }, pool);
    if (owner.a.state === 'conflicting') owner.kept[slot.family]++;
    else owner.free[slot.family].delete(value);
    const group: Group = { family: slot.family, value, text: formatAddress(slot.family, value), owner, members: [e] };
    this.indexKey(group);
    this.groups[slot.family].set(value, group);
    slot.group = group;
    slot.pool = pool;
    this.touched.add(slot.family);
    this.dirtyPools.add(owner);
  }

  private joinGroup(e: Entry, slot: Slot, group: Group, pool: PoolRuntime): void {
    const at = group.members.findIndex((m) => compareOrder(e, m) < 0);
    if (at < 0) group.members.push(e);
    else group.members.splice(at, 0, e);
    slot.group = group;
    slot.pool = pool;
    this.touched.add(slot.family);
  }

  private leaveGroup(e: Entry, slot: Slot): void {
    const group = slot.group!;
    group.members = group.members.filter((m) => m !== e);
    delete slot.group;
    delete slot.pool;
    this.touched.add(group.family);
    this.indexKey(group);
    if (group.members.length === 0) {
      this.groups[group.family].delete(group.value);
      if (group.owner.a.state === 'conflicting') group.owner.kept[group.family]--;
      else group.owner.free[group.family].add(group.value);
      this.dirtyPools.add(group.owner);
    }
  }

  private release(e: Entry): void {
    for (const slot of e.slots) if (slot.group) this.leaveGroup(e, slot);
  }

  /** Keep `groupsByKey` in step with the group's members (all of whom share one key, if any). */
  private indexKey(group: Group): void {
    const key = group.members[0]?.req.sharingKey;
    if (key === group.sharingKey) return;
    if (group.sharingKey !== undefined) {
      const set = this.groupsByKey.get(group.sharingKey);
      set?.delete(group);
      if (set && set.size === 0) this.groupsByKey.delete(group.sharingKey);
    }
    if (key === undefined) {
      delete group.sharingKey;
      return;
    }
    group.sharingKey = key;
    let set = this.groupsByKey.get(key);
    if (!set) this.groupsByKey.set(key, (set = new Set()));
    set.add(group);
  }

  private compatibleWithAll(e: Entry, members: readonly Entry[]): boolean {
    return members.every((m) => shareProblem(e.req, m.req) === undefined);
  }

  /**
   * Take `addr` for `e` if a pool selecting `e` covers it (`keepingPool`) and
   * it is free or shareable. `ordered` (phase A) admits holders of a shared
   * address greedily in service order, so an earlier service can displace a
   * later one that no longer fits beside it; `append` (phase B) only joins.
   */
  private adopt(e: Entry, addr: IPAddress, mode: 'ordered' | 'append', displaced: Entry[]): boolean {
    const slot = e.slots.find((s) => s.family === addr.family && !s.group);
    if (!slot) return false;
    if (slot.requested && slot.requested.value !== addr.value) return false;
    const pool = this.keepingPool(e, addr);
    if (!pool) return false;
    const group = this.groups[addr.family].get(addr.value);
    if (!group) {
      this.newGroup(e, slot, pool, addr.value);
      return true;
    }
    if (mode === 'append' || group.members.length === 0) {
      if (!this.compatibleWithAll(e, group.members)) return false;
      this.joinGroup(e, slot, group, pool);
      return true;
    }
    const candidates = [...group.members, e].sort(compareOrder);
    const admitted: Entry[] = [];
    for (const c of candidates) if (this.compatibleWithAll(c, admitted)) admitted.push(c);
    if (!admitted.includes(e)) return false;
    for (const m of group.members) {
      if (admitted.includes(m)) continue;
      const theirs = m.slots.find((s) => s.group === group)!;
      delete theirs.group;
      delete theirs.pool;
      displaced.push(m);
      this.touched.add(group.family);
    }
    group.members = admitted.filter((m) => m !== e);
    this.joinGroup(e, slot, group, pool);
    this.indexKey(group);
    return true;
  }

  // ------------------------------------------------------------ phase C

  private allocateMissing(e: Entry): void {
    for (const slot of e.slots) {
      if (slot.group) continue;
      if (e.req.error) continue;
      if (slot.requested) this.takeRequested(e, slot, slot.requested, true);
      else this.takeAny(e, slot, true);
    }
  }

  /**
   * Why a slot is empty, judged on the state as it is now (not as it was at
   * the service's turn), so the same state always gives the same message.
   */
  private explain(e: Entry, slot: Slot): Failure {
    if (e.req.error) return { reason: 'invalid_request', message: `${e.req.error.field}: ${e.req.error.message}` };
    const failure = slot.requested ? this.takeRequested(e, slot, slot.requested, false) : this.takeAny(e, slot, false);
    return failure ?? { reason: 'out_of_ips', message: `no ${slot.family} address allocated yet` };
  }

  /** Take the requested address if it can be had (`take` false: only say why not). */
  private takeRequested(e: Entry, slot: Slot, want: RequestedAddress, take: boolean): Failure | undefined {
    const field = e.req.requestedField ?? 'lb.pharos.io/ips';
    const addr: IPAddress = { family: slot.family, value: want.value };
    const pool = this.coveringPool(addr);
    if (!pool) return { reason: 'no_pool', message: `${field}: ${this.whyNotCovered(addr)}` };
    if (pool.a.state !== 'active') {
      const why = pool.a.state === 'disabled' ? 'is disabled (spec.disabled)' : `has an invalid spec (${pool.a.errors.map((x) => x.field).join(', ')})`;
      return { reason: 'no_pool', message: `${field}: ${want.text} is in pool ${pool.a.name}, which ${why}` };
    }
    if (!this.selects(pool, e)) {
      return { reason: 'pool_selector_mismatch', message: `${field}: ${want.text} is in pool ${pool.a.name}, whose spec.serviceSelector does not select this service` };
    }
    const group = this.groups[slot.family].get(want.value);
    if (!group) {
      if (take) this.newGroup(e, slot, pool, want.value);
      return undefined;
    }
    for (const m of group.members) {
      const problem = shareProblem(e.req, m.req);
      if (problem === undefined) continue;
      if (problem === 'ports') {
        return {
          reason: 'conflicting_ports',
          message: `${e.req.sharingKeyField}: ${want.text} is shared under key ${JSON.stringify(e.req.sharingKey)} by ${m.req.key}, whose ports clash (${clashingPorts(e.req, m.req).join(', ')})`,
        };
      }
      if (problem === 'namespace') {
        return {
          reason: 'already_allocated',
          message: `${field}: ${want.text} is held by ${m.req.key} in another namespace; both services must allow it with lb.pharos.io/sharing-cross-namespace`,
        };
      }
      return {
        reason: 'already_allocated',
        message: `${field}: ${want.text} is already allocated to ${m.req.key}${e.req.sharingKey !== undefined || m.req.sharingKey !== undefined ? ' (sharing needs the same lb.pharos.io/sharing-key on both)' : ''}`,
      };
    }
    if (take) this.joinGroup(e, slot, group, pool);
    return undefined;
  }

  private whyNotCovered(addr: IPAddress): string {
    const text = formatAddress(addr.family, addr.value);
    for (const p of this.pools) {
      for (const b of p.a.blocks) {
        if (b.family !== addr.family || addr.value < b.first || addr.value > b.last) continue;
        if (p.a.state === 'conflicting') return `${text} is in pool ${p.a.name}, which conflicts with another pool`;
        return `${text} is the first or last address of ${p.a.name} ${b.field}, reserved by allowFirstLastIPs: No`;
      }
    }
    return `${text} is not in any pool`;
  }

  private preferredPools(): PoolRuntime[] {
    const specific = this.pools.filter((p) => p.a.pool.serviceSelector !== undefined);
    return specific.length === 0 || specific.length === this.pools.length ? this.pools : [...specific, ...this.pools.filter((p) => p.a.pool.serviceSelector === undefined)];
  }

  /** Share an address under the service's key, else take the lowest free one (`take` false: only say why not). */
  private takeAny(e: Entry, slot: Slot, take: boolean): Failure | undefined {
    const family = slot.family;
    const key = e.req.sharingKey;
    if (key !== undefined) {
      let best: Group | undefined;
      for (const g of this.groupsByKey.get(key) ?? []) {
        if (g.family !== family || g.owner.a.state !== 'active' || !this.selects(g.owner, e)) continue;
        if (!this.compatibleWithAll(e, g.members)) continue;
        if (!best || g.value < best.value) best = g;
      }
      if (best) {
        if (take) this.joinGroup(e, slot, best, best.owner);
        return undefined;
      }
    }
    const usable = (p: PoolRuntime): boolean => p.a.state === 'active' && p.a.allocatable[family].length > 0 && this.selects(p, e);
    // A pool that selects the service by label is preferred over a catch-all
    // pool without a serviceSelector: the more specific pool is what the
    // user meant (a dual-stack `org: empire` pool must win over a v4 default).
    for (const p of this.preferredPools()) {
      const lowest = p.free[family].min();
      if (lowest !== undefined && usable(p)) {
        if (take) this.newGroup(e, slot, p, lowest);
        return undefined;
      }
    }
    const selecting = this.pools.filter(usable);
    if (selecting.length === 0) {
      return { reason: 'no_pool', message: `no enabled, non-conflicting pool with ${family} addresses selects this service (pools select by spec.serviceSelector)` };
    }
    return { reason: 'out_of_ips', message: `no free ${family} address in the pools selecting this service (${selecting.map((p) => p.a.name).join(', ')})` };
  }

  // ------------------------------------------------------------ outcomes

  private managedOutcome(e: Entry): ServiceOutcome {
    const allocations: AllocatedAddress[] = [];
    for (const s of e.slots) {
      if (s.group) allocations.push({ ip: s.group.text, family: s.family, pool: s.pool!.a.name });
    }
    const ingress = allocations.map((a) => a.ip);
    const assigned = allocations.map((a) => `${a.ip} (pool ${a.pool})`).join(', ');
    const condition = (status: 'True' | 'False', reason: IpamReason, message: string): ServiceOutcome => ({
      kind: 'managed',
      ingress,
      allocations,
      condition: { type: IPAM_CONDITION, status, reason, message },
    });
    if (e.req.error) {
      const message = `${e.req.error.field}: ${e.req.error.message}`;
      return condition('False', 'invalid_request', assigned ? `${message}; keeping ${assigned}` : message);
    }
    const missing = e.slots.filter((s) => !s.group);
    const requestedMissing = missing.find((s) => s.requested);
    const satisfied = !requestedMissing && (e.req.requireAll || e.slots.length === 1 ? missing.length === 0 : allocations.length > 0);
    if (satisfied) {
      const notes = missing.map((s) => `; no ${s.family}: ${this.explain(e, s).message}`).join('');
      return condition('True', 'satisfied', `assigned ${assigned}${notes}`);
    }
    const first = requestedMissing ?? missing[0]!;
    const failure = this.explain(e, first);
    return condition('False', failure.reason, assigned ? `${failure.message}; holding ${assigned}` : failure.message);
  }

  /** Our condition is on it: hand back the addresses our pools gave it. Otherwise leave it alone. */
  private outOfScopeOutcome(svc: Service): ServiceOutcome {
    if (!hasOurCondition(svc)) return { kind: 'leave-alone' };
    const ours = (a: IPAddress): boolean =>
      this.pools.some((p) => p.a.blocks.some((b) => b.family === a.family && b.first <= a.value && a.value <= b.last));
    const ingress: string[] = [];
    for (const ing of svc.status.ingress) {
      const parsed = parseAddress(ing.ip ?? '', 'status');
      if (parsed.ok && ours(parsed.value)) continue;
      ingress.push(ing.ip);
    }
    return { kind: 'release', ingress };
  }

  private setOutcome(key: string, outcome: ServiceOutcome, changes: ChangeSet): void {
    if (!sameOutcome(this.outcomes.get(key), outcome)) changes.services.add(key);
    this.outcomes.set(key, outcome);
  }

  private diff(oldOutcomes: Map<string, ServiceOutcome>, oldPools: Map<string, PoolStatus>): ChangeSet {
    const changes: ChangeSet = { services: new Set(), pools: new Set() };
    for (const [key, o] of this.outcomes) if (!sameOutcome(oldOutcomes.get(key), o)) changes.services.add(key);
    for (const key of oldOutcomes.keys()) if (!this.outcomes.has(key)) changes.services.add(key);
    for (const [name, s] of this.poolStatuses) if (JSON.stringify(oldPools.get(name)) !== JSON.stringify(s)) changes.pools.add(name);
    for (const name of oldPools.keys()) if (!this.poolStatuses.has(name)) changes.pools.add(name);
    return changes;
  }
}

/** The full reconcile as a pure function. */
export function reconcile(input: ReconcileInput, options: IpamOptions = { pharosIsDefaultClass: true }): ReconcileResult {
  const ipam = new Ipam(options);
  ipam.loadAll(input.pools, input.services, input.previous);
  // The engine is private to this call, so its maps can be handed out as they are.
  return { services: ipam.allOutcomes() as Map<string, ServiceOutcome>, pools: ipam.allPoolStatuses() as Map<string, PoolStatus>, state: ipam.exportState() };
}
