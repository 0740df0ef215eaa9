/**
 * XDP fuzz, CI size: ~50,000 random and mutated frames (plus the regression
 * rows of regressions/xdp.json) through BPF_PROG_TEST_RUN against the real
 * pharos program with frontends, backends, SNAT and responder entries
 * programmed, each judged by bench/fuzz/xdp-oracle.ts. A random seed per run
 * (PHAROS_FUZZ_SEED to repeat one); a failure prints the seed, the frame's
 * index, how it was made and its hex. The long run is `npm run fuzz`.
 */
import t from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { withLab } from '../support/lab.js';
import { loadRegressions, runXdpFuzz, type FuzzRunResult } from '../../bench/fuzz/xdp-run.js';

const skip = privilegedUnavailable();
const FRAMES = Number(process.env.PHAROS_FUZZ_FRAMES ?? 50_000);
const seed = Number(process.env.PHAROS_FUZZ_SEED ?? Math.floor(Math.random() * 0xffffffff));
const regressions = loadRegressions();
let run: FuzzRunResult | undefined;

t.before(async () => {
  if (skip) return;
  const lab = await withLab(t, 'phf');
  run = await runXdpFuzz(lab, { seed, frames: FRAMES, pinDir: '/run/pharos/bpffs/phf-xdp-ci', regressions, timeoutMs: 120_000 });
  t.comment(`xdp fuzz seed ${seed}: ${run.summary.frames} frames in ${run.summary.seconds.toFixed(1)} s (${run.summary.framesPerSecond}/s) ${JSON.stringify(run.summary.verdicts)}`);
});

t.test(`${FRAMES} fuzzed frames: every verdict allowed, outputs well-formed, counters consistent (seed ${seed})`, { skip }, async (t) => {
  const r = run!;
  t.ok(r.summary.frames >= FRAMES, `${r.summary.frames} frames run`);
  t.equal(r.summary.refused, 0, 'the kernel ran every frame');
  t.notOk(r.summary.verdicts.XDP_ABORTED, 'never XDP_ABORTED');
  t.same(r.summary.aggregateProblems, [], 'per-reason counters add up to the verdicts');
  const shown = r.failures.slice(0, 10).map((f) => `#${f.index} [${f.how}] ingress ${f.ingress} verdict ${f.verdict}\n  ${f.problems.join('\n  ')}\n  in:  ${f.hex}\n  out: ${f.outHex}`);
  t.equal(r.summary.failures, 0, `no bad frame (seed ${seed}; rerun with PHAROS_FUZZ_SEED=${seed})${shown.length ? `\n${shown.join('\n')}` : ''}`);
});

t.test('the frames reach the interesting paths', { skip }, async (t) => {
  const a = run!.summary.accepted;
  const c = run!.summary.counters;
  // Each path must be hit often enough that a bug in it would show up.
  t.ok(a['nat-forward'] > FRAMES / 50, `forward NAT outputs: ${a['nat-forward']}`);
  t.ok(a['nat-reverse'] > FRAMES / 200, `reverse NAT outputs: ${a['nat-reverse']}`);
  t.ok(a['arp-reply'] > FRAMES / 500, `ARP replies: ${a['arp-reply']}`);
  t.ok(a['na-reply'] > FRAMES / 500, `NA replies: ${a['na-reply']}`);
  for (const reason of ['malformed_l2', 'malformed_l3', 'malformed_l4', 'fragment', 'ipv6_ext_limit', 'no_backend', 'fib_fail', 'no_neigh', 'local_backend', 'fwd_tx', 'fwd_redirect', 'ct_create', 'ct_hit', 'rev_nat', 'arp_ignored'] as const) {
    t.ok(c[reason] > 0, `${reason}: ${c[reason]}`);
  }
});

for (const row of regressions) {
  if (row.open) {
    // An open, reported bug: pinned as it is; when this fails the bug is fixed — delete `open` from the row and its KNOWN_ISSUES line.
    t.test(`known bug (reported): ${row.name}`, { skip }, async (t) => {
      const r = run!.regressions.find((x) => x.name === row.name);
      t.ok(r, 'row was run');
      t.ok(r?.problems.length, `still wrong: ${r?.problems.join('; ')} — ${row.open}`);
    });
    continue;
  }
  t.test(`regression: ${row.name}`, { skip }, async (t) => {
    const r = run!.regressions.find((x) => x.name === row.name);
    t.ok(r, 'row was run');
    t.same(r?.problems ?? ['not run'], [], `frame ${row.hex} on ${row.ingress} (found by ${row.found})`);
  });
}
