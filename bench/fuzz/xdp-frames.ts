/**
 * Frames for the XDP fuzzer: a seedable PRNG, seed frames shaped like the
 * data-path fixtures (test/datapath/fixtures.test.ts: client → VIP, backend
 * → SNAT port, ARP, NS, fragments, extension headers, VLAN ...), and
 * mutators (bit flips, truncation, length-field lies, header splicing,
 * random extension-header chains, random ARP/NS).
 *
 * Frame i of a run is a pure function of (seed, i, reverse flows seen so
 * far), so a failure prints enough to rebuild it; the frame hex is printed
 * too, because conntrack state makes a single frame's verdict depend on
 * what ran before it.
 */
import { pkt, IPPROTO, type ExtSpec } from '../../src/lab/packet.js';
import { ADDR, MAC, PORT_MAX, PORT_MIN } from '../../src/lab/fixture-env.js';

// ------------------------------------------------------------------ PRNG

/** xoshiro128**: small, fast, good enough to explore; seeded from one 32-bit number. */
export class Rng {
  private s: Uint32Array;

  constructor(seed: number) {
    // splitmix32 to spread the seed over the state.
    this.s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (!(this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!)) this.s[0] = 1;
  }

  u32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Independent stream for frame `index` of run `seed`. */
export function frameRng(seed: number, index: number): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0);
}

// ------------------------------------------------------------------ the world the frames aim at

export type Ingress = 'fx0' | 'fb0';
export interface FuzzFrame { frame: Buffer; ingress: Ingress; how: string }

/** A reverse-NAT key the oracle saw created: backend → node:snat-port. */
export interface SeenReverse { family: 4 | 6; proto: number; backend: string; backendPort: number; snatPort: number }

const VIPS4 = ['198.51.100.10', '198.51.100.11', '198.51.100.12', '198.51.100.13', '198.51.100.14', '198.51.100.16', '198.51.100.17', '198.51.100.18', '198.51.100.19', '198.51.100.99'];
const VIPS6 = ['2001:db8:100::10', '2001:db8:100::11', '2001:db8:100::13', '2001:db8:100::99'];
const CLIENTS4 = [ADDR.client4, ADDR.client4, ADDR.client4, ADDR.far4, '198.18.0.77', '192.0.2.1', ADDR.backend4(1)];
const CLIENTS6 = [ADDR.client6, ADDR.client6, ADDR.client6, '2001:db8::77', '2001:db8:5::1'];
const PORTS = [80, 80, 80, 53, 53, 443, 0, 65535];
const TCP_FLAGS = ['S', 'S', 'A', 'PA', 'FA', 'RA', 'R', 'SA', 'F', '', 'SF', 'SR'];
const fromClient = { src: MAC.client, dst: MAC.fx0 };

function clientPort(r: Rng): number {
  // A small pool often, so later frames hit the conntrack entries earlier ones made.
  return r.chance(0.6) ? 20000 + r.int(64) : r.range(1, 65535);
}

function payload(r: Rng): Buffer {
  const n = r.pick([0, 0, 1, 7, 22, 64, 300, 1000, r.int(1400)]);
  return r.chance(0.5) ? Buffer.alloc(n, 0x61) : r.bytes(n);
}

function l4(r: Rng, b: ReturnType<typeof pkt>, proto: 'tcp' | 'udp', sport: number, dport: number): void {
  if (proto === 'tcp') {
    b.tcp({ sport, dport, flags: r.pick(TCP_FLAGS), seq: r.u32(), ack: r.u32(), ...(r.chance(0.2) ? { options: [{ kind: 'mss', value: 1460 }] } : {}) });
  } else {
    b.udp({ sport, dport, ...(r.chance(0.15) ? { checksum: 'zero' as const } : {}) });
  }
}

function clientToVip(r: Rng, family: 4 | 6): FuzzFrame {
  const proto = r.chance(0.6) ? 'tcp' : 'udp';
  const vip = family === 4 ? (r.chance(0.5) ? ADDR.vip4 : r.pick(VIPS4)) : (r.chance(0.5) ? ADDR.vip6 : r.pick(VIPS6));
  const src = family === 4 ? r.pick(CLIENTS4) : r.pick(CLIENTS6);
  const dport = r.chance(0.8) ? (proto === 'tcp' ? 80 : 53) : r.pick(PORTS);
  const b = pkt().eth(fromClient);
  if (family === 4) b.ipv4({ src, dst: vip, id: r.int(65536), ttl: r.range(1, 255), ...(r.chance(0.1) ? { flags: 'DF' } : {}) });
  else b.ipv6({ src, dst: vip, flowLabel: r.int(1 << 20) });
  l4(r, b, proto, clientPort(r), dport);
  return { frame: b.payload(payload(r)).build(), ingress: r.chance(0.9) ? 'fx0' : 'fb0', how: `client→vip v${family} ${proto}` };
}

