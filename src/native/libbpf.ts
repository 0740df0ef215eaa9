/**
 * Typed surface of the native addon (native/, node-addon-api over the
 * system libbpf). Everything in pharos that touches the kernel's BPF side,
 * raw packet sockets, rtnetlink (routes, neighbours) or TCP MD5 goes
 * through this module; nothing imports the .node file directly.
 *
 * Errors thrown by the addon are `BpfError`s: `errno` (positive), `code`
 * (e.g. 'ENOENT'), and a message that names the object/map/interface and
 * carries libbpf's own last log lines.
 *
 * CONTRACT (other modules code against these types; keep them stable):
 */

export type MapType =
  | 'hash' | 'array' | 'percpu_hash' | 'percpu_array' | 'lru_hash' | 'lru_percpu_hash'
  | 'lpm_trie' | 'array_of_maps' | 'hash_of_maps' | 'devmap' | 'devmap_hash' | 'prog_array' | 'other';

export interface MapInfo {
  name: string;
  type: MapType;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  id: number;
}

/** The element calls a map passes straight to the kernel (BpfMap and the native handle share them). */
export interface MapElementCalls {
  lookup(key: Buffer): Buffer | null;
  /** flags: 0 = BPF_ANY, 1 = BPF_NOEXIST, 2 = BPF_EXIST. */
  update(key: Buffer, value: Buffer, flags?: number): void;
  /** Returns false when the key was absent. */
  delete(key: Buffer): boolean;
  /** `keys` and `values` are concatenated fixed-size records; returns how many were applied. */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags?: number): number;
  /**
   * The same on a worker thread: for map-in-map the kernel waits an RCU
   * grace period (~12 ms) per call, which must not hold the event loop.
   */
  updateBatchAsync(keys: Buffer, values: Buffer, count: number, flags?: number): Promise<number>;
  /** Every value of a BPF_F_MMAPABLE array at once (mmap + memcpy): for a table nothing reads yet. */
  writeMmapped(values: Buffer): void;
  deleteBatch(keys: Buffer, count: number): number;
}

export interface BpfMap extends MapInfo, MapElementCalls {
  readonly fd: number;
  /** True for per-CPU maps: values are `possibleCpus × roundUp8(valueSize)` bytes. */
  readonly perCpu: boolean;
  /** Bytes of one value as the syscall sees it (per-CPU maps: all CPUs). */
  readonly valueBufferSize: number;
  /** Every key (BPF_MAP_GET_NEXT_KEY walk). */
  keys(): Buffer[];
  /** Every entry (batch lookup when the map supports it, else a key walk). */
  entries(): Array<[Buffer, Buffer]>;
  /** Every entry as two concatenated buffers (keySize / valueBufferSize bytes a record), without a Buffer per entry. */
  entriesRaw(): { keys: Buffer; values: Buffer; count: number };
  /**
   * One batch lookup into the caller's buffers (as many entries as both hold,
   * records as in `updateBatch`): big maps read in bounded chunks, no copies.
   * `cursor` (keySize + 8 bytes) is read unless `first` and rewritten with
   * where the next call goes on. Throws ENOTSUPP/EOPNOTSUPP where the map type
   * has no batch lookup (lpm_trie).
   */
  lookupBatch(cursor: Buffer, first: boolean, keys: Buffer, values: Buffer): { count: number; done: boolean };
  /** For per-CPU values: split one value buffer into one Buffer (valueSize bytes) per CPU. */
  splitPerCpu(value: Buffer): Buffer[];
  pin(path: string): void;
  close(): void;
}

export interface BpfProgram {
  readonly name: string;
  readonly fd: number;
  /** 'xdp', 'sched_cls', 'cgroup_sock_addr', ... */
  readonly type: string;
  readonly id: number;
  pin(path: string): void;
}

