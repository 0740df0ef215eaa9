/**
 * The TypeScript mirror of bpf/lib/maps.h and bpf/lib/stats.h: map names,
 * struct layouts (encode/decode byte for byte), flags and the counter enum.
 * test/datapath/abi.test.ts parses the C headers and fails when this file
 * and the C disagree, so the two cannot drift silently.
 *
 * Addresses travel as 16 bytes (IPv4 in the first 4), ports and addresses
 * in network byte order, everything else in host (little-endian) order.
 */
import { formatAddressBytes, tryParseAddress, writeAddressBytes } from '../model/cidr.js';
import { formatMac, macBytes } from '../model/mac.js';

export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export type L4Protocol = 'TCP' | 'UDP';

export function protoNumber(p: L4Protocol): number {
  return p === 'TCP' ? IPPROTO_TCP : IPPROTO_UDP;
}

export function protoName(n: number): L4Protocol | `proto-${number}` {
  return n === IPPROTO_TCP ? 'TCP' : n === IPPROTO_UDP ? 'UDP' : `proto-${n}`;
}

/** Every map of bpf/lb.bpf.c, by role. Names are the C names (≤ 15 chars). */
export const MAP = {
  frontends: 'ph_frontends',
  backends: 'ph_backends',
  backendNextHop: 'ph_be_nh',
  maglev: 'ph_maglev',
  conntrack: 'ph_ct',
  reverseNat: 'ph_rev',
  runtime: 'ph_runtime',
  liveness: 'ph_liveness',
  responder: 'ph_responder',
  progs: 'ph_progs',
  ifMacs: 'ph_if_macs',
  ifSnat: 'ph_if_snat',
  stats: 'ph_stats',
  frontendStats: 'ph_fe_stats',
  backendStats: 'ph_be_stats',
  scratch: 'ph_scratch',
  sourceRanges: 'ph_src_ranges',
  affinity: 'ph_affinity',
  members: 'ph_fe_members',
  vips: 'ph_vips',
  l2Foreign: 'ph_l2_foreign',
} as const;
export type MapRole = keyof typeof MAP;

/** Programs in the object. */
export const PROG = {
  xdp: 'pharos_xdp', xdpNewFlow: 'pharos_xdp_new_flow', xdpControl: 'pharos_xdp_control', tcEgress: 'pharos_tc_egress',
  tcIngress: 'pharos_tc_ingress', tcNewFlow: 'pharos_tc_new_flow', tcControl: 'pharos_tc_control',
} as const;

/** Tail-call slots of ph_progs (PH_PROG_* in bpf/lib/maps.h) and the program each holds. */
export const TAIL_CALLS = [PROG.xdpNewFlow, PROG.xdpControl] as const;

/**
 * The two builds of bpf/lb.bpf.c (bpf/lib/ctx.h): XDP (build/bpf/lb.o) and
 * tc ingress (build/bpf/lb-tc.o, from bpf/lb-tc.bpf.c). Same maps, same
 * tail-call slots; entry and slot programs named after their hook.
 */
export type IngressHook = 'xdp' | 'tc';
export const HOOK_BUILD: Record<IngressHook, { object: string; entry: string; tailCalls: readonly string[] }> = {
  xdp: { object: 'lb', entry: PROG.xdp, tailCalls: TAIL_CALLS },
  tc: { object: 'lb-tc', entry: PROG.tcIngress, tailCalls: [PROG.tcNewFlow, PROG.tcControl] },
};

// ph_fe_value.flags
export const FE_RESET_ON_REMOVE = 1 << 0;
export const FE_LOCAL_ONLY = 1 << 1;
export const FE_AFFINITY = 1 << 2;
export const FE_SOURCE_RANGES = 1 << 3;
/** Direct server return (bpf/lib/dsr.h): no NAT, no flow state; L2 dispatch to on-link backends, IPIP/IP6IP6 to the rest. */
export const FE_DSR = 1 << 4;
/** DSR: always encapsulated (lb.pharos.io/dsr-dispatch: ipip). */
export const FE_DSR_ENCAP = 1 << 5;
/** DSR: L2 dispatch only (lb.pharos.io/dsr-dispatch: l2). */
export const FE_DSR_L2 = 1 << 6;

