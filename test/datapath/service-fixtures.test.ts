/**
 * BPF_PROG_TEST_RUN fixtures for the service semantics (issue 8), v4 and v6,
 * in the same fixture world as fixtures.test.ts (real FIB neighbours):
 * externalTrafficPolicy Local, loadBalancerSourceRanges, sessionAffinity
 * ClientIP, draining (terminating) backends. Rows are data: input, verdict,
 * expected output or checks, exact counter deltas.
 */
import t, { type Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { privilegedUnavailable } from '../support/privileged.js';
import { withLab } from '../support/lab.js';
import { hexDiff, parse, pkt } from '../../src/lab/packet.js';
import { ADDR, baseFrontends, FixtureEnv, MAC, XDP } from '../../src/lab/fixture-env.js';
import { STAT_REASONS, type StatReason } from '../../src/datapath/abi.js';
import type { Backend, Frontend } from '../../src/model/types.js';

type Fam = 4 | 6;
const PAYLOAD = Buffer.from('pharos service fixture');
const fromClient = { src: MAC.client, dst: MAC.fx0 };
const toClientMacs = { src: MAC.fx0, dst: MAC.client };

const client = (f: Fam): string => (f === 4 ? ADDR.client4 : ADDR.client6);
const other = (f: Fam): string => (f === 4 ? ADDR.far4 : '2001:db8::50');
const be = (f: Fam, i: number): string => (f === 4 ? ADDR.backend4(i) : ADDR.backend6(i));
/** Service VIPs of this file: 198.51.100.3x / 2001:db8:100::3x. */
const vip = (f: Fam, n: number): string => (f === 4 ? `198.51.100.${n}` : `2001:db8:100::${n}`);

/** `ttl` 63 for a frame as pharos transmits it (one hop). */
function tcp(f: Fam, macs: { src: string; dst: string }, src: string, dst: string, sport: number, dport: number, flags = 'S', payload = PAYLOAD, ttl = 64): Buffer {
  const b = pkt().eth(macs);
  if (f === 4) b.ipv4({ src, dst, id: 7, flags: 'DF', ttl });
  else b.ipv6({ src, dst, hopLimit: ttl });
  return b.tcp({ sport, dport, flags, seq: 1000, ack: flags.includes('A') ? 5000 : 0 }).payload(payload).build();
}

function backends(f: Fam, idx: number[], extra: Partial<Backend> = {}): Backend[] {
  return idx.map((i) => ({ address: be(f, i), port: 8080, weight: 1, state: 'active' as const, ...extra }));
}

function fe(f: Fam, n: number, bes: Backend[], extra: Partial<Frontend> = {}): Frontend {
  return { service: `phs/svc-${n}`, kind: 'LoadBalancer', address: vip(f, n), port: 80, protocol: 'TCP', backends: bes, sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [], ...extra };
}

/** Frontends of this file on top of the base set. */
function serviceFrontends(over: Partial<Record<string, Frontend | null>> = {}): Frontend[] {
  const mine: Frontend[] = [];
  for (const f of [4, 6] as const) {
    mine.push(
      fe(f, 30, backends(f, [1]), { localOnly: true }),
      fe(f, 31, [], { localOnly: true }),
      fe(f, 32, backends(f, [1, 2, 3]), { sourceRanges: [f === 4 ? '198.18.0.1/32' : '2001:db8::1/128', f === 4 ? '2001:db8::1/128' : '198.18.0.1/32'] }),
      fe(f, 33, backends(f, [1, 2, 3]), { sessionAffinity: true, sessionAffinityTimeoutSeconds: 60 }),
      fe(f, 34, backends(f, [1, 2, 3])),
      fe(f, 35, backends(f, [1, 2, 3]), { sourceRanges: [f === 4 ? '2001:db8::/32' : '198.18.0.0/15'] }),
    );
  }
  const all = [...baseFrontends(), ...mine];
  return all.map((x) => (`${x.address}` in over ? over[x.address] : x)).filter((x): x is Frontend => x !== null && x !== undefined);
}

const SMALL_MTU = 1300;
const skip = privilegedUnavailable();
let env: FixtureEnv | undefined;

t.before(async () => {
  if (skip) return;
  const lab = await withLab(t, 'phsfx');
  env = await FixtureEnv.create(lab, '/run/pharos/bpffs/phs-fixtures', { nsName: 'fx' });
  env.apply(serviceFrontends());
  // Both sides of the LB get a small MTU, so big packets need PMTU discovery (bpf_check_mtu reads the device MTU).
  await lab.exec('fx', ['sh', '-c', `ip link set fx0 mtu ${SMALL_MTU} && ip link set fb0 mtu ${SMALL_MTU}`]);
});
t.teardown(() => env?.close());

const verdictName = (n: number): string => Object.entries(XDP).find(([, v]) => v === n)?.[0] ?? `verdict ${n}`;

/** Run one frame and check verdict, output and the exact counter deltas. */
/**
 * Runs `check` with the usual frontends changed by `over` (serviceFrontends),
 * then puts the usual ones back, whatever happened.
 */
async function withFrontends(over: Partial<Record<string, Frontend | null>>, check: () => void | Promise<void>): Promise<void> {
  try {
    env!.apply(serviceFrontends(over));
    await check();
  } finally {
    env!.apply(serviceFrontends());
  }
}

function expectRun(t: Test, e: FixtureEnv, input: Buffer, want: { verdict: keyof typeof XDP; output?: Buffer; stats: Partial<Record<StatReason, number>>; ingress?: 'fx0' | 'fb0' }): Buffer {
  const before = e.counters();
  const res = e.run(input, want.ingress ?? 'fx0');
  const after = e.counters();
  t.equal(verdictName(res.retval), want.verdict, 'verdict');
  if (want.output) {
    const diff = hexDiff(want.output, res.dataOut);
    t.ok(diff === '', diff === '' ? 'output frame as expected' : `output differs:\n${diff}`);
  }
  const moved = Object.fromEntries(STAT_REASONS.map((r) => [r, Number(after[r] - before[r])]).filter(([, d]) => d !== 0));
  t.same(moved, want.stats, 'counter deltas');
  return res.dataOut;
}

const dstOf = (out: Buffer): string | undefined => { const p = parse(out); return p.ip?.dst ?? p.ip6?.dst; };
const srcOf = (out: Buffer): string | undefined => { const p = parse(out); return p.ip?.src ?? p.ip6?.src; };

for (const f of [4, 6] as const) {
  const v = `v${f}`;
  const base = f === 4 ? 20000 : 21000;

  t.test(`${v} Local policy: DNAT only, client address kept, to the local backend`, { skip }, async (t) => {
    const e = env!;
    expectRun(t, e, tcp(f, fromClient, client(f), vip(f, 30), base + 1, 80), {
      verdict: 'REDIRECT', output: tcp(f, { src: MAC.fb0, dst: MAC.backend(1) }, client(f), be(f, 1), base + 1, 8080, 'S', PAYLOAD, 63), stats: { ct_create: 1, fwd_redirect: 1 },
    });
    expectRun(t, e, tcp(f, fromClient, client(f), vip(f, 30), base + 1, 80, 'A'), {
      verdict: 'REDIRECT', output: tcp(f, { src: MAC.fb0, dst: MAC.backend(1) }, client(f), be(f, 1), base + 1, 8080, 'A', PAYLOAD, 63), stats: { ct_hit: 1, fwd_redirect: 1 },
    });
  });

  t.test(`${v} Local policy: the backend's reply passes XDP untouched and tc egress makes it come from the VIP`, { skip }, async (t) => {
    const e = env!;
    const reply = tcp(f, { src: MAC.backend(1), dst: MAC.fb0 }, be(f, 1), client(f), 8080, base + 1, 'SA');
    expectRun(t, e, reply, { ingress: 'fb0', verdict: 'PASS', output: reply, stats: {} });
    const leaving = tcp(f, { src: MAC.fx0, dst: MAC.client }, be(f, 1), client(f), 8080, base + 1, 'SA');
    const before = e.counters();
    const r = e.addon.testRun(e.dp.tcEgress.fd, { data: leaving, netns: e.nsPath });
    t.equal(r.retval, 0, 'TC_ACT_OK');
    const want = tcp(f, { src: MAC.fx0, dst: MAC.client }, vip(f, 30), client(f), 80, base + 1, 'SA');
    t.equal(hexDiff(want, r.dataOut), '', 'VIP:80 → client, checksums valid');
    t.equal(Number(e.counters().tc_rev_nat - before.tc_rev_nat), 1);
  });

  t.test(`${v} Local policy without a local endpoint: drop no_backend`, { skip }, async (t) => {
    expectRun(t, env!, tcp(f, fromClient, client(f), vip(f, 31), base + 2, 80), { verdict: 'DROP', stats: { no_backend: 1 } });
  });

  t.test(`${v} source ranges: a source inside is balanced (SNAT as usual)`, { skip }, async (t) => {
    const out = expectRun(t, env!, tcp(f, fromClient, client(f), vip(f, 32), base + 3, 80), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1 } });
    t.equal(srcOf(out), f === 4 ? ADDR.snat4 : ADDR.snat6);
  });

  t.test(`${v} source ranges: a source outside is dropped, counted source_range`, { skip }, async (t) => {
    expectRun(t, env!, tcp(f, fromClient, other(f), vip(f, 32), base + 4, 80), { verdict: 'DROP', stats: { source_range: 1 } });
  });

  t.test(`${v} source ranges of the other family only: this family is not restricted`, { skip }, async (t) => {
    expectRun(t, env!, tcp(f, fromClient, other(f), vip(f, 35), base + 5, 80), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1 } });
  });

  t.test(`${v} source ranges changed: the established flow is cut, the new range admitted, removal opens the frontend`, { skip }, async (t) => {
    const e = env!;
    const narrowed = fe(f, 32, backends(f, [1, 2, 3]), { sourceRanges: [f === 4 ? '198.18.0.48/28' : '2001:db8::40/122'] });
    await withFrontends({ [vip(f, 32)]: narrowed }, () => {
      expectRun(t, e, tcp(f, fromClient, client(f), vip(f, 32), base + 3, 80, 'A'), { verdict: 'DROP', stats: { source_range: 1 } });
      expectRun(t, e, tcp(f, fromClient, other(f), vip(f, 32), base + 6, 80), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1 } });
      t.equal(e.sync.current().sourceRanges.get(e.sync.current().frontends.get(`TCP/${vip(f, 32)}/80`)!.id)?.size, 1, 'old prefix removed from the trie');
      e.apply(serviceFrontends({ [vip(f, 32)]: { ...narrowed, sourceRanges: [] } }));
      expectRun(t, e, tcp(f, fromClient, client(f), vip(f, 32), base + 7, 80), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1 } });
    });
  });

  t.test(`${v} affinity: 30 new flows of one client land on one backend (hits counted); without affinity they spread`, { skip }, async (t) => {
    const e = env!;
    const first = dstOf(expectRun(t, e, tcp(f, fromClient, client(f), vip(f, 33), base + 100, 80), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1 } }));
    const seen = new Set<string | undefined>();
    const before = e.counters();
    for (let i = 1; i <= 30; i++) seen.add(dstOf(e.run(tcp(f, fromClient, client(f), vip(f, 33), base + 100 + i, 80)).dataOut));
    t.same([...seen], [first], `all on ${first}`);
    t.equal(Number(e.counters().affinity_hit - before.affinity_hit), 30);
    const spread = new Set<string | undefined>();
    for (let i = 0; i < 30; i++) spread.add(dstOf(e.run(tcp(f, fromClient, client(f), vip(f, 34), base + 100 + i, 80)).dataOut));
    t.ok(spread.size >= 2, `no affinity: ${spread.size} backends`);
    const otherClient = new Set<string | undefined>();
    for (let i = 0; i < 5; i++) otherClient.add(dstOf(e.run(tcp(f, fromClient, other(f), vip(f, 33), base + 200 + i, 80)).dataOut));
    t.equal(otherClient.size, 1, 'another client is sticky too');
  });

  t.test(`${v} affinity: the backend removed → next flow placed by Maglev elsewhere, and that sticks`, { skip }, async (t) => {
    const e = env!;
    const first = dstOf(e.run(tcp(f, fromClient, client(f), vip(f, 33), base + 300, 80)).dataOut)!;
    const idx = Number(first.split(/[.:]/).pop());
    const rest = [1, 2, 3].filter((i) => i !== idx);
    await withFrontends({ [vip(f, 33)]: fe(f, 33, backends(f, rest), { sessionAffinity: true, sessionAffinityTimeoutSeconds: 60 }) }, () => {
      const moved = dstOf(expectRun(t, e, tcp(f, fromClient, client(f), vip(f, 33), base + 301, 80), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1 } }));
      t.not(moved, first, `moved off ${first}`);
      expectRun(t, e, tcp(f, fromClient, client(f), vip(f, 33), base + 302, 80), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1, affinity_hit: 1 } });
      t.equal(dstOf(e.run(tcp(f, fromClient, client(f), vip(f, 33), base + 303, 80)).dataOut), moved, 'sticks to the new one');
    });
  });

  t.test(`${v} affinity: a terminating backend keeps its flow but takes no new one, not even by affinity`, { skip }, async (t) => {
    const e = env!;
    const first = dstOf(e.run(tcp(f, fromClient, client(f), vip(f, 33), base + 400, 80)).dataOut)!;
    const idx = Number(first.split(/[.:]/).pop());
    await withFrontends({ [vip(f, 33)]: fe(f, 33, backends(f, [1, 2, 3]).map((b, i) => (i + 1 === idx ? { ...b, state: 'terminating' as const } : b)), { sessionAffinity: true, sessionAffinityTimeoutSeconds: 60 }) }, () => {
      t.equal(dstOf(expectRun(t, e, tcp(f, fromClient, client(f), vip(f, 33), base + 400, 80, 'A'), { verdict: 'REDIRECT', stats: { ct_hit: 1, fwd_redirect: 1 } })), first, 'established flow stays');
      t.not(dstOf(expectRun(t, e, tcp(f, fromClient, client(f), vip(f, 33), base + 401, 80), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1 } })), first, 'new flow elsewhere');
    });
  });
}

