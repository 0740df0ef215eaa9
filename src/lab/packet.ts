/**
 * Packet builder and parser for data-path fixtures (scapy / Katran
 * PacketAttributes style): packets are written as data and compared byte
 * for byte.
 *
 *   const frame = pkt()
 *     .eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
 *     .ipv4({ src: '198.18.0.1', dst: '198.18.0.10' })
 *     .tcp({ sport: 40000, dport: 80, flags: 'S', options: [{ kind: 'mss', value: 1460 }] })
 *     .build();
 *   const p = parse(frame);  // p.ip?.checksumOk, p.tcp?.flags === 'S', ...
 *
 * Lengths, next-protocol fields and checksums are derived by default; every
 * one of them can be overridden to make malformed packets (`checksum: 'bad'`,
 * `totalLength: 9999`, `ihl: 4`, ...). `parse` never throws: a frame that
 * ends early is decoded as far as it goes and flagged `truncated`.
 */
import { formatAddressBytes } from '../model/cidr.js';

// The pcap reader and writer live with the lab's capture (src/lab/pcap.ts).
export { readPcap, writePcap } from './pcap.js';

// ---------------------------------------------------------------------------
// Addresses

export function macBytes(mac: string): Buffer {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`bad MAC address '${mac}'`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function macString(b: Buffer): string {
  return [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function ipv4Bytes(addr: string): Buffer {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) throw new Error(`bad IPv4 address '${addr}'`);
  return Buffer.from(m.slice(1).map(Number));
}

export function ipv4String(b: Buffer): string {
  return [...b.subarray(0, 4)].join('.');
}

export function ipv6Bytes(addr: string): Buffer {
  let text = addr;
  const v4tail = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4tail) {
    const v4 = ipv4Bytes(v4tail[2]!);
    text = `${v4tail[1]}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const halves = text.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length > 2 || (halves.length === 1 ? missing !== 0 : missing < 1)) throw new Error(`bad IPv6 address '${addr}'`);
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`bad IPv6 address '${addr}'`);
    out.writeUInt16BE(parseInt(g, 16), i * 2);
  });
  return out;
}

/** RFC 5952 text: lowercase, longest run (≥ 2) of zero groups as `::`. */
export function ipv6String(b: Buffer): string {
  return formatAddressBytes(b.subarray(0, 16));
}

// ---------------------------------------------------------------------------
// Checksums

/** One's-complement sum of 16-bit words (not complemented, not folded past 16 bits). */
function sum16(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** RFC 1071 Internet checksum of the concatenated buffers (each must be even-length except the last). */
export function inetChecksum(...bufs: Buffer[]): number {
  return ~sum16(Buffer.concat(bufs)) & 0xffff;
}

function pseudoHeader4(src: Buffer, dst: Buffer, proto: number, length: number): Buffer {
  const h = Buffer.alloc(12);
  src.copy(h, 0);
  dst.copy(h, 4);
  h[9] = proto;
  h.writeUInt16BE(length, 10);
  return h;
}

function pseudoHeader6(src: Buffer, dst: Buffer, nextHeader: number, length: number): Buffer {
  const h = Buffer.alloc(40);
  src.copy(h, 0);
  dst.copy(h, 16);
  h.writeUInt32BE(length, 32);
  h[39] = nextHeader;
  return h;
}

/** `'bad'` flips bits of the right value so the checksum is wrong but not zero. */
export type ChecksumOverride = number | 'bad';

function applyOverride(correct: number, override: ChecksumOverride | 'zero' | undefined): number {
  if (override === undefined) return correct;
  if (override === 'zero') return 0;
  if (override === 'bad') return (correct ^ 0x5a5a) || 0x1234;
  return override;
}

// ---------------------------------------------------------------------------
// Protocol numbers

export const ETH_P = { IPV4: 0x0800, ARP: 0x0806, VLAN: 0x8100, QINQ: 0x88a8, IPV6: 0x86dd } as const;
export const IPPROTO = { HOPOPTS: 0, ICMP: 1, IPIP: 4, TCP: 6, UDP: 17, IPV6: 41, ROUTING: 43, FRAGMENT: 44, GRE: 47, ESP: 50, AH: 51, ICMPV6: 58, NONE: 59, DSTOPTS: 60 } as const;
const EXT_PROTO: Record<ExtKind, number> = { hop: IPPROTO.HOPOPTS, routing: IPPROTO.ROUTING, frag: IPPROTO.FRAGMENT, dest: IPPROTO.DSTOPTS };

// ---------------------------------------------------------------------------
// Layer specs

export interface EthSpec { src: string; dst: string; type?: number }
export interface VlanSpec { vid: number; pcp?: number; dei?: boolean; type?: number; /** TPID of this tag, written in the header before it; default 0x8100 */ tpid?: number }
export interface Ipv4Spec {
  src: string; dst: string;
  ttl?: number; id?: number; tos?: number;
  /** 'DF', 'MF', 'DF+MF', '' or the 3 flag bits as a number (4 = reserved/evil bit, 2 = DF, 1 = MF). */
  flags?: string | number;
  /** Fragment offset in 8-byte units (the header field). */
  fragOffset?: number;
  /** Raw option bytes; padded with zeros (EOL) to a multiple of 4. */
  options?: Buffer;
  ihl?: number; proto?: number; totalLength?: number; checksum?: ChecksumOverride;
}
export interface Ipv6Spec {
  src: string; dst: string;
  /** Default 64, or 255 when followed by NDP (ns/na) as RFC 4861 requires. */
  hopLimit?: number; flowLabel?: number; trafficClass?: number;
  nextHeader?: number; payloadLength?: number;
}
export type ExtKind = 'hop' | 'dest' | 'routing' | 'frag';
export interface ExtSpec {
  nextHeader?: number;
  /** hop/dest: raw option TLVs; padded with Pad1/PadN to a multiple of 8. */
  options?: Buffer;
  /** Overrides the Hdr Ext Len field (hop/dest/routing). */
  hdrExtLen?: number;
  /** routing: type (default 0), segments left (default addresses.length), addresses; or raw type-specific data. */
  routingType?: number; segmentsLeft?: number; addresses?: string[]; data?: Buffer;
  /** frag: offset in 8-byte units, more-fragments flag, identification. */
  offset?: number; more?: boolean; id?: number;
}
export type TcpOption =
  | { kind: 'eol' } | { kind: 'nop' }
  | { kind: 'mss'; value: number }
  | { kind: 'wscale'; value: number }
  | { kind: 'sackPerm' }
  | { kind: 'sack'; blocks: Array<[number, number]> }
  | { kind: 'timestamp'; val: number; ecr: number }
  | { kind: number; data: Buffer };
export interface TcpSpec {
  sport: number; dport: number;
  seq?: number; ack?: number;
  /** Letters from FSRPAUEC ('S', 'SA', 'PA', 'FA', 'R', ...) or the flag bits as a number. */
  flags?: string | number;
  window?: number; urgent?: number;
  options?: TcpOption[] | Buffer;
  /** Overrides the data offset field (32-bit words). */
  dataOffset?: number;
  checksum?: ChecksumOverride;
}
export interface UdpSpec { sport: number; dport: number; length?: number; checksum?: ChecksumOverride | 'zero' }
export interface IcmpSpec {
  type: number; code?: number;
  /** Echo id/sequence (bytes 4-7). */
  id?: number; seq?: number;
  /** Next-hop MTU for "fragmentation needed" (type 3 code 4) / packet too big. */
  mtu?: number;
  /** Raw bytes 4-7 (overrides id/seq/mtu). */
  rest?: Buffer;
  checksum?: ChecksumOverride;
}
export type Icmp6Spec = IcmpSpec;
export interface ArpSpec {
  op: 'request' | 'reply' | number;
  sha: string; spa: string; tha?: string; tpa: string;
}
export interface NsSpec { target: string; /** Source link-layer address option. */ sll?: string; checksum?: ChecksumOverride }
export interface NaSpec {
  target: string; /** Target link-layer address option. */ tll?: string;
  router?: boolean; solicited?: boolean; override?: boolean;
  checksum?: ChecksumOverride;
}

type Layer =
  | { kind: 'eth'; spec: EthSpec }
  | { kind: 'vlan'; spec: VlanSpec }
  | { kind: 'ipv4'; spec: Ipv4Spec }
  | { kind: 'ipv6'; spec: Ipv6Spec }
  | { kind: 'ext'; ext: ExtKind; spec: ExtSpec }
  | { kind: 'tcp'; spec: TcpSpec }
  | { kind: 'udp'; spec: UdpSpec }
  | { kind: 'icmp'; spec: IcmpSpec }
  | { kind: 'icmp6'; spec: Icmp6Spec }
  | { kind: 'arp'; spec: ArpSpec }
  | { kind: 'ns'; spec: NsSpec }
  | { kind: 'na'; spec: NaSpec }
  | { kind: 'raw'; data: Buffer };

const TCP_FLAG_LETTERS = 'FSRPAUEC';

export function tcpFlagBits(flags: string | number): number {
  if (typeof flags === 'number') return flags;
  let bits = 0;
  for (const ch of flags.toUpperCase()) {
    const i = TCP_FLAG_LETTERS.indexOf(ch);
    if (i < 0) throw new Error(`unknown TCP flag '${ch}' in '${flags}'`);
    bits |= 1 << i;
  }
  return bits;
}

export function tcpFlagString(bits: number): string {
  let s = '';
  for (let i = 0; i < 8; i++) if (bits & (1 << i)) s += TCP_FLAG_LETTERS[i];
  return s;
}

function ipv4FlagBits(flags: string | number | undefined): number {
  if (flags === undefined) return 0;
  if (typeof flags === 'number') return flags;
  let bits = 0;
  for (const f of flags.split(/[+|, ]/).filter(Boolean)) {
    if (f === 'DF') bits |= 2;
    else if (f === 'MF') bits |= 1;
    else if (f === 'RF' || f === 'evil') bits |= 4;
    else throw new Error(`unknown IPv4 flag '${f}'`);
  }
  return bits;
}

function encodeTcpOptions(opts: TcpOption[] | Buffer | undefined): Buffer {
  if (!opts) return Buffer.alloc(0);
  if (Buffer.isBuffer(opts)) return opts;
  const parts: Buffer[] = [];
  for (const o of opts) {
    switch (o.kind) {
      case 'eol': parts.push(Buffer.from([0])); break;
      case 'nop': parts.push(Buffer.from([1])); break;
      case 'mss': { const b = Buffer.from([2, 4, 0, 0]); b.writeUInt16BE(o.value, 2); parts.push(b); break; }
      case 'wscale': parts.push(Buffer.from([3, 3, o.value])); break;
      case 'sackPerm': parts.push(Buffer.from([4, 2])); break;
      case 'sack': {
        const b = Buffer.alloc(2 + 8 * o.blocks.length);
        b[0] = 5; b[1] = b.length;
        o.blocks.forEach(([l, r], i) => { b.writeUInt32BE(l >>> 0, 2 + 8 * i); b.writeUInt32BE(r >>> 0, 6 + 8 * i); });
        parts.push(b);
        break;
      }
      case 'timestamp': { const b = Buffer.alloc(10); b[0] = 8; b[1] = 10; b.writeUInt32BE(o.val >>> 0, 2); b.writeUInt32BE(o.ecr >>> 0, 6); parts.push(b); break; }
      default: parts.push(Buffer.concat([Buffer.from([o.kind, o.data.length + 2]), o.data]));
    }
  }
  return Buffer.concat(parts);
}

function padTo(buf: Buffer, multiple: number): Buffer {
  const rem = buf.length % multiple;
  return rem ? Buffer.concat([buf, Buffer.alloc(multiple - rem)]) : buf;
}

/** Pads hop-by-hop/destination option TLVs (after the 2-byte header) to a multiple of 8 with Pad1/PadN. */
function padExtOptions(options: Buffer): Buffer {
  const need = (8 - ((2 + options.length) % 8)) % 8;
  if (need === 0) return options;
  if (need === 1) return Buffer.concat([options, Buffer.from([0])]);
  return Buffer.concat([options, Buffer.from([1, need - 2]), Buffer.alloc(need - 2)]);
}

function ndpOption(type: number, mac: string): Buffer {
  return Buffer.concat([Buffer.from([type, 1]), macBytes(mac)]);
}

/** Protocol number / EtherType that `layer` has when it follows another layer. */
function etherTypeOf(layer: Layer | undefined): number | undefined {
  switch (layer?.kind) {
    case 'vlan': return layer.spec.tpid ?? ETH_P.VLAN;
    case 'ipv4': return ETH_P.IPV4;
    case 'ipv6': return ETH_P.IPV6;
    case 'arp': return ETH_P.ARP;
    default: return undefined;
  }
}

function ipProtoOf(layer: Layer | undefined): number | undefined {
  switch (layer?.kind) {
    case 'ipv4': return IPPROTO.IPIP;
    case 'ipv6': return IPPROTO.IPV6;
    case 'ext': return EXT_PROTO[layer.ext];
    case 'tcp': return IPPROTO.TCP;
    case 'udp': return IPPROTO.UDP;
    case 'icmp': return IPPROTO.ICMP;
    case 'icmp6': case 'ns': case 'na': return IPPROTO.ICMPV6;
    case undefined: return IPPROTO.NONE;
    default: return undefined;
  }
}

// ---------------------------------------------------------------------------
// Builder

export class PacketBuilder {
  private readonly layers: Layer[] = [];

  eth(spec: EthSpec): this { return this.push({ kind: 'eth', spec }); }
  vlan(spec: VlanSpec): this { return this.push({ kind: 'vlan', spec }); }
  ipv4(spec: Ipv4Spec): this { return this.push({ kind: 'ipv4', spec }); }
  ipv6(spec: Ipv6Spec): this { return this.push({ kind: 'ipv6', spec }); }
  ext(ext: ExtKind, spec: ExtSpec = {}): this { return this.push({ kind: 'ext', ext, spec }); }
  tcp(spec: TcpSpec): this { return this.push({ kind: 'tcp', spec }); }
  udp(spec: UdpSpec): this { return this.push({ kind: 'udp', spec }); }
  icmp(spec: IcmpSpec): this { return this.push({ kind: 'icmp', spec }); }
  icmp6(spec: Icmp6Spec): this { return this.push({ kind: 'icmp6', spec }); }
  arp(spec: ArpSpec): this { return this.push({ kind: 'arp', spec }); }
  /** ICMPv6 neighbour solicitation (type 135). */
  ns(spec: NsSpec): this { return this.push({ kind: 'ns', spec }); }
  /** ICMPv6 neighbour advertisement (type 136). */
  na(spec: NaSpec): this { return this.push({ kind: 'na', spec }); }
  /** Bytes after the last header (or between headers, to splice in anything unsupported). */
  payload(data: Buffer | string): this { return this.push({ kind: 'raw', data: typeof data === 'string' ? Buffer.from(data) : data }); }

  /** An independent copy, to derive variants of one base packet. */
  clone(): PacketBuilder {
    const c = new PacketBuilder();
    c.layers.push(...this.layers.map((l) => ({ ...l })));
    return c;
  }

  build(): Buffer {
    let inner: Buffer = Buffer.alloc(0);
    for (let i = this.layers.length - 1; i >= 0; i--) inner = this.serialize(i, inner);
    return inner;
  }

  private push(layer: Layer): this {
    this.layers.push(layer);
    return this;
  }

  /** Nearest IP layer before index i, for pseudo-headers. */
  private enclosingIp(i: number): { v4?: Ipv4Spec; v6?: Ipv6Spec; finalDst?: Buffer } {
    let finalDst: Buffer | undefined;
    for (let j = i - 1; j >= 0; j--) {
      const l = this.layers[j]!;
      // With a routing header, the pseudo-header uses the final destination (RFC 8200 8.1).
      if (l.kind === 'ext' && l.ext === 'routing') {
        const r = l.spec;
        const left = r.segmentsLeft ?? r.addresses?.length ?? 0;
        if (left > 0 && r.addresses?.length) finalDst = ipv6Bytes(r.addresses[r.addresses.length - 1]!);
        else if (left > 0 && (r.routingType ?? 0) === 0 && r.data && r.data.length >= 20) finalDst = r.data.subarray(r.data.length - 16);
      }
      if (l.kind === 'ipv4') return { v4: l.spec };
      if (l.kind === 'ipv6') return { v6: l.spec, finalDst };
    }
    return {};
  }

  private l4Checksum(i: number, proto: number, segment: Buffer): number {
    // ICMPv4 sums only its own bytes; every other L4 protocol adds a pseudo-header.
    if (proto === IPPROTO.ICMP) return inetChecksum(segment);
    const ip = this.enclosingIp(i);
    if (ip.v4) return inetChecksum(pseudoHeader4(ipv4Bytes(ip.v4.src), ipv4Bytes(ip.v4.dst), proto, segment.length), segment);
    if (ip.v6) return inetChecksum(pseudoHeader6(ipv6Bytes(ip.v6.src), ip.finalDst ?? ipv6Bytes(ip.v6.dst), proto, segment.length), segment);
    throw new Error(`layer ${i} (${this.layers[i]!.kind}) needs an IP layer before it for its checksum`);
  }

  private serialize(i: number, inner: Buffer): Buffer {
    const layer = this.layers[i]!;
    const next = this.layers[i + 1];
    switch (layer.kind) {
      case 'raw':
        return Buffer.concat([layer.data, inner]);
      case 'eth': {
        const h = Buffer.alloc(14);
        macBytes(layer.spec.dst).copy(h, 0);
        macBytes(layer.spec.src).copy(h, 6);
        const type = layer.spec.type ?? etherTypeOf(next);
        if (type === undefined) throw new Error('eth: give `type` (cannot derive it from the next layer)');
        h.writeUInt16BE(type, 12);
        return Buffer.concat([h, inner]);
      }
      case 'vlan': {
        // The TPID sits in the previous header's type field; this header is TCI + inner type.
        const h = Buffer.alloc(4);
        const s = layer.spec;
        h.writeUInt16BE(((s.pcp ?? 0) << 13) | (s.dei ? 1 << 12 : 0) | (s.vid & 0xfff), 0);
        const type = s.type ?? etherTypeOf(next);
        if (type === undefined) throw new Error('vlan: give `type`');
        h.writeUInt16BE(type, 2);
        return Buffer.concat([h, inner]);
      }
      case 'arp': {
        const s = layer.spec;
        const h = Buffer.alloc(28);
        h.writeUInt16BE(1, 0);
        h.writeUInt16BE(ETH_P.IPV4, 2);
        h[4] = 6;
        h[5] = 4;
        h.writeUInt16BE(s.op === 'request' ? 1 : s.op === 'reply' ? 2 : s.op, 6);
        macBytes(s.sha).copy(h, 8);
        ipv4Bytes(s.spa).copy(h, 14);
        macBytes(s.tha ?? '00:00:00:00:00:00').copy(h, 18);
        ipv4Bytes(s.tpa).copy(h, 24);
        return Buffer.concat([h, inner]);
      }
      case 'ipv4': {
        const s = layer.spec;
        const options = padTo(s.options ?? Buffer.alloc(0), 4);
        const h = Buffer.alloc(20 + options.length);
        const ihl = s.ihl ?? h.length / 4;
        h[0] = 0x40 | (ihl & 0xf);
        h[1] = s.tos ?? 0;
        h.writeUInt16BE(s.totalLength ?? h.length + inner.length, 2);
        h.writeUInt16BE(s.id ?? 0, 4);
        h.writeUInt16BE(((ipv4FlagBits(s.flags) & 7) << 13) | ((s.fragOffset ?? 0) & 0x1fff), 6);
        h[8] = s.ttl ?? 64;
        const proto = s.proto ?? ipProtoOf(next);
        if (proto === undefined) throw new Error('ipv4: give `proto`');
        h[9] = proto;
        ipv4Bytes(s.src).copy(h, 12);
        ipv4Bytes(s.dst).copy(h, 16);
        options.copy(h, 20);
        h.writeUInt16BE(applyOverride(inetChecksum(h), s.checksum), 10);
        return Buffer.concat([h, inner]);
      }
      case 'ipv6': {
        const s = layer.spec;
        const h = Buffer.alloc(40);
        h.writeUInt32BE(((6 << 28) | ((s.trafficClass ?? 0) << 20) | ((s.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
        h.writeUInt16BE(s.payloadLength ?? inner.length, 4);
        const nh = s.nextHeader ?? ipProtoOf(next);
        if (nh === undefined) throw new Error('ipv6: give `nextHeader`');
        h[6] = nh;
        const ndp = this.layers.slice(i + 1).some((l) => l.kind === 'ns' || l.kind === 'na');
        h[7] = s.hopLimit ?? (ndp ? 255 : 64);
        ipv6Bytes(s.src).copy(h, 8);
        ipv6Bytes(s.dst).copy(h, 24);
        return Buffer.concat([h, inner]);
      }
      case 'ext': {
        const s = layer.spec;
        const nh = s.nextHeader ?? ipProtoOf(next);
        if (nh === undefined) throw new Error(`ext ${layer.ext}: give \`nextHeader\``);
        let h: Buffer;
        if (layer.ext === 'frag') {
          h = Buffer.alloc(8);
          h[0] = nh;
          h.writeUInt16BE(((s.offset ?? 0) << 3) | (s.more ? 1 : 0), 2);
          h.writeUInt32BE((s.id ?? 0) >>> 0, 4);
          return Buffer.concat([h, inner]);
        }
        let body: Buffer;
        if (layer.ext === 'routing') {
          const data = s.data ?? Buffer.concat([Buffer.alloc(4), ...(s.addresses ?? []).map(ipv6Bytes)]);
          body = Buffer.concat([Buffer.from([s.routingType ?? 0, s.segmentsLeft ?? (s.addresses?.length ?? 0)]), data]);
          body = padTo(Buffer.concat([Buffer.alloc(2), body]), 8).subarray(2);
        } else {
          body = padExtOptions(s.options ?? Buffer.alloc(0));
        }
        h = Buffer.concat([Buffer.from([nh, s.hdrExtLen ?? (body.length + 2) / 8 - 1]), body]);
        return Buffer.concat([h, inner]);
      }
      case 'tcp': {
        const s = layer.spec;
        const options = padTo(encodeTcpOptions(s.options), 4);
        const h = Buffer.alloc(20 + options.length);
        h.writeUInt16BE(s.sport, 0);
        h.writeUInt16BE(s.dport, 2);
        h.writeUInt32BE((s.seq ?? 0) >>> 0, 4);
        h.writeUInt32BE((s.ack ?? 0) >>> 0, 8);
        const flags = tcpFlagBits(s.flags ?? 'S');
        h.writeUInt16BE(((s.dataOffset ?? h.length / 4) << 12) | (flags & 0x1ff), 12);
        h.writeUInt16BE(s.window ?? 65535, 14);
        h.writeUInt16BE(s.urgent ?? 0, 18);
        options.copy(h, 20);
        const seg = Buffer.concat([h, inner]);
        seg.writeUInt16BE(applyOverride(this.l4Checksum(i, IPPROTO.TCP, seg), s.checksum), 16);
        return seg;
      }
      case 'udp': {
        const s = layer.spec;
        const seg = Buffer.concat([Buffer.alloc(8), inner]);
        seg.writeUInt16BE(s.sport, 0);
        seg.writeUInt16BE(s.dport, 2);
        seg.writeUInt16BE(s.length ?? seg.length, 4);
        // A computed 0 is sent as 0xffff (RFC 768): 0 means "no checksum".
        const correct = this.l4Checksum(i, IPPROTO.UDP, seg) || 0xffff;
        seg.writeUInt16BE(applyOverride(correct, s.checksum), 6);
        return seg;
      }
      case 'icmp':
      case 'icmp6': {
        const s = layer.spec;
        const h = Buffer.alloc(8);
        h[0] = s.type;
        h[1] = s.code ?? 0;
        if (s.rest) s.rest.copy(h, 4, 0, 4);
        else if (s.mtu !== undefined) {
          if (layer.kind === 'icmp') h.writeUInt16BE(s.mtu, 6);
          else h.writeUInt32BE(s.mtu, 4);
        } else {
          h.writeUInt16BE(s.id ?? 0, 4);
          h.writeUInt16BE(s.seq ?? 0, 6);
        }
        const seg = Buffer.concat([h, inner]);
        const proto = layer.kind === 'icmp' ? IPPROTO.ICMP : IPPROTO.ICMPV6;
        seg.writeUInt16BE(applyOverride(this.l4Checksum(i, proto, seg), s.checksum), 2);
        return seg;
      }
      case 'ns':
      case 'na': {
        const s = layer.spec;
        const h = Buffer.alloc(24);
        h[0] = layer.kind === 'ns' ? 135 : 136;
        if (layer.kind === 'na') {
          const na = layer.spec;
          h[4] = (na.router ? 0x80 : 0) | (na.solicited ? 0x40 : 0) | (na.override ? 0x20 : 0);
        }
        ipv6Bytes(s.target).copy(h, 8);
        const lla = layer.kind === 'ns' ? layer.spec.sll : layer.spec.tll;
        const opt = lla ? ndpOption(layer.kind === 'ns' ? 1 : 2, lla) : Buffer.alloc(0);
        const seg = Buffer.concat([h, opt, inner]);
        seg.writeUInt16BE(applyOverride(this.l4Checksum(i, IPPROTO.ICMPV6, seg), s.checksum), 2);
        return seg;
      }
    }
  }
}