/** The calls an object passes straight to libbpf (BpfObject and the native handle share them). */
export interface ObjectCalls {
  readonly path: string;
  /** Set a `const volatile` global in .rodata (before load). `value` must be exactly the variable's size. */
  setRodata(variable: string, value: Buffer): void;
  /** Before load. */
  setMaxEntries(map: string, n: number): void;
  /** Before load: reuse the map pinned at `path` if it exists (and matches), else pin it there after load. */
  setPinPath(map: string, path: string): void;
  /** Before load: false leaves a map the programs never use uncreated. */
  setAutocreate(map: string, on: boolean): void;
  load(): void;
  /** load() on a worker thread (the verifier takes seconds; the event loop keeps running). The object is unusable until it settles. */
  loadAsync(): Promise<void>;
  mapNames(): string[];
  programNames(): string[];
  close(): void;
}

export interface BpfObject extends ObjectCalls {
  program(name: string): BpfProgram;
  map(name: string): BpfMap;
}

export interface TestRunOptions {
  data: Buffer;
  /** Room for the output packet; default data.length + 256. */
  dataOutSize?: number;
  repeat?: number;
  /** BPF_F_TEST_XDP_LIVE_FRAMES = 2. */
  flags?: number;
  /** Context in (e.g. struct xdp_md with ingress_ifindex); optional. */
  ctxIn?: Buffer;
  /** Run inside this network namespace (path such as /run/netns/NAME). */
  netns?: string;
  /** Live frames: frames per batch (kernel default 64). */
  batchSize?: number;
  /**
   * testRunAsync only: aborting stops the run early (the kernel checks for a
   * pending signal between batches); the promise then resolves with
   * `interrupted: true` and no retval/duration. For open-ended generators.
   */
  signal?: AbortSignal;
}

export interface TestRunResult {
  retval: number;
  /** Average ns per run as the kernel reports it. */
  duration: number;
  dataOut: Buffer;
  /** Set when `signal` stopped an async run before its `repeat` count. */
  interrupted?: boolean;
}

export type XdpMode = 'native' | 'generic' | 'auto';

/** cgroup v2 sock_addr hooks (the `SEC("cgroup/...")` names). */
export type CgroupAttachType =
  | 'connect4' | 'connect6' | 'sendmsg4' | 'sendmsg6' | 'recvmsg4' | 'recvmsg6' | 'getpeername4' | 'getpeername6';

/**
 * A send-only AF_PACKET socket kept open on one interface: no socket per
 * frame (closing one waits an RCU grace period, ~12 ms). Protocol 0, so it
 * never queues received frames. Non-blocking: a full device queue is
 * reported, never waited for. Sends on an interface that is down throw
 * ENETDOWN; once it is deleted, ENXIO (open a socket on the new one).
 */
export interface PacketSocket {
  readonly ifindex: number;
  /** One complete Ethernet frame (>= 14 bytes). Throws EAGAIN/ENOBUFS when the device queue is full. */
  send(frame: Buffer): void;
  /**
   * Many frames in few syscalls (sendmmsg). Returns how many, from the first,
   * went out: fewer than given when the queue filled up (send the rest
   * later) or the kernel refused a frame (sending from that frame again
   * throws why). Throws only when not even the first frame went out for a
   * reason other than a full queue.
   */
  sendMany(frames: Buffer[]): number;
  /** Idempotent. Later sends throw EBADF naming the interface. */
  close(): void;
}

/** What the kernel's route lookup for an address found. */
export type RouteType = 'unicast' | 'local' | 'unreachable' | 'other';

export interface RouteNextHop {
  /** The address asked about, as given. */
  address: string;
  /** Outgoing interface (for 'local': the loopback). */
  ifindex?: number;
  dev?: string;
  /** Set when the route goes through a router; the next hop is then this, not `address`. */
  gateway?: string;
  /** 'unreachable': no route, or an unreachable/prohibit/blackhole route (`error` says which). */
  type: RouteType;
  /** The kernel's refusal, e.g. 'route to 203.0.113.9: Network is unreachable (ENETUNREACH)'. */
  error?: string;
}

