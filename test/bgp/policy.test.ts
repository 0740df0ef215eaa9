/**
 * desiredBgp(): neighbors and routes from manifests (Cilium's
 * CiliumBGPPeeringPolicy as is, and pharos' own BGPPeeringPolicy), parsed
 * by src/model/parse.ts into a real Store.
 */
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { parseObject } from '../../src/model/parse.js';
import { Store } from '../../src/store/store.js';
import { desiredBgp } from '../../src/bgp/policy.js';
import { parseCommunity } from '../../src/bgp/codec.js';
import { serviceScope } from '../../src/model/scope.js';

/** The agent's default scope: class-less services are ours. */
const OURS = { isOurService: serviceScope(true) };

function storeOf(yamlDocs: string): Store {
  const store = new Store();
  for (const doc of yamlDocs.split(/^---$/m)) {
    if (!doc.trim()) continue;
    const r = parseObject(parseYaml(doc));
    if (!r.ok) throw new Error(`fixture does not parse: ${JSON.stringify(r)}`);
    store.apply(r.object);
  }
  return store;
}

const NODE = `
apiVersion: v1
kind: Node
metadata: { name: lb-1, labels: { bgp: "yes" } }
status: { addresses: [ { type: InternalIP, address: 198.51.100.21 }, { type: InternalIP, address: "2001:db8::21" } ] }
`;

function lbService(name: string, ips: string[], extra = ''): string {
  return `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default, labels: { app: ${name} } }
spec:
  type: LoadBalancer
  ports: [ { port: 80, protocol: TCP } ]
${extra}
status: { loadBalancer: { ingress: [ ${ips.map((ip) => `{ ip: "${ip}" }`).join(', ')} ] } }
`;
}

const CILIUM_POLICY = `
apiVersion: cilium.io/v2alpha1
kind: CiliumBGPPeeringPolicy
metadata: { name: rack0 }
spec:
  nodeSelector: { matchLabels: { bgp: "yes" } }
  virtualRouters:
  - localASN: 65001
    serviceSelector:
      matchExpressions: [ { key: somekey, operator: NotIn, values: [ never-used-value ] } ]
    neighbors:
    - peerAddress: 198.51.100.1/32
      peerASN: 65000
      eBGPMultihopTTL: 3
      connectRetryTimeSeconds: 5
      holdTimeSeconds: 9
      keepAliveTimeSeconds: 3
      gracefulRestart: { enabled: true, restartTimeSeconds: 90 }
      advertisedPathAttributes:
      - selectorType: CiliumLoadBalancerIPPool
        selector: { matchLabels: { color: blue } }
        communities: { standard: [ "65001:100" ], wellKnown: [ no-export ], large: [ "65001:1:2" ] }
        localPreference: 200
      - selectorType: CiliumLoadBalancerIPPool
        communities: { standard: [ "65001:999" ] }
        localPreference: 150
    - peerAddress: "2001:db8::1/128"
      peerASN: 65000
      families: [ { afi: ipv6, safi: unicast } ]
`;

const POOLS = `
apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata: { name: blue, labels: { color: blue } }
spec: { blocks: [ { cidr: 198.51.100.0/28 }, { start: "2001:db8:1::10", stop: "2001:db8:1::20" } ] }
---
apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata: { name: green, labels: { color: green } }
spec: { blocks: [ { cidr: 203.0.113.0/24 } ] }
`;

