/**
 * `npm run bench:scale`: pharos at cluster scale (issue 15, item 5). The
 * agent in manifests mode on an LB node in a network namespace, with N
 * LoadBalancer services (3-8 endpoints each, an L2 policy on), measured
 * from the outside: the kernel's maps, /proc, HTTP timings, and a client's
 * ARP probes. Phases and bounds: bench/scale/run.ts; the lab:
 * bench/scale/lab.ts; the manifests: bench/scale/manifests.ts.
 *
 *   npm run bench:scale                       # 1,000 then 10,000 services
 *   npm run bench:scale -- --quick            # 1,000 only
 *   npm run bench:scale -- --services 300 --timeout-scale 0.5 --out /tmp/scale
 *
 * Writes bench/results/scale.json and scale.md after each N, and on
 * SIGINT/SIGTERM with the interrupted run's partial figures (marked in its
 * `error`); prints the table.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../src/datapath/bpf-build.js';
import { scaleMarkdown, type ScaleReport } from './scale/report.js';
import { defaultTimeouts, runScale, type ScaleRun } from './scale/run.js';
import type { EndpointSource } from './scale/manifests.js';
import { writeBenchChart } from './lib/bench-charts.js';

const HELP = `Usage: npm run bench:scale -- [flags]

  --services N,N      service counts, one run each (default 1000,10000)
  --quick             1,000 services only
  --edits N           timed one-endpoint edits per run (default 50)
  --burst N           services added at once in the burst phase (default 300)
  --seed N            endpoint counts and edit choices (default 15)
  --timeout-scale X   multiply every bound (default 1: start 300 s at 1,000 and
                      0.24 s per service above, burst 120 s + 0.06 s per service,
                      settling after a phase 240 s or 0.2 s per service, each
                      edit 30 s, all edits 15 min, each HTTP request 30 s)
  --shared-endpoints K  draw endpoints from K shared addresses instead of 8
                      distinct ones per service (fewer distinct backends)
  --agent-arg FLAG    pass a flag to the agent (repeat; e.g. --agent-arg=--log-level=warn)
  --node-arg FLAG     pass a flag to the agent's node (repeat; e.g. --node-arg=--cpu-prof --node-arg=--cpu-prof-dir=/tmp/prof)
  --out DIR           where scale.json / scale.md go (default bench/results)
  --keep-work         keep the work directory (manifests, agent logs, state)
`;

function cpuModel(): string {
  const model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  return `${model}, ${cpus().length} vCPUs`;
}

function writeResults(dir: string, report: ScaleReport): void {
  report.load_average_end = loadNow();
  writeFileSync(join(dir, 'scale.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(dir, 'scale.md'), scaleMarkdown(report));
  writeBenchChart('scale', dir);
}

function loadNow(): number[] {
  return loadavg().map((x) => Math.round(x * 100) / 100);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      services: { type: 'string', default: '1000,10000' },
      quick: { type: 'boolean', default: false },
      edits: { type: 'string', default: '50' },
      burst: { type: 'string', default: '300' },
      seed: { type: 'string', default: '15' },
      'timeout-scale': { type: 'string', default: '1' },
      'shared-endpoints': { type: 'string', default: '0' },
      'agent-arg': { type: 'string', multiple: true, default: [] },
      'node-arg': { type: 'string', multiple: true, default: [] },
      out: { type: 'string', default: join(PROJECT_ROOT, 'bench', 'results') },
      'keep-work': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, BPF)');
  const counts = values.quick ? [1000] : values.services.split(',').map((s) => Number(s.trim()));
  const num = (name: string, text: string): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: ${text} is not a number`);
    return n;
  };
  for (const n of counts) if (!Number.isInteger(n) || n < 1) throw new Error(`--services: ${n} is not a positive integer`);
  const timeoutScale = num('timeout-scale', values['timeout-scale']);
  const seed = num('seed', values.seed);
  const agentArgs = values['agent-arg'];
  const shared = num('shared-endpoints', values['shared-endpoints']);
  const endpoints: EndpointSource = shared > 0 ? { kind: 'shared', size: shared } : { kind: 'distinct' };

  const report: ScaleReport = {
    runs: [], kernel: release(), cpu: cpuModel(),
    commit: execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim(),
    started_at: new Date().toISOString(), load_average_start: loadNow(), load_average_end: [],
    seed, timeout_scale: timeoutScale, agent_args: agentArgs,
  };
  // An interrupted run keeps what it measured: the partial run goes into the results, marked.
  let current: (() => ScaleRun) | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\ninterrupted (${signal}): writing what was measured; the lab is removed on exit\n`);
    if (current) {
      const partial = current();
      partial.error = `interrupted by ${signal} after ${partial.total_s} s${partial.error ? `; ${partial.error}` : ''}`;
      report.runs.push(partial);
      writeResults(values.out, report);
    }
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  mkdirSync(values.out, { recursive: true });
  for (const services of counts) {
    const log = (m: string): void => void process.stdout.write(`[${new Date().toISOString().slice(11, 19)} ${services}] ${m}\n`);
    const run = await runScale({
      services, burst: num('burst', values.burst), edits: num('edits', values.edits), editSpacingMs: 200, seed, endpoints, steadyMs: 10_000, scrapes: 3,
      timeouts: defaultTimeouts(services, timeoutScale), agentArgs, nodeArgs: values['node-arg'], keepWork: values['keep-work'], log, onRun: (snapshot) => { current = snapshot; },
    });
    current = undefined;
    report.runs.push(run);
    writeResults(values.out, report);
  }
  process.stdout.write(`\n${scaleMarkdown(report)}`);
  return 0;
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
