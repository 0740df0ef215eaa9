/**
 * The pure L2 election: who takes which lease, when, and what is announced —
 * table-driven, no clock and no API server.
 */
import t from 'tap';
import { decide, expired, rendezvous, serviceLeaseName, type ElectionInput, type HeldLease, type LeaseView } from '../../src/l2/election-core.js';

const NODE_MS = 1000;
const SVC_MS = 15_000;

function lease(name: string, holder: string | undefined, observedAt: number, durationMs = SVC_MS, rv = '1'): LeaseView {
  return { name, ...(holder ? { holder } : {}), durationMs, resourceVersion: rv, observedAt };
}

function nodeLeases(now: number, nodes: Record<string, number | undefined>): Map<string, LeaseView> {
  const m = new Map<string, LeaseView>();
  for (const [n, at] of Object.entries(nodes)) if (at !== undefined) m.set(n, lease(`pharos-node-${n}`, n, at, NODE_MS));
  return m;
}

function input(over: Partial<ElectionInput>): ElectionInput {
  return {
    now: 100_000,
    me: 'a',
    healthy: true,
    freshSince: 0,
    nodeLeases: new Map(),
    serviceLeases: new Map(),
    candidates: [],
    eligible: new Map(),
    held: new Map(),
    takeableSince: new Map(),
    graceMs: 2000,
    ...over,
  };
}

const svc = (n: number): { service: string; lease: string } => ({ service: `default/s${n}`, lease: serviceLeaseName(`default/s${n}`) });
const S1 = svc(1);

t.test('lease names follow the documented pattern', async (t) => {
  t.equal(serviceLeaseName('shop/web'), 'pharos-l2announce-shop-web');
  t.ok(serviceLeaseName(`ns/${'x'.repeat(300)}`).length <= 253);
  t.equal(rendezvous('a', 'b'), rendezvous('a', 'b'), 'deterministic');
});

t.test('expiry is judged on local observation, never while the view is stale', async (t) => {
  const l = lease('x', 'b', 1000, 1000);
  t.equal(expired(l, 1900, 0), false);
  t.equal(expired(l, 2100, 0), true);
  t.equal(expired(l, 2100, undefined), false, 'stale view: nothing expires');
  t.equal(expired(l, 2100, 1500), false, 'counted from when the view became fresh again');
  t.equal(expired(l, 2600, 1500), true);
});

interface Row {
  name: string;
  in: Partial<ElectionInput>;
  acquire?: string[];
  reason?: string;
  /** How many actions in all (0: nothing written). */
  actions?: number;
  release?: string[];
  lost?: string[];
  announce?: string[];
}

const now = 100_000;
const heldBy = (rv = '1'): HeldLease => ({ service: S1.service, resourceVersion: rv });