t.test('Cilium policy as is: neighbors with their timers, routes with pool-selected attributes', async (t) => {
  const store = storeOf([NODE, CILIUM_POLICY, POOLS,
    lbService('a', ['198.51.100.10', '2001:db8:1::10']),
    lbService('b', ['203.0.113.5']),
  ].join('---'));
  const d = desiredBgp(store.snapshot(), 'lb-1', OURS);
  t.same(d.problems, []);
  t.equal(d.routerId, '198.51.100.21', 'router ID from the node\'s IPv4 InternalIP');
  t.equal(d.peers.length, 2);
  const v4 = d.peers.find((p) => p.peerAddress === '198.51.100.1')!;
  t.match(v4, {
    id: '65001/198.51.100.1:179', localAsn: 65001, peerAsn: 65000, peerPort: 179, ebgpMultihopTtl: 3,
    connectRetrySeconds: 5, holdTimeSeconds: 9, keepaliveSeconds: 3, families: [1, 2],
    gracefulRestart: { enabled: true, restartTimeSeconds: 90 },
  });
  const routes = new Map(v4.routes.map((r) => [r.prefix, r]));
  t.same([...routes.keys()].sort(), ['198.51.100.10/32', '2001:db8:1::10/128', '203.0.113.5/32'].sort());
  t.same(routes.get('198.51.100.10/32'), {
    prefix: '198.51.100.10/32',
    communities: [parseCommunity('65001:100'), parseCommunity('no-export'), parseCommunity('65001:999')],
    largeCommunities: [[65001, 1, 2]],
    localPreference: 200,
    services: ['default/a'],
  }, 'both matching attribute sets apply; the highest local preference wins');
  t.same(routes.get('203.0.113.5/32'), { prefix: '203.0.113.5/32', communities: [parseCommunity('65001:999')], largeCommunities: [], localPreference: 150, services: ['default/b'] });
  const v6 = d.peers.find((p) => p.peerAddress === '2001:db8::1')!;
  t.equal(v6.id, '65001/[2001:db8::1]:179');
  t.same(v6.routes.map((r) => r.prefix), ['2001:db8:1::10/128'], 'an IPv6-only neighbor gets IPv6 routes only');
});

t.test('node selection, service selection and the Cilium "no selector = nothing" rule', async (t) => {
  const other = desiredBgp(storeOf([NODE, CILIUM_POLICY, lbService('a', ['198.51.100.10'])].join('---')).snapshot(), 'lb-2', OURS);
  t.same(other.peers, [], 'a node the policy does not select has no neighbors');
  const noSelector = CILIUM_POLICY.replace(/ {4}serviceSelector:\n.*\n/, '');
  const d = desiredBgp(storeOf([NODE, noSelector, lbService('a', ['198.51.100.10'])].join('---')).snapshot(), 'lb-1', OURS);
  t.equal(d.peers.length, 2);
  t.same(d.peers[0]!.routes, [], 'Cilium: no serviceSelector advertises no service');
  const byName = CILIUM_POLICY.replace('matchExpressions: [ { key: somekey, operator: NotIn, values: [ never-used-value ] } ]',
    'matchLabels: { io.kubernetes.service.name: b }');
  const d2 = desiredBgp(storeOf([NODE, byName, lbService('a', ['198.51.100.10']), lbService('b', ['198.51.100.11'])].join('---')).snapshot(), 'lb-1', OURS);
  t.same(d2.peers[0]!.routes.map((r) => r.prefix), ['198.51.100.11/32'], 'the virtual service-name label selects');
});

const PHAROS_POLICY = `
apiVersion: lb.pharos.io/v1alpha1
kind: BGPPeeringPolicy
metadata: { name: edge }
spec:
  virtualRouters:
  - localASN: 65000
    serviceAdvertisements: [ LoadBalancerIP, ExternalIP ]
    neighbors:
    - peerAddress: 198.51.100.1
      peerASN: 65000
      peerPort: 1179
      sourceAddress: 198.51.100.21
      authSecretRef: bgp-auth
      families: [ { afi: ipv4, safi: unicast } ]
      advertisedPathAttributes:
      - selectorType: Service
        selector: { matchLabels: { tier: gold } }
        communities: { standard: [ "65000:1" ] }
        localPreference: 300
`;

