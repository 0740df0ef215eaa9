/**
 * The agent's configuration: flags, an optional YAML file with the same keys
 * (`--config`), and PHAROS_* environment variables (for the in-cluster
 * DaemonSet). Precedence: flag > environment > file > default.
 *
 * Pure: parsing and validation only; the caller reads files and the
 * environment and hands them in, so every rule is unit-testable.
 */
import { MAX_ENTRIES, RODATA_DEFAULTS } from '../datapath/abi.js';
import { DEFAULT_MAGLEV_MAX_M, MAGLEV_SIZES } from '../datapath/maglev.js';
import { parseSnatOverride } from '../datapath/snat.js';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';

import type { ForwardingMode } from '../model/types.js';
export type { ForwardingMode };
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';
export type XdpAttachMode = 'native' | 'generic' | 'tc' | 'auto';

export interface AgentConfig {
  manifests?: string;
  kubeconfig?: string;
  /** True when running inside a pod (KUBERNETES_SERVICE_HOST set) and no other source was given. */
  inCluster: boolean;
  nodeName: string;
  interfaces: string[];
  stateDir: string;
  http: string;
  pinDir: string;
  /**
   * The node's net sysctls, where the agent sets accept_local on its
   * interfaces. A container's /proc/sys is read-only (runc mounts it so), so
   * the DaemonSet mounts the host's /proc/sys/net elsewhere, as Cilium does.
   */
  procSysNet: string;
  mode: ForwardingMode;
  /** lb: the load balancer (default); backend: a DSR backend host, only the decapsulation program (src/datapath/backend-role.ts). */
  role: 'lb' | 'backend';
  /** Backend role: how long the Maglev table before a backend change is kept for handing moved flows to their owner (0: no hand-off). */
  dsrHandoffSeconds: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  config?: string;
  /** pharos' own namespace: its Leases (pharos-ipam, pharos-l2announce-*, pharos-node-*) and the Secrets BGP authSecretRef names. */
  namespace: string;
  /** Whether services without a loadBalancerClass are ours. */
  defaultLoadBalancerClass: boolean;
  xdpMode: XdpAttachMode;
  /** Cluster-wide Maglev hash seed: every LB node must use the same one. */
  hashSeed: number;
  /** One Maglev table size for every frontend (a prime); 0 = chosen per backend set from its backend count. */
  maglevTableSize: number;
  /** The largest Maglev table size chosen per backend set (a prime). */
  maglevMaxTableSize: number;
  conntrackSize: number;
  /** Capacities of the data path's maps (frontends, backends, responder entries). */
  frontendMapSize: number;
  backendMapSize: number;
  responderMapSize: number;
  /** Export the per-backend packet/byte families (most of /metrics at tens of thousands of backends). */
  metricsPerBackend: boolean;
  /** SNAT source port range (inclusive). */
  snatPorts: [number, number];
  /** SNAT source addresses (default: the first address of each interface, per family). */
  snatAddresses: string[];
  /** Seconds the XDP responder keeps answering without a liveness refresh from the agent. */
  responderMaxAgeSeconds: number;
  l2NodeLeaseSeconds: number;
  l2NodeRenewMs: number;
  l2ServiceLeaseSeconds: number;
  l2ServiceRenewSeconds: number;
  l2ServiceRetrySeconds: number;
  /** Gratuitous ARP/NA frames per second per interface (announcements are paced). */
  l2AnnounceRate: number;
  l2PeerPort: number;
  k8sQps: number;
  k8sBurst: number;
  /** On SIGTERM: keep BGP routes via graceful restart (default) or withdraw them. */
  bgpShutdown: 'graceful' | 'withdraw';
  /** A draining node (lb.pharos.io/drain label or cordoned) sends its BGP routes with GRACEFUL_SHUTDOWN this long, then withdraws them. */
  bgpDrainWithdrawSeconds: number;
  /** Manifests mode: bytes of one manifest file, and of all of them together, beyond which files are refused. */
  manifestsMaxFileBytes: number;
  manifestsMaxBytes: number;
  /** Node-local access: cgroup socket hooks balance the node's own connections to services. */
  socketLb: boolean;
  /** cgroup v2 directory the socket hooks attach to; '' = the cgroup v2 mount (every process on the node). */
  socketLbCgroup: string;
  /** Balance sockets of every network namespace in the cgroup (pods), not only the agent's own. */
  socketLbAllNamespaces: boolean;
}

