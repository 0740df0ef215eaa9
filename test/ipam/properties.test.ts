/**
 * Property tests of the allocator over random histories of service and pool
 * events in a deliberately tiny address space (so pools run out, overlap and
 * get shared). After every event the incremental `Ipam` must agree exactly
 * with the pure full reconcile, and the allocation must obey the invariants
 * of issue 4 — among them (issue 17) that a live address never moves while a
 * pool that selects its service still covers it, whatever the pools' ages.
 *
 * Each history runs in one of the two modes that order pools differently:
 * Kubernetes (by creationTimestamp — here arbitrary, changing on any edit,
 * which covers every order the API server could produce) and manifests (by
 * `firstSeen`, stamped when the agent first sees a pool name and forgotten
 * when it is deleted, as src/sources/manifests/source.ts does, beside an
 * arbitrary creationTimestamp the file carries).
 */
import t from 'tap';
import fc from 'fast-check';
import { Ipam, reconcile, type AllocationState, type ServiceOutcome } from '../../src/ipam/allocator.js';
import { tryParseAddress } from '../../src/model/cidr.js';
import { matchesSelectorWith } from '../../src/model/selector.js';
import { analysePools, type AnalysedPool } from '../../src/ipam/pools.js';
import { readRequest, shareProblem } from '../../src/ipam/request.js';
import { objectKey, type IPPool, type Service } from '../../src/model/types.js';
import { pool, svc, withStatus, type PoolSpec, type ServiceSpec } from './fixtures.js';

const OPTIONS = { pharosIsDefaultClass: true };

// ---------------------------------------------------------------- generators

const BLOCKS: (string | [string, string])[] = [
  '192.0.2.0/30',
  '192.0.2.0/29', // overlaps the /30
  '192.0.2.8/30',
  ['192.0.2.12', '192.0.2.14'],
  '192.0.2.16/31',
  '2001:db8::/126',
  '2001:db8::/64', // overlaps the /126
  ['2001:db8:1::5', '2001:db8:1::7'],
];
const V4_IPS = ['192.0.2.0', '192.0.2.1', '192.0.2.3', '192.0.2.5', '192.0.2.9', '192.0.2.13', '192.0.2.17', '198.51.100.1'];
const V6_IPS = ['2001:db8::1', '2001:db8::3', '2001:db8:1::6', '2001:db8::'];
const TIMES = ['2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', '2024-01-03T00:00:00Z'];
/** Pools' creationTimestamps: older, equal and newer than anything else in a history, in any order. */
const POOL_TIMES = ['2019-05-05T00:00:00Z', ...TIMES, '2031-12-31T23:59:59Z'];

const poolArb: fc.Arbitrary<PoolSpec> = fc.record({
  name: fc.constantFrom('p0', 'p1', 'p2', 'p3'),
  created: fc.constantFrom(...POOL_TIMES),
  blocks: fc.uniqueArray(fc.constantFrom(...BLOCKS), { minLength: 1, maxLength: 2 }),
  selector: fc.option(
    fc.oneof(
      fc.constant(undefined),
      fc.constant<PoolSpec['selector']>({ matchLabels: { color: 'blue' } }),
      fc.constant<PoolSpec['selector']>({ matchExpressions: [{ key: 'color', operator: 'In', values: ['blue', 'red'] }] }),
      fc.constant<PoolSpec['selector']>({ matchExpressions: [{ key: 'color', operator: 'DoesNotExist', values: [] }] }),
    ),
    { nil: undefined, freq: 2 },
  ),
  disabled: fc.constantFrom(false, false, false, false, false, true),
  allowFirstLastIPs: fc.boolean(),
});

