/**
 * BPF_PROG_TEST_RUN fixtures for direct server return, L2 dispatch
 * (bpf/lib/dsr.h), v4 and v6, TCP and UDP, in the fixture world of
 * fixture-env.ts (real FIB neighbours). What they prove: a DSR frame leaves
 * byte for byte as it came except its two MACs (no NAT, TTL untouched); it
 * goes to the backend Maglev picks (the one maglev.ts predicts), also for a
 * mid-flow packet no LB has seen the start of, and an ICMP error about a
 * reply; no conntrack or reverse-NAT entry is made; a backend behind a router, or a frame for another host, is
 * never forwarded; and a frontend switched back to snat is NATed as before.
 */
import t, { type Test } from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { withLab } from '../support/lab.js';
import { hexDiff, IPPROTO, parse, pkt } from '../../src/lab/packet.js';
import { ADDR, baseFrontends, FixtureEnv, MAC, XDP } from '../../src/lab/fixture-env.js';
import { encodeFlow, encodeIfMac, STAT_REASONS, u32Key, type StatReason } from '../../src/datapath/abi.js';
import { flowHash } from '../../src/datapath/maglev.js';
import type { Backend, Frontend } from '../../src/model/types.js';

type Fam = 4 | 6;
type L4 = 'tcp' | 'udp';
const PAYLOAD = Buffer.from('pharos dsr fixture');
const fromClient = { src: MAC.client, dst: MAC.fx0 };

const client = (f: Fam): string => (f === 4 ? ADDR.client4 : ADDR.client6);
const be = (f: Fam, i: number): string => (f === 4 ? ADDR.backend4(i) : ADDR.backend6(i));
/** Service VIPs of this file: 198.51.100.4x / 2001:db8:100::4x. */
const vip = (f: Fam, n: number): string => (f === 4 ? `198.51.100.${n}` : `2001:db8:100::${n}`);
/** Reached through a router (routes added below): L2 dispatch cannot get there. */
const offLink = (f: Fam): string => (f === 4 ? '192.0.2.10' : '2001:db8:7::10');
const portOf = (l4: L4): number => (l4 === 'tcp' ? 80 : 53);

function frame(f: Fam, macs: { src: string; dst: string }, dst: string, sport: number, l4: L4, flags = 'S'): Buffer {
  const b = pkt().eth(macs);
  if (f === 4) b.ipv4({ src: client(f), dst, id: 7, flags: 'DF', ttl: 64 });
  else b.ipv6({ src: client(f), dst, hopLimit: 64 });
  if (l4 === 'tcp') b.tcp({ sport, dport: 80, flags, seq: 1000, ack: flags.includes('A') ? 5000 : 0 });
  else b.udp({ sport, dport: 53 });
  return b.payload(PAYLOAD).build();
}

function backends(addrs: string[], port: number): Backend[] {
  return addrs.map((address) => ({ address, port, weight: 1, state: 'active' as const }));
}

function dsrFrontend(f: Fam, n: number, l4: L4, addrs: string[], mode: 'dsr' | 'snat' = 'dsr', dispatch?: 'l2' | 'ipip'): Frontend {
  return {
    service: `phdsr/svc-${n}`, kind: 'LoadBalancer', address: vip(f, n), port: portOf(l4), protocol: l4 === 'tcp' ? 'TCP' : 'UDP',
    // DSR leaves the port alone: the backend listens on the service port.
    backends: backends(addrs, portOf(l4)), sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [],
    ...(mode === 'dsr' ? { forwardingMode: 'dsr' as const, ...(dispatch ? { dsrDispatch: dispatch } : {}) } : {}),
  };
}

function frontends(mode: 'dsr' | 'snat' = 'dsr'): Frontend[] {
  const mine: Frontend[] = [];
  for (const f of [4, 6] as const) {
    const three = [1, 2, 3].map((i) => be(f, i));
    mine.push(dsrFrontend(f, 40, 'tcp', three, mode), dsrFrontend(f, 40, 'udp', three, mode), dsrFrontend(f, 41, 'tcp', [offLink(f)], mode), dsrFrontend(f, 42, 'tcp', [], mode),
      // Encapsulated dispatch: auto to the off-link backend (41, UDP too), forced to on-link ones (44); L2 only to an off-link one (43).
      dsrFrontend(f, 41, 'udp', [offLink(f)], mode), dsrFrontend(f, 43, 'tcp', [offLink(f)], mode, 'l2'), dsrFrontend(f, 44, 'tcp', three, mode, 'ipip'));
  }
  return [...baseFrontends(), ...mine];
}

const skip = privilegedUnavailable();
let env: FixtureEnv | undefined;