export interface FlagSpec {
  key: keyof AgentConfig;
  flag: string;
  env: string;
  kind: 'string' | 'number' | 'list' | 'bool' | 'range';
  help: string;
  choices?: string[];
}

export const FLAGS: FlagSpec[] = [
  { key: 'manifests', flag: 'manifests', env: 'PHAROS_MANIFESTS', kind: 'string', help: 'watch a directory of YAML/JSON manifests instead of Kubernetes' },
  { key: 'kubeconfig', flag: 'kubeconfig', env: 'KUBECONFIG', kind: 'string', help: 'talk to Kubernetes through this kubeconfig (standalone LB node)' },
  { key: 'nodeName', flag: 'node-name', env: 'PHAROS_NODE_NAME', kind: 'string', help: 'this node\'s name (default: hostname)' },
  { key: 'interfaces', flag: 'interfaces', env: 'PHAROS_INTERFACES', kind: 'list', help: 'comma-separated interfaces where the data path attaches and announcements go' },
  { key: 'stateDir', flag: 'state-dir', env: 'PHAROS_STATE_DIR', kind: 'string', help: 'where the agent keeps its own state (allocations in manifests mode)' },
  { key: 'http', flag: 'http', env: 'PHAROS_HTTP', kind: 'string', help: 'address of the HTTP endpoint (/metrics, /healthz, /readyz, /v1/state)' },
  { key: 'pinDir', flag: 'pin-dir', env: 'PHAROS_PIN_DIR', kind: 'string', help: 'bpffs directory for pinned maps (default /sys/fs/bpf/pharos/<node-name>)' },
  { key: 'procSysNet', flag: 'proc-sys-net', env: 'PHAROS_PROC_SYS_NET', kind: 'string', help: 'the node\'s writable net sysctls (a container\'s /proc/sys is read-only: the DaemonSet mounts the host\'s /proc/sys/net at /host/proc/sys/net)' },
  { key: 'mode', flag: 'forwarding-mode', env: 'PHAROS_FORWARDING_MODE', kind: 'string', choices: ['snat', 'dsr'], help: 'forwarding mode of services without the lb.pharos.io/forwarding-mode annotation: snat, or dsr (direct server return: the client address kept; backends on the segment by MAC rewrite, others in IPIP/IP6IP6, per lb.pharos.io/dsr-dispatch)' },
  { key: 'dsrHandoffSeconds', flag: 'dsr-handoff-seconds', env: 'PHAROS_DSR_HANDOFF_SECONDS', kind: 'number', help: 'backend role: seconds the Maglev table from before a backend change is kept, so a TCP packet of an established flow sent here with no socket for it is handed to its previous owner (0: never)' },
  { key: 'role', flag: 'role', env: 'PHAROS_ROLE', kind: 'string', choices: ['lb', 'backend'], help: 'lb (default), or backend: a DSR backend host (manifests mode) — only the IPIP/IP6IP6 decapsulation program, and the VIPs of services with endpoints here on lo' },
  { key: 'logLevel', flag: 'log-level', env: 'PHAROS_LOG_LEVEL', kind: 'string', choices: ['debug', 'info', 'warn', 'error'], help: 'log level' },
  { key: 'logFormat', flag: 'log-format', env: 'PHAROS_LOG_FORMAT', kind: 'string', choices: ['text', 'json'], help: 'log format' },
  { key: 'config', flag: 'config', env: 'PHAROS_CONFIG', kind: 'string', help: 'YAML file with the same keys as these flags (camelCase or flag spelling)' },
  { key: 'namespace', flag: 'namespace', env: 'PHAROS_NAMESPACE', kind: 'string', help: 'pharos\' own namespace: its Leases, and the Secrets BGP authSecretRef names (the DaemonSet sets the pod\'s namespace)' },
  { key: 'defaultLoadBalancerClass', flag: 'default-lb-class', env: 'PHAROS_DEFAULT_LB_CLASS', kind: 'bool', help: 'treat services without loadBalancerClass as ours' },
  { key: 'xdpMode', flag: 'xdp-mode', env: 'PHAROS_XDP_MODE', kind: 'string', choices: ['native', 'generic', 'tc', 'auto'], help: 'where the data path attaches (auto, per interface: native XDP on device-backed interfaces, generic if the driver refuses; tc ingress on veth and other virtual devices; tc: the same program at tc ingress everywhere)' },
  { key: 'hashSeed', flag: 'hash-seed', env: 'PHAROS_HASH_SEED', kind: 'number', help: 'cluster-wide Maglev hash seed (same on every LB node)' },
  { key: 'maglevTableSize', flag: 'maglev-table-size', env: 'PHAROS_MAGLEV_TABLE_SIZE', kind: 'number', help: 'one Maglev table size for every frontend (a prime > backends; 0: the smallest of 251, 509, 1021, ... above 100 x backends)' },
  { key: 'maglevMaxTableSize', flag: 'maglev-max-table-size', env: 'PHAROS_MAGLEV_MAX_TABLE_SIZE', kind: 'number', help: 'largest Maglev table size chosen by backend count (a prime; past 100 x backends, balance stays even but more flows move when backends change)' },
  { key: 'conntrackSize', flag: 'conntrack-size', env: 'PHAROS_CONNTRACK_SIZE', kind: 'number', help: 'conntrack entries' },
  { key: 'frontendMapSize', flag: 'frontend-map-size', env: 'PHAROS_FRONTEND_MAP_SIZE', kind: 'number', help: 'frontends ({address, port, protocol}: VIPs, external IPs and NodePorts) the data path holds' },
  { key: 'backendMapSize', flag: 'backend-map-size', env: 'PHAROS_BACKEND_MAP_SIZE', kind: 'number', help: 'distinct backends (address:port) the data path holds' },
  { key: 'metricsPerBackend', flag: 'metrics-per-backend', env: 'PHAROS_METRICS_PER_BACKEND', kind: 'bool', help: 'export packets/bytes per backend (--no-metrics-per-backend: per frontend only, a third of the scrape at 10,000 services)' },
  { key: 'responderMapSize', flag: 'responder-map-size', env: 'PHAROS_RESPONDER_MAP_SIZE', kind: 'number', help: 'announced (address, interface) pairs the ARP/NDP responder holds' },
  { key: 'snatPorts', flag: 'snat-ports', env: 'PHAROS_SNAT_PORTS', kind: 'range', help: 'SNAT source port range, FIRST-LAST' },
  { key: 'snatAddresses', flag: 'snat-addresses', env: 'PHAROS_SNAT_ADDRESSES', kind: 'list', help: 'SNAT source overrides: ADDR (that family\'s source on every interface) or IFACE=ADDR (default: the address of the interface a packet leaves by, as MASQUERADE)' },
  { key: 'responderMaxAgeSeconds', flag: 'responder-max-age', env: 'PHAROS_RESPONDER_MAX_AGE', kind: 'number', help: 'seconds the XDP ARP/NDP responder answers without an agent heartbeat' },
  { key: 'l2NodeLeaseSeconds', flag: 'l2-node-lease', env: 'PHAROS_L2_NODE_LEASE', kind: 'number', help: 'node liveness lease duration, seconds' },
  { key: 'l2NodeRenewMs', flag: 'l2-node-renew-ms', env: 'PHAROS_L2_NODE_RENEW_MS', kind: 'number', help: 'node liveness lease renew interval, milliseconds' },
  { key: 'l2ServiceLeaseSeconds', flag: 'l2-lease-duration', env: 'PHAROS_L2_LEASE_DURATION', kind: 'number', help: 'IPAM leader lease duration, seconds (also written on L2 service leases, which are held while the holder\'s node lease is renewed and never renewed themselves)' },
  { key: 'l2ServiceRenewSeconds', flag: 'l2-lease-renew', env: 'PHAROS_L2_LEASE_RENEW', kind: 'number', help: 'IPAM leader lease renew deadline, seconds' },
  { key: 'l2ServiceRetrySeconds', flag: 'l2-lease-retry', env: 'PHAROS_L2_LEASE_RETRY', kind: 'number', help: 'IPAM leader retry period, and how long an L2 service lease assigned to another node may stay untaken before any node takes it, seconds' },
  { key: 'l2PeerPort', flag: 'l2-peer-port', env: 'PHAROS_L2_PEER_PORT', kind: 'number', help: 'UDP port of the L2 peer heartbeats (broadcast on the announcing interfaces; they decide who answers while the Kubernetes API is unreachable); 0 turns them off' },
  { key: 'l2AnnounceRate', flag: 'l2-announce-rate', env: 'PHAROS_L2_ANNOUNCE_RATE', kind: 'number', help: 'gratuitous ARP/NA frames per second per interface (first announcements go before repeats)' },
  { key: 'k8sQps', flag: 'k8s-qps', env: 'PHAROS_K8S_QPS', kind: 'number', help: 'Kubernetes API write rate limit per second, for status writes and for L2 service leases each (node leases have their own)' },
  { key: 'k8sBurst', flag: 'k8s-burst', env: 'PHAROS_K8S_BURST', kind: 'number', help: 'Kubernetes API write burst' },
  { key: 'manifestsMaxFileBytes', flag: 'manifests-max-file-bytes', env: 'PHAROS_MANIFESTS_MAX_FILE_BYTES', kind: 'number', help: 'manifests mode: a larger file is refused (last good version kept)' },
  { key: 'manifestsMaxBytes', flag: 'manifests-max-bytes', env: 'PHAROS_MANIFESTS_MAX_BYTES', kind: 'number', help: 'manifests mode: total bytes of the directory; files past it are refused (last good version kept)' },
  { key: 'socketLb', flag: 'socket-lb', env: 'PHAROS_SOCKET_LB', kind: 'bool', help: 'node-local access: balance the node\'s own connections to service addresses with cgroup socket hooks (--no-socket-lb: off, hooks removed)' },
  { key: 'socketLbCgroup', flag: 'socket-lb-cgroup', env: 'PHAROS_SOCKET_LB_CGROUP', kind: 'string', help: 'cgroup v2 directory for the socket hooks (default: the cgroup v2 mount found in /proc/self/mountinfo)' },
  { key: 'socketLbAllNamespaces', flag: 'socket-lb-all-namespaces', env: 'PHAROS_SOCKET_LB_ALL_NAMESPACES', kind: 'bool', help: 'socket hooks also balance other network namespaces in the cgroup (pods of a DaemonSet node), not only the agent\'s own' },
  { key: 'bgpShutdown', flag: 'bgp-shutdown', env: 'PHAROS_BGP_SHUTDOWN', kind: 'string', choices: ['graceful', 'withdraw'], help: 'on SIGTERM keep routes (graceful restart) or withdraw them' },
  { key: 'bgpDrainWithdrawSeconds', flag: 'bgp-drain-withdraw-delay', env: 'PHAROS_BGP_DRAIN_WITHDRAW_DELAY', kind: 'number', help: 'a draining node (labelled lb.pharos.io/drain or cordoned) advertises its BGP routes with GRACEFUL_SHUTDOWN (65535:0) and a worse path for this many seconds, then withdraws them' },
];

