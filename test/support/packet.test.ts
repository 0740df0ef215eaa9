import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type PacketBuilder, type ParsedPacket, hexDiff, hexdump, inetChecksum, ipv4Bytes, ipv4String, ipv6Bytes, ipv6String,
  macBytes, macString, parse, parseIp, pkt, readPcap, tcpFlagBits, tcpFlagString, truncate, writePcap,
} from '../../src/lab/packet.js';
import { httpGet, startEchoServer, udpQuery, withLab } from './lab.js';
import { privilegedUnavailable } from './privileged.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const eth = { src: A, dst: B };
const v4 = { src: '198.18.0.1', dst: '198.18.0.10' };
const v6 = { src: '2001:db8::1', dst: '2001:db8::10' };

/** Rebuilds a frame from its decode with the builder (checksums and lengths derived again). */
function rebuild(p: ParsedPacket): Buffer {
  const b = pkt();
  if (p.eth) b.eth({ src: p.eth.src, dst: p.eth.dst, type: p.eth.type });
  for (const v of p.vlans) b.vlan({ vid: v.vid, pcp: v.pcp, dei: v.dei, type: v.type });
  if (p.arp) b.arp({ op: p.arp.op, sha: p.arp.sha, spa: p.arp.spa, tha: p.arp.tha, tpa: p.arp.tpa });
  if (p.ip) {
    const f = p.ip.flags;
    b.ipv4({ src: p.ip.src, dst: p.ip.dst, ttl: p.ip.ttl, id: p.ip.id, tos: p.ip.tos, proto: p.ip.proto,
      flags: (f.rf ? 4 : 0) | (f.df ? 2 : 0) | (f.mf ? 1 : 0), fragOffset: p.ip.fragOffset, options: p.ip.options });
  }
  if (p.ip6) b.ipv6({ src: p.ip6.src, dst: p.ip6.dst, hopLimit: p.ip6.hopLimit, flowLabel: p.ip6.flowLabel, trafficClass: p.ip6.trafficClass });
  for (const e of p.ext) {
    if (e.kind === 'frag') b.ext('frag', { offset: e.offset, more: e.more, id: e.id, nextHeader: e.nextHeader });
    else if (e.kind === 'routing') b.ext('routing', { routingType: e.routingType, segmentsLeft: e.segmentsLeft, data: e.data, nextHeader: e.nextHeader });
    else b.ext(e.kind, { options: e.data, nextHeader: e.nextHeader });
  }
  if (p.tcp) {
    b.tcp({ sport: p.tcp.sport, dport: p.tcp.dport, seq: p.tcp.seq, ack: p.tcp.ack, flags: p.tcp.flags,
      window: p.tcp.window, urgent: p.tcp.urgent, options: p.tcp.options });
  }
  if (p.udp) b.udp({ sport: p.udp.sport, dport: p.udp.dport });
  if (p.icmp) b.icmp({ type: p.icmp.type, code: p.icmp.code, rest: p.icmp.rest });
  if (p.ndp?.kind === 'ns') b.ns({ target: p.ndp.target, sll: p.ndp.sll });
  else if (p.ndp?.kind === 'na') b.na({ target: p.ndp.target, tll: p.ndp.tll, router: p.ndp.router, solicited: p.ndp.solicited, override: p.ndp.override });
  else if (p.icmp6) b.icmp6({ type: p.icmp6.type, code: p.icmp6.code, rest: p.icmp6.rest });
  if (p.payload.length) b.payload(p.payload);
  return b.build();
}

function sameBytes(t: Test, actual: Buffer, expected: Buffer, msg: string): void {
  const diff = hexDiff(expected, actual);
  t.ok(diff === '', msg, diff ? { diff } : {});
}

t.test('addresses convert between text and bytes', async (t) => {
  t.equal(macString(macBytes('02:AB:cd:0:1:ff')), '02:ab:cd:00:01:ff');
  t.throws(() => macBytes('02:00:00:00:00'));
  t.equal(ipv4String(ipv4Bytes('203.0.113.255')), '203.0.113.255');
  t.throws(() => ipv4Bytes('198.18.0.256'));
  const cases: Array<[string, string]> = [
    ['2001:db8::1', '2001:db8::1'], ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['2001:db8:0:0:0:0:0:0', '2001:db8::'],
    ['::', '::'], ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'], ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['::ffff:198.18.0.1', '::ffff:c612:1'], ['ff02::1:ff00:10', 'ff02::1:ff00:10'],
  ];
  for (const [text, canonical] of cases) t.equal(ipv6String(ipv6Bytes(text)), canonical, text);
  t.throws(() => ipv6Bytes('2001:db8::1::2'));
  t.throws(() => ipv6Bytes('2001:db8:1:2:3:4:5:6:7'));
  t.equal(tcpFlagString(tcpFlagBits('AS')), 'SA');
  t.equal(tcpFlagBits('FSRPAUEC'), 0xff);
  t.throws(() => tcpFlagBits('X'));
});