t.before(async () => {
  if (skip) return;
  const lab = await withLab(t, 'phdsrf');
  env = await FixtureEnv.create(lab, '/run/pharos/bpffs/phdsr-fixtures', { nsName: 'fx' });
  await lab.exec('fx', ['sh', '-c', 'ip route add 192.0.2.0/24 via 198.18.2.1 && ip -6 route add 2001:db8:7::/64 via 2001:db8:2::1']);
  env.apply(frontends());
});
t.teardown(() => env?.close());

const verdictName = (n: number): string => Object.entries(XDP).find(([, v]) => v === n)?.[0] ?? `verdict ${n}`;

/** Run one frame; check verdict, output and the exact counter deltas; and that no flow state was written. */
function expectRun(t: Test, e: FixtureEnv, input: Buffer, want: { verdict: keyof typeof XDP; output?: Buffer; stats: Partial<Record<StatReason, number>> }): Buffer {
  const before = e.counters();
  const res = e.run(input);
  const after = e.counters();
  t.equal(verdictName(res.retval), want.verdict, 'verdict');
  if (want.output) {
    const diff = hexDiff(want.output, res.dataOut);
    t.ok(diff === '', diff === '' ? 'output frame: the input with only its MACs changed' : `output differs:\n${diff}`);
  }
  const moved = Object.fromEntries(STAT_REASONS.map((r) => [r, Number(after[r] - before[r])]).filter(([, d]) => d !== 0));
  t.same(moved, want.stats, 'counter deltas');
  return res.dataOut;
}

/** The flow of a client packet as the conntrack map would key it. */
function flowKey(f: Fam, l4: L4, n: number, sport: number): Buffer {
  return encodeFlow({ src: client(f), dst: vip(f, n), sport, dport: portOf(l4), proto: l4 === 'tcp' ? 6 : 17 });
}