export function defaults(host = hostname()): AgentConfig {
  return {
    inCluster: false,
    nodeName: host,
    interfaces: [],
    stateDir: '/var/lib/pharos',
    http: '127.0.0.1:9643',
    pinDir: '', // derived from nodeName in finalize()
    procSysNet: '/proc/sys/net',
    mode: 'snat',
    role: 'lb',
    dsrHandoffSeconds: 300,
    logLevel: 'info',
    logFormat: 'text',
    namespace: 'pharos-system',
    defaultLoadBalancerClass: true,
    xdpMode: 'auto',
    hashSeed: RODATA_DEFAULTS.cfg_hash_seed, // equal on every LB node: the data path's own default (abi.ts says why this value)
    maglevTableSize: 0,
    maglevMaxTableSize: DEFAULT_MAGLEV_MAX_M,
    conntrackSize: MAX_ENTRIES.conntrack,
    frontendMapSize: MAX_ENTRIES.frontends,
    backendMapSize: MAX_ENTRIES.backends,
    responderMapSize: MAX_ENTRIES.responder,
    metricsPerBackend: true,
    snatPorts: [32768, 60999],
    snatAddresses: [],
    responderMaxAgeSeconds: Number(RODATA_DEFAULTS.cfg_liveness_max_ns / 1_000_000_000n),
    l2NodeLeaseSeconds: 1,
    l2NodeRenewMs: 250,
    l2ServiceLeaseSeconds: 15,
    l2ServiceRenewSeconds: 5,
    l2ServiceRetrySeconds: 2,
    l2AnnounceRate: 1000,
    l2PeerPort: 9644,
    k8sQps: 20,
    k8sBurst: 40,
    bgpShutdown: 'graceful',
    bgpDrainWithdrawSeconds: 10,
    manifestsMaxFileBytes: 16 * 1024 * 1024,
    manifestsMaxBytes: 64 * 1024 * 1024,
    socketLb: true,
    socketLbCgroup: '', // found at start (cgroup v2 mount)
    socketLbAllNamespaces: false,
  };
}

