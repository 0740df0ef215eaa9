/**
 * What the XDP program may do with an arbitrary frame, judged from the
 * frame, the verdict, the output bytes and the per-reason counter delta of
 * that one frame — without re-implementing the program:
 *
 *  - the verdict is DROP, PASS, TX or REDIRECT (never ABORTED);
 *  - exactly one terminal counter moved, and it belongs to the verdict
 *    (every DROP has a reason, every TX is an ARP/NA reply or a forward);
 *  - an unchanged frame is only ever PASSed or dropped; a frame that is not
 *    ours (no frontend, not a reply to a SNAT port, not ARP/NS for an
 *    announced address) is PASSed untouched, or dropped as malformed;
 *  - a changed frame is exactly one of: the ARP reply built from the request,
 *    the NA for the solicitation, or a NAT rewrite that touched only MACs,
 *    addresses, ports and checksums, whose checksums carry the input's error
 *    over unchanged (valid in → valid out), whose new destination is a
 *    backend of the frontend (forward) or the client of the recorded flow
 *    (reverse), and whose MACs are the egress interface's and the next hop's.
 */
import { IPPROTO, macBytes, pkt, ipv4Bytes, ipv6Bytes, ipv4String, ipv6String } from '../../src/lab/packet.js';
import { ADDR, MAC, PORT_MAX, PORT_MIN, XDP } from '../../src/lab/fixture-env.js';
import { DROP_REASONS as DROPS, IPV6_MAX_EXT_HEADERS, PASS_REASONS as PASSES, STAT_REASONS, type StatReason } from '../../src/datapath/abi.js';
import type { Frontend } from '../../src/model/types.js';
import type { Ingress, SeenReverse } from './xdp-frames.js';

export const DROP_REASONS: readonly StatReason[] = [...DROPS];
/** ICMP echo replies for VIPs (issue 8) are counted by a reason named like /echo|icmp/ once src/datapath/abi.ts has one. */
const ECHO_REASONS = STAT_REASONS.filter((r) => /echo|icmp/.test(r));
export const ECHO_COUNTED = ECHO_REASONS.length > 0;
export const TX_REASONS: readonly StatReason[] = ['fwd_tx', 'arp_reply', 'na_reply', ...ECHO_REASONS];
export const REDIRECT_REASONS: readonly StatReason[] = ['fwd_redirect'];
export const PASS_REASONS: readonly StatReason[] = [...PASSES];
const TERMINAL = new Set<StatReason>([...DROP_REASONS, ...TX_REASONS, ...REDIRECT_REASONS, ...PASS_REASONS]);
const MALFORMED = new Set<StatReason>(['malformed_l2', 'malformed_l3', 'malformed_l4']);

export type Delta = Record<StatReason, number>;

/** Stands in for a frame's counter delta when only block totals are read: every "was X counted" check passes. */
const UNKNOWN: Delta = new Proxy({} as Delta, { get: (_t, k) => (k === 'tc_rev_nat' ? 0 : 1) });

export function counterDelta(before: Record<StatReason, bigint>, after: Record<StatReason, bigint>): Delta {
  return Object.fromEntries(STAT_REASONS.map((r) => [r, Number(after[r] - before[r])])) as Delta;
}

/** The world of src/lab/fixture-env.ts, as the oracle needs it. */
export interface World {
  frontends: Frontend[];
  /** Addresses of this node a backend may have (DNAT without SNAT, XDP_PASS to the local stack). */
  local: string[];
  /** Addresses answered by the responder, per ingress interface. */
  responder: Record<Ingress, string[]>;
}

interface Tuple { family: 4 | 6; proto: number; src: string; dst: string; sport: number; dport: number }

interface Where { l3: number; family: 4 | 6; ihl: number; l3len: number; l4: number; proto: number }