function backendReply(r: Rng, seen: readonly SeenReverse[]): FuzzFrame {
  let f: SeenReverse;
  if (seen.length && r.chance(0.8)) f = seen[seen.length - 1 - r.int(Math.min(seen.length, 256))]!;
  else {
    const family = r.chance(0.6) ? 4 : 6;
    f = { family, proto: r.chance(0.5) ? IPPROTO.TCP : IPPROTO.UDP, backend: family === 4 ? ADDR.backend4(r.range(1, 3)) : ADDR.backend6(r.range(1, 3)), backendPort: r.pick([8080, 5353, 7000, 7100]), snatPort: r.range(PORT_MIN - 2, PORT_MAX + 2) };
  }
  const i = Number(f.backend.split(/[.:]/).pop());
  const b = pkt().eth({ src: i >= 1 && i <= 3 ? MAC.backend(i) : MAC.far, dst: MAC.fb0 });
  if (f.family === 4) b.ipv4({ src: f.backend, dst: ADDR.snat4, id: r.int(65536) });
  else b.ipv6({ src: f.backend, dst: ADDR.snat6 });
  l4(r, b, f.proto === IPPROTO.TCP ? 'tcp' : 'udp', f.backendPort, f.snatPort);
  return { frame: b.payload(payload(r)).build(), ingress: r.chance(0.9) ? 'fb0' : 'fx0', how: `backend→snat v${f.family}` };
}

/** Random ARP: mostly well-formed requests for the VIP, every field sometimes wrong. */
export function randomArp(r: Rng): FuzzFrame {
  const tpa = r.pick([ADDR.vip4, ADDR.vip4, ADDR.vip4, '198.51.100.11', ADDR.client4, '0.0.0.0', '255.255.255.255']);
  const spa = r.chance(0.1) ? tpa : r.pick([ADDR.client4, '0.0.0.0', ADDR.far4, '198.18.0.99']);
  const b = pkt().eth({ src: MAC.client, dst: r.chance(0.8) ? 'ff:ff:ff:ff:ff:ff' : MAC.fx0 })
    .arp({ op: r.chance(0.85) ? 'request' : 'reply', sha: r.chance(0.9) ? MAC.client : '00:00:00:00:00:00', spa, tpa, tha: '00:00:00:00:00:00' });
  if (r.chance(0.4)) b.payload(Buffer.alloc(r.pick([4, 18, 100])));
  const frame = b.build();
  if (r.chance(0.2)) {
    // htype, ptype, hlen, plen, op: one of them off.
    const field = r.pick([14, 16, 18, 19, 20]);
    if (field >= 18 && field <= 19) frame[field] = r.pick([0, 4, 6, 16, 255]);
    else frame.writeUInt16BE(r.pick([0, 1, 2, 3, 6, 0x0800, 0x86dd, 0xffff]), field);
  }
  return { frame, ingress: r.chance(0.9) ? 'fx0' : 'fb0', how: 'arp' };
}

/** Random neighbour solicitation: mostly for the VIP, with every guard sometimes violated. */
export function randomNs(r: Rng): FuzzFrame {
  const target = r.pick([ADDR.vip6, ADDR.vip6, ADDR.vip6, '2001:db8:100::11', ADDR.client6, '::']);
  const src = r.chance(0.1) ? '::' : r.pick([ADDR.client6, ADDR.client6, 'fe80::1', '2001:db8::99']);
  const b = pkt().eth({ src: MAC.client, dst: r.chance(0.8) ? '33:33:ff:00:00:10' : MAC.fx0 })
    .ipv6({ src, dst: r.chance(0.8) ? 'ff02::1:ff00:10' : target, hopLimit: r.chance(0.85) ? 255 : r.pick([1, 64, 254]) });
  if (r.chance(0.15)) b.ext('hop', {}); // a solicitation behind an extension header is the kernel's
  b.ns({ target, ...(r.chance(0.7) ? { sll: MAC.client } : {}), ...(r.chance(0.1) ? { checksum: 'bad' as const } : {}) });
  if (r.chance(0.2)) b.payload(r.bytes(r.pick([1, 8, 40])));
  const frame = b.build();
  if (r.chance(0.1)) frame[14 + 40 + 1] = r.range(1, 255); // code
  return { frame, ingress: r.chance(0.9) ? 'fx0' : 'fb0', how: 'ns' };
}