export class ConfigError extends Error {}

/** The largest table Cilium offers too; M > 100 × N still allows 1,300 backends per service. */
export const MAX_MAGLEV_TABLE = MAGLEV_SIZES[MAGLEV_SIZES.length - 1]!;
export const MAX_CONNTRACK = 16_777_216;
/** Bounds of the map-size flags: at least a few entries, at most what the kernel allocates without trouble. */
export const MAP_SIZE_BOUNDS = { frontendMapSize: [16, 1_048_576], backendMapSize: [16, 4_194_304], responderMapSize: [16, 1_048_576] } as const;

export interface ConfigInputs {
  argv: string[];
  env: Record<string, string | undefined>;
  /** Reads the --config file; injected so tests need no disk. */
  readFile: (path: string) => string;
  hostname?: string;
}

function coerce(spec: FlagSpec, raw: unknown, origin: string): unknown {
  const where = `${origin} ${spec.flag}`;
  switch (spec.kind) {
    case 'string': {
      if (typeof raw !== 'string' || raw === '') throw new ConfigError(`${where}: expected a non-empty string`);
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new ConfigError(`${where}: "${raw}" is not one of ${spec.choices.join(', ')}`);
      }
      return raw;
    }
    case 'number': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n) || n < 0) throw new ConfigError(`${where}: "${String(raw)}" is not a non-negative number`);
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      throw new ConfigError(`${where}: "${String(raw)}" is not true or false`);
    }
    case 'list': {
      const items = Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? raw.split(',') : null;
      if (!items) throw new ConfigError(`${where}: expected a comma-separated list`);
      return items.map((s) => s.trim()).filter((s) => s !== '');
    }
    case 'range': {
      const m = typeof raw === 'string' ? /^(\d+)-(\d+)$/.exec(raw.trim()) : null;
      const pair = Array.isArray(raw) && raw.length === 2 ? raw.map(Number) : m ? [Number(m[1]), Number(m[2])] : null;
      if (!pair || pair.some((p) => !Number.isInteger(p) || p < 1 || p > 65535) || pair[0]! > pair[1]!) {
        throw new ConfigError(`${where}: "${String(raw)}" is not a port range FIRST-LAST within 1-65535`);
      }
      return pair as [number, number];
    }
  }
}