/** Headers as the program walks them (IPv4 IHL; up to IPV6_MAX_EXT_HEADERS IPv6 extension headers). Undefined when the frame is not IP. */
function where(f: Buffer): Where | undefined {
  if (f.length < 14) return undefined;
  const type = f.readUInt16BE(12);
  if (type === 0x0800 && f.length >= 34) {
    const ihl = (f[14]! & 0xf) * 4;
    return { l3: 14, family: 4, ihl, l3len: f.readUInt16BE(16), l4: 14 + ihl, proto: f[23]! };
  }
  if (type === 0x86dd && f.length >= 54) {
    let nh = f[20]!;
    let off = 54;
    for (let i = 0; i < IPV6_MAX_EXT_HEADERS && [IPPROTO.HOPOPTS, IPPROTO.ROUTING, IPPROTO.FRAGMENT, IPPROTO.DSTOPTS].includes(nh as 0) && off + 8 <= f.length; i++) {
      const next = f[off]!;
      off += nh === IPPROTO.FRAGMENT ? 8 : (f[off + 1]! + 1) * 8;
      nh = next;
    }
    return { l3: 14, family: 6, ihl: 40, l3len: 40 + f.readUInt16BE(18), l4: off, proto: nh };
  }
  return undefined;
}

function tupleOf(f: Buffer, w: Where): Tuple | undefined {
  if (w.proto !== IPPROTO.TCP && w.proto !== IPPROTO.UDP) return undefined;
  if (w.l4 + 4 > f.length) return undefined;
  const src = w.family === 4 ? ipv4String(f.subarray(26, 30)) : ipv6String(f.subarray(22, 38));
  const dst = w.family === 4 ? ipv4String(f.subarray(30, 34)) : ipv6String(f.subarray(38, 54));
  return { family: w.family, proto: w.proto, src, dst, sport: f.readUInt16BE(w.l4), dport: f.readUInt16BE(w.l4 + 2) };
}

/** One's complement sum of `b[start, end)` added to `acc`, folded to 16 bits, with 0xffff read as 0 (both are zero). */
function onesSum(b: Buffer, start: number, end: number, acc = 0): number {
  let s = acc;
  let i = start;
  for (; i + 1 < end; i += 2) s += b.readUInt16BE(i);
  if (i < end) s += b[i]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff ? 0 : s;
}

/** IPv4 header sum (0 when the header checksum is valid). */
function ipv4Residue(f: Buffer, w: Where): number {
  return onesSum(f, w.l3, Math.min(f.length, w.l3 + w.ihl));
}

/** TCP/UDP sum over pseudo-header + the datagram's L4 bytes present in the frame (0 when valid). */
function l4Residue(f: Buffer, w: Where): number {
  const end = Math.min(f.length, w.l3 + w.l3len);
  const len = Math.max(0, w.l3 + w.l3len - w.l4) & 0xffff;
  let s = w.family === 4 ? onesSum(f, 26, 34) : onesSum(f, 22, 54);
  s = onesSum(Buffer.from([0, w.proto, len >> 8, len & 0xff]), 0, 4, s);
  return onesSum(f, w.l4, end, s);
}

export interface Outcome { retval: number; dataOut: Buffer }

/** What kind of output the oracle accepted; the run tallies them. */
export type Accepted = 'drop' | 'pass-untouched' | 'arp-reply' | 'na-reply' | 'icmp-echo' | 'nat-forward' | 'nat-reverse';

export interface Judgement { problems: string[]; accepted?: Accepted }

const NEIGHBOURS: Record<string, { mac: string; via: Ingress }> = {
  [ADDR.client4]: { mac: MAC.client, via: 'fx0' },
  [ADDR.client6]: { mac: MAC.client, via: 'fx0' },
  [ADDR.far4]: { mac: MAC.far, via: 'fx0' },
  ...Object.fromEntries([1, 2, 3].flatMap((i) => [[ADDR.backend4(i), { mac: MAC.backend(i), via: 'fb0' as const }], [ADDR.backend6(i), { mac: MAC.backend(i), via: 'fb0' as const }]])),
};
const IFACE_MAC: Record<Ingress, string> = { fx0: MAC.fx0, fb0: MAC.fb0 };

