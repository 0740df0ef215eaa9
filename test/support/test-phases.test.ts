/**
 * The split `npm test` runs (run-tests.mjs, test-phases.mjs) cannot go wrong
 * silently: every file of the parallel list exists and uses no lab, no
 * privilege and no namespace; every other file runs serially (a new one
 * too); no two test, bench or lab files share a network namespace prefix (the
 * lab removes leftovers of its prefix when it starts, so two files with one
 * prefix remove each other's namespaces when they run at once, in CI or
 * beside it); and tap-summary.mjs counts both phases' streams.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
// @ts-expect-error: plain ESM without types, run by node directly
import { PARALLEL_FILES, SERIAL_ONLY } from './test-phases.mjs';
// @ts-expect-error: plain ESM without types, run by node directly
import { allTestFiles, phases } from './run-tests.mjs';

const parallelList = PARALLEL_FILES as string[];
const serialOnly = SERIAL_ONLY as RegExp[];
const source = (file: string): string => readFileSync(join(PROJECT_ROOT, file), 'utf8');

t.test('the parallel list: existing files, none using the lab, privileges or namespaces', async (t) => {
  const files = (allTestFiles as (root?: string) => string[])(PROJECT_ROOT);
  t.ok(files.length > 100, `${files.length} test files found`);
  t.same(parallelList.filter((f) => !files.includes(f)), [], 'every listed file exists');
  t.equal(new Set(parallelList).size, parallelList.length, 'no file listed twice');
  for (const f of parallelList) {
    const hits = serialOnly.filter((re) => re.test(source(f))).map((re) => re.source);
    t.same(hits, [], `${f} is pure logic`);
  }
  const { parallel, serial } = (phases as (f: string[]) => { parallel: string[]; serial: string[] })(files);
  t.equal(parallel.length + serial.length, files.length, 'every file in exactly one phase');
  // A file that asks for privileges is serial, whatever the list says (it can only say so by the check above).
  for (const f of files.filter((x) => serialOnly[0]!.test(source(x)))) t.ok(serial.includes(f), `${f} serial`);
  t.throws(() => (phases as (f: string[], l: string[]) => unknown)(files, ['test/gone.test.ts']), /lists files that do not exist: test\/gone\.test\.ts/);
});

/** Literal namespace prefixes a file hands to the lab (withLab, Lab.create, new Lab, `prefix: 'x'`, `PREFIX = 'x'`). */
function prefixesOf(text: string): string[] {
  const out = new Set<string>();
  const patterns = [
    /\bwithLab\(\s*\w+,\s*(?:[^'"`,)]*\?\s*)?['"`]([a-z][a-z0-9-]*)['"`]/g,
    /\b\w*Lab\.create\(\s*(?:\w+,\s*)?(?:[^'"`,)]*\?\?\s*)?['"`]([a-z][a-z0-9-]*)['"`]/g,
    /\bnew Lab\(\s*['"`]([a-z][a-z0-9-]*)['"`]/g,
    /\bprefix:\s*(?:[^'"`,}]*\?\?\s*)?['"`]([a-z][a-z0-9-]*)['"`]/g,
    /\b[A-Z_]*PREFIX\s*=\s*(?:[^'"`;]*\?\?\s*)?['"`]([a-z][a-z0-9-]*)['"`]/g,
  ];
  // Comment lines (a doc example) hand nothing to the lab.
  const code = text.split('\n').filter((l) => !/^\s*(\*|\/\/|\/\*)/.test(l)).join('\n');
  for (const re of patterns) for (const m of code.matchAll(re)) out.add(m[1]!);
  return [...out];
}

t.test('no two test, bench or lab files share a network namespace prefix', async (t) => {
  const files = [...(allTestFiles as (root?: string) => string[])(PROJECT_ROOT), ...readdirSync(join(PROJECT_ROOT, 'test'), { recursive: true })
    .map((p) => join('test', String(p))).filter((p) => /\.ts$/.test(p) && !p.endsWith('.test.ts')),
  ...['bench', join('src', 'lab')].flatMap((d) => readdirSync(join(PROJECT_ROOT, d), { recursive: true }).map((p) => join(d, String(p))).filter((p) => p.endsWith('.ts')))];
  const owners = new Map<string, string[]>();
  for (const f of files) for (const p of prefixesOf(source(f))) owners.set(p, [...(owners.get(p) ?? []), f]);
  t.ok(owners.size >= 30, `${owners.size} prefixes found`);
  const shared = [...owners].filter(([, fs]) => fs.length > 1).map(([p, fs]) => `${p}: ${fs.join(', ')}`);
  t.same(shared, [], 'each prefix in one file');
  // Built from parts: this file itself must not read as a lab test.
  const sample = ["with", "Lab(t, 'phx'); ", 'Lab', ".create(t, process.env.X ?? 'phy'); prefix: 'phz', new ", "Lab('phw'); L2La", "b.create(t, 'phv', 3)"].join('');
  t.same(prefixesOf(sample).sort(), ['phv', 'phw', 'phx', 'phy', 'phz'], 'the scan reads each form');
});

t.test('tap-summary counts the subtests of both phases\' streams', async (t) => {
  const stream = (file: string, results: string[]): string => ['TAP version 14', `# Subtest: ${file}`, ...results.map((r, i) => `    ${r.replace(/ #.*/, '')} ${i + 1} - case ${i + 1}${r.replace(/^[^#]*/, ' ')}`.trimEnd()),
    `    1..${results.length}`, `${results.includes('not ok') ? 'not ok' : 'ok'} 1 - ${file}`, '1..1'].join('\n');
  const input = `${stream('test/a.test.ts', ['ok', 'ok'])}\n# phase 1: 1 s\n${stream('test/b.test.ts', ['ok', 'not ok', 'ok # SKIP no root'])}\nnot ok 0 - phase 2: tap exited with SIGKILL and no failing test file\n`;
  let out = '';
  try {
    out = execFileSync(process.execPath, [join(PROJECT_ROOT, 'test', 'support', 'tap-summary.mjs')], { input, encoding: 'utf8' });
  } catch (e) {
    out = (e as { stdout: string }).stdout;
  }
  t.equal(out.trim().split('\n').at(-1), '3 passed, 2 failed, 1 skipped');
});