function specByName(name: string): FlagSpec | undefined {
  return FLAGS.find((f) => f.flag === name || f.key === name);
}

/** Parses `--flag value`, `--flag=value` and bare boolean flags; returns raw values by key. */
function parseArgv(argv: string[]): Map<keyof AgentConfig, unknown> {
  const out = new Map<keyof AgentConfig, unknown>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument "${arg}" (flags start with --)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const noPrefixed = name.startsWith('no-') ? specByName(name.slice(3)) : undefined;
    const spec = specByName(name) ?? noPrefixed;
    if (!spec) throw new ConfigError(`unknown flag --${name} (see pharos agent --help)`);
    let value: unknown;
    if (spec.kind === 'bool' && eq < 0) value = spec !== noPrefixed;
    else if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = argv[++i];
      if (value === undefined) throw new ConfigError(`flag --${name} needs a value`);
    }
    out.set(spec.key, coerce(spec, value, 'flag'));
  }
  return out;
}

function parseConfigFile(text: string, path: string): Map<keyof AgentConfig, unknown> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path}: not valid YAML: ${(err as Error).message}`);
  }
  const out = new Map<keyof AgentConfig, unknown>();
  if (doc === null || doc === undefined) return out;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${path}: expected a mapping of keys to values`);
  for (const [name, value] of Object.entries(doc as Record<string, unknown>)) {
    const spec = specByName(name);
    if (!spec || spec.key === 'config') throw new ConfigError(`config file ${path}: unknown key "${name}"`);
    out.set(spec.key, coerce(spec, value, `config file ${path}: key`));
  }
  return out;
}

