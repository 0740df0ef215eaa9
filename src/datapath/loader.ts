/**
 * Loads bpf/lb.bpf.c: open, set .rodata config and map sizes, pin every
 * stateful map under the pin directory (re-adopting maps already pinned
 * there, so conntrack and counters survive an agent restart or a program
 * upgrade), load, and attach XDP / tc egress to interfaces.
 *
 * Hitless restart = `loadDatapath` again with the same pin dir, then
 * `attachXdp` on the same interfaces: the kernel swaps the program
 * atomically (no detach in between) and the new program sees the old maps.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { basename, join } from 'node:path';
import { ensureBpfObject } from './bpf-build.js';
import { BpfError, type BpfMap, type BpfObject, type BpfProgram, type MapType, type NativeAddon, type XdpMode } from '../native/libbpf.js';
import { DECAP_MAP } from './decap.js';
import { encodeIfMac, encodeRodata, HOOK_BUILD, MAP, MAX_ENTRIES, PROG, RODATA_DEFAULTS, SIZE, u32Key, type IngressHook, type MapRole, type RodataName } from './abi.js';
import { chooseXdpMode, interfaceFacts, type AttachMode } from './xdp-mode.js';

export interface DatapathSizes {
  /** Frontends ({VIP, port, proto}); also per-frontend counters, echo VIPs and Maglev tables (at most one per frontend). */
  frontends: number;
  /** Backends (address|port); also per-backend counters and cached next hops. */
  backends: number;
  /** Conntrack entries (and as many reverse-NAT entries). */
  conntrack: number;
  /** Responder (address, interface) entries. */
  responder: number;
  /** loadBalancerSourceRanges prefixes, over all frontends. */
  sourceRanges: number;
  /** Remembered client → backend choices (sessionAffinity ClientIP); LRU. */
  affinity: number;
  /** {frontend, backend} pairs of affinity frontends (ph_fe_members). */
  members: number;
}

/**
 * Sized for 10,000 LoadBalancer services of 8 backends on one node: each
 * has a VIP frontend and NodePort frontends on the node's addresses (about
 * 30,000 frontends), 80,000 backends, and one responder entry per address
 * and announcing interface. Memory in the kernel, with N possible CPUs:
 * frontends 24 B + 32·N B (counters) each, backends 48 B + 16·N B each.
 * These are the max_entries the C declares (MAX_ENTRIES in abi.ts).
 */
export const DEFAULT_SIZES: DatapathSizes = {
  frontends: MAX_ENTRIES.frontends, backends: MAX_ENTRIES.backends, conntrack: MAX_ENTRIES.conntrack, responder: MAX_ENTRIES.responder,
  sourceRanges: MAX_ENTRIES.sourceRanges, affinity: MAX_ENTRIES.affinity, members: MAX_ENTRIES.members,
};

export interface DatapathConfig {
  /** Flow-hash seed; must be equal on every LB node of a cluster. */
  hashSeed: number;
  /** ARP/NDP answers stop when the liveness stamp is older. */
  livenessMaxMs: number;
  tcpEstablishedTimeoutS: number;
  tcpTransientTimeoutS: number;
  udpTimeoutS: number;
  /** Age after which a flow's cached next hop is looked up again. */
  fibRefreshMs: number;
  /** SNAT to the node address (default) or DNAT only. */
  snat: boolean;
}

const nsToMs = (ns: bigint): number => Number(ns / 1_000_000n);
const nsToS = (ns: bigint): number => Number(ns / 1_000_000_000n);

/** bpf/lib/config.h's initial values (RODATA_DEFAULTS) in the loader's units. */
export const DEFAULT_CONFIG: DatapathConfig = {
  hashSeed: RODATA_DEFAULTS.cfg_hash_seed,
  livenessMaxMs: nsToMs(RODATA_DEFAULTS.cfg_liveness_max_ns),
  tcpEstablishedTimeoutS: nsToS(RODATA_DEFAULTS.cfg_tcp_est_ns),
  tcpTransientTimeoutS: nsToS(RODATA_DEFAULTS.cfg_tcp_transient_ns),
  udpTimeoutS: nsToS(RODATA_DEFAULTS.cfg_udp_ns),
  fibRefreshMs: nsToMs(RODATA_DEFAULTS.cfg_fib_refresh_ns),
  snat: RODATA_DEFAULTS.cfg_snat === 1,
};