t.test('internet checksum (RFC 1071 worked example)', async (t) => {
  // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2; checksum is its complement.
  t.equal(inetChecksum(Buffer.from('0001f203f4f5f6f7', 'hex')), ~0xddf2 & 0xffff);
  // Odd length: the last byte is padded with a zero byte.
  t.equal(inetChecksum(Buffer.from([0x01])), ~0x0100 & 0xffff);
});

t.test('IPv4 + TCP with options: fields, lengths, checksums, round trip', async (t) => {
  const options = [
    { kind: 'mss' as const, value: 1460 }, { kind: 'sackPerm' as const }, { kind: 'timestamp' as const, val: 0xdeadbeef, ecr: 7 },
    { kind: 'nop' as const }, { kind: 'wscale' as const, value: 7 },
  ];
  const frame = pkt().eth(eth)
    .ipv4({ ...v4, ttl: 17, id: 0x1234, flags: 'DF', tos: 0x10, options: Buffer.from([0x94, 0x04, 0x00, 0x00]) })
    .tcp({ sport: 40000, dport: 80, seq: 0xfffffff0, ack: 5, flags: 'SA', window: 1024, options })
    .payload('hello').build();
  t.equal(frame.length, 14 + 24 + 40 + 5);
  const p = parse(frame);
  t.match(p.eth, { src: A, dst: B, type: 0x0800 });
  t.match(p.ip, { version: 4, ihl: 6, tos: 0x10, totalLength: 24 + 40 + 5, id: 0x1234, flags: { df: true, mf: false }, ttl: 17, proto: 6, checksumOk: true, ...v4 });
  t.same(p.ip?.options, Buffer.from([0x94, 4, 0, 0]));
  t.match(p.tcp, { sport: 40000, dport: 80, seq: 0xfffffff0, ack: 5, flags: 'SA', window: 1024, dataOffset: 10, checksumOk: true });
  t.same(p.tcp?.options, options);
  t.equal(p.payload.toString(), 'hello');
  t.notOk(p.truncated);
  sameBytes(t, rebuild(p), frame, 'rebuilt from the decode byte for byte');

  // Options that are not a multiple of 4 are padded with EOL.
  const padded = parse(pkt().eth(eth).ipv4(v4).tcp({ sport: 1, dport: 2, options: [{ kind: 'wscale', value: 2 }] }).build());
  t.equal(padded.tcp?.dataOffset, 6);
  t.same(padded.tcp?.rawOptions, Buffer.from([3, 3, 2, 0]));
  t.equal(padded.tcp?.checksumOk, true);
});

t.test('UDP over IPv4 and IPv6, with zero and bad checksums', async (t) => {
  const u4 = parse(pkt().eth(eth).ipv4(v4).udp({ sport: 5353, dport: 53 }).payload('q').build());
  t.match(u4.udp, { sport: 5353, dport: 53, length: 9, checksumOk: true });
  const u6 = parse(pkt().eth(eth).ipv6({ ...v6, flowLabel: 0xabcde, trafficClass: 0x20, hopLimit: 9 }).udp({ sport: 1, dport: 2 }).payload('xyz').build());
  t.match(u6.ip6, { nextHeader: 17, payloadLength: 11, flowLabel: 0xabcde, trafficClass: 0x20, hopLimit: 9, ...v6 });
  t.match(u6.udp, { length: 11, checksumOk: true });
  const zero4 = parse(pkt().eth(eth).ipv4(v4).udp({ sport: 1, dport: 2, checksum: 'zero' }).build());
  t.equal(zero4.udp?.checksum, 0);
  t.equal(zero4.udp?.checksumOk, undefined, 'no checksum over IPv4 is allowed: not judged');
  const zero6 = parse(pkt().eth(eth).ipv6(v6).udp({ sport: 1, dport: 2, checksum: 'zero' }).build());
  t.equal(zero6.udp?.checksumOk, false, 'zero checksum over IPv6 is invalid');
  const bad = parse(pkt().eth(eth).ipv4(v4).udp({ sport: 1, dport: 2, checksum: 'bad' }).payload('x').build());
  t.equal(bad.udp?.checksumOk, false);
  t.equal(bad.ip?.checksumOk, true);
  const fixed = parse(pkt().eth(eth).ipv4(v4).udp({ sport: 1, dport: 2, checksum: 0xbeef }).build());
  t.equal(fixed.udp?.checksum, 0xbeef);
});

