/**
 * desired.ts for the service semantics of issue 8: NodePort frontends on the
 * node's addresses, Local policy (local endpoints only, and which addresses
 * L2/BGP must stop attracting), affinity and source ranges carried through.
 */
import t from 'tap';
import { desiredFrontends, frontendsWithoutLocalEndpoints } from '../../src/datapath/desired.js';
import type { EndpointSlice, Service } from '../../src/model/types.js';
import type { Snapshot } from '../../src/store/store.js';
import { modelService } from '../../src/lab/manifests.js';

function service(name: string, extra: Partial<Service> = {}): Service {
  return modelService({ name, namespace: 'ns' }, {
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }],
    status: { ingress: [{ ip: '198.51.100.10' }], conditions: [] },
    ...extra,
  });
}

function slice(svc: string, eps: Array<{ ip: string; node: string; ready?: boolean; terminating?: boolean }>, family: 'IPv4' | 'IPv6' = 'IPv4'): EndpointSlice {
  return {
    kind: 'EndpointSlice', meta: { name: `${svc}-${family}`, namespace: 'ns', labels: {}, annotations: {} }, serviceName: svc, addressType: family,
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: eps.map((e) => ({ addresses: [e.ip], ready: e.ready ?? true, serving: true, terminating: e.terminating ?? false, nodeName: e.node, weight: 1 })),
  } as EndpointSlice;
}

function snap(services: Service[], slices: EndpointSlice[]): Snapshot {
  return {
    revision: 1, services: new Map(services.map((s) => [`ns/${s.meta.name}`, s])), endpointSlices: new Map(slices.map((s) => [`ns/${s.meta.name}`, s])),
    nodes: new Map(), pools: new Map(), l2Policies: new Map(), bgpPolicies: new Map(), leases: new Map(), secrets: new Map(),
  };
}

const opts = { nodeName: 'n1', isOurService: () => true };
const eps = [{ ip: '198.18.2.1', node: 'n1' }, { ip: '198.18.2.2', node: 'n2' }];

t.test('NodePort frontends on every node address of the matching family, same backends', async (t) => {
  const s = snap([service('web'), service('np', { type: 'NodePort', status: { ingress: [], conditions: [] }, ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30081 }] })],
    [slice('web', eps), slice('np', eps), slice('np', [{ ip: '2001:db8:2::1', node: 'n1' }], 'IPv6')]);
  const out = desiredFrontends(s, { ...opts, nodeAddresses: ['198.18.0.2', '2001:db8::2'] });
  const np = out.filter((f) => f.kind === 'NodePort').map((f) => `${f.service} ${f.address}:${f.port} ${f.backends.map((b) => b.address).join(',')}`);
  t.same(np.sort(), [
    'ns/np 198.18.0.2:30081 198.18.2.1,198.18.2.2',
    'ns/np 2001:db8::2:30081 2001:db8:2::1',
    'ns/web 198.18.0.2:30080 198.18.2.1,198.18.2.2',
    'ns/web 2001:db8::2:30080 ',
  ].sort());
  t.equal(out.filter((f) => f.kind === 'LoadBalancer').length, 1, 'the LoadBalancer frontend is still there');
});

t.test('no NodePort frontends without node addresses, with allocateLoadBalancerNodePorts false, or without a nodePort', async (t) => {
  const s = snap([service('a', { allocateLoadBalancerNodePorts: false }), service('b', { ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }] }), service('c', { type: 'ClusterIP', status: { ingress: [], conditions: [] } })], []);
  t.same(desiredFrontends(s, opts).filter((f) => f.kind === 'NodePort'), [], 'no addresses given');
  const out = desiredFrontends(s, { ...opts, nodeAddresses: ['198.18.0.2'] });
  t.same(out.filter((f) => f.kind === 'NodePort'), []);
  t.equal(out.length, 2, 'LoadBalancer frontends of a and b only');
});

t.test('Local policy: only this node\'s endpoints; frontends and addresses without one are reported', async (t) => {
  const local = service('loc', { externalTrafficPolicy: 'Local' });
  const none = service('none', { externalTrafficPolicy: 'Local', status: { ingress: [{ ip: '198.51.100.11' }], conditions: [] } });
  const term = service('term', { externalTrafficPolicy: 'Local', status: { ingress: [{ ip: '198.51.100.12' }], conditions: [] } });
  const cluster = service('cl', { status: { ingress: [{ ip: '198.51.100.13' }], conditions: [] } });
  const s = snap([local, none, term, cluster], [slice('loc', eps), slice('none', [{ ip: '198.18.2.5', node: 'n2' }]),
    slice('term', [{ ip: '198.18.2.6', node: 'n1', ready: false, terminating: true }]), slice('cl', [{ ip: '198.18.2.7', node: 'n2' }])]);
  const out = desiredFrontends(s, { ...opts, nodeAddresses: ['198.18.0.2'] });
  const loc = out.find((f) => f.service === 'ns/loc' && f.kind === 'LoadBalancer')!;
  t.same(loc.backends.map((b) => b.address), ['198.18.2.1']);
  t.equal(loc.localOnly, true);
  t.same(frontendsWithoutLocalEndpoints(out).map((f) => `${f.service} ${f.address}:${f.port}`).sort(),
    ['ns/none 198.18.0.2:30080', 'ns/none 198.51.100.11:80', 'ns/term 198.18.0.2:30080', 'ns/term 198.51.100.12:80']);
});

