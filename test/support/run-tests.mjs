#!/usr/bin/env node
// `npm test`: every test file (tap's include, test/**/*.test.ts) in two
// phases, one tap run each, their TAP streams one after the other on stdout:
//   1. the pure-logic files of test-phases.mjs, PARALLEL_JOBS at a time;
//   2. every other file (labs, privileges, timing), one at a time.
// Arguments go to both runs (e.g. --reporter=tap for .ci/run, whose
// tap-summary.mjs counts the subtests of both). Given test files, it runs
// just those, in one tap run, as `npx tap FILES` would.
// PHAROS_TEST_PHASE=1 or =2 runs that phase alone (to time or debug it).
// Exits non-zero when either phase fails; a phase whose tap fails without a
// failing file (a crash, a timeout of tap itself) adds a `not ok` line of
// its own so the summary counts it.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PARALLEL_FILES, PARALLEL_JOBS } from './test-phases.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TAP = join(ROOT, 'node_modules', '.bin', 'tap');

/** Every test file, as tap's include names them (relative, sorted). */
export function allTestFiles(root = ROOT) {
  return readdirSync(join(root, 'test'), { recursive: true })
    .map((p) => join('test', String(p)))
    .filter((p) => p.endsWith('.test.ts'))
    .sort();
}

/** The two phases; throws when a listed parallel file does not exist (a rename must update the list). */
export function phases(files, parallelList = PARALLEL_FILES) {
  const all = new Set(files);
  const missing = parallelList.filter((f) => !all.has(f));
  if (missing.length) throw new Error(`test/support/test-phases.mjs lists files that do not exist: ${missing.join(', ')}`);
  const parallel = new Set(parallelList);
  return { parallel: files.filter((f) => parallel.has(f)), serial: files.filter((f) => !parallel.has(f)) };
}

/** One tap run; resolves to whether it passed. Its output goes to stdout line by line. */
function runTap(name, args) {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(TAP, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let failingFile = false;
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (/^not ok \d+/.test(line)) failingFile = true;
      process.stdout.write(`${line}\n`);
    });
    child.on('close', (code, signal) => {
      const seconds = ((performance.now() - started) / 1000).toFixed(0);
      if (code !== 0 && !failingFile) process.stdout.write(`not ok 0 - ${name}: tap exited with ${signal ?? `code ${code}`} and no failing test file\n`);
      process.stdout.write(`# ${name}: ${seconds} s\n`);
      resolve(code === 0);
    });
  });
}

async function main(argv) {
  const named = argv.filter((a) => !a.startsWith('-') && existsSync(join(ROOT, a)));
  if (named.length) return (await runTap('the files named', argv)) ? 0 : 1;
  const { parallel, serial } = phases(allTestFiles());
  const only = process.env.PHAROS_TEST_PHASE;
  let ok = true;
  if (parallel.length && only !== '2') ok = await runTap(`phase 1, ${parallel.length} pure-logic files, ${PARALLEL_JOBS} at a time`, [...argv, `--jobs=${PARALLEL_JOBS}`, ...parallel]) && ok;
  if (serial.length && only !== '1') ok = await runTap(`phase 2, ${serial.length} lab and timing files, one at a time`, [...argv, '--jobs=1', ...serial]) && ok;
  return ok ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