t.test('ICMP echo, and errors quoting the offending packet', async (t) => {
  const echo = pkt().eth(eth).ipv4(v4).icmp({ type: 8, id: 77, seq: 3 }).payload('ping').build();
  const pe = parse(echo);
  t.match(pe.icmp, { type: 8, code: 0, id: 77, seq: 3, checksumOk: true });
  t.equal(pe.payload.toString(), 'ping');
  sameBytes(t, rebuild(pe), echo, 'echo rebuilt');

  const offending = pkt().ipv4({ src: v4.dst, dst: '203.0.113.5', flags: 'DF' }).tcp({ sport: 80, dport: 1234, flags: 'PA' }).payload(Buffer.alloc(1400)).build();
  const err = pkt().eth(eth).ipv4({ src: '198.18.0.254', dst: v4.dst }).icmp({ type: 3, code: 4, mtu: 1400 }).payload(offending.subarray(0, 28)).build();
  const pr = parse(err);
  t.match(pr.icmp, { type: 3, code: 4, checksumOk: true });
  t.equal(pr.icmp?.rest.readUInt16BE(2), 1400);
  t.match(pr.icmp?.quoted?.ip, { src: v4.dst, dst: '203.0.113.5', totalLength: 1440 });
  t.same(pr.icmp?.quoted?.ports, { proto: 6, sport: 80, dport: 1234 }, 'ports of the quoted, cut TCP header');
  t.equal(pr.icmp?.quoted?.tcp, undefined);
  t.equal(pr.icmp?.quoted?.truncated, true, 'the quote is cut short, as routers send it');

  const e6 = pkt().eth(eth).ipv6(v6).icmp6({ type: 128, id: 9, seq: 1 }).payload('six').build();
  const p6 = parse(e6);
  t.match(p6.icmp6, { type: 128, id: 9, seq: 1, checksumOk: true });
  sameBytes(t, rebuild(p6), e6, 'echo6 rebuilt');
  const ptb = parse(pkt().eth(eth).ipv6(v6).icmp6({ type: 2, mtu: 1280 }).payload(pkt().ipv6({ src: v6.dst, dst: '2001:db8::99' }).udp({ sport: 1, dport: 2 }).build()).build());
  t.equal(ptb.icmp6?.rest.readUInt32BE(0), 1280);
  t.match(ptb.icmp6?.quoted?.udp, { sport: 1, dport: 2, checksumOk: true });
});

t.test('IPv6 extension header chains', async (t) => {
  const frame = pkt().eth(eth).ipv6(v6)
    .ext('hop', { options: Buffer.from([0x05, 0x02, 0x00, 0x00]) }) // router alert
    .ext('routing', { addresses: ['2001:db8::20', '2001:db8::30'], segmentsLeft: 2 })
    .ext('dest')
    .tcp({ sport: 1000, dport: 443, flags: 'S' })
    .build();
  const p = parse(frame);
  t.same(p.ext.map((e) => [e.kind, e.length, e.nextHeader]), [['hop', 8, 43], ['routing', 40, 60], ['dest', 8, 6]]);
  t.equal(p.ip6?.nextHeader, 0);
  t.equal(p.ip6?.payloadLength, 8 + 40 + 8 + 20);
  t.equal(p.ext[1]?.segmentsLeft, 2);
  t.equal(p.tcp?.checksumOk, true, 'pseudo-header uses the final destination of the routing header');
  t.equal(p.ext[0]?.data.subarray(0, 4).toString('hex'), '05020000');
  t.equal(p.ext[0]?.data.subarray(4).toString('hex'), '0100', 'padded with PadN to 8 bytes');
  sameBytes(t, rebuild(p), frame, 'chain rebuilt');

  const first = parse(pkt().eth(eth).ipv6(v6).ext('frag', { id: 0xabcdef01, more: true }).udp({ sport: 1, dport: 2, checksum: 0x1111 }).payload(Buffer.alloc(16)).build());
  t.match(first.ext[0], { kind: 'frag', offset: 0, more: true, id: 0xabcdef01, nextHeader: 17 });
  t.match(first.udp, { sport: 1, dport: 2 }, 'first fragment carries the L4 header');
  const later = parse(pkt().eth(eth).ipv6(v6).ext('frag', { id: 1, offset: 3, nextHeader: 17 }).payload(Buffer.alloc(24, 0xee)).build());
  t.equal(later.udp, undefined, 'non-first fragment has no L4 header');
  t.equal(later.payload.length, 24);

  // An IPv4 fragment likewise.
  const frag4 = parse(pkt().eth(eth).ipv4({ ...v4, flags: 'MF', fragOffset: 185, proto: 17 }).payload(Buffer.alloc(8)).build());
  t.match(frag4.ip, { fragOffset: 185, flags: { mf: true }, checksumOk: true });
  t.equal(frag4.udp, undefined);

  // An extension header cut in half.
  const cut = parse(truncate(frame, 14 + 40 + 8 + 20));
  t.equal(cut.truncated, true);
  t.equal(cut.tcp, undefined);
});

