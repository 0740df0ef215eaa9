/**
 * The total-bytes bound of a manifests directory (--manifests-max-bytes) and
 * the per-file bound (--manifests-max-file-bytes): a file past either is
 * refused unread with an error naming it, what it last put in force stays,
 * and a `refused` event (pharos_manifests_refused_total in the agent) fires
 * once per file and size, not on every rescan. Then the same through a real
 * agent: the metric, `/v1/state` problems, and the service still served.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestsSource, formatProblem, type Refusal } from '../../src/sources/manifests/source.js';
import { Store } from '../../src/store/store.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { withLab } from '../support/lab.js';
import { waitFor } from '../support/wait.js';
import { parseExposition } from '../support/prom.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';

const POOL = (name: string, cidr: string, pad = 0): string =>
  `apiVersion: lb.pharos.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: ${name}}\nspec: {blocks: [{cidr: ${cidr}}]}\n${pad > 0 ? `# ${'x'.repeat(pad)}\n` : ''}`;

function dirs(t: { teardown(fn: () => unknown): void }): { dir: string; state: string } {
  const dir = mkdtempSync(join(tmpdir(), 'phom-'));
  const state = mkdtempSync(join(tmpdir(), 'phom-state-'));
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }); rmSync(state, { recursive: true, force: true }); });
  return { dir, state };
}

function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp~`, text);
  renameSync(`${path}.tmp~`, path);
}

t.test('a file that would take the directory past its total is refused by name; the last good version stays', async (t) => {
  const { dir, state } = dirs(t);
  writeFileSync(join(dir, 'a.yaml'), POOL('a', '198.18.0.0/24'));
  writeFileSync(join(dir, 'b.yaml'), POOL('b', '198.18.1.0/24'));
  const aBytes = POOL('a', '198.18.0.0/24').length;
  const bBytes = POOL('b', '198.18.1.0/24').length;
  const limit = aBytes + bBytes + 100;
  const store = new Store();
  const source = new ManifestsSource({ directory: dir, stateDir: state, store, maxTotalBytes: limit, rescanIntervalMs: 60_000 });
  const refused: Refusal[] = [];
  source.on('refused', (r) => refused.push(r));
  t.teardown(() => source.stop());
  let report = await source.start();
  t.same(report.errors, [], 'both files fit');
  t.same([...store.snapshot().pools.keys()].sort(), ['a', 'b']);

  // b grows past what is left: refused, its pool stays as it was
  writeAtomic(join(dir, 'b.yaml'), POOL('b', '198.18.9.0/24', 200));
  report = await source.scanNow();
  const err = report.errors.find((e) => e.file === 'b.yaml');
  t.ok(err, 'b.yaml named in an error');
  t.match(formatProblem(err!), new RegExp(`^b\\.yaml: cannot read: \\d+ bytes would take the directory past its ${limit}-byte total .*${aBytes} bytes in the files before it.*\\(last good version kept\\)$`));
  t.same(store.snapshot().pools.get('b')?.blocks, [{ cidr: '198.18.1.0/24' }], 'b keeps its last good blocks');
  t.ok(store.snapshot().pools.has('a'), 'a untouched');
  t.same(refused.map((r) => [r.file, r.reason, r.limit]), [['b.yaml', 'total_too_large', limit]]);

  // rescans of the same refused file do not count again
  await source.scanNow();
  await source.scanNow();
  t.equal(refused.length, 1, 'one refusal event for one refused file and size');

  // a new file sorted first takes the budget; b stays refused, c is read
  writeFileSync(join(dir, 'c.yaml'), POOL('c', '198.18.2.0/24'));
  report = await source.scanNow();
  t.ok(store.snapshot().pools.has('c'), 'c.yaml (fits) applied');
  t.ok(report.errors.some((e) => e.file === 'b.yaml'), 'b.yaml still refused');

  // back under the bound: b's new content applies, the error clears
  rmSync(join(dir, 'c.yaml'));
  writeAtomic(join(dir, 'b.yaml'), POOL('b', '198.18.9.0/24'));
  report = await source.scanNow();
  t.same(report.errors, []);
  t.same(store.snapshot().pools.get('b')?.blocks, [{ cidr: '198.18.9.0/24' }], 'b applied once it fits');
});

t.test('per-file bound: refused by name, counted once', async (t) => {
  const { dir, state } = dirs(t);
  writeFileSync(join(dir, 'a.yaml'), POOL('a', '198.18.0.0/24'));
  const store = new Store();
  const source = new ManifestsSource({ directory: dir, stateDir: state, store, maxFileBytes: 300, rescanIntervalMs: 60_000 });
  const refused: Refusal[] = [];
  source.on('refused', (r) => refused.push(r));
  t.teardown(() => source.stop());
  await source.start();
  writeAtomic(join(dir, 'a.yaml'), POOL('a', '198.18.5.0/24', 400));
  const report = await source.scanNow();
  await source.scanNow();
  t.match(formatProblem(report.errors[0]!), /^a\.yaml: cannot read: larger than 300 bytes \(last good version kept\)$/);
  t.same(store.snapshot().pools.get('a')?.blocks, [{ cidr: '198.18.0.0/24' }]);
  t.same(refused.map((r) => [r.file, r.reason]), [['a.yaml', 'file_too_large']]);
});

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const PIN_DIR = '/run/pharos/bpffs/phom-lb';

t.test('agent: --manifests-max-bytes refuses the file, counts it, keeps serving the last good state', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'phom');
  const { dir, state } = dirs(t);
  removePins(PIN_DIR);
  t.teardown(() => removePins(PIN_DIR));
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addNamespace('peer');
  await lab.addLink({ ns: 'lb', ifname: 'eth0', addrs: ['198.18.0.2/24'] }, { ns: 'peer', ifname: 'eth0', addrs: ['198.18.0.1/24'] });
  const service = `apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {type: LoadBalancer, ports: [{name: http, port: 80}]}\n`;
  writeFileSync(join(dir, 'a-pool.yaml'), POOL('pool', '198.18.1.0/28'));
  writeFileSync(join(dir, 'b-service.yaml'), service);
  const agent = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'lb-1', '--interfaces', 'eth0',
    '--state-dir', state, '--pin-dir', PIN_DIR, '--http', '127.0.0.1:9643', '--manifests-max-bytes', '2000']);
  let log = '';
  agent.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  agent.stdout?.on('data', (d: Buffer) => { log += d.toString(); });
  t.teardown(() => { if (agent.exitCode === null) agent.kill('SIGKILL'); });
  const get = async (path: string): Promise<string | undefined> => {
    const r = await lab.exec('lb', ['curl', '-sf', `http://127.0.0.1:9643${path}`], { allowFail: true });
    return r.code === 0 ? r.stdout : undefined;
  };
  const address = async (): Promise<string | undefined> => {
    const s = JSON.parse((await get('/v1/state')) ?? '{}');
    return JSON.stringify(s).match(/198\.18\.1\.\d+/)?.[0];
  };
  const vip = await waitFor('the service address', 30_000, address).catch((e: Error) => { throw new Error(`${e.message}\n${log}`); });
  const refusedCount = async (): Promise<number> => {
    const fam = parseExposition((await get('/metrics')) ?? '').get('pharos_manifests_refused_total');
    return fam?.samples.find((s) => s.labels.reason === 'total_too_large')?.value ?? 0;
  };
  t.equal(await refusedCount(), 0, 'nothing refused yet');

  // The pool file grows past the directory total and changes its block.
  writeAtomic(join(dir, 'a-pool.yaml'), POOL('pool', '198.18.7.0/28', 2500));
  await waitFor('the refusal counted', 15_000, async () => ((await refusedCount()) === 1 ? true : undefined)).catch((e: Error) => { throw new Error(`${e.message}\n${log}`); });
  const state1 = (await get('/v1/state'))!;
  t.match(state1, /a-pool\.yaml/, '/v1/state names the refused file');
  t.match(log, /manifest file refused unread.*a-pool\.yaml/s, 'the log names the file');
  t.equal(await address(), vip, 'the service keeps its address from the last good pool');
  t.notMatch(state1, /198\.18\.7\./, 'the refused content is not in force');
  await new Promise((r) => setTimeout(r, 2500)); // a periodic rescan or two
  t.equal(await refusedCount(), 1, 'counted once, not on every rescan');
});
