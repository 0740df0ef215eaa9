/**
 * The read-only JSON document served at /v1/state and rendered by the CLI
 * (`pharos status`, `service list`, `pool list`, `l2 list`, `bgp peers`, ...).
 * Plain data; versioned by `apiVersion` so the CLI can refuse what it does
 * not understand.
 */
import type { BackendState, IPPool, Service } from '../model/types.js';
import { poolsOfAddresses } from '../ipam/pools.js';

export const STATE_API_VERSION = 'pharos.state/v1';

export interface BackendView {
  id: number;
  address: string;
  port: number;
  weight: number;
  state: BackendState;
  node?: string;
}

export interface FrontendView {
  id: number;
  service: string;
  kind: 'LoadBalancer' | 'ExternalIP' | 'NodePort';
  address: string;
  port: number;
  protocol: string;
  backends: BackendView[];
  /** False when the data path could not take it (map full, too many backends, conflict, ...): see `problem`. */
  programmed: boolean;
  problem?: string;
}

/** A service not (fully) in this node's data path: it is neither announced nor advertised from here. */
export interface NotProgrammedView {
  service: string;
  frontends: number;
  programmed: number;
  reason: string;
  message: string;
}

/** Counts that hold at any scale (what `pharos status` prints). */
export interface StateSummary {
  services: number;
  frontends: number;
  frontendsProgrammed: number;
  backends: number;
  servicesNotProgrammed: number;
  /** This node is being drained (labelled lb.pharos.io/drain or cordoned): L2 hands its addresses over, BGP sends GRACEFUL_SHUTDOWN then withdraws. */
  drain?: { reason: string; description: string; bgp?: { phase: string; since: string; withdrawAt: string } };
  l2: {
    announced: number; refused: number; pendingFirstAnnouncement: number;
    /** Kubernetes mode: the API as the L2 election sees it, peers heard, addresses fenced and duplicate answers seen. */
    outage?: {
      apiReachable: boolean; apiUnreachableSince?: string; livePeers: string[]; unconfirmed: number;
      fenced: { address: string; reason: string; since: string }[];
      duplicates: { address: string; mac: string; count: number; at: string }[];
    };
  };
}

export interface ServiceView {
  key: string;
  type: string;
  loadBalancerClass?: string;
  ingress: string[];
  externalIPs: string[];
  ports: string[];
  ipam?: { status: string; reason: string; message: string };
  /** Whether this node's data path carries every frontend of the service (absent: it has none yet). */
  datapath?: { programmed: boolean; frontends: number; programmedFrontends: number; reason?: string; message?: string };
  /** Only in a one-service view (`?service=`): what `pharos explain` reads to say why. */
  detail?: ServiceDetailView;
}

export interface ServiceDetailView {
  /** The annotations that steer addresses and announcements (pharos', Cilium's and MetalLB's). */
  annotations: Record<string, string>;
  loadBalancerIP?: string;
  externalTrafficPolicy: string;
  loadBalancerSourceRanges: string[];
  conditions: Array<{ type: string; status: string; reason: string; message: string; lastTransitionTime?: string }>;
  /** status.loadBalancer.ingress address → the pool it lies in (addresses in no pool are absent). */
  addressPools: Record<string, string>;
}

export interface PoolView {
  name: string;
  disabled: boolean;
  conflicting: boolean;
  conflictReason?: string;
  /** Decimal strings: an IPv6 /64 does not fit in a JS number exactly. */
  total: string;
  available: string;
  used: string;
  createdAt?: string;
}

export interface L2View {
  service: string;
  address: string;
  interfaces: string[];
  holder: string;
  since?: string;
  transitions: number;
  local: boolean;
  /** Kubernetes mode: `announcing`, `held through API outage`, `taken over (...)`, `fenced: <why>`; '' when not answered here. */
  state?: string;
  /** The last time another MAC answered for this address while this node did (bpf/lib/l2_foreign.h). */
  duplicate?: { mac: string; count: number; at: string };
}