export interface NeighbourRequest {
  address: string;
  ifindex: number;
  /**
   * true: create or replace the entry as kernel-managed (NTF_EXT_MANAGED, as
   * `ip neigh replace ADDR dev DEV managed`): resolved at once and kept
   * REACHABLE by the kernel. false: drop the flag and let the entry age out
   * (as `ip neigh change ADDR dev DEV nud stale`); an absent entry is fine,
   * one that never resolved is deleted.
   */
  managed: boolean;
}

export interface NeighbourResult {
  address: string;
  ifindex: number;
  error?: string;
}

export interface NativeAddon {
  openObject(path: string): BpfObject;
  openPinnedMap(path: string): BpfMap;
  createMap(type: MapType, keySize: number, valueSize: number, maxEntries: number, opts?: { name?: string; flags?: number; innerMapFd?: number }): BpfMap;
  /** Open a map by its kernel ID (e.g. the inner map ID read from an outer map). */
  mapFromId(id: number): BpfMap;
  /** Interface index by name, optionally inside a network namespace; throws ENODEV naming the interface. */
  ifIndex(name: string, netns?: string): number;
  /** Returns the mode actually used ('auto' tries native then generic). */
  xdpAttach(ifindex: number, progFd: number, mode: XdpMode, netns?: string): 'native' | 'generic';
  xdpDetach(ifindex: number, netns?: string): void;
  /** Attached XDP program id, 0 if none. */
  xdpQuery(ifindex: number, netns?: string): { progId: number; mode: 'native' | 'generic' | 'none' };
  tcAttach(ifindex: number, direction: 'ingress' | 'egress', progFd: number, opts?: { handle?: number; priority?: number; netns?: string }): void;
  tcDetach(ifindex: number, direction: 'ingress' | 'egress', opts?: { handle?: number; priority?: number; netns?: string }): void;
  /** The program id in the tc filter at (handle, priority) (default 1, 1); 0 when there is none. */
  tcQuery(ifindex: number, direction: 'ingress' | 'egress', opts?: { handle?: number; priority?: number; netns?: string }): number;
  testRun(progFd: number, opts: TestRunOptions): TestRunResult;
  /** Same as testRun on a worker thread (for long live-frames generator runs). */
  testRunAsync(progFd: number, opts: TestRunOptions): Promise<TestRunResult>;
  /**
   * Send one raw Ethernet frame out of an interface (AF_PACKET, SOCK_RAW)
   * through a socket made for it: ~12 ms each. Use packetSocket for more.
   */
  sendFrame(ifindex: number, frame: Buffer, netns?: string): void;
  /** A kept packet socket bound to `ifindex` (in `netns`); throws naming the interface (ENODEV for an unknown one). */
  packetSocket(ifindex: number, netns?: string): PacketSocket;
  /**
   * The kernel's route for each address (RTM_GETROUTE, IPv4 and IPv6), all
   * over one rtnetlink socket on a worker thread. Results in the order
   * given; a failed lookup is a result with `error`. Throws synchronously
   * (EINVAL) for an argument that is not an address; rejects only when the
   * namespace or the socket fails.
   */
  routeNextHops(addresses: string[], netns?: string): Promise<RouteNextHop[]>;
  /**
   * Sets or releases managed neighbour entries (RTM_NEWNEIGH), all over one
   * rtnetlink socket on a worker thread. Per-entry failures are results with
   * `error`; errors otherwise as routeNextHops.
   */
  neighboursSet(entries: NeighbourRequest[], netns?: string): Promise<NeighbourResult[]>;
  /** setsockopt(TCP_MD5SIG) on a socket fd for `peer` (IPv4/IPv6 literal); empty key removes it. */
  setTcpMd5(fd: number, peer: string, key: string): void;
  /**
   * A new unconnected, non-blocking TCP socket fd, so TCP_MD5SIG can be set
   * before connect; then `new net.Socket({ fd }).connect(...)` adopts it.
   */
  tcpSocket(family: 'ipv4' | 'ipv6'): number;
  /**
   * Unicast TTL of a socket's packets: IP_TTL on IPv4 sockets, IPV6_UNICAST_HOPS
   * (and IP_TTL, for IPv4-mapped peers) on IPv6 ones; the family comes from
   * getsockname. ttl 1..255 (eBGP multihop).
   */
  setTtl(fd: number, ttl: number): void;
  /**
   * A socket filter on a UDP socket fd: datagrams received with TTL / hop
   * limit `ttl` pass whole, every other one arrives empty (so the receiver
   * can count it against its source). For BFD's TTL 255 rule.
   */
  attachTtlFilter(fd: number, ttl: number): void;
  possibleCpus(): number;
  /**
   * Attach a program to a cgroup v2 hook through a BPF link pinned at
   * `pinPath` (bpffs). A link already pinned there for the same cgroup and
   * hook gets the new program atomically (`replaced: true`); one for
   * another cgroup or hook is detached first.
   */
  cgroupLinkAttach(cgroupPath: string, progFd: number, attachType: CgroupAttachType, pinPath: string): { replaced: boolean; linkId: number };
  /** Detach the link pinned at `pinPath` and remove the pin; false when there was none. */
  cgroupLinkDetach(pinPath: string): boolean;
  /** Ids of the programs attached directly to a cgroup on a hook (not inherited ones). */
  cgroupQuery(cgroupPath: string, attachType: CgroupAttachType): number[];
  /** Cookie of a network namespace (this process's when absent), as bpf_get_netns_cookie() sees it. */
  netnsCookie(netns?: string): bigint;
  /**
   * A native thread that writes CLOCK_MONOTONIC ns into key 0 of the array
   * map `mapFd` every `periodMs`, while `pet()` was called within
   * `watchdogMs` (liveness.cc). Stop it with `stop()`.
   */
  livenessKeeper(mapFd: number, periodMs: number, watchdogMs: number): LivenessKeeper;
}