// ph_backend.flags
export const BE_DRAINING = 1 << 0;
export const BE_LOCAL = 1 << 1;
/** Learned by the DSR path (on-link / behind a router); never written by the agent, cleared by its writes. */
export const BE_ONLINK = 1 << 2;
export const BE_OFFLINK = 1 << 3;

// ph_ct.state
export const CT_NEW = 1;
export const CT_ESTABLISHED = 2;
export const CT_CLOSING = 3;
// ph_ct.flags / ph_rev.flags
export const CTF_SNAT = 1 << 0;
export const CTF_LOCAL = 1 << 1;

export const SIZE = {
  feKey: 20,
  feValue: 24,
  backend: 20,
  flow: 40,
  ct: 40,
  beNextHop: 24,
  rev: 80,
  runtime: 40,
  liveness: 8,
  respKey: 24,
  respValue: 8,
  traffic: 16,
  srcKey: 24,
  affKey: 24,
  affValue: 16,
  vipKey: 20,
  ifMac: 8,
  ifSnat: 32,
  l2Foreign: 24,
} as const;

/** IPv6 extension headers the parser walks before it gives up (PH_IPV6_MAX_EXT, bpf/lib/parsing.h): more is XDP_PASS, counted ipv6_ext_limit. */
export const IPV6_MAX_EXT_HEADERS = 4;

/**
 * enum ph_stat, in order (index = value). Names are the C names without
 * PH_STAT_, lower-cased.
 */
export const STAT_REASONS = [
  'malformed_l2',
  'malformed_l3',
  'malformed_l4',
  'fragment',
  'ipv6_ext_limit',
  'no_backend',
  'backend_gone',
  'snat_exhausted',
  'ct_insert_fail',
  'fib_fail',
  'no_neigh',
  'local_backend',
  'redirect_fail',
  'fwd_tx',
  'fwd_redirect',
  'ct_create',
  'ct_hit',
  'rev_nat',
  'arp_reply',
  'na_reply',
  'responder_stale',
  'arp_ignored',
  'tc_rev_nat',
  'backend_rebalanced',
  'source_range',
  'affinity_hit',
  'icmp_echo_reply',
  'icmp_too_big',
  'icmp_error_nat',
  'tail_call_fail',
  'ttl_exceeded',
  'foreign_mac',
  'dsr_l2',
  'dsr_offlink',
  'dsr_no_neigh',
  'dsr_icmp',
  'dsr_encap',
  'dsr_encap_fail',
  'dsr_too_big',
] as const;
export type StatReason = (typeof STAT_REASONS)[number];

/**
 * Reasons that end in XDP_DROP, and in XDP_PASS (the rest are events:
 * replies, forwarding, conntrack). stats.h marks each the same way, its
 * comment starting "drop:" or "pass:"; abi.test.ts compares both and every
 * count_and(reason, verdict) of the C.
 */
export const DROP_REASONS: ReadonlySet<StatReason> = new Set<StatReason>(['malformed_l2', 'malformed_l3', 'malformed_l4', 'no_backend', 'backend_gone', 'snat_exhausted', 'ct_insert_fail', 'fib_fail', 'redirect_fail', 'source_range', 'dsr_offlink', 'dsr_no_neigh', 'dsr_encap_fail', 'dsr_too_big']);
export const PASS_REASONS: ReadonlySet<StatReason> = new Set<StatReason>(['fragment', 'ipv6_ext_limit', 'no_neigh', 'local_backend', 'responder_stale', 'arp_ignored', 'tail_call_fail', 'ttl_exceeded', 'foreign_mac']);

/**
 * max_entries of every map as the C declares it (bpf/lib/maps.h, stats.h,
 * l2_foreign.h); abi.test.ts reads them from the compiled object's BTF.
 * They are the sizes the loader creates by default (DEFAULT_SIZES in
 * loader.ts and the agent's map-size flags start from here); the maps the
 * loader does not size are created exactly so.
 */