t.test('ARP and NDP', async (t) => {
  const req = pkt().eth({ src: A, dst: 'ff:ff:ff:ff:ff:ff' }).arp({ op: 'request', sha: A, spa: '198.18.0.1', tpa: '198.18.0.10' }).build();
  t.equal(req.length, 42);
  const pa = parse(req);
  t.match(pa.arp, { htype: 1, ptype: 0x0800, hlen: 6, plen: 4, op: 1, sha: A, spa: '198.18.0.1', tha: '00:00:00:00:00:00', tpa: '198.18.0.10' });
  sameBytes(t, rebuild(pa), req, 'arp rebuilt');

  const ns = pkt().eth({ src: A, dst: '33:33:ff:00:00:10' }).ipv6({ src: v6.src, dst: 'ff02::1:ff00:10' }).ns({ target: v6.dst, sll: A }).build();
  const pn = parse(ns);
  t.equal(pn.ip6?.hopLimit, 255, 'NDP defaults to hop limit 255');
  t.match(pn.icmp6, { type: 135, checksumOk: true });
  t.match(pn.ndp, { kind: 'ns', target: v6.dst, sll: A });
  sameBytes(t, rebuild(pn), ns, 'ns rebuilt');

  const na = pkt().eth({ src: B, dst: A }).ipv6({ src: v6.dst, dst: v6.src }).na({ target: v6.dst, tll: B, solicited: true, override: true }).build();
  const pna = parse(na);
  t.match(pna.ndp, { kind: 'na', target: v6.dst, tll: B, router: false, solicited: true, override: true });
  t.equal(pna.icmp6?.checksumOk, true);
  t.equal(na.length, 14 + 40 + 32);
  sameBytes(t, rebuild(pna), na, 'na rebuilt');
});

t.test('VLAN tags (802.1Q and QinQ)', async (t) => {
  const f = pkt().eth(eth).vlan({ vid: 100, pcp: 5, tpid: 0x88a8 }).vlan({ vid: 4094, dei: true }).ipv4(v4).udp({ sport: 1, dport: 2 }).build();
  const p = parse(f);
  t.equal(p.eth?.type, 0x88a8);
  t.same(p.vlans, [{ tpid: 0x88a8, vid: 100, pcp: 5, dei: false, type: 0x8100 }, { tpid: 0x8100, vid: 4094, pcp: 0, dei: true, type: 0x0800 }]);
  t.equal(p.udp?.checksumOk, true);
});

