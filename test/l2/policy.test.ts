/**
 * The per-service caches of L2 candidates and eligible nodes give, after
 * any sequence of edits the store can make, exactly what the plain
 * functions compute from scratch; and the plain functions keep their rules
 * (externalTrafficPolicy Local, interfaces, policies).
 */
import t from 'tap';
import { L2AddressCache, L2CandidateCache, L2EligibleCache, l2AnnouncedAddresses, l2Candidates, l2EligibleNodes, type L2Candidate, type L2PolicyInput } from '../../src/l2/policy.js';
import type { L2Policy, Node } from '../../src/model/types.js';
import type { Snapshot } from '../../src/store/store.js';
import type { ChangeSet } from '../../src/store/controller.js';
import type { Kind } from '../../src/model/types.js';
import { ETH0, NODES, POLICY, addressOf, service, slice, syntheticSnapshot } from './synthetic.js';

const ETH1 = { name: 'eth1', ifindex: 3, mac: '02:00:00:00:00:02', up: true, addresses: ['198.51.100.1'] };

const GOLD: L2Policy = {
  kind: 'L2AnnouncementPolicy',
  meta: { name: 'gold', labels: {}, annotations: {} },
  flavor: 'pharos',
  serviceSelector: { matchLabels: { tier: 'gold' }, matchExpressions: [] },
  nodeSelector: { matchLabels: {}, matchExpressions: [{ key: 'edge', operator: 'Exists', values: [] }] },
  interfaces: ['^eth1$'],
  loadBalancerIPs: true,
  externalIPs: true,
};

/** A small deterministic generator (mulberry32): the same edits on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const byService = (list: L2Candidate[]): string => JSON.stringify([...list].sort((a, b) => (a.service < b.service ? -1 : 1)));

/** What changed between two snapshots, as the agent reports it to a controller. */
function changeSet(from: Snapshot, to: Snapshot): ChangeSet {
  const keys = new Map<Kind, Set<string>>();
  const diff = (kind: Kind, a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): void => {
    const set = new Set<string>();
    for (const [k, v] of b) if (a.get(k) !== v) set.add(k);
    for (const k of a.keys()) if (!b.has(k)) set.add(k);
    if (set.size) keys.set(kind, set);
  };
  diff('Service', from.services, to.services);
  diff('EndpointSlice', from.endpointSlices, to.endpointSlices);
  diff('Node', from.nodes, to.nodes);
  diff('L2AnnouncementPolicy', from.l2Policies, to.l2Policies);
  return { all: false, keys };
}