interface Flow { client: string; clientPort: number; vip: string; vipPort: number }

export class XdpOracle {
  private readonly frontends = new Map<string, Frontend>();
  /** Reverse NAT entries seen created, keyed like the program's ph_rev: proto|backend|backendPort|snatPort. */
  private readonly reverse = new Map<string, Flow>();
  /** The same, for the generator to aim replies at (bounded). */
  readonly seen: SeenReverse[] = [];
  readonly tally: Record<Accepted, number> = { drop: 0, 'pass-untouched': 0, 'arp-reply': 0, 'na-reply': 0, 'icmp-echo': 0, 'nat-forward': 0, 'nat-reverse': 0 };

  constructor(private readonly world: World) {
    for (const fe of world.frontends) this.frontends.set(feKey(fe.protocol === 'TCP' ? IPPROTO.TCP : IPPROTO.UDP, fe.address, fe.port), fe);
  }

  /** Conntrack and reverse NAT were emptied: forget the flows. */
  forgetFlows(): void {
    this.reverse.clear();
    this.seen.length = 0;
  }

  /**
   * `counted`: the counter delta of exactly this frame, or undefined when
   * counters are only checked over a block (then counter checks are skipped
   * here and `aggregateProblems` checks the block).
   */
  judge(input: Buffer, ingress: Ingress, out: Outcome, counted?: Delta): Judgement {
    const problems: string[] = [];
    const verdict = out.retval;
    const changed = !out.dataOut.equals(input);
    // ---- verdict and counters
    if (verdict === XDP.ABORTED) problems.push('XDP_ABORTED');
    else if (![XDP.DROP, XDP.PASS, XDP.TX, XDP.REDIRECT].includes(verdict as 1)) problems.push(`verdict ${verdict} outside the XDP actions`);
    const echo = verdict === XDP.TX && !ECHO_COUNTED && isEchoReply(input, out.dataOut);
    // Until abi.ts names the echo counter, an echo reply's counter is not known to this test: judge it without counters.
    const delta = (echo ? undefined : counted) ?? UNKNOWN;
    if (echo) counted = undefined;
    const moved = counted ? STAT_REASONS.filter((r) => delta[r] !== 0) : [];
    for (const r of moved) if (delta[r] !== 1) problems.push(`counter ${r} moved by ${delta[r]} for one frame`);
    if (delta.tc_rev_nat) problems.push('tc_rev_nat counted by XDP');
    const terminal = moved.filter((r) => TERMINAL.has(r));
    const allowed = verdict === XDP.DROP ? DROP_REASONS : verdict === XDP.TX ? TX_REASONS : verdict === XDP.REDIRECT ? REDIRECT_REASONS : PASS_REASONS;
    if (terminal.length > 1) problems.push(`several terminal counters moved: ${terminal.join(', ')}`);
    if (counted && terminal.length === 0 && verdict !== XDP.PASS) problems.push(`verdict ${verdict} without a counted reason`);
    for (const r of terminal) if (!allowed.includes(r)) problems.push(`counter ${r} does not go with verdict ${verdict}`);
    if (verdict === XDP.DROP) {
      if (!problems.length) this.tally.drop++;
      this.checkNotOursDrop(input, terminal, problems);
      return { problems, ...(problems.length ? {} : { accepted: 'drop' as const }) };
    }
    if (!changed) {
      if (verdict !== XDP.PASS) problems.push(`verdict ${verdict} with the frame unchanged`);
      if (terminal.some((r) => r === 'no_neigh' || r === 'local_backend')) problems.push(`${terminal.join()} counted but the frame was not rewritten`);
      if (moved.includes('arp_reply') || moved.includes('na_reply') || moved.includes('rev_nat')) problems.push(`${moved.join()} counted for an untouched frame`);
      if (!problems.length) this.tally['pass-untouched']++;
      return { problems, ...(problems.length ? {} : { accepted: 'pass-untouched' as const }) };
    }
    // ---- the frame was changed: it must be one of three things
    const type = input.length >= 14 ? input.readUInt16BE(12) : 0;
    let accepted: Accepted | undefined;
    if (type === 0x0806) accepted = this.judgeArp(input, ingress, out, delta, problems);
    else if (isEchoRequest(input)) accepted = this.judgeEcho(input, out, problems);
    else if (out.dataOut.length !== input.length || where(input)?.proto === IPPROTO.ICMPV6) accepted = this.judgeNa(input, ingress, out, delta, problems);
    else accepted = this.judgeNat(input, ingress, out, delta, problems);
    if (accepted && !problems.length) this.tally[accepted]++;
    return { problems, ...(problems.length || !accepted ? {} : { accepted }) };
  }