export interface BgpPeerView {
  peer: string;
  asn: number;
  localAsn: number;
  state: string;
  uptimeSeconds: number;
  prefixesSent: number;
  prefixesReceived: number;
  lastError?: string;
  /** BFD to the neighbor's address, when its policy asks for it (src/bgp/bfd.ts). */
  bfd?: BgpPeerBfdView;
}

export interface BgpPeerBfdView {
  state: string;
  remoteState: string;
  /** Why it last changed state (RFC 5880 diagnostic), e.g. 'Control Detection Time Expired'. */
  diagnostic: string;
  localDiscriminator: number;
  remoteDiscriminator: number;
  txIntervalMs: number;
  detectionTimeMs: number;
  transitions: number;
  lastTransitionAt?: string;
  /** Times BFD going down dropped this BGP session. */
  bgpDrops: number;
  /** What keeps it from running (a socket that cannot be bound). */
  error?: string;
}

export interface BgpRouteView {
  prefix: string;
  nextHop: string;
  peers: string[];
  service?: string;
  communities: string[];
}

export interface ConfigProblemView {
  source: string;
  object: string;
  field?: string;
  message: string;
  at: string;
}

/** What the data path's self-check found (src/datapath/attach-watch.ts). */
export interface DatapathHealthView {
  /** False: some program is gone and could not be put back; the node draws no traffic until it is whole. */
  whole: boolean;
  checkedAt?: string;
  brokenSince?: string;
  interfaces: { interface: string; ok: boolean; problem?: string; reattached: number }[];
  /** Pins holding another map than the one the agent writes. */
  pins: string[];
  intervalMs: number;
}

export interface AgentStateView {
  apiVersion: typeof STATE_API_VERSION;
  node: string;
  version: string;
  source: 'manifests' | 'kubernetes';
  startedAt: string;
  ready: boolean;
  readiness: Record<string, { ok: boolean; detail: string }>;
  datapath: {
    mode: string;
    pinDir: string;
    attachments: { interface: string; ifindex: number; mode: string; reason: string }[];
    maps: { name: string; entries: number; capacity: number }[];
    /** Node-local access (cgroup socket hooks), when attached. */
    socketLb?: { cgroup: string; hooks: string[]; counters: Record<string, number> };
    /** The last self-check (src/datapath/attach-watch.ts): programs still attached, maps still pinned. */
    health?: DatapathHealthView;
  };
  summary: StateSummary;
  /** Services not in the data path (the first MAX_NOT_PROGRAMMED; `summary.servicesNotProgrammed` has the count). */
  notProgrammed: NotProgrammedView[];
  /** Which sections below were filled (the others are empty): `?sections=` asks for some only. */
  sections: StateSection[];
  services: ServiceView[];
  frontends: FrontendView[];
  pools: PoolView[];
  l2: L2View[];
  bgp: { peers: BgpPeerView[]; routes: BgpRouteView[] };
  problems: ConfigProblemView[];
  config: Record<string, unknown>;
  /** A list section stopped at `limit`: ask again with `continue=<this>` (and the same `sections`) for the next page. */
  continue?: string;
}

// ---------------------------------------------------------------- sections and pages (GET /v1/state?sections=…&limit=…&continue=…)

export const STATE_SECTIONS = ['services', 'frontends', 'pools', 'l2', 'bgp', 'problems', 'config'] as const;
export type StateSection = (typeof STATE_SECTIONS)[number];
/** The sections that can be long (one entry per service, frontend or address) and come in pages. */
export const LIST_SECTIONS: readonly StateSection[] = ['services', 'frontends', 'l2'];
/** Entries of a list section per response unless `limit` says otherwise, and the most `limit` may ask for. */
export const DEFAULT_PAGE = 1000;
export const MAX_PAGE = 10_000;
export const MAX_NOT_PROGRAMMED = 100;

export interface StateQuery {
  sections: ReadonlySet<StateSection>;
  limit: number;
  /** Continue a list section after this key (the others are not filled). */
  after?: { section: StateSection; key: string };
  /** `namespace/name`: list sections hold only this service's entries (one page), services with their detail. */
  service?: string;
}

export class StateQueryError extends Error {}

