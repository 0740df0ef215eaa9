/**
 * `npm run soak`: load under faults (issue #10). The lab, the load and the
 * faults are described in bench/soak/lab.ts and bench/soak/run.ts; the
 * per-fault statistics in bench/soak/core.ts.
 *
 *   npm run soak                          # profile "full": API outage 60 s
 *   PHAROS_SOAK_PROFILE=ci npm run soak   # the short CI variant
 *   PHAROS_SOAK_ONLY=agent-sigkill,api-outage npm run soak
 *
 * Writes bench/results/soak.json ({"faults": [...], "rss_start_mb", "rss_end_mb"})
 * and bench/results/soak.md; exits 1 when a target is missed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { PROJECT_ROOT } from '../src/datapath/bpf-build.js';
import { PROFILES, type FaultKind } from './soak/core.js';
import { runSoak } from './soak/run.js';
import { writeBenchChart } from './lib/bench-charts.js';

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, BPF)');
  const profile = PROFILES[(process.env.PHAROS_SOAK_PROFILE ?? 'full') as 'ci' | 'full'];
  if (!profile) throw new Error(`unknown PHAROS_SOAK_PROFILE ${process.env.PHAROS_SOAK_PROFILE}`);
  const only = process.env.PHAROS_SOAK_ONLY ? (process.env.PHAROS_SOAK_ONLY.split(',') as FaultKind[]) : undefined;
  const teardowns: (() => unknown)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const f of teardowns.splice(0).reverse()) await f();
  };
  const onSignal = (): void => void cleanup().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const started = Date.now();
  try {
    const r = await runSoak({ teardown: (f) => teardowns.push(f) }, { prefix: 'pho', profile, ...(only ? { only } : {}) });
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim();
    const dir = join(PROJECT_ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const partial = only ? '-partial' : '';
    writeFileSync(join(dir, `soak${partial}.json`), `${JSON.stringify(r.report, null, 2)}\n`);
    const header = [
      `# Soak under faults (profile ${profile.name})`,
      '',
      `Commit ${commit}, ${new Date().toISOString()}, ${Math.round((Date.now() - started) / 1000)} s; Linux ${release()}, ${cpus().length} vCPUs, load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}.`,
      `API outage ${profile.apiOutageMs / 1000} s; load: ${profile.httpWorkers} HTTP keep-alive workers (new connection every ${profile.requestsPerConnection} requests) + ${profile.udpWorkers} UDP request/response streams, ${profile.paceMs} ms between one worker's requests; --conntrack-size ${profile.conntrackSize}.`,
      'max gap = the longest time one worker went without an answer inside the fault window (includes its pacing).',
      '',
    ].join('\n');
    writeFileSync(join(dir, `soak${partial}.md`), `${header}\n${r.markdown}`);
    writeBenchChart(`soak${partial}`, dir, 'soak');
    process.stdout.write(`${header}\n${r.markdown}\n`);
    return r.checks.every((c) => c.met) ? 0 : 1;
  } finally {
    await cleanup();
  }
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