export function pkt(): PacketBuilder {
  return new PacketBuilder();
}

/** The first n bytes (a copy), to make frames that end early. */
export function truncate(buf: Buffer, n: number): Buffer {
  return Buffer.from(buf.subarray(0, Math.max(0, n)));
}

// ---------------------------------------------------------------------------
// Parser

export interface ParsedEth { dst: string; src: string; type: number }
export interface ParsedVlan { tpid: number; vid: number; pcp: number; dei: boolean; type: number }
export interface ParsedArp { htype: number; ptype: number; hlen: number; plen: number; op: number; sha: string; spa: string; tha: string; tpa: string }
export interface ParsedIpv4 {
  version: 4; ihl: number; tos: number; totalLength: number; id: number;
  flags: { rf: boolean; df: boolean; mf: boolean }; fragOffset: number;
  ttl: number; proto: number; checksum: number; checksumOk: boolean;
  src: string; dst: string; options: Buffer;
}
export interface ParsedIpv6 {
  version: 6; trafficClass: number; flowLabel: number; payloadLength: number;
  nextHeader: number; hopLimit: number; src: string; dst: string;
}
export interface ParsedExt {
  kind: ExtKind; nextHeader: number; length: number;
  /** hop/dest: option TLV bytes; routing: type-specific data after segments left. */
  data: Buffer;
  routingType?: number; segmentsLeft?: number;
  offset?: number; more?: boolean; id?: number;
}
export type ParsedTcpOption =
  | { kind: 'eol' } | { kind: 'nop' } | { kind: 'mss'; value: number } | { kind: 'wscale'; value: number }
  | { kind: 'sackPerm' } | { kind: 'sack'; blocks: Array<[number, number]> } | { kind: 'timestamp'; val: number; ecr: number }
  | { kind: number; data: Buffer };