t.test('overrides make malformed packets that the parser reports', async (t) => {
  const badIp = parse(pkt().eth(eth).ipv4({ ...v4, checksum: 'bad' }).udp({ sport: 1, dport: 2 }).build());
  t.equal(badIp.ip?.checksumOk, false);
  const shortIhl = parse(pkt().eth(eth).ipv4({ ...v4, ihl: 4 }).udp({ sport: 1, dport: 2 }).build());
  t.equal(shortIhl.ip?.ihl, 4);
  t.equal(shortIhl.udp, undefined);
  t.match(shortIhl.notes, [/ihl 4/]);
  const longIhl = parse(pkt().eth(eth).ipv4({ ...v4, ihl: 15 }).build());
  t.equal(longIhl.truncated, true, 'ihl beyond the frame');
  const longTotal = parse(pkt().eth(eth).ipv4({ ...v4, totalLength: 1500 }).udp({ sport: 1, dport: 2 }).build());
  t.equal(longTotal.ip?.totalLength, 1500);
  t.equal(longTotal.truncated, true, 'total length beyond the frame');
  t.equal(longTotal.udp?.checksumOk, undefined, 'L4 checksum not judged on a cut segment');
  const shortTotal = parse(pkt().eth(eth).ipv4({ ...v4, totalLength: 10 }).udp({ sport: 1, dport: 2 }).build());
  t.match(shortTotal.notes, [/total length 10/]);
  const padded = parse(Buffer.concat([pkt().eth(eth).ipv4(v4).udp({ sport: 1, dport: 2 }).payload('ab').build(), Buffer.alloc(10)]));
  t.equal(padded.payload.toString(), 'ab', 'ethernet padding past the IP total length is not payload');
  t.equal(padded.udp?.checksumOk, true);
  const badOff = parse(pkt().eth(eth).ipv4(v4).tcp({ sport: 1, dport: 2, dataOffset: 15 }).build());
  t.equal(badOff.truncated, true, 'tcp data offset beyond the segment');
  const tinyOff = parse(pkt().eth(eth).ipv4(v4).tcp({ sport: 1, dport: 2, dataOffset: 2 }).build());
  t.match(tinyOff.notes, [/data offset 2/]);
  const badTcp = parse(pkt().eth(eth).ipv6(v6).tcp({ sport: 1, dport: 2, checksum: 'bad' }).build());
  t.equal(badTcp.tcp?.checksumOk, false);
  const badOpt = parse(pkt().eth(eth).ipv4(v4).tcp({ sport: 1, dport: 2, options: Buffer.from([2, 40, 0, 0]) }).build());
  t.match(badOpt.notes, [/tcp option 2 length/]);
  const udpLen = parse(pkt().eth(eth).ipv4(v4).udp({ sport: 1, dport: 2, length: 300 }).build());
  t.equal(udpLen.udp?.length, 300);
  const unknownEther = parse(pkt().eth({ ...eth, type: 0x88cc }).payload('lldp').build());
  t.match(unknownEther.notes, [/ethertype 0x88cc/]);
  t.equal(parseIp(Buffer.from([0x50])).notes[0], 'ip version 5');
});

t.test('truncate: every prefix of every kind of frame parses without throwing', async (t) => {
  const frames: Array<[string, PacketBuilder]> = [
    ['tcp4', pkt().eth(eth).ipv4({ ...v4, options: Buffer.from([1, 1, 1, 1]) }).tcp({ sport: 1, dport: 2, options: [{ kind: 'mss', value: 1400 }] }).payload('data')],
    ['udp6+ext', pkt().eth(eth).vlan({ vid: 7 }).ipv6(v6).ext('hop').ext('frag').udp({ sport: 1, dport: 2 }).payload('data')],
    ['arp', pkt().eth(eth).arp({ op: 'reply', sha: A, spa: '198.18.0.1', tha: B, tpa: '198.18.0.2' })],
    ['ns', pkt().eth(eth).ipv6(v6).ns({ target: v6.dst, sll: A })],
    ['icmp err', pkt().eth(eth).ipv4(v4).icmp({ type: 11 }).payload(pkt().ipv4(v4).udp({ sport: 1, dport: 2 }).build())],
  ];
  for (const [name, b] of frames) {
    const full = b.build();
    t.notOk(parse(full).truncated, `${name} complete`);
    const problems: string[] = [];
    for (let n = 0; n < full.length; n++) {
      const cut = truncate(full, n);
      if (cut.length !== n) problems.push(`cut at ${n}: length ${cut.length}`);
      try {
        if (!parse(cut).truncated) problems.push(`cut at ${n}: not flagged truncated`);
      } catch (err) {
        problems.push(`cut at ${n}: threw ${(err as Error).message}`);
      }
    }
    t.same(problems, [], `${name}: all ${full.length} prefixes decode, flagged truncated`);
  }
  t.same(truncate(Buffer.from([1, 2, 3]), -1), Buffer.alloc(0));
});

