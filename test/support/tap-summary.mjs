#!/usr/bin/env node
// Reads a TAP 14 stream (tap --reporter=tap) on stdin, echoes it, and ends
// with `N passed, N failed, N skipped`, counting each test file's top-level
// subtests (`t.test(...)`) — the unit a reader of a test file calls "a test".
// Every stream on stdin counts: `npm test` (run-tests.mjs) prints its two
// phases' tap runs one after the other.
// A file that fails before or outside any subtest counts as one failure.
import { createInterface } from 'node:readline';

let passed = 0, failed = 0, skipped = 0;
let fileCountedFailure = false;
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  process.stdout.write(line + '\n');
  // depth 1: four spaces, a result line of a top-level subtest inside a file
  let m = /^ {4}(not ok|ok) \d+( - .*)?$/.exec(line);
  if (m) {
    const directive = / # (SKIP|TODO)\b/i.exec(line);
    if (directive) skipped++;
    else if (m[1] === 'ok') passed++;
    else { failed++; fileCountedFailure = true; }
    continue;
  }
  // depth 0: the file's own result
  m = /^(not ok|ok) \d+( - .*)?$/.exec(line);
  if (m) {
    if (m[1] === 'not ok' && !fileCountedFailure && !/ # (SKIP|TODO)\b/i.test(line)) failed++;
    fileCountedFailure = false;
  }
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed > 0 ? 1 : 0;
