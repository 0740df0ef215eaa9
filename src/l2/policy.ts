/**
 * desired = f(snapshot) for L2 announcements: which addresses this node may
 * announce, and on which of its interfaces. Pure.
 *
 * A service is a candidate when a policy selects it (serviceSelector) and
 * this node (nodeSelector), it is ours (class unset or lb.pharos.io/l2), and
 * it actually has an address of a kind the policy announces
 * (loadBalancerIPs / externalIPs) — Cilium once created a lease per
 * selected service whether or not it had an address, and API servers
 * suffered for it. With externalTrafficPolicy Local only nodes with a ready
 * local endpoint compete. Interfaces: those matching any of the policy's
 * regexes (all eligible ones when none are given) that are up and have an
 * address; with no such interface the node does not compete.
 *
 * Each service is judged on its own (its object, its slices, the policies),
 * so the caches at the end remember the answer per service and compute it
 * again only for services whose object or slices are new objects: the store
 * replaces an object only when it changed, so one edit costs one service.
 */
import type { EndpointSlice, Kind, L2Policy, Node, NodeInterface, Service } from '../model/types.js';
import { matchesSelector, matchesSelectorWith, type LabelLookup } from '../model/selector.js';
import type { SnapshotOf } from '../store/store.js';
import { hasReadyEndpointOn, l2MayAnnounce, serviceLabelLookup, type ServiceScope } from '../model/scope.js';
import type { ChangeSet } from '../store/controller.js';

/** The kinds L2 reads: services and their slices, nodes, L2 policies, and the leases that elect a holder. */
export type L2Kind = Extract<Kind, 'Service' | 'EndpointSlice' | 'Node' | 'L2AnnouncementPolicy' | 'Lease'>;
export const L2_KINDS: ReadonlySet<L2Kind> = new Set<L2Kind>(['Service', 'EndpointSlice', 'Node', 'L2AnnouncementPolicy', 'Lease']);
type L2Snapshot = SnapshotOf<L2Kind>;

export interface L2Candidate {
  service: string;
  addresses: string[];
  interfaces: NodeInterface[];
  /** Policies that selected it, for `pharos l2 list` and logs. */
  policies: string[];
}

export interface L2PolicyInput {
  nodeName: string;
  nodeLabels: Record<string, string>;
  interfaces: NodeInterface[];
  isOurService: ServiceScope;
}

/** Node labels as selectors see them: the Node object's, plus the well-known hostname label. */
export function nodeLabels(node: Node | undefined, nodeName: string): Record<string, string> {
  return { 'kubernetes.io/hostname': nodeName, ...(node?.meta.labels ?? {}) };
}

function compileInterfaces(policy: L2Policy): RegExp[] {
  const out: RegExp[] = [];
  for (const src of policy.interfaces) {
    try {
      out.push(new RegExp(src));
    } catch {
      // parse.ts rejects bad regexes; a policy that got here anyway matches nothing.
      return [/$^/];
    }
  }
  return out;
}

function isL2Class(svc: Service, isOurService: ServiceScope): boolean {
  return isOurService(svc) && l2MayAnnounce(svc);
}

function selects(policy: L2Policy, labels: LabelLookup): boolean {
  return !policy.serviceSelector || matchesSelectorWith(policy.serviceSelector, labels);
}

/** The addresses `policy` would announce for `svc` (may repeat). */
function policyAddresses(policy: L2Policy, svc: Service): string[] {
  const out: string[] = [];
  if (policy.loadBalancerIPs && svc.type === 'LoadBalancer') for (const i of svc.status.ingress) if (i.ip) out.push(i.ip);
  if (policy.externalIPs) out.push(...svc.externalIPs);
  return out;
}

function serviceKeyOfSlice(slice: EndpointSlice): string {
  return slice.meta.namespace ? `${slice.meta.namespace}/${slice.serviceName}` : slice.serviceName;
}

/**
 * EndpointSlices by `namespace/service`: built once per computation, so
 * externalTrafficPolicy Local costs one pass over the slices, not one per
 * service.
 */
export function slicesByService(snap: L2Snapshot): Map<string, EndpointSlice[]> {
  const out = new Map<string, EndpointSlice[]>();
  for (const slice of snap.endpointSlices.values()) {
    const key = serviceKeyOfSlice(slice);
    const list = out.get(key);
    if (list) list.push(slice);
    else out.set(key, [slice]);
  }
  return out;
}

