/**
 * The drain hand-off in the pure L2 election and the BGP drain phases (issue
 * 18 item 7): a draining node takes nothing new and keeps answering for what
 * it holds until a successor, picked by the shared balanced assignment among
 * the other nodes, writes the lease; fair share holds among those; an
 * undrained node competes again without taking anything back. No clock, no
 * API server.
 */
import t from 'tap';
import { addressLeaseName, decide, type ElectionInput, type HeldLease, type LeaseView } from '../../src/l2/election-core.js';
import { drainReason } from '../../src/model/drain.js';
import { drainedPeers, drainPhase, GRACEFUL_SHUTDOWN } from '../../src/bgp/drain.js';
import type { Node } from '../../src/model/types.js';
import type { PeerSpec } from '../../src/bgp/speaker.js';

const NOW = 100_000;
const nodeLease = (n: string): LeaseView => ({ name: `pharos-node-${n}`, holder: n, durationMs: 1000, resourceVersion: '1', observedAt: NOW - 100 });
const addr = (i: number): { address: string; lease: string } => ({ address: `198.18.1.${i}`, lease: addressLeaseName(`198.18.1.${i}`) });
const ADDRS = [1, 2, 3, 4, 5, 6].map(addr);
const NODES = ['a', 'b', 'c'];

/** 6 addresses, 3 nodes, each holding 2 (a: 1-2, b: 3-4, c: 5-6), seen from `me`. */
function cluster(me: string, draining: string[], held?: string[]): ElectionInput {
  const holders = ['a', 'a', 'b', 'b', 'c', 'c'];
  const addressLeases = new Map(ADDRS.map((x, i) => [x.lease, { name: x.lease, holder: holders[i]!, durationMs: 15_000, resourceVersion: `${10 + i}`, observedAt: NOW - 5000 }]));
  const heldMap = new Map<string, HeldLease>();
  ADDRS.forEach((x, i) => {
    if (holders[i] === me && (!held || held.includes(x.address))) heldMap.set(x.lease, { address: x.address, resourceVersion: `${10 + i}` });
  });
  return {
    now: NOW, me, healthy: true, freshSince: 0,
    nodeLeases: new Map(NODES.map((n) => [n, nodeLease(n)])),
    addressLeases,
    candidates: ADDRS,
    eligible: new Map(ADDRS.map((x) => [x.lease, NODES])),
    held: heldMap,
    takeableSince: new Map(),
    graceMs: 2000,
    draining: new Set(draining),
  };
}

t.test('the draining holder keeps answering; the other nodes split its addresses, one each', async (t) => {
  const drainer = decide(cluster('a', ['a']));
  t.same(drainer.announce, ['198.18.1.1', '198.18.1.2'], 'a still answers for what it holds');
  t.same(drainer.actions, [], 'and writes nothing: the successor takes the lease');
  t.equal(drainer.fairShare, 0, 'a draining node has no share');
  const takers = new Map<string, string[]>();
  for (const me of ['b', 'c']) {
    const out = decide(cluster(me, ['a']));
    const acquired = out.actions.filter((x) => x.type === 'acquire');
    t.ok(acquired.every((x) => x.type === 'acquire' && x.reason === 'drain' && x.resourceVersion), `${me}: takes by a checked update, reason drain`);
    takers.set(me, acquired.map((x) => x.lease));
    t.equal(out.fairShare, 3, `${me}: fair share 6/2`);
  }
  const all = [...takers.values()].flat().sort();
  t.same(all, [ADDRS[0]!.lease, ADDRS[1]!.lease].sort(), 'each of a\'s addresses is taken by exactly one node');
  t.equal(takers.get('b')!.length, 1, 'b takes one');
  t.equal(takers.get('c')!.length, 1, 'c takes one: fair share among the rest');
});

t.test('a draining node takes nothing free, even past the grace periods', async (t) => {
  const input = cluster('a', ['a']);
  const free = addr(9);
  const out = decide({
    ...input,
    candidates: [...ADDRS, free],
    eligible: new Map([...input.eligible, [free.lease, NODES]]),
    takeableSince: new Map([[free.lease, NOW - 60_000]]),
  });
  t.notOk(out.actions.some((x) => x.type === 'acquire'), 'no acquire by a draining node');
});

t.test('with nobody else to take them, the draining node keeps its addresses', async (t) => {
  const input = cluster('b', ['a', 'c']);
  const out = decide({ ...input, draining: new Set(['a', 'b', 'c']) });
  t.notOk(out.actions.some((x) => x.type === 'acquire'), 'no successor among draining nodes');
  const onlyA = decide({ ...cluster('b', ['a']), eligible: new Map(ADDRS.map((x) => [x.lease, ['a']])), candidates: [] });
  t.notOk(onlyA.actions.some((x) => x.type === 'acquire'), 'nobody eligible but the drainer');
});