const rows: Row[] = [
  {
    name: 'free lease, sole candidate: create it',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a']]]), nodeLeases: nodeLeases(now, { a: now }) },
    acquire: [S1.lease], reason: 'free',
  },
  {
    name: 'held by a live node: sticky, nothing to do',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now - 200 }), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 4000)]]) },
    acquire: [], announce: [],
  },
  {
    name: 'holder\'s node lease expired: take over at once (service lease still valid)',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now - 1100 }), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 3000)]]) },
    acquire: [S1.lease], reason: 'holder-dead',
  },
  {
    name: 'holder\'s node lease expired but my view is stale: wait',
    in: { freshSince: undefined, candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now - 5000 }), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 3000)]]) },
    acquire: [],
  },
  {
    name: 'view fresh again only since 500 ms (after an API outage): live nodes get a full lease to renew',
    in: { freshSince: now - 500, candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now - 60_000 }), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 60_000)]]) },
    acquire: [],
  },
  {
    name: 'holder\'s node lease deleted (clean stop): take over',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now }), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 100)]]) },
    acquire: [S1.lease], reason: 'holder-dead',
  },
  {
    name: 'released lease (holder cleared): take it with its resourceVersion',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now }), serviceLeases: new Map([[S1.lease, lease(S1.lease, undefined, now - 10)]]) },
    reason: 'released',
  },
  {
    name: 'service lease written long ago, its holder alive: it stays (held by the node lease, never renewed)',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now }), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 16_000)]]) },
    acquire: [],
  },
  {
    name: 'held for an hour: announce, write nothing',
    in: { candidates: [S1], held: new Map([[S1.lease, heldBy('7')]]), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 3_600_000, SVC_MS, '7')]]) },
    actions: 0, announce: [S1.service],
  },
  {
    name: 'fenced (node lease not renewed in time): announce nothing, write nothing',
    in: { healthy: false, candidates: [S1], held: new Map([[S1.lease, heldBy()]]), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 1000)]]) },
    actions: 0, announce: [],
  },
  {
    name: 'no longer a candidate (interface down, relabelled, nodeSelector): release at once',
    in: { candidates: [], held: new Map([[S1.lease, heldBy()]]), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 1000)]]) },
    release: [S1.lease], announce: [],
  },
  {
    name: 'another node wrote my lease (I was fenced): drop it, no write',
    in: { candidates: [S1], held: new Map([[S1.lease, heldBy('7')]]), nodeLeases: nodeLeases(now, { a: now, b: now }), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 10, SVC_MS, '9')]]) },
    lost: [S1.lease], release: [], announce: [],
  },
  {
    name: 'just taken over, the watch still shows the old holder: not lost',
    in: { candidates: [S1], held: new Map([[S1.lease, { ...heldBy('9'), replacedResourceVersion: '7' }]]), nodeLeases: nodeLeases(now, { a: now }), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 1200, SVC_MS, '7')]]) },
    lost: [], announce: [S1.service],
  },
  {
    name: 'the API says the lease is mine but I do not track it (restart): reclaim',
    in: { candidates: [S1], nodeLeases: nodeLeases(now, { a: now }), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 100)]]) },
    reason: 'reclaim',
  },
  {
    name: 'the API says mine, I am no candidate (config changed while away): release',
    in: { candidates: [], serviceLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 100)]]) },
    release: [S1.lease],
  },
  {
    name: 'recovered old holder does not take back (new holder alive)',
    in: { me: 'b', candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now - 100, b: now }), serviceLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 2000, SVC_MS, '5')]]) },
    acquire: [],
  },
];

t.test('decisions, table-driven', async (t) => {
  for (const row of rows) {
    const out = decide(input(row.in));
    const of = (type: string): string[] => out.actions.filter((a) => a.type === type).map((a) => a.lease);
    if (row.acquire) t.same(of('acquire'), row.acquire, `${row.name}: acquire`);
    if (row.reason) {
      const a = out.actions.find((x) => x.type === 'acquire');
      t.equal(a?.type === 'acquire' ? a.reason : undefined, row.reason, `${row.name}: reason`);
      if (row.reason !== 'free') t.ok(a?.type === 'acquire' && a.resourceVersion, `${row.name}: resourceVersion-checked`);
    }
    if (row.actions !== undefined) t.equal(out.actions.length, row.actions, `${row.name}: ${row.actions} actions`);
    if (row.release) t.same(of('release'), row.release, `${row.name}: release`);
    if (row.lost) t.same(of('lost'), row.lost, `${row.name}: lost`);
    if (row.announce) t.same(out.announce, row.announce, `${row.name}: announce`);
  }
});

