/**
 * `npm run bench:scale-kube`: Kubernetes mode at cluster scale (issue 15,
 * item 6). Three LB nodes in network namespaces run the agent against the
 * API emulator (src/lab/apiserver, in its own process) holding N
 * LoadBalancer services with EndpointSlices of 3-8 endpoints, one pool and
 * one L2 policy. Measured from outside:
 *
 * - start: every service allocated (IPAM leader's status writes), every
 *   service lease held, every node's data path holding every frontend;
 * - API writes per second, from the emulator's request log, by what they
 *   write (Service status, node leases, service leases, events), over the
 *   start and over a steady window (10 s after the start), against each
 *   writer's `--k8s-qps`;
 * - a clean restart of one node: back in the data path, leases back;
 * - each agent's RSS, CPU and event-loop delay p99; the emulator's RSS and
 *   CPU (does it hold the load?).
 *
 *   npm run bench:scale-kube                      # 2,000 services
 *   npm run bench:scale-kube -- --services 300 --out /tmp/k
 *
 * Writes scale-kube.json and scale-kube.md into --out (default bench/results).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../src/datapath/bpf-build.js';
import { L2Lab, NAMESPACE, sleep, waitFor } from '../src/lab/l2-lab.js';
import { lbServiceObject } from '../src/lab/manifests.js';
import { histogramBuckets, parseMetrics, quantileBetween, DELAY_HISTOGRAM } from './scale/prometheus.js';
import { readProc } from './scale/proc.js';
import { kubeScaleMarkdown, writeRates, type KubeScaleReport, type WriteRates } from './scale/kube-report.js';
import { writeBenchChart } from './lib/bench-charts.js';

const HELP = `Usage: npm run bench:scale-kube -- [flags]

  --services N     LoadBalancer services (default 2000)
  --nodes N        LB nodes (default 3)
  --qps N          the agents' --k8s-qps (default: the agent's default, 20)
  --steady S       seconds of the steady window (default 20)
  --prefix P       namespace prefix (default phk)
  --out DIR        where scale-kube.json / .md go (default bench/results)
`;

/** A deterministic 3-8 endpoints per service, addresses from 198.19.0.0/16 (nothing listens: no traffic). */
function objects(n: number): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (let i = 0; i < n; i++) {
    const name = `s${String(i).padStart(5, '0')}`;
    const count = 3 + ((i * 7919) % 6);
    out.push(['services', lbServiceObject({ name })]);
    out.push(['endpointslices', {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${name}-v4`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: Array.from({ length: count }, (_, k) => ({ addresses: [`198.19.${(i * 8 + k) >> 8 & 255}.${(i * 8 + k) & 255}`], conditions: { ready: true } })),
    }]);
  }
  return out;
}

interface Summary { frontends: number; frontendsProgrammed: number; servicesNotProgrammed: number; services: number }

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      services: { type: 'string', default: '2000' }, nodes: { type: 'string', default: '3' }, qps: { type: 'string' },
      steady: { type: 'string', default: '20' }, prefix: { type: 'string', default: 'phk' },
      out: { type: 'string', default: join(PROJECT_ROOT, 'bench', 'results') }, help: { type: 'boolean' },
    },
  });
  if (values.help) { process.stdout.write(HELP); return 0; }
  const services = Number(values.services);
  const nodeCount = Number(values.nodes);
  const steadyS = Number(values.steady);
  const qps = values.qps ? Number(values.qps) : 20;
  if (!(services >= 1 && services <= 4000)) throw new Error('--services: 1 to 4000 (the pool is 198.18.0.0/20)');
  const cleanups: (() => Promise<void> | void)[] = [];
  const host = { teardown: (fn: () => Promise<void> | void) => { cleanups.push(fn); } };
  const log = (m: string): void => { process.stderr.write(`[scale-kube] ${m}\n`); };
  try {
    const lab = await L2Lab.create(host, values.prefix!, nodeCount);
    const agentArgs = ['--log-level', 'warn', ...(values.qps ? ['--k8s-qps', String(qps), '--k8s-burst', String(qps * 2)] : [])];
    await lab.api.put('loadbalancerippools', { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'bulk-pool' }, spec: { blocks: [{ cidr: '198.18.0.0/20' }] } });
    await lab.api.put('l2announcementpolicies', { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'bulk-l2' }, spec: { interfaces: ['^eth0$'], loadBalancerIPs: true } });
    const all = objects(services);
    for (let i = 0; i < all.length; i += 500) await lab.api.call('putMany', all.slice(i, i + 500));
    log(`${services} services and slices in the emulator`);

    const summary = async (node: string): Promise<Summary | undefined> => {
      const r = await lab.lab.exec(node, ['curl', '-sf', '--max-time', '10', 'http://127.0.0.1:9643/v1/state?sections=config'], { allowFail: true });
      try { return (JSON.parse(r.stdout) as { summary: Summary }).summary; } catch { return undefined; }
    };
    const metricsOf = async (node: string): Promise<string> => (await lab.lab.exec(node, ['curl', '-sf', '--max-time', '10', 'http://127.0.0.1:9643/metrics'], { allowFail: true })).stdout;
    const progress = (): Promise<{ services: number; allocated: number; leasesHeld: number; events: number }> => lab.api.call('progress', NAMESPACE);
    // Every node holds every frontend: the address frontends too (a service without its address yet has
    // only NodePort ones), so the frontend count must also have stopped growing since the last look.
    const seenFrontends = new Map<string, number>();
    const programmedEverywhere = async (nodes: string[]): Promise<boolean> => {
      let ok = true;
      for (const n of nodes) {
        const s = await summary(n);
        const before = seenFrontends.get(n);
        if (s) seenFrontends.set(n, s.frontends);
        if (!s || s.services < services || s.servicesNotProgrammed > 0 || s.frontendsProgrammed < s.frontends || before !== s.frontends) ok = false;
      }
      return ok;
    };
    // Per-second API write counts by what is written, sampled for the whole run.
    const perSecond: Record<string, number>[] = [];
    const rateTimer = setInterval(() => {
      lab.api.call('writesSince', 1000, true).then((w: Record<string, number>) => perSecond.push(w), () => undefined);
    }, 1000);
    cleanups.push(() => clearInterval(rateTimer));
    // Agents' RSS, sampled every second.
    const rss = new Map<string, number[]>();
    const rssTimer = setInterval(() => {
      for (const [n, a] of lab.agents) {
        const p = a.proc.pid ? readProc(a.proc.pid) : undefined;
        if (p) rss.set(n, [...(rss.get(n) ?? []), p.rssKb / 1024]);
      }
    }, 1000);
    cleanups.push(() => clearInterval(rssTimer));

    // ---- start
    const t0 = performance.now();
    await Promise.all(lab.nodes.map((n) => lab.startAgent(n, agentArgs)));
    const marks: Record<string, number> = {};
    const bound = 120_000 + services * 150;
    let last = '';
    const where = async (): Promise<string> => `${last}; ${JSON.stringify(Object.fromEntries(await Promise.all(lab.nodes.map(async (n) => [n, await summary(n)]))))}`;
    await waitFor('every service allocated, its lease held and in every data path', bound, async () => {
      const p = await progress();
      last = `emulator: ${JSON.stringify(p)}, marks ${JSON.stringify(marks)}`;
      const s = (performance.now() - t0) / 1000;
      if (marks.allocated === undefined && p.allocated >= services) marks.allocated = s;
      if (marks.leases === undefined && p.leasesHeld >= services) marks.leases = s;
      if (marks.programmed === undefined && marks.allocated !== undefined && (await programmedEverywhere(lab.nodes))) marks.programmed = s;
      return marks.allocated !== undefined && marks.leases !== undefined && marks.programmed !== undefined ? true : undefined;
    }, 1000).catch(async (e: Error) => { throw new Error(`${e.message}: ${await where()}`); });
    const startWrites = perSecond.length;
    log(`start: allocated ${marks.allocated} s, leases ${marks.leases} s, programmed ${marks.programmed} s`);

    // ---- steady (after 10 s for the start's last writes in flight: acquisitions that lost a race)
    await sleep(10_000);
    const steadyFrom = perSecond.length;
    await sleep(steadyS * 1000);
    const steady = writeRates(perSecond.slice(steadyFrom));

    // ---- clean restart of n1
    const n1 = lab.nodes[0]!;
    const t1 = performance.now();
    await lab.kill(n1, 'SIGTERM');
    const restartFrom = perSecond.length;
    seenFrontends.clear();
    await lab.startAgent(n1, agentArgs);
    await waitFor('n1 back in the data path and every lease held', bound, async () => {
      const p = await progress();
      last = `emulator: ${JSON.stringify(p)}`;
      return p.leasesHeld >= services && (await programmedEverywhere([n1])) ? true : undefined;
    }, 1000).catch(async (e: Error) => { throw new Error(`${e.message}: ${await where()}`); });
    const restartS = (performance.now() - t1) / 1000;
    const restart = writeRates(perSecond.slice(restartFrom));
    log(`restart: ${restartS.toFixed(1)} s`);

    // ---- per agent
    const agents = await Promise.all(lab.nodes.map(async (n) => {
      const a = lab.agents.get(n)!;
      const p = a.proc.pid ? readProc(a.proc.pid) : undefined;
      const samples = parseMetrics(await metricsOf(n));
      const q = quantileBetween(undefined, histogramBuckets(samples, DELAY_HISTOGRAM) ?? new Map(), 0.99);
      const series = rss.get(n) ?? [];
      return {
        node: n,
        rss_steady_mb: Math.round(series[series.length - 1] ?? 0),
        rss_peak_mb: Math.round(p ? p.hwmKb / 1024 : Math.max(0, ...series)),
        cpu_s: p ? Math.round(p.cpuS * 10) / 10 : 0,
        event_loop_delay_p99_ms: q ? Math.round(q.seconds * 1000) : null,
      };
    }));
    const emulator = await lab.api.call('usage');
    const report: KubeScaleReport = {
      services, nodes: nodeCount, k8s_qps: qps,
      start_allocated_s: round(marks.allocated!), start_leases_held_s: round(marks.leases!), start_to_programmed_s: round(marks.programmed!),
      restart_to_programmed_s: round(restartS),
      writes: { start: writeRates(perSecond.slice(0, startWrites)), steady, restart } as Record<string, WriteRates>,
      agents, emulator: { rss_mb: emulator.rssMb, cpu_s: emulator.cpuS },
      kernel: release(), cpu: `${/^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpus()[0]?.model}, ${cpus().length} vCPUs`,
      date: new Date().toISOString(),
    };
    mkdirSync(values.out!, { recursive: true });
    writeFileSync(join(values.out!, 'scale-kube.json'), `${JSON.stringify(report, null, 2)}\n`);
    const md = kubeScaleMarkdown(report);
    writeFileSync(join(values.out!, 'scale-kube.md'), md);
    writeBenchChart('scale-kube', values.out!);
    process.stdout.write(md);
    return 0;
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

main().then((code) => process.exit(code), (e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