/** A policy that selects this node, and the node's interfaces it announces on. */
interface NodePlan {
  policy: L2Policy;
  interfaces: NodeInterface[];
}

function nodePlans(policies: Iterable<L2Policy>, input: L2PolicyInput): NodePlan[] {
  const eligible = input.interfaces.filter((i) => i.up && i.addresses.length > 0);
  const plans: NodePlan[] = [];
  for (const policy of policies) {
    if (policy.nodeSelector && !matchesSelector(policy.nodeSelector, input.nodeLabels)) continue;
    const regexes = compileInterfaces(policy);
    plans.push({ policy, interfaces: eligible.filter((i) => regexes.length === 0 || regexes.some((r) => r.test(i.name))) });
  }
  return plans;
}

/** One service's candidacy on this node; `slices` are read only for externalTrafficPolicy Local. */
function candidateOf(key: string, svc: Service, plans: NodePlan[], slices: () => Iterable<EndpointSlice> | undefined, input: L2PolicyInput): L2Candidate | undefined {
  if (!isL2Class(svc, input.isOurService)) return undefined;
  const labels = serviceLabelLookup(svc);
  const addresses = new Set<string>();
  const ifaces = new Map<number, NodeInterface>();
  const names: string[] = [];
  for (const { policy, interfaces } of plans) {
    if (interfaces.length === 0 || !selects(policy, labels)) continue;
    const addrs = policyAddresses(policy, svc);
    if (addrs.length === 0) continue;
    for (const a of addrs) addresses.add(a);
    for (const i of interfaces) ifaces.set(i.ifindex, i);
    names.push(policy.meta.name);
  }
  if (addresses.size === 0) return undefined;
  if (svc.externalTrafficPolicy === 'Local' && !hasReadyEndpointOn(slices(), input.nodeName)) return undefined;
  return {
    service: key,
    addresses: [...addresses].sort(),
    interfaces: [...ifaces.values()].sort((a, b) => a.ifindex - b.ifindex),
    policies: names.sort(),
  };
}

/** Candidates, in the order of the snapshot's services. */
export function l2Candidates(snap: L2Snapshot, input: L2PolicyInput): L2Candidate[] {
  const out: L2Candidate[] = [];
  const plans = nodePlans(snap.l2Policies.values(), input);
  if (plans.length === 0) return out;
  let index: Map<string, EndpointSlice[]> | undefined;
  for (const [key, svc] of snap.services) {
    const c = candidateOf(key, svc, plans, () => (index ??= slicesByService(snap)).get(key), input);
    if (c) out.push(c);
  }
  return out;
}

/** The policies (by index) that would announce something of `svc`, as a key: services with the same key share a node list. */
function announcingPolicies(svc: Service, policies: L2Policy[], isOurService: ServiceScope): string {
  if (!isL2Class(svc, isOurService)) return '';
  const labels = serviceLabelLookup(svc);
  let which = '';
  for (let i = 0; i < policies.length; i++) {
    const p = policies[i]!;
    if (!selects(p, labels)) continue;
    const hasLb = p.loadBalancerIPs && svc.type === 'LoadBalancer' && svc.status.ingress.some((i) => i.ip);
    if (hasLb || (p.externalIPs && svc.externalIPs.length > 0)) which += `${i},`;
  }
  return which;
}

/** Nodes (sorted) some policy both selects and announces for: one list per set of policies. */
class NodesByPolicySet {
  private readonly selected: Set<string>[];
  private readonly lists = new Map<string, string[]>();

  constructor(snap: L2Snapshot, policies: L2Policy[], private readonly nodes: string[]) {
    this.selected = policies.map((p) => new Set(nodes.filter((n) => !p.nodeSelector || matchesSelector(p.nodeSelector, nodeLabels(snap.nodes.get(n), n)))));
  }

  of(which: string): string[] {
    let names = this.lists.get(which);
    if (!names) {
      const indexes = which.split(',').filter(Boolean).map(Number);
      names = this.nodes.filter((n) => indexes.some((i) => this.selected[i]!.has(n)));
      this.lists.set(which, names);
    }
    return names;
  }
}

function eligibleOf(svc: Service, which: string, nodes: NodesByPolicySet, slices: () => Iterable<EndpointSlice> | undefined): string[] {
  const names = nodes.of(which);
  if (svc.externalTrafficPolicy !== 'Local') return names;
  const own = [...(slices() ?? [])];
  return names.filter((n) => hasReadyEndpointOn(own, n));
}