const serviceArb: fc.Arbitrary<ServiceSpec> = fc
  .record({
    name: fc.constantFrom('s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7'),
    namespace: fc.constantFrom('ns-a', 'ns-b'),
    created: fc.constantFrom(...TIMES),
    color: fc.constantFrom('blue', 'blue', 'red', undefined),
    type: fc.constantFrom('LoadBalancer', 'LoadBalancer', 'LoadBalancer', 'LoadBalancer', 'LoadBalancer', 'LoadBalancer', 'ClusterIP'),
    cls: fc.constantFrom(undefined, undefined, undefined, undefined, 'lb.pharos.io/l2', 'example.com/other'),
    family: fc.constantFrom('v4', 'v4', 'v6', 'prefer', 'require'),
    ip: fc.option(fc.nat(7), { freq: 4, nil: undefined }),
    key: fc.constantFrom(undefined, 'k1', 'k1', 'k1', 'k2'),
    crossNs: fc.constantFrom(true, true, false),
    ports: fc.uniqueArray(fc.constantFrom(80, 443, 53, 8080), { minLength: 1, maxLength: 2 }),
    badAnnotation: fc.constantFrom(false, false, false, false, false, false, false, false, false, true),
  })
  .map((r) => {
    const annotations: Record<string, string> = {};
    if (r.ip !== undefined) annotations['lb.pharos.io/ips'] = r.family === 'v6' ? V6_IPS[r.ip % V6_IPS.length]! : V4_IPS[r.ip]!;
    if (r.key) annotations['lb.pharos.io/sharing-key'] = r.key;
    if (r.crossNs) annotations['lb.pharos.io/sharing-cross-namespace'] = '*';
    if (r.badAnnotation) annotations['lbipam.cilium.io/ips'] = '192.0.2.300';
    return {
      name: r.name,
      namespace: r.namespace,
      created: r.created,
      labels: (r.color ? { color: r.color } : {}) as Record<string, string>,
      annotations,
      type: r.type as Service['type'],
      ...(r.cls ? { class: r.cls } : {}),
      families: r.family === 'v6' ? ['IPv6' as const] : ['IPv4' as const],
      policy: r.family === 'prefer' ? 'PreferDualStack' as const : r.family === 'require' ? 'RequireDualStack' as const : 'SingleStack' as const,
      ports: r.ports,
    };
  });

type Event =
  | { kind: 'upsertService'; spec: ServiceSpec }
  | { kind: 'deleteService'; name: string; namespace: string }
  | { kind: 'upsertPool'; spec: PoolSpec }
  | { kind: 'deletePool'; name: string }
  | { kind: 'echoStatus' }
  /** Someone else writes status (a restart, a migration from another LB controller, a hand edit). */
  | { kind: 'foreignStatus'; name: string; namespace: string; ips: string[] };

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  { weight: 6, arbitrary: serviceArb.map((spec) => ({ kind: 'upsertService' as const, spec })) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('deleteService' as const), name: fc.constantFrom('s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7'), namespace: fc.constantFrom('ns-a', 'ns-b') }) },
  { weight: 3, arbitrary: poolArb.map((spec) => ({ kind: 'upsertPool' as const, spec })) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deletePool' as const), name: fc.constantFrom('p0', 'p1', 'p2', 'p3') }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'echoStatus' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('foreignStatus' as const),
      name: fc.constantFrom('s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7'),
      namespace: fc.constantFrom('ns-a', 'ns-b'),
      ips: fc.uniqueArray(fc.constantFrom(...V4_IPS, ...V6_IPS), { maxLength: 2 }),
    }),
  },
);

// ---------------------------------------------------------------- the world a history builds

type Mode = 'kubernetes' | 'manifests';

class World {
  services = new Map<string, Service>();
  pools = new Map<string, IPPool>();
  ipam = new Ipam(OPTIONS);
  /** Manifests mode: when each pool name was first seen (a counter as a time), forgotten on delete. */
  private firstSeen = new Map<string, string>();
  private clock = 0;

  constructor(readonly mode: Mode = 'kubernetes') {}

  /** The pool as the store would hold it in this mode. */
  stamp(p: IPPool): IPPool {
    if (this.mode === 'kubernetes') return p;
    let seen = this.firstSeen.get(p.meta.name);
    if (!seen) this.firstSeen.set(p.meta.name, (seen = new Date(Date.UTC(2026, 0, 1) + 1000 * this.clock++).toISOString()));
    return { ...p, meta: { ...p.meta, firstSeen: seen } };
  }

  forget(name: string): void {
    this.firstSeen.delete(name);
  }

  /** Write outcomes into service status, as a sink would, and feed the echo back. */
  echo(): void {
    for (const [key, outcome] of [...this.ipam.allOutcomes()]) {
      const s = this.services.get(key);
      if (!s) continue;
      const next = statusFromOutcome(s, outcome);
      if (next !== s) {
        this.services.set(key, next);
        this.ipam.upsertService(next);
      }
    }
  }
}