export interface LivenessKeeper {
  pet(): void;
  stop(): void;
  stats(): { stamps: number; withheld: number; failures: number; lastError: number; lastStampNs: bigint };
}

export class BpfError extends Error {
  constructor(message: string, readonly errno: number, readonly code: string) {
    super(message);
    this.name = 'BpfError';
  }
}

// Implementation (addon loading, error wrapping) follows below; see native/README.md.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../datapath/bpf-build.js';

/** Where `npm run build:native` (node-gyp) leaves the addon. */
export const ADDON_PATH = join(PROJECT_ROOT, 'native', 'build', 'Release', 'pharos_native.node');

/** Bytes one CPU's slot takes in a per-CPU value buffer. */
export function perCpuStride(valueSize: number): number {
  return Math.ceil(valueSize / 8) * 8;
}

// ---- The raw binding (native/src/*.cc); only this module sees it. ----------

interface NativeMapInfo extends MapInfo {
  perCpu: boolean;
  valueBufferSize: number;
}

interface NativeMapHandle extends MapElementCalls {
  readonly fd: number;
  info(): NativeMapInfo;
  keys(): { keys: Buffer; count: number };
  entries(): { keys: Buffer; values: Buffer; count: number };
  pin(path: string): void;
  close(): void;
}

interface NativeProgramHandle {
  readonly fd: number;
  info(): { name: string; type: string; id: number };
  pin(path: string): void;
}

interface NativeObjectHandle extends ObjectCalls {
  readonly loaded: boolean;
  map(name: string): NativeMapHandle;
  program(name: string): NativeProgramHandle;
}

type Passthrough = Pick<NativeAddon,
  'ifIndex' | 'xdpAttach' | 'xdpDetach' | 'xdpQuery' | 'tcAttach' | 'tcDetach' | 'tcQuery' |
  'testRun' | 'sendFrame' | 'setTcpMd5' | 'tcpSocket' | 'setTtl' | 'attachTtlFilter' | 'possibleCpus' |
  'cgroupLinkAttach' | 'cgroupLinkDetach' | 'cgroupQuery' | 'netnsCookie' | 'packetSocket' | 'livenessKeeper'>;