export interface ParsedTcp {
  sport: number; dport: number; seq: number; ack: number; dataOffset: number;
  flags: string; flagBits: number; window: number; checksum: number; urgent: number;
  options: ParsedTcpOption[]; rawOptions: Buffer; checksumOk: boolean | undefined;
}
export interface ParsedUdp { sport: number; dport: number; length: number; checksum: number; checksumOk: boolean | undefined }
export interface ParsedIcmp {
  type: number; code: number; checksum: number; checksumOk: boolean | undefined;
  /** Bytes 4-7 as echo id/sequence. */
  id: number; seq: number; rest: Buffer;
  /** ICMP errors: the quoted packet, decoded from its IP header (usually cut short). */
  quoted?: ParsedPacket;
}
export interface ParsedNdp {
  kind: 'ns' | 'na'; target: string;
  router: boolean; solicited: boolean; override: boolean;
  sll?: string; tll?: string;
}
export interface ParsedPacket {
  eth?: ParsedEth;
  vlans: ParsedVlan[];
  arp?: ParsedArp;
  ip?: ParsedIpv4;
  ip6?: ParsedIpv6;
  ext: ParsedExt[];
  tcp?: ParsedTcp;
  udp?: ParsedUdp;
  icmp?: ParsedIcmp;
  icmp6?: ParsedIcmp;
  ndp?: ParsedNdp;
  /**
   * TCP/UDP ports whenever their first 4 bytes are there, even if the rest
   * of the header is cut (as in the packet quoted by an ICMP error).
   */
  ports?: { proto: number; sport: number; dport: number };
  /** Packet inside an IP-in-IP / IPv6-in-IP encapsulation, decoded from its IP header. */
  inner?: ParsedPacket;
  /** Bytes after the last decoded header (L4 payload for TCP/UDP/ICMP). */
  payload: Buffer;
  /** The frame ended before a header (or the IP length) it announced. */
  truncated: boolean;
  /** Human-readable notes on what could not be decoded. */
  notes: string[];
}