export interface LoadOptions {
  addon: NativeAddon;
  /** Where maps are pinned; must be on a bpffs. Default for the agent: /sys/fs/bpf/pharos/<node-name>. */
  pinDir: string;
  /** Compiled object; default: build/bpf/lb.o (lb-tc.o for hook 'tc'), compiled if stale. */
  objectPath?: string;
  /**
   * Which build of the data path: XDP (default) or the same logic at tc
   * ingress (bpf/lib/ctx.h). The two cannot share a pin dir: the tail-call
   * array holds programs of one type.
   */
  hook?: IngressHook;
  sizes?: Partial<DatapathSizes>;
  config?: Partial<DatapathConfig>;
}

export type DatapathMaps = Record<MapRole, BpfMap>;

/**
 * Maps pinned (and re-adopted on restart): all but the stateless per-CPU
 * scratch. The tail-call array is pinned too: the kernel empties a prog
 * array when its last user reference goes, which would stop new flows while
 * the agent is down.
 */
export const PINNED: readonly MapRole[] = (Object.keys(MAP) as MapRole[]).filter((r) => r !== 'scratch');

/**
 * Where a map of a build is pinned. Both builds share every map but the
 * tail-call array: a prog array holds programs of one type, so the tc
 * build's is pinned beside the XDP build's as ph_progs_tc.
 */
export function pinPathOf(pinDir: string, role: MapRole, hook: IngressHook = 'xdp'): string {
  return join(pinDir, role === 'progs' && hook === 'tc' ? `${MAP.progs}_tc` : MAP[role]);
}

export class DatapathLoadError extends Error {}

/** Expected shape of each pinned map, to refuse a mismatched pin with a clear message before load. */
export function expectedMaps(sizes: DatapathSizes): Record<MapRole, { type: MapType; keySize: number; valueSize: number; maxEntries: number }> {
  return {
    frontends: { type: 'hash', keySize: SIZE.feKey, valueSize: SIZE.feValue, maxEntries: sizes.frontends },
    backends: { type: 'array', keySize: 4, valueSize: SIZE.backend, maxEntries: sizes.backends },
    backendNextHop: { type: 'array', keySize: 4, valueSize: SIZE.beNextHop, maxEntries: sizes.backends },
    maglev: { type: 'array_of_maps', keySize: 4, valueSize: 4, maxEntries: sizes.frontends },
    liveness: { type: 'array', keySize: 4, valueSize: SIZE.liveness, maxEntries: 1 },
    conntrack: { type: 'lru_hash', keySize: SIZE.flow, valueSize: SIZE.ct, maxEntries: sizes.conntrack },
    reverseNat: { type: 'lru_hash', keySize: SIZE.flow, valueSize: SIZE.rev, maxEntries: sizes.conntrack },
    runtime: { type: 'array', keySize: 4, valueSize: SIZE.runtime, maxEntries: 1 },
    responder: { type: 'hash', keySize: SIZE.respKey, valueSize: SIZE.respValue, maxEntries: sizes.responder },
    progs: { type: 'prog_array', keySize: 4, valueSize: 4, maxEntries: MAX_ENTRIES.progs },
    ifMacs: { type: 'hash', keySize: 4, valueSize: SIZE.ifMac, maxEntries: MAX_ENTRIES.ifMacs },
    ifSnat: { type: 'hash', keySize: 4, valueSize: SIZE.ifSnat, maxEntries: MAX_ENTRIES.ifSnat },
    stats: { type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: -1 },
    frontendStats: { type: 'percpu_array', keySize: 4, valueSize: SIZE.traffic, maxEntries: sizes.frontends },
    backendStats: { type: 'percpu_array', keySize: 4, valueSize: SIZE.traffic, maxEntries: sizes.backends },
    scratch: { type: 'percpu_array', keySize: 4, valueSize: SIZE.ct + SIZE.rev + SIZE.flow + SIZE.affKey + SIZE.affValue, maxEntries: 1 },
    sourceRanges: { type: 'lpm_trie', keySize: SIZE.srcKey, valueSize: 4, maxEntries: sizes.sourceRanges },
    affinity: { type: 'lru_hash', keySize: SIZE.affKey, valueSize: SIZE.affValue, maxEntries: sizes.affinity },
    members: { type: 'hash', keySize: 8, valueSize: 4, maxEntries: sizes.members },
    vips: { type: 'hash', keySize: SIZE.vipKey, valueSize: 4, maxEntries: sizes.frontends },
    l2Foreign: { type: 'lru_hash', keySize: SIZE.respKey, valueSize: SIZE.l2Foreign, maxEntries: MAX_ENTRIES.l2Foreign },
  };
}