/**
 * routeNextHops's answer as columns (native/src/neighbours.cc): `types`
 * index ROUTE_TYPES, `ifindexes` 0 is none, `gateways` index
 * `gatewayNames` (-1 is none), `errors` as [index, message].
 */
interface NativeRouteColumns {
  types: Uint8Array;
  ifindexes: Uint32Array;
  gateways: Int32Array;
  gatewayNames: string[];
  devs: Array<[number, string]>;
  errors: Array<[number, string]>;
}

interface NativeBinding extends Passthrough {
  /** The addon builds its errors with this constructor (message, errno, code). */
  setErrorClass(ctor: typeof BpfError): void;
  openObject(path: string): NativeObjectHandle;
  openPinnedMap(path: string): NativeMapHandle;
  createMap(type: MapType, keySize: number, valueSize: number, maxEntries: number,
    opts?: { name?: string; flags?: number; innerMapFd?: number }): NativeMapHandle;
  mapFromId(id: number): NativeMapHandle;
  /** Addresses '\n'-joined (one N-API call instead of one per element); results as columns. */
  routeNextHops(joinedAddresses: string, count: number, netns?: string): Promise<NativeRouteColumns>;
  /** Same convention; resolves with [index, message] for the entries that failed. */
  neighboursSet(joinedAddresses: string, count: number, ifindexes: Int32Array, managed: Uint8Array,
    netns?: string): Promise<Array<[number, string]>>;
  /** Starts the run on a worker thread; cancel() interrupts it (call again until it settles). */
  testRunAsync(progFd: number, opts: Omit<TestRunOptions, 'signal'>): { promise: Promise<TestRunResult>; cancel(): void };
}

// ---- Wrappers implementing the contract -----------------------------------

