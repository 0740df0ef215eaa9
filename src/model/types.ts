/**
 * The plain types every part of pharos shares: what the sources produce
 * (after validation by src/model/parse.ts), what the store holds, and what
 * controllers compute. No I/O, no classes with behaviour: data only.
 *
 * The shapes follow the Kubernetes objects they come from, with defaults
 * applied and optional fields normalised, so controllers never re-check them.
 */

export type IPFamily = 'IPv4' | 'IPv6';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/** Kinds the store knows; the key of every object is `namespace/name` (or `name` when cluster-scoped). */
export type Kind =
  | 'Service'
  | 'EndpointSlice'
  | 'Node'
  | 'LoadBalancerIPPool'
  | 'L2AnnouncementPolicy'
  | 'BGPPeeringPolicy'
  | 'Lease'
  | 'Secret';

export interface ObjectMeta {
  name: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  /** RFC 3339; absent in manifests mode until the store stamps it. */
  creationTimestamp?: string;
  /**
   * Manifests mode: when this agent first saw the object (RFC 3339, kept
   * across restarts). A file can carry any creationTimestamp; this it cannot
   * set, so what must not depend on user-set ages (which overlapping pool
   * wins) orders by it. Kubernetes mode has none: there the API server sets
   * creationTimestamp.
   */
  firstSeen?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values: string[];
}

