/**
 * `npm run fuzz`: the long fuzz runs of issue 10.
 *
 *   npm run fuzz                      # 1,000,000 XDP frames + the property fuzzers at 20× their CI runs
 *   npm run fuzz -- --seed 1234       # repeat a run
 *   npm run fuzz -- --frames 200000 --runs 5
 *
 * XDP: random and mutated frames through BPF_PROG_TEST_RUN against the real
 * program in the fixture world (bench/fuzz/xdp-run.ts), every frame judged by
 * bench/fuzz/xdp-oracle.ts. Properties: bench/fuzz/properties.ts (config/CLI,
 * annotations, manifests, BGP codec) with fast-check, seeded.
 * A failure prints the seed and the frame hex (or the fast-check
 * counterexample); add it to bench/fuzz/regressions/ (xdp.json) or
 * bench/fuzz/corpus/. Writes bench/results/fuzz.json.
 * Needs root (network namespace, BPF); exits 1 on any failure.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Lab } from '../src/lab/netns.js';
import { asRegression, loadRegressions, runXdpFuzz } from './fuzz/xdp-run.js';
import { PROPERTY_SUITES } from './fuzz/properties.js';
import { writeBenchChart } from './lib/bench-charts.js';

const { values } = parseArgs({
  options: {
    frames: { type: 'string', default: '1000000' },
    seed: { type: 'string' },
    runs: { type: 'string', default: '20' },
    'skip-xdp': { type: 'boolean', default: false },
  },
});
const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : Math.floor(Math.random() * 0xffffffff);
const frames = Number(values.frames);
const runsFactor = Number(values.runs);
const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results', 'fuzz.json');

async function xdp(): Promise<Record<string, unknown>> {
  await Lab.cleanup('phfz');
  const lab = new Lab('phfz');
  try {
    console.log(`xdp: ${frames} frames, seed ${seed}`);
    const r = await runXdpFuzz(lab, {
      seed, frames, pinDir: '/run/pharos/bpffs/phf-xdp-long', regressions: loadRegressions(), timeoutMs: 60 * 60_000, maxFailures: 200,
      onProgress: (p) => console.log(`  ${p.frames} frames, ${(p.frames / p.seconds).toFixed(0)}/s`),
      onFailure: (f) => console.log(`  FAIL #${f.index} [${f.how}] ingress ${f.ingress} verdict ${f.verdict}: ${f.problems.join('; ')}\n    in  ${f.hex}\n    out ${f.outHex}\n    row ${JSON.stringify(asRegression(f, seed))}`),
    });
    const s = r.summary;
    console.log(`xdp: ${s.frames} frames in ${s.seconds.toFixed(1)} s = ${s.framesPerSecond} frames/s; ${s.failures} failures; verdicts ${JSON.stringify(s.verdicts)}`);
    console.log(`     accepted ${JSON.stringify(s.accepted)}; known open issues ${JSON.stringify(s.known)}`);
    if (s.aggregateProblems.length) console.log(`     counters: ${s.aggregateProblems.join('; ')}`);
    return { seed, frames: s.frames, seconds: Number(s.seconds.toFixed(1)), frames_per_second: s.framesPerSecond, failures: s.failures, verdicts: s.verdicts, accepted: s.accepted, known_open_issues: s.known, counters: s.counters };
  } finally {
    await lab.teardown();
  }
}

async function main(): Promise<void> {
  const out: Record<string, unknown> = { date: new Date().toISOString() };
  let failed = false;
  if (!values['skip-xdp']) {
    const x = await xdp();
    out.xdp = x;
    failed ||= (x.failures as number) > 0;
  }
  const props: Record<string, unknown> = {};
  for (const suite of PROPERTY_SUITES) {
    const t0 = Date.now();
    const r = suite.check({ seed, numRuns: suite.ciRuns * runsFactor });
    props[suite.name] = { runs: suite.ciRuns * runsFactor, ms: Date.now() - t0, ok: r.ok };
    console.log(`${suite.name}: ${suite.ciRuns * runsFactor} runs in ${Date.now() - t0} ms ${r.ok ? 'ok' : `FAILED\n${r.report}`}`);
    failed ||= !r.ok;
  }
  out.properties = props;
  mkdirSync(dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify(out, null, 2)}\n`);
  writeBenchChart('fuzz', dirname(RESULTS));
  console.log(`wrote ${RESULTS}${failed ? '; FAILURES (seed ' + seed + ')' : ''}`);
  process.exitCode = failed ? 1 : 0;
}

await main();
