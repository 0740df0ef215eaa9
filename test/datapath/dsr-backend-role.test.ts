/**
 * servedVips (pure): the service addresses a DSR backend host decapsulates
 * and holds on lo — those of services with a ready endpoint on this host.
 */
import t from 'tap';
import { servedVips } from '../../src/datapath/backend-role.js';
import type { EndpointSlice, Service } from '../../src/model/types.js';

function service(name: string, ingress: string[], extra: Partial<Service> = {}): Service {
  return {
    kind: 'Service', meta: { name, namespace: 'ns', labels: {}, annotations: {} }, type: 'LoadBalancer', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack',
    clusterIPs: [], ports: [{ name: 'http', port: 80, protocol: 'TCP' }], externalIPs: [], externalTrafficPolicy: 'Cluster', sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800, loadBalancerSourceRanges: [], allocateLoadBalancerNodePorts: false,
    status: { ingress: ingress.map((ip) => ({ ip })), conditions: [] }, ...extra,
  } as Service;
}

function slice(svc: string, endpoints: Array<{ address: string; ready?: boolean; nodeName?: string }>): EndpointSlice {
  return {
    kind: 'EndpointSlice', meta: { name: `${svc}-1`, namespace: 'ns', labels: { 'kubernetes.io/service-name': svc }, annotations: {} }, serviceName: svc, addressType: 'IPv4',
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({ addresses: [e.address], ready: e.ready ?? true, serving: true, terminating: false, weight: 1, ...(e.nodeName ? { nodeName: e.nodeName } : {}) })),
  } as EndpointSlice;
}

t.test('only services with a ready endpoint here, by address or node name; ingress and external IPs', async (t) => {
  const services = [
    service('here', ['198.51.100.1', '2001:db8:100::1'], { externalIPs: ['203.0.113.9'] }),
    service('elsewhere', ['198.51.100.2']),
    service('by-name', ['198.51.100.3']),
    service('not-ready', ['198.51.100.4']),
    service('not-ours', ['198.51.100.5'], { loadBalancerClass: 'other' }),
  ];
  const slices = [
    slice('here', [{ address: '198.18.2.2' }, { address: '198.18.2.3' }]),
    slice('elsewhere', [{ address: '198.18.2.3' }]),
    slice('by-name', [{ address: '10.0.0.7', nodeName: 'be-1' }]),
    slice('not-ready', [{ address: '198.18.2.2', ready: false }]),
    slice('not-ours', [{ address: '198.18.2.2' }]),
  ];
  const vips = servedVips(services, slices, { nodeName: 'be-1', localAddresses: new Set(['198.18.2.2']), isOurService: (s) => s.loadBalancerClass === undefined });
  t.same([...vips].sort(), ['198.51.100.1', '198.51.100.3', '2001:db8:100::1', '203.0.113.9']);
});