export const MAX_ENTRIES: Readonly<Record<MapRole, number>> = {
  frontends: 65536,
  backends: 131072,
  backendNextHop: 131072,
  maglev: 65536,
  conntrack: 262144,
  reverseNat: 262144,
  runtime: 1,
  liveness: 1,
  responder: 32768,
  progs: TAIL_CALLS.length,
  ifMacs: 256,
  ifSnat: 256,
  stats: STAT_REASONS.length,
  frontendStats: 65536,
  backendStats: 131072,
  scratch: 1,
  sourceRanges: 16384,
  affinity: 65536,
  members: 65536,
  vips: 65536,
  l2Foreign: 256,
};

/** `.rodata` variables the loader sets (name → byte size), from bpf/lib/config.h. */
export const RODATA = {
  cfg_hash_seed: 4,
  cfg_liveness_max_ns: 8,
  cfg_tcp_est_ns: 8,
  cfg_tcp_transient_ns: 8,
  cfg_udp_ns: 8,
  cfg_fib_refresh_ns: 8,
  cfg_snat: 1,
} as const;
export type RodataName = keyof typeof RODATA;

const NS_PER_S = 1_000_000_000n;

/**
 * The initial values of those variables in bpf/lib/config.h (abi.test.ts
 * parses them); the loader's and the agent's defaults derive from these.
 *
 * The hash seed must be equal on every LB node. 0x50484152 ("PHAR") is the
 * value every released agent has defaulted to (`--hash-seed`), so LB nodes
 * of any version agree unless one was given another seed; the C and loader
 * default used to be 0x7068726f, which only tests and benches that passed
 * no seed ever ran with.
 */
export const RODATA_DEFAULTS = {
  cfg_hash_seed: 0x50484152,
  cfg_liveness_max_ns: 3n * NS_PER_S,
  cfg_tcp_est_ns: 3600n * NS_PER_S,
  cfg_tcp_transient_ns: 30n * NS_PER_S,
  cfg_udp_ns: 60n * NS_PER_S,
  cfg_fib_refresh_ns: NS_PER_S,
  cfg_snat: 1,
} as const satisfies Record<RodataName, number | bigint>;

export function encodeRodata(name: RodataName, value: number | bigint): Buffer {
  const b = Buffer.alloc(RODATA[name]);
  if (b.length === 8) b.writeBigUInt64LE(BigInt(value));
  else if (b.length === 4) b.writeUInt32LE(Number(value) >>> 0);
  else b.writeUInt8(Number(value));
  return b;
}

// ---------------------------------------------------------------- addresses

export type Family = 'IPv4' | 'IPv6';

export class AbiError extends Error {}

export function familyOf(address: string): Family {
  const parsed = tryParseAddress(address);
  if (!parsed) throw new AbiError(`not an IP address: ${JSON.stringify(address)}`);
  return parsed.family;
}

export function afOf(family: Family): number {
  return family === 'IPv4' ? AF_INET : AF_INET6;
}

/** Write an address into a 16-byte slot at `off` (IPv4 in the first 4 bytes, the rest zero). */
export function writeAddr(buf: Buffer, off: number, address: string): Family {
  buf.fill(0, off, off + 16);
  try {
    return writeAddressBytes(buf, off, address);
  } catch (err) {
    throw new AbiError((err as Error).message);
  }
}

export function addrBytes(address: string): Buffer {
  const b = Buffer.alloc(16);
  writeAddr(b, 0, address);
  return b;
}

/** Read an address of the given AF_* family from 16 bytes at `off` (IPv6 in RFC 5952 form). */
export function readAddr(buf: Buffer, off: number, af: number): string {
  return formatAddressBytes(buf.subarray(off, off + (af === AF_INET ? 4 : 16)));
}

// ---------------------------------------------------------------- frontends

export interface FrontendKey {
  address: string;
  port: number;
  protocol: L4Protocol;
}