  /** A drop of a TCP/UDP packet that is not ours may only be for malformation. */
  private checkNotOursDrop(input: Buffer, terminal: StatReason[], problems: string[]): void {
    const w = where(input);
    const t = w && tupleOf(input, w);
    if (!t || this.isOurs(t)) return;
    for (const r of terminal) if (!MALFORMED.has(r)) problems.push(`not-ours packet ${t.src}:${t.sport} → ${t.dst}:${t.dport} dropped as ${r}`);
  }

  private isOurs(t: Tuple): boolean {
    if (this.frontends.has(feKey(t.proto, t.dst, t.dport))) return true;
    return (t.dst === (t.family === 4 ? ADDR.snat4 : ADDR.snat6)) && t.dport >= PORT_MIN && t.dport <= PORT_MAX;
  }

  private judgeArp(input: Buffer, ingress: Ingress, out: Outcome, delta: Delta, problems: string[]): Accepted | undefined {
    if (out.retval !== XDP.TX) problems.push(`ARP frame changed with verdict ${out.retval}`);
    if (!delta.arp_reply) problems.push('ARP frame changed without arp_reply counted');
    if (input.length < 42) { problems.push('short ARP frame changed'); return undefined; }
    const tpa = ipv4String(input.subarray(38, 42));
    const spa = ipv4String(input.subarray(28, 32));
    const ok = input.readUInt16BE(14) === 1 && input.readUInt16BE(16) === 0x0800 && input[18] === 6 && input[19] === 4 && input.readUInt16BE(20) === 1;
    if (!ok) problems.push('answered an ARP frame that is not an Ethernet/IPv4 request');
    if (!this.world.responder[ingress].includes(tpa)) problems.push(`answered ARP for ${tpa}, not announced on ${ingress}`);
    if (spa === tpa) problems.push('answered a gratuitous ARP');
    const want = Buffer.from(input);
    input.copy(want, 0, 22, 28); // eth dst = requester's sha
    macBytes(MAC.vip).copy(want, 6);
    want.writeUInt16BE(2, 20);
    input.copy(want, 32, 22, 28); // tha = sha
    input.copy(want, 38, 28, 32); // tpa = spa
    macBytes(MAC.vip).copy(want, 22); // sha = our MAC
    input.copy(want, 28, 38, 42); // spa = asked address
    if (!out.dataOut.equals(want)) problems.push(`ARP reply differs from the one built from the request: want ${want.toString('hex')}`);
    return 'arp-reply';
  }

