/**
 * Socket-level load balancing for node-local clients: loads bpf/sock.bpf.c
 * next to the XDP data path and attaches its programs to a cgroup v2
 * (connect, sendmsg, recvmsg and getpeername, v4 and v6).
 *
 * The programs read the XDP object's frontends, backends, Maglev tables and
 * affinity members from the same pins (a frontend written by DatapathSync
 * is live for sockets at once), and keep their own reverse-translation,
 * affinity and counter maps pinned beside them. Attachments are BPF links
 * pinned in the pin directory, so they survive an agent that dies: the next
 * agent swaps its programs in with bpf_link_update (no gap). A clean stop
 * and --no-socket-lb take them off (`detachSocketLb`).
 *
 * Only sockets of one network namespace are translated unless told
 * otherwise (cfg_sock_netns in bpf/sock.bpf.c): a cgroup spans namespaces.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBpfObject } from './bpf-build.js';
import { BpfError, type BpfMap, type BpfObject, type CgroupAttachType, type MapType, type NativeAddon } from '../native/libbpf.js';
import { encodeRodata, MAP, SIZE, SOCK_MAP, SOCK_SIZE, SOCK_STAT_REASONS, type MapRole, type SockMapRole, type SockStatReason } from './abi.js';
import type { LoadedDatapath } from './loader.js';
import type { Logger } from '../model/log.js';

/** Hook → program in bpf/sock.bpf.c. */
export const SOCK_HOOKS: ReadonlyArray<{ hook: CgroupAttachType; program: string }> = [
  { hook: 'connect4', program: 'pharos_connect4' },
  { hook: 'connect6', program: 'pharos_connect6' },
  { hook: 'sendmsg4', program: 'pharos_sendmsg4' },
  { hook: 'sendmsg6', program: 'pharos_sendmsg6' },
  { hook: 'recvmsg4', program: 'pharos_recvmsg4' },
  { hook: 'recvmsg6', program: 'pharos_recvmsg6' },
  { hook: 'getpeername4', program: 'pharos_getpeername4' },
  { hook: 'getpeername6', program: 'pharos_getpeername6' },
];

/** The XDP object's maps the socket programs read (opened from their pins). */
export const SOCK_SHARED: readonly MapRole[] = ['frontends', 'backends', 'maglev', 'members'];

export interface SocketLbSizes {
  /** Reverse entries (one per translated socket and backend); LRU. */
  reverse: number;
  /** Remembered network namespace → backend choices; LRU. */
  affinity: number;
}

export const DEFAULT_SOCKET_LB_SIZES: SocketLbSizes = { reverse: 65536, affinity: 16384 };

export class SocketLbError extends Error {}

/** Where the link of `hook` is pinned. */
export function linkPinPath(pinDir: string, hook: CgroupAttachType): string {
  return join(pinDir, `sock_link_${hook}`);
}

/**
 * The first cgroup v2 mount point in a /proc/self/mountinfo text, or
 * undefined. Hybrid hosts mount it at /sys/fs/cgroup/unified, unified ones
 * at /sys/fs/cgroup. Fields: id parent major:minor root mountpoint options
 * [optional...] - fstype source superoptions; the mount point escapes
 * space, tab, newline and backslash as octal.
 */