/** Decodes an Ethernet frame. Never throws. */
export function parse(buf: Buffer): ParsedPacket {
  const p: ParsedPacket = { vlans: [], ext: [], payload: Buffer.alloc(0), truncated: false, notes: [] };
  if (buf.length < 14) return cut(p, 'ethernet header', buf);
  p.eth = { dst: macString(buf.subarray(0, 6)), src: macString(buf.subarray(6, 12)), type: buf.readUInt16BE(12) };
  let type = p.eth.type;
  let off = 14;
  for (let tags = 0; (type === ETH_P.VLAN || type === ETH_P.QINQ) && tags < 2; tags++) {
    if (buf.length < off + 4) return cut(p, 'vlan tag', buf.subarray(off));
    const tci = buf.readUInt16BE(off);
    const inner = buf.readUInt16BE(off + 2);
    p.vlans.push({ tpid: type, vid: tci & 0xfff, pcp: tci >> 13, dei: Boolean(tci & 0x1000), type: inner });
    type = inner;
    off += 4;
  }
  const rest = buf.subarray(off);
  if (type === ETH_P.ARP) return parseArp(p, rest);
  if (type === ETH_P.IPV4 || type === ETH_P.IPV6) return parseIpInto(p, rest, type === ETH_P.IPV4 ? 4 : 6);
  p.payload = Buffer.from(rest);
  p.notes.push(`ethertype 0x${type.toString(16)} not decoded`);
  return p;
}