t.test('affinity expires after its timeout: the next flow is placed by Maglev (no hit)', { skip }, async (t) => {
  const e = env!;
  await withFrontends({ [vip(4, 33)]: fe(4, 33, backends(4, [1, 2, 3]), { sessionAffinity: true, sessionAffinityTimeoutSeconds: 1 }) }, async () => {
    t.equal(e.sync.current().frontends.get(`TCP/${vip(4, 33)}/80`)!.value.affinityTimeout, 1);
    e.run(tcp(4, fromClient, ADDR.client4, vip(4, 33), 22000, 80));
    expectRun(t, e, tcp(4, fromClient, ADDR.client4, vip(4, 33), 22001, 80), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1, affinity_hit: 1 } });
    await sleep(1300);
    expectRun(t, e, tcp(4, fromClient, ADDR.client4, vip(4, 33), 22002, 80), { verdict: 'REDIRECT', stats: { ct_create: 1, fwd_redirect: 1 } });
  });
});

t.test('affinity timeout 0 means the Kubernetes default 10800 s', { skip }, async (t) => {
  const e = env!;
  await withFrontends({ [vip(4, 33)]: fe(4, 33, backends(4, [1, 2, 3]), { sessionAffinity: true, sessionAffinityTimeoutSeconds: 0 }) }, () => {
    t.equal(e.sync.current().frontends.get(`TCP/${vip(4, 33)}/80`)!.value.affinityTimeout, 10800);
  });
});

