/**
 * The manifests of the scale bench, as a new user would write them for a
 * cluster of N services: one pool, one L2 policy, N LoadBalancer services of
 * one port each with an EndpointSlice of 3 to 8 ready endpoints, ten services
 * (Service + EndpointSlice) per file, and one "probe" service in a file of its
 * own whose address a client ARPs while the others churn. Pure: texts in,
 * texts out; the lab writes them.
 *
 * Every service gets its own TCP port (BASE_PORT + index), so a frontend key
 * in ph_frontends names its service without asking the agent; addresses are
 * still allocated by the agent's IPAM from the pool. Endpoints are distinct
 * per service unless asked otherwise (EndpointSource), from ranges the LB
 * node routes to the client namespace: nothing ever sends traffic to them.
 */
import { formatAddress, tryParseAddress } from '../../src/model/cidr.js';
import { lbServiceYaml } from '../../src/lab/manifests.js';

export const NAMESPACE = 'bench';
export const SERVICES_PER_FILE = 10;
export const BASE_PORT = 10_000;
export const TARGET_PORT = 8080;
export const MIN_ENDPOINTS = 3;
export const MAX_ENDPOINTS = 8;
/** Addresses the bulk services get (16,384: 10,000 services + a 300 burst fit with room). */
export const BULK_POOL = '198.19.0.0/18';
/** The probe service's address, alone in its pool, on the client's segment. */
export const PROBE_VIP = '198.18.0.200';
export const PROBE_PORT = 80;
/** The client ↔ LB link. */
export const LINK = { client: '198.18.0.1', lb: '198.18.0.2', prefix: 24 };
/** Endpoint ranges (98,304 addresses; 8 per service → 12,288 services at most). */
export const ENDPOINT_RANGES = ['198.18.64.0/18', '198.18.128.0/17', '198.19.64.0/18', '198.19.128.0/17'] as const;
/** The announcing interface of the LB node, as the L2 policy names it. */
export const LB_INTERFACE = 'eth0';

export interface ScaleService {
  index: number;
  name: string;
  port: number;
  /** Ready endpoint addresses, in slot order (slot k = endpointAddress(index, k)). */
  endpoints: string[];
}

export interface ManifestFile {
  /** File name inside the manifests directory. */
  name: string;
  text: string;
}

/** mulberry32: a small seeded PRNG, so the same seed gives the same cluster. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RANGE_STARTS = ENDPOINT_RANGES.map((cidr) => {
  const [addr, len] = cidr.split('/') as [string, string];
  return { first: tryParseAddress(addr)!.value, size: 2 ** (32 - Number(len)) };
});
export const MAX_SERVICES = Math.floor(RANGE_STARTS.reduce((a, r) => a + r.size, 0) / MAX_ENDPOINTS);

/** Address number `n` of the endpoint ranges. */
export function endpointRangeAddress(n: number): string {
  let offset = n;
  for (const r of RANGE_STARTS) {
    if (offset < r.size) return formatAddress('IPv4', r.first + BigInt(offset));
    offset -= r.size;
  }
  throw new Error(`endpoint address #${n} past the endpoint ranges (${MAX_SERVICES * MAX_ENDPOINTS} addresses)`);
}

/** Slot `slot` (0..7) of service `index`'s own block of eight endpoint addresses. */
export function endpointAddress(index: number, slot: number): string {
  if (slot < 0 || slot >= MAX_ENDPOINTS) throw new Error(`endpoint slot ${slot} outside 0..${MAX_ENDPOINTS - 1}`);
  if (index >= MAX_SERVICES) throw new Error(`service index ${index} past the endpoint ranges (${MAX_SERVICES} services at most)`);
  return endpointRangeAddress(index * MAX_ENDPOINTS + slot);
}

export function serviceName(index: number): string {
  return `svc-${String(index).padStart(5, '0')}`;
}

/**
 * Where endpoints come from: `distinct` (default) gives every service its
 * own block of eight addresses (pods belong to one Deployment); `shared`
 * draws them from the first `size` addresses of the ranges, so services
 * share backends (fewer distinct backends, for comparing with a data path
 * whose backend map is smaller than the cluster).
 */
export type EndpointSource = { kind: 'distinct' } | { kind: 'shared'; size: number };

function drawShared(rnd: () => number, size: number, taken: readonly string[]): string {
  if (taken.length >= size) throw new Error(`a shared endpoint pool of ${size} addresses cannot give ${taken.length + 1} distinct endpoints`);
  for (let i = 0; i < 1000; i++) {
    const a = endpointRangeAddress(Math.floor(rnd() * size));
    if (!taken.includes(a)) return a;
  }
  // A tiny pool that is almost all taken: the first free one.
  for (let n = 0; n < size; n++) if (!taken.includes(endpointRangeAddress(n))) return endpointRangeAddress(n);
  throw new Error('unreachable: a free shared endpoint was counted but not found');
}

