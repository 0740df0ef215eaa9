/**
 * The read-only JSON document served at /v1/state and rendered by the CLI
 * (`pharos status`, `service list`, `pool list`, `l2 list`, `bgp peers`, ...).
 * Plain data; versioned by `apiVersion` so the CLI can refuse what it does
 * not understand.
 */

export const STATE_API_VERSION = 'pharos.state/v1';

export interface BackendView {
  id: number;
  address: string;
  port: number;
  weight: number;
  state: 'active' | 'terminating' | 'maintenance';
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
}

export interface ServiceView {
  key: string;
  type: string;
  loadBalancerClass?: string;
  ingress: string[];
  externalIPs: string[];
  ports: string[];
  ipam?: { status: string; reason: string; message: string };
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
    attachments: { interface: string; ifindex: number; mode: string }[];
    maps: { name: string; entries: number; capacity: number }[];
    /** Node-local access (cgroup socket hooks), when attached. */
    socketLb?: { cgroup: string; hooks: string[]; counters: Record<string, number> };
  };
  services: ServiceView[];
  frontends: FrontendView[];
  pools: PoolView[];
  l2: L2View[];
  bgp: { peers: BgpPeerView[]; routes: BgpRouteView[] };
  problems: ConfigProblemView[];
  config: Record<string, unknown>;
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
  truncated: boolean;
  total: number;
}
