/**
 * The XDP fuzz loop, run as a child process inside the fixture namespace
 * (`ip netns exec`), so each BPF_PROG_TEST_RUN is one syscall with no setns
 * around it (2-3× the rate of testRun({ netns })). The loaded program comes
 * in as fd 3; maps are opened from their pins. Writes JSON lines to stdout:
 * { failure } for each bad frame (at most `maxFailures`), then { summary }.
 *
 *   ip netns exec NS node --import tsx xdp-worker.ts '<WorkerArgs JSON>' 3<prog-fd
 */
import { join } from 'node:path';
import { loadAddon, type BpfMap } from '../../src/native/libbpf.js';
import { addrBytes, decodeReverseNat, encodeFlow, MAP, STAT_REASONS, type StatReason } from '../../src/datapath/abi.js';
import { fuzzFrame, truncationSweep, type FuzzFrame, type Ingress } from './xdp-frames.js';
import { aggregateProblems, counterDelta, ECHO_COUNTED, XdpOracle, type Accepted, type World } from './xdp-oracle.js';

export interface WorkerArgs {
  seed: number;
  frames: number;
  pinDir: string;
  ifindex: Record<Ingress, number>;
  world: World;
  /** Read the counters around every Nth frame (per-frame counter judgement); the other frames are checked in block totals. */
  exactCountersEvery: number;
  /** Empty conntrack/reverse NAT every N frames, so new-flow paths keep running. */
  flushEvery: number;
  maxFailures: number;
  /**
   * Problems of open, reported bugs (regular expressions): a frame whose
   * every problem matches one is tallied in `known`, not failed, so the
   * fuzzer keeps looking for new ones. bench/fuzz/regressions/xdp.json keeps
   * a row (as a todo) for each.
   */
  knownIssues: string[];
  /** Also run every frame through the tc egress program (fd 4) and judge it. */
  tcEgress: boolean;
  /** Extra frames to judge first (regression rows), hex + ingress. */
  regressions?: Array<{ name: string; hex: string; ingress: Ingress }>;
}

export interface FuzzFailure { index: number; name?: string; how: string; ingress: Ingress; hex: string; verdict: number; outHex: string; problems: string[] }

export interface FuzzSummary {
  seed: number;
  frames: number;
  /** Frames the kernel refused to run (none expected: all are 14..MAX_FRAME bytes). */
  refused: number;
  seconds: number;
  framesPerSecond: number;
  verdicts: Record<string, number>;
  accepted: Record<Accepted, number>;
  counters: Record<StatReason, number>;
  aggregateProblems: string[];
  failures: number;
  /** Frames also run through tc egress, and frames the kernel refused to run there (IP frames shorter than the IP header). */
  tcRuns: number;
  tcRefused: number;
  /** Frames whose problems all match a known open issue, per issue. */
  known: Record<string, number>;
}

const PROG_FD = 3;
/** Addresses of the fixture node (src/lab/fixture-env.ts): frames to them never leave through tc egress. */
const NODE_ADDRESSES = new Set(['198.18.0.2', '198.18.2.254', '198.18.3.1', '2001:db8:0:0:0:0:0:2', '2001:db8:2:0:0:0:0:fe']);
const TC_PROG_FD = 4;

function readCounters(stats: BpfMap): Record<StatReason, bigint> {
  const out = Object.fromEntries(STAT_REASONS.map((r) => [r, 0n])) as Record<StatReason, bigint>;
  // One batch syscall for the whole per-CPU array.
  for (const [k, v] of stats.entries()) {
    const reason = STAT_REASONS[k.readUInt32LE(0)];
    if (!reason) continue;
    for (const cpu of stats.splitPerCpu(v)) out[reason] += cpu.readBigUInt64LE(0);
  }
  return out;
}

function ipv6Text(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}

function flush(map: BpfMap): void {
  const keys = map.keys();
  if (keys.length) map.deleteBatch(Buffer.concat(keys), keys.length);
}

