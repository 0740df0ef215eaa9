/**
 * The BGP rows of `npm run bench:failover`: a hung LB node in ECMP, with and
 * without BFD. `PHAROS_BENCH_ONLY=bgp npm run bench:failover` runs only
 * these and merges them into the last results.
 *
 *                                     ┌ up0 [a: tc, speaker] eth0 ┐
 *   client ── c0 [rtr: bird2, multipath]                            ├ br0 ── be1, be2
 *                                     └ up0 [b: tc, speaker] eth0 ┘
 *
 * The lab is src/lab/ecmp-lab.ts, as in test/bgp/ecmp-scaleout.test.ts.
 *
 * Both nodes run the real data path (the tc build at tc ingress, as --xdp-mode
 * auto picks on veth; same hash seed and Maglev table)
 * and a BgpSpeaker advertising the VIP; bird2 installs a two-path route
 * (L4 hash). The client opens a new HTTP connection every 10 ms (300 ms to
 * answer). "Hung" means what a frozen machine does, with no link change the
 * router could see: node a's speaker is stopped (SIGSTOP) and everything
 * arriving on its uplink is dropped (data path detached and an nftables netdev
 * drop-all in node a's namespace). The client sees about half its new
 * connections fail until bird drops node a's path: after BFD's detection
 * time (300 ms x 3) with BFD, after the 9 s hold time without.
 *
 * Reported per mode (median of the runs): the failed-connection window
 * (first to last failed request sent after the hang), the share of requests
 * in it that failed, and hang → the router's kernel route has one path.
 *
 * Then a drain of node a (issue 18 item 7, src/bgp/drain.ts): its routes
 * re-sent with GRACEFUL_SHUTDOWN and a longer AS path, withdrawn
 * DRAIN_WITHDRAW_MS later: requests failed from the drain to 1.5 s after the
 * withdrawal (target 0), drain → the router has one path.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labProgram, withLab, type Lab } from '../src/lab/netns.js';
import { loadAddon } from '../src/native/libbpf.js';
import { removePins } from '../src/datapath/loader.js';
import { PROJECT_ROOT } from '../src/datapath/bpf-build.js';
import type { PeerSpec } from '../src/bgp/speaker.js';
import { drainedPeers } from '../src/bgp/drain.js';
import { SpeakerProcess } from '../src/lab/bgp/speaker-process.js';
import { attachEcmpInterface, buildEcmpLab, ecmpFrontends, ecmpNodes, ecmpPeer, startEcmpBgp, startEcmpDatapath, stopEcmpDatapath } from '../src/lab/ecmp-lab.js';
import { routerNextHops } from '../src/lab/topology.js';
import { sleep, waitFor } from '../src/lab/wait.js';
import { writeBenchChart } from './lib/bench-charts.js';
import { median } from './lib/stats.js';

const LAB_PREFIX = 'phbfdx';
const VIP = '203.0.113.100';
const HASH_SEED = 0x5eed4321;
const BACKENDS = [1, 2];
const BFD = { minRxMs: 300, minTxMs: 300, multiplier: 3 };
const HOLD_S = 9;
const DRAIN_WITHDRAW_MS = 3000;


export interface HungNodeRun {
  /** First to last failed request (by send time) after the hang, ms. */
  failedWindowMs: number;
  /** Failed / sent requests inside that window. */
  failedShare: number;
  failed: number;
  /** Hang → the router's kernel route to the VIP has only node b, ms. */
  routeMovedMs: number;
}

/** A drained node: GRACEFUL_SHUTDOWN + longer path, then withdrawn. */
export interface DrainRun {
  /** Requests failed from the drain to 1.5 s after the withdrawal, and requests sent then. */
  failed: number;
  sent: number;
  /** Drain → the router's kernel route has only node b, ms (the GRACEFUL_SHUTDOWN phase moved it). */
  routeMovedMs: number;
}

export interface HungNodeResult {
  bfd: HungNodeRun[];
  noBfd: HungNodeRun[];
  /** Absent in results from before the drain rows. */
  drain?: DrainRun[];
  medians: { bfd: HungNodeRun; noBfd: HungNodeRun };
  settings: { bfd: typeof BFD; holdTimeSeconds: number; probeIntervalMs: number; probeTimeoutMs: number; runs: number };
  date: string;
}

function medianRun(runs: HungNodeRun[]): HungNodeRun {
  return {
    failedWindowMs: median(runs.map((r) => r.failedWindowMs)),
    failedShare: median(runs.map((r) => r.failedShare)),
    failed: median(runs.map((r) => r.failed)),
    routeMovedMs: median(runs.map((r) => r.routeMovedMs)),
  };
}

