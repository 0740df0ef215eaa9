/** Builders for typed Services and pools in IPAM tests: only what a test cares about has to be said. */
import type { Condition, IPFamily, IPFamilyPolicy, IPPool, LabelSelector, PoolBlock, Protocol, Service } from '../../src/model/types.js';
import { modelService } from '../../src/lab/manifests.js';

export interface ServiceSpec {
  name: string;
  namespace?: string;
  created?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  type?: Service['type'];
  class?: string;
  loadBalancerIP?: string;
  families?: IPFamily[];
  policy?: IPFamilyPolicy;
  ports?: [Protocol, number][] | number[];
  ingress?: string[];
  conditions?: Condition[];
}

export function svc(s: ServiceSpec): Service {
  const ports = (s.ports ?? [80]).map((p, i) => {
    const [protocol, port] = typeof p === 'number' ? (['TCP', p] as const) : p;
    return { name: `p${i}`, protocol, port, targetPort: port };
  });
  return modelService({
    name: s.name,
    namespace: s.namespace ?? 'default',
    creationTimestamp: s.created ?? '2024-01-01T00:00:00Z',
    labels: s.labels ?? {},
    annotations: s.annotations ?? {},
  }, {
    type: s.type ?? 'LoadBalancer',
    ...(s.class !== undefined ? { loadBalancerClass: s.class } : {}),
    ...(s.loadBalancerIP !== undefined ? { loadBalancerIP: s.loadBalancerIP } : {}),
    ipFamilies: s.families ?? ['IPv4'],
    ipFamilyPolicy: s.policy ?? 'SingleStack',
    ports,
    status: { ingress: (s.ingress ?? []).map((ip) => ({ ip })), conditions: s.conditions ?? [] },
  });
}

export interface PoolSpec {
  name: string;
  created?: string;
  blocks: (string | [string, string])[];
  selector?: Partial<LabelSelector>;
  disabled?: boolean;
  allowFirstLastIPs?: boolean;
}

export function pool(p: PoolSpec): IPPool {
  const blocks: PoolBlock[] = p.blocks.map((b) => (typeof b === 'string' ? { cidr: b } : { start: b[0], stop: b[1] }));
  return {
    kind: 'LoadBalancerIPPool',
    meta: { name: p.name, creationTimestamp: p.created ?? '2024-01-01T00:00:00Z', labels: {}, annotations: {} },
    flavor: 'pharos',
    blocks,
    ...(p.selector ? { serviceSelector: { matchLabels: p.selector.matchLabels ?? {}, matchExpressions: p.selector.matchExpressions ?? [] } } : {}),
    disabled: p.disabled ?? false,
    allowFirstLastIPs: p.allowFirstLastIPs ?? true,
  };
}

/** Write an outcome back into the service's status, as the Kubernetes sink would. */
export function withStatus(s: Service, ingress: string[], condition: Condition | null): Service {
  const others = s.status.conditions.filter((c) => c.type !== condition?.type && c.type !== 'lb.pharos.io/IPAMRequestSatisfied');
  return { ...s, status: { ingress: ingress.map((ip) => ({ ip })), conditions: condition ? [...others, condition] : others } };
}