t.test('sync re-reads source ranges and draining backends from the maps (agent restart)', { skip }, async (t) => {
  const e = env!;
  // 198.18.2.7 belongs to this frontend only, so terminating here means draining everywhere.
  const withDraining = (): Frontend[] => serviceFrontends({ [vip(4, 34)]: fe(4, 34, [...backends(4, [1, 2, 3]), ...backends(4, [7], { state: 'terminating' })], { sessionAffinity: true }) });
  e.apply(withDraining());
  try {
    const before = e.sync.current();
    const ranges = new Map([...before.sourceRanges].map(([k, s]) => [k, [...s].sort()]));
    const view = e.sync.readState();
    t.same(new Map([...view.sourceRanges].map(([k, s]) => [k, [...s].sort()])), ranges, 'same ranges');
    t.same([...view.backends.values()].filter((b) => b.draining).map((b) => b.address), ['198.18.2.7'], 'draining flag read back');
    t.equal(view.members?.get(view.frontends.get(`TCP/${vip(4, 34)}/80`)!.id)?.size, 3, 'affinity members read back (active ones only)');
    const r = e.sync.apply(withDraining());
    t.same([r.frontendsWritten, r.backendsAdded, r.tablesPublished], [0, 0, 0], 'nothing to rewrite');
  } finally {
    e.apply(serviceFrontends());
  }
});