function statusFromOutcome(s: Service, outcome: ServiceOutcome): Service {
  if (outcome.kind === 'leave-alone') return s;
  const next = outcome.kind === 'managed' ? withStatus(s, outcome.ingress, outcome.condition) : withStatus(s, outcome.ingress, null);
  return JSON.stringify(next.status) === JSON.stringify(s.status) ? s : next;
}

function plain(outcomes: ReadonlyMap<string, ServiceOutcome>): Record<string, ServiceOutcome> {
  return Object.fromEntries([...outcomes].sort(([a], [b]) => (a < b ? -1 : 1)));
}

function apply(world: World, e: Event): void {
  switch (e.kind) {
    case 'upsertService': {
      const s = svc(e.spec);
      const key = objectKey(s.meta);
      const prev = world.services.get(key);
      // Keep the status it had: a spec edit does not clear status in Kubernetes.
      const withOld = prev ? { ...s, status: prev.status } : s;
      world.services.set(key, withOld);
      world.ipam.upsertService(withOld);
      break;
    }
    case 'deleteService': {
      const key = `${e.namespace}/${e.name}`;
      world.services.delete(key);
      world.ipam.deleteService(key);
      break;
    }
    case 'upsertPool': {
      const p = world.stamp(pool(e.spec));
      world.pools.set(p.meta.name, p);
      world.ipam.upsertPool(p);
      break;
    }
    case 'deletePool':
      world.pools.delete(e.name);
      world.forget(e.name);
      world.ipam.deletePool(e.name);
      break;
    case 'echoStatus':
      world.echo();
      break;
    case 'foreignStatus': {
      const key = `${e.namespace}/${e.name}`;
      const s = world.services.get(key);
      if (!s) break;
      const next = { ...s, status: { ...s.status, ingress: e.ips.map((ip) => ({ ip })) } };
      world.services.set(key, next);
      world.ipam.upsertService(next);
      break;
    }
  }
}

/** Check the invariants on the current allocation; `before` is the state before the last event. */
function checkInvariants(world: World, before: AllocationState): string | undefined {
  const pools = analysePools(world.pools.values());
  const holders = new Map<string, string[]>();
  for (const [key, outcome] of world.ipam.allOutcomes()) {
    if (outcome.kind !== 'managed') continue;
    const s = world.services.get(key)!;
    const req = readRequest(s);
    for (const a of outcome.allocations) {
      const addr = tryParseAddress(a.ip)!;
      const p = pools.find((x) => x.name === a.pool);
      if (!p) return `${key} holds ${a.ip} from missing pool ${a.pool}`;
      if (!p.allocatable[addr.family].some((r) => r.first <= addr.value && addr.value <= r.last)) return `${key}: ${a.ip} outside pool ${a.pool}`;
      const sel = p.pool.serviceSelector;
      if (!p.selectorInvalid && sel && !matchesSelectorWith(sel, req.selectorLabel)) return `${key}: pool ${a.pool} does not select it`;
      // A disabled, invalid or conflicting pool keeps what services held (in the
      // allocation state or, after a restart, in their status) and hands out nothing.
      const heldBefore = (before.services[key] ?? []).includes(a.ip) || s.status.ingress.some((i) => i.ip === a.ip);
      if (p.state !== 'active' && !heldBefore) return `${key}: new address ${a.ip} from ${p.state} pool ${a.pool}`;
      // A conflicting pool is named only when no non-conflicting pool that selects the service covers the address.
      const preferred = pools.find(
        (q) => q.state !== 'conflicting' && q.allocatable[addr.family].some((r) => r.first <= addr.value && addr.value <= r.last) &&
          (q.selectorInvalid || !q.pool.serviceSelector || matchesSelectorWith(q.pool.serviceSelector, req.selectorLabel)),
      );
      if (p.state === 'conflicting' && preferred) return `${key}: ${a.ip} kept in conflicting ${a.pool}, not in ${preferred.name}`;
      const list = holders.get(a.ip) ?? [];
      list.push(key);
      holders.set(a.ip, list);
    }
  }
  for (const [ip, keys] of holders) {
    for (let i = 0; i < keys.length; i++) {
      for (let j = i + 1; j < keys.length; j++) {
        const a = readRequest(world.services.get(keys[i]!)!);
        const b = readRequest(world.services.get(keys[j]!)!);
        const problem = shareProblem(a, b);
        if (problem) return `${ip} held by ${keys[i]} and ${keys[j]} (${problem})`;
      }
    }
  }
  return undefined;
}

