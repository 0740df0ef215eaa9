/**
 * The pure L2 election: who takes which lease, when, and what is announced —
 * table-driven, no clock and no API server.
 */
import t from 'tap';
import { addressElectorates, addressLeaseName, decide, expired, isAddressLeaseName, legacyServiceLeaseName, rendezvous, type ElectionInput, type HeldLease, type LeaseView } from '../../src/l2/election-core.js';

const NODE_MS = 1000;
const SVC_MS = 15_000;

function lease(name: string, holder: string | undefined, observedAt: number, durationMs = SVC_MS, rv = '1'): LeaseView {
  return { name, ...(holder ? { holder } : {}), durationMs, resourceVersion: rv, observedAt };
}

function nodeLeases(_now: number, nodes: Record<string, number | undefined>): Map<string, LeaseView> {
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
    addressLeases: new Map(),
    candidates: [],
    eligible: new Map(),
    held: new Map(),
    takeableSince: new Map(),
    graceMs: 2000,
    ...over,
  };
}

/** The n-th announced address (198.18.0.0/15) and its lease. */
const svc = (n: number): { address: string; lease: string } => {
  const address = `198.18.${n >> 8}.${n & 255}`;
  return { address, lease: addressLeaseName(address) };
};
const S1 = svc(1);

t.test('lease names follow the documented pattern', async (t) => {
  t.equal(addressLeaseName('198.51.100.200'), 'pharos-l2announce-198-51-100-200');
  t.equal(addressLeaseName('2001:db8:51::200'), 'pharos-l2announce-2001-db8-51--200');
  t.equal(addressLeaseName('2001:DB8:51:0:0:0:0:200'), 'pharos-l2announce-2001-db8-51--200', 'canonical text: one name per address');
  t.equal(addressLeaseName('2001:db8::'), 'pharos-l2announce-2001-db8--0', 'never ends in a dash');
  t.equal(addressLeaseName('::1'), 'pharos-l2announce---1');
  for (const a of ['198.51.100.200', '2001:db8:51::200', '2001:db8::', '::1', '203.0.113.0']) {
    t.match(addressLeaseName(a), /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, `${a}: a valid object name`);
    t.ok(isAddressLeaseName(addressLeaseName(a)), `${a}: read back as an address lease`);
  }
  t.equal(legacyServiceLeaseName('shop/web'), 'pharos-l2announce-shop-web', 'the per-service naming of older agents');
  t.ok(legacyServiceLeaseName(`ns/${'x'.repeat(300)}`).length <= 253);
  for (const old of ['pharos-l2announce-shop-web', 'pharos-l2announce-default-echo', 'pharos-l2announce-198-a1', 'pharos-l2announce-10-0-0-web']) {
    t.notOk(isAddressLeaseName(old), `${old}: an old per-service lease`);
  }
  t.notOk(isAddressLeaseName('pharos-node-n1'));
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
const heldBy = (rv = '1'): HeldLease => ({ address: S1.address, resourceVersion: rv });

const rows: Row[] = [
  {
    name: 'free lease, sole candidate: create it',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a']]]), nodeLeases: nodeLeases(now, { a: now }) },
    acquire: [S1.lease], reason: 'free',
  },
  {
    name: 'held by a live node: sticky, nothing to do',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now - 200 }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 4000)]]) },
    acquire: [], announce: [],
  },
  {
    name: 'holder\'s node lease expired: take over at once (service lease still valid)',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now - 1100 }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 3000)]]) },
    acquire: [S1.lease], reason: 'holder-dead',
  },
  {
    name: 'holder\'s node lease expired but its heartbeats claim the address (it answers through its API outage): not taken',
    in: {
      candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now - 1100 }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 3000)]]),
      peerClaimed: new Set([S1.lease]),
    },
    acquire: [], actions: 0,
  },
  {
    name: 'taken over during an API outage, its holder alive again (a healed partition, it yielded): the lease follows at once',
    in: {
      candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b', 'c']]]), nodeLeases: nodeLeases(now, { a: now, b: now, c: now }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 3000)]]),
      outageServed: new Set([S1.lease]),
    },
    acquire: [S1.lease], reason: 'holder-dead',
  },
  {
    name: 'holder\'s node lease expired but my view is stale: wait',
    in: { freshSince: undefined, candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now - 5000 }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 3000)]]) },
    acquire: [],
  },
  {
    name: 'view fresh again only since 500 ms (after an API outage): live nodes get a full lease to renew',
    in: { freshSince: now - 500, candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now - 60_000 }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 60_000)]]) },
    acquire: [],
  },
  {
    name: 'holder\'s node lease deleted (clean stop): take over',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 100)]]) },
    acquire: [S1.lease], reason: 'holder-dead',
  },
  {
    name: 'released lease (holder cleared): take it with its resourceVersion',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now }), addressLeases: new Map([[S1.lease, lease(S1.lease, undefined, now - 10)]]) },
    reason: 'released',
  },
  {
    name: 'service lease written long ago, its holder alive: it stays (held by the node lease, never renewed)',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 16_000)]]) },
    acquire: [],
  },
  {
    name: 'held for an hour: announce, write nothing',
    in: { candidates: [S1], held: new Map([[S1.lease, heldBy('7')]]), addressLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 3_600_000, SVC_MS, '7')]]) },
    actions: 0, announce: [S1.address],
  },
  {
    name: 'fenced (node lease not renewed in time): announce nothing, write nothing',
    in: { healthy: false, candidates: [S1], held: new Map([[S1.lease, heldBy()]]), addressLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 1000)]]) },
    actions: 0, announce: [],
  },
  {
    name: 'no longer a candidate (interface down, relabelled, nodeSelector): release at once',
    in: { candidates: [], held: new Map([[S1.lease, heldBy()]]), addressLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 1000)]]) },
    release: [S1.lease], announce: [],
  },
  {
    name: 'another node wrote my lease (I was fenced): drop it, no write',
    in: { candidates: [S1], held: new Map([[S1.lease, heldBy('7')]]), nodeLeases: nodeLeases(now, { a: now, b: now }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 10, SVC_MS, '9')]]) },
    lost: [S1.lease], release: [], announce: [],
  },
  {
    name: 'just taken over, the watch still shows the old holder: not lost',
    in: { candidates: [S1], held: new Map([[S1.lease, { ...heldBy('9'), replacedResourceVersion: '7' }]]), nodeLeases: nodeLeases(now, { a: now }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'b', now - 1200, SVC_MS, '7')]]) },
    lost: [], announce: [S1.address],
  },
  {
    name: 'the API says the lease is mine but I do not track it (restart): reclaim',
    in: { candidates: [S1], nodeLeases: nodeLeases(now, { a: now }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 100)]]) },
    reason: 'reclaim',
  },
  {
    name: 'the API says mine, I am no candidate (config changed while away): release',
    in: { candidates: [], addressLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 100)]]) },
    release: [S1.lease],
  },
  {
    name: 'recovered old holder does not take back (new holder alive)',
    in: { me: 'b', candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now - 100, b: now }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 2000, SVC_MS, '5')]]) },
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
      const addressLeases = new Map([...owner].map(([l, h]) => [l, lease(l, h, now - 10)]));
      const held = new Map([...owner].filter(([, h]) => h === me).map(([l]) => [l, { address: l, resourceVersion: '1' }]));
      const out = decide(input({
        now, me, nodeLeases: nodeLeases(now, Object.fromEntries(nodes.map((n) => [n, now]))), addressLeases,
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
  const held = new Map([[mine[0]!, { address: 'x', resourceVersion: '1' }]]);
  const later = decide(input({ ...base, takeableSince: new Map([[other, now - 2500]]), held }));
  t.notOk(later.actions.some((a) => a.type === 'acquire'), 'after the grace period: not beyond a\'s fair share while b lives');
  const much = decide(input({ ...base, takeableSince: new Map([[other, now - 10_500]]), held }));
  t.ok(much.actions.some((a) => a.type === 'acquire' && a.lease === other), 'b never took it: after five grace periods a does');
});

t.test('a lease released by a node that cannot serve it (link down) is assigned to another at once', async (t) => {
  const list = Array.from({ length: 8 }, (_, i) => svc(i));
  const eligible = new Map(list.map((s) => [s.lease, ['a', 'b']]));
  // a released them all (its link went down); b holds nothing: without the hint half would be assigned back to a.
  const addressLeases = new Map(list.map((s) => [s.lease, { ...lease(s.lease, undefined, now - 5, SVC_MS, '3'), releasedBy: 'a' }]));
  const out = decide(input({ me: 'b', nodeLeases: nodeLeases(now, { a: now, b: now }), addressLeases, candidates: list, eligible }));
  t.equal(out.actions.filter((a) => a.type === 'acquire').length, 8, 'b takes all of them without waiting for the grace period');
});

t.test('clean handover: released leases and a deleted node lease move everything at once', async (t) => {
  const list = [svc(1), svc(2), svc(3)];
  const eligible = new Map(list.map((s) => [s.lease, ['a', 'b']]));
  // b stopped: its node lease is gone and it cleared the holders.
  const addressLeases = new Map(list.map((s) => [s.lease, lease(s.lease, undefined, now - 5, SVC_MS, '3')]));
  const out = decide(input({ nodeLeases: nodeLeases(now, { a: now }), addressLeases, candidates: list, eligible }));
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
      addressLeases: new Map([[s1.lease, lease(s1.lease, 'a', now - 60_000, SVC_MS, '1')], [s2.lease, lease(s2.lease, 'c', now - 60_000)], [s3.lease, lease(s3.lease, 'b', bTookAt, SVC_MS, '3')]]),
      held: new Map([[s1.lease, { address: s1.address, resourceVersion: '1' }]]),
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

// ---------------------------------------------------------------- one owner per address (issue 18)

const legacy = (name: string, holder: string | undefined, addressLeases: string[], rv = '4') => ({ ...lease(name, holder, now - 60_000, SVC_MS, rv), addressLeases });
const OLD = legacyServiceLeaseName('default/web');

const legacyRows: Row[] = [
  {
    name: 'upgrade: an older agent (live) holds the per-service lease of a service of the address: do not take the address',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now, b: now }), legacy: new Map([[OLD, legacy(OLD, 'b', [S1.lease])]]) },
    actions: 0, announce: [],
  },
  {
    name: 'upgrade: an older agent took the per-service lease of an address I hold: give the address up',
    in: { candidates: [S1], held: new Map([[S1.lease, heldBy('7')]]), nodeLeases: nodeLeases(now, { a: now, b: now }), addressLeases: new Map([[S1.lease, lease(S1.lease, 'a', now - 1000, SVC_MS, '7')]]), legacy: new Map([[OLD, legacy(OLD, 'b', [S1.lease])]]) },
    release: [S1.lease], announce: [],
  },
  {
    name: 'upgrade: the per-service lease\'s holder is dead (or released it): ignored',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a', 'b']]]), nodeLeases: nodeLeases(now, { a: now }), legacy: new Map([[OLD, legacy(OLD, 'b', [S1.lease])], ['x', legacy('x', undefined, [S1.lease])]]) },
    acquire: [S1.lease], reason: 'free',
  },
  {
    name: 'upgrade: a per-service lease the API says is mine (my older agent\'s): cleared, the address elected as usual',
    in: { candidates: [S1], eligible: new Map([[S1.lease, ['a']]]), nodeLeases: nodeLeases(now, { a: now }), legacy: new Map([[OLD, legacy(OLD, 'a', [S1.lease])]]) },
    release: [OLD], acquire: [S1.lease],
  },
  {
    name: 'fenced: not even the per-service lease is cleared',
    in: { healthy: false, candidates: [S1], legacy: new Map([[OLD, legacy(OLD, 'a', [S1.lease])]]) },
    actions: 0,
  },
];