export function encodeFrontendKey(k: FrontendKey): Buffer {
  const b = Buffer.alloc(SIZE.feKey);
  const family = writeAddr(b, 0, k.address);
  b.writeUInt16BE(k.port, 16);
  b.writeUInt8(protoNumber(k.protocol), 18);
  b.writeUInt8(afOf(family), 19);
  return b;
}

export function decodeFrontendKey(b: Buffer): FrontendKey {
  const proto = protoName(b[18]!);
  if (proto !== 'TCP' && proto !== 'UDP') throw new AbiError(`frontend key with protocol ${b[18]}`);
  return { address: readAddr(b, 0, b[19]!), port: b.readUInt16BE(16), protocol: proto };
}

export interface FrontendValue {
  id: number;
  flags: number;
  /** Backends in the Maglev table; 0 → new flows dropped as no_backend. */
  backends: number;
  affinityTimeout: number;
  /** Key of the frontend's Maglev table in ph_maglev (tables are shared by backend set); 0 = none. */
  table: number;
  /** M of that table (its slot count); 0 = no table. */
  tableSize: number;
}

export function encodeFrontendValue(v: FrontendValue): Buffer {
  const b = Buffer.alloc(SIZE.feValue);
  b.writeUInt32LE(v.id, 0);
  b.writeUInt16LE(v.flags, 4);
  b.writeUInt16LE(Math.min(v.backends, 0xffff), 6);
  b.writeUInt32LE(v.affinityTimeout, 8);
  b.writeUInt32LE(v.table, 12);
  b.writeUInt32LE(v.tableSize, 16);
  return b;
}

export function decodeFrontendValue(b: Buffer): FrontendValue {
  return {
    id: b.readUInt32LE(0), flags: b.readUInt16LE(4), backends: b.readUInt16LE(6), affinityTimeout: b.readUInt32LE(8),
    table: b.readUInt32LE(12), tableSize: b.readUInt32LE(16),
  };
}

/**
 * A Maglev table as ph_maglev's inner arrays hold it: two backend ids per
 * 8-byte element, slot s in the low half of element s/2 when s is even and
 * the high half when odd (maglev_pick in bpf/lib/maglev.h).
 */
export function encodeMaglevTable(slots: Uint32Array): Buffer {
  const elements = Math.ceil(slots.length / 2);
  const b = Buffer.alloc(elements * 8);
  // Little-endian u64 = low u32 then high u32: the slots in order.
  Buffer.from(slots.buffer, slots.byteOffset, slots.byteLength).copy(b, 0);
  return b;
}

export function maglevTableElements(m: number): number {
  return Math.ceil(m / 2);
}

// ---------------------------------------------------------------- backends

export interface BackendValue {
  address: string;
  port: number;
  /** Takes no new flows (terminating): BE_DRAINING. */
  draining?: boolean;
  /** An address of this node (delivered by the local stack): BE_LOCAL. */
  local?: boolean;
}