// ------------------------------------------------------------------ PMTU: too big for the egress link

/** Checks an ICMP frag-needed / ICMPv6 packet-too-big built from `input` and sent to `to` from `from`. */
function checkTooBig(t: Test, f: Fam, out: Buffer, input: Buffer, from: string, to: string, macs: { src: string; dst: string }): void {
  const p = parse(out);
  t.equal(out.length, f === 4 ? 14 + 20 + 8 + 28 : 14 + 40 + 8 + 48, 'frame cut to headers + quote');
  t.same([p.eth?.src, p.eth?.dst], [macs.src, macs.dst], 'back to the sender');
  if (f === 4) {
    t.match(p.ip, { src: from, dst: to, proto: 1, ttl: 64, checksumOk: true });
    t.match(p.icmp, { type: 3, code: 4, checksumOk: true });
    t.equal(out.readUInt16BE(14 + 20 + 6), SMALL_MTU, 'next-hop MTU');
    t.same(out.subarray(14 + 28), input.subarray(14, 14 + 28), 'quotes the packet as the sender sent it');
  } else {
    t.match(p.ip6, { src: from, dst: to, nextHeader: 58, hopLimit: 64 });
    t.match(p.icmp6, { type: 2, code: 0, checksumOk: true });
    t.equal(out.readUInt32BE(14 + 40 + 4), SMALL_MTU, 'MTU');
    t.same(out.subarray(14 + 48), input.subarray(14, 14 + 48), 'quotes the packet as the sender sent it');
  }
}