/**
 * For every service some policy would announce: the nodes that could compete
 * for it (policy nodeSelector; with externalTrafficPolicy Local, a ready
 * local endpoint). Interfaces are not known for other nodes, so they are
 * assumed to match; a node without one simply never takes the lease.
 */
export function l2EligibleNodes(snap: L2Snapshot, nodeNames: Iterable<string>, isOurService: ServiceScope): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const policies = [...snap.l2Policies.values()];
  if (policies.length === 0) return out;
  const nodes = new NodesByPolicySet(snap, policies, [...new Set(nodeNames)].sort());
  let index: Map<string, EndpointSlice[]> | undefined;
  for (const [key, svc] of snap.services) {
    const which = announcingPolicies(svc, policies, isOurService);
    if (which !== '') out.set(key, eligibleOf(svc, which, nodes, () => (index ??= slicesByService(snap)).get(key)));
  }
  return out;
}

/** Every address some policy would announce for each service (whoever holds it), for `pharos l2 list`. */
export function l2AnnouncedAddresses(snap: L2Snapshot, isOurService: ServiceScope): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const policies = [...snap.l2Policies.values()];
  if (policies.length === 0) return out;
  for (const [key, svc] of snap.services) {
    if (!isL2Class(svc, isOurService)) continue;
    const labels = serviceLabelLookup(svc);
    const addrs = new Set<string>();
    for (const p of policies) if (selects(p, labels)) for (const a of policyAddresses(p, svc)) addrs.add(a);
    if (addrs.size > 0) out.set(key, [...addrs].sort());
  }
  return out;
}

// ---------------------------------------------------------------- per-service caches

/**
 * EndpointSlices by service, kept up to date by object identity: a pass
 * over unchanged slices only compares references, and each service carries
 * a version that moves when one of its slices changed, came or went.
 */
export class SliceIndex {
  private source?: ReadonlyMap<string, EndpointSlice>;
  private readonly bySlice = new Map<string, { slice: EndpointSlice; service: string; pass: number }>();
  private readonly byService = new Map<string, { slices: Map<string, EndpointSlice>; version: number }>();
  private pass = 0;
  private version = 0;

  /** Brings the index up to `slices`, comparing every slice by reference. */
  update(slices: ReadonlyMap<string, EndpointSlice>): void {
    if (slices === this.source) return;
    this.source = slices;
    const pass = ++this.pass;
    for (const [key, slice] of slices) {
      const known = this.bySlice.get(key);
      if (known?.slice === slice) {
        known.pass = pass;
        continue;
      }
      if (known) this.unlink(key, known.service);
      this.link(key, slice);
    }
    if (this.bySlice.size === slices.size) return;
    for (const [key, known] of this.bySlice) {
      if (known.pass === pass) continue;
      this.bySlice.delete(key);
      this.unlink(key, known.service);
    }
  }

  /**
   * Brings the index up to `slices` when only `keys` changed since the map
   * it reflects; returns the services whose slices changed.
   */
  updateKeys(slices: ReadonlyMap<string, EndpointSlice>, keys: Iterable<string>): Set<string> {
    const touched = new Set<string>();
    for (const key of keys) {
      const slice = slices.get(key);
      const known = this.bySlice.get(key);
      if (known?.slice === slice) continue;
      if (known) {
        this.bySlice.delete(key);
        this.unlink(key, known.service);
        touched.add(known.service);
      }
      if (slice) touched.add(this.link(key, slice));
    }
    this.source = slices;
    return touched;
  }

  /** Whether the index is exactly `slices`. */
  reflects(slices: ReadonlyMap<string, EndpointSlice> | undefined): boolean {
    return slices !== undefined && slices === this.source;
  }

  slicesOf(service: string): Iterable<EndpointSlice> | undefined {
    return this.byService.get(service)?.slices.values();
  }

  /** Moves whenever the service's slices change; 0 when it has none. */
  versionOf(service: string): number {
    return this.byService.get(service)?.version ?? 0;
  }

  private link(key: string, slice: EndpointSlice): string {
    const service = serviceKeyOfSlice(slice);
    this.bySlice.set(key, { slice, service, pass: this.pass });
    let group = this.byService.get(service);
    if (!group) this.byService.set(service, (group = { slices: new Map(), version: 0 }));
    group.slices.set(key, slice);
    group.version = ++this.version;
    return service;
  }

  private unlink(key: string, service: string): void {
    const group = this.byService.get(service);
    if (!group) return;
    group.slices.delete(key);
    group.version = ++this.version;
    if (group.slices.size === 0) this.byService.delete(service);
  }
}