export function cgroup2Mount(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fields = line.slice(0, sep).split(' ');
    const fstype = line.slice(sep + 3).split(' ')[0];
    // Only a mount of the hierarchy's root (field 4 "/") sees every process.
    if (fstype !== 'cgroup2' || fields.length < 5 || fields[3] !== '/') continue;
    return fields[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return undefined;
}

/** The cgroup v2 root of this host as this process sees it, from /proc/self/mountinfo. */
export function findCgroup2Mount(): string | undefined {
  try {
    return cgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Why this process is not in the host's network namespace, or undefined
 * when it is (as far as can be told): it is in a namespace named under
 * /run/netns (`ip netns exec`: the lab, `pharos demo`, tests), or not in
 * PID 1's (checked where /proc/1 is readable). The default cgroup is the
 * whole host, so such an agent must name a cgroup to get the hooks.
 */
export function outsideHostNetworkNamespace(): string | undefined {
  let self: { dev: number; ino: number };
  try {
    self = statSync('/proc/self/ns/net');
  } catch {
    return undefined;
  }
  try {
    for (const name of readdirSync('/run/netns')) {
      const st = statSync(join('/run/netns', name));
      if (st.dev === self.dev && st.ino === self.ino) return `it runs in network namespace "${name}" (ip netns)`;
    }
  } catch {
    // no /run/netns: no named namespaces
  }
  try {
    if (readlinkSync('/proc/self/ns/net') !== readlinkSync('/proc/1/ns/net')) return 'it runs in another network namespace than PID 1';
  } catch {
    // /proc/1 not readable (a PID namespace or a restricted /proc): cannot tell, assume the host's
  }
  return undefined;
}

type Expected = { type: MapType; keySize: number; valueSize: number; maxEntries: number };

function ownMaps(sizes: SocketLbSizes): Record<SockMapRole, Expected> {
  return {
    reverse: { type: 'lru_hash', keySize: SOCK_SIZE.revKey, valueSize: SOCK_SIZE.revValue, maxEntries: sizes.reverse },
    affinity: { type: 'lru_hash', keySize: SOCK_SIZE.affKey, valueSize: SIZE.affValue, maxEntries: sizes.affinity },
    stats: { type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: SOCK_STAT_REASONS.length },
  };
}

export type SocketLbMaps = Record<SockMapRole, BpfMap>;

export interface SocketLbAttachment {
  cgroup: string;
  hooks: Array<{ hook: CgroupAttachType; linkId: number; replaced: boolean }>;
}

export class LoadedSocketLb {
  constructor(
    readonly object: BpfObject,
    readonly maps: SocketLbMaps,
    readonly pinDir: string,
    private readonly addon: NativeAddon,
  ) {}

  /**
   * Attach every hook to the cgroup (or swap the program of the links a
   * previous agent pinned, with no gap). Every process in the cgroup and
   * its descendants is then balanced: never the root cgroup in a test.
   */
  attach(cgroupPath: string): SocketLbAttachment {
    const hooks: SocketLbAttachment['hooks'] = [];
    for (const { hook, program } of SOCK_HOOKS) {
      const prog = this.object.program(program);
      try {
        hooks.push({ hook, ...this.addon.cgroupLinkAttach(cgroupPath, prog.fd, hook, linkPinPath(this.pinDir, hook)) });
      } catch (err) {
        if (err instanceof BpfError) throw new SocketLbError(`socket LB: attaching ${program} to ${cgroupPath}: ${err.message}`);
        throw err;
      }
    }
    return { cgroup: cgroupPath, hooks };
  }

  /** Take every hook off (node-local access to services stops). */
  detach(): number {
    return detachSocketLb(this.addon, this.pinDir);
  }

  /** Counters by reason, summed over CPUs. */
  counters(): Record<SockStatReason, bigint> {
    return readSockCounters(this.maps.stats);
  }

  /** Close our handles; pinned links and maps stay. */
  close(): void {
    for (const m of Object.values(this.maps)) m.close();
    this.object.close();
  }
}

/** Detach and unpin every socket-LB link under pinDir; returns how many there were. */
export function detachSocketLb(addon: NativeAddon, pinDir: string): number {
  let n = 0;
  for (const { hook } of SOCK_HOOKS) if (addon.cgroupLinkDetach(linkPinPath(pinDir, hook))) n++;
  return n;
}

/** Detach, then remove the socket LB's own pinned maps (for tests and resets). */
export function removeSocketLbPins(addon: NativeAddon, pinDir: string): void {
  if (!existsSync(pinDir)) return;
  detachSocketLb(addon, pinDir);
  const ours = new Set<string>(Object.values(SOCK_MAP));
  for (const f of readdirSync(pinDir)) if (ours.has(f)) rmSync(join(pinDir, f));
}

export function readSockCounters(stats: BpfMap): Record<SockStatReason, bigint> {
  const out = Object.fromEntries(SOCK_STAT_REASONS.map((r) => [r, 0n])) as Record<SockStatReason, bigint>;
  SOCK_STAT_REASONS.forEach((reason, i) => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(i);
    const v = stats.lookup(key);
    if (v) for (const cpu of stats.splitPerCpu(v)) out[reason] += cpu.readBigUInt64LE(0);
  });
  return out;
}

export interface SocketLbLoadOptions {
  addon: NativeAddon;
  /** The loaded XDP data path: its pin dir, map sizes and Maglev/hash configuration are shared. */
  datapath: LoadedDatapath;
  /** Compiled object; default build/bpf/sock.o, compiled if stale. */
  objectPath?: string;
  sizes?: Partial<SocketLbSizes>;
  /**
   * Network namespace whose sockets are balanced, by cookie
   * (`addon.netnsCookie(path)`); 0n = every namespace (pods too). Default:
   * this process's own namespace.
   */
  netnsCookie?: bigint;
}

/**
 * Open and load bpf/sock.bpf.c with the XDP object's maps re-used from
 * their pins. Attaches nothing.
 */
export function loadSocketLb(opts: SocketLbLoadOptions): LoadedSocketLb {
  const { addon, datapath } = opts;
  const pinDir = datapath.pinDir;
  const sizes = { ...DEFAULT_SOCKET_LB_SIZES, ...opts.sizes };
  const objectPath = opts.objectPath ?? ensureBpfObject('sock');
  const own = ownMaps(sizes);
  for (const role of Object.keys(SOCK_MAP) as SockMapRole[]) {
    const path = join(pinDir, SOCK_MAP[role]);
    if (!existsSync(path)) continue;
    const pinned = addon.openPinnedMap(path);
    try {
      const want = own[role];
      if (pinned.type !== want.type || pinned.keySize !== want.keySize || pinned.valueSize !== want.valueSize || pinned.maxEntries !== want.maxEntries) {
        throw new SocketLbError(`pinned map ${path} (${pinned.type}, key ${pinned.keySize}, value ${pinned.valueSize}, ${pinned.maxEntries} entries) ` +
          `does not match (${want.type}, key ${want.keySize}, value ${want.valueSize}, ${want.maxEntries} entries); keep the previous sizes or remove the pin`);
      }
    } finally {
      pinned.close();
    }
  }

  const object = addon.openObject(objectPath);
  try {
    object.setRodata('cfg_hash_seed', encodeRodata('cfg_hash_seed', datapath.config.hashSeed >>> 0));
    const netns = Buffer.alloc(8);
    netns.writeBigUInt64LE(opts.netnsCookie ?? addon.netnsCookie());
    object.setRodata('cfg_sock_netns', netns);
    const shared = new Map<string, MapRole>(SOCK_SHARED.map((r) => [MAP[r], r]));
    const mine = new Map<string, SockMapRole>((Object.keys(SOCK_MAP) as SockMapRole[]).map((r) => [SOCK_MAP[r], r]));
    for (const name of object.mapNames()) {
      if (name.includes('.')) continue; // libbpf's internal maps ('sock.rodata')
      const sharedRole = shared.get(name);
      const myRole = mine.get(name);
      if (sharedRole) {
        // Exactly the live map's size, so libbpf accepts the pin for reuse.
        object.setMaxEntries(name, datapath.maps[sharedRole].maxEntries);
        object.setPinPath(name, join(pinDir, name));
      } else if (myRole) {
        object.setMaxEntries(name, own[myRole].maxEntries);
        object.setPinPath(name, join(pinDir, name));
      } else {
        // maps.h declares every XDP map; the socket programs use none of the others.
        object.setAutocreate(name, false);
      }
    }
    for (const r of SOCK_SHARED) {
      if (!existsSync(join(pinDir, MAP[r]))) throw new SocketLbError(`socket LB: ${join(pinDir, MAP[r])} is not pinned (load the XDP data path first)`);
    }
    object.load();
    const maps = Object.fromEntries((Object.keys(SOCK_MAP) as SockMapRole[]).map((r) => [r, object.map(SOCK_MAP[r])])) as SocketLbMaps;
    return new LoadedSocketLb(object, maps, pinDir, addon);
  } catch (err) {
    object.close();
    if (err instanceof BpfError) throw new SocketLbError(`socket LB: loading ${objectPath} with pins in ${pinDir}: ${err.message}`);
    throw err;
  }
}

/** The socket LB while it is attached. */
export interface RunningSocketLb {
  loaded: LoadedSocketLb;
  attachment: SocketLbAttachment;
}

export interface SocketLbStartOptions {
  addon: NativeAddon;
  datapath: LoadedDatapath;
  pinDir: string;
  /** --socket-lb (on by default). */
  enabled: boolean;
  /** --socket-lb-cgroup: the cgroup to attach to; empty = the cgroup v2 root, refused outside the host's network namespace. */
  cgroup: string;
  /** --socket-lb-all-namespaces: balance connections of every network namespace, not only the agent's. */
  allNamespaces: boolean;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
}

/**
 * The agent's start-up decision: attach the socket hooks (node-local access
 * to services), or say in the log why not and remove hooks a previous agent
 * left. Undefined when not attached. Throws only when the operator named a
 * cgroup that cannot be used (a default that fails, e.g. a kernel without
 * the hooks, < 5.18, keeps the rest of the agent working).
 */
export function startSocketLb(opts: SocketLbStartOptions): RunningSocketLb | undefined {
  const outside = opts.enabled && !opts.cgroup ? outsideHostNetworkNamespace() : undefined;
  const off = !opts.enabled ? 'turned off' : outside ? `${outside} and the default cgroup is the whole host: give --socket-lb-cgroup to attach` : '';
  if (off) {
    const removed = detachSocketLb(opts.addon, opts.pinDir);
    opts.log.info(`socket LB not attached: ${off}`, removed ? { removedHooks: removed } : {});
    return undefined;
  }
  const cgroup = opts.cgroup || findCgroup2Mount();
  if (!cgroup) {
    opts.log.warn('socket LB not attached: no cgroup v2 mount in /proc/self/mountinfo (node-local access to services is off; --no-socket-lb silences this)');
    return undefined;
  }
  let running: RunningSocketLb;
  try {
    const loaded = loadSocketLb({ addon: opts.addon, datapath: opts.datapath, ...(opts.allNamespaces ? { netnsCookie: 0n } : {}) });
    try {
      running = { loaded, attachment: loaded.attach(cgroup) };
    } catch (err) {
      loaded.close();
      throw err;
    }
  } catch (err) {
    const msg = `--socket-lb-cgroup ${cgroup}: ${(err as Error).message}`;
    if (opts.cgroup) throw new SocketLbError(`${msg} (or turn node-local access off with --no-socket-lb)`);
    opts.log.error('socket LB not attached: node-local access to services is off (--no-socket-lb silences this)', { error: msg });
    return undefined;
  }
  const replaced = running.attachment.hooks.filter((h) => h.replaced).length;
  opts.log.info('socket LB attached: node-local connections to services are balanced', {
    cgroup, hooks: running.attachment.hooks.length, replaced, namespaces: opts.allNamespaces ? 'all' : 'own',
  });
  return running;
}

/**
 * Unlike XDP (which stays for a hitless restart), the socket hooks come off
 * on a clean stop: they act on every process of the cgroup, usually the
 * whole host, and nothing would keep their frontends current. A crashed
 * agent leaves them pinned; the next one swaps its programs in.
 */
export function stopSocketLb(running: RunningSocketLb, log: Pick<Logger, 'warn'>): void {
  try {
    running.loaded.detach();
  } catch (err) {
    log.warn('socket LB detach failed', { error: (err as Error).message });
  }
  running.loaded.close();
}
