/**
 * The lab's endpoint controller, pure part: there are no containers in
 * `pharos lab`, so the lab writes the EndpointSlices a cluster's controller
 * would, for every Service whose selector matches the labels of a backend
 * the lab started or of a pod it plays for a Deployment (deployments.ts).
 * Given the Services and those backends, returns the slices that should
 * exist; the caller diffs them against the store.
 */

export interface LabBackend {
  name: string;
  labels: Record<string, string>;
  v4?: string;
  v6?: string;
  /** The port a named target port resolves to when no container port has that name (the echo servers answer on 80 and 8080). */
  port: number;
  /**
   * A Deployment's pod: only Services of its namespace select it, as in a
   * cluster. Absent for the lab's own backends (app=echo), which Services
   * of any namespace select.
   */
  namespace?: string;
  /** The pod template's container ports: a named targetPort resolves through them. */
  containerPorts?: { name?: string; containerPort: number; protocol?: string }[];
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
    const namespace = svc.metadata.namespace ?? 'default';
    const matching = backends.filter((b) => (b.namespace === undefined || b.namespace === namespace) && selectorMatches(svc.spec?.selector, b.labels));
    if (matching.length === 0) continue;
    const families = svc.spec?.ipFamilies?.length ? svc.spec.ipFamilies : ['IPv4'];
    for (const family of families) {
      const v6 = family === 'IPv6';
      // Pods a Deployment has on one lab backend share its address: one endpoint each.
      const seen = new Set<string>();
      const members = matching.filter((b) => {
        const addr = v6 ? b.v6 : b.v4;
        if (!addr || seen.has(addr)) return false;
        seen.add(addr);
        return true;
      });
      if (members.length === 0) continue;
      const ports = (svc.spec?.ports ?? []).map((p) => ({
        name: p.name ?? '',
        port: targetPortOf(p, members[0]!),
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

/**
 * As a cluster resolves a Service port: no targetPort means the port
 * itself (`port: 80` reaches the backend on 80), a number is taken as
 * written, a name resolves through the pod's container ports (the lab's
 * own backends have none: their default port).
 */
export function targetPortOf(p: { port: number; targetPort?: number | string; protocol?: string }, backend: LabBackend): number {
  if (p.targetPort === undefined || p.targetPort === '') return p.port;
  if (typeof p.targetPort === 'number') return p.targetPort;
  if (/^\d+$/.test(p.targetPort)) return Number(p.targetPort);
  const named = backend.containerPorts?.find((c) => c.name === p.targetPort && (c.protocol ?? 'TCP') === (p.protocol ?? 'TCP'));
  return named?.containerPort ?? backend.port;
}

/** True when the stored slice already carries what `want` says (so no write is needed). */
export function sliceUpToDate(stored: { addressType?: string; ports?: unknown; endpoints?: unknown; metadata?: { labels?: Record<string, string> } } | undefined, want: EndpointSliceObject): boolean {
  if (!stored) return false;
  return stored.addressType === want.addressType
    && JSON.stringify(stored.ports) === JSON.stringify(want.ports)
    && JSON.stringify(stored.endpoints) === JSON.stringify(want.endpoints)
    && stored.metadata?.labels?.['kubernetes.io/service-name'] === want.metadata.labels['kubernetes.io/service-name'];
}