/** `?sections=a,b&limit=N&continue=T` → what to build; throws a StateQueryError naming the parameter at fault. */
export function parseStateQuery(q: URLSearchParams): StateQuery {
  const raw = q.get('sections');
  const sections = new Set<StateSection>();
  for (const name of raw ? raw.split(',').map((x) => x.trim()).filter(Boolean) : STATE_SECTIONS) {
    if (!(STATE_SECTIONS as readonly string[]).includes(name)) throw new StateQueryError(`sections: unknown section "${name}" (${STATE_SECTIONS.join(', ')})`);
    sections.add(name as StateSection);
  }
  const limitText = q.get('limit');
  const limit = limitText === null ? DEFAULT_PAGE : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new StateQueryError(`limit: "${limitText}" must be an integer from 1 to ${MAX_PAGE}`);
  const service = q.get('service') ?? undefined;
  if (service !== undefined && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(service)) {
    throw new StateQueryError(`service: "${service}" is not namespace/name`);
  }
  const token = q.get('continue');
  if (!token) return { sections, limit, ...(service ? { service } : {}) };
  if (service) throw new StateQueryError('service: a one-service view has no pages (drop continue)');
  let after: StateQuery['after'];
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { s?: unknown; k?: unknown };
    if (typeof t.s === 'string' && LIST_SECTIONS.includes(t.s as StateSection) && typeof t.k === 'string') after = { section: t.s as StateSection, key: t.k };
  } catch {
    after = undefined;
  }
  if (!after) throw new StateQueryError('continue: not a token this agent handed out');
  return { sections: new Set([after.section]), limit, after };
}

export function continueToken(section: StateSection, key: string): string {
  return Buffer.from(JSON.stringify({ s: section, k: key })).toString('base64url');
}

/**
 * One page of a list already in key order: the entries after `after` (when
 * it continues this section), at most `limit`, and the token for the next.
 */
export function pageOf<T>(section: StateSection, items: readonly T[], keyOf: (item: T) => string, q: StateQuery): { items: T[]; next?: string } {
  let start = 0;
  if (q.after?.section === section) {
    const after = q.after.key;
    // Binary search: items are sorted by key.
    let lo = 0;
    let hi = items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (keyOf(items[mid]!) <= after) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const page = items.slice(start, start + q.limit);
  const more = start + q.limit < items.length;
  return { items: page, ...(more ? { next: continueToken(section, keyOf(page[page.length - 1]!)) } : {}) };
}

/** GET /v1/conntrack: flows in the data path, as `pharos bpf ct list` shows them. */
export interface ConntrackView {
  entries: {
    protocol: string;
    source: string;
    destination: string;
    backend: string;
    snat: string;
    state: string;
    idleSeconds: number;
  }[];
  /** More entries follow: ask again with `continue`. */
  truncated: boolean;
  /** Entries in the table as last counted (for the metrics; up to 30 s old on a big table). */
  total: number;
  /** Where the next page starts (`?continue=`); absent on the last page. */
  continue?: string;
}

/** Annotation prefixes whose keys steer addresses, sharing and announcements (shown by `pharos explain`). */
const STEERING_ANNOTATIONS = ['lb.pharos.io/', 'io.cilium/', 'lbipam.cilium.io/', 'metallb.universe.tf/', 'metallb.io/'];

export function serviceDetail(svc: Service, pools: Iterable<IPPool>): ServiceDetailView {
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(svc.meta.annotations)) if (STEERING_ANNOTATIONS.some((p) => k.startsWith(p))) annotations[k] = v;
  return {
    annotations,
    ...(svc.loadBalancerIP ? { loadBalancerIP: svc.loadBalancerIP } : {}),
    externalTrafficPolicy: svc.externalTrafficPolicy,
    loadBalancerSourceRanges: svc.loadBalancerSourceRanges,
    conditions: svc.status.conditions.map((c) => ({
      type: c.type, status: c.status, reason: c.reason, message: c.message, ...(c.lastTransitionTime ? { lastTransitionTime: c.lastTransitionTime } : {}),
    })),
    addressPools: poolsOfAddresses(pools, svc.status.ingress.map((i) => i.ip)),
  };
}