t.test('upgrade from per-service leases, table-driven', async (t) => {
  for (const row of legacyRows) {
    const out = decide(input(row.in));
    const of = (type: string): string[] => out.actions.filter((a) => a.type === type).map((a) => a.lease);
    if (row.acquire) t.same(of('acquire'), row.acquire, `${row.name}: acquire`);
    if (row.reason) t.equal(out.actions.find((x) => x.type === 'acquire')?.type === 'acquire' ? (out.actions.find((x) => x.type === 'acquire') as { reason: string }).reason : undefined, row.reason, `${row.name}: reason`);
    if (row.actions !== undefined) t.equal(out.actions.length, row.actions, `${row.name}: ${row.actions} actions`);
    if (row.release) t.same(of('release'), row.release, `${row.name}: release`);
    if (row.announce) t.same(out.announce, row.announce, `${row.name}: announce`);
  }
  const cleared = decide(input(legacyRows[3]!.in)).actions.find((a) => a.type === 'release');
  t.ok(cleared?.type === 'release' && cleared.legacy, 'the cleared per-service lease is marked as such (no address of its own)');
});

t.test('addressElectorates: an address is open to every node eligible for one of its services', async (t) => {
  const shared = ['a', 'b'];
  const e = addressElectorates(
    new Map([['ns/x', shared], ['ns/y', shared], ['ns/z', ['c']]]),
    new Map([['ns/x', ['198.18.0.1', '2001:db8::1']], ['ns/y', ['198.18.0.1']], ['ns/z', ['2001:db8::1']]]),
  );
  t.equal(e.get('198.18.0.1'), shared, 'same policies: the very same list (electorates computed once)');
  t.same(e.get('2001:db8::1'), ['a', 'b', 'c'], 'different policies: the union');
});