export function u32Key(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** ph_backend.family: 0 marks a free slot. */
const BACKEND_FAMILY_OFFSET = 18;

export function encodeBackend(v: BackendValue): Buffer {
  const b = Buffer.alloc(SIZE.backend);
  const family = writeAddr(b, 0, v.address);
  b.writeUInt16BE(v.port, 16);
  b.writeUInt8(afOf(family), BACKEND_FAMILY_OFFSET);
  b.writeUInt8((v.draining ? BE_DRAINING : 0) | (v.local ? BE_LOCAL : 0), 19);
  return b;
}

/** A ph_backends slot holds no backend (family 0): the array has a value for every id. */
export function isFreeBackendSlot(b: Buffer): boolean {
  return b[BACKEND_FAMILY_OFFSET] === 0;
}

export function decodeBackend(b: Buffer): BackendValue {
  return { address: readAddr(b, 0, b[BACKEND_FAMILY_OFFSET]!), port: b.readUInt16BE(16), ...(b[19]! & BE_DRAINING ? { draining: true } : {}), ...(b[19]! & BE_LOCAL ? { local: true } : {}) };
}

// ---------------------------------------------------------------- source ranges, affinity

/** Key of ph_src_ranges for one CIDR of a frontend: prefixlen = 32 (frontend id) + prefix bits. */
export function encodeSourceRangeKey(frontendId: number, cidr: string): Buffer {
  const slash = cidr.indexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = familyOf(address);
  const max = family === 'IPv4' ? 32 : 128;
  const bits = slash < 0 ? max : Number(cidr.slice(slash + 1));
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (slash >= 0 && !/^\d+$/.test(cidr.slice(slash + 1)))) {
    throw new AbiError(`not a CIDR: ${JSON.stringify(cidr)}`);
  }
  const b = Buffer.alloc(SIZE.srcKey);
  b.writeUInt32LE(32 + bits, 0);
  b.writeUInt32LE(frontendId >>> 0, 4);
  writeAddr(b, 8, address);
  // Host bits cleared, so one prefix has one key however it was written.
  for (let bit = bits; bit < max; bit++) {
    const i = 8 + (bit >> 3);
    b[i] = b[i]! & ~(0x80 >> (bit & 7));
  }
  return b;
}

export function decodeSourceRangeKey(b: Buffer): { frontendId: number; prefixBits: number; addressBytes: Buffer } {
  return { frontendId: b.readUInt32LE(4), prefixBits: b.readUInt32LE(0) - 32, addressBytes: Buffer.from(b.subarray(8, 24)) };
}

/** Key of ph_vips: a service address answered for ICMP echo. */
export function encodeVipKey(address: string): Buffer {
  const b = Buffer.alloc(SIZE.vipKey);
  b.writeUInt8(afOf(writeAddr(b, 0, address)), 16);
  return b;
}

export function decodeVipKey(b: Buffer): string {
  return readAddr(b, 0, b[16]!);
}

export function encodeMemberKey(frontendId: number, backendId: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(frontendId >>> 0, 0);
  b.writeUInt32LE(backendId >>> 0, 4);
  return b;
}

export function encodeAffinityKey(frontendId: number, client: string): Buffer {
  const b = Buffer.alloc(SIZE.affKey);
  b.writeUInt32LE(frontendId >>> 0, 0);
  b.writeUInt8(afOf(writeAddr(b, 8, client)), 4);
  return b;
}

export function decodeAffinityValue(b: Buffer): { lastSeenNs: bigint; backendId: number } {
  return { lastSeenNs: b.readBigUInt64LE(0), backendId: b.readUInt32LE(8) };
}

// ---------------------------------------------------------------- flows, conntrack, reverse NAT

export interface Flow {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** IP protocol number. */
  proto: number;
}

/** ph_flow.family. */
const FLOW_FAMILY_OFFSET = 37;

export function encodeFlow(f: Flow): Buffer {
  const b = Buffer.alloc(SIZE.flow);
  const family = writeAddr(b, 0, f.src);
  if (writeAddr(b, 16, f.dst) !== family) throw new AbiError(`flow mixes address families: ${f.src} -> ${f.dst}`);
  b.writeUInt16BE(f.sport, 32);
  b.writeUInt16BE(f.dport, 34);
  b.writeUInt8(f.proto, 36);
  b.writeUInt8(afOf(family), FLOW_FAMILY_OFFSET);
  return b;
}

/** The AF_* family of an encoded flow key (what decodeConntrack and decodeReverseNat need for the entry's addresses). */
export function flowFamily(b: Buffer): number {
  return b[FLOW_FAMILY_OFFSET]!;
}

export function decodeFlow(b: Buffer): Flow {
  const af = flowFamily(b);
  return { src: readAddr(b, 0, af), dst: readAddr(b, 16, af), sport: b.readUInt16BE(32), dport: b.readUInt16BE(34), proto: b[36]! };
}

export interface NextHop {
  ifindex: number;
  smac: string;
  dmac: string;
}

