/**
 * The Services labs, tests and benches give the agent: as YAML for a
 * manifests directory (a LoadBalancer Service with one port and the
 * EndpointSlice that backs it, as kube-controller-manager would make them),
 * as the object an API emulator stores (`lbServiceObject`), and as the
 * model the parser makes of one (`modelService`, for pure tests and benches).
 */
import type { ObjectMeta, Service } from '../model/types.js';

export interface LbServiceSpec {
  name: string;
  namespace: string;
  port?: number;
  targetPort?: number;
  protocol?: 'TCP' | 'UDP';
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Ready endpoint addresses (IPv4 or IPv6, not mixed). */
  endpoints: readonly string[];
}

export function lbServiceYaml(s: LbServiceSpec): string {
  const { name, namespace, port = 80, targetPort = 8080, protocol = 'TCP' } = s;
  const labels = s.labels ? `, labels: { ${Object.entries(s.labels).map(([k, v]) => `${k}: "${v}"`).join(', ')} }` : '';
  const annotations = s.annotations ? `, annotations: { ${Object.entries(s.annotations).map(([k, v]) => `${k}: "${v}"`).join(', ')} }` : '';
  const addressType = s.endpoints.some((a) => a.includes(':')) ? 'IPv6' : 'IPv4';
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${namespace}${labels}${annotations} }
spec:
  type: LoadBalancer
  ports: [{ name: http, port: ${port}, targetPort: ${targetPort}, protocol: ${protocol} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: ${namespace}, labels: { kubernetes.io/service-name: ${name} } }
addressType: ${addressType}
ports: [{ name: http, port: ${targetPort}, protocol: ${protocol} }]
endpoints:
${s.endpoints.map((a) => `  - addresses: [${a}]\n    conditions: { ready: true }`).join('\n')}
`;
}

/** An L2 announcement policy announcing every LoadBalancer address on `interfaces` (default eth0), as the classic L2 walkthrough has it. */
export function l2Policy(interfaces: string[] = ['eth0']): string {
  return `apiVersion: lb.pharos.io/v1alpha1
kind: L2AnnouncementPolicy
metadata: { name: l2 }
spec: { interfaces: [${interfaces.join(', ')}], loadBalancerIPs: true }
`;
}

/** A pool of address ranges ([first, last] each) and l2Policy(interfaces). */
export function l2PoolAndPolicy(name: string, ranges: [string, string][], interfaces?: string[]): string {
  return `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: ${name} }
spec:
  blocks: [${ranges.map(([start, stop]) => `{ start: "${start}", stop: "${stop}" }`).join(', ')}]
---
${l2Policy(interfaces)}`;
}

/**
 * A BGPPeeringPolicy whose one neighbour is the test's router at 198.18.0.1
 * (AS 64500, short timers), for the services labelled bgp=yes. `neighbor`
 * adds keys to the neighbour (YAML lines, as nested under it), e.g. BFD,
 * path attributes or limits.
 */
export function bgpPolicy(neighbor: string[] = []): string {
  return `apiVersion: lb.pharos.io/v1alpha1
kind: BGPPeeringPolicy
metadata: { name: to-router }
spec:
  virtualRouters:
    - localASN: 64512
      serviceSelector: { matchLabels: { bgp: "yes" } }
      neighbors:
        - peerAddress: 198.18.0.1/32
          peerASN: 64500
          connectRetryTimeSeconds: 1
          holdTimeSeconds: 9
          keepAliveTimeSeconds: 3
${neighbor.map((l) => `          ${l}\n`).join('')}`;
}

/** A pool (203.0.113.128/28) and bgpPolicy(neighbor). */
export function bgpPoolAndPolicy(neighbor: string[] = []): string {
  return `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: bgp-pool }
spec:
  blocks: [{ cidr: 203.0.113.128/28 }]
---
${bgpPolicy(neighbor)}`;
}

/** A LoadBalancer service the BGP policy above selects (prod/api, bgp=yes). */
export const BGP_SERVICE = `apiVersion: v1
kind: Service
metadata: { name: api, namespace: prod, labels: { bgp: "yes" } }
spec:
  type: LoadBalancer
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;

export interface LbServicePort {
  name: string;
  port: number;
  targetPort: number;
  protocol: 'TCP' | 'UDP';
}

export interface LbServiceObjectSpec {
  name: string;
  /** Default `default`. */
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Default one port: http 80 -> 8080/TCP. */
  ports?: LbServicePort[];
  /** RequireDualStack with IPv4 and IPv6. */
  dual?: boolean;
}

/** A v1 LoadBalancer Service as a client writes it to the API (no status). */
export function lbServiceObject(s: LbServiceObjectSpec): { apiVersion: 'v1'; kind: 'Service'; metadata: Record<string, unknown>; spec: Record<string, unknown> } {
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace ?? 'default', ...(s.labels ? { labels: s.labels } : {}), ...(s.annotations ? { annotations: s.annotations } : {}) },
    spec: {
      type: 'LoadBalancer',
      ports: s.ports ?? [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }],
      ...(s.dual ? { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] } : {}),
    },
  };
}

/**
 * A model LoadBalancer Service as the parser gives it for a Service written
 * with a name only: Kubernetes' defaults filled in (one IPv4 family,
 * SingleStack, Cluster traffic policy, no affinity, http 80 -> 8080/TCP),
 * namespace `default`, no labels, annotations or status. `over` replaces
 * whole fields.
 */
export function modelService(meta: Partial<ObjectMeta> & { name: string }, over: Partial<Service> = {}): Service {
  return {
    kind: 'Service',
    meta: { namespace: 'default', labels: {}, annotations: {}, ...meta },
    type: 'LoadBalancer',
    ipFamilies: ['IPv4'],
    ipFamilyPolicy: 'SingleStack',
    clusterIPs: [],
    ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
    externalIPs: [],
    externalTrafficPolicy: 'Cluster',
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    loadBalancerSourceRanges: [],
    allocateLoadBalancerNodePorts: true,
    status: { ingress: [], conditions: [] },
    ...over,
  };
}