/** Builds the effective configuration, or throws a ConfigError naming the flag/key at fault. */
export function resolveConfig(inputs: ConfigInputs): AgentConfig {
  const flags = parseArgv(inputs.argv);
  const fromEnv = new Map<keyof AgentConfig, unknown>();
  for (const spec of FLAGS) {
    const v = inputs.env[spec.env];
    if (v !== undefined && v !== '') fromEnv.set(spec.key, coerce(spec, v, `environment ${spec.env} for`));
  }
  const configPath = (flags.get('config') ?? fromEnv.get('config')) as string | undefined;
  let fromFile = new Map<keyof AgentConfig, unknown>();
  if (configPath) {
    let text: string;
    try {
      text = inputs.readFile(configPath);
    } catch (err) {
      throw new ConfigError(`config file ${configPath}: cannot read: ${(err as Error).message}`);
    }
    fromFile = parseConfigFile(text, configPath);
  }
  const cfg = defaults(inputs.hostname) as unknown as Record<string, unknown>;
  for (const layer of [fromFile, fromEnv, flags]) for (const [k, v] of layer) cfg[k] = v;
  return finalize(cfg as unknown as AgentConfig, inputs.env);
}

function finalize(cfg: AgentConfig, env: Record<string, string | undefined>): AgentConfig {
  if (cfg.manifests && cfg.kubeconfig) throw new ConfigError('--manifests and --kubeconfig are exclusive: pick one source');
  cfg.inCluster = !cfg.manifests && !cfg.kubeconfig && !!env.KUBERNETES_SERVICE_HOST;
  if (!cfg.manifests && !cfg.kubeconfig && !cfg.inCluster) {
    throw new ConfigError('no source: give --manifests DIR or --kubeconfig FILE (in a pod, the in-cluster API is used)');
  }
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(cfg.nodeName)) {
    throw new ConfigError(`--node-name: "${cfg.nodeName}" is not a valid node name (lowercase letters, digits, '-', '.')`);
  }
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(cfg.namespace)) {
    throw new ConfigError(`--namespace: "${cfg.namespace}" is not a valid namespace name (at most 63 lowercase letters, digits and '-')`);
  }
  if (!cfg.pinDir) cfg.pinDir = `/sys/fs/bpf/pharos/${cfg.nodeName}`;
  if (!cfg.procSysNet.startsWith('/')) throw new ConfigError(`--proc-sys-net: "${cfg.procSysNet}" is not an absolute path`);
  const seen = new Set<string>();
  for (const ifname of cfg.interfaces) {
    if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(ifname)) throw new ConfigError(`--interfaces: "${ifname}" is not a valid interface name`);
    if (seen.has(ifname)) throw new ConfigError(`--interfaces: "${ifname}" is listed twice`);
    seen.add(ifname);
  }
  for (const a of cfg.snatAddresses) {
    try {
      parseSnatOverride(a);
    } catch (err) {
      throw new ConfigError(`--snat-addresses: ${(err as Error).message}`);
    }
  }
  if (cfg.socketLbCgroup && !cfg.socketLbCgroup.startsWith('/')) throw new ConfigError(`--socket-lb-cgroup: "${cfg.socketLbCgroup}" must be an absolute path`);
  if (!parseHttpAddress(cfg.http)) throw new ConfigError(`--http: "${cfg.http}" is not HOST:PORT`);
  if (!Number.isInteger(cfg.hashSeed) || cfg.hashSeed > 0xffffffff) throw new ConfigError('--hash-seed: must be an integer 0..4294967295');
  if (cfg.maglevTableSize !== 0 && !isPrime(cfg.maglevTableSize)) throw new ConfigError(`--maglev-table-size: ${cfg.maglevTableSize} is not a prime (0: chosen by backend count)`);
  if (!isPrime(cfg.maglevMaxTableSize)) throw new ConfigError(`--maglev-max-table-size: ${cfg.maglevMaxTableSize} is not a prime`);
  // Bounds: a Maglev table costs 4 bytes a slot per backend set; a flow costs a conntrack and a reverse entry.
  if (cfg.maglevTableSize > MAX_MAGLEV_TABLE) throw new ConfigError(`--maglev-table-size: ${cfg.maglevTableSize} is above the limit ${MAX_MAGLEV_TABLE}`);
  if (cfg.maglevMaxTableSize > MAX_MAGLEV_TABLE || cfg.maglevMaxTableSize < MAGLEV_SIZES[0]!) {
    throw new ConfigError(`--maglev-max-table-size: ${cfg.maglevMaxTableSize} must be from ${MAGLEV_SIZES[0]} to ${MAX_MAGLEV_TABLE}`);
  }
  for (const [key, [min, max]] of Object.entries(MAP_SIZE_BOUNDS) as Array<[keyof typeof MAP_SIZE_BOUNDS, readonly [number, number]]>) {
    const v = cfg[key];
    const flag = FLAGS.find((f) => f.key === key)!.flag;
    if (!Number.isInteger(v) || v < min || v > max) throw new ConfigError(`--${flag}: ${v} must be an integer from ${min} to ${max}`);
  }
  for (const [flag, v] of [['manifests-max-file-bytes', cfg.manifestsMaxFileBytes], ['manifests-max-bytes', cfg.manifestsMaxBytes]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 2 ** 31) throw new ConfigError(`--${flag}: ${v} must be an integer from 1 to ${2 ** 31}`);
  }
  if (!Number.isInteger(cfg.conntrackSize) || cfg.conntrackSize < 1024 || cfg.conntrackSize > MAX_CONNTRACK) {
    throw new ConfigError(`--conntrack-size: ${cfg.conntrackSize} must be an integer from 1024 to ${MAX_CONNTRACK}`);
  }
  if (!(cfg.bgpDrainWithdrawSeconds >= 0 && cfg.bgpDrainWithdrawSeconds <= 3600)) {
    throw new ConfigError(`--bgp-drain-withdraw-delay: ${cfg.bgpDrainWithdrawSeconds} must be from 0 to 3600 seconds`);
  }
  if (!Number.isInteger(cfg.l2PeerPort) || cfg.l2PeerPort < 0 || cfg.l2PeerPort > 65535) {
    throw new ConfigError(`--l2-peer-port: ${cfg.l2PeerPort} must be a UDP port (0 turns the heartbeats off)`);
  }
  if (!Number.isInteger(cfg.l2AnnounceRate) || cfg.l2AnnounceRate < 10 || cfg.l2AnnounceRate > 1_000_000) {
    throw new ConfigError(`--l2-announce-rate: ${cfg.l2AnnounceRate} must be an integer from 10 to 1000000 frames per second`);
  }
  if (cfg.l2NodeRenewMs >= cfg.l2NodeLeaseSeconds * 1000) {
    throw new ConfigError('--l2-node-renew-ms must be shorter than --l2-node-lease');
  }
  if (cfg.l2ServiceRenewSeconds >= cfg.l2ServiceLeaseSeconds) {
    throw new ConfigError('--l2-lease-renew must be shorter than --l2-lease-duration');
  }
  return cfg;
}

export function parseHttpAddress(s: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}

function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

export function agentHelp(): string {
  const d = defaults('<hostname>') as unknown as Record<string, unknown>;
  d.pinDir = '/sys/fs/bpf/pharos/<node-name>';
  d.socketLbCgroup = '<cgroup v2 mount>';
  const rows = FLAGS.map((f) => {
    const def = d[f.key];
    const shown = def === undefined || (Array.isArray(def) && def.length === 0) ? '' : ` (default: ${Array.isArray(def) ? def.join(f.kind === 'range' ? '-' : ',') : String(def)})`;
    const choices = f.choices ? ` [${f.choices.join('|')}]` : '';
    return `  --${f.flag.padEnd(20)} ${f.help}${choices}${shown}\n  ${''.padEnd(22)} env ${f.env}`;
  });
  return ['Usage: pharos agent [flags]', '', 'Sources: --manifests DIR | --kubeconfig FILE | in-cluster (inside a pod)', '', 'Flags:', ...rows].join('\n');
}