for (const f of [4, 6] as const) {
  for (const l4 of ['tcp', 'udp'] as const) {
    const v = `v${f} ${l4}`;
    const base = (f === 4 ? 30000 : 31000) + (l4 === 'tcp' ? 0 : 500);

    t.test(`${v}: first packet → the Maglev backend, only the MACs rewritten, no flow state`, { skip }, async (t) => {
      const e = env!;
      const sport = base + 1;
      const p = e.predict({ src: client(f), dst: vip(f, 40), sport, dport: portOf(l4), proto: l4 === 'tcp' ? 6 : 17 }, l4 === 'tcp' ? 'TCP' : 'UDP');
      const want = frame(f, { src: MAC.fb0, dst: MAC.backend(p.backendIndex) }, vip(f, 40), sport, l4);
      expectRun(t, e, frame(f, fromClient, vip(f, 40), sport, l4), { verdict: 'REDIRECT', output: want, stats: { dsr_l2: 1, fwd_redirect: 1 } });
      t.equal(e.dp.maps.conntrack.lookup(flowKey(f, l4, 40, sport)), null, 'no conntrack entry');
      const reply = encodeFlow({ src: vip(f, 40), dst: client(f), sport: portOf(l4), dport: sport, proto: l4 === 'tcp' ? 6 : 17 });
      t.equal(e.dp.maps.reverseNat.lookup(reply), null, 'no reverse-NAT entry');
    });

    t.test(`${v}: 40 flows spread over the backends, each where maglev.ts predicts`, { skip }, async (t) => {
      const e = env!;
      const seen = new Set<number>();
      let wrong = 0;
      for (let i = 0; i < 40; i++) {
        const sport = base + 100 + i;
        const p = e.predict({ src: client(f), dst: vip(f, 40), sport, dport: portOf(l4), proto: l4 === 'tcp' ? 6 : 17 }, l4 === 'tcp' ? 'TCP' : 'UDP');
        const out = parse(e.run(frame(f, fromClient, vip(f, 40), sport, l4)).dataOut);
        if (out.eth?.dst !== MAC.backend(p.backendIndex)) wrong++;
        seen.add(p.backendIndex);
        if (e.dp.maps.conntrack.lookup(flowKey(f, l4, 40, sport)) !== null) wrong++;
      }
      t.equal(wrong, 0, 'every flow at its predicted backend, none recorded');
      t.ok(seen.size >= 2, `spread over ${seen.size} backends`);
    });
  }

  const v = `v${f}`;
  const base = f === 4 ? 32000 : 33000;

  t.test(`${v}: a mid-flow TCP packet (ACK, no SYN seen) goes to the same backend as its SYN would`, { skip }, async (t) => {
    const e = env!;
    const sport = base + 1;
    const p = e.predict({ src: client(f), dst: vip(f, 40), sport, dport: 80, proto: 6 }, 'TCP');
    const want = frame(f, { src: MAC.fb0, dst: MAC.backend(p.backendIndex) }, vip(f, 40), sport, 'tcp', 'A');
    expectRun(t, e, frame(f, fromClient, vip(f, 40), sport, 'tcp', 'A'), { verdict: 'REDIRECT', output: want, stats: { dsr_l2: 1, fwd_redirect: 1 } });
  });

  t.test(`${v}: ${f === 4 ? 'frag-needed' : 'packet too big'} from a router about a reply (VIP → client) goes untouched to that flow's backend`, { skip }, async (t) => {
    const e = env!;
    const sport = base + 6;
    const p = e.predict({ src: client(f), dst: vip(f, 40), sport, dport: 80, proto: 6 }, 'TCP');
    const reply = pkt().eth({ src: MAC.backend(p.backendIndex), dst: MAC.client });
    if (f === 4) reply.ipv4({ src: vip(f, 40), dst: client(f), id: 3, flags: 'DF' });
    else reply.ipv6({ src: vip(f, 40), dst: client(f) });
    const quote = reply.tcp({ sport: 80, dport: sport, flags: 'PA', seq: 5000, ack: 1000 }).payload(Buffer.alloc(1400)).build().subarray(14, 14 + (f === 4 ? 28 : 48));
    const error = (macs: { src: string; dst: string }): Buffer => {
      const b = pkt().eth(macs);
      if (f === 4) return b.ipv4({ src: '198.18.0.50', dst: vip(f, 40), id: 9 }).icmp({ type: 3, code: 4, id: 0, seq: 1200 }).payload(quote).build();
      return b.ipv6({ src: '2001:db8::50', dst: vip(f, 40) }).icmp6({ type: 2, code: 0, mtu: 1280 }).payload(quote).build();
    };
    expectRun(t, e, error(fromClient), { verdict: 'REDIRECT', output: error({ src: MAC.fb0, dst: MAC.backend(p.backendIndex) }), stats: { dsr_icmp: 1, dsr_l2: 1, fwd_redirect: 1 } });
  });

  t.test(`${v}: dispatch l2: a backend behind a router is never sent to (dropped, counted dsr_offlink)`, { skip }, async (t) => {
    expectRun(t, env!, frame(f, fromClient, vip(f, 43), base + 2, 'tcp'), { verdict: 'DROP', stats: { dsr_offlink: 1 } });
  });

  t.test(`${v}: no backends: dropped, counted no_backend`, { skip }, async (t) => {
    expectRun(t, env!, frame(f, fromClient, vip(f, 42), base + 3, 'tcp'), { verdict: 'DROP', stats: { no_backend: 1 } });
  });

  t.test(`${v}: a frame for another host's MAC (flooded) is not forwarded`, { skip }, async (t) => {
    const e = env!;
    const foreign = frame(f, { src: MAC.client, dst: MAC.far }, vip(f, 40), base + 4, 'tcp', 'A');
    // The loader records each attached interface's MAC; the fixture world attaches nothing, so record fx0's here.
    e.dp.maps.ifMacs.update(u32Key(e.ifindex.fx0), encodeIfMac(MAC.fx0));
    try {
      expectRun(t, e, foreign, { verdict: 'PASS', output: foreign, stats: { foreign_mac: 1 } });
    } finally {
      e.dp.maps.ifMacs.delete(u32Key(e.ifindex.fx0));
    }
  });

  t.test(`${v}: the same frontend in snat mode is NATed and tracked again`, { skip }, async (t) => {
    const e = env!;
    try {
      e.apply(frontends('snat'));
      const out = parse(expectRun(t, e, frame(f, fromClient, vip(f, 40), base + 5, 'tcp'), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1 } }));
      t.equal(out.ip?.src ?? out.ip6?.src, f === 4 ? ADDR.snat4 : ADDR.snat6, 'SNATed');
      t.not(e.dp.maps.conntrack.lookup(flowKey(f, 'tcp', 40, base + 5)), null, 'conntrack entry made');
    } finally {
      e.apply(frontends());
    }
  });
}

/**
 * What encapsulated dispatch must send: Ethernet to the next hop toward
 * the backend, an outer header from the LB's egress address (fb0's) to the
 * backend — IPv4: DF, TTL 64, protocol 4; IPv6: 19 bits of the flow hash
 * in the flow label (bit 19 is the backends' hand-off mark), next header 41
 * — and then the client's packet byte for byte.
 */
function encapsulated(f: Fam, input: Buffer, backend: string, nextHopMac: string, hash: number): Buffer {
  const outer = pkt().eth({ src: MAC.fb0, dst: nextHopMac });
  if (f === 4) outer.ipv4({ src: ADDR.snat4, dst: backend, id: 0, flags: 'DF', ttl: 64, proto: IPPROTO.IPIP });
  else outer.ipv6({ src: ADDR.snat6, dst: backend, hopLimit: 64, nextHeader: IPPROTO.IPV6, flowLabel: hash & 0x7ffff });
  return outer.payload(input.subarray(14)).build();
}