/** Deterministic PRNG (mulberry32): a failing world can be replayed from its seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface World {
  nodes: string[];
  /** Each service's addresses (drawn from a small pool: many are shared) and the nodes that can announce it. */
  services: { service: string; addresses: string[]; eligible: string[] }[];
}

function randomWorld(rand: () => number, sameEligibility: boolean): World {
  const nodes = Array.from({ length: 2 + Math.floor(rand() * 5) }, (_, i) => `n${i + 1}`);
  const pool = Array.from({ length: 2 + Math.floor(rand() * 12) }, (_, i) => (rand() < 0.3 ? `2001:db8::${(i + 1).toString(16)}` : `198.18.1.${i + 1}`));
  const services = Array.from({ length: 1 + Math.floor(rand() * 30) }, (_, i) => {
    const addresses = [...new Set([pool[Math.floor(rand() * pool.length)]!, ...(rand() < 0.2 ? [pool[Math.floor(rand() * pool.length)]!] : [])])].sort();
    const eligible = sameEligibility ? nodes : nodes.filter(() => rand() < 0.7);
    return { service: `default/s${i}`, addresses, eligible: eligible.length ? eligible : [nodes[0]!] };
  });
  return { nodes, services };
}

/**
 * Every live node decides on one shared lease table, round after round (a
 * lease written by one node in a round is lost to the others: the rv check);
 * returns what each node announces at the end, as (service, address) pairs.
 * `perService` elects as agents before issue 18 did: one lease per service.
 */