/** Writes the 6 bytes of `mac` at `off`, or throws an AbiError naming it. */
function writeMac(b: Buffer, off: number, mac: string): void {
  try {
    macBytes(mac).copy(b, off);
  } catch (err) {
    throw new AbiError((err as Error).message);
  }
}

function readNextHop(b: Buffer, off: number): NextHop {
  return { ifindex: b.readUInt32LE(off), smac: formatMac(b, off + 4), dmac: formatMac(b, off + 10) };
}

export interface ConntrackEntry {
  lastSeenNs: bigint;
  backendId: number;
  frontendId: number;
  /** Empty when the flow is not SNATed. */
  snatAddress: string;
  snatPort: number;
  state: number;
  flags: number;
}

export function decodeConntrack(b: Buffer, af: number): ConntrackEntry {
  const flags = b[35]!;
  return {
    lastSeenNs: b.readBigUInt64LE(0),
    backendId: b.readUInt32LE(8),
    frontendId: b.readUInt32LE(12),
    snatAddress: flags & CTF_SNAT ? readAddr(b, 16, af) : '',
    snatPort: b.readUInt16BE(32),
    state: b[34]!,
    flags,
  };
}

export function decodeBackendNextHop(b: Buffer): NextHop & { resolvedAtNs: bigint } {
  return { ...readNextHop(b, 0), resolvedAtNs: b.readBigUInt64LE(16) };
}

export interface ReverseNatEntry {
  lastSeenNs: bigint;
  newSrc: string;
  newDst: string;
  newSport: number;
  newDport: number;
  frontendId: number;
  backendId: number;
  nextHop: NextHop;
  flags: number;
}

export function decodeReverseNat(b: Buffer, af: number): ReverseNatEntry {
  return {
    lastSeenNs: b.readBigUInt64LE(0),
    newSrc: readAddr(b, 16, af),
    newDst: readAddr(b, 32, af),
    newSport: b.readUInt16BE(48),
    newDport: b.readUInt16BE(50),
    frontendId: b.readUInt32LE(52),
    nextHop: readNextHop(b, 56),
    backendId: b.readUInt32LE(72),
    flags: b[76]!,
  };
}

// ---------------------------------------------------------------- runtime

export interface Runtime {
  snatV4?: string;
  snatV6?: string;
  portMin: number;
  portMax: number;
}

/** An IPv4 SNAT source at `off`, an IPv6 one at `off + 16` (ph_runtime, ph_if_snat); absent ones stay zero. */
function writeSnatPair(b: Buffer, off: number, v4: string | undefined, v6: string | undefined): void {
  if (v4) {
    if (familyOf(v4) !== 'IPv4') throw new AbiError(`SNAT v4 address ${v4} is not IPv4`);
    writeAddr(b, off, v4);
  }
  if (v6) {
    if (familyOf(v6) !== 'IPv6') throw new AbiError(`SNAT v6 address ${v6} is not IPv6`);
    writeAddr(b, off + 16, v6);
  }
}

export function encodeRuntime(r: Runtime): Buffer {
  const b = Buffer.alloc(SIZE.runtime);
  writeSnatPair(b, 0, r.snatV4, r.snatV6);
  b.writeUInt16LE(r.portMin, 32);
  b.writeUInt16LE(r.portMax, 34);
  return b;
}

function isZero(b: Buffer, off: number, len: number): boolean {
  for (let i = off; i < off + len; i++) if (b[i] !== 0) return false;
  return true;
}

export function decodeRuntime(b: Buffer): Runtime {
  const r: Runtime = { portMin: b.readUInt16LE(32), portMax: b.readUInt16LE(34) };
  if (!isZero(b, 0, 16)) r.snatV4 = readAddr(b, 0, AF_INET);
  if (!isZero(b, 16, 16)) r.snatV6 = readAddr(b, 16, AF_INET6);
  return r;
}

/** ph_liveness: the stamp (CLOCK_MONOTONIC ns, process.hrtime.bigint() on Linux); 0 = never. */
export function encodeLiveness(stampNs: bigint): Buffer {
  const b = Buffer.alloc(SIZE.liveness);
  b.writeBigUInt64LE(stampNs, 0);
  return b;
}

