/**
 * The lab's endpoint controller, pure part: there are no pods in `pharos
 * lab`, so the lab writes the EndpointSlices a cluster's controller would,
 * for every Service whose selector matches the labels of a backend the lab
 * started. Given the Services and the lab's backends, returns the slices
 * that should exist; the caller diffs them against the store.
 */

export interface LabBackend {
  name: string;
  labels: Record<string, string>;
  v4?: string;
  v6?: string;
  /** The port the backend's echo server listens on (named target ports resolve to it). */
  port: number;
}

export interface ServiceLike {
  metadata: { name: string; namespace?: string };
  spec?: {
    selector?: Record<string, string>;
    ipFamilies?: string[];
    ports?: { name?: string; port: number; targetPort?: number | string; protocol?: string }[];
  };
}

export interface EndpointSliceObject {
  apiVersion: 'discovery.k8s.io/v1';
  kind: 'EndpointSlice';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  addressType: 'IPv4' | 'IPv6';
  ports: { name: string; port: number; protocol: string }[];
  endpoints: { addresses: string[]; conditions: { ready: boolean }; targetRef?: { kind: string; name: string } }[];
}

/** Label marking the slices this controller owns (it never touches others). */
export const MANAGED_BY = { key: 'endpointslice.kubernetes.io/managed-by', value: 'pharos-lab' } as const;

export function selectorMatches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  // A Service without a selector has its endpoints managed by someone else.
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

export function desiredSlices(services: ServiceLike[], backends: LabBackend[]): EndpointSliceObject[] {
  const out: EndpointSliceObject[] = [];
  for (const svc of services) {
    const matching = backends.filter((b) => selectorMatches(svc.spec?.selector, b.labels));
    if (matching.length === 0) continue;
    const namespace = svc.metadata.namespace ?? 'default';
    const families = svc.spec?.ipFamilies?.length ? svc.spec.ipFamilies : ['IPv4'];
    for (const family of families) {
      const v6 = family === 'IPv6';
      const members = matching.filter((b) => (v6 ? b.v6 : b.v4));
      if (members.length === 0) continue;
      const ports = (svc.spec?.ports ?? []).map((p) => ({
        name: p.name ?? '',
        // Every lab backend serves one port: a numeric targetPort is taken as
        // written, a named one resolves to the backend's port.
        port: typeof p.targetPort === 'number' ? p.targetPort : members[0]!.port,
        protocol: p.protocol ?? 'TCP',
      }));
      out.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${svc.metadata.name}-lab-${v6 ? 'v6' : 'v4'}`,
          namespace,
          labels: { 'kubernetes.io/service-name': svc.metadata.name, [MANAGED_BY.key]: MANAGED_BY.value },
        },
        addressType: v6 ? 'IPv6' : 'IPv4',
        ports,
        endpoints: members.map((b) => ({ addresses: [(v6 ? b.v6 : b.v4)!], conditions: { ready: true }, targetRef: { kind: 'Pod', name: b.name } })),
      });
    }
  }
  return out;
}

/** True when the stored slice already carries what `want` says (so no write is needed). */
export function sliceUpToDate(stored: { addressType?: string; ports?: unknown; endpoints?: unknown; metadata?: { labels?: Record<string, string> } } | undefined, want: EndpointSliceObject): boolean {
  if (!stored) return false;
  return stored.addressType === want.addressType
    && JSON.stringify(stored.ports) === JSON.stringify(want.ports)
    && JSON.stringify(stored.endpoints) === JSON.stringify(want.endpoints)
    && stored.metadata?.labels?.['kubernetes.io/service-name'] === want.metadata.labels['kubernetes.io/service-name'];
}