function hashOf(e: FixtureEnv, f: Fam, n: number, sport: number, l4: L4): number {
  return flowHash(encodeFlow({ src: client(f), dst: vip(f, n), sport, dport: portOf(l4), proto: l4 === 'tcp' ? 6 : 17 }), e.dp.config.hashSeed);
}

for (const f of [4, 6] as const) {
  const base = f === 4 ? 34000 : 35000;
  for (const l4 of ['tcp', 'udp'] as const) {
    t.test(`v${f} ${l4}: auto dispatch to a backend behind a router: ${f === 4 ? 'IPIP' : 'IP6IP6'} to it through the router, no flow state`, { skip }, async (t) => {
      const e = env!;
      const sport = base + (l4 === 'tcp' ? 1 : 2);
      const input = frame(f, fromClient, vip(f, 41), sport, l4);
      // The router toward offLink() is backend 1 (routes in t.before).
      const want = encapsulated(f, input, offLink(f), MAC.backend(1), hashOf(e, f, 41, sport, l4));
      expectRun(t, e, input, { verdict: 'REDIRECT', output: want, stats: { dsr_encap: 1, fwd_redirect: 1 } });
      t.equal(e.dp.maps.conntrack.lookup(flowKey(f, l4, 41, sport)), null, 'no conntrack entry');
      // The second packet takes the cached next hop and the backend's learned off-link bit: the same frame.
      expectRun(t, e, input, { verdict: 'REDIRECT', output: want, stats: { dsr_encap: 1, fwd_redirect: 1 } });
    });
  }

  t.test(`v${f}: dispatch ipip encapsulates to on-link backends too, each the Maglev pick`, { skip }, async (t) => {
    const e = env!;
    for (let i = 0; i < 6; i++) {
      const sport = base + 10 + i;
      const p = e.predict({ src: client(f), dst: vip(f, 44), sport, dport: 80, proto: 6 }, 'TCP');
      const input = frame(f, fromClient, vip(f, 44), sport, 'tcp', 'A');
      expectRun(t, e, input, { verdict: 'REDIRECT', output: encapsulated(f, input, p.backend, MAC.backend(p.backendIndex), hashOf(e, f, 44, sport, 'tcp')), stats: { dsr_encap: 1, fwd_redirect: 1 } });
    }
  });

  t.test(`v${f}: too big once encapsulated: ${f === 4 ? 'frag-needed' : 'packet too big'} to the client from the VIP with the MTU left (1500 - ${f === 4 ? 20 : 40})`, { skip }, async (t) => {
    const e = env!;
    const sport = base + 20;
    const b = pkt().eth(fromClient);
    if (f === 4) b.ipv4({ src: client(f), dst: vip(f, 41), id: 7, flags: 'DF', ttl: 64 });
    else b.ipv6({ src: client(f), dst: vip(f, 41), hopLimit: 64 });
    // 1490 bytes of IP: fits the 1500-byte link as it is, not with 20 / 40 more.
    const input = b.tcp({ sport, dport: 80, flags: 'A', seq: 1, ack: 1 }).payload(Buffer.alloc(1490 - (f === 4 ? 20 : 40) - 20, 7)).build();
    const out = parse(expectRun(t, e, input, { verdict: 'TX', stats: { icmp_too_big: 1 } }));
    t.equal(out.eth?.dst, MAC.client, 'back to the client');
    if (f === 4) {
      t.match(out.ip, { src: vip(f, 41), dst: client(f), checksumOk: true });
      t.match(out.icmp, { type: 3, code: 4, checksumOk: true });
      t.equal(out.icmp!.rest.readUInt16BE(2), 1480, 'next-hop MTU: the link minus the outer header');
    } else {
      t.match(out.ip6, { src: vip(f, 41), dst: client(f) });
      t.match(out.icmp6, { type: 2, code: 0, checksumOk: true });
      t.equal(out.icmp6!.rest.readUInt32BE(0), 1460, 'MTU: the link minus the outer header');
    }
  });
}

t.test('v4 UDP without DF too big once encapsulated: dropped, counted dsr_too_big (XDP cannot fragment)', { skip }, async (t) => {
  const input = pkt().eth(fromClient).ipv4({ src: client(4), dst: vip(4, 41), id: 7, ttl: 64 }).udp({ sport: 34100, dport: 53 }).payload(Buffer.alloc(1470, 1)).build();
  expectRun(t, env!, input, { verdict: 'DROP', stats: { dsr_too_big: 1 } });
});