export function decodeLiveness(b: Buffer): bigint {
  return b.readBigUInt64LE(0);
}

// ---------------------------------------------------------------- responder

export interface ResponderKey {
  address: string;
  ifindex: number;
}

export function encodeResponderKey(k: ResponderKey): Buffer {
  const b = Buffer.alloc(SIZE.respKey);
  const family = writeAddr(b, 0, k.address);
  b.writeUInt32LE(k.ifindex, 16);
  b.writeUInt8(afOf(family), 20);
  return b;
}

export function decodeResponderKey(b: Buffer): ResponderKey {
  return { address: readAddr(b, 0, b[20]!), ifindex: b.readUInt32LE(16) };
}

export function encodeResponderValue(mac: string): Buffer {
  const b = Buffer.alloc(SIZE.respValue);
  writeMac(b, 0, mac);
  return b;
}

export function decodeResponderValue(b: Buffer): { mac: string } {
  return { mac: formatMac(b, 0) };
}

// ------------------------------------------------ foreign answers (bpf/lib/l2_foreign.h)

/** ph_l2_foreign: another MAC answering or announcing one of our addresses (key: the responder's). */
export interface L2ForeignAnswers {
  count: bigint;
  /** CLOCK_MONOTONIC ns of the last one (process.hrtime.bigint() on Linux). */
  lastNs: bigint;
  /** The MAC of the last one. */
  mac: string;
}

export function decodeL2Foreign(b: Buffer): L2ForeignAnswers {
  return { count: b.readBigUInt64LE(0), lastNs: b.readBigUInt64LE(8), mac: formatMac(b, 16) };
}

// ---------------------------------------------------------------- counters

export interface Traffic {
  packets: bigint;
  bytes: bigint;
}

export function decodeTraffic(b: Buffer): Traffic {
  return { packets: b.readBigUInt64LE(0), bytes: b.readBigUInt64LE(8) };
}

// ------------------------------------------------- socket LB (bpf/lib/sock_maps.h)

/** Maps of bpf/sock.bpf.c that the XDP object does not have. */
export const SOCK_MAP = { reverse: 'ph_sock_rev', affinity: 'ph_sock_aff', stats: 'ph_sock_stats' } as const;
export type SockMapRole = keyof typeof SOCK_MAP;

export const SOCK_SIZE = { revKey: 32, revValue: 24, affKey: 16 } as const;

/** enum ph_sock_stat, in order; names without PH_SOCK_STAT_, lower-cased. */
export const SOCK_STAT_REASONS = ['connect', 'sendmsg', 'no_backend', 'rev', 'rev_fail', 'affinity_hit'] as const;
export type SockStatReason = (typeof SOCK_STAT_REASONS)[number];

/** A ph_sock_rev entry: a socket's backend address as it sees it → the service address it asked for. */
export interface SockRevEntry {
  cookie: bigint;
  backend: string;
  backendPort: number;
  service: string;
  servicePort: number;
  frontendId: number;
}

export function decodeSockRev(key: Buffer, value: Buffer): SockRevEntry {
  return {
    cookie: key.readBigUInt64LE(0),
    backend: readAddr(key, 8, key[26]!),
    backendPort: key.readUInt16BE(24),
    service: readAddr(value, 0, value[18]!),
    servicePort: value.readUInt16BE(16),
    frontendId: value.readUInt32LE(20),
  };
}

/** struct ph_if_snat (32 bytes): the SNAT source of one egress interface per family (absent: ph_runtime's). */
export function encodeIfSnat(a: { v4?: string; v6?: string }): Buffer {
  const b = Buffer.alloc(SIZE.ifSnat);
  writeSnatPair(b, 0, a.v4, a.v6);
  return b;
}

/** struct ph_if_mac (8 bytes): the MAC of an interface pharos is attached to. */
export function encodeIfMac(mac: string): Buffer {
  const b = Buffer.alloc(SIZE.ifMac);
  writeMac(b, 0, mac);
  return b;
}