for (const f of [4, 6] as const) {
  const v = `v${f}`;
  const base = f === 4 ? 23000 : 24000;
  const big = Buffer.alloc(1400, 0x5a);

  t.test(`${v} client packet too big for the backend link: ICMP too-big from the VIP to the client, nothing forwarded`, { skip }, async (t) => {
    const e = env!;
    e.run(tcp(f, fromClient, client(f), vip(f, 34), base + 1, 80));
    const input = tcp(f, fromClient, client(f), vip(f, 34), base + 1, 80, 'PA', big);
    const out = expectRun(t, e, input, { verdict: 'TX', stats: { ct_hit: 1, icmp_too_big: 1 } });
    checkTooBig(t, f, out, input, vip(f, 34), client(f), { src: MAC.fx0, dst: MAC.client });
    expectRun(t, e, tcp(f, fromClient, client(f), vip(f, 34), base + 1, 80, 'PA', Buffer.alloc(1200)), { verdict: 'REDIRECT', stats: { ct_hit: 1, fwd_redirect: 1 } });
  });

  t.test(`${v} backend reply too big for the client link: ICMP too-big from the SNAT address to the backend`, { skip }, async (t) => {
    const e = env!;
    e.run(tcp(f, fromClient, client(f), vip(f, 34), base + 2, 80));
    const snat = f === 4 ? ADDR.snat4 : ADDR.snat6;
    const pr = e.predict({ src: client(f), dst: vip(f, 34), sport: base + 2, dport: 80, proto: 6 }, 'TCP');
    const input = tcp(f, { src: MAC.backend(pr.backendIndex), dst: MAC.fb0 }, pr.backend, snat, 8080, pr.snatPort, 'PA', big);
    const out = expectRun(t, e, input, { ingress: 'fb0', verdict: 'TX', stats: { icmp_too_big: 1 } });
    checkTooBig(t, f, out, input, snat, pr.backend, { src: MAC.fb0, dst: MAC.backend(pr.backendIndex) });
    expectRun(t, e, tcp(f, { src: MAC.backend(pr.backendIndex), dst: MAC.fb0 }, pr.backend, snat, 8080, pr.snatPort, 'PA', Buffer.alloc(1200)),
      { ingress: 'fb0', verdict: 'REDIRECT', stats: { rev_nat: 1, fwd_redirect: 1 } });
  });

  // Found by `npm run fuzz` (seed 649241152): the MTU check measured the frame, not the datagram.
  t.test(`${v} datagrams that fit, in frames padded past the MTU: forwarded both ways, no too-big`, { skip }, async (t) => {
    const e = env!;
    const pad = Buffer.alloc(300, 0xee);
    const fits = Buffer.alloc(f === 4 ? 1250 : 1230); // a 1,290-byte datagram: over the 1,280 below which nothing is checked, under SMALL_MTU
    e.run(tcp(f, fromClient, client(f), vip(f, 34), base + 3, 80));
    const toBackend = Buffer.concat([tcp(f, fromClient, client(f), vip(f, 34), base + 3, 80, 'PA', fits), pad]);
    expectRun(t, e, toBackend, { verdict: 'REDIRECT', stats: { ct_hit: 1, fwd_redirect: 1 } });
    const snat = f === 4 ? ADDR.snat4 : ADDR.snat6;
    const pr = e.predict({ src: client(f), dst: vip(f, 34), sport: base + 3, dport: 80, proto: 6 }, 'TCP');
    const reply = Buffer.concat([tcp(f, { src: MAC.backend(pr.backendIndex), dst: MAC.fb0 }, pr.backend, snat, 8080, pr.snatPort, 'PA', fits), pad]);
    expectRun(t, e, reply, { ingress: 'fb0', verdict: 'REDIRECT', stats: { rev_nat: 1, fwd_redirect: 1 } });
  });
}

