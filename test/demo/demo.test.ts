/**
 * `pharos demo` is the main job: it runs here end to end, exactly as a user
 * runs it, and must exit 0 only when every step succeeded.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { Lab } from '../../src/lab/netns.js';

t.test('pharos demo succeeds and cleans up after itself', { skip: privilegedUnavailable() }, async (t) => {
  const started = Date.now();
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'dist', 'cli', 'main.js'), 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const timer = setTimeout(() => child.kill('SIGINT'), 120_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  t.equal(code, 0, `demo exit status (output:\n${out})`);
  t.match(out, /default\/echo -> 198\.51\.100\.20\d/);
  t.match(out, /is-at [0-9a-f:]{17} \(the LB node's eth0\)/);
  t.match(out, /12 requests answered by: be\d x\d+, be\d x\d+/);
  t.match(out, /1 => 203\.0\.113\.2:8080 \(active\)/);
  t.match(out, /pharos_datapath_packets_total\{service="default\/echo"/);
  t.match(out, /demo complete: every step succeeded/);
  t.ok(Date.now() - started < 120_000, 'finishes in under two minutes');
  t.same(await Lab.list('pharos-demo'), [], 'no namespace left behind');
});

t.test('pharos demo --help', async (t) => {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'dist', 'cli', 'main.js'), 'demo', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  t.equal(code, 0);
  t.match(out, /--keep/);
});
