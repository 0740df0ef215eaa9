/**
 * Typed surface of the native addon (native/, node-addon-api over the
 * system libbpf). Everything in pharos that touches the kernel's BPF side,
 * raw packet sockets or TCP MD5 goes through this module; nothing imports
 * the .node file directly.
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

export interface BpfMap extends MapInfo {
  readonly fd: number;
  /** True for per-CPU maps: values are `possibleCpus × roundUp8(valueSize)` bytes. */
  readonly perCpu: boolean;
  /** Bytes of one value as the syscall sees it (per-CPU maps: all CPUs). */
  readonly valueBufferSize: number;
  lookup(key: Buffer): Buffer | null;
  /** flags: 0 = BPF_ANY, 1 = BPF_NOEXIST, 2 = BPF_EXIST. */
  update(key: Buffer, value: Buffer, flags?: number): void;
  /** Returns false when the key was absent. */
  delete(key: Buffer): boolean;
  /** `keys` and `values` are concatenated fixed-size records; returns how many were applied. */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags?: number): number;
  deleteBatch(keys: Buffer, count: number): number;
  /** Every key (BPF_MAP_GET_NEXT_KEY walk). */
  keys(): Buffer[];
  /** Every entry (batch lookup when the map supports it, else a key walk). */
  entries(): Array<[Buffer, Buffer]>;
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

export interface BpfObject {
  readonly path: string;
  /** Set a `const volatile` global in .rodata (before load). `value` must be exactly the variable's size. */
  setRodata(variable: string, value: Buffer): void;
  /** Before load. */
  setMaxEntries(map: string, n: number): void;
  /** Before load: reuse the map pinned at `path` if it exists (and matches), else pin it there after load. */
  setPinPath(map: string, path: string): void;
  load(): void;
  program(name: string): BpfProgram;
  map(name: string): BpfMap;
  mapNames(): string[];
  programNames(): string[];
  close(): void;
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
}

export interface TestRunResult {
  retval: number;
  /** Average ns per run as the kernel reports it. */
  duration: number;
  dataOut: Buffer;
}

export type XdpMode = 'native' | 'generic' | 'auto';

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
  testRun(progFd: number, opts: TestRunOptions): TestRunResult;
  /** Same as testRun on a worker thread (for long live-frames generator runs). */
  testRunAsync(progFd: number, opts: TestRunOptions): Promise<TestRunResult>;
  /** Send one raw Ethernet frame out of an interface (AF_PACKET, SOCK_RAW). */
  sendFrame(ifindex: number, frame: Buffer, netns?: string): void;
  /** setsockopt(TCP_MD5SIG) on a socket fd for `peer` (IPv4/IPv6 literal); empty key removes it. */
  setTcpMd5(fd: number, peer: string, key: string): void;
  possibleCpus(): number;
}

export class BpfError extends Error {
  constructor(message: string, readonly errno: number, readonly code: string) {
    super(message);
    this.name = 'BpfError';
  }
}

// Implementation (addon loading, error wrapping) follows below; see native/README.md.
