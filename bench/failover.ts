/**
 * `npm run bench:failover`: the L2 failover gap a client sees, and the API
 * write rate of the lease election, with default settings (node lease 1 s /
 * renew 250 ms, service leases 15 s / 5 s / 2 s).
 *
 * Lab (test/l2/l2-lab.ts): three LB nodes running the agent in Kubernetes
 * mode against the API emulator over management links, a client and a
 * backend on one bridge. A client in its namespace sends one HTTP request
 * every 10 ms (a new TCP connection each, 300 ms to answer); the gap is the
 * longest stretch without an answered request around the event. Per event
 * the median of RUNS runs:
 * - sigkill: SIGKILL of the holder's agent (its XDP program and pinned maps
 *   stay, so it keeps forwarding until the client moves to the new holder);
 * - clean_stop: SIGTERM (leases handed over at once);
 * - link_down: the holder's announcing interface goes down;
 * - node_crash (extra): SIGKILL and link down together — a node that dies
 *   with its data path, where the gap is the node-lease takeover.
 * Then 200 services over the 3 nodes: API writes per second in steady state,
 * from the emulator's request log. Then a hung BGP node in ECMP, with and
 * without BFD (bench/failover-bgp.ts; `PHAROS_BENCH_ONLY=bgp` runs only that).
 *
 * Writes bench/results/failover.json and bench/results/failover.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/datapath/bpf-build.js';
import { L2Lab, NAMESPACE, longestGap, sleep, waitFor, LAB_PREFIX } from '../test/l2/l2-lab.js';
import { bgpHungNodeMarkdown, bgpHungNodeSummary, measureBgpHungNode, updateBgpRowsOnly, withBgpSection } from './failover-bgp.js';
import { writeBenchChart } from './lib/bench-charts.js';

const RUNS = Number(process.env.PHAROS_BENCH_RUNS ?? 5);
const SERVICES = 200;
const WRITES_WINDOW_MS = 20_000;
type Event = 'sigkill' | 'clean_stop' | 'link_down' | 'node_crash';

interface Run {
  from: string;
  to: string;
  gapMs: number;
  /** Event → the API shows the new holder (polled every 20 ms). */
  takeoverMs: number;
  /** Event → the client's kernel has the new holder's MAC for the VIP. */
  clientMovedMs: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, BPF)');
  if (process.env.PHAROS_BENCH_ONLY === 'bgp') return updateBgpRowsOnly(RUNS);
  const teardowns: (() => unknown)[] = [];
  const lab = await L2Lab.create({ teardown: (f) => teardowns.push(f) }, LAB_PREFIX, 3);
  const onSignal = (): void => void Promise.all(teardowns.map((f) => f())).then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await lab.basePolicy();
    await lab.service('web');
    for (const n of lab.nodes) await lab.startAgent(n);
    const [vip] = await waitFor('an address for web', 30_000, async () => {
      const v = await lab.vips('web');
      return v.length ? v : undefined;
    });
    const macs = new Map<string, string>();
    for (const n of lab.nodes) macs.set(n, await lab.lab.mac(n, 'eth0'));
    await waitFor('a holder for web', 30_000, () => lab.holder('web'));
    await waitFor('the first answer', 30_000, async () => {
      const r = await lab.lab.exec('client', ['curl', '-s', '--max-time', '1', `http://${vip}/`], { allowFail: true });
      return r.code === 0 ? true : undefined;
    });

    const runOnce = async (event: Event): Promise<Run> => {
      const from = (await lab.holder('web'))!;
      const prober = lab.startProber(`http://${vip}/`);
      await sleep(1000);
      const t0 = performance.now();
      const at = t0 - prober.started;
      if (event === 'sigkill') await lab.kill(from, 'SIGKILL');
      else if (event === 'clean_stop') await lab.kill(from, 'SIGTERM');
      else if (event === 'link_down') await lab.lab.exec(from, ['ip', 'link', 'set', 'eth0', 'down']);
      else await Promise.all([lab.kill(from, 'SIGKILL'), lab.lab.exec(from, ['ip', 'link', 'set', 'eth0', 'down'])]);
      const to = await waitFor('a new holder', 20_000, async () => {
        const h = await lab.holder('web');
        return h && h !== from ? h : undefined;
      }, 20);
      const takeoverMs = performance.now() - t0;
      await waitFor('the client to move', 20_000, async () => ((await lab.neighbourMac('client', vip!)) === macs.get(to) ? true : undefined), 20);
      const clientMovedMs = performance.now() - t0;
      await sleep(1500);
      const end = performance.now() - prober.started - 500;
      const times = await prober.stop();
      const gapMs = longestGap(times, at - 200, end);
      // Put the old holder back for the next run (it takes nothing back: no fail-back).
      if (event === 'link_down' || event === 'node_crash') await lab.lab.exec(from, ['ip', 'link', 'set', 'eth0', 'up']);
      if (event !== 'link_down') await lab.startAgent(from);
      await sleep(1500);
      const r = { from, to, gapMs: Math.round(gapMs), takeoverMs: Math.round(takeoverMs), clientMovedMs: Math.round(clientMovedMs) };
      console.log(`${event.padEnd(10)} ${from} -> ${to}: gap ${r.gapMs} ms, takeover ${r.takeoverMs} ms, client moved ${r.clientMovedMs} ms`);
      return r;
    };

    const runs: Record<Event, Run[]> = { sigkill: [], clean_stop: [], link_down: [], node_crash: [] };
    // Interleaved, so drift in machine load spreads over every event alike.
    for (let i = 0; i < RUNS; i++) for (const e of Object.keys(runs) as Event[]) runs[e].push(await runOnce(e));

    console.log(`creating ${SERVICES} more services for the write-rate measurement`);
    await lab.bulkPolicy();
    await lab.bulkServices(SERVICES);
    const leases = await waitFor('every bulk lease held', 120_000, async () => {
      const l = (await lab.api.list('leases', NAMESPACE)).filter((x: any) => x.metadata.name.startsWith('pharos-l2announce-198-18-0-') && x.spec?.holderIdentity);
      return l.length === SERVICES ? l : undefined;
    }, 500);
    const spread: Record<string, number> = {};
    for (const l of leases) spread[l.spec.holderIdentity] = (spread[l.spec.holderIdentity] ?? 0) + 1;
    await sleep(6000);
    await sleep(WRITES_WINDOW_MS);
    const writes: Record<string, number> = await lab.api.call('writesSince', WRITES_WINDOW_MS);
    const totalWrites = Object.values(writes).reduce((a, b) => a + b, 0);
    const apiWritesPerS = Math.round((totalWrites / (WRITES_WINDOW_MS / 1000)) * 10) / 10;
    const announced = SERVICES + 1;

    const result = {
      sigkill_gap_ms: median(runs.sigkill.map((r) => r.gapMs)),
      clean_stop_gap_ms: median(runs.clean_stop.map((r) => r.gapMs)),
      link_down_gap_ms: median(runs.link_down.map((r) => r.gapMs)),
      api_writes_per_s: apiWritesPerS,
      runs: {
        ...runs,
        medians: Object.fromEntries(Object.entries(runs).map(([e, rs]) => [e, {
          gapMs: median(rs.map((r) => r.gapMs)), takeoverMs: median(rs.map((r) => r.takeoverMs)), clientMovedMs: median(rs.map((r) => r.clientMovedMs)),
        }])),
        api_writes: { nodes: lab.nodes.length, services: announced, window_s: WRITES_WINDOW_MS / 1000, by_request: writes, budget_per_s: 5 * lab.nodes.length + announced / 5, leases_per_node: spread },
        settings: { runs: RUNS, probe_interval_ms: 10, probe_timeout_ms: 300, node_lease_s: 1, node_renew_ms: 250, service_lease_s: 15, service_renew_s: 5, service_retry_s: 2 },
        machine: { cpus: cpus().length, kernel: release(), loadavg: loadavg().map((x) => Math.round(x * 10) / 10), node: process.version, date: new Date().toISOString() },
      },
    };
    // A hung BGP node in ECMP with and without BFD: its own lab (bench/failover-bgp.ts).
    const bgp = await measureBgpHungNode(RUNS);
    Object.assign(result, bgpHungNodeSummary(bgp));
    (result.runs as Record<string, unknown>).bgp_hung_node = bgp;
    const dir = join(PROJECT_ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'failover.json'), JSON.stringify(result, null, 2) + '\n');
    writeFileSync(join(dir, 'failover.md'), withBgpSection(markdown(result), bgpHungNodeMarkdown(bgp).join('\n')));
    writeBenchChart('failover', dir);
    console.log(JSON.stringify({ sigkill_gap_ms: result.sigkill_gap_ms, clean_stop_gap_ms: result.clean_stop_gap_ms, link_down_gap_ms: result.link_down_gap_ms, api_writes_per_s: result.api_writes_per_s }));
  } finally {
    for (const f of teardowns.reverse()) await f();
  }
}

