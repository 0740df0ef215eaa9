/**
 * Fixture runner for XDP programs: packet in → BPF_PROG_TEST_RUN → expected
 * verdict and expected output bytes (Katran's PacketAttributes as data rows).
 *
 *   await runFixtures(t, addon(), prog.fd, [
 *     { name: 'ARP is dropped', input: arpFrame, expect: { verdict: 'XDP_DROP' } },
 *     { name: 'echo answered', input: echo, expect: { verdict: 'XDP_TX', output: reply } },
 *     { name: 'ttl kept', input: f, expect: { verdict: 'XDP_PASS', output: (p, t) => t.equal(p.ip?.ttl, 64) } },
 *   ]);
 *
 * Each fixture is one tap subtest; a wrong output prints a hex diff with the
 * differing bytes marked and a one-line decode of both frames.
 */
import type { Test } from 'tap';
import type { NativeAddon, TestRunOptions, TestRunResult } from '../../src/native/libbpf.js';
import { hexDiff, parse, type ParsedPacket } from '../../src/lab/packet.js';

/** Verdicts in the order of their numeric values (enum xdp_action). */
export const XDP_VERDICTS = ['XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT'] as const;
export type XdpVerdict = (typeof XDP_VERDICTS)[number];

export function verdictName(retval: number): string {
  return XDP_VERDICTS[retval] ?? `retval ${retval}`;
}

export interface Fixture {
  name: string;
  input: Buffer;
  expect: {
    verdict: XdpVerdict;
    /** Exact output frame, or checks on the decoded output (throw or assert on `t` to fail). */
    output?: Buffer | ((parsed: ParsedPacket, t: Test, raw: Buffer) => void);
  };
  /** Runs just before the packet (fill maps, ...). */
  setup?: () => void;
  /** Extra test-run options for this fixture (ctxIn with ingress_ifindex, netns, dataOutSize). */
  run?: Partial<Omit<TestRunOptions, 'data'>>;
}

type TestRunner = Pick<NativeAddon, 'testRun'>;

/** One-line decode for failure messages: `02:..:0a > 02:..:0b ipv4 198.18.0.1 > 198.18.0.10 ttl 64 tcp 1000 > 80 [S] len 54`. */
export function summarize(frame: Buffer): string {
  const p = parse(frame);
  const parts: string[] = [];
  if (p.eth) parts.push(`${p.eth.src} > ${p.eth.dst}`);
  for (const v of p.vlans) parts.push(`vlan ${v.vid}`);
  if (p.arp) parts.push(`arp ${p.arp.op === 1 ? 'who-has' : p.arp.op === 2 ? 'reply' : `op ${p.arp.op}`} ${p.arp.tpa} tell ${p.arp.spa} (${p.arp.sha})`);
  if (p.ip) parts.push(`ipv4 ${p.ip.src} > ${p.ip.dst} ttl ${p.ip.ttl}${p.ip.checksumOk ? '' : ' BAD-IP-CSUM'}`);
  if (p.ip6) parts.push(`ipv6 ${p.ip6.src} > ${p.ip6.dst} hlim ${p.ip6.hopLimit}`);
  for (const e of p.ext) parts.push(`ext ${e.kind}`);
  const l4ok = (ok: boolean | undefined): string => (ok === false ? ' BAD-CSUM' : '');
  if (p.tcp) parts.push(`tcp ${p.tcp.sport} > ${p.tcp.dport} [${p.tcp.flags}] seq ${p.tcp.seq} ack ${p.tcp.ack}${l4ok(p.tcp.checksumOk)}`);
  if (p.udp) parts.push(`udp ${p.udp.sport} > ${p.udp.dport}${l4ok(p.udp.checksumOk)}`);
  if (p.icmp) parts.push(`icmp type ${p.icmp.type} code ${p.icmp.code}${l4ok(p.icmp.checksumOk)}`);
  if (p.ndp) parts.push(`${p.ndp.kind} ${p.ndp.target}${p.ndp.sll ? ` sll ${p.ndp.sll}` : ''}${p.ndp.tll ? ` tll ${p.ndp.tll}` : ''}`);
  else if (p.icmp6) parts.push(`icmp6 type ${p.icmp6.type} code ${p.icmp6.code}${l4ok(p.icmp6.checksumOk)}`);
  if (p.inner?.ip) parts.push(`[inner ipv4 ${p.inner.ip.src} > ${p.inner.ip.dst}]`);
  if (p.truncated) parts.push('TRUNCATED');
  parts.push(`len ${frame.length}`);
  return parts.join(' ');
}

/** What differs between a test-run result and the fixture's expectation (empty when it matches). */
export function compareOutcome(fixture: Fixture, result: Pick<TestRunResult, 'retval' | 'dataOut'>): string[] {
  const problems: string[] = [];
  const got = verdictName(result.retval);
  if (got !== fixture.expect.verdict) problems.push(`verdict: expected ${fixture.expect.verdict}, got ${got}`);
  const out = fixture.expect.output;
  if (Buffer.isBuffer(out)) {
    const diff = hexDiff(out, result.dataOut);
    if (diff) problems.push(`output differs:\n  expected: ${summarize(out)}\n  actual:   ${summarize(result.dataOut)}\n${diff}`);
  }
  return problems;
}

/** Runs one packet through the program and returns the kernel's answer. */
export function runOnce(addon: TestRunner, progFd: number, input: Buffer, run: Partial<Omit<TestRunOptions, 'data'>> = {}): TestRunResult {
  return addon.testRun(progFd, { dataOutSize: input.length + 256, ...run, data: input });
}

/** One tap subtest per fixture, in order (later fixtures may rely on state earlier ones left). */
export async function runFixtures(t: Test, addon: TestRunner, progFd: number, fixtures: Fixture[]): Promise<void> {
  const names = new Set<string>();
  for (const f of fixtures) {
    if (names.has(f.name)) throw new Error(`duplicate fixture name '${f.name}'`);
    names.add(f.name);
  }
  for (const fixture of fixtures) {
    await t.test(fixture.name, async (st) => {
      fixture.setup?.();
      const result = runOnce(addon, progFd, fixture.input, fixture.run);
      const problems = compareOutcome(fixture, result);
      st.same(problems, [], problems.length ? problems.join('\n') : `${fixture.expect.verdict}${fixture.expect.output ? ' with the expected output' : ''}`, {
        input: summarize(fixture.input),
        output: summarize(result.dataOut),
      });
      const out = fixture.expect.output;
      if (typeof out === 'function') out(parse(result.dataOut), st, result.dataOut);
    });
  }
}

/**
 * ns per packet for `input` through the program, as the kernel measures it
 * over `repeat` runs; the median of `rounds` calls (default 3).
 */
export function perf(addon: TestRunner, progFd: number, input: Buffer, repeat = 1_000_000, opts: { rounds?: number; run?: Partial<Omit<TestRunOptions, 'data' | 'repeat'>> } = {}): number {
  const rounds = Math.max(1, opts.rounds ?? 3);
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    samples.push(addon.testRun(progFd, { dataOutSize: input.length + 256, ...opts.run, data: input, repeat }).duration);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

/** `struct xdp_md` for `ctxIn`: ingress_ifindex (and rx_queue_index) set, data fields zero as the kernel requires. */
export function xdpContext(ingressIfindex: number, rxQueueIndex = 0): Buffer {
  // struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex }
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(ingressIfindex, 12);
  ctx.writeUInt32LE(rxQueueIndex, 16);
  return ctx;
}