function electWorld(w: World, live: string[], opts: { perService?: boolean; start?: Map<string, string>; rounds?: number } = {}): { owner: Map<string, string>; announced: Map<string, { service: string; address: string }[]>; fair: Map<string, number> } {
  const addressesByService = new Map(w.services.map((s) => [s.service, s.addresses]));
  const eligibleByService = new Map(w.services.map((s) => [s.service, s.eligible]));
  // The units elected: addresses (lease per address), or services (lease per service).
  const unitsOf = (s: World['services'][number]): string[] => (opts.perService ? [s.service] : s.addresses);
  const leaseOf = (unit: string): string => (opts.perService ? legacyServiceLeaseName(unit) : addressLeaseName(unit));
  const eligibleByUnit = opts.perService ? eligibleByService : addressElectorates(eligibleByService, addressesByService);
  const eligible = new Map([...eligibleByUnit].map(([u, n]) => [leaseOf(u), n]));
  const candidatesOf = new Map(live.map((me) => {
    const units = new Set(w.services.filter((s) => s.eligible.includes(me)).flatMap(unitsOf));
    return [me, [...units].map((u) => ({ address: u, lease: leaseOf(u) }))];
  }));
  const owner = new Map(opts.start ?? []);
  const t0 = 100_000;
  let outs = new Map<string, ReturnType<typeof decide>>();
  // Each node's own record of since when each lease has been takeable (as election.ts keeps it).
  const since = new Map(live.map((n) => [n, new Map<string, number>()]));
  for (let round = 0; round <= (opts.rounds ?? 8); round++) {
    const at = t0 + round * 2100; // past the grace period each round: overdue leases go to whoever has room
    outs = new Map();
    const writes: [string, string][] = [];
    for (const me of live) {
      const out = decide(input({
        now: at, me, nodeLeases: nodeLeases(at, Object.fromEntries(live.map((n) => [n, at]))),
        addressLeases: new Map([...owner].map(([l, h]) => [l, lease(l, h, at - 10)])),
        candidates: candidatesOf.get(me)!, eligible,
        held: new Map([...owner].filter(([, h]) => h === me).map(([l]) => [l, { address: l, resourceVersion: '1' }])),
        takeableSince: since.get(me)!,
      }));
      const takeable = new Set(out.takeable);
      const mine = since.get(me)!;
      for (const l of [...mine.keys()]) if (!takeable.has(l)) mine.delete(l);
      for (const l of takeable) if (!mine.has(l)) mine.set(l, at);
      outs.set(me, out);
      for (const a of out.actions) if (a.type === 'acquire') writes.push([a.lease, me]);
    }
    for (const [l, me] of writes) if (!owner.has(l) || !live.includes(owner.get(l)!)) owner.set(l, me);
  }
  const announced = new Map<string, { service: string; address: string }[]>();
  for (const [me, out] of outs) {
    const units = new Set(out.announce);
    const pairs: { service: string; address: string }[] = [];
    for (const s of w.services) {
      if (!s.eligible.includes(me)) continue;
      for (const address of s.addresses) if (units.has(opts.perService ? s.service : address)) pairs.push({ service: s.service, address });
    }
    announced.set(me, pairs);
  }
  return { owner, announced, fair: new Map([...outs].map(([n, o]) => [n, o.fairShare])) };
}