function markdown(r: any): string {
  const m = r.runs.medians;
  const row = (name: string, e: string, target: string): string =>
    `| ${name} | ${m[e].gapMs} | ${m[e].takeoverMs} | ${m[e].clientMovedMs} | ${target} |`;
  const w = r.runs.api_writes;
  return [
    '# L2 failover (bench/failover.ts)',
    '',
    `Median of ${r.runs.settings.runs} runs per event, default settings (node lease ${r.runs.settings.node_lease_s} s / renew ${r.runs.settings.node_renew_ms} ms; service leases ${r.runs.settings.service_lease_s} s / ${r.runs.settings.service_renew_s} s / ${r.runs.settings.service_retry_s} s), 3 LB nodes, API emulator over management links, a client sending one HTTP request (new TCP connection) every 10 ms.`,
    `Machine: ${r.runs.machine.cpus} CPUs, Linux ${r.runs.machine.kernel}, load average ${r.runs.machine.loadavg.join(' ')} (shared with other work), ${r.runs.machine.date}.`,
    '',
    '| event | client-seen gap (ms) | event → new lease holder (ms) | event → client has the new MAC (ms) | target gap |',
    '|---|---|---|---|---|',
    row('SIGKILL of the holder\'s agent', 'sigkill', '≤ 1500'),
    row('clean stop (SIGTERM)', 'clean_stop', '≤ 300'),
    row('announcing link down', 'link_down', '≤ 1500'),
    row('node crash (SIGKILL + link down)', 'node_crash', '—'),
    '',
    'Why the SIGKILL and clean-stop gaps are near zero: the old holder\'s XDP program and pinned maps outlive its agent, so it keeps forwarding until the new holder\'s gratuitous ARP moves the client; the takeover itself follows the node lease (~1 s after a SIGKILL). A node that dies with its data path (node crash) shows the takeover as the gap. The lab bridge does not flood unknown unicast towards LB nodes (a veth would hand a frame for another node\'s MAC to XDP; a physical NIC filters it).',
    '',
    `API writes: **${r.api_writes_per_s}/s** for ${w.nodes} nodes × ${w.services} services over ${w.window_s} s in steady state (budget ${w.budget_per_s}/s = 5 per node per second + 1 per service per 5 s); by request: ${Object.entries(w.by_request).map(([k, v]) => `${k} ${v}`).join(', ')}. Leases per node: ${Object.entries(w.leases_per_node).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    '',
    'Reproduce: `npm run bench:failover` (root; about 6 minutes).',
    '',
  ].join('\n');
}

main().catch((err) => {
  console.error(`bench:failover failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
