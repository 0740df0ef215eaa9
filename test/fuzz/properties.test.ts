/**
 * Property-based fuzzing of the agent's text inputs (bench/fuzz/properties.ts):
 * config/CLI/environment, IPAM annotations, manifest files. CI runs each
 * property a few hundred times with a fresh seed (PHAROS_FUZZ_SEED repeats
 * one); `npm run fuzz` runs them 20× longer. Every corpus file is also
 * replayed as it is.
 */
import t from 'tap';
import { ConfigError, resolveConfig } from '../../src/agent/config.js';
import { interpretFile } from '../../src/sources/manifests/interpret.js';
import { corpusFiles, PROPERTY_SUITES } from '../../bench/fuzz/properties.js';

const seed = Number(process.env.PHAROS_FUZZ_SEED ?? Math.floor(Math.random() * 0x7fffffff));

for (const suite of PROPERTY_SUITES) {
  t.test(`${suite.name}: properties hold for ${suite.ciRuns} runs (seed ${seed})`, async (t) => {
    const r = suite.check({ seed, numRuns: suite.ciRuns });
    t.ok(r.ok, r.ok ? 'no counterexample' : `${r.report}\n(rerun with PHAROS_FUZZ_SEED=${seed}; add the counterexample to bench/fuzz/corpus/)`);
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
      // Per-key errors name the file; cross-key checks (bounds, exclusive sources) name the flag.
      t.ok((err as Error).message.includes(f.name) || /--[a-z-]+/.test((err as Error).message), 'the message names the file or the flag');
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

// Former bugs found by fuzzing: yaml's toJS() threw ReferenceErrors (unresolved alias, alias bomb)
// out of interpretFile and failed the whole scan. Now each is a problem of its file.
for (const f of corpusFiles('manifests-bad')) {
  t.test(`${f.name}: a problem of that file, not a throw`, async (t) => {
    const out = interpretFile(f.name, f.text, undefined);
    t.equal(out.problems[0]?.severity, 'error');
    t.match(out.problems[0]?.message ?? '', /not valid YAML/);
    t.equal(out.problems[0]?.file, f.name);
  });
}


// Found by the manifests property: an anchor merged into itself (`&a` then `<<: *a`) makes a cyclic
// value, and the string-detaching walk recursed until the stack overflowed. Now a problem of its file.
t.test('a self-referencing merge alias is a problem of its file, not a stack overflow', async (t) => {
  const out = interpretFile('a.yaml', '&a \n<<: *a', undefined);
  t.same(out.records, []);
  t.equal(out.problems[0]?.severity, 'error');
  t.equal(out.problems[0]?.file, 'a.yaml');
});