/** Decodes a packet that starts at its IP header (version taken from the first nibble). Never throws. */
export function parseIp(buf: Buffer): ParsedPacket {
  const p: ParsedPacket = { vlans: [], ext: [], payload: Buffer.alloc(0), truncated: false, notes: [] };
  if (buf.length < 1) return cut(p, 'ip header', buf);
  const version = buf[0]! >> 4;
  if (version !== 4 && version !== 6) {
    p.payload = Buffer.from(buf);
    p.notes.push(`ip version ${version}`);
    return p;
  }
  return parseIpInto(p, buf, version);
}

function cut(p: ParsedPacket, what: string, rest: Buffer): ParsedPacket {
  p.truncated = true;
  p.notes.push(`truncated in ${what}`);
  p.payload = Buffer.from(rest);
  return p;
}

function parseArp(p: ParsedPacket, b: Buffer): ParsedPacket {
  if (b.length < 28) return cut(p, 'arp', b);
  p.arp = {
    htype: b.readUInt16BE(0), ptype: b.readUInt16BE(2), hlen: b[4]!, plen: b[5]!, op: b.readUInt16BE(6),
    sha: macString(b.subarray(8, 14)), spa: ipv4String(b.subarray(14, 18)),
    tha: macString(b.subarray(18, 24)), tpa: ipv4String(b.subarray(24, 28)),
  };
  p.payload = Buffer.from(b.subarray(28));
  return p;
}