export interface AttachOptions {
  /** Network namespace path (/run/netns/NAME) of the interface. */
  netns?: string;
  mode?: XdpMode;
  /** Where the node's net sysctls are writable (default /proc/sys/net; a container sees that read-only, see --proc-sys-net). */
  procSysNet?: string;
}

export class LoadedDatapath {
  constructor(
    readonly object: BpfObject,
    readonly maps: DatapathMaps,
    /** The entry program: XDP, or tc ingress when `hook` is 'tc'. */
    readonly xdp: BpfProgram,
    readonly tcEgress: BpfProgram,
    readonly config: DatapathConfig,
    readonly sizes: DatapathSizes,
    readonly pinDir: string,
    /** True when existing pinned maps were taken over (restart), false on a fresh pin dir. */
    readonly adopted: boolean,
    private readonly addon: NativeAddon,
    readonly hook: IngressHook = 'xdp',
  ) {}

  /**
   * The tc build's entry program at tc ingress (clsact, direct action) on
   * an interface; idempotent (replaces). The interface's MAC is recorded as
   * for XDP.
   */
  attachTcIngress(ifname: string, opts: { netns?: string; procSysNet?: string } = {}): number {
    if (this.hook !== 'tc') throw new DatapathLoadError('attachTcIngress needs the data path loaded with hook \'tc\'');
    const ifindex = this.addon.ifIndex(ifname, opts.netns);
    this.addon.tcAttach(ifindex, 'ingress', this.xdp.fd, { handle: 1, priority: 1, ...(opts.netns ? { netns: opts.netns } : {}) });
    if (!opts.netns && this.config.snat) enableAcceptLocal(ifname, opts.procSysNet);
    this.maps.ifMacs.update(u32Key(ifindex), encodeIfMac(interfaceMac(ifname, opts.netns)));
    return ifindex;
  }

  /**
   * Attach (or atomically replace) the XDP program on an interface, in
   * `mode` ('auto': native, generic where the driver refuses). Without
   * `mode`: native (the labs that measure native XDP). The per-interface
   * choice of `--xdp-mode auto`, tc included, is attachIngress().
   */
  attachXdp(ifname: string, opts: AttachOptions = {}): { ifindex: number; mode: 'native' | 'generic'; reason: string } {
    if (this.hook !== 'xdp') throw new DatapathLoadError('attachXdp needs the XDP build of the data path');
    const ifindex = this.addon.ifIndex(ifname, opts.netns);
    const requested = opts.mode ?? 'native';
    const mode = this.addon.xdpAttach(ifindex, this.xdp.fd, requested, opts.netns);
    if (!opts.netns && this.config.snat) enableAcceptLocal(ifname, opts.procSysNet);
    this.maps.ifMacs.update(u32Key(ifindex), encodeIfMac(interfaceMac(ifname, opts.netns)));
    return { ifindex, mode, reason: `--xdp-mode ${requested}` };
  }

  /** Remove this build's tc ingress filter (handle 1, priority 1) from an interface, if there is one. */
  detachTcIngress(ifname: string, opts: { netns?: string } = {}): void {
    const ifindex = this.addon.ifIndex(ifname, opts.netns);
    try {
      this.addon.tcDetach(ifindex, 'ingress', { handle: 1, priority: 1, ...(opts.netns ? { netns: opts.netns } : {}) });
    } catch (err) {
      if (!(err instanceof BpfError && (err.code === 'ENOENT' || err.code === 'EINVAL'))) throw err;
    }
  }

  /** tc egress (clsact) reverse NAT for replies of backends on this node. Idempotent (replaces). */
  attachTcEgress(ifname: string, opts: { netns?: string } = {}): number {
    const ifindex = this.addon.ifIndex(ifname, opts.netns);
    this.addon.tcAttach(ifindex, 'egress', this.tcEgress.fd, { handle: 1, priority: 1, ...(opts.netns ? { netns: opts.netns } : {}) });
    return ifindex;
  }

