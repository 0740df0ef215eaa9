/**
 * "Is this service ours?" has one answer (src/model/scope.ts), and every
 * controller gives it: for each loadBalancerClass, with and without
 * --default-lb-class, the IPAM manages, the data path serves, L2 announces
 * and BGP advertises exactly the services the scope says (L2 never the
 * BGP-only class, BGP never the L2-only class). Before the scope module the
 * four disagreed (BGP advertised a class-less service under
 * --no-default-lb-class; the IPAM and the agent listed classes apart).
 */
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { parseObject } from '../../src/model/parse.js';
import { Store } from '../../src/store/store.js';
import { desiredBgp } from '../../src/bgp/policy.js';
import { desiredFrontends } from '../../src/datapath/desired.js';
import { l2AnnouncedAddresses } from '../../src/l2/policy.js';
import { isIpamService } from '../../src/ipam/request.js';
import { serviceScope } from '../../src/model/scope.js';

const CLASSES: Record<string, string | undefined> = {
  none: undefined,
  l2: 'lb.pharos.io/l2',
  bgp: 'lb.pharos.io/bgp',
  foreign: 'example.com/other',
  cilium: 'io.cilium/bgp-control-plane',
};

function storeOf(docs: string[]): Store {
  const store = new Store();
  for (const doc of docs) {
    const r = parseObject(parseYaml(doc));
    if (!r.ok) throw new Error(`fixture does not parse: ${JSON.stringify(r)}`);
    store.apply(r.object);
  }
  store.markSynced();
  return store;
}

const docs = [
  `apiVersion: v1
kind: Node
metadata: { name: lb-1 }
status: { addresses: [ { type: InternalIP, address: 198.51.100.21 } ] }`,
  `apiVersion: lb.pharos.io/v1alpha1
kind: L2AnnouncementPolicy
metadata: { name: all }
spec: { loadBalancerIPs: true }`,
  `apiVersion: lb.pharos.io/v1alpha1
kind: BGPPeeringPolicy
metadata: { name: edge }
spec:
  virtualRouters:
  - localASN: 64512
    neighbors: [ { peerAddress: 198.51.100.1/32, peerASN: 64500 } ]`,
  ...Object.entries(CLASSES).flatMap(([name, cls], i) => [
    `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  type: LoadBalancer
  ports: [ { name: http, port: 80, protocol: TCP } ]
${cls ? `  loadBalancerClass: ${cls}` : ''}
status: { loadBalancer: { ingress: [ { ip: 203.0.113.${10 + i} } ] } }`,
    `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [ { name: http, port: 8080, protocol: TCP } ]
endpoints: [ { addresses: [ 198.18.1.${10 + i} ], conditions: { ready: true }, nodeName: lb-1 } ]`,
  ]),
];

for (const defaultClass of [true, false]) {
  t.test(`every controller agrees with the scope (${defaultClass ? '' : 'no-'}default-lb-class)`, async (t) => {
    const snap = storeOf(docs).snapshot();
    const scope = serviceScope(defaultClass);
    const names = (keys: Iterable<string>): string[] => [...new Set([...keys].map((k) => k.replace('default/', '')))].sort();

    const ours = names([...snap.services].filter(([, s]) => scope(s)).map(([k]) => k));
    t.same(ours, defaultClass ? ['bgp', 'l2', 'none'] : ['bgp', 'l2'], 'the scope: our two classes, class-less only by default');

    const ipam = names([...snap.services].filter(([, s]) => isIpamService(s, { pharosIsDefaultClass: defaultClass })).map(([k]) => k));
    t.same(ipam, ours, 'IPAM manages exactly the services in scope');

    const served = names(desiredFrontends(snap, { nodeName: 'lb-1', isOurService: scope }).filter((f) => f.kind === 'LoadBalancer').map((f) => f.service));
    t.same(served, ours, 'the data path serves the LoadBalancer addresses of exactly those');

    const announced = names(l2AnnouncedAddresses(snap, scope).keys());
    t.same(announced, ours.filter((n) => n !== 'bgp'), 'L2 announces them, except the BGP-only class');

    const bgp = desiredBgp(snap, 'lb-1', { isOurService: scope });
    const advertised = names(bgp.peers[0]!.routes.flatMap((r) => r.services ?? []));
    t.same(advertised, ours.filter((n) => n !== 'l2'), 'BGP advertises them, except the L2-only class');
  });
}