const NODES = ecmpNodes().map((n) => ({ ...n, speaker: undefined as SpeakerProcess | undefined }));
type LbNode = (typeof NODES)[number];
const pinDir = (n: LbNode): string => `/run/pharos/bpffs/${LAB_PREFIX}-${n.name}`;

function peerSpec(n: LbNode, bfd: boolean): PeerSpec {
  return ecmpPeer(n, VIP, { holdTimeSeconds: HOLD_S, ...(bfd ? { bfd: BFD } : {}) });
}

/** Builds the lab, runs `runs` hangs of node a per mode (interleaved), tears everything down. */
export async function measureBgpHungNode(runs: number, log: (line: string) => void = console.log): Promise<HungNodeResult> {
  const teardowns: (() => unknown)[] = [];
  const lab: Lab = await withLab({ teardown: (f) => teardowns.push(f) }, LAB_PREFIX);
  const addon = loadAddon();
  try {
    for (const n of NODES) removePins(pinDir(n));
    teardowns.push(() => {
      for (const n of NODES) stopEcmpDatapath(n, pinDir(n));
    });
    await buildEcmpLab(lab, NODES, BACKENDS);
    // Short-lived connections every 10 ms: no TIME_WAIT pile-up in the client.
    await lab.exec('cli', ['sysctl', '-qw', 'net.ipv4.tcp_max_tw_buckets=0']);
    for (const n of NODES) await startEcmpDatapath(lab, addon, n, { pinDir: pinDir(n), hashSeed: HASH_SEED, frontends: ecmpFrontends(VIP, BACKENDS) });
    const { bird, speakers } = await startEcmpBgp(lab, NODES, { bfd: BFD, teardown: (stop) => teardowns.push(stop) });
    for (const [i, n] of NODES.entries()) n.speaker = speakers[i];

    const nextHops = (): Promise<string[]> => routerNextHops(lab, VIP);
    const both = JSON.stringify(NODES.map((n) => n.uplink).sort());
    const [a] = NODES as [LbNode, LbNode];

    /**
     * The client's prober (a new connection every 10 ms), once it has its
     * first answer. Its clock starts when its process does (hundreds of ms
     * after spawn on a loaded machine): `zero` is that clock's zero on ours,
     * when its first answer arrived minus that request's send time (a few ms
     * early at most).
     */
    const startProber = async (): Promise<{ prober: ReturnType<typeof lab.spawn>; lines: string[]; zero: number }> => {
      const lines: string[] = [];
      const prober = lab.spawn('cli', [process.execPath, labProgram('prober'), `http://${VIP}/`, '10', '300', '40000']);
      let buf = '';
      let zero: number | undefined;
      prober.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const parts = buf.split('\n');
        buf = parts.pop()!;
        if (zero === undefined && parts.length) zero = performance.now() - Number(parts[0]!.split(' ')[0]);
        lines.push(...parts);
      });
      await waitFor('the prober\'s first answer', 10_000, async () => zero !== undefined, { everyMs: 10 });
      return { prober, lines, zero: zero! };
    };

    const runOnce = async (bfd: boolean): Promise<HungNodeRun> => {
      for (const n of NODES) await n.speaker!.apply({ peers: [peerSpec(n, bfd)] });
      await waitFor('the VIP routed over both LB nodes', 60_000, async () => (JSON.stringify(await nextHops()) === both ? true : undefined), { everyMs: 100 });
      if (bfd) {
        await waitFor('BFD Up with both nodes', 20_000, async () => {
          for (const n of NODES) if (!/^up$/i.test((await bird.bfdState(n.uplink)) ?? '')) return undefined;
          return true;
        }, { everyMs: 100 });
      }
      await sleep(1000);
      const { prober, lines, zero: proberZero } = await startProber();
      await sleep(1500);
      // Hang node a: its speaker stops, and nothing arriving on its uplink is handled any more.
      const hangAt = performance.now();
      process.kill(a.speaker!.pid!, 'SIGSTOP');
      a.dp!.detach('up0', { netns: lab.nsPath('a') });
      await lab.exec('a', ['nft', '-f', '-'], { input: 'table netdev phbfd_hang {\n chain drop_all {\n  type filter hook ingress device "up0" priority 0; policy drop;\n }\n}\n' });
      await waitFor('the router to drop node a', HOLD_S * 1000 + 10_000, async () => (JSON.stringify(await nextHops()) === JSON.stringify([NODES[1]!.uplink]) ? true : undefined), { everyMs: 20 });
      const routeMovedMs = performance.now() - hangAt;
      await sleep(1500);
      prober.kill('SIGTERM');
      await new Promise((r) => (prober.exitCode === null ? prober.once('exit', r) : r(undefined)));
      // Bring node a back for the next run.
      await lab.exec('a', ['nft', 'delete', 'table', 'netdev', 'phbfd_hang']);
      attachEcmpInterface(lab, a, 'up0');
      process.kill(a.speaker!.pid!, 'SIGCONT');
      const hangProberMs = hangAt - proberZero;
      const sent = lines.map((l) => ({ t: Number(l.split(' ')[0]), ok: !/ fail /.test(l) })).filter((x) => x.t >= hangProberMs);
      const failedAt = sent.filter((x) => !x.ok).map((x) => x.t);
      const first = Math.min(...failedAt);
      const last = Math.max(...failedAt);
      const inWindow = sent.filter((x) => x.t >= first && x.t <= last);
      const run: HungNodeRun = failedAt.length ? {
        failedWindowMs: Math.round(last - hangProberMs),
        failedShare: Math.round((failedAt.length / inWindow.length) * 100) / 100,
        failed: failedAt.length,
        routeMovedMs: Math.round(routeMovedMs),
      } : { failedWindowMs: 0, failedShare: 0, failed: 0, routeMovedMs: Math.round(routeMovedMs) };
      log(`bgp hung node ${bfd ? 'with BFD   ' : 'without BFD'}: failures until ${run.failedWindowMs} ms after the hang (${run.failed} failed, ${Math.round(run.failedShare * 100)}% of requests in the window), route moved after ${run.routeMovedMs} ms`);
      return run;
    };

    /** Node a drained: GRACEFUL_SHUTDOWN and a longer path, then withdrawn after DRAIN_WITHDRAW_MS (the agent's phases, drain.ts). */
    const drainOnce = async (): Promise<DrainRun> => {
      for (const n of NODES) await n.speaker!.apply({ peers: [peerSpec(n, false)] });
      await waitFor('the VIP routed over both LB nodes', 60_000, async () => (JSON.stringify(await nextHops()) === both ? true : undefined), { everyMs: 100 });
      const { prober, lines, zero: proberZero } = await startProber();
      await sleep(1500);
      const drainAt = performance.now();
      await a.speaker!.apply({ peers: drainedPeers([peerSpec(a, false)], 'shutdown') });
      await waitFor('the router to prefer node b', 10_000, async () => (JSON.stringify(await nextHops()) === JSON.stringify([NODES[1]!.uplink]) ? true : undefined), { everyMs: 20 });
      const routeMovedMs = performance.now() - drainAt;
      await sleep(Math.max(0, DRAIN_WITHDRAW_MS - (performance.now() - drainAt)));
      await a.speaker!.apply({ peers: drainedPeers([peerSpec(a, false)], 'withdrawn') });
      await sleep(1500);
      const end = performance.now();
      prober.kill('SIGTERM');
      await new Promise((r) => (prober.exitCode === null ? prober.once('exit', r) : r(undefined)));
      const from = drainAt - proberZero;
      const to = end - proberZero;
      const sent = lines.map((l) => ({ t: Number(l.split(' ')[0]), ok: !/ fail /.test(l) })).filter((x) => x.t >= from && x.t <= to);
      const run = { failed: sent.filter((x) => !x.ok).length, sent: sent.length, routeMovedMs: Math.round(routeMovedMs) };
      log(`bgp drain of node a: ${run.failed} of ${run.sent} requests failed, route moved to node b after ${run.routeMovedMs} ms (withdrawn after ${DRAIN_WITHDRAW_MS} ms)`);
      return run;
    };

    const result: HungNodeResult = {
      bfd: [], noBfd: [], drain: [], medians: undefined as unknown as HungNodeResult['medians'],
      settings: { bfd: BFD, holdTimeSeconds: HOLD_S, probeIntervalMs: 10, probeTimeoutMs: 300, runs },
      date: new Date().toISOString(),
    };
    for (let i = 0; i < runs; i++) {
      result.bfd.push(await runOnce(true));
      result.noBfd.push(await runOnce(false));
      result.drain!.push(await drainOnce());
    }
    result.medians = { bfd: medianRun(result.bfd), noBfd: medianRun(result.noBfd) };
    return result;
  } finally {
    for (const f of teardowns.reverse()) await f();
  }
}