/** Addresses answered by more than one node. */
function doubleAnswered(announced: Map<string, { address: string }[]>): string[] {
  const by = new Map<string, Set<string>>();
  for (const [node, pairs] of announced) for (const p of pairs) (by.get(p.address) ?? by.set(p.address, new Set()).get(p.address)!).add(node);
  return [...by].filter(([, nodes]) => nodes.size > 1).map(([a, nodes]) => `${a} on ${[...nodes].join('+')}`);
}

t.test('property: whatever services share addresses, no address ever has two holders; fair share per address', async (t) => {
  let worlds = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const rand = prng(seed);
    const same = seed % 3 !== 0;
    const w = randomWorld(rand, same);
    const all = [...new Set(w.services.flatMap((s) => s.addresses))];
    const check = (what: string, live: string[], r: ReturnType<typeof electWorld>): void => {
      const doubles = doubleAnswered(r.announced);
      if (doubles.length) t.fail(`seed ${seed}, ${what}: answered twice: ${doubles.join(', ')}`);
      const held = new Map<string, number>();
      for (const h of r.owner.values()) if (live.includes(h)) held.set(h, (held.get(h) ?? 0) + 1);
      const servable = all.filter((a) => w.services.some((s) => s.addresses.includes(a) && s.eligible.some((n) => live.includes(n))));
      const answered = new Set([...r.announced.values()].flatMap((p) => p.map((x) => x.address)));
      if (servable.some((a) => !answered.has(a))) t.fail(`seed ${seed}, ${what}: unanswered: ${servable.filter((a) => !answered.has(a)).join(', ')}`);
      // Addresses only one live node may take: it takes them, fair share or not.
      const forced = new Map<string, number>();
      for (const a of all) {
        const voters = live.filter((n) => w.services.some((s) => s.addresses.includes(a) && s.eligible.includes(n)));
        if (voters.length === 1) forced.set(voters[0]!, (forced.get(voters[0]!) ?? 0) + 1);
      }
      for (const n of live) {
        // An address counts towards fair shares: nobody holds more than ceil(its share) while others have room.
        // (With eligibility differing per address, a survivor keeps what it held — sticky — which the
        // shares of the smaller electorate may not cover: checked from scratch only.)
        const cap = r.fair.get(n)! + (same ? 0 : forced.get(n) ?? 0);
        if ((same || what === 'all nodes') && (held.get(n) ?? 0) > cap) t.fail(`seed ${seed}, ${what}: ${n} holds ${held.get(n)} > fair share ${r.fair.get(n)} (+ ${forced.get(n) ?? 0} only it may take)`);
      }
      if (same) {
        const counts = live.map((n) => held.get(n) ?? 0);
        if (Math.max(...counts) - Math.min(...counts) > 1) t.fail(`seed ${seed}, ${what}: spread ${counts.join('/')} of ${all.length} addresses`);
      }
    };
    const before = electWorld(w, w.nodes);
    check('all nodes', w.nodes, before);
    // A node dies: its addresses move, the others' stay.
    const dead = w.nodes[Math.floor(rand() * w.nodes.length)]!;
    const live = w.nodes.filter((n) => n !== dead);
    const after = electWorld(w, live, { start: before.owner });
    check(`${dead} dead`, live, after);
    for (const [l, h] of before.owner) if (h !== dead && after.owner.get(l) !== h) t.fail(`seed ${seed}: ${l} moved from live ${h}`);
    worlds++;
  }
  t.equal(worlds, 150, '150 random worlds, before and after a node dies');
});

t.test('the same property fails with one lease per service (the election before issue 18)', async (t) => {
  let broken = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const w = randomWorld(prng(seed), true);
    if (doubleAnswered(electWorld(w, w.nodes, { perService: true }).announced).length > 0) broken++;
  }
  t.ok(broken > 0, `per-service leases answered a shared address from two nodes in ${broken} of 150 worlds`);
});