function parseIpInto(p: ParsedPacket, b: Buffer, version: 4 | 6): ParsedPacket {
  let proto: number;
  let l4: Buffer;
  let pseudo: (proto: number, len: number) => Buffer;
  if (version === 4) {
    if (b.length < 20) return cut(p, 'ipv4 header', b);
    const ihl = b[0]! & 0xf;
    const hlen = ihl * 4;
    const totalLength = b.readUInt16BE(2);
    const fl = b.readUInt16BE(6);
    const headerComplete = hlen >= 20 && b.length >= hlen;
    p.ip = {
      version: 4, ihl, tos: b[1]!, totalLength, id: b.readUInt16BE(4),
      flags: { rf: Boolean(fl & 0x8000), df: Boolean(fl & 0x4000), mf: Boolean(fl & 0x2000) }, fragOffset: fl & 0x1fff,
      ttl: b[8]!, proto: b[9]!, checksum: b.readUInt16BE(10),
      checksumOk: headerComplete && inetChecksum(b.subarray(0, hlen)) === 0,
      src: ipv4String(b.subarray(12, 16)), dst: ipv4String(b.subarray(16, 20)),
      options: Buffer.from(b.subarray(20, Math.max(20, Math.min(hlen, b.length)))),
    };
    if (hlen < 20) { p.notes.push(`ipv4 ihl ${ihl} < 5`); p.payload = Buffer.from(b.subarray(20)); return p; }
    if (b.length < hlen) return cut(p, 'ipv4 options', b.subarray(20));
    if (totalLength < hlen) { p.notes.push(`ipv4 total length ${totalLength} < header ${hlen}`); p.payload = Buffer.from(b.subarray(hlen)); return p; }
    if (b.length < totalLength) p.truncated = true;
    // Bytes past total length are Ethernet padding, not payload.
    l4 = b.subarray(hlen, Math.min(b.length, totalLength));
    proto = p.ip.proto;
    if (p.ip.fragOffset !== 0) {
      p.notes.push('non-first fragment: no L4 header');
      p.payload = Buffer.from(l4);
      return p;
    }
    const src = b.subarray(12, 16);
    const dst = b.subarray(16, 20);
    pseudo = (pr, len) => pseudoHeader4(src, dst, pr, len);
  } else {
    if (b.length < 40) return cut(p, 'ipv6 header', b);
    const w0 = b.readUInt32BE(0);
    p.ip6 = {
      version: 6, trafficClass: (w0 >>> 20) & 0xff, flowLabel: w0 & 0xfffff, payloadLength: b.readUInt16BE(4),
      nextHeader: b[6]!, hopLimit: b[7]!, src: ipv6String(b.subarray(8, 24)), dst: ipv6String(b.subarray(24, 40)),
    };
    const end = 40 + p.ip6.payloadLength;
    if (b.length < end) p.truncated = true;
    let rest = b.subarray(40, Math.min(b.length, end));
    proto = p.ip6.nextHeader;
    let finalDst = b.subarray(24, 40);
    // Walk the extension header chain (bounded: at most 8 headers).
    for (let n = 0; n < 8; n++) {
      const kind = ({ [IPPROTO.HOPOPTS]: 'hop', [IPPROTO.ROUTING]: 'routing', [IPPROTO.FRAGMENT]: 'frag', [IPPROTO.DSTOPTS]: 'dest' } as Record<number, ExtKind>)[proto];
      if (!kind) break;
      if (rest.length < 8) return cut(p, `ipv6 ${kind} header`, rest);
      const len = kind === 'frag' ? 8 : (rest[1]! + 1) * 8;
      if (rest.length < len) return cut(p, `ipv6 ${kind} header`, rest);
      const e: ParsedExt = { kind, nextHeader: rest[0]!, length: len, data: Buffer.from(rest.subarray(2, len)) };
      if (kind === 'frag') {
        const fo = rest.readUInt16BE(2);
        e.offset = fo >> 3;
        e.more = Boolean(fo & 1);
        e.id = rest.readUInt32BE(4);
        e.data = Buffer.alloc(0);
      } else if (kind === 'routing') {
        e.routingType = rest[2]!;
        e.segmentsLeft = rest[3]!;
        e.data = Buffer.from(rest.subarray(4, len));
        if (e.routingType === 0 && e.segmentsLeft > 0 && len >= 24) finalDst = rest.subarray(len - 16, len);
      }
      p.ext.push(e);
      proto = e.nextHeader;
      rest = rest.subarray(len);
      if (kind === 'frag' && e.offset !== 0) {
        p.notes.push('non-first fragment: no L4 header');
        p.payload = Buffer.from(rest);
        return p;
      }
    }
    l4 = rest;
    const src = b.subarray(8, 24);
    const dst = finalDst;
    pseudo = (pr, len) => pseudoHeader6(src, dst, pr, len);
  }
  // An L4 checksum can only be checked over the whole segment.
  const complete = !p.truncated;
  const l4ok = (pr: number, seg: Buffer): boolean | undefined =>
    complete ? inetChecksum(pr === IPPROTO.ICMP ? Buffer.alloc(0) : pseudo(pr, seg.length), seg) === 0 : undefined;
  if ((proto === IPPROTO.TCP || proto === IPPROTO.UDP) && l4.length >= 4) {
    p.ports = { proto, sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2) };
  }
  switch (proto) {
    case IPPROTO.TCP: {
      if (l4.length < 20) return cut(p, 'tcp header', l4);
      const doff = l4[12]! >> 4;
      const hlen = doff * 4;
      const bits = l4.readUInt16BE(12) & 0x1ff;
      const rawOptions = Buffer.from(l4.subarray(20, Math.max(20, Math.min(hlen, l4.length))));
      p.tcp = {
        sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), seq: l4.readUInt32BE(4), ack: l4.readUInt32BE(8),
        dataOffset: doff, flags: tcpFlagString(bits), flagBits: bits, window: l4.readUInt16BE(14),
        checksum: l4.readUInt16BE(16), urgent: l4.readUInt16BE(18),
        options: decodeTcpOptions(rawOptions, p.notes), rawOptions, checksumOk: l4ok(IPPROTO.TCP, l4),
      };
      if (hlen < 20) { p.notes.push(`tcp data offset ${doff} < 5`); p.payload = Buffer.from(l4.subarray(20)); return p; }
      if (l4.length < hlen) return cut(p, 'tcp options', l4.subarray(20));
      p.payload = Buffer.from(l4.subarray(hlen));
      return p;
    }
    case IPPROTO.UDP: {
      if (l4.length < 8) return cut(p, 'udp header', l4);
      const checksum = l4.readUInt16BE(6);
      p.udp = {
        sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), length: l4.readUInt16BE(4), checksum,
        // IPv4 UDP may carry no checksum (0); over IPv6 a zero checksum is invalid.
        checksumOk: checksum === 0 && version === 4 ? undefined : l4ok(IPPROTO.UDP, l4),
      };
      p.payload = Buffer.from(l4.subarray(8));
      return p;
    }
    case IPPROTO.ICMP:
    case IPPROTO.ICMPV6: {
      if (l4.length < 8 && !(proto === IPPROTO.ICMPV6 && l4.length >= 4)) return cut(p, 'icmp header', l4);
      const icmp: ParsedIcmp = {
        type: l4[0]!, code: l4[1]!, checksum: l4.readUInt16BE(2), checksumOk: l4ok(proto, l4),
        id: l4.length >= 6 ? l4.readUInt16BE(4) : 0, seq: l4.length >= 8 ? l4.readUInt16BE(6) : 0,
        rest: Buffer.from(l4.subarray(4, 8)),
      };
      const isError = proto === IPPROTO.ICMP ? [3, 4, 5, 11, 12].includes(icmp.type) : icmp.type < 128;
      if (isError && l4.length > 8) icmp.quoted = parseIp(l4.subarray(8));
      if (proto === IPPROTO.ICMP) p.icmp = icmp;
      else p.icmp6 = icmp;
      if (proto === IPPROTO.ICMPV6 && (icmp.type === 135 || icmp.type === 136)) {
        if (l4.length < 24) return cut(p, 'ndp message', l4);
        const f = l4[4]!;
        p.ndp = {
          kind: icmp.type === 135 ? 'ns' : 'na', target: ipv6String(l4.subarray(8, 24)),
          router: Boolean(f & 0x80), solicited: Boolean(f & 0x40), override: Boolean(f & 0x20),
        };
        let o = 24;
        for (let n = 0; n < 16 && o + 2 <= l4.length; n++) {
          const t = l4[o]!;
          const len = l4[o + 1]! * 8;
          if (len === 0 || o + len > l4.length) { p.notes.push('bad ndp option length'); break; }
          if ((t === 1 || t === 2) && len >= 8) p.ndp[t === 1 ? 'sll' : 'tll'] = macString(l4.subarray(o + 2, o + 8));
          o += len;
        }
        p.payload = Buffer.from(l4.subarray(o));
        return p;
      }
      p.payload = Buffer.from(l4.subarray(8));
      return p;
    }
    case IPPROTO.IPIP:
      p.inner = parseIp(l4);
      return p;
    case IPPROTO.IPV6:
      p.inner = parseIp(l4);
      return p;
    default:
      p.payload = Buffer.from(l4);
      if (proto !== IPPROTO.NONE) p.notes.push(`ip protocol ${proto} not decoded`);
      return p;
  }
}