t.test('a heartbeat claim by the draining holder does not block its successor', async (t) => {
  const out = decide({ ...cluster('b', ['a']), peerClaimed: new Set([ADDRS[0]!.lease, ADDRS[1]!.lease]) });
  t.ok(out.actions.some((x) => x.type === 'acquire' && x.reason === 'drain'));
});

t.test('the successor\'s write makes the drainer drop the hold (its caller lingers)', async (t) => {
  const input = cluster('a', ['a']);
  const taken = new Map(input.addressLeases);
  taken.set(ADDRS[0]!.lease, { ...taken.get(ADDRS[0]!.lease)!, holder: 'b', resourceVersion: '99' });
  const out = decide({ ...input, addressLeases: taken });
  t.same(out.actions, [{ type: 'lost', lease: ADDRS[0]!.lease, address: ADDRS[0]!.address }]);
  t.same(out.announce, ['198.18.1.2']);
});

t.test('undrained: a competes again, takes nothing back (sticky), only free leases up to its share', async (t) => {
  // After the drain: b holds 1,3,4; c holds 2,5,6; a none. Undrained, a sees nothing free.
  const input = cluster('a', []);
  const moved = new Map(input.addressLeases);
  moved.set(ADDRS[0]!.lease, { ...moved.get(ADDRS[0]!.lease)!, holder: 'b', resourceVersion: '50' });
  moved.set(ADDRS[1]!.lease, { ...moved.get(ADDRS[1]!.lease)!, holder: 'c', resourceVersion: '51' });
  const out = decide({ ...input, addressLeases: moved, held: new Map() });
  t.same(out.actions, [], 'no churn: nothing taken back');
  t.equal(out.fairShare, 2, 'a counts again');
  const free = addr(7);
  const withFree = decide({ ...input, addressLeases: moved, held: new Map(), candidates: [...ADDRS, free], eligible: new Map([...input.eligible, [free.lease, NODES]]) });
  t.same(withFree.actions.map((x) => x.type === 'acquire' && x.lease), [free.lease], 'the least-loaded node (a) is assigned a new address');
});

t.test('drain reasons: the label (any value), cordon, the unschedulable taint', async (t) => {
  const node = (over: Partial<Node>): Node => ({ kind: 'Node', meta: { name: 'n', labels: {}, annotations: {} } as unknown as Node['meta'], addresses: [], ...over });
  t.equal(drainReason(undefined), undefined);
  t.equal(drainReason(node({})), undefined);
  t.equal(drainReason(node({ meta: { name: 'n', labels: { 'lb.pharos.io/drain': '' }, annotations: {} } as unknown as Node['meta'] })), 'label');
  t.equal(drainReason(node({ meta: { name: 'n', labels: { 'lb.pharos.io/drain': 'false' }, annotations: {} } as unknown as Node['meta'] })), 'label', 'presence, not value');
  t.equal(drainReason(node({ unschedulable: true })), 'cordoned');
  t.equal(drainReason(node({ taintKeys: ['node.kubernetes.io/unschedulable'] })), 'cordoned');
  t.equal(drainReason(node({ taintKeys: ['node.kubernetes.io/not-ready'] })), undefined);
});

t.test('BGP drain phases: GRACEFUL_SHUTDOWN and a worse path, then withdrawn', async (t) => {
  t.equal(drainPhase(undefined, 5000, 1000), 'none');
  t.equal(drainPhase(4500, 5000, 1000), 'shutdown');
  t.equal(drainPhase(4000, 5000, 1000), 'withdrawn');
  const peer = { id: 'p', routes: [{ prefix: '198.18.1.1/32', communities: [65000 * 65536 + 1], largeCommunities: [], localPreference: 200 }] } as unknown as PeerSpec;
  const [shut] = drainedPeers([peer], 'shutdown');
  t.same(shut!.routes[0]!.communities, [65000 * 65536 + 1, GRACEFUL_SHUTDOWN], 'the community is added to the policy\'s');
  t.equal(shut!.routes[0]!.localPreference, 0, 'LOCAL_PREF 0 (internal sessions)');
  t.equal(shut!.routes[0]!.asPathPrepend, 1, 'one more copy of our AS (external sessions)');
  t.equal(GRACEFUL_SHUTDOWN, 0xffff0000, '65535:0');
  t.same(drainedPeers([peer], 'withdrawn')[0]!.routes, []);
  t.equal(drainedPeers([peer], 'none')[0], peer);
});