  /** Echo reply for a service address: addresses (MAC and IP) swapped, type turned into a reply, checksum error carried over. */
  private judgeEcho(input: Buffer, out: Outcome, problems: string[]): Accepted | undefined {
    const o = out.dataOut;
    const w = where(input)!;
    if (out.retval !== XDP.TX) problems.push(`echo request changed with verdict ${out.retval}`);
    if (o.length !== input.length) { problems.push('echo reply of another length'); return undefined; }
    const dst = w.family === 4 ? ipv4String(input.subarray(30, 34)) : ipv6String(input.subarray(38, 54));
    if (![...this.frontends.values()].some((f) => canon(f.address) === dst)) problems.push(`echo answered for ${dst}, not a service address`);
    if (!o.subarray(0, 6).equals(input.subarray(6, 12))) problems.push('echo reply not sent back to the requester\'s MAC');
    const [a, b] = w.family === 4 ? [26, 30] : [22, 38];
    const n = w.family === 4 ? 4 : 16;
    if (!o.subarray(a, a + n).equals(input.subarray(b, b + n)) || !o.subarray(b, b + n).equals(input.subarray(a, a + n))) problems.push('echo reply addresses not swapped');
    if (o[w.l4] !== (w.family === 4 ? 0 : 129)) problems.push(`echo reply type ${o[w.l4]}`);
    if (w.l3 + w.l3len < w.l4 + 8) {
      problems.push(`answered an echo request whose IP datagram (${w.l3len} bytes) does not hold the 8-byte ICMP header`);
      return 'icmp-echo';
    }
    const end = Math.min(input.length, w.l3 + w.l3len);
    const residue = (f: Buffer): number => (w.family === 4 ? onesSum(f, w.l4, end) : l4Residue(f, { ...w, proto: IPPROTO.ICMPV6 }));
    if (residue(input) !== residue(o)) problems.push(`ICMP checksum error changed (${residue(input)} → ${residue(o)})`);
    return 'icmp-echo';
  }

  private judgeNa(input: Buffer, ingress: Ingress, out: Outcome, delta: Delta, problems: string[]): Accepted | undefined {
    if (out.retval !== XDP.TX) problems.push(`frame resized with verdict ${out.retval}`);
    if (!delta.na_reply) problems.push('frame resized without na_reply counted');
    const w = where(input);
    if (!w || w.family !== 6 || w.l4 !== 54 || w.proto !== IPPROTO.ICMPV6 || input.length < 78 || input[54] !== 135) {
      problems.push('frame resized but the input is not a neighbour solicitation right after the IPv6 header');
      return undefined;
    }
    const target = ipv6String(input.subarray(62, 78));
    const src = ipv6String(input.subarray(22, 38));
    if (!this.world.responder[ingress].includes(target)) problems.push(`answered NS for ${target}, not announced on ${ingress}`);
    if (input[21] !== 255) problems.push('answered an NS with hop limit != 255');
    if (src === '::') problems.push('answered a DAD probe');
    const want = pkt().eth({ src: MAC.vip, dst: [...input.subarray(6, 12)].map((x) => x.toString(16).padStart(2, '0')).join(':') })
      .ipv6({ src: target, dst: src, hopLimit: 255 }).na({ target, tll: MAC.vip, solicited: true, override: true }).build();
    if (!out.dataOut.equals(want)) problems.push(`NA differs from the expected one: want ${want.toString('hex')}`);
    return 'na-reply';
  }