const EXT_KINDS = ['hop', 'dest', 'routing', 'frag'] as const;

/** IPv6 to a VIP behind a random chain of 0-7 extension headers. */
export function randomExtChain(r: Rng): FuzzFrame {
  const b = pkt().eth(fromClient).ipv6({ src: r.pick(CLIENTS6), dst: r.chance(0.8) ? ADDR.vip6 : r.pick(VIPS6) });
  const n = r.int(8);
  for (let i = 0; i < n; i++) {
    const kind = r.pick(EXT_KINDS);
    const spec: ExtSpec = {};
    if (kind === 'frag') {
      if (r.chance(0.3)) spec.offset = r.range(1, 100);
      if (r.chance(0.3)) spec.more = true;
      spec.id = r.u32();
    } else if (kind === 'routing') {
      spec.segmentsLeft = r.chance(0.7) ? 0 : r.range(1, 3);
      spec.data = Buffer.alloc(4 + 16 * r.int(3));
    } else if (r.chance(0.4)) {
      spec.options = Buffer.from([1, 4, 0, 0, 0, 0].slice(0, 2 + r.int(5)));
    }
    b.ext(kind, spec);
  }
  const last = r.pick(['tcp', 'udp', 'icmp6', 'ns'] as const);
  if (last === 'icmp6') b.icmp6({ type: r.pick([128, 129, 1, 2, 135]), id: 1, seq: 1 });
  else if (last === 'ns') b.ns({ target: ADDR.vip6, sll: MAC.client });
  else l4(r, b, last, clientPort(r), last === 'tcp' ? 80 : 53);
  return { frame: b.payload(payload(r)).build(), ingress: 'fx0', how: `ipv6 ext×${n} ${last}` };
}

function misc(r: Rng): FuzzFrame {
  const kind = r.int(8);
  const b = pkt().eth(fromClient);
  switch (kind) {
    case 0: // IPv4 fragment to the VIP
      b.ipv4({ src: ADDR.client4, dst: ADDR.vip4, flags: r.chance(0.5) ? 'MF' : '', fragOffset: r.int(3) * 185 + (r.chance(0.5) ? 0 : 1) });
      l4(r, b, 'tcp', clientPort(r), 80);
      return { frame: b.payload(payload(r)).build(), ingress: 'fx0', how: 'ipv4 fragment' };
    case 1: // IPv4 with options
      b.ipv4({ src: ADDR.client4, dst: ADDR.vip4, options: Buffer.from([1, 1, 1, 0, 0x94, 4, 0, 0].slice(0, 4 * r.range(1, 2))) });
      l4(r, b, r.chance(0.5) ? 'tcp' : 'udp', clientPort(r), r.pick([80, 53]));
      return { frame: b.payload(payload(r)).build(), ingress: 'fx0', how: 'ipv4 options' };
    case 2: // ICMP echo to the VIP
      b.ipv4({ src: ADDR.client4, dst: r.pick(VIPS4) }).icmp({ type: r.pick([8, 0, 3, 11]), id: 7, seq: 1 });
      return { frame: b.payload(payload(r)).build(), ingress: 'fx0', how: 'icmp' };
    case 3:
      b.ipv6({ src: ADDR.client6, dst: ADDR.vip6 }).icmp6({ type: r.pick([128, 129, 1, 2, 3, 136]), id: 7, seq: 1 });
      return { frame: b.payload(payload(r)).build(), ingress: 'fx0', how: 'icmp6' };
    case 4: { // VLAN-tagged TCP to the VIP
      const v = pkt().eth(fromClient).vlan({ vid: r.int(4096), ...(r.chance(0.3) ? { tpid: 0x88a8 } : {}) }).ipv4({ src: ADDR.client4, dst: ADDR.vip4 });
      l4(r, v, 'tcp', clientPort(r), 80);
      return { frame: v.payload(payload(r)).build(), ingress: 'fx0', how: 'vlan' };
    }
    case 5: // other IP protocols to the VIP (GRE, ESP, IPIP, SCTP-like)
      b.ipv4({ src: ADDR.client4, dst: ADDR.vip4, proto: r.pick([IPPROTO.GRE, IPPROTO.ESP, IPPROTO.IPIP, 132, 255]) });
      return { frame: b.payload(r.bytes(r.range(0, 60))).build(), ingress: 'fx0', how: 'other l4' };
    case 6: { // random ethertype and bytes
      const f = Buffer.concat([Buffer.from('02000000f00002000000000100', 'hex'), r.bytes(r.range(1, 200))]);
      if (r.chance(0.7)) f.writeUInt16BE(r.pick([0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x88cc, 0x0000, 0xffff]), 12);
      return { frame: f, ingress: r.chance(0.5) ? 'fx0' : 'fb0', how: 'random bytes' };
    }
    default: // transit TCP/UDP (not ours)
      b.ipv4({ src: ADDR.client4, dst: ADDR.backend4(r.range(1, 3)) });
      l4(r, b, r.chance(0.5) ? 'tcp' : 'udp', clientPort(r), r.pick([80, 8080]));
      return { frame: b.payload(payload(r)).build(), ingress: 'fx0', how: 'transit' };
  }
}

