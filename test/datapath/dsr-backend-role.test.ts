/**
 * servedVips (pure): the service addresses a DSR backend host decapsulates
 * and holds on lo — those of services with a ready endpoint on this host.
 */
import t from 'tap';
import { maglevOwners, PreviousTables, servedVips } from '../../src/datapath/backend-role.js';
import { DatapathPlanner } from '../../src/datapath/plan.js';
import type { EndpointSlice, Frontend, Service } from '../../src/model/types.js';

function service(name: string, ingress: string[], extra: Partial<Service> = {}): Service {
  return {
    kind: 'Service', meta: { name, namespace: 'ns', labels: {}, annotations: {} }, type: 'LoadBalancer', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack',
    clusterIPs: [], ports: [{ name: 'http', port: 80, protocol: 'TCP' }], externalIPs: [], externalTrafficPolicy: 'Cluster', sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800, loadBalancerSourceRanges: [], allocateLoadBalancerNodePorts: false,
    status: { ingress: ingress.map((ip) => ({ ip })), conditions: [] }, ...extra,
  } as Service;
}

function slice(svc: string, endpoints: Array<{ address: string; ready?: boolean; terminating?: boolean; nodeName?: string }>): EndpointSlice {
  return {
    kind: 'EndpointSlice', meta: { name: `${svc}-1`, namespace: 'ns', labels: { 'kubernetes.io/service-name': svc }, annotations: {} }, serviceName: svc, addressType: 'IPv4',
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({ addresses: [e.address], ready: e.ready ?? true, serving: true, terminating: e.terminating ?? false, weight: 1, ...(e.nodeName ? { nodeName: e.nodeName } : {}) })),
  } as EndpointSlice;
}

t.test('only services with a ready endpoint here, by address or node name; ingress and external IPs', async (t) => {
  const services = [
    service('here', ['198.51.100.1', '2001:db8:100::1'], { externalIPs: ['203.0.113.9'] }),
    service('elsewhere', ['198.51.100.2']),
    service('by-name', ['198.51.100.3']),
    service('not-ready', ['198.51.100.4']),
    service('not-ours', ['198.51.100.5'], { loadBalancerClass: 'other' }),
    service('draining', ['198.51.100.6']),
  ];
  const slices = [
    slice('here', [{ address: '198.18.2.2' }, { address: '198.18.2.3' }]),
    slice('elsewhere', [{ address: '198.18.2.3' }]),
    slice('by-name', [{ address: '10.0.0.7', nodeName: 'be-1' }]),
    slice('not-ready', [{ address: '198.18.2.2', ready: false }]),
    slice('not-ours', [{ address: '198.18.2.2' }]),
    slice('draining', [{ address: '198.18.2.2', ready: false, terminating: true }]),
  ];
  const vips = servedVips(services, slices, { nodeName: 'be-1', localAddresses: new Set(['198.18.2.2']), isOurService: (s) => s.loadBalancerClass === undefined });
  t.same([...vips].sort(), ['198.51.100.1', '198.51.100.3', '198.51.100.6', '2001:db8:100::1', '203.0.113.9'], 'a terminating endpoint that still serves keeps its VIP');
});

function frontend(addresses: string[], extra: Partial<Frontend> = {}): Frontend {
  return {
    service: 'ns/web', kind: 'LoadBalancer', address: '198.51.100.1', port: 80, protocol: 'TCP',
    backends: addresses.map((address) => ({ address, port: 80, weight: 1, state: 'active' as const })),
    sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [], forwardingMode: 'dsr', ...extra,
  };
}

t.test('maglevOwners is the table the LB planner publishes, slot for slot', async (t) => {
  const sizing = { max: 65521 };
  for (const addrs of [['198.18.2.2', '198.18.2.3'], ['198.18.2.3', '198.18.2.2', '198.18.2.4'], ['2001:db8:2::2']]) {
    const f = frontend(addrs, addrs[0]!.includes(':') ? { address: '2001:db8:100::1' } : {});
    const p = new DatapathPlanner({ maglev: sizing, maxFrontends: 16, maxBackends: 16, maxTables: 16 });
    const ops = p.plan(new Map([[f.service, [f]]]), { full: true });
    const byId = new Map(ops.addBackends.map((b) => [b.id, b.address]));
    t.same(maglevOwners(f, sizing), Array.from(ops.addTables[0]!.slots, (id) => byId.get(id)), `${addrs.join(', ')}`);
  }
  t.equal(maglevOwners(frontend([]), sizing), undefined, 'no backends, no table');
});

t.test('PreviousTables keeps the table from before a change for its time, then drops it', async (t) => {
  const prev = new PreviousTables(1000, { max: 65521 });
  t.notOk(prev.update([frontend(['198.18.2.2', '198.18.2.3'])], 0), 'the first sight is no change');
  t.same(prev.tables(), []);
  t.notOk(prev.update([frontend(['198.18.2.2', '198.18.2.3'])], 10), 'the same backends: nothing');
  t.ok(prev.update([frontend(['198.18.2.2', '198.18.2.3', '198.18.2.4'])], 20), 'a backend added');
  const [table] = prev.tables();
  t.same(table?.owners, maglevOwners(frontend(['198.18.2.2', '198.18.2.3']), { max: 65521 }), 'the table before the change');
  t.same(new Set(table!.owners), new Set(['198.18.2.2', '198.18.2.3']));
  t.notOk(prev.update([frontend(['198.18.2.2', '198.18.2.3', '198.18.2.4'], { protocol: 'UDP' })], 30), 'UDP frontends have none (no connection to hand off)');
  t.equal(prev.nextExpiry(), 1020);
  t.ok(prev.expire(1020), 'expired');
  t.same(prev.tables(), []);
});