  /** Remove whatever XDP program is on the interface (the tc build took its place). */
  detachXdpOnly(ifname: string, opts: { netns?: string } = {}): void {
    this.addon.xdpDetach(this.addon.ifIndex(ifname, opts.netns), opts.netns);
  }

  detach(ifname: string, opts: { netns?: string } = {}): void {
    const ifindex = this.addon.ifIndex(ifname, opts.netns);
    this.addon.xdpDetach(ifindex, opts.netns);
    this.maps.ifMacs.delete(u32Key(ifindex));
    for (const direction of ['egress', 'ingress'] as const) {
      try {
        this.addon.tcDetach(ifindex, direction, { handle: 1, priority: 1, ...(opts.netns ? { netns: opts.netns } : {}) });
      } catch (err) {
        if (!(err instanceof BpfError && (err.code === 'ENOENT' || err.code === 'EINVAL'))) throw err;
      }
    }
  }

  /** Close our handles. Pinned maps and attached programs stay in the kernel (the data path keeps forwarding). */
  close(): void {
    for (const m of Object.values(this.maps)) m.close();
    this.object.close();
  }
}

/** The loaded builds of the data path (the ones the interfaces take; both share the maps). */
export interface IngressBuilds {
  xdp?: LoadedDatapath;
  tc?: LoadedDatapath;
}

export interface IngressAttachment {
  ifindex: number;
  mode: 'native' | 'generic' | 'tc';
  reason: string;
}

/**
 * Put the data path's entry on an interface as `--xdp-mode` says: 'auto'
 * chooses per interface (src/datapath/xdp-mode.ts: native XDP on a device,
 * tc ingress on a virtual one), and `reason` says why. Whatever the other
 * hook held before (an earlier agent's choice) is removed once the new one
 * is in place, so no packet meets both and none meets neither.
 */
export function attachIngress(builds: IngressBuilds, ifname: string, opts: Omit<AttachOptions, 'mode'> & { mode: AttachMode }): IngressAttachment {
  // sysfs shows this process's namespace only: an interface in another one gets native-then-generic.
  const choice = opts.mode === 'auto' && !opts.netns ? chooseXdpMode('auto', interfaceFacts(ifname)) : { mode: opts.mode, reason: `--xdp-mode ${opts.mode}` };
  const netns = opts.netns ? { netns: opts.netns } : {};
  if (choice.mode === 'tc') {
    if (!builds.tc) throw new DatapathLoadError(`${ifname}: the tc build of the data path is not loaded`);
    const ifindex = builds.tc.attachTcIngress(ifname, { ...netns, ...(opts.procSysNet ? { procSysNet: opts.procSysNet } : {}) });
    builds.tc.detachXdpOnly(ifname, netns);
    return { ifindex, mode: 'tc', reason: choice.reason };
  }
  if (!builds.xdp) throw new DatapathLoadError(`${ifname}: the XDP build of the data path is not loaded`);
  const r = builds.xdp.attachXdp(ifname, { ...opts, mode: choice.mode });
  builds.xdp.detachTcIngress(ifname, netns);
  const reason = choice.mode === 'auto' && r.mode === 'generic' ? `${choice.reason} refused by the driver: generic XDP` : choice.reason;
  return { ifindex: r.ifindex, mode: r.mode, reason };
}

/** Which hook `--xdp-mode` puts on each interface (the tc build is loaded only when one needs it). */
export function ingressHookOf(mode: AttachMode, ifname: string): IngressHook {
  const chosen = mode === 'auto' ? chooseXdpMode('auto', interfaceFacts(ifname)).mode : mode;
  return chosen === 'tc' ? 'tc' : 'xdp';
}

/**
 * The first packet of a flow whose next hop is not resolved yet leaves XDP
 * already SNATed to the node's own address (XDP_PASS, the kernel forwards it
 * and resolves the neighbour). IPv4 drops packets that arrive with a local
 * source address unless accept_local is set on the interface: seen in the
 * lab, the first SYN and every later one were dropped until something else
 * resolved the backend's neighbour. Interfaces in other namespaces (tests)
 * set it themselves.
 */
