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
import { flowHash } from '../../src/datapath/maglev.js';
import { encodeFlow, RODATA_DEFAULTS } from '../../src/datapath/abi.js';
import { withLab } from '../support/lab.js';

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

function run(t: Test, input: Buffer, want: { verdict: number; output?: Buffer; stats: Partial<Record<DecapStatReason, number>> }, where?: { netns: string; ifindex: number }): void {
  const before = decap!.counters();
  let ctxIn: Buffer | undefined;
  if (where) {
    ctxIn = Buffer.alloc(192); // struct __sk_buff: only ifindex (offset 40) set, the device the frame arrives on
    ctxIn.writeUInt32LE(where.ifindex, 40);
  }
  const res = addon!.testRun(decap!.program.fd, { data: input, ...(where ? { netns: where.netns, ctxIn } : {}) });
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

/*
 * Hand-off (bpf/lib/handoff.h): the previous table of VIP4:80 / VIP6:80 says
 * every flow was PREV's; this host has no socket for any of them. Run in a
 * namespace where PREV is on eth0's segment, so the FIB answers.
 */
const PREV4 = '198.18.5.3';
const PREV6 = '2001:db8:5::3';
const TC_REDIRECT = 7;

function ack(f: Fam, flags = 'A'): Buffer {
  const b = pkt().eth(MACS);
  if (f === 4) b.ipv4({ src: CLIENT4, dst: VIP4, id: 9, flags: 'DF', ttl: 63 });
  else b.ipv6({ src: CLIENT6, dst: VIP6, hopLimit: 63 });
  return b.tcp({ sport: 40100, dport: 80, flags, seq: 5, ack: 7 }).payload('mid-flow').build();
}

t.test('hand-off: a mid-flow TCP packet with no socket here goes on, marked, to its previous owner; the rest is delivered here', { skip }, async (t) => {
  const lab = await withLab(t, 'phdcf');
  await lab.addNamespace('be');
  await lab.addLink({ ns: 'be', ifname: 'eth0', addrs: [`${NODE4}/24`, `${NODE6}/64`] }, { ns: 'be', ifname: 'peer0' });
  const where = { netns: lab.nsPath('be'), ifindex: addon!.ifIndex('eth0', lab.nsPath('be')) };
  const table = (address: string, owner: string) => ({ address, port: 80, protocol: 'TCP' as const, owners: Array.from({ length: 251 }, () => owner) });
  decap!.setPreviousTables([table(VIP4, PREV4), table(VIP6, PREV6)]);
  t.teardown(() => decap!.setPreviousTables([]));
  t.equal(flowHash(encodeFlow({ src: CLIENT4, dst: VIP4, sport: 40100, dport: 80, proto: 6 }), RODATA_DEFAULTS.cfg_hash_seed) % 251 >= 0, true, 'the flow hash the program computes is the LB\'s (same seed)');

  t.test('IPIP: outer destination now the previous owner, IP ID 1 (handed off), checksum valid', async (t) => {
    const input = encap(4, ack(4));
    const want = pkt().eth(MACS).ipv4({ src: LB4, dst: PREV4, ttl: 64, id: 1, flags: 'DF', proto: IPPROTO.IPIP }).payload(ack(4).subarray(14)).build();
    run(t, input, { verdict: TC_REDIRECT, output: want, stats: { handoff: 1 } }, where);
  });
  t.test('IP6IP6: outer destination the previous owner, flow label bit 19 set', async (t) => {
    const input = encap(6, ack(6));
    const want = pkt().eth(MACS).ipv6({ src: LB6, dst: PREV6, hopLimit: 64, nextHeader: IPPROTO.IPV6, flowLabel: 1 << 19 }).payload(ack(6).subarray(14)).build();
    run(t, input, { verdict: TC_REDIRECT, output: want, stats: { handoff: 1 } }, where);
  });
  t.test('a SYN starts a connection here: decapsulated', async (t) => run(t, encap(4, ack(4, 'S')), { verdict: TC.OK, output: ack(4, 'S'), stats: { decap: 1 } }, where));
  t.test('already handed off once (IP ID 1): decapsulated here, never sent on again', async (t) => {
    const marked = pkt().eth(MACS).ipv4({ src: LB4, dst: NODE4, ttl: 64, id: 1, flags: 'DF', proto: IPPROTO.IPIP }).payload(ack(4).subarray(14)).build();
    run(t, marked, { verdict: TC.OK, output: ack(4), stats: { decap: 1 } }, where);
  });
  t.test('the previous owner is this host: decapsulated here', async (t) => {
    decap!.setPreviousTables([table(VIP4, NODE4)]);
    run(t, encap(4, ack(4)), { verdict: TC.OK, output: ack(4), stats: { decap: 1 } }, where);
  });
  t.test('no previous table: decapsulated here', async (t) => {
    decap!.setPreviousTables([]);
    run(t, encap(4, ack(4)), { verdict: TC.OK, output: ack(4), stats: { decap: 1 } }, where);
  });
});