// ------------------------------------------------------------------ ICMP errors about NATed flows

/**
 * An ICMP / ICMPv6 error quoting `quoted` (what a router or host sends
 * back). The quote is the IP header + 8 bytes of TCP/UDP, as RFC 792 / 4443
 * senders include at least. `hops` 1: as pharos forwards it.
 */
function icmpError(f: Fam, macs: { src: string; dst: string }, src: string, dst: string, kind: 'too-big' | 'port-unreachable', quotedFrame: Buffer, hops = 0): Buffer {
  const quoted = quotedFrame.subarray(14, 14 + (f === 4 ? 28 : 48));
  const b = pkt().eth(macs);
  if (f === 4) {
    const [type, code, mtu] = kind === 'too-big' ? [3, 4, 1200] : [3, 3, 0];
    return b.ipv4({ src, dst, id: 9, ttl: 64 - hops }).icmp({ type, code, id: 0, seq: mtu }).payload(quoted).build();
  }
  const [type, code, mtu] = kind === 'too-big' ? [2, 0, 1280] : [1, 4, 0];
  return b.ipv6({ src, dst, hopLimit: 64 - hops }).icmp6({ type, code, mtu }).payload(quoted).build();
}
const icmpOf = (f: Fam, out: Buffer) => (f === 4 ? parse(out).icmp : parse(out).icmp6);
const snatAddr = (f: Fam): string => (f === 4 ? ADDR.snat4 : ADDR.snat6);
const udpVip = (f: Fam): string => (f === 4 ? ADDR.vip4 : ADDR.vip6);
function udp(f: Fam, macs: { src: string; dst: string }, src: string, dst: string, sport: number, dport: number): Buffer {
  const b = pkt().eth(macs);
  if (f === 4) b.ipv4({ src, dst, id: 7 });
  else b.ipv6({ src, dst });
  return b.udp({ sport, dport }).payload(PAYLOAD).build();
}