/** A well-formed (or deliberately odd) frame shaped like a fixture row. */
export function seedFrame(r: Rng, seen: readonly SeenReverse[]): FuzzFrame {
  const k = r.int(100);
  if (k < 30) return clientToVip(r, 4);
  if (k < 48) return clientToVip(r, 6);
  if (k < 63) return backendReply(r, seen);
  if (k < 70) return randomArp(r);
  if (k < 77) return randomNs(r);
  if (k < 85) return randomExtChain(r);
  return misc(r);
}

// ------------------------------------------------------------------ mutators

/** Where the headers of a frame start, as far as they can be found (for targeted mutations). */
export interface Layout { l3: number; family: 0 | 4 | 6; l4: number; proto: number }

export function layout(f: Buffer): Layout {
  const out: Layout = { l3: 14, family: 0, l4: -1, proto: -1 };
  if (f.length < 14) return out;
  const type = f.readUInt16BE(12);
  if (type === 0x0800 && f.length >= 34) {
    out.family = 4;
    out.proto = f[23]!;
    out.l4 = 14 + (f[14]! & 0xf) * 4;
  } else if (type === 0x86dd && f.length >= 54) {
    out.family = 6;
    let nh = f[20]!;
    let off = 54;
    for (let i = 0; i < 4 && [0, 43, 44, 60].includes(nh) && off + 8 <= f.length; i++) {
      const next = f[off]!;
      off += nh === 44 ? 8 : (f[off + 1]! + 1) * 8;
      nh = next;
    }
    out.proto = nh;
    out.l4 = off;
  }
  return out;
}

const INTERESTING16 = [0, 1, 7, 8, 19, 20, 39, 40, 41, 64, 0x7fff, 0x8000, 0xfffe, 0xffff];

function lieAboutLength(r: Rng, f: Buffer): string {
  const L = layout(f);
  const real = (off: number): number => (off + 2 <= f.length ? f.readUInt16BE(off) : 0);
  const set = (off: number): void => {
    if (off + 2 > f.length) return;
    const cur = real(off);
    f.writeUInt16BE(r.chance(0.5) ? r.pick(INTERESTING16) : (cur + r.pick([-9, -8, -2, -1, 1, 2, 8, 9, f.length, -f.length])) & 0xffff, off);
  };
  const options: Array<[string, () => void]> = [];
  if (L.family === 4) {
    options.push(['ipv4 total length', () => set(16)]);
    options.push(['ipv4 ihl', () => { f[14] = (f[14]! & 0xf0) | r.int(16); }]);
  }
  if (L.family === 6) {
    options.push(['ipv6 payload length', () => set(18)]);
    if (L.l4 > 54 && L.l4 - 8 < f.length) options.push(['ext header length', () => { const e = 54 + 8 * r.int(Math.max(1, (L.l4 - 54) / 8)); if (e + 1 < f.length) f[e + 1] = r.pick([0, 1, 2, 31, 255]); }]);
  }
  if (L.proto === IPPROTO.UDP && L.l4 >= 0) options.push(['udp length', () => set(L.l4 + 4)]);
  if (L.proto === IPPROTO.TCP && L.l4 >= 0 && L.l4 + 12 < f.length) options.push(['tcp data offset', () => { f[L.l4 + 12] = (r.int(16) << 4) | (f[L.l4 + 12]! & 0xf); }]);
  if (!options.length) return 'no length field';
  const [name, apply] = r.pick(options);
  apply();
  return `lie ${name}`;
}

function flipBits(r: Rng, f: Buffer): string {
  const n = r.pick([1, 1, 2, 3, 8]);
  // Mostly in the headers, where the decisions are.
  const span = Math.min(f.length, r.chance(0.8) ? 80 : f.length);
  for (let i = 0; i < n; i++) {
    const at = r.int(span);
    f[at] ^= 1 << r.int(8);
  }
  return `flip ${n}`;
}

