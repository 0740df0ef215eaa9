/**
 * Property-based fuzzing of the agent's text inputs (test/fuzz/properties.ts):
 * config/CLI/environment, IPAM annotations, manifest files. CI runs each
 * property a few hundred times with a fresh seed (PHAROS_FUZZ_SEED repeats
 * one); `npm run fuzz` runs them 20× longer. Every corpus file is also
 * replayed as it is.
 */
import t from 'tap';
import { ConfigError, resolveConfig } from '../../src/agent/config.js';
import { interpretFile } from '../../src/sources/manifests/interpret.js';
import { corpusFiles, PROPERTY_SUITES } from './properties.js';

const seed = Number(process.env.PHAROS_FUZZ_SEED ?? Math.floor(Math.random() * 0x7fffffff));

for (const suite of PROPERTY_SUITES) {
  t.test(`${suite.name}: properties hold for ${suite.ciRuns} runs (seed ${seed})`, async (t) => {
    const r = suite.check({ seed, numRuns: suite.ciRuns });
    t.ok(r.ok, r.ok ? 'no counterexample' : `${r.report}\n(rerun with PHAROS_FUZZ_SEED=${seed}; add the counterexample to test/fuzz/corpus/)`);
  });
}

t.test('config corpus: every file resolves or fails with a ConfigError that names a key', async (t) => {
  for (const f of corpusFiles('config')) {
    try {
      // In a pod (KUBERNETES_SERVICE_HOST), so a file without a source is complete.
      resolveConfig({ argv: ['--config', f.name], env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, readFile: () => f.text, hostname: 'node-a' });
      t.pass(`${f.name}: accepted`);
    } catch (err) {
      t.ok(err instanceof ConfigError, `${f.name}: ${(err as Error).message}`);
      t.match((err as Error).message, f.name, 'the message names the file');
    }
  }
});

t.test('manifest corpus: every file reads without a throw and without errors (they are the shipped examples)', async (t) => {
  for (const f of corpusFiles('manifests')) {
    const out = interpretFile(f.name, f.text, undefined);
    t.same(out.problems.filter((p) => p.severity === 'error'), [], f.name);
    t.ok(out.records.length > 0, `${f.name}: ${out.records.length} objects`);
  }
});

// Open bugs (reported): src/sources/manifests/interpret.ts lets yaml toJS() ReferenceErrors escape.
// Pinned as they are; when one fails, the bug is fixed: move the file to corpus/manifests-bad/ and assert a problem instead.
for (const f of corpusFiles('manifests-open')) {
  t.test(`known bug (reported): ${f.name} escapes interpretFile as a throw`, async (t) => {
    t.throws(() => interpretFile(f.name, f.text, undefined), ReferenceError, 'still thrown; if this fails it was fixed');
  });
}