interface Remembered<T> {
  svc: Service;
  /** SliceIndex version the answer was computed with (Local services only). */
  slicesVersion: number;
  value: T | undefined;
  pass: number;
}

/**
 * Per-service answers that stay valid while the service object (and, for
 * externalTrafficPolicy Local, its slices) and the context are unchanged.
 * A recomputed answer equal to the old one keeps the old object, and
 * `compute` returns the previous result object itself when no answer
 * changed, so a caller skips its own work by comparing references: an edit
 * that changes nothing L2 cares about (a backend, a port) costs one pass of
 * reference comparisons.
 */
abstract class PerServiceCache<T, R> {
  protected readonly slices = new SliceIndex();
  private readonly remembered = new Map<string, Remembered<T>>();
  private context?: unknown[];
  private pass = 0;
  private last?: R;
  /** The maps the last result was computed from: the very same maps again mean the very same result. */
  private lastServices?: ReadonlyMap<string, Service>;
  private lastSlices?: ReadonlyMap<string, EndpointSlice>;

  protected abstract judge(key: string, svc: Service): T | undefined;
  protected abstract same(a: T, b: T): boolean;
  protected abstract collect(values: Iterable<[string, T]>): R;

  /**
   * Recomputes every service when an element of `context` is not the same
   * (===) as last time. With `changes` (what changed since the maps of the
   * last pass, as the agent tracks it), only the services named there and
   * those whose slices are named there are looked at; without, every
   * service is compared by reference. A caller that skipped a pass passes
   * no `changes` on the next one.
   */
  protected run(snap: L2Snapshot, context: unknown[], changes?: ChangeSet): R {
    if (!this.context || context.length !== this.context.length || context.some((c, i) => c !== this.context![i])) {
      this.remembered.clear();
      this.context = context;
      this.last = undefined;
    }
    if (this.last !== undefined && snap.services === this.lastServices && snap.endpointSlices === this.lastSlices) return this.last;
    const incremental = changes !== undefined && !changes.all && this.last !== undefined && this.lastServices !== undefined && this.slices.reflects(this.lastSlices);
    // Until the pass completes the maps it started from are not recorded: a pass cut short is followed by a full one.
    this.lastServices = undefined;
    const pass = ++this.pass;
    let changed = false;
    if (incremental) {
      const keys = this.slices.updateKeys(snap.endpointSlices, changes.keys.get('EndpointSlice') ?? []);
      for (const key of changes.keys.get('Service') ?? []) keys.add(key);
      for (const key of keys) if (this.judgeAgain(key, snap.services.get(key), pass)) changed = true;
    } else {
      this.slices.update(snap.endpointSlices);
      for (const [key, svc] of snap.services) if (this.judgeAgain(key, svc, pass)) changed = true;
      if (this.remembered.size > snap.services.size) {
        for (const [key, r] of this.remembered) {
          if (r.pass === pass) continue;
          this.remembered.delete(key);
          if (r.value !== undefined) changed = true;
        }
      }
    }
    if (changed || this.last === undefined) this.last = this.collect(this.values());
    this.lastServices = snap.services;
    this.lastSlices = snap.endpointSlices;
    return this.last;
  }

  /** Brings one service's answer up to date (`svc` undefined: it is gone); true when the answer changed. */
  private judgeAgain(key: string, svc: Service | undefined, pass: number): boolean {
    const r = this.remembered.get(key);
    if (!svc) {
      this.remembered.delete(key);
      return r?.value !== undefined;
    }
    const slicesVersion = svc.externalTrafficPolicy === 'Local' ? this.slices.versionOf(key) : 0;
    if (r && r.svc === svc && r.slicesVersion === slicesVersion) {
      r.pass = pass;
      return false;
    }
    let value = this.judge(key, svc);
    let changed = false;
    if (r?.value !== undefined && value !== undefined && this.same(r.value, value)) value = r.value;
    else if (r?.value !== undefined || value !== undefined) changed = true;
    this.remembered.set(key, { svc, slicesVersion, value, pass });
    return changed;
  }

  private *values(): Iterable<[string, T]> {
    for (const [key, r] of this.remembered) if (r.value !== undefined) yield [key, r.value];
  }
}

function sameList<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean = (x, y) => x === y): boolean {
  return a.length === b.length && a.every((x, i) => same(x, b[i]!));
}