/** The markdown rows for bench/results/failover.md. */
export function bgpHungNodeMarkdown(r: HungNodeResult): string[] {
  const row = (name: string, m: HungNodeRun, target: string): string =>
    `| ${name} | ${m.failedWindowMs} | ${Math.round(m.failedShare * 100)}% | ${m.routeMovedMs} | ${target} |`;
  return [
    '## BGP: a hung LB node in ECMP (bench/failover-bgp.ts)',
    '',
    `Two LB nodes (data path + speaker) advertise one VIP to bird2 with multipath; node a hangs (speaker SIGSTOPped, uplink traffic dropped, no link change). Median of ${r.settings.runs} runs; the client opens a new connection every ${r.settings.probeIntervalMs} ms (${r.settings.probeTimeoutMs} ms to answer).`,
    '',
    '| event | failed-connection window: hang → last failed request (ms) | requests failed in the window | hang → router has one path (ms) | target |',
    '|---|---|---|---|---|',
    row(`BGP node hung, with BFD (${r.settings.bfd.minTxMs} ms x ${r.settings.bfd.multiplier})`, r.medians.bfd, '≤ 1500'),
    row(`BGP node hung, without BFD (hold ${r.settings.holdTimeSeconds} s)`, r.medians.noBfd, '—'),
    '',
    ...(r.drain?.length ? [
      `Drain of node a (its Node labelled lb.pharos.io/drain: routes re-sent with GRACEFUL_SHUTDOWN 65535:0 and its AS prepended, withdrawn ${DRAIN_WITHDRAW_MS / 1000} s later): **${median(r.drain.map((d) => d.failed))} requests failed** (median of ${r.drain.length} runs; ${r.drain.map((d) => `${d.failed}/${d.sent}`).join(', ')}; target 0); the router left node a ${median(r.drain.map((d) => d.routeMovedMs))} ms after the drain, on the longer path, before the withdrawal.`,
      '',
    ] : []),
    `Measured ${r.date}; \`PHAROS_BENCH_ONLY=bgp npm run bench:failover\` runs only these rows (about 3 minutes). Without BFD the window is the rest of bird's hold time after its last keepalive from node a (5–9 s); with BFD it is bird's detection time (3 × 300 ms after node a's last packet) plus the kernel route update.`,
    '',
  ];
}