t.test('hexDiff marks differing bytes; pcap round trip', async (t) => {
  const a = pkt().eth(eth).ipv4(v4).udp({ sport: 1, dport: 2 }).build();
  const b = Buffer.from(a);
  b[30] = 0xff;
  t.equal(hexDiff(a, a), '');
  const d = hexDiff(a, b);
  t.match(d, /0010 exp/);
  t.match(d, /\^\^/);
  t.match(hexDiff(a, a.subarray(0, 20)), /expected 42 bytes, actual 20 bytes/);
  t.match(hexdump(Buffer.from([0xde, 0xad])), /^0000 {2}de ad$/);
  t.same(readPcap(writePcap([a, b])), [a, b]);
  t.throws(() => readPcap(Buffer.alloc(24)), /magic/);
});

function hasTcpdump(): string | false {
  try {
    execFileSync('tcpdump', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'tcpdump not installed (deploy/setup.sh installs it)';
  }
}

t.test('tcpdump (an independent decoder) agrees with every checksum', { skip: process.env.PHAROS_REQUIRE_PRIVILEGED === '1' ? false : hasTcpdump() }, async (t) => {
  const good: Array<[string, Buffer]> = [
    ['tcp4', pkt().eth(eth).ipv4({ ...v4, options: Buffer.from([0x94, 4, 0, 0]) }).tcp({ sport: 4000, dport: 80, flags: 'S', options: [{ kind: 'mss', value: 1460 }, { kind: 'sackPerm' }, { kind: 'timestamp', val: 1, ecr: 0 }] }).build()],
    ['tcp4 odd payload', pkt().eth(eth).ipv4(v4).tcp({ sport: 4000, dport: 80, flags: 'PA', seq: 1, ack: 1 }).payload('odd').build()],
    ['udp4', pkt().eth(eth).ipv4(v4).udp({ sport: 5000, dport: 9999 }).payload('x').build()],
    ['icmp4', pkt().eth(eth).ipv4(v4).icmp({ type: 8, id: 1, seq: 2 }).payload('abc').build()],
    ['tcp6', pkt().eth(eth).ipv6(v6).tcp({ sport: 4000, dport: 80, flags: 'S' }).build()],
    ['udp6', pkt().eth(eth).ipv6(v6).udp({ sport: 5000, dport: 9999 }).payload('xy').build()],
    ['icmp6', pkt().eth(eth).ipv6(v6).icmp6({ type: 128, id: 1, seq: 2 }).payload('abc').build()],
    ['ns', pkt().eth(eth).ipv6({ src: v6.src, dst: 'ff02::1:ff00:10' }).ns({ target: v6.dst, sll: A }).build()],
    ['na', pkt().eth(eth).ipv6(v6).na({ target: v6.src, tll: A, solicited: true }).build()],
    ['tcp6 via routing header', pkt().eth(eth).ipv6(v6).ext('hop').ext('routing', { addresses: ['2001:db8::30'] }).ext('dest').tcp({ sport: 1, dport: 2 }).build()],
  ];
  const bad: Array<[string, Buffer]> = [
    ['bad ip', pkt().eth(eth).ipv4({ ...v4, checksum: 'bad' }).udp({ sport: 5000, dport: 9999 }).build()],
    ['bad tcp4', pkt().eth(eth).ipv4(v4).tcp({ sport: 4000, dport: 80, checksum: 'bad' }).build()],
    ['bad udp6', pkt().eth(eth).ipv6(v6).udp({ sport: 5000, dport: 9999, checksum: 'bad' }).build()],
    ['bad icmp4', pkt().eth(eth).ipv4(v4).icmp({ type: 8, checksum: 'bad' }).build()],
    ['bad icmp6', pkt().eth(eth).ipv6(v6).icmp6({ type: 128, checksum: 'bad' }).build()],
  ];
  const dir = mkdtempSync(join(tmpdir(), 'phl-pcap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const verdicts = (frames: Array<[string, Buffer]>): string[] => {
    const file = join(dir, 'f.pcap');
    writeFileSync(file, writePcap(frames.map(([, f]) => f)));
    const out = execFileSync('tcpdump', ['-r', file, '-n', '-vvv', '-t'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    // One record per frame: continuation lines start with whitespace.
    return out.split(/\n(?=\S)/).filter((l) => l.trim());
  };
  const BAD = /bad cksum|incorrect|bad \w+ cksum|wrong icmp cksum|bad udp cksum/i;
  const goodOut = verdicts(good);
  t.equal(goodOut.length, good.length);
  good.forEach(([name], i) => {
    t.notMatch(goodOut[i] ?? '', BAD, `${name}: tcpdump finds no bad checksum`);
    if (!name.startsWith('icmp4')) t.match(goodOut[i] ?? '', /\(correct\)|sum ok/, `${name}: tcpdump confirms the L4 checksum`);
  });
  const badOut = verdicts(bad);
  bad.forEach(([name], i) => t.match(badOut[i] ?? '', BAD, `${name}: tcpdump sees the wrong checksum`));
  // Our parser agrees with tcpdump on both sets.
  for (const [name, f] of good) {
    const p = parse(f);
    t.ok([p.ip?.checksumOk, p.tcp?.checksumOk, p.udp?.checksumOk, p.icmp?.checksumOk, p.icmp6?.checksumOk].every((v) => v !== false), `${name}: parser says good`);
  }
  for (const [name, f] of bad) {
    const p = parse(f);
    t.ok([p.ip?.checksumOk, p.tcp?.checksumOk, p.udp?.checksumOk, p.icmp?.checksumOk, p.icmp6?.checksumOk].some((v) => v === false), `${name}: parser says bad`);
  }
});

t.test('frames sent by the kernel parse with good checksums and rebuild byte for byte', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'phl4');
  await lab.addNamespace('a');
  await lab.addNamespace('b');
  await lab.addLink({ ns: 'a', ifname: 'eth0', addrs: ['198.18.4.1/24', '2001:db8:4::1/64'] }, { ns: 'b', ifname: 'eth0', addrs: ['198.18.4.2/24', '2001:db8:4::2/64'] });
  // With checksum offload the sender leaves TCP/UDP checksums partial; make the kernel finish them.
  await lab.exec('a', ['ethtool', '-K', 'eth0', 'tx', 'off']);
  await lab.exec('b', ['ethtool', '-K', 'eth0', 'tx', 'off']);
  const cap = await lab.capture('b', 'eth0');
  await lab.exec('a', ['ping', '-c1', '-W2', '-s', '51', '198.18.4.2']);
  await lab.exec('a', ['ping', '-6', '-c1', '-W2', '2001:db8:4::2']);
  await startEchoServer(lab, 'b', { name: 'echo', port: 9000, udp: true });
  t.equal(await udpQuery(lab, 'a', '198.18.4.2', 9000, 'hello udp'), 'echo 198.18.4.1 hello udp');
  // A TCP connection to a closed port: SYN with the kernel's options, then RST.
  await t.rejects(httpGet(lab, 'a', 'http://198.18.4.2:81/', { timeoutMs: 2000 }));
  await t.rejects(httpGet(lab, 'a', 'http://[2001:db8:4::2]:81/', { timeoutMs: 2000 }));
  const frames = await cap.stop();
  const decoded = frames.map(parse);
  const seen = new Set<string>();
  decoded.forEach((p, i) => {
    const kind = p.arp ? `arp${p.arp.op}` : p.ndp ? p.ndp.kind : p.tcp ? `tcp${p.ip ? 4 : 6}-${p.tcp.flags}` : p.udp ? `udp${p.ip ? 4 : 6}` : p.icmp ? `icmp${p.icmp.type}` : p.icmp6 ? `icmp6-${p.icmp6.type}` : 'other';
    seen.add(kind);
    t.notOk(p.truncated, `${kind}: complete`);
    t.same([p.ip?.checksumOk, p.tcp?.checksumOk, p.udp?.checksumOk, p.icmp?.checksumOk, p.icmp6?.checksumOk].filter((v) => v !== undefined && v !== true), [], `${kind}: every checksum good`);
    sameBytes(t, rebuild(p), frames[i]!, `${kind}: rebuilt byte for byte`);
  });
  t.comment([...seen].join(' '));
  for (const want of ['arp1', 'arp2', 'icmp8', 'icmp0', 'icmp6-128', 'icmp6-129', 'ns', 'na', 'udp4', 'tcp4-S', 'tcp4-RA', 'tcp6-S', 'tcp6-RA']) {
    t.ok(seen.has(want), `captured ${want}`);
  }
  const syn = decoded.find((p) => p.tcp?.flags === 'S' && p.ip)!;
  t.ok(syn.tcp?.options.some((o) => o.kind === 'mss'), 'kernel SYN options decoded');
});