function setBytes(r: Rng, f: Buffer): string {
  const at = r.int(Math.min(f.length, 80));
  f[at] = r.pick([0, 0xff, 0x7f, 0x80, 0x40, 0x60, 0x45, 0x06, 0x11, 0x3a, 0x2c, r.int(256)]);
  return `set @${at}`;
}

/** First part of `a` up to one of its header boundaries + rest of `b` from one of its boundaries. */
function splice(r: Rng, a: Buffer, b: Buffer): Buffer {
  const cuts = (f: Buffer): number[] => {
    const L = layout(f);
    return [12, 14, L.l4, L.l4 + 8, L.l4 + 20, 34, 54].filter((x) => x > 0 && x <= f.length);
  };
  return Buffer.concat([a.subarray(0, r.pick(cuts(a))), b.subarray(r.pick(cuts(b)))]);
}

/** Point a mutated frame back at a VIP/port, so malformed frames reach the frontend paths. */
function aimAtVip(r: Rng, f: Buffer): void {
  const L = layout(f);
  if (L.family === 4 && f.length >= 34) Buffer.from(ADDR.vip4.split('.').map(Number)).copy(f, 30);
  if (L.family === 6 && f.length >= 54) Buffer.from('20010db8010000000000000000000010', 'hex').copy(f, 38);
  if (L.l4 >= 0 && L.l4 + 4 <= f.length) f.writeUInt16BE(r.pick([80, 53]), L.l4 + 2);
}

/** Largest frame test-run takes for this program (one page minus XDP headroom and skb_shared_info). */
export const MAX_FRAME = 3000;

export function mutate(r: Rng, base: FuzzFrame, other: FuzzFrame): FuzzFrame {
  let f: Buffer = Buffer.from(base.frame);
  const steps: string[] = [];
  const rounds = r.pick([1, 1, 1, 2, 3]);
  for (let i = 0; i < rounds; i++) {
    const k = r.int(100);
    if (k < 30) steps.push(flipBits(r, f));
    else if (k < 45) steps.push(setBytes(r, f));
    else if (k < 65) steps.push(lieAboutLength(r, f));
    else if (k < 78) { f = Buffer.from(f.subarray(0, r.range(14, f.length))); steps.push(`truncate ${f.length}`); }
    else if (k < 88) { f = splice(r, f, other.frame); steps.push('splice'); }
    else if (k < 93) { f = Buffer.concat([f, r.bytes(r.range(1, 64))]); steps.push('extend'); }
    else {
      if (f.length < 14) f = Buffer.concat([f, Buffer.alloc(14 - f.length)]);
      f.writeUInt16BE(r.pick([0x0800, 0x86dd, 0x0806]), 12);
      steps.push('ethertype');
    }
  }
  if (r.chance(0.3)) { aimAtVip(r, f); steps.push('aim'); }
  if (f.length < 14) f = Buffer.concat([f, Buffer.alloc(14 - f.length)]);
  if (f.length > MAX_FRAME) f = Buffer.from(f.subarray(0, MAX_FRAME));
  return { frame: f, ingress: r.chance(0.85) ? base.ingress : (base.ingress === 'fx0' ? 'fb0' : 'fx0'), how: `${base.how} | ${steps.join(', ')}` };
}

/** Frame `index` of a run: a seed frame (1 in 4) or a mutation of one. */
export function fuzzFrame(seed: number, index: number, seen: readonly SeenReverse[]): FuzzFrame {
  const r = frameRng(seed, index);
  const base = seedFrame(r, seen);
  if (r.chance(0.25)) return base;
  return mutate(r, base, seedFrame(r, seen));
}

/** Every truncation (14 bytes up to the whole frame) of one instance of each seed kind: the deterministic prefix of a run. */
export function truncationSweep(seed: number): FuzzFrame[] {
  const out: FuzzFrame[] = [];
  const r = new Rng(seed ^ 0x5eed);
  const bases: FuzzFrame[] = [clientToVip(r, 4), clientToVip(r, 6), backendReply(r, []), backendReply(r, []), randomArp(r), randomNs(r), randomExtChain(r)];
  for (let i = 0; i < 8; i++) bases.push(misc(r));
  for (const b of bases) {
    const end = Math.min(b.frame.length, 160);
    for (let n = 14; n <= end; n++) out.push({ frame: Buffer.from(b.frame.subarray(0, n)), ingress: b.ingress, how: `${b.how} | truncate ${n}` });
  }
  return out;
}