function sliceRecords(buf: Buffer, size: number, count: number): Buffer[] {
  const out: Buffer[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = buf.subarray(i * size, (i + 1) * size);
  return out;
}

class LibbpfMap implements BpfMap {
  readonly name: string;
  readonly type: MapType;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly id: number;
  readonly perCpu: boolean;
  readonly valueBufferSize: number;
  private readonly possibleCpus: number;

  constructor(private readonly handle: NativeMapHandle) {
    const info = handle.info();
    this.name = info.name;
    this.type = info.type;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.maxEntries = info.maxEntries;
    this.flags = info.flags;
    this.id = info.id;
    this.perCpu = info.perCpu;
    this.valueBufferSize = info.valueBufferSize;
    this.possibleCpus = info.perCpu ? info.valueBufferSize / perCpuStride(info.valueSize) : 1;
  }

  /** -1 once closed (or once the object it came from is closed). */
  get fd(): number {
    return this.handle.fd;
  }

  lookup(key: Buffer): Buffer | null {
    return this.handle.lookup(key);
  }

  update(key: Buffer, value: Buffer, flags = 0): void {
    this.handle.update(key, value, flags);
  }

  delete(key: Buffer): boolean {
    return this.handle.delete(key);
  }

  updateBatch(keys: Buffer, values: Buffer, count: number, flags = 0): number {
    return this.handle.updateBatch(keys, values, count, flags);
  }

  updateBatchAsync(keys: Buffer, values: Buffer, count: number, flags = 0): Promise<number> {
    return this.handle.updateBatchAsync(keys, values, count, flags);
  }

  writeMmapped(values: Buffer): void {
    this.handle.writeMmapped(values);
  }

  deleteBatch(keys: Buffer, count: number): number {
    return this.handle.deleteBatch(keys, count);
  }

  keys(): Buffer[] {
    const { keys, count } = this.handle.keys();
    return sliceRecords(keys, this.keySize, count);
  }

  entries(): Array<[Buffer, Buffer]> {
    const { keys, values, count } = this.handle.entries();
    const ks = sliceRecords(keys, this.keySize, count);
    const vs = sliceRecords(values, this.valueBufferSize, count);
    return ks.map((k, i) => [k, vs[i]]);
  }

  entriesRaw(): { keys: Buffer; values: Buffer; count: number } {
    return this.handle.entries();
  }

  lookupBatch(cursor: Buffer, first: boolean, keys: Buffer, values: Buffer): { count: number; done: boolean } {
    // The binding's method (native/src/map.cc LookupBatch), typed here to keep this change in one place.
    const handle = this.handle as NativeMapHandle & { lookupBatch: BpfMap['lookupBatch'] };
    return handle.lookupBatch(cursor, first, keys, values);
  }

  splitPerCpu(value: Buffer): Buffer[] {
    if (!this.perCpu) return [value];
    if (value.length !== this.valueBufferSize) {
      throw new BpfError(`map '${this.name}': per-CPU value is ${value.length} bytes, expected ${this.valueBufferSize}`,
        22, 'EINVAL');
    }
    const stride = perCpuStride(this.valueSize);
    const out: Buffer[] = [];
    for (let cpu = 0; cpu < this.possibleCpus; cpu++) out.push(value.subarray(cpu * stride, cpu * stride + this.valueSize));
    return out;
  }

  pin(path: string): void {
    this.handle.pin(path);
  }

  /** Idempotent; a map taken from an object leaves the object's fd alone. */
  close(): void {
    this.handle.close();
  }
}

class LibbpfProgram implements BpfProgram {
  readonly name: string;
  readonly type: string;
  readonly id: number;

  constructor(private readonly handle: NativeProgramHandle) {
    const info = handle.info();
    this.name = info.name;
    this.type = info.type;
    this.id = info.id;
  }

  /** Owned by the object: -1 once the object is closed. */
  get fd(): number {
    return this.handle.fd;
  }

  pin(path: string): void {
    this.handle.pin(path);
  }
}

class LibbpfObject implements BpfObject {
  constructor(private readonly handle: NativeObjectHandle) {}

  get path(): string {
    return this.handle.path;
  }

  get loaded(): boolean {
    return this.handle.loaded;
  }

  setRodata(variable: string, value: Buffer): void {
    this.handle.setRodata(variable, value);
  }

  setMaxEntries(map: string, n: number): void {
    this.handle.setMaxEntries(map, n);
  }

  setPinPath(map: string, path: string): void {
    this.handle.setPinPath(map, path);
  }

  setAutocreate(map: string, on: boolean): void {
    this.handle.setAutocreate(map, on);
  }

  load(): void {
    this.handle.load();
  }

  loadAsync(): Promise<void> {
    return this.handle.loadAsync();
  }

  program(name: string): BpfProgram {
    return new LibbpfProgram(this.handle.program(name));
  }

  /** After load. Valid until this object is closed. */
  map(name: string): BpfMap {
    return new LibbpfMap(this.handle.map(name));
  }

  mapNames(): string[] {
    return this.handle.mapNames();
  }

  programNames(): string[] {
    return this.handle.programNames();
  }

  /** Idempotent. Pinned maps and attached programs stay in the kernel. */
  close(): void {
    this.handle.close();
  }
}

/** Async test run that an AbortSignal can stop. */
async function testRunAbortable(binding: NativeBinding, progFd: number, opts: TestRunOptions): Promise<TestRunResult> {
  const { signal, ...rest } = opts;
  // Not even started: the worker would otherwise race the first cancel().
  if (signal?.aborted) return { retval: 0, duration: 0, dataOut: Buffer.alloc(0), interrupted: true };
  const run = binding.testRunAsync(progFd, rest);
  if (!signal) return run.promise;
  // A signal sent just before the worker enters the syscall is lost: repeat
  // until the run settles.
  let retry: NodeJS.Timeout | undefined;
  const onAbort = () => {
    run.cancel();
    retry ??= setInterval(() => run.cancel(), 20);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await run.promise;
  } finally {
    signal.removeEventListener('abort', onAbort);
    clearInterval(retry);
  }
}

// Many routes and neighbours per call: the binding takes and gives columns
// (one joined string, typed arrays) and the objects are built here, because
// each N-API property access or object costs ~1-4 µs on the JS thread and a
// first sync can carry 50,000 backends.

/** Indexed by the codes of `enum class RouteType` in native/src/neighbours.cc. */
const ROUTE_TYPES: readonly RouteType[] = ['unicast', 'local', 'unreachable', 'other'];
const EINVAL = 22;

function invalidArgument(message: string): BpfError {
  return new BpfError(message, EINVAL, 'EINVAL');
}

/** Checks what the joined form cannot carry (non-strings, newlines); the addon parses the rest. */
function joinAddresses(addresses: readonly unknown[], name: (i: number) => string): string {
  for (let i = 0; i < addresses.length; i++) {
    const a = addresses[i];
    if (typeof a !== 'string') throw invalidArgument(`${name(i)} must be a string`);
    if (a.includes('\n')) throw invalidArgument(`${name(i)} (${JSON.stringify(a)}) is not an IPv4 or IPv6 address`);
  }
  return addresses.join('\n');
}

function routeNextHops(binding: NativeBinding, addresses: string[], netns?: string): Promise<RouteNextHop[]> {
  if (!Array.isArray(addresses)) throw invalidArgument('routeNextHops: addresses must be an array');
  const asked = [...addresses];
  const joined = joinAddresses(asked, (i) => `routeNextHops: addresses[${i}]`);
  return binding.routeNextHops(joined, asked.length, netns).then((columns) => {
    const devs = new Map(columns.devs);
    const hops: RouteNextHop[] = new Array(asked.length);
    for (let i = 0; i < asked.length; i++) {
      const hop: RouteNextHop = { address: asked[i]!, type: ROUTE_TYPES[columns.types[i]!] ?? 'other' };
      const ifindex = columns.ifindexes[i]!;
      if (ifindex !== 0) {
        hop.ifindex = ifindex;
        const dev = devs.get(ifindex);
        if (dev !== undefined) hop.dev = dev;
      }
      const gateway = columns.gateways[i]!;
      if (gateway >= 0) hop.gateway = columns.gatewayNames[gateway];
      hops[i] = hop;
    }
    for (const [i, error] of columns.errors) hops[i]!.error = error;
    return hops;
  });
}

function neighboursSet(binding: NativeBinding, entries: NeighbourRequest[], netns?: string): Promise<NeighbourResult[]> {
  if (!Array.isArray(entries)) throw invalidArgument('neighboursSet: entries must be an array');
  const count = entries.length;
  const addresses: unknown[] = new Array(count);
  const ifindexes = new Int32Array(count);
  const managed = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const entry: unknown = entries[i];
    if (typeof entry !== 'object' || entry === null) {
      throw invalidArgument(`neighboursSet: entries[${i}] must be an object { address, ifindex, managed }`);
    }
    const e = entry as Partial<Record<keyof NeighbourRequest, unknown>>;
    if (typeof e.ifindex !== 'number' || !Number.isInteger(e.ifindex) || e.ifindex < 1 || e.ifindex > 0x7fffffff) {
      throw invalidArgument(`neighboursSet: entries[${i}].ifindex must be an integer in [1, 2147483647], got ${String(e.ifindex)}`);
    }
    if (typeof e.managed !== 'boolean') throw invalidArgument(`neighboursSet: entries[${i}].managed must be a boolean`);
    addresses[i] = e.address;
    ifindexes[i] = e.ifindex;
    managed[i] = e.managed ? 1 : 0;
  }
  const joined = joinAddresses(addresses, (i) => `neighboursSet: entries[${i}].address`);
  return binding.neighboursSet(joined, count, ifindexes, managed, netns).then((errors) => {
    const results: NeighbourResult[] = new Array(count);
    for (let i = 0; i < count; i++) results[i] = { address: addresses[i] as string, ifindex: ifindexes[i]! };
    for (const [i, error] of errors) results[i]!.error = error;
    return results;
  });
}