interface History {
  mode: Mode;
  events: Event[];
}

const historyArb: fc.Arbitrary<History> = fc
  .tuple(
    fc.constantFrom<Mode>('kubernetes', 'manifests'),
    fc.array(poolArb, { minLength: 1, maxLength: 3 }),
    fc.array(eventArb, { minLength: 10, maxLength: 40, size: 'max' }),
  )
  .map(([mode, initialPools, events]) => ({ mode, events: [...initialPools.map((spec) => ({ kind: 'upsertPool' as const, spec })), ...events] }));

const RUNS = { numRuns: 150, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}) };

/**
 * Runs RUNS random histories; after every event `check` gets the world and
 * the allocation state from before the event and returns a problem (the
 * property fails with it, the mode and the event) or undefined.
 */
function afterEveryEvent(check: (world: World, e: Event, before: AllocationState) => string | undefined): void {
  fc.assert(
    fc.property(historyArb, (history) => {
      const world = new World(history.mode);
      for (const e of history.events) {
        const before = world.ipam.exportState();
        apply(world, e);
        const problem = check(world, e, before);
        if (problem) throw new Error(`${history.mode} mode, after ${JSON.stringify(e)}: ${problem}`);
      }
    }),
    RUNS,
  );
}

t.test('incremental Ipam equals the full reconcile after every event', async (t) => {
  afterEveryEvent((world, _e, before) => {
    const full = reconcile({ pools: world.pools.values(), services: world.services.values(), previous: before }, OPTIONS);
    const got = plain(world.ipam.allOutcomes());
    const want = plain(full.services);
    if (JSON.stringify(got) !== JSON.stringify(want)) return `\nincremental ${JSON.stringify(got, null, 1)}\nfull ${JSON.stringify(want, null, 1)}`;
    if (JSON.stringify(world.ipam.exportState()) !== JSON.stringify(full.state)) return 'state differs';
    if (JSON.stringify(plain(world.ipam.allPoolStatuses() as never)) !== JSON.stringify(plain(full.pools as never))) return 'pool status differs';
    return undefined;
  });
  t.pass('random histories agree');
});

t.test('no shared address without a common key and apart ports; no address outside a selecting pool; only active pools hand out', async (t) => {
  afterEveryEvent((world, _e, before) => checkInvariants(world, before));
  t.pass('invariants held');
});

/** Pools, not disabled, whose allocatable ranges hold `ip` and that select the service (a pool whose selector is invalid keeps regardless). */
function coveringPools(pools: AnalysedPool[], s: Service, ip: string): AnalysedPool[] {
  const addr = tryParseAddress(ip)!;
  const req = readRequest(s);
  return pools.filter(
    (p) =>
      !p.pool.disabled &&
      p.allocatable[addr.family].some((r) => r.first <= addr.value && addr.value <= r.last) &&
      (p.selectorInvalid || !p.pool.serviceSelector || matchesSelectorWith(p.pool.serviceSelector, req.selectorLabel)),
  );
}

/**
 * Issue 17 item 1: no event moves a live address off a service while a
 * non-disabled pool that selects it covers the address — conflicting or not,
 * older or newer. The service itself must not have changed (an edit may ask
 * for something else), and the one legitimate loss is the sharing rule: a
 * sharer edited so that the two may no longer share keeps the address if it
 * is the older.
 */
function renumbered(world: World, e: Event, before: AllocationState): string | undefined {
  const pools = analysePools(world.pools.values());
  const after = world.ipam.exportState();
  const edited = e.kind === 'upsertService' ? `${e.spec.namespace ?? 'default'}/${e.spec.name}` : e.kind === 'deleteService' ? `${e.namespace}/${e.name}` : undefined;
  for (const [key, ips] of Object.entries(before.services)) {
    if (key === edited) continue;
    const s = world.services.get(key)!;
    for (const ip of ips) {
      if ((after.services[key] ?? []).includes(ip)) continue;
      const covering = coveringPools(pools, s, ip);
      if (covering.length === 0) continue;
      const sharer = edited !== undefined ? world.services.get(edited) : undefined;
      if (sharer && (after.services[edited!] ?? []).includes(ip) && shareProblem(readRequest(s), readRequest(sharer))) continue;
      const states = pools.map((p) => `${p.name}(${p.state}, ${p.order.replace('\u0000', ' ')}, ${p.blocks.map((b) => b.field).join(' ')})`).join('; ');
      return `${key} lost ${ip} (now ${JSON.stringify(after.services[key] ?? [])}) though ${covering.map((p) => `${p.name} (${p.state})`).join(', ')} covers it; pools: ${states}`;
    }
  }
  return undefined;
}