const BGP_SECTION = /## BGP: a hung LB node in ECMP[\s\S]*?(?=\n## |\nRun from|\nReproduce|$)/;

/**
 * `PHAROS_BENCH_ONLY=bgp npm run bench:failover`: only these rows, merged
 * into the last bench/results/failover.{json,md} (the L2 rows are kept).
 */
export async function updateBgpRowsOnly(runs: number): Promise<void> {
  const r = await measureBgpHungNode(runs);
  // PHAROS_BENCH_RESULTS_DIR: elsewhere (a smoke run on a loaded machine must not replace the recorded figures).
  const dir = process.env.PHAROS_BENCH_RESULTS_DIR ?? join(PROJECT_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const jsonPath = join(dir, 'failover.json');
  const json = existsSync(jsonPath) ? JSON.parse(readFileSync(jsonPath, 'utf8')) : { runs: {} };
  Object.assign(json, bgpHungNodeSummary(r));
  json.runs.bgp_hung_node = r;
  writeFileSync(jsonPath, JSON.stringify(json, null, 2) + '\n');
  const mdPath = join(dir, 'failover.md');
  const md = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '';
  writeFileSync(mdPath, withBgpSection(md, bgpHungNodeMarkdown(r).join('\n')));
  writeBenchChart('failover', dir);
  console.log(JSON.stringify(bgpHungNodeSummary(r)));
}

/** The top-level figures of failover.json. */
export function bgpHungNodeSummary(r: HungNodeResult): Record<string, number> {
  return { bgp_hung_node_bfd_window_ms: r.medians.bfd.failedWindowMs, bgp_hung_node_no_bfd_window_ms: r.medians.noBfd.failedWindowMs };
}

/** `md` with its BGP section replaced, or the section put before the closing notes. */
export function withBgpSection(md: string, section: string): string {
  if (BGP_SECTION.test(md)) return md.replace(BGP_SECTION, section.trimEnd() + '\n');
  const at = md.search(/\n(Run from|Reproduce)/);
  return at < 0 ? `${md}\n${section}` : `${md.slice(0, at + 1)}${section}\n${md.slice(at + 1)}`;
}