function decodeTcpOptions(b: Buffer, notes: string[]): ParsedTcpOption[] {
  const out: ParsedTcpOption[] = [];
  let o = 0;
  while (o < b.length) {
    const kind = b[o]!;
    if (kind === 0) { out.push({ kind: 'eol' }); o++; continue; }
    if (kind === 1) { out.push({ kind: 'nop' }); o++; continue; }
    const len = b[o + 1];
    if (len === undefined || len < 2 || o + len > b.length) { notes.push(`bad tcp option ${kind} length`); break; }
    const d = b.subarray(o + 2, o + len);
    if (kind === 2 && len === 4) out.push({ kind: 'mss', value: d.readUInt16BE(0) });
    else if (kind === 3 && len === 3) out.push({ kind: 'wscale', value: d[0]! });
    else if (kind === 4 && len === 2) out.push({ kind: 'sackPerm' });
    else if (kind === 5 && (len - 2) % 8 === 0) {
      const blocks: Array<[number, number]> = [];
      for (let i = 0; i < d.length; i += 8) blocks.push([d.readUInt32BE(i), d.readUInt32BE(i + 4)]);
      out.push({ kind: 'sack', blocks });
    } else if (kind === 8 && len === 10) out.push({ kind: 'timestamp', val: d.readUInt32BE(0), ecr: d.readUInt32BE(4) });
    else out.push({ kind, data: Buffer.from(d) });
    o += len;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Diffs and captures

/** Hex dump, 16 bytes a line, for failure messages. */
export function hexdump(buf: Buffer): string {
  const lines: string[] = [];
  for (let i = 0; i < buf.length; i += 16) {
    const row = buf.subarray(i, i + 16);
    lines.push(`${i.toString(16).padStart(4, '0')}  ${[...row].map((x) => x.toString(16).padStart(2, '0')).join(' ')}`);
  }
  return lines.join('\n');
}

/**
 * Side-by-side hex of two frames with differing bytes marked, or '' when equal.
 * Lines are 16 bytes; only lines with a difference (and one line of context) are shown.
 */
export function hexDiff(expected: Buffer, actual: Buffer): string {
  if (expected.equals(actual)) return '';
  const n = Math.max(expected.length, actual.length);
  const byte = (b: Buffer, i: number): string => (i >= 0 && i < b.length ? b[i]!.toString(16).padStart(2, '0') : '--');
  const out: string[] = [`expected ${expected.length} bytes, actual ${actual.length} bytes`];
  const differs = (row: number): boolean => {
    for (let i = row; i < Math.min(row + 16, n); i++) if (byte(expected, i) !== byte(actual, i)) return true;
    return false;
  };
  for (let row = 0; row < n; row += 16) {
    if (!differs(row) && !differs(row - 16) && !differs(row + 16)) continue;
    const cells = (b: Buffer): string => Array.from({ length: Math.min(16, n - row) }, (_, k) => byte(b, row + k)).join(' ');
    const marks = Array.from({ length: Math.min(16, n - row) }, (_, k) => (byte(expected, row + k) !== byte(actual, row + k) ? '^^' : '  ')).join(' ');
    out.push(`${row.toString(16).padStart(4, '0')} exp ${cells(expected)}`);
    out.push(`     act ${cells(actual)}`);
    if (marks.trim()) out.push(`         ${marks}`);
  }
  return out.join('\n');
}