/** l2Candidates, remembered per service (see PerServiceCache); in no particular order. */
export class L2CandidateCache extends PerServiceCache<L2Candidate, L2Candidate[]> {
  private plansKey = '';
  private plans: NodePlan[] = [];
  private policies: L2Policy[] = [];
  private input?: L2PolicyInput;

  compute(snap: L2Snapshot, input: L2PolicyInput, changes?: ChangeSet): L2Candidate[] {
    const policies = [...snap.l2Policies.values()];
    // Interfaces are read afresh on every pass: compare what they say, not the objects.
    const plansKey = JSON.stringify([input.nodeName, input.nodeLabels, input.interfaces]);
    if (plansKey !== this.plansKey || !sameList(policies, this.policies)) {
      this.plansKey = plansKey;
      this.policies = policies;
      this.plans = nodePlans(policies, input);
    }
    this.input = input;
    return this.run(snap, [this.plans, input.isOurService], changes);
  }

  protected judge(key: string, svc: Service): L2Candidate | undefined {
    if (this.plans.length === 0) return undefined;
    return candidateOf(key, svc, this.plans, () => this.slices.slicesOf(key), this.input!);
  }

  protected same(a: L2Candidate, b: L2Candidate): boolean {
    return sameList(a.addresses, b.addresses) && sameList(a.policies, b.policies) &&
      sameList(a.interfaces, b.interfaces, (x, y) => x.ifindex === y.ifindex && x.name === y.name && x.mac === y.mac);
  }

  protected collect(values: Iterable<[string, L2Candidate]>): L2Candidate[] {
    const out: L2Candidate[] = [];
    for (const [, c] of values) out.push(c);
    return out;
  }
}

/** l2EligibleNodes, remembered per service (see PerServiceCache). */
export class L2EligibleCache extends PerServiceCache<string[], Map<string, string[]>> {
  private nodesKey = '';
  private policies: L2Policy[] = [];
  private nodes?: NodesByPolicySet;
  private isOurService: ServiceScope = () => false;

  compute(snap: L2Snapshot, nodeNames: Iterable<string>, isOurService: ServiceScope, changes?: ChangeSet): Map<string, string[]> {
    const policies = [...snap.l2Policies.values()];
    const names = [...new Set(nodeNames)].sort();
    const nodesKey = JSON.stringify(names.map((n) => [n, snap.nodes.get(n)?.meta.labels ?? null]));
    if (!this.nodes || nodesKey !== this.nodesKey || !sameList(policies, this.policies)) {
      this.nodesKey = nodesKey;
      this.policies = policies;
      this.nodes = new NodesByPolicySet(snap, policies, names);
    }
    this.isOurService = isOurService;
    return this.run(snap, [this.nodes, isOurService], changes);
  }

  protected judge(key: string, svc: Service): string[] | undefined {
    const which = this.policies.length === 0 ? '' : announcingPolicies(svc, this.policies, this.isOurService);
    return which === '' ? undefined : eligibleOf(svc, which, this.nodes!, () => this.slices.slicesOf(key));
  }

  protected same(a: string[], b: string[]): boolean {
    return sameList(a, b);
  }

  protected collect(values: Iterable<[string, string[]]>): Map<string, string[]> {
    return new Map(values);
  }
}

/** l2AnnouncedAddresses, remembered per service (see PerServiceCache): a status edit that keeps the addresses costs a reference comparison. */
export class L2AddressCache extends PerServiceCache<string[], Map<string, string[]>> {
  private policies: L2Policy[] = [];
  private isOurService: ServiceScope = () => false;

  compute(snap: L2Snapshot, isOurService: ServiceScope, changes?: ChangeSet): Map<string, string[]> {
    const policies = [...snap.l2Policies.values()];
    if (!sameList(policies, this.policies)) this.policies = policies;
    this.isOurService = isOurService;
    return this.run(snap, [this.policies, isOurService], changes);
  }

  protected judge(_key: string, svc: Service): string[] | undefined {
    if (this.policies.length === 0 || !isL2Class(svc, this.isOurService)) return undefined;
    const labels = serviceLabelLookup(svc);
    const addrs = new Set<string>();
    for (const p of this.policies) if (selects(p, labels)) for (const a of policyAddresses(p, svc)) addrs.add(a);
    return addrs.size > 0 ? [...addrs].sort() : undefined;
  }

  protected same(a: string[], b: string[]): boolean {
    return sameList(a, b);
  }

  protected collect(values: Iterable<[string, string[]]>): Map<string, string[]> {
    return new Map(values);
  }
}
