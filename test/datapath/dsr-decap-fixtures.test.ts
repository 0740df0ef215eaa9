/**
 * BPF_PROG_TEST_RUN fixtures for the backend side of DSR's encapsulated
 * dispatch (bpf/decap.bpf.c, src/datapath/decap.ts): IPIP, IP6IP6 and
 * IPv4-in-IPv6 to this host for a served VIP leave as the inner packet
 * byte for byte behind the same Ethernet header; what is not ours goes on
 * untouched (to the next tc filter); hostile input addressed to us —
 * truncated, a wrong inner protocol or version, nested encapsulation — is
 * dropped; every exit counted by its reason.
 */
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { hexDiff, IPPROTO, pkt } from '../../src/lab/packet.js';
import { loadAddon } from '../../src/native/libbpf.js';
import { BPF_SOURCE_DIR } from '../../src/datapath/bpf-build.js';
import { DECAP_STAT_REASONS, loadDecap, type DecapStatReason, type LoadedDecap } from '../../src/datapath/decap.js';

/** This host (the backend), the LB that encapsulates, the served VIPs and a client, v4 and v6. */
const [NODE4, NODE6, LB4, LB6, VIP4, VIP6, CLIENT4, CLIENT6] = ['198.18.5.2', '2001:db8:5::2', '198.18.4.254', '2001:db8:4::fe', '198.51.100.60', '2001:db8:100::60', '203.0.113.7', '2001:db8:9::7'] as const;
const MACS = { src: '02:00:00:00:04:fe', dst: '02:00:00:00:05:02' };
const TC = { OK: 0, SHOT: 2, UNSPEC: -1 } as const;

const skip = privilegedUnavailable();
let decap: LoadedDecap | undefined;
const addon = skip ? undefined : loadAddon();

t.before(() => {
  if (skip) return;
  decap = loadDecap({ addon: addon! });
  decap.setVips([VIP4, VIP6]);
  decap.setNodeAddresses([NODE4, NODE6]);
});
t.teardown(() => decap?.close());

type Fam = 4 | 6;

/** The client's packet as the LB received it (Ethernet stripped later), TCP or UDP, or another protocol by number. */
function inner(f: Fam, l4: 'tcp' | 'udp' | number, dst: string = f === 4 ? VIP4 : VIP6): Buffer {
  const b = pkt().eth(MACS);
  if (f === 4) b.ipv4({ src: CLIENT4, dst, id: 9, flags: 'DF', ttl: 63, ...(typeof l4 === 'number' ? { proto: l4 } : {}) });
  else b.ipv6({ src: CLIENT6, dst, hopLimit: 63, ...(typeof l4 === 'number' ? { nextHeader: l4 } : {}) });
  if (l4 === 'tcp') b.tcp({ sport: 40001, dport: 80, flags: 'S', seq: 1, ack: 0 });
  else if (l4 === 'udp') b.udp({ sport: 40002, dport: 53 });
  else b.payload(Buffer.alloc(24, 0xab));
  return b.payload('pharos decap fixture').build();
}

/** `innerFrame` (with its Ethernet header) inside an outer header of family `outer` to `to`. */
function encap(outer: Fam, innerFrame: Buffer, opts: { to?: string; proto?: number; fragment?: boolean } = {}): Buffer {
  const innerV4 = innerFrame.readUInt16BE(12) === 0x0800;
  const proto = opts.proto ?? (innerV4 ? IPPROTO.IPIP : IPPROTO.IPV6);
  const b = pkt().eth(MACS);
  if (outer === 4) b.ipv4({ src: LB4, dst: opts.to ?? NODE4, ttl: 64, proto, ...(opts.fragment ? { flags: 'MF' } : { flags: 'DF' }) });
  else b.ipv6({ src: LB6, dst: opts.to ?? NODE6, hopLimit: 64, nextHeader: proto });
  return b.payload(innerFrame.subarray(14)).build();
}