/** A Kubernetes LabelSelector. An absent selector is `undefined` (matches everything where the API says so). */
export interface LabelSelector {
  matchLabels: Record<string, string>;
  matchExpressions: LabelSelectorRequirement[];
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

// ---------------------------------------------------------------- Service

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
export type IPFamilyPolicy = 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';

export interface ServicePort {
  name: string;
  protocol: Protocol;
  port: number;
  /** Numeric target port or a named port resolved through the EndpointSlice. */
  targetPort: number | string;
  nodePort?: number;
}

export interface LoadBalancerIngress {
  ip: string;
}

/**
 * How the data path carries a frontend's flows to its backends: `snat`
 * (source rewritten to the node, replies come back through it) or `dsr`
 * (direct server return: client address kept, replies bypass the LB;
 * bpf/README.md "Direct server return").
 */
export type ForwardingMode = 'snat' | 'dsr';

/**
 * How a DSR frontend reaches its backends: `l2` (MAC rewrite, backends on
 * the LB's segment only), `ipip` (IPIP / IP6IP6 to every backend), `auto`
 * (L2 where the backend is on-link, encapsulated where a router is in
 * between).
 */
export type DsrDispatch = 'l2' | 'ipip' | 'auto';

export interface Service {
  kind: 'Service';
  meta: ObjectMeta;
  type: ServiceType;
  loadBalancerClass?: string;
  /** Deprecated spec field, still honoured as a request. */
  loadBalancerIP?: string;
  ipFamilies: IPFamily[];
  ipFamilyPolicy: IPFamilyPolicy;
  clusterIPs: string[];
  ports: ServicePort[];
  externalIPs: string[];
  externalTrafficPolicy: 'Cluster' | 'Local';
  sessionAffinity: 'None' | 'ClientIP';
  /** Only meaningful with ClientIP affinity; Kubernetes default 10800. */
  sessionAffinityTimeoutSeconds: number;
  loadBalancerSourceRanges: string[];
  allocateLoadBalancerNodePorts: boolean;
  /** Annotation `lb.pharos.io/forwarding-mode`; absent: the agent's --forwarding-mode. */
  forwardingMode?: ForwardingMode;
  /** Annotation `lb.pharos.io/dsr-dispatch`; absent: auto. */
  dsrDispatch?: DsrDispatch;
  /** Annotation `lb.pharos.io/removed-backend`: what happens to the flows of a backend that goes (absent: rebalance). */
  removedBackendPolicy?: 'rebalance' | 'reset';
  status: {
    ingress: LoadBalancerIngress[];
    conditions: Condition[];
  };
}

// ---------------------------------------------------------------- EndpointSlice

export interface EndpointPort {
  name: string;
  port: number;
  protocol: Protocol;
}

export interface Endpoint {
  addresses: string[];
  /** EndpointSlice conditions, defaults applied as the API documents (nil ready = true). */
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName?: string;
  zone?: string;
  /** pharos extension (annotation `lb.pharos.io/weight` on the slice or per-endpoint hints): Maglev weight, default 1. */
  weight: number;
}

export interface EndpointSlice {
  kind: 'EndpointSlice';
  meta: ObjectMeta;
  /** From the `kubernetes.io/service-name` label. */
  serviceName: string;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  ports: EndpointPort[];
  endpoints: Endpoint[];
}

// ---------------------------------------------------------------- Node

export interface NodeAddress {
  type: string; // InternalIP, ExternalIP, Hostname, ...
  address: string;
}

export interface Node {
  kind: 'Node';
  meta: ObjectMeta;
  addresses: NodeAddress[];
  /** `spec.unschedulable` (kubectl cordon): the node is being drained (src/model/drain.ts). */
  unschedulable?: boolean;
  /** Keys of `spec.taints` (e.g. node.kubernetes.io/unschedulable). */
  taintKeys?: string[];
}

// ---------------------------------------------------------------- IPAM

/** One block of a pool: a CIDR, or an inclusive start..stop range (a lone start is one address). */
export type PoolBlock = { cidr: string } | { start: string; stop: string };

export interface IPPool {
  kind: 'LoadBalancerIPPool';
  meta: ObjectMeta;
  /** Where the object came from, for messages and `pharos convert`. */
  flavor: 'pharos' | 'cilium';
  blocks: PoolBlock[];
  serviceSelector?: LabelSelector;
  disabled: boolean;
  allowFirstLastIPs: boolean;
}

// ---------------------------------------------------------------- L2

export interface L2Policy {
  kind: 'L2AnnouncementPolicy';
  meta: ObjectMeta;
  flavor: 'pharos' | 'cilium';
  serviceSelector?: LabelSelector;
  nodeSelector?: LabelSelector;
  /** Regular expressions (source text), OR-ed; empty = every eligible interface. */
  interfaces: string[];
  loadBalancerIPs: boolean;
  externalIPs: boolean;
}

// ---------------------------------------------------------------- BGP

export interface BgpCommunities {
  /** RFC 1997 `ASN:value` or well-known names (no-export, no-advertise, ...). */
  standard: string[];
  /** RFC 8092 `global:local1:local2`. */
  large: string[];
}

export interface BgpPathAttributes {
  selectorType: 'PodCIDR' | 'CiliumLoadBalancerIPPool' | 'LoadBalancerIPPool' | 'Service';
  selector?: LabelSelector;
  communities: BgpCommunities;
  localPreference?: number;
}

export interface BgpNeighbor {
  peerAddress: string; // CIDR form as in Cilium (10.0.0.1/32) or plain address
  peerASN: number;
  peerPort: number;
  eBGPMultihopTTL: number;
  connectRetryTimeSeconds: number;
  holdTimeSeconds: number;
  keepAliveTimeSeconds: number;
  gracefulRestart: { enabled: boolean; restartTimeSeconds: number };
  families: { afi: 'ipv4' | 'ipv6'; safi: 'unicast' }[];
  advertisedPathAttributes: BgpPathAttributes[];
  /** Resolved password (from authSecretRef or inline), never logged. */
  password?: string;
  authSecretRef?: string;
  sourceAddress?: string;
  /** Most prefixes the neighbor may announce (default 1000) and what happens past it (default `restart`: Cease/Maximum Number of Prefixes Reached). */
  maxPrefixes?: number;
  maxPrefixAction?: 'restart' | 'drop';
  /** BFD (RFC 5880/5881) with this neighbor; absent = none. Milliseconds, as MetalLB's BFDProfile. */
  bfd?: BgpNeighborBfd;
}

export interface BgpNeighborBfd {
  /** Required Min RX Interval: the fastest we accept packets (ms, default 300). */
  receiveInterval: number;
  /** Desired Min TX Interval once Up (ms, default 300). */
  transmitInterval: number;
  /** Missed packets before the peer declares us down (default 3). */
  detectMultiplier: number;
  /** Wait for the peer's first packet before sending (RFC 5880 §6.1 passive role; MetalLB's passiveMode). */
  passiveMode?: boolean;
}

export interface BgpVirtualRouter {
  localASN: number;
  exportPodCIDR: boolean;
  /** As in Cilium: absent = NO service is advertised (unlike pools, where absent = every service). */
  serviceSelector?: LabelSelector;
  /** Which address kinds to advertise. */
  serviceAdvertisements: ('LoadBalancerIP' | 'ExternalIP')[];
  neighbors: BgpNeighbor[];
}

export interface BgpPolicy {
  kind: 'BGPPeeringPolicy';
  meta: ObjectMeta;
  flavor: 'pharos' | 'cilium';
  nodeSelector?: LabelSelector;
  virtualRouters: BgpVirtualRouter[];
}

// ---------------------------------------------------------------- Lease

export interface Lease {
  kind: 'Lease';
  meta: ObjectMeta;
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Secret {
  kind: 'Secret';
  meta: ObjectMeta;
  /** Decoded values. */
  data: Record<string, string>;
}

export type ModelObject = Service | EndpointSlice | Node | IPPool | L2Policy | BgpPolicy | Lease | Secret;

/** `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(meta: Pick<ObjectMeta, 'name' | 'namespace'>): string {
  return meta.namespace ? `${meta.namespace}/${meta.name}` : meta.name;
}

// ---------------------------------------------------------------- data path desired state

/** A backend as the data path sees it. `terminating` (an EndpointSlice endpoint serving but terminating) keeps old flows, takes no new ones. */
export type BackendState = 'active' | 'terminating';

export interface Backend {
  address: string;
  port: number;
  weight: number;
  state: BackendState;
  nodeName?: string;
}

export type FrontendKind = 'LoadBalancer' | 'ExternalIP' | 'NodePort';

/** One `{VIP, port, protocol}` the data path answers for. */
export interface Frontend {
  /** Owning service key (`ns/name`). */
  service: string;
  kind: FrontendKind;
  address: string;
  port: number;
  protocol: Protocol;
  backends: Backend[];
  sessionAffinity: boolean;
  sessionAffinityTimeoutSeconds: number;
  /** Local traffic policy: only node-local backends, client address kept. */
  localOnly: boolean;
  sourceRanges: string[];
  /** Flows of a backend that disappears: moved to another backend (default) or dropped so clients reset. */
  removedBackendPolicy?: 'rebalance' | 'reset';
  /** Absent: snat. dsr applies to service addresses (LoadBalancer, external IPs), never to NodePorts. */
  forwardingMode?: ForwardingMode;
  /** With forwardingMode dsr; absent: auto. */
  dsrDispatch?: DsrDispatch;
}

// ---------------------------------------------------------------- validation

/** One problem with an input, named by its field path (`spec.blocks[2].cidr`) so a condition or log can point at it. */
export interface FieldError {
  field: string;
  message: string;
}

/** One of the node's network interfaces, as the agent reads it (index, MAC, state, addresses). */
export interface NodeInterface {
  name: string;
  ifindex: number;
  mac: string;
  up: boolean;
  addresses: string[];
}