/**
 * Loads native/build/Release/pharos_native.node. Throws a BpfError (ENOENT)
 * telling to build it when it is missing.
 */
export function loadAddon(path: string = ADDON_PATH): NativeAddon {
  if (!existsSync(path)) {
    throw new BpfError(`pharos native addon not built: ${path} is missing; run \`npm run build\` (or \`npm run build:native\`)`,
      2, 'ENOENT');
  }
  let binding: NativeBinding;
  try {
    binding = createRequire(import.meta.url)(path) as NativeBinding;
  } catch (err) {
    throw new BpfError(`cannot load the pharos native addon ${path}: ${(err as Error).message} ` +
      '(is libbpf installed: apt-get install libbpf1? rebuild with `npm run build:native`)', 2, 'ENOENT');
  }
  binding.setErrorClass(BpfError);
  return {
    openObject: (p) => new LibbpfObject(binding.openObject(p)),
    openPinnedMap: (p) => new LibbpfMap(binding.openPinnedMap(p)),
    createMap: (type, keySize, valueSize, maxEntries, opts) =>
      new LibbpfMap(binding.createMap(type, keySize, valueSize, maxEntries, opts)),
    mapFromId: (id) => new LibbpfMap(binding.mapFromId(id)),
    ifIndex: (name, netns) => binding.ifIndex(name, netns),
    xdpAttach: (ifindex, progFd, mode, netns) => binding.xdpAttach(ifindex, progFd, mode, netns),
    xdpDetach: (ifindex, netns) => binding.xdpDetach(ifindex, netns),
    xdpQuery: (ifindex, netns) => binding.xdpQuery(ifindex, netns),
    tcAttach: (ifindex, direction, progFd, opts) => binding.tcAttach(ifindex, direction, progFd, opts),
    tcDetach: (ifindex, direction, opts) => binding.tcDetach(ifindex, direction, opts),
    tcQuery: (ifindex, direction, opts) => binding.tcQuery(ifindex, direction, opts),
    testRun: (progFd, opts) => binding.testRun(progFd, opts),
    testRunAsync: (progFd, opts) => testRunAbortable(binding, progFd, opts),
    sendFrame: (ifindex, frame, netns) => binding.sendFrame(ifindex, frame, netns),
    setTcpMd5: (fd, peer, key) => binding.setTcpMd5(fd, peer, key),
    tcpSocket: (family) => binding.tcpSocket(family),
    setTtl: (fd, ttl) => binding.setTtl(fd, ttl),
    attachTtlFilter: (fd, ttl) => binding.attachTtlFilter(fd, ttl),
    possibleCpus: () => binding.possibleCpus(),
    cgroupLinkAttach: (cgroupPath, progFd, attachType, pinPath) => binding.cgroupLinkAttach(cgroupPath, progFd, attachType, pinPath),
    cgroupLinkDetach: (pinPath) => binding.cgroupLinkDetach(pinPath),
    cgroupQuery: (cgroupPath, attachType) => binding.cgroupQuery(cgroupPath, attachType),
    netnsCookie: (netns) => binding.netnsCookie(netns),
    livenessKeeper: (mapFd, periodMs, watchdogMs) => binding.livenessKeeper(mapFd, periodMs, watchdogMs),
    packetSocket: (ifindex, netns) => binding.packetSocket(ifindex, netns),
    routeNextHops: (addresses, netns) => routeNextHops(binding, addresses, netns),
    neighboursSet: (entries, netns) => neighboursSet(binding, entries, netns),
  };
}

let cachedAddon: NativeAddon | undefined;

/** The process-wide addon, loaded on first use. */
export function addon(): NativeAddon {
  cachedAddon ??= loadAddon();
  return cachedAddon;
}