t.test('pharos policy: every service by default, external IPs, traffic policy Local, classes, shared IPs, secrets', async (t) => {
  const secret = `
apiVersion: v1
kind: Secret
metadata: { name: bgp-auth, namespace: pharos-system }
stringData: { password: s3cret }
`;
  const slice = (svc: string, node: string): string => `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${svc}-x, namespace: default, labels: { kubernetes.io/service-name: ${svc} } }
addressType: IPv4
ports: [ { port: 80, protocol: TCP } ]
endpoints: [ { addresses: [ 198.18.0.10 ], nodeName: ${node}, conditions: { ready: true } } ]
`;
  const docs = [
    NODE, PHAROS_POLICY, secret,
    lbService('plain', ['198.51.100.10']),
    lbService('gold', ['198.51.100.11']).replace('labels: { app: gold }', 'labels: { app: gold, tier: gold }'),
    lbService('shared', ['198.51.100.11']),
    lbService('ext', []).replace('  type: LoadBalancer', '  type: ClusterIP\n  externalIPs: [ 203.0.113.50 ]'),
    lbService('foreign', ['198.51.100.12'], '  loadBalancerClass: example.com/other'),
    lbService('local-here', ['198.51.100.13'], '  externalTrafficPolicy: Local'),
    lbService('local-elsewhere', ['198.51.100.14'], '  externalTrafficPolicy: Local'),
    slice('local-here', 'lb-1'),
    slice('local-elsewhere', 'lb-9'),
    lbService('v6only', ['2001:db8:1::7']),
  ];
  const d = desiredBgp(storeOf(docs.join('---')).snapshot(), 'lb-1', { ...OURS, secretNamespace: 'pharos-system' });
  t.same(d.problems, []);
  const [p] = d.peers;
  t.match(p, { id: '65000/198.51.100.1:1179', peerPort: 1179, localAddress: '198.51.100.21', password: 's3cret', families: [1] });
  const routes = new Map(p!.routes.map((r) => [r.prefix, r]));
  t.same([...routes.keys()].sort(), ['198.51.100.10/32', '198.51.100.11/32', '198.51.100.13/32', '203.0.113.50/32'].sort(),
    'no foreign class, no Local service without a local endpoint, no IPv6 on an IPv4-only neighbor');
  t.same(routes.get('198.51.100.11/32'), { prefix: '198.51.100.11/32', communities: [parseCommunity('65000:1')], largeCommunities: [], localPreference: 300, services: ['default/gold', 'default/shared'] },
    'an address shared by two services takes the attributes any of them selects');
  t.same(routes.get('198.51.100.10/32'), { prefix: '198.51.100.10/32', communities: [], largeCommunities: [], services: ['default/plain'] });

  const noSecret = desiredBgp(storeOf([NODE, PHAROS_POLICY].join('---')).snapshot(), 'lb-1', OURS);
  t.same(noSecret.peers, [], 'a neighbor whose secret is missing is not configured (never without its password)');
  t.match(noSecret.problems[0], /bgp-auth/);
});

t.test('the same neighbor in two policies is configured once, with a problem reported', async (t) => {
  const second = PHAROS_POLICY.replace('name: edge', 'name: zz-dup').replace('authSecretRef: bgp-auth', 'password: x');
  const first = PHAROS_POLICY.replace('authSecretRef: bgp-auth', 'password: y');
  const d = desiredBgp(storeOf([NODE, first, second].join('---')).snapshot(), 'lb-1', OURS);
  t.equal(d.peers.length, 1);
  t.equal(d.peers[0]!.password, 'y', 'policies are taken in name order');
  t.match(d.problems[0], /zz-dup.*already configured/);
});

t.test('the agent\'s scope and the data path decide too: a class-less service with --no-default-lb-class, or one not in the data path, is not advertised', async (t) => {
  const store = storeOf([NODE, CILIUM_POLICY, POOLS, lbService('a', ['198.51.100.10']), lbService('b', ['198.51.100.11'])].join('---'));
  const prefixes = (o: Partial<Parameters<typeof desiredBgp>[2]>): string[] =>
    desiredBgp(store.snapshot(), 'lb-1', { ...OURS, ...o }).peers.find((p) => p.peerAddress === '198.51.100.1')!.routes.map((r) => r.prefix).sort();
  t.same(prefixes({}), ['198.51.100.10/32', '198.51.100.11/32'], 'both by default');
  // The agent with --no-default-lb-class: class-less services are another implementation's.
  t.same(prefixes({ isOurService: serviceScope(false) }), [], 'nothing of another implementation');
  t.same(prefixes({ isProgrammed: (key) => key !== 'default/b' }), ['198.51.100.10/32'], 'a service the data path could not take is withdrawn');
});
