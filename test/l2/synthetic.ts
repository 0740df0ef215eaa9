/**
 * Synthetic L2 worlds for unit tests and measurements: N LoadBalancer
 * services with an address each (198.18.0.0/15), a slice of 3-8 endpoints
 * spread over three nodes, one L2 policy, and an interface that qualifies.
 */
import type { EndpointSlice, L2Policy, Node, Service } from '../../src/model/types.js';
import type { NodeInterface } from '../../src/model/types.js';
import type { Snapshot } from '../../src/store/store.js';
import { modelService } from '../../src/lab/manifests.js';

export const NODES = ['n1', 'n2', 'n3'];
export const ETH0: NodeInterface = { name: 'eth0', ifindex: 2, mac: '02:00:00:00:00:01', up: true, addresses: ['192.0.2.1'] };

export function addressOf(i: number): string {
  return `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

export function service(i: number, over: Partial<Service> = {}): Service {
  const name = `s${i}`;
  return modelService({ name, labels: { app: name } }, { status: { ingress: [{ ip: addressOf(i) }], conditions: [] }, ...over });
}

export function slice(i: number, endpoints = 3 + (i % 6)): EndpointSlice {
  return {
    kind: 'EndpointSlice',
    meta: { name: `s${i}-abc`, namespace: 'default', labels: {}, annotations: {} },
    serviceName: `s${i}`,
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: endpoints }, (_, k) => ({
      addresses: [`10.${Math.floor(i / 250) % 250}.${i % 250}.${k + 1}`],
      ready: true,
      serving: true,
      terminating: false,
      nodeName: NODES[(i + k) % NODES.length],
      weight: 1,
    })),
  };
}

export const POLICY: L2Policy = {
  kind: 'L2AnnouncementPolicy',
  meta: { name: 'all', labels: {}, annotations: {} },
  flavor: 'pharos',
  interfaces: ['^eth'],
  loadBalancerIPs: true,
  externalIPs: false,
};

function node(name: string): Node {
  return { kind: 'Node', meta: { name, labels: {}, annotations: {} }, addresses: [] };
}

/** Every `localEvery`-th service has externalTrafficPolicy Local (0: none). */
export function syntheticSnapshot(n: number, opts: { localEvery?: number } = {}): Snapshot {
  const services = new Map<string, Service>();
  const endpointSlices = new Map<string, EndpointSlice>();
  for (let i = 0; i < n; i++) {
    const local = opts.localEvery && i % opts.localEvery === 0;
    services.set(`default/s${i}`, service(i, local ? { externalTrafficPolicy: 'Local' } : {}));
    endpointSlices.set(`default/s${i}-abc`, slice(i));
  }
  return {
    revision: 1,
    services,
    endpointSlices,
    nodes: new Map(NODES.map((name) => [name, node(name)])),
    pools: new Map(),
    l2Policies: new Map([['all', POLICY]]),
    bgpPolicies: new Map(),
    leases: new Map(),
    secrets: new Map(),
  };
}

/** The store's way: a new snapshot whose maps are copies, with one service replaced. */
export function withService(snap: Snapshot, svc: Service): Snapshot {
  const services = new Map(snap.services);
  services.set(`${svc.meta.namespace}/${svc.meta.name}`, svc);
  return { ...snap, revision: snap.revision + 1, services, endpointSlices: new Map(snap.endpointSlices), leases: new Map(snap.leases) };
}