function main(): void {
  const args = JSON.parse(process.argv[2]!) as WorkerArgs;
  const addon = loadAddon();
  const stats = addon.openPinnedMap(join(args.pinDir, MAP.stats));
  const ct = addon.openPinnedMap(join(args.pinDir, MAP.conntrack));
  const rev = addon.openPinnedMap(join(args.pinDir, MAP.reverseNat));
  const oracle = new XdpOracle(args.world);
  const ctx: Record<Ingress, Buffer> = { fx0: Buffer.alloc(24), fb0: Buffer.alloc(24) };
  ctx.fx0.writeUInt32LE(args.ifindex.fx0, 12);
  ctx.fb0.writeUInt32LE(args.ifindex.fb0, 12);
  const verdicts: Record<number, number> = {};
  let failures = 0;
  let refused = 0;
  const start = readCounters(stats);
  let before = start;
  const t0 = process.hrtime.bigint();

  const known: Record<string, number> = {};
  const knownRes = args.knownIssues.map((k) => new RegExp(k));
  const knownIssue = (problems: string[]): string | undefined => {
    const hit = args.knownIssues.find((_k, i) => problems.every((p) => knownRes[i]!.test(p)));
    return hit;
  };
  let tcRuns = 0;
  let tcRefused = 0;
  /** tc egress must let every frame through (TC_ACT_OK) and only rewrite replies of backends on this node. */
  const judgeTc = (frame: Buffer): string[] => {
    let r;
    try {
      r = addon.testRun(TC_PROG_FD, { data: frame, dataOutSize: frame.length + 256 });
    } catch {
      // The kernel's skb test run refuses IPv4 frames shorter than 14+20 bytes and IPv6 ones shorter than 14+40 (EINVAL).
      tcRefused++;
      return [];
    }
    tcRuns++;
    const problems: string[] = [];
    if (r.retval !== 0) problems.push(`tc verdict ${r.retval}, not TC_ACT_OK`);
    if (!r.dataOut.equals(frame)) {
      // A rewrite is the reverse of a direct (DNAT-only) flow: the frame's 5-tuple has a ph_rev entry and only
      // its source (address, port) and checksums change, to the entry's VIP:port. Frames addressed to the node
      // itself never leave it, so SNAT entries (keyed to the node) are not judged here (bpf/lb.bpf.c says why).
      const entry = revOf(frame);
      const v4 = frame.readUInt16BE(12) === 0x0800;
      const dst = v4 ? [...frame.subarray(30, 34)].join('.') : ipv6Text(frame.subarray(38, 54));
      if (!NODE_ADDRESSES.has(dst)) {
        if (!entry) problems.push('tc rewrote a frame without a ph_rev entry');
        else {
          const l4 = v4 ? 14 + (frame[14]! & 0xf) * 4 : 54;
          const srcOut = v4 ? [...r.dataOut.subarray(26, 30)].join('.') : ipv6Text(r.dataOut.subarray(22, 38));
          if (srcOut !== entry.newSrc || r.dataOut.readUInt16BE(l4) !== entry.newSport) problems.push(`tc rewrote the source to ${srcOut}:${r.dataOut.readUInt16BE(l4)}, entry says ${entry.newSrc}:${entry.newSport}`);
          for (let i = 0; i < frame.length; i++) {
            const allowed = (i >= 24 && i < 30) || (!v4 && i >= 22 && i < 38) || (i >= l4 && i < l4 + 2) || i === l4 + 16 || i === l4 + 17 || i === l4 + 6 || i === l4 + 7;
            if (r.dataOut[i] !== frame[i] && !allowed) { problems.push(`tc changed byte ${i} outside source/port/checksums`); break; }
          }
        }
      }
    }
    return problems;
  };
  /** The reverse-NAT entry the frame's 5-tuple finds. */
  const revOf = (frame: Buffer): { newSrc: string; newSport: number } | undefined => {
    try {
      const v4 = frame.readUInt16BE(12) === 0x0800;
      const l4 = v4 ? 14 + (frame[14]! & 0xf) * 4 : 54;
      const src = v4 ? [...frame.subarray(26, 30)].join('.') : ipv6Text(frame.subarray(22, 38));
      const dst = v4 ? [...frame.subarray(30, 34)].join('.') : ipv6Text(frame.subarray(38, 54));
      const key = encodeFlow({ src, dst, sport: frame.readUInt16BE(l4), dport: frame.readUInt16BE(l4 + 2), proto: v4 ? frame[23]! : frame[20]! });
      const v = rev.lookup(key);
      if (!v) return undefined;
      const e = decodeReverseNat(v, v4 ? 2 : 10);
      return { newSrc: v4 ? e.newSrc : ipv6Text(addrBytes(e.newSrc)), newSport: e.newSport };
    } catch {
      return undefined;
    }
  };
  let blockVerdicts: Record<number, number> = {};
  let blockStart = 0;
  let blockEchoes = 0;
  let echoes = 0;
  let exactNext = false;
  /** Counters of the frames since the last read must add up to their verdicts. */
  const closeBlock = (index: number): void => {
    const after = readCounters(stats);
    const problems = aggregateProblems(blockVerdicts, counterDelta(before, after), blockEchoes);
    if (problems.length && failures++ < args.maxFailures) {
      emit({ failure: { index: blockStart, how: `block of frames ${blockStart}..${index - 1} (seed ${args.seed})`, ingress: 'fx0', hex: '', verdict: -1, outHex: '', problems } });
    }
    before = after;
    blockVerdicts = {};
    blockEchoes = 0;
    blockStart = index;
  };
  const runOne = (f: FuzzFrame, index: number, name?: string): void => {
    exactNext = name !== undefined || index % args.exactCountersEvery === 0;
    if (exactNext) closeBlock(index);
    let res;
    // struct xdp_md.data_end: the frame length (0 would make the kernel run an empty frame).
    ctx[f.ingress].writeUInt32LE(f.frame.length, 4);
    try {
      res = addon.testRun(PROG_FD, { data: f.frame, ctxIn: ctx[f.ingress], dataOutSize: f.frame.length + 256 });
    } catch (err) {
      refused++;
      if (failures++ < args.maxFailures) emit({ failure: { index, ...(name ? { name } : {}), how: f.how, ingress: f.ingress, hex: f.frame.toString('hex'), verdict: -1, outHex: '', problems: [`test run refused: ${(err as Error).message}`] } });
      return;
    }
    verdicts[res.retval] = (verdicts[res.retval] ?? 0) + 1;
    blockVerdicts[res.retval] = (blockVerdicts[res.retval] ?? 0) + 1;
    let j;
    if (exactNext) {
      const after = readCounters(stats);
      j = oracle.judge(f.frame, f.ingress, res, counterDelta(before, after));
      before = after;
      blockVerdicts = {};
      blockEchoes = 0;
    } else {
      j = oracle.judge(f.frame, f.ingress, res);
    }
    if (j.accepted === 'icmp-echo' && !ECHO_COUNTED) { blockEchoes++; echoes++; }
    if (args.tcEgress) {
      const tcProblems = judgeTc(f.frame);
      if (tcProblems.length && failures++ < args.maxFailures) emit({ failure: { index, how: `tc egress: ${f.how}`, ingress: f.ingress, hex: f.frame.toString('hex'), verdict: -1, outHex: '', problems: tcProblems } });
    }
    if (name !== undefined) emit({ regression: { name, verdict: res.retval, problems: j.problems } });
    const open = j.problems.length ? knownIssue(j.problems) : undefined;
    if (open) known[open] = (known[open] ?? 0) + 1;
    else if (j.problems.length && failures++ < args.maxFailures) {
      emit({ failure: { index, ...(name ? { name } : {}), how: f.how, ingress: f.ingress, hex: f.frame.toString('hex'), verdict: res.retval, outHex: res.dataOut.toString('hex'), problems: j.problems } });
    }
  };

  let index = 0;
  for (const r of args.regressions ?? []) runOne({ frame: Buffer.from(r.hex, 'hex'), ingress: r.ingress, how: 'regression' }, index++, r.name);
  for (const f of truncationSweep(args.seed)) {
    if (index >= args.frames) break;
    runOne(f, index++);
  }
  for (let i = 0; index < args.frames; i++, index++) {
    if (args.flushEvery && index % args.flushEvery === 0) {
      flush(ct);
      flush(rev);
      oracle.forgetFlows();
    }
    runOne(fuzzFrame(args.seed, i, oracle.seen), index);
    if (index % 100_000 === 99_999) emit({ progress: { frames: index + 1, seconds: Number(process.hrtime.bigint() - t0) / 1e9 } });
  }
  closeBlock(index);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const total = counterDelta(start, readCounters(stats));
  const names: Record<number, string> = { 0: 'XDP_ABORTED', 1: 'XDP_DROP', 2: 'XDP_PASS', 3: 'XDP_TX', 4: 'XDP_REDIRECT' };
  const summary: FuzzSummary = {
    seed: args.seed, frames: index, refused, seconds, framesPerSecond: Math.round(index / seconds),
    verdicts: Object.fromEntries(Object.entries(verdicts).map(([k, v]) => [names[Number(k)] ?? k, v])),
    accepted: oracle.tally, counters: total, aggregateProblems: aggregateProblems(verdicts, total, echoes), failures, known, tcRuns, tcRefused,
  };
  emit({ summary });
  for (const m of [stats, ct, rev]) m.close();
}

function emit(o: unknown): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

main();
