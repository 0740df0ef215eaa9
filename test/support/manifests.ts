/**
 * Manifests the agent tests, the soak and the demo-like labs write into a
 * manifests directory: a LoadBalancer Service with one port and the
 * EndpointSlice that backs it, as kube-controller-manager would make them.
 */
export interface LbServiceSpec {
  name: string;
  namespace: string;
  port?: number;
  targetPort?: number;
  protocol?: 'TCP' | 'UDP';
  labels?: Record<string, string>;
  /** Ready endpoint addresses (IPv4 or IPv6, not mixed). */
  endpoints: readonly string[];
}

export function lbServiceYaml(s: LbServiceSpec): string {
  const { name, namespace, port = 80, targetPort = 8080, protocol = 'TCP' } = s;
  const labels = s.labels ? `, labels: { ${Object.entries(s.labels).map(([k, v]) => `${k}: "${v}"`).join(', ')} }` : '';
  const addressType = s.endpoints.some((a) => a.includes(':')) ? 'IPv6' : 'IPv4';
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${namespace}${labels} }
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