t.test('the caches agree with a computation from scratch after every edit', async (t) => {
  const rnd = random(15);
  const pick = (n: number): number => Math.floor(rnd() * n);
  let snap: Snapshot = syntheticSnapshot(300, { localEvery: 3 });
  let interfaces = [ETH0, ETH1];
  let labels: Record<string, string> = {};
  const candidates = new L2CandidateCache();
  const eligible = new L2EligibleCache();
  const addresses = new L2AddressCache();
  let mismatches = 0;
  let changes = 0;
  let previous = '';
  // The snapshot each cache last saw: the agent hands the changes since then (sometimes none: a full look).
  let seen: Snapshot = snap;
  const ours = (): boolean => true;
  let incremental = 0;
  for (let step = 0; step < 400; step++) {
    const services = new Map(snap.services);
    const slices = new Map(snap.endpointSlices);
    const policies = new Map(snap.l2Policies);
    const nodes = new Map(snap.nodes);
    const i = pick(320);
    const kind = pick(10);
    if (kind === 0) services.set(`default/s${i}`, service(i, { meta: { name: `s${i}`, namespace: 'default', labels: { app: `s${i}`, tier: rnd() < 0.5 ? 'gold' : 'iron' }, annotations: {} } }));
    else if (kind === 1) services.set(`default/s${i}`, service(i, { status: { ingress: [{ ip: addressOf(1000 + pick(50)) }], conditions: [] } }));
    else if (kind === 2) services.delete(`default/s${i}`);
    else if (kind === 3) services.set(`default/s${i}`, service(i, { externalTrafficPolicy: rnd() < 0.5 ? 'Local' : 'Cluster', externalIPs: rnd() < 0.3 ? ['203.0.113.7'] : [] }));
    else if (kind === 4) {
      // Endpoints move between nodes: a Local service gains or loses its ready endpoint here.
      const moved = slice(i, 1 + pick(2));
      slices.set(`default/s${i}-abc`, { ...moved, endpoints: moved.endpoints.map((e) => ({ ...e, nodeName: NODES[pick(NODES.length)]!, ready: rnd() < 0.8 })) });
    }
    else if (kind === 5) slices.delete(`default/s${i}-abc`);
    else if (kind === 6) {
      if (!policies.delete('gold')) policies.set('gold', GOLD);
    }
    else if (kind === 7) labels = labels.edge ? {} : { edge: 'yes' };
    else if (kind === 8) interfaces = interfaces.length === 2 ? [ETH0] : [ETH0, { ...ETH1 }];
    else {
      const n = NODES[pick(NODES.length)]!;
      const node: Node = { kind: 'Node', meta: { name: n, labels: rnd() < 0.5 ? { edge: 'yes' } : {}, annotations: {} }, addresses: [] };
      nodes.set(n, node);
    }
    snap = { ...snap, revision: snap.revision + 1, services, endpointSlices: slices, l2Policies: policies, nodes };
    const input: L2PolicyInput = { nodeName: 'n1', nodeLabels: labels, interfaces: interfaces.map((x) => ({ ...x })), isOurService: ours };
    // Sometimes the controller is not called for a step: the next call carries both steps' changes.
    if (rnd() < 0.2) continue;
    const delta = rnd() < 0.8 ? changeSet(seen, snap) : undefined;
    if (delta) incremental++;
    seen = snap;
    const before = candidates.compute(snap, input, delta);
    const cached = candidates.compute({ ...snap }, input, { all: false, keys: new Map() });
    if (cached !== before) t.fail('the same maps give the same result object');
    const plain = l2Candidates(snap, input);
    if (byService(cached) !== byService(plain)) mismatches++;
    const names = [...NODES, 'n4'];
    const e = eligible.compute(snap, names, input.isOurService, delta);
    if (JSON.stringify([...e].sort()) !== JSON.stringify([...l2EligibleNodes(snap, names, input.isOurService)].sort())) mismatches++;
    const a = addresses.compute(snap, input.isOurService, delta);
    if (JSON.stringify([...a].sort()) !== JSON.stringify([...l2AnnouncedAddresses(snap, input.isOurService)].sort())) mismatches++;
    if (byService(plain) !== previous) changes++;
    previous = byService(plain);
  }
  t.equal(mismatches, 0, `400 edits, ${incremental} passes given only the changes: no disagreement`);
  t.ok(changes > 100, `${changes} of the edits changed the candidates`);
});

t.test('the rules: Local needs a ready local endpoint, policies need an interface, eligible nodes follow nodeSelector', async (t) => {
  const snap = syntheticSnapshot(3);
  const local = service(0, { externalTrafficPolicy: 'Local' });
  const services = new Map(snap.services).set('default/s0', local);
  const slices = new Map(snap.endpointSlices).set('default/s0-abc', { ...slice(0, 1), endpoints: [{ ...slice(0, 1).endpoints[0]!, nodeName: 'n2' }] });
  const world: Snapshot = { ...snap, services, endpointSlices: slices, l2Policies: new Map([['all', POLICY], ['gold', GOLD]]) };
  const input: L2PolicyInput = { nodeName: 'n1', nodeLabels: {}, interfaces: [ETH0], isOurService: () => true };
  t.same(l2Candidates(world, input).map((c) => c.service), ['default/s1', 'default/s2'], 'Local service without a ready endpoint here: not a candidate');
  t.same(l2Candidates(world, { ...input, nodeName: 'n2' }).map((c) => c.service), ['default/s0', 'default/s1', 'default/s2']);
  t.same(l2Candidates(world, { ...input, interfaces: [{ ...ETH0, up: false }] }), [], 'no usable interface: nothing');
  const eligible = l2EligibleNodes(world, NODES, () => true);
  t.same(eligible.get('default/s0'), ['n2'], 'Local: only nodes with a ready endpoint');
  t.same(eligible.get('default/s1'), NODES);
  const gold = service(1, { meta: { name: 's1', namespace: 'default', labels: { tier: 'gold' }, annotations: {} } });
  const goldOnly: Snapshot = { ...world, services: new Map([['default/s1', gold]]), l2Policies: new Map([['gold', GOLD]]) };
  const nodes = new Map<string, Node>(NODES.map((n): [string, Node] => [n, { kind: 'Node', meta: { name: n, labels: n === 'n3' ? { edge: '1' } : {}, annotations: {} }, addresses: [] }]));
  t.same(l2EligibleNodes({ ...goldOnly, nodes }, NODES, () => true).get('default/s1'), ['n3'], 'nodeSelector decides who may compete');
  t.same(l2Candidates(goldOnly, { ...input, nodeLabels: { edge: '1' }, interfaces: [ETH0, ETH1] })[0]?.interfaces.map((i) => i.name), ['eth1'], 'the policy\'s interfaces only');
});
