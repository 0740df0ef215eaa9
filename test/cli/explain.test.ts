/**
 * explainService (pure): the findings and hints for the cases a "my VIP is
 * dead" thread is about, from one-service state views. The live agent's
 * answers are checked in agent-cli.test.ts.
 */
import t from 'tap';
import { explainService } from '../../src/cli/explain.js';
import { STATE_API_VERSION, type AgentStateView, type ServiceView } from '../../src/metrics/state-view.js';

const NOW = new Date('2026-12-07T12:00:00Z');

function view(over: Partial<AgentStateView> = {}): AgentStateView {
  return {
    apiVersion: STATE_API_VERSION, node: 'node-a', version: '0.1.0', source: 'kubernetes', startedAt: '2026-12-07T11:00:00Z', ready: true,
    readiness: { datapath: { ok: true, detail: 'XDP on eth0 (generic)' } },
    datapath: { mode: 'snat', pinDir: '/sys/fs/bpf/pharos', attachments: [], maps: [] },
    summary: { services: 1, frontends: 1, frontendsProgrammed: 1, backends: 1, servicesNotProgrammed: 0, l2: { announced: 1, refused: 0, pendingFirstAnnouncement: 0 } },
    notProgrammed: [], sections: [], services: [], frontends: [], pools: [], l2: [], bgp: { peers: [], routes: [] }, problems: [], config: {},
    ...over,
  };
}

const web: ServiceView = {
  key: 'shop/web', type: 'LoadBalancer', ingress: ['198.51.100.64'], externalIPs: [], ports: ['80/TCP'],
  ipam: { status: 'True', reason: 'satisfied', message: 'assigned 198.51.100.64 (pool blue)' },
  datapath: { programmed: true, frontends: 1, programmedFrontends: 1 },
  detail: { annotations: {}, externalTrafficPolicy: 'Cluster', loadBalancerSourceRanges: [], conditions: [], addressPools: { '198.51.100.64': 'blue' } },
};
const frontend = {
  id: 3, service: 'shop/web', kind: 'LoadBalancer' as const, address: '198.51.100.64', port: 80, protocol: 'TCP', programmed: true,
  backends: [{ id: 7, address: '10.0.0.5', port: 8080, weight: 1, state: 'active' as const }],
};

t.test('answered by another node, and a duplicate answer: both named, with what to do', async (t) => {
  const e = explainService(view({
    frontends: [frontend],
    l2: [{ service: 'shop/web', address: '198.51.100.64', interfaces: ['eth0'], holder: 'node-b', since: '2026-12-07T11:58:00Z', transitions: 2, local: false,
      duplicate: { mac: '02:00:00:00:00:99', count: 4, at: '2026-12-07T11:59:30Z' } }],
  }), web, NOW);
  t.equal(e.addresses[0], '198.51.100.64  from pool blue');
  t.match(e.announced[0], 'L2 198.51.100.64: answered by node-b on eth0, since 2m, 2 transitions');
  t.match(e.problems.join('\n'), 'another MAC (02:00:00:00:00:99) answered it 30s ago (4 times)');
  t.match(e.next.join('\n'), 'is answered by node-b: ask its agent');
  t.match(e.next.join('\n'), 'a split brain');
  t.equal(e.healthy, false);
  t.match(e.summary, 'served, with problems');
});

t.test('not in the data path, no ready backend, a BGP route no peer carries, a node not ready', async (t) => {
  const e = explainService(view({
    ready: false,
    readiness: { datapath: { ok: false, detail: 'broken since 11:59: program gone on eth0' } },
    frontends: [{ ...frontend, programmed: false, problem: 'frontend map full (1023 frontends, --frontend-map-size)', backends: [{ ...frontend.backends[0]!, state: 'terminating' as const }] }],
    bgp: { peers: [], routes: [{ prefix: '198.51.100.64/32', nextHop: '192.0.2.1', peers: [], service: 'shop/web', communities: [] }] },
  }), { ...web, datapath: { programmed: false, frontends: 1, programmedFrontends: 0, reason: 'FrontendMapFull', message: 'frontend map full' } }, NOW);
  t.match(e.datapath[0], 'NOT IN THE DATA PATH: frontend map full (1023 frontends, --frontend-map-size)  0 active of 1 backends');
  t.match(e.problems.join('\n'), "not fully in this node's data path (0 of 1 frontends): FrontendMapFull");
  t.match(e.problems.join('\n'), 'this node is not ready (datapath): broken since');
  t.match(e.next.join('\n'), 'no BGP session carries its routes: pharos bgp peers');
  t.match(e.next.join('\n'), '--*-map-size');
  t.match(e.summary, 'NOT SERVED');
});

t.test('no address: each IPAM reason points at its own fix; an address pharos did not give is said so', async (t) => {
  const reasons: Array<[string, RegExp]> = [
    ['no_pool', /spec\.serviceSelector/], ['out_of_ips', /pools that select it are full/], ['invalid_request', /cannot be met as written/],
  ];
  for (const [reason, hint] of reasons) {
    const e = explainService(view(), { ...web, ingress: [], ipam: { status: 'False', reason, message: 'x' }, datapath: undefined }, NOW);
    t.match(e.next.join('\n'), hint, reason);
    t.ok(e.addresses.includes('no address'));
  }
  const foreign = explainService(view(), { ...web, ipam: undefined, ingress: ['192.0.2.50'], datapath: undefined, loadBalancerClass: 'other.example/lb' }, NOW);
  t.match(foreign.addresses[0], '192.0.2.50  not from pharos');
  t.match(foreign.addresses.join('\n'), 'loadBalancerClass other.example/lb');
  t.match(foreign.next.join('\n'), 'no L2AnnouncementPolicy or BGPPeeringPolicy here selects it');
});

t.test('a draining node says so, with how to end it', async (t) => {
  const base = view({ frontends: [frontend] });
  const cordoned = explainService({
    ...base,
    summary: { ...base.summary, drain: { reason: 'cordoned', description: 'cordoned (spec.unschedulable / node.kubernetes.io/unschedulable)', bgp: { phase: 'shutdown', since: '2026-12-07T11:59:50Z', withdrawAt: '2026-12-07T12:00:00Z' } } },
  }, web, NOW);
  t.match(cordoned.problems.join('\n'), /this node is draining \(cordoned .*\): its L2 addresses go to other nodes; BGP: routes sent with GRACEFUL_SHUTDOWN, withdrawn at 2026-12-07T12:00:00Z/);
  t.ok(cordoned.next.includes('maintenance over? kubectl uncordon node-a (nothing moves back: addresses stay where they went)'));
  const labelled = explainService({ ...base, summary: { ...base.summary, drain: { reason: 'label', description: 'labelled lb.pharos.io/drain' } } }, web, NOW);
  t.ok(labelled.next.some((n) => n.startsWith('maintenance over? kubectl label node node-a lb.pharos.io/drain-')));
  t.notOk(explainService(base, web, NOW).problems.some((p) => p.includes('draining')), 'no drain, no word of it');
});