/** Runs every node's decision on a shared lease table, applying acquisitions (first writer wins), until stable. */
function simulate(nodes: string[], services: number, opts: { eligible?: (s: number) => string[]; rounds?: number; start?: Map<string, string> } = {}): Map<string, string> {
  const owner = new Map<string, string>(opts.start ?? []);
  const list = Array.from({ length: services }, (_, i) => svc(i));
  const eligible = new Map(list.map((s, i) => [s.lease, opts.eligible?.(i) ?? nodes]));
  const t0 = 100_000;
  for (let round = 0; round < (opts.rounds ?? 3); round++) {
    const now = t0 + round * 100; // every node acts on the same view per round: races resolve by the rv check
    const writes: [string, string][] = [];
    for (const me of nodes) {
      const serviceLeases = new Map([...owner].map(([l, h]) => [l, lease(l, h, now - 10)]));
      const held = new Map([...owner].filter(([, h]) => h === me).map(([l]) => [l, { service: l, resourceVersion: '1' }]));
      const out = decide(input({
        now, me, nodeLeases: nodeLeases(now, Object.fromEntries(nodes.map((n) => [n, now]))), serviceLeases,
        candidates: list.filter((s) => eligible.get(s.lease)!.includes(me)), eligible, held,
      }));
      for (const a of out.actions) if (a.type === 'acquire') writes.push([a.lease, me]);
    }
    for (const [l, me] of writes) if (!owner.has(l) || !nodes.includes(owner.get(l)!)) owner.set(l, me);
  }
  return owner;
}

function counts(owner: Map<string, string>): Record<string, number> {
  const c: Record<string, number> = {};
  for (const h of owner.values()) c[h] = (c[h] ?? 0) + 1;
  return c;
}

t.test('spreading: 200 services over 3 nodes, one round, no conflicts', async (t) => {
  const owner = simulate(['a', 'b', 'c'], 200, { rounds: 1 });
  t.equal(owner.size, 200, 'every service taken in the first round');
  const c = counts(owner);
  for (const n of ['a', 'b', 'c']) t.ok(c[n]! >= 66 && c[n]! <= 67, `node ${n} holds ${c[n]} (even: 66.7)`);
});

t.test('spreading: a node does not take more than its fair share while others live', async (t) => {
  // Node c can announce only the first 20: the rest split between a and b.
  const owner = simulate(['a', 'b', 'c'], 120, { eligible: (i) => (i < 20 ? ['a', 'b', 'c'] : ['a', 'b']) });
  t.equal(owner.size, 120, `all taken: ${JSON.stringify(counts(owner))}`);
  const c = counts(owner);
  t.ok(c.a! <= 60 && c.b! <= 60, `a=${c.a} b=${c.b} c=${c.c}`);
  t.ok(c.c! > 0 && c.c! <= 20);
});

t.test('failover: a dead node\'s services split among the living, sticky for the rest', async (t) => {
  const before = simulate(['a', 'b', 'c'], 90, { rounds: 1 });
  const survivors = ['a', 'b'];
  const after = simulate(survivors, 90, { start: before, rounds: 2 });
  t.equal([...after.values()].filter((h) => h === 'c').length, 0, 'nothing left on the dead node');
  for (const [l, h] of before) if (h !== 'c') t.equal(after.get(l), h, 'survivors keep what they had');
  const c = counts(after);
  t.equal(c.a! + c.b!, 90);
  t.ok(Math.abs(c.a! - c.b!) <= 1, `split evenly: a=${c.a} b=${c.b}`);
});

t.test('grace: a lease its assignee never takes goes to another, within fair shares, or after five retry periods', async (t) => {
  const list = [svc(1), svc(2)];
  const eligible = new Map(list.map((s) => [s.lease, ['a', 'b']]));
  const base = { nodeLeases: nodeLeases(now, { a: now, b: now }), candidates: list, eligible };
  const first = decide(input(base));
  const mine = first.actions.filter((a) => a.type === 'acquire').map((a) => a.lease);
  t.equal(mine.length, 1, 'a takes only its assigned half at first');
  const other = list.find((s) => !mine.includes(s.lease))!.lease;
  const held = new Map([[mine[0]!, { service: 'x', resourceVersion: '1' }]]);
  const later = decide(input({ ...base, takeableSince: new Map([[other, now - 2500]]), held }));
  t.notOk(later.actions.some((a) => a.type === 'acquire'), 'after the grace period: not beyond a\'s fair share while b lives');
  const much = decide(input({ ...base, takeableSince: new Map([[other, now - 10_500]]), held }));
  t.ok(much.actions.some((a) => a.type === 'acquire' && a.lease === other), 'b never took it: after five grace periods a does');
});