t.test('affinity and source ranges are carried to the frontend', async (t) => {
  const s = snap([service('aff', { sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 60, loadBalancerSourceRanges: ['192.0.2.0/24'] })], [slice('aff', eps)]);
  const [f] = desiredFrontends(s, opts);
  t.match(f, { sessionAffinity: true, sessionAffinityTimeoutSeconds: 60, sourceRanges: ['192.0.2.0/24'] });
});

t.test('lb.pharos.io/removed-backend: reset reaches the frontend (RESET_ON_REMOVE in the map); absent or rebalance leaves it out', async (t) => {
  const s = snap([service('rst', { removedBackendPolicy: 'reset' }), service('reb', { removedBackendPolicy: 'rebalance' }), service('def')], [slice('rst', eps), slice('reb', eps), slice('def', eps)]);
  const out = desiredFrontends(s, opts).filter((f) => f.kind === 'LoadBalancer');
  t.same(out.map((f) => [f.service, f.removedBackendPolicy]).sort(), [['ns/def', undefined], ['ns/reb', undefined], ['ns/rst', 'reset']]);
});

t.test('forwarding mode: the annotation over the agent default, service addresses only (never NodePorts)', async (t) => {
  const s = snap([service('web'), service('dsr', { forwardingMode: 'dsr', externalIPs: ['198.51.100.20'] }), service('snat', { forwardingMode: 'snat', status: { ingress: [{ ip: '198.51.100.11' }], conditions: [] } })],
    [slice('web', eps), slice('dsr', eps), slice('snat', eps)]);
  const modes = (o: typeof opts & { forwardingMode?: 'snat' | 'dsr' }): string[] =>
    desiredFrontends(s, { ...o, nodeAddresses: ['198.18.0.2'] }).map((f) => `${f.service} ${f.kind} ${f.forwardingMode ?? 'snat'}`).sort();
  t.same(modes(opts), [
    'ns/dsr ExternalIP dsr', 'ns/dsr LoadBalancer dsr', 'ns/dsr NodePort snat', 'ns/snat LoadBalancer snat', 'ns/snat NodePort snat', 'ns/web LoadBalancer snat', 'ns/web NodePort snat',
  ].sort());
  t.same(modes({ ...opts, forwardingMode: 'dsr' }), [
    'ns/dsr ExternalIP dsr', 'ns/dsr LoadBalancer dsr', 'ns/dsr NodePort snat', 'ns/snat LoadBalancer snat', 'ns/snat NodePort snat', 'ns/web LoadBalancer dsr', 'ns/web NodePort snat',
  ].sort());
});

t.test('DSR dispatch: l2 and ipip travel with DSR frontends only; auto (or none) is the default and carries nothing', async (t) => {
  const s = snap([
    service('l2', { forwardingMode: 'dsr', dsrDispatch: 'l2' }), service('ipip', { forwardingMode: 'dsr', dsrDispatch: 'ipip' }),
    service('auto', { forwardingMode: 'dsr', dsrDispatch: 'auto' }), service('snat', { forwardingMode: 'snat', dsrDispatch: 'ipip', status: { ingress: [{ ip: '198.51.100.11' }], conditions: [] } }),
  ], [slice('l2', eps), slice('ipip', eps), slice('auto', eps), slice('snat', eps)]);
  const out = desiredFrontends(s, { ...opts, nodeAddresses: ['198.18.0.2'] }).map((f) => `${f.service} ${f.kind} ${f.forwardingMode ?? 'snat'} ${f.dsrDispatch ?? '-'}`).sort();
  t.same(out, [
    'ns/auto LoadBalancer dsr -', 'ns/auto NodePort snat -', 'ns/ipip LoadBalancer dsr ipip', 'ns/ipip NodePort snat -',
    'ns/l2 LoadBalancer dsr l2', 'ns/l2 NodePort snat -', 'ns/snat LoadBalancer snat -', 'ns/snat NodePort snat -',
  ].sort());
});