/** The interface's MAC, from sysfs, or through `ip -n` for an interface in a named namespace (/run/netns/NAME). */
export function interfaceMac(ifname: string, netns?: string): string {
  try {
    if (!netns) return readFileSync(`/sys/class/net/${ifname}/address`, 'utf8').trim();
    const out = execFileSync('ip', ['-n', basename(netns), '-j', 'link', 'show', 'dev', ifname], { encoding: 'utf8' });
    const mac = (JSON.parse(out) as Array<{ address?: string }>)[0]?.address;
    if (!mac) throw new Error('no link-layer address');
    return mac;
  } catch (err) {
    throw new DatapathLoadError(`cannot read the MAC address of ${ifname}${netns ? ` in ${netns}` : ''}: ${(err as Error).message}`);
  }
}

export function enableAcceptLocal(ifname: string, procSysNet = '/proc/sys/net'): void {
  const path = `${procSysNet}/ipv4/conf/${ifname}/accept_local`;
  try {
    if (readFileSync(path, 'utf8').trim() !== '1') writeFileSync(path, '1');
  } catch (err) {
    throw new DatapathLoadError(`cannot set ${path} = 1 (needed so the kernel forwards SNATed first packets): ${(err as Error).message}`);
  }
}

function resolveConfig(c: Partial<DatapathConfig> | undefined): DatapathConfig {
  return { ...DEFAULT_CONFIG, ...c };
}

export function rodataValues(cfg: DatapathConfig): Record<RodataName, number | bigint> {
  const ns = (s: number): bigint => BigInt(Math.round(s * 1e9));
  return {
    cfg_hash_seed: cfg.hashSeed >>> 0,
    cfg_liveness_max_ns: ns(cfg.livenessMaxMs / 1000),
    cfg_tcp_est_ns: ns(cfg.tcpEstablishedTimeoutS),
    cfg_tcp_transient_ns: ns(cfg.tcpTransientTimeoutS),
    cfg_udp_ns: ns(cfg.udpTimeoutS),
    cfg_fib_refresh_ns: ns(cfg.fibRefreshMs / 1000),
    cfg_snat: cfg.snat ? 1 : 0,
  };
}

/**
 * Open, configure and load the data path, pinning (or re-adopting) its maps
 * under `pinDir`. Does not attach anything.
 */
export function loadDatapath(opts: LoadOptions): LoadedDatapath {
  const prepared = prepareDatapath(opts);
  try {
    prepared.object.load();
  } catch (err) {
    throw loadFailure(prepared, err);
  }
  return finishDatapath(prepared);
}

/** loadDatapath with the BPF object loaded (the verifier's seconds) on a worker thread: the agent's event loop keeps serving. */
export async function loadDatapathAsync(opts: LoadOptions): Promise<LoadedDatapath> {
  const prepared = prepareDatapath(opts);
  try {
    await prepared.object.loadAsync();
  } catch (err) {
    throw loadFailure(prepared, err);
  }
  return finishDatapath(prepared);
}

interface PreparedDatapath {
  object: BpfObject;
  objectPath: string;
  opts: LoadOptions;
  sizes: DatapathSizes;
  config: DatapathConfig;
  adopted: boolean;
}

function loadFailure(p: PreparedDatapath, err: unknown): unknown {
  p.object.close();
  return err instanceof BpfError ? new DatapathLoadError(`loading ${p.objectPath} with pins in ${p.opts.pinDir}: ${err.message}`) : err;
}