t.test('a lease released by a node that cannot serve it (link down) is assigned to another at once', async (t) => {
  const list = Array.from({ length: 8 }, (_, i) => svc(i));
  const eligible = new Map(list.map((s) => [s.lease, ['a', 'b']]));
  // a released them all (its link went down); b holds nothing: without the hint half would be assigned back to a.
  const serviceLeases = new Map(list.map((s) => [s.lease, { ...lease(s.lease, undefined, now - 5, SVC_MS, '3'), releasedBy: 'a' }]));
  const out = decide(input({ me: 'b', nodeLeases: nodeLeases(now, { a: now, b: now }), serviceLeases, candidates: list, eligible }));
  t.equal(out.actions.filter((a) => a.type === 'acquire').length, 8, 'b takes all of them without waiting for the grace period');
});

t.test('clean handover: released leases and a deleted node lease move everything at once', async (t) => {
  const list = [svc(1), svc(2), svc(3)];
  const eligible = new Map(list.map((s) => [s.lease, ['a', 'b']]));
  // b stopped: its node lease is gone and it cleared the holders.
  const serviceLeases = new Map(list.map((s) => [s.lease, lease(s.lease, undefined, now - 5, SVC_MS, '3')]));
  const out = decide(input({ nodeLeases: nodeLeases(now, { a: now }), serviceLeases, candidates: list, eligible }));
  t.same(out.actions.filter((a) => a.type === 'acquire').map((a) => a.lease).sort(), list.map((s) => s.lease).sort(), 'all taken in one decision');
  t.equal(out.fairShare, 3, 'alone: the fair share is everything');
});

t.test('grace: an assignee that is taking its share (one taken within the grace period) is not raced', async (t) => {
  // a holds s1, b holds s3, and s2 (its holder c is dead) is assigned to b: fair share 2 each, so a has room.
  const s1 = svc(1);
  const s3 = svc(3);
  const build = (s2: ReturnType<typeof svc>, bTookAt: number, since: number) => {
    const list = [s1, s2, s3];
    return input({
      nodeLeases: nodeLeases(now, { a: now, b: now }), candidates: list, eligible: new Map(list.map((s) => [s.lease, ['a', 'b']])),
      serviceLeases: new Map([[s1.lease, lease(s1.lease, 'a', now - 60_000, SVC_MS, '1')], [s2.lease, lease(s2.lease, 'c', now - 60_000)], [s3.lease, lease(s3.lease, 'b', bTookAt, SVC_MS, '3')]]),
      held: new Map([[s1.lease, { service: s1.service, resourceVersion: '1' }]]),
      takeableSince: new Map([[s2.lease, since]]),
    });
  };
  // A service whose lease the shared assignment gives to b (a does not take it while it is fresh).
  const s2 = Array.from({ length: 50 }, (_, i) => svc(100 + i)).find((s) => !decide(build(s, now - 500, now)).actions.some((a) => a.type === 'acquire'))!;
  t.ok(s2, 'a lease assigned to b');
  const took = (o: ReturnType<typeof decide>): boolean => o.actions.some((a) => a.type === 'acquire' && a.lease === s2.lease);
  t.notOk(took(decide(build(s2, now - 500, now - 2500))), 'overdue, but b took a lease 500 ms ago: left to b');
  t.ok(took(decide(build(s2, now - 2500, now - 2500))), 'overdue and b took nothing within the grace period: a takes it');
});