for (const f of [4, 6] as const) {
  const v = `v${f}`;
  const base = f === 4 ? 25000 : 26000;

  t.test(`${v} ${f === 4 ? 'frag-needed' : 'packet too big'} from a client-side router about VIP → client: sent to the backend about backend → SNAT address`, { skip }, async (t) => {
    const e = env!;
    const sport = base + 1;
    e.run(tcp(f, fromClient, client(f), vip(f, 34), sport, 80));
    const pr = e.predict({ src: client(f), dst: vip(f, 34), sport, dport: 80, proto: 6 }, 'TCP');
    const asBackendSent = tcp(f, { src: MAC.backend(pr.backendIndex), dst: MAC.fb0 }, pr.backend, snatAddr(f), 8080, pr.snatPort, 'PA', Buffer.alloc(1400));
    const asClientSaw = tcp(f, toClientMacs, vip(f, 34), client(f), 80, sport, 'PA', Buffer.alloc(1400));
    const input = icmpError(f, fromClient, other(f), vip(f, 34), 'too-big', asClientSaw);
    const want = icmpError(f, { src: MAC.fb0, dst: MAC.backend(pr.backendIndex) }, snatAddr(f), pr.backend, 'too-big', asBackendSent, 1);
    const out = expectRun(t, e, input, { verdict: 'REDIRECT', output: want, stats: { icmp_error_nat: 1, fwd_redirect: 1 } });
    t.ok(icmpOf(f, out)?.checksumOk, f === 4 ? 'ICMP checksum valid' : 'ICMPv6 checksum valid (pseudo-header with the new addresses)');
  });

  t.test(`${v} port unreachable from the backend about SNAT → backend: sent to the client about client → VIP, quoted UDP checksum kept true`, { skip }, async (t) => {
    const e = env!;
    const sport = base + 2;
    e.run(udp(f, fromClient, client(f), udpVip(f), sport, 53));
    const pr = e.predict({ src: client(f), dst: udpVip(f), sport, dport: 53, proto: 17 }, 'UDP');
    const asBackendGot = udp(f, { src: MAC.fb0, dst: MAC.backend(pr.backendIndex) }, snatAddr(f), pr.backend, pr.snatPort, 5353);
    const asClientSent = udp(f, fromClient, client(f), udpVip(f), sport, 53);
    const input = icmpError(f, { src: MAC.backend(pr.backendIndex), dst: MAC.fb0 }, pr.backend, snatAddr(f), 'port-unreachable', asBackendGot);
    const want = icmpError(f, toClientMacs, udpVip(f), client(f), 'port-unreachable', asClientSent, 1);
    const out = expectRun(t, e, input, { ingress: 'fb0', verdict: 'REDIRECT', output: want, stats: { icmp_error_nat: 1, fwd_redirect: 1 } });
    t.ok(icmpOf(f, out)?.checksumOk, 'ICMP checksum valid');
  });

  t.test(`${v} ICMP errors about flows we do not know, or not about a packet from their destination: untouched PASS`, { skip }, async (t) => {
    const e = env!;
    const stranger = f === 4 ? '198.51.100.200' : '2001:db8:100::200';
    expectRun(t, e, icmpError(f, fromClient, other(f), stranger, 'too-big', tcp(f, fromClient, stranger, client(f), 80, base + 3)), { verdict: 'PASS', stats: {} });
    const unknownFlow = tcp(f, fromClient, vip(f, 34), client(f), 80, base + 4);
    expectRun(t, e, icmpError(f, fromClient, other(f), vip(f, 34), 'port-unreachable', unknownFlow), { verdict: 'PASS', stats: {} });
    const known = tcp(f, fromClient, vip(f, 34), client(f), 80, base + 1);
    const headerOnly = known.subarray(0, 14 + (f === 4 ? 20 : 40)); // a quote without the ports
    expectRun(t, e, icmpError(f, fromClient, other(f), vip(f, 34), 'too-big', headerOnly), { verdict: 'PASS', stats: {} });
    expectRun(t, e, icmpError(f, fromClient, other(f), vip(f, 35), 'too-big', known), { verdict: 'PASS', stats: {} });
  });
}

t.test('v6 informational ICMPv6 (not echo, not NDP) to a VIP: untouched PASS', { skip }, async (t) => {
  expectRun(t, env!, pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: vip(6, 34) }).icmp6({ type: 129, id: 1, seq: 1 }).build(), { verdict: 'PASS', stats: {} });
});