/** Checks the pins against this configuration and opens and configures the object (not loaded). */
function prepareDatapath(opts: LoadOptions): PreparedDatapath {
  const { addon, pinDir } = opts;
  const sizes = { ...DEFAULT_SIZES, ...opts.sizes };
  const config = resolveConfig(opts.config);
  const objectPath = opts.objectPath ?? ensureBpfObject(HOOK_BUILD[opts.hook ?? 'xdp'].object);
  mkdirSync(pinDir, { recursive: true });

  const expected = expectedMaps(sizes);
  let adopted = false;
  for (const role of PINNED) {
    const path = pinPathOf(pinDir, role, opts.hook);
    if (!existsSync(path)) continue;
    adopted = true;
    const pinned = addon.openPinnedMap(path);
    try {
      const want = expected[role];
      const bad = pinned.type !== want.type || pinned.keySize !== want.keySize || pinned.valueSize !== want.valueSize ||
        (want.maxEntries >= 0 && pinned.maxEntries !== want.maxEntries);
      if (bad) {
        throw new DatapathLoadError(`pinned map ${path} (${pinned.type}, key ${pinned.keySize}, value ${pinned.valueSize}, ` +
          `${pinned.maxEntries} entries) does not match this configuration (${want.type}, key ${want.keySize}, value ${want.valueSize}, ` +
          `${want.maxEntries} entries); keep the previous sizes or remove the pin directory (this drops established flows)`);
      }
    } finally {
      pinned.close();
    }
  }

  const object = addon.openObject(objectPath);
  const prepared = { object, objectPath, opts, sizes, config, adopted };
  try {
    for (const [name, value] of Object.entries(rodataValues(config)) as Array<[RodataName, number | bigint]>) {
      object.setRodata(name, encodeRodata(name, value));
    }
    object.setMaxEntries(MAP.frontends, sizes.frontends);
    object.setMaxEntries(MAP.maglev, sizes.frontends);
    object.setMaxEntries(MAP.frontendStats, sizes.frontends);
    object.setMaxEntries(MAP.backends, sizes.backends);
    object.setMaxEntries(MAP.backendStats, sizes.backends);
    object.setMaxEntries(MAP.backendNextHop, sizes.backends);
    object.setMaxEntries(MAP.conntrack, sizes.conntrack);
    object.setMaxEntries(MAP.reverseNat, sizes.conntrack);
    object.setMaxEntries(MAP.responder, sizes.responder);
    object.setMaxEntries(MAP.sourceRanges, sizes.sourceRanges);
    object.setMaxEntries(MAP.affinity, sizes.affinity);
    object.setMaxEntries(MAP.members, sizes.members);
    object.setMaxEntries(MAP.vips, sizes.frontends);
    for (const role of PINNED) object.setPinPath(MAP[role], pinPathOf(pinDir, role, opts.hook));
  } catch (err) {
    throw loadFailure(prepared, err);
  }
  return prepared;
}

/** After the load: the maps, and this object's programs into the tail-call slots. */
function finishDatapath(p: PreparedDatapath): LoadedDatapath {
  const { object } = p;
  try {
    const maps = Object.fromEntries((Object.keys(MAP) as MapRole[]).map((r) => [r, object.map(MAP[r])])) as DatapathMaps;
    // This object's programs into the (possibly re-adopted) tail-call slots: from here on the
    // program still attached from before also takes new flows through this version.
    const build = HOOK_BUILD[p.opts.hook ?? 'xdp'];
    build.tailCalls.forEach((name, slot) => maps.progs.update(u32Key(slot), u32Key(object.program(name).fd)));
    return new LoadedDatapath(object, maps, object.program(build.entry), object.program(PROG.tcEgress), p.config, p.sizes, p.opts.pinDir, p.adopted, p.opts.addon, p.opts.hook ?? 'xdp');
  } catch (err) {
    throw loadFailure(p, err);
  }
}

/**
 * Kernel memory each map holds (the `memlock` the kernel reports in the
 * map fd's fdinfo), charged to the agent's memory cgroup. Per-CPU maps grow
 * with the number of possible CPUs: on a 64-CPU node the per-backend
 * counters of 131,072 backends alone are 128 MiB.
 */
export function mapMemory(maps: Partial<Record<MapRole, BpfMap>>): Array<{ map: string; bytes: number }> {
  const out: Array<{ map: string; bytes: number }> = [];
  for (const m of Object.values(maps)) {
    if (!m || m.fd < 0) continue;
    try {
      const info = readFileSync(`/proc/self/fdinfo/${m.fd}`, 'utf8');
      const memlock = /^memlock:\s+(\d+)/m.exec(info);
      if (memlock) out.push({ map: m.name, bytes: Number(memlock[1]) });
    } catch {
      // fdinfo unreadable: the map is left out.
    }
  }
  return out.sort((a, b) => b.bytes - a.bytes);
}

/** Remove every pinned map of ours under pinDir (drops established flows; for tests and `pharos bpf reset`). */
export function removePins(pinDir: string): void {
  if (!existsSync(pinDir)) return;
  const ours = new Set<string>([...Object.values(MAP), pinPathOf('', 'progs', 'tc'), ...Object.values(DECAP_MAP)]);
  for (const f of readdirSync(pinDir)) if (ours.has(f)) rmSync(join(pinDir, f));
  if (readdirSync(pinDir).length === 0) rmSync(pinDir, { recursive: true });
}