function run(t: Test, input: Buffer, want: { verdict: number; output?: Buffer; stats: Partial<Record<DecapStatReason, number>> }): void {
  const before = decap!.counters();
  const res = addon!.testRun(decap!.program.fd, { data: input });
  const after = decap!.counters();
  t.equal(res.retval | 0, want.verdict, 'verdict');
  if (want.output) {
    const diff = hexDiff(want.output, res.dataOut);
    t.ok(diff === '', diff === '' ? 'output: the inner packet behind the same Ethernet header' : `output differs:\n${diff}`);
  }
  const moved = Object.fromEntries(DECAP_STAT_REASONS.map((r) => [r, Number(after[r] - before[r])]).filter(([, d]) => d !== 0));
  t.same(moved, want.stats, 'counter deltas');
}

t.test('the counter names are the C enum, in order', async (t) => {
  const src = readFileSync(join(BPF_SOURCE_DIR, 'lib', 'decap.h'), 'utf8');
  const names = [...src.matchAll(/^\s*PH_DC_(\w+) = (\d+),/gm)].filter((m) => m[1] !== 'MAX').map((m) => [m[1]!.toLowerCase(), Number(m[2])]);
  t.same(names, DECAP_STAT_REASONS.map((r, i) => [r, i]));
});

for (const [outer, innerFam, name] of [[4, 4, 'IPIP'], [6, 6, 'IP6IP6'], [6, 4, 'IPv4 in IPv6'], [4, 6, 'IPv6 in IPv4']] as const) {
  for (const l4 of ['tcp', 'udp'] as const) {
    t.test(`${name} ${l4} to this host for a served VIP: decapsulated, the client's packet delivered as it was sent`, { skip }, async (t) => {
      const client = inner(innerFam, l4);
      run(t, encap(outer, client), { verdict: TC.OK, output: client, stats: { decap: 1 } });
    });
  }
}

t.test('not ours: goes on untouched to the next filter / the kernel', { skip }, async (t) => {
  const plain = inner(4, 'tcp');
  t.test('a plain packet to the VIP (not encapsulated)', async (t) => run(t, plain, { verdict: TC.UNSPEC, output: plain, stats: {} }));
  const elsewhere = encap(4, plain, { to: '198.18.5.99' });
  t.test('IPIP to another address than this host\'s', async (t) => run(t, elsewhere, { verdict: TC.UNSPEC, output: elsewhere, stats: { not_node: 1 } }));
  const notVip = encap(6, inner(6, 'tcp', '2001:db8:100::61'));
  t.test('an inner destination that is not a served VIP', async (t) => run(t, notVip, { verdict: TC.UNSPEC, output: notVip, stats: { not_vip: 1 } }));
  const fragment = encap(4, plain, { fragment: true });
  t.test('an outer IPv4 fragment', async (t) => run(t, fragment, { verdict: TC.UNSPEC, output: fragment, stats: { fragment: 1 } }));
});

t.test('hostile or broken input addressed to us: dropped, counted', { skip }, async (t) => {
  t.test('inner header truncated', async (t) => run(t, encap(4, inner(4, 'tcp')).subarray(0, 14 + 20 + 12), { verdict: TC.SHOT, stats: { malformed: 1 } }));
  t.test('outer says IPv6 inside, the inner header is IPv4', async (t) => run(t, encap(6, inner(4, 'tcp'), { proto: IPPROTO.IPV6 }), { verdict: TC.SHOT, stats: { malformed: 1 } }));
  t.test('inner protocol GRE to the VIP', async (t) => run(t, encap(4, inner(4, IPPROTO.GRE)), { verdict: TC.SHOT, stats: { inner_proto: 1 } }));
  t.test('nested: IPIP inside IPIP to the VIP', async (t) => run(t, encap(4, inner(4, IPPROTO.IPIP)), { verdict: TC.SHOT, stats: { nested: 1 } }));
  t.test('nested: IP6IP6 inside IP6IP6 to the VIP', async (t) => run(t, encap(6, inner(6, IPPROTO.IPV6)), { verdict: TC.SHOT, stats: { nested: 1 } }));
  t.test('a bare outer header, nothing inside', async (t) => run(t, encap(6, inner(6, 'tcp')).subarray(0, 14 + 40 + 4), { verdict: TC.SHOT, stats: { malformed: 1 } }));
});