/** Services `first` .. `first + count - 1`; endpoint counts (and shared picks) drawn from `seed`, per index, so a burst does not shift the others. */
export function scaleServices(first: number, count: number, seed: number, source: EndpointSource = { kind: 'distinct' }): ScaleService[] {
  if (source.kind === 'distinct' && first + count > MAX_SERVICES) throw new Error(`${first + count} services: the endpoint ranges hold ${MAX_SERVICES}`);
  return Array.from({ length: count }, (_, k) => {
    const index = first + k;
    const rnd = seededRandom(seed ^ Math.imul(index + 1, 0x9e3779b1));
    const n = MIN_ENDPOINTS + Math.floor(rnd() * (MAX_ENDPOINTS - MIN_ENDPOINTS + 1));
    const endpoints: string[] = [];
    for (let slot = 0; slot < n; slot++) endpoints.push(source.kind === 'distinct' ? endpointAddress(index, slot) : drawShared(rnd, source.size, endpoints));
    return { index, name: serviceName(index), port: BASE_PORT + index, endpoints };
  });
}

export function fileOf(index: number): string {
  return `svc-${String(Math.floor(index / SERVICES_PER_FILE)).padStart(4, '0')}.yaml`;
}

function serviceYaml(s: ScaleService, labels: Record<string, string>): string {
  return lbServiceYaml({ name: s.name, namespace: NAMESPACE, port: s.port, targetPort: TARGET_PORT, labels, endpoints: s.endpoints });
}

/** The service whose address the client ARPs (index -1: no bulk file holds it). */
export const PROBE_SERVICE: ScaleService = { index: -1, name: 'probe', port: PROBE_PORT, endpoints: ['203.0.113.10', '203.0.113.11', '203.0.113.12'] };

/** The pool, the probe's one-address pool, the L2 policy, and the probe service (3 endpoints). */
export function baseManifests(): ManifestFile[] {
  const pools = `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: bench-pool }
spec:
  blocks: [{ cidr: ${BULK_POOL} }]
  serviceSelector: { matchLabels: { bench: bulk } }
---
apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: probe-pool }
spec:
  blocks: [{ start: ${PROBE_VIP}, stop: ${PROBE_VIP} }]
  serviceSelector: { matchLabels: { bench: probe } }
`;
  const l2 = `apiVersion: lb.pharos.io/v1alpha1
kind: L2AnnouncementPolicy
metadata: { name: bench-l2 }
spec:
  interfaces: ["^${LB_INTERFACE}$"]
  loadBalancerIPs: true
`;
  return [
    { name: '00-pools.yaml', text: pools },
    { name: '00-l2.yaml', text: l2 },
    { name: '01-probe.yaml', text: serviceYaml(PROBE_SERVICE, { bench: 'probe' }) },
  ];
}

/** One file per ten consecutive indices, services in index order. */
export function serviceFiles(services: Iterable<ScaleService>): ManifestFile[] {
  const byFile = new Map<string, ScaleService[]>();
  for (const s of services) {
    const f = fileOf(s.index);
    byFile.set(f, [...(byFile.get(f) ?? []), s]);
  }
  return [...byFile].map(([name, list]) => ({
    name,
    text: list.sort((a, b) => a.index - b.index).map((s) => serviceYaml(s, { bench: 'bulk' })).join('---\n'),
  }));
}

export interface Edit {
  service: ScaleService;
  /** +1: one endpoint added (the next slot of its block); -1: the last one removed. */
  delta: 1 | -1;
  /** The rewritten file (every service it holds; one changed). */
  file: ManifestFile;
}

/**
 * The cluster as the manifests directory holds it, for edits: picks a
 * service (from `candidates`, seeded), adds or removes one endpoint within
 * 3..8, and renders its file anew.
 */
export class ScaleCluster {
  readonly services = new Map<number, ScaleService>();
  private readonly rnd: () => number;

  constructor(seed: number, private readonly source: EndpointSource = { kind: 'distinct' }) {
    this.rnd = seededRandom(seed ^ 0x5ca1ab1e);
  }

  add(services: Iterable<ScaleService>): void {
    for (const s of services) this.services.set(s.index, { ...s, endpoints: [...s.endpoints] });
  }

  nextEdit(candidates: readonly number[]): Edit {
    if (candidates.length === 0) throw new Error('no service to edit');
    const index = candidates[Math.floor(this.rnd() * candidates.length)]!;
    const s = this.services.get(index);
    if (!s) throw new Error(`service ${index} is not in the cluster`);
    const n = s.endpoints.length;
    const delta: 1 | -1 = n >= MAX_ENDPOINTS ? -1 : n <= MIN_ENDPOINTS ? 1 : this.rnd() < 0.5 ? 1 : -1;
    const added = (): string => (this.source.kind === 'distinct' ? endpointAddress(index, n) : drawShared(this.rnd, this.source.size, s.endpoints));
    s.endpoints = delta === 1 ? [...s.endpoints, added()] : s.endpoints.slice(0, -1);
    const name = fileOf(index);
    const siblings = [...this.services.values()].filter((x) => fileOf(x.index) === name);
    return { service: { ...s, endpoints: [...s.endpoints] }, delta, file: serviceFiles(siblings)[0]! };
  }
}