t.test('a live address never moves while a non-disabled pool selecting its service covers it, whatever the pools\' ages', async (t) => {
  afterEveryEvent(renumbered);
  t.pass('no live address moved');
});

t.test('a restart (no previous state, only status) reproduces the allocations', async (t) => {
  fc.assert(
    fc.property(historyArb, (history) => {
      const world = new World(history.mode);
      for (const e of history.events) apply(world, e);
      world.echo();
      const restarted = reconcile({ pools: world.pools.values(), services: world.services.values() }, OPTIONS);
      if (JSON.stringify(restarted.state) !== JSON.stringify(world.ipam.exportState())) {
        throw new Error(`restart gave ${JSON.stringify(restarted.state)}, running ${JSON.stringify(world.ipam.exportState())}`);
      }
      if (JSON.stringify(plain(restarted.services)) !== JSON.stringify(plain(world.ipam.allOutcomes()))) throw new Error('restart outcomes differ');
    }),
    RUNS,
  );
  t.pass('restarts reproduced');
});

t.test('an unparsable annotation names its field and changes nothing else', async (t) => {
  const corruptions: [string, string, RegExp][] = [
    ['lb.pharos.io/ips', '192.0.2.999', /^metadata\.annotations\["lb\.pharos\.io\/ips"\]: /],
    ['metallb.io/loadBalancerIPs', '192.0.2.1,,banana', /^metadata\.annotations\["metallb\.io\/loadBalancerIPs"\]: /],
    ['lb.pharos.io/sharing-cross-namespace', 'ns-a,NOT_A_NS', /^metadata\.annotations\["lb\.pharos\.io\/sharing-cross-namespace"\]: /],
  ];
  fc.assert(
    fc.property(historyArb, fc.nat(), fc.constantFrom(...corruptions), (history, pick, [annotation, value, field]) => {
      const world = new World(history.mode);
      for (const e of history.events) apply(world, e);
      world.echo();
      const managed = [...world.ipam.allOutcomes()]
        .filter(([, o]) => o.kind === 'managed' && o.condition.reason !== 'invalid_request')
        .map(([k]) => k);
      if (managed.length === 0) return;
      const key = managed[pick % managed.length]!;
      const before = world.ipam.exportState();
      const outcomesBefore = plain(world.ipam.allOutcomes());
      const s = world.services.get(key)!;
      const annotations = { ...s.meta.annotations };
      // The first requested-address source present wins: make the corrupted one the only one.
      if (annotation !== 'lb.pharos.io/sharing-cross-namespace') {
        delete annotations['lb.pharos.io/ips'];
        delete annotations['lbipam.cilium.io/ips'];
      }
      const bad = { ...s, meta: { ...s.meta, annotations: { ...annotations, [annotation]: value } } };
      // A cross-namespace typo keeps the valid names: the typo goes beside the names the service had
      // (none: alone), or it would grant a namespace and change what others are told.
      if (annotation === 'lb.pharos.io/sharing-cross-namespace') {
        const had = s.meta.annotations[annotation];
        bad.meta.annotations[annotation] = had ? `${had},NOT_A_NS` : 'NOT_A_NS';
      }
      world.services.set(key, bad);
      world.ipam.upsertService(bad);
      const outcome = world.ipam.outcome(key)!;
      if (outcome.kind !== 'managed' || outcome.condition.reason !== 'invalid_request' || !field.test(outcome.condition.message)) {
        throw new Error(`${key}: ${JSON.stringify(outcome)}`);
      }
      if (JSON.stringify(world.ipam.exportState()) !== JSON.stringify(before)) {
        throw new Error(`allocations changed:\n${JSON.stringify(before)}\n${JSON.stringify(world.ipam.exportState())}`);
      }
      const after = plain(world.ipam.allOutcomes());
      for (const k of Object.keys(outcomesBefore)) {
        if (k !== key && JSON.stringify(after[k]) !== JSON.stringify(outcomesBefore[k])) throw new Error(`${k} changed: ${JSON.stringify(after[k])}`);
      }
    }),
    RUNS,
  );
  t.pass('bad annotations isolated');
});