  private judgeNat(input: Buffer, ingress: Ingress, out: Outcome, delta: Delta, problems: string[]): Accepted | undefined {
    const o = out.dataOut;
    const w = where(input);
    const tin = w && tupleOf(input, w);
    if (!w || !tin) { problems.push('changed a frame that is neither ARP, NS nor TCP/UDP over IP'); return undefined; }
    const wo = where(o)!;
    const tout = tupleOf(o, wo);
    if (!tout) { problems.push('output is not TCP/UDP any more'); return undefined; }
    // TTL / hop limit: one less when pharos transmits the frame (a router hop), untouched when the kernel gets it.
    const ttlAt = w.l3 + (w.family === 4 ? 8 : 7);
    const transmitted = out.retval === XDP.TX || out.retval === XDP.REDIRECT;
    if (ttlAt < o.length) {
      const want = transmitted ? input[ttlAt]! - 1 : input[ttlAt]!;
      if (transmitted && input[ttlAt]! <= 1) problems.push(`transmitted a frame that arrived with TTL/hop limit ${input[ttlAt]}`);
      if (o[ttlAt] !== want) problems.push(`TTL/hop limit ${input[ttlAt]} → ${o[ttlAt]} (want ${want})`);
    }
    // Otherwise only MACs, addresses, ports and checksums may change.
    const mutable = new Set<number>([ttlAt]);
    const mark = (a: number, n: number): void => { for (let i = a; i < a + n; i++) mutable.add(i); };
    mark(0, 12);
    if (w.family === 4) { mark(24, 2); mark(26, 8); } else mark(22, 32);
    mark(w.l4, 4);
    mark(w.l4 + (w.proto === IPPROTO.TCP ? 16 : 6), 2);
    const stray: number[] = [];
    for (let i = 0; i < o.length; i++) if (o[i] !== input[i] && !mutable.has(i)) stray.push(i);
    if (stray.length) problems.push(`bytes changed outside MACs/addresses/ports/checksums at offsets ${stray.slice(0, 8).join(',')}`);
    // Checksums carry the input's error over (valid stays valid).
    if (w.family === 4 && ipv4Residue(input, w) !== ipv4Residue(o, w)) problems.push(`IPv4 header checksum error changed (${ipv4Residue(input, w)} → ${ipv4Residue(o, w)})`);
    const csumAt = w.l4 + (w.proto === IPPROTO.TCP ? 16 : 6);
    if (csumAt + 2 <= o.length) {
      if (w.family === 4 && w.proto === IPPROTO.UDP && input.readUInt16BE(csumAt) === 0) {
        if (o.readUInt16BE(csumAt) !== 0) problems.push('UDP/IPv4 "no checksum" (0) replaced');
      } else if (l4Residue(input, w) !== l4Residue(o, w)) {
        problems.push(`L4 checksum error changed (${l4Residue(input, w)} → ${l4Residue(o, w)})`);
      }
      if (w.proto === IPPROTO.UDP && w.family === 6 && o.readUInt16BE(csumAt) === 0) problems.push('UDP/IPv6 checksum 0 sent');
    }
    // MACs: untouched for PASS (kernel forwards), else egress interface → next hop of the new destination.
    const macsChanged = !o.subarray(0, 12).equals(input.subarray(0, 12));
    if (out.retval === XDP.PASS) {
      if (macsChanged) problems.push('MACs rewritten on XDP_PASS');
      if (!delta.no_neigh && !delta.local_backend) problems.push('rewritten frame passed without no_neigh/local_backend counted');
    } else {
      const nh = NEIGHBOURS[tout.dst];
      const dmac = [...o.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
      const smac = [...o.subarray(6, 12)].map((x) => x.toString(16).padStart(2, '0')).join(':');
      if (!nh) problems.push(`forwarded to ${tout.dst}, which has no neighbour entry`);
      else {
        if (dmac !== nh.mac) problems.push(`destination MAC ${dmac}, next hop of ${tout.dst} is ${nh.mac}`);
        if (smac !== IFACE_MAC[nh.via]) problems.push(`source MAC ${smac}, egress ${nh.via} is ${IFACE_MAC[nh.via]}`);
        if ((out.retval === XDP.TX) !== (nh.via === ingress)) problems.push(`verdict ${out.retval} for egress ${nh.via} from ingress ${ingress}`);
      }
    }
    const fe = this.frontends.get(feKey(tin.proto, tin.dst, tin.dport));
    if (fe) {
      const be = fe.backends.find((b) => b.address === tout.dst && b.port === tout.dport);
      if (!be) problems.push(`forwarded to ${tout.dst}:${tout.dport}, not a backend of ${fe.address}:${fe.port}`);
      const snat = tout.family === 4 ? ADDR.snat4 : ADDR.snat6;
      const snatted = tout.src === snat && tout.sport >= PORT_MIN && tout.sport <= PORT_MAX;
      const kept = tout.src === tin.src && tout.sport === tin.sport;
      if (!snatted && !kept) problems.push(`source ${tout.src}:${tout.sport} is neither the SNAT address with a port in range nor the client`);
      if (kept && !this.world.local.includes(tout.dst)) problems.push(`client source kept (no SNAT) for backend ${tout.dst}, which is not an address of this node`);
      if (!delta.ct_hit && !delta.ct_create) problems.push('forwarded without ct_hit/ct_create counted');
      if (snatted && !problems.length) {
        const key = revKey(tin.proto, tout.dst, tout.dport, tout.sport);
        this.reverse.set(key, { client: tin.src, clientPort: tin.sport, vip: tin.dst, vipPort: tin.dport });
        if (this.seen.length < 4096) this.seen.push({ family: tin.family, proto: tin.proto, backend: tout.dst, backendPort: tout.dport, snatPort: tout.sport });
      }
      return 'nat-forward';
    }
    if (!this.isOurs(tin)) { problems.push(`rewrote a packet that is not ours: ${tin.src}:${tin.sport} → ${tin.dst}:${tin.dport}`); return undefined; }
    if (!delta.rev_nat) problems.push('reverse rewrite without rev_nat counted');
    const flow = this.reverse.get(revKey(tin.proto, tin.src, tin.sport, tin.dport));
    if (!flow) problems.push(`reverse NAT for ${tin.src}:${tin.sport} → :${tin.dport} without a forward flow seen`);
    else if (tout.src !== flow.vip || tout.sport !== flow.vipPort || tout.dst !== flow.client || tout.dport !== flow.clientPort) {
      problems.push(`reverse NAT to ${tout.src}:${tout.sport} → ${tout.dst}:${tout.dport}, flow was ${flow.vip}:${flow.vipPort} → ${flow.client}:${flow.clientPort}`);
    }
    return 'nat-reverse';
  }
}

function isEchoRequest(f: Buffer): boolean {
  const w = where(f);
  if (!w || w.l4 + 8 > f.length) return false;
  return (w.family === 4 && w.proto === IPPROTO.ICMP && f[w.l4] === 8) || (w.family === 6 && w.proto === IPPROTO.ICMPV6 && f[w.l4] === 128);
}

function isEchoReply(input: Buffer, out: Buffer): boolean {
  const w = where(input);
  return !!w && isEchoRequest(input) && out.length === input.length && (out[w.l4] === 0 || out[w.l4] === 129);
}

function feKey(proto: number, addr: string, port: number): string {
  return `${proto}|${canon(addr)}|${port}`;
}

function revKey(proto: number, backend: string, backendPort: number, snatPort: number): string {
  return `${proto}|${canon(backend)}|${backendPort}|${snatPort}`;
}

function canon(addr: string): string {
  return addr.includes(':') ? ipv6String(ipv6Bytes(addr)) : ipv4String(ipv4Bytes(addr));
}

/** Totals over a run: the per-frame judgement already covers each frame; this checks the sums once more. */
export function aggregateProblems(verdicts: Record<number, number>, delta: Delta, uncountedTx = 0): string[] {
  const sum = (rs: readonly StatReason[]): number => rs.reduce((a, r) => a + delta[r], 0);
  const problems: string[] = [];
  if (sum(DROP_REASONS) !== (verdicts[XDP.DROP] ?? 0)) problems.push(`drop reasons sum ${sum(DROP_REASONS)} ≠ ${verdicts[XDP.DROP] ?? 0} drops`);
  const tx = (verdicts[XDP.TX] ?? 0) - uncountedTx;
  if (sum(TX_REASONS) !== tx) problems.push(`tx reasons sum ${sum(TX_REASONS)} ≠ ${tx} XDP_TX (not counting ${uncountedTx} echo replies)`);
  if (sum(REDIRECT_REASONS) !== (verdicts[XDP.REDIRECT] ?? 0)) problems.push(`fwd_redirect ${sum(REDIRECT_REASONS)} ≠ ${verdicts[XDP.REDIRECT] ?? 0} XDP_REDIRECT`);
  if (sum(PASS_REASONS) > (verdicts[XDP.PASS] ?? 0)) problems.push(`pass reasons sum ${sum(PASS_REASONS)} > ${verdicts[XDP.PASS] ?? 0} XDP_PASS`);
  if (verdicts[XDP.ABORTED]) problems.push(`${verdicts[XDP.ABORTED]} XDP_ABORTED`);
  return problems;
}
