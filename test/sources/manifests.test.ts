import t, { type Test } from 'tap';
import { mkdtemp, mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { ManifestsSource, formatProblem, type ManifestProblem, type ScanReport } from '../../src/sources/manifests/source.js';
import type { IPPool, Service } from '../../src/model/types.js';

const POOL = (name: string, cidr: string, extra = '') => `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata:
  name: ${name}
spec:
  blocks:
    - cidr: ${cidr}
${extra}`;

const SERVICE = (name: string, port: number) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: demo
  labels:
    color: blue
spec:
  type: LoadBalancer
  ports:
    - port: ${port}
`;

const SLICE = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: demo
  labels:
    kubernetes.io/service-name: echo
addressType: IPv4
ports:
  - port: 8080
endpoints:
  - addresses: ["198.18.1.1"]
  - addresses: ["198.18.1.2"]
    conditions: { ready: false }
`;

const L2 = `{"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumL2AnnouncementPolicy",
 "metadata": {"name": "l2"}, "spec": {"loadBalancerIPs": true, "interfaces": ["^eth[0-9]+"]}}`;

async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.partial`, text);
  await rename(`${path}.partial`, path);
}

/** Polls until `check` passes; bounded in time. Returns the milliseconds it took. */
async function waitFor(what: string, check: () => boolean, timeoutMs = 3000): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
}

async function setup(t: Test) {
  const root = await mkdtemp(join(tmpdir(), 'pharos-manifests-'));
  const dir = join(root, 'manifests');
  const stateDir = join(root, 'state');
  await mkdir(dir);
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return { root, dir, stateDir };
}

function startSource(t: Test, dir: string, stateDir: string, store = new Store()) {
  // A long safety-net period so these tests see what fs.watch alone delivers.
  const source = new ManifestsSource({ directory: dir, stateDir, store, debounceMs: 50, rescanIntervalMs: 60_000 });
  const errors: ManifestProblem[] = [];
  const reports: ScanReport[] = [];
  source.on('error', (p) => errors.push(p));
  source.on('report', (r) => reports.push(r));
  t.teardown(() => source.stop());
  return { source, store, errors, reports };
}

const poolCidr = (store: Store, name: string) => {
  const p = store.snapshot().pools.get(name);
  return p && 'cidr' in p.blocks[0]! ? p.blocks[0].cidr : undefined;
};

t.test('initial scan, then add / modify / delete files while running', async (t) => {
  const { dir, stateDir } = await setup(t);
  await writeFile(join(dir, 'pools.yaml'), `${POOL('blue', '198.18.0.0/24')}---\n${POOL('red', '198.18.1.0/24')}`);
  await writeFile(join(dir, 'echo.yml'), `${SERVICE('echo', 80)}---\n${SLICE}---\n`);
  await writeFile(join(dir, 'l2.json'), L2);
  await writeFile(join(dir, 'README.md'), 'not a manifest');
  await writeFile(join(dir, '.pools.yaml.swp'), 'garbage: [');
  const { source, store } = startSource(t, dir, stateDir);
  let synced = false;
  store.on('synced', () => (synced = true));
  const report = await source.start();
  t.ok(synced && store.synced, 'store marked synced after the first scan');
  t.equal(report.files, 3);
  t.equal(report.objects, 5);
  t.same(report.errors, []);
  const snap = store.snapshot();
  t.same([...snap.pools.keys()].sort(), ['blue', 'red']);
  t.equal(snap.services.get('demo/echo')?.ports[0]?.port, 80);
  t.same(snap.endpointSlices.get('demo/echo-1')?.endpoints.map((e) => e.ready), [true, false]);
  t.equal(snap.l2Policies.get('l2')?.flavor, 'cilium');
  const created = snap.pools.get('blue')?.meta.creationTimestamp;
  t.match(created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'creationTimestamp stamped');

  // add
  await writeAtomic(join(dir, 'green.yaml'), POOL('green', '2001:db8:1::/64'));
  const addMs = await waitFor('green pool', () => store.snapshot().pools.has('green'));
  t.ok(addMs < 1000, `added file picked up in ${addMs} ms (< 1 s)`);

  // modify
  await writeAtomic(join(dir, 'echo.yml'), `${SERVICE('echo', 8443)}---\n${SLICE}`);
  const modMs = await waitFor('port 8443', () => store.snapshot().services.get('demo/echo')?.ports[0]?.port === 8443);
  t.ok(modMs < 1000, `modified file picked up in ${modMs} ms`);
  t.equal(store.snapshot().pools.get('blue')?.meta.creationTimestamp, created, 'age of untouched objects stable');

  // delete one document from a file, and a whole file
  await writeAtomic(join(dir, 'pools.yaml'), POOL('blue', '198.18.0.0/24'));
  await waitFor('red gone', () => !store.snapshot().pools.has('red'));
  await unlink(join(dir, 'l2.json'));
  const delMs = await waitFor('l2 gone', () => store.snapshot().l2Policies.size === 0);
  t.ok(delMs < 1000, `deleted file picked up in ${delMs} ms`);
  t.same([...store.snapshot().pools.keys()].sort(), ['blue', 'green']);
  t.same(source.errors, []);
});

t.test('a broken file in the middle keeps its last good objects; the rest still applies', async (t) => {
  const { dir, stateDir } = await setup(t);
  await writeFile(join(dir, 'a.yaml'), POOL('a', '198.18.0.0/24'));
  await writeFile(join(dir, 'b.yaml'), `${POOL('b1', '198.18.1.0/24')}---\n${POOL('b2', '198.18.2.0/24')}`);
  await writeFile(join(dir, 'c.yaml'), POOL('c', '198.18.3.0/24'));
  const { source, store, errors } = startSource(t, dir, stateDir);
  await source.start();

  await writeAtomic(join(dir, 'b.yaml'), `${POOL('b1', '203.0.113.0/24')}---\nkind: [unclosed\n`);
  await writeAtomic(join(dir, 'c.yaml'), POOL('c', '198.51.100.0/24'));
  await waitFor('c changed', () => poolCidr(store, 'c') === '198.51.100.0/24');
  await waitFor('error reported', () => errors.length > 0);
  t.equal(poolCidr(store, 'b1'), '198.18.1.0/24', 'b1 keeps its last good version (the broken file is not half-applied)');
  t.equal(poolCidr(store, 'b2'), '198.18.2.0/24', 'b2 kept');
  t.equal(poolCidr(store, 'a'), '198.18.0.0/24');
  t.equal(errors.length, 1);
  const e = errors[0]!;
  t.equal(e.file, 'b.yaml');
  t.equal(e.document, 1);
  t.equal(e.keptLastGood, true);
  t.match(e.message, /not valid YAML/);
  t.match(formatProblem(e), /^b\.yaml doc 1 \(line \d+\): not valid YAML: .*\(last good version kept\)$/);

  // fixed: the new content applies and the error clears
  await writeAtomic(join(dir, 'b.yaml'), POOL('b1', '203.0.113.0/24'));
  await waitFor('b fixed', () => poolCidr(store, 'b1') === '203.0.113.0/24' && !store.snapshot().pools.has('b2'));
  t.same(source.errors, []);
  t.equal(errors.length, 1, 'the error event fired once, not on every rescan');
});

t.test('one bad document among good ones', async (t) => {
  const { dir, stateDir } = await setup(t);
  const file = join(dir, 'all.yaml');
  await writeFile(file, `${POOL('blue', '198.18.0.0/24')}---\n${SERVICE('echo', 80)}---\n${POOL('red', '198.18.1.0/24')}`);
  const { source, store, errors, reports } = startSource(t, dir, stateDir);
  await source.start();

  // blue gets a bad CIDR, echo changes port, red changes block: red and echo apply, blue keeps its last good version.
  await writeAtomic(
    file,
    `${POOL('blue', '198.18.0.0/24')}    - cidr: 10.0.0/24\n---\n${SERVICE('echo', 81)}---\n${POOL('red', '198.18.9.0/24')}`,
  );
  await waitFor('red changed', () => poolCidr(store, 'red') === '198.18.9.0/24');
  t.equal(store.snapshot().services.get('demo/echo')?.ports[0]?.port, 81);
  const blue = store.snapshot().pools.get('blue');
  t.same(blue?.blocks, [{ cidr: '198.18.0.0/24' }], 'blue: last good version in force');
  await waitFor('error event', () => errors.length === 1);
  t.match(errors[0], {
    severity: 'error',
    file: 'all.yaml',
    document: 0,
    kind: 'LoadBalancerIPPool',
    name: 'blue',
    field: 'spec.blocks[1].cidr',
    message: '"10.0.0/24" is not a CIDR',
    keptLastGood: true,
  });
  t.equal(formatProblem(errors[0]!), 'all.yaml doc 0 (line 1): LoadBalancerIPPool "blue": spec.blocks[1].cidr: "10.0.0/24" is not a CIDR (last good version kept)');
  t.ok(reports.at(-1)!.errors.length === 1, 'report carries the error');

  // a brand-new object that is bad from the start has no last good version: reported, absent
  await writeAtomic(join(dir, 'new.yaml'), POOL('fresh', 'nope'));
  await waitFor('second error', () => errors.length === 2);
  t.equal(errors[1]!.keptLastGood, undefined);
  t.notOk(store.snapshot().pools.has('fresh'));

  // a renamed-to-invalid object keeps the old one found by its position in the file
  await writeAtomic(file, `${POOL('Blue', '198.18.0.0/24')}---\n${SERVICE('echo', 81)}---\n${POOL('red', '198.18.9.0/24')}`);
  await waitFor('name error', () => errors.some((e) => e.field === 'metadata.name'));
  t.ok(store.snapshot().pools.has('blue'), 'kept by document position');

  // a typo in kind is an error too (not an ignored kind), and the object stays
  await writeAtomic(file, `${POOL('blue', '198.18.0.0/24').replace('kind: LoadBalancerIPPool', 'kind: LoadBalancerIPPol')}---\n${SERVICE('echo', 81)}---\n${POOL('red', '198.18.9.0/24')}`);
  await waitFor('kind error', () => errors.some((e) => e.field === 'kind'));
  t.ok(store.snapshot().pools.has('blue'), 'kept through a kind typo');
  t.equal(errors.at(-1)!.keptLastGood, true);
});

t.test('duplicates across files: the first file by name wins, the other is reported', async (t) => {
  const { dir, stateDir } = await setup(t);
  await writeFile(join(dir, '20-b.yaml'), POOL('dup', '198.18.2.0/24'));
  await writeFile(join(dir, '10-a.yaml'), POOL('dup', '198.18.1.0/24'));
  await writeFile(
    join(dir, '30-c.yaml'),
    // the same pool as Cilium's kind is the same model object
    `apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: dup}\nspec: {blocks: [{cidr: 198.18.3.0/24}]}\n`,
  );
  const { source, store } = startSource(t, dir, stateDir);
  const report = await source.start();
  t.equal(poolCidr(store, 'dup'), '198.18.1.0/24');
  t.equal(report.errors.length, 2);
  t.same(report.errors.map((e) => e.file), ['20-b.yaml', '30-c.yaml']);
  t.match(report.errors[0]!.message, /duplicate: also defined in 10-a.yaml doc 0, which wins/);

  await unlink(join(dir, '10-a.yaml'));
  await waitFor('b wins now', () => poolCidr(store, 'dup') === '198.18.2.0/24');
  await waitFor('one duplicate left', () => source.errors.length === 1);
  t.equal(source.errors[0]!.kind, 'CiliumLoadBalancerIPPool');
});

t.test('restart keeps ages and the last good state of a file broken meanwhile', async (t) => {
  const { dir, stateDir } = await setup(t);
  await writeFile(join(dir, 'pools.yaml'), `${POOL('blue', '198.18.0.0/24')}---\n${POOL('red', '198.18.1.0/24')}`);
  let clock = new Date('2026-01-01T00:00:00Z');
  const first = new ManifestsSource({ directory: dir, stateDir, store: new Store(), now: () => clock, rescanIntervalMs: 60_000 });
  await first.start();
  await first.stop();
  const state = JSON.parse(await readFile(join(stateDir, 'manifests', '.created.json'), 'utf8')) as { creationTimestamps: Record<string, string> };
  t.same(state.creationTimestamps, {
    'LoadBalancerIPPool/blue': '2026-01-01T00:00:00Z',
    'LoadBalancerIPPool/red': '2026-01-01T00:00:00Z',
  });

  // while the agent is down, the file breaks and a new pool appears
  await writeFile(join(dir, 'pools.yaml'), `${POOL('blue', '198.18.0.0/24')}---\n\tbroken: [`);
  await writeFile(join(dir, 'more.yaml'), POOL('green', '198.18.5.0/24'));
  clock = new Date('2026-02-01T00:00:00Z');
  const store = new Store();
  const second = new ManifestsSource({ directory: dir, stateDir, store, now: () => clock, rescanIntervalMs: 60_000 });
  t.teardown(() => second.stop());
  const report = await second.start();
  const pools = store.snapshot().pools;
  t.same([...pools.keys()].sort(), ['blue', 'green', 'red'], 'last good objects of the broken file survive the restart');
  t.equal(pools.get('blue')?.meta.creationTimestamp, '2026-01-01T00:00:00Z', 'age stable across restarts');
  t.equal(pools.get('green')?.meta.creationTimestamp, '2026-02-01T00:00:00Z');
  t.equal(report.errors.length, 1);
  t.equal(report.errors[0]!.keptLastGood, true);
  const record = await readFile(join(stateDir, 'manifests', 'pools.yaml.json'), 'utf8');
  t.same((await readdir(join(stateDir, 'manifests'))).filter((n) => n.includes('.tmp-')), [], 'no temp file left');
  t.ok(record.endsWith('\n'));
  t.same((JSON.parse(record) as Array<{ identity: string }>).map((r) => r.identity), ['LoadBalancerIPPool/blue', 'LoadBalancerIPPool/red'], 'the broken file\'s record still holds its last good objects');

  // a manifest that carries its own creationTimestamp keeps it
  await writeAtomic(join(dir, 'more.yaml'), POOL('green', '198.18.5.0/24').replace('  name: green', '  name: green\n  creationTimestamp: "2020-05-05T05:05:05Z"'));
  await second.scanNow();
  t.equal(store.snapshot().pools.get('green')?.meta.creationTimestamp, '2020-05-05T05:05:05Z');
});

t.test('unreadable directory keeps state; the store is synced only after a good read', async (t) => {
  const { root, dir, stateDir } = await setup(t);
  const missing = join(root, 'not-yet');
  const store = new Store();
  const source = new ManifestsSource({ directory: missing, stateDir, store, rescanIntervalMs: 100 });
  t.teardown(() => source.stop());
  const report = await source.start();
  t.equal(report.errors.length, 1);
  t.match(report.errors[0]!.message, /cannot read directory/);
  t.notOk(store.synced, 'not synced while the directory cannot be read');

  // the directory appears: the periodic rescan finds it and sets up the watch
  await mkdir(missing);
  await writeFile(join(missing, 'p.yaml'), POOL('late', '198.18.7.0/24'));
  await waitFor('late pool', () => store.snapshot().pools.has('late'));
  t.ok(store.synced);
  await writeAtomic(join(missing, 'q.yaml'), POOL('later', '198.18.8.0/24'));
  await waitFor('later pool', () => store.snapshot().pools.has('later'));

  // the directory vanishes: nothing is torn down
  await rm(missing, { recursive: true });
  await waitFor('dir error', () => source.errors.some((e) => /cannot read directory/.test(e.message)));
  t.ok(store.snapshot().pools.has('late') && store.snapshot().pools.has('later'), 'objects stay in force');

  // re-created with other content: watched anew (new inode), and the new content applies
  await mkdir(missing);
  await writeFile(join(missing, 'r.yaml'), POOL('reborn', '198.18.9.0/24'));
  await waitFor('reborn pool', () => store.snapshot().pools.has('reborn') && store.snapshot().pools.size === 1);
  await writeAtomic(join(missing, 'r.yaml'), POOL('reborn', '198.18.19.0/24'));
  await waitFor('reborn edited', () => poolCidr(store, 'reborn') === '198.18.19.0/24');
  t.same(source.errors, []);
  void dir;
});

t.test('kinds the source never wrote are left to other writers; ignored kinds and warnings reported', async (t) => {
  const { dir, stateDir } = await setup(t);
  const store = new Store();
  store.apply({ kind: 'Node', meta: { name: 'local', labels: {}, annotations: {} }, addresses: [] });
  await writeFile(
    join(dir, 'mixed.yaml'),
    `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: cilium.io/v2alpha1\nkind: CiliumL2AnnouncementPolicy\nmetadata: {name: quiet}\nspec: {}\n---\n` +
      `apiVersion: v1\nkind: List\nitems:\n  - ${JSON.stringify(JSON.parse(JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'listed', namespace: 'demo' }, spec: { ports: [{ port: 1 }] } })))}\n`,
  );
  const { source } = startSource(t, dir, stateDir, store);
  const report = await source.start();
  t.ok(store.snapshot().nodes.has('local'), 'Node applied by someone else stays');
  t.ok(store.snapshot().services.has('demo/listed'), 'kind: List items applied');
  t.equal(report.ignored.length, 1);
  t.match(report.ignored[0]!.message, /ConfigMap/);
  t.equal(report.warnings.length, 1);
  t.match(report.warnings[0]!.message, /announces nothing/);
  t.same(report.errors, []);
  const svc: Service | undefined = store.snapshot().services.get('demo/listed');
  t.equal(svc?.type, 'ClusterIP');
  const pool: IPPool | undefined = store.snapshot().pools.get('none');
  t.equal(pool, undefined);
});

t.test('bounds: too many files and oversized files are reported, not read', async (t) => {
  const { dir, stateDir } = await setup(t);
  await writeFile(join(dir, 'a.yaml'), POOL('a', '198.18.0.0/24'));
  await writeFile(join(dir, 'b.yaml'), POOL('b', '198.18.1.0/24'));
  await writeFile(join(dir, 'c.yaml'), POOL('c', '198.18.2.0/24'));
  const store = new Store();
  const source = new ManifestsSource({ directory: dir, stateDir, store, maxFiles: 2, maxFileBytes: 400, rescanIntervalMs: 60_000 });
  t.teardown(() => source.stop());
  const report = await source.start();
  t.same([...store.snapshot().pools.keys()].sort(), ['a', 'b']);
  t.same(report.errors.map((e) => [e.file, e.message]), [['c.yaml', 'not read: more than 2 manifest files']]);

  // a file growing past the size bound keeps its last good objects
  await writeAtomic(join(dir, 'a.yaml'), `${POOL('a', '198.18.0.0/24')}# ${'x'.repeat(500)}\n`);
  const next = await source.scanNow();
  t.ok(store.snapshot().pools.has('a'));
  t.match(formatProblem(next.errors.find((e) => e.file === 'a.yaml')!), /^a\.yaml: cannot read: larger than 400 bytes \(last good version kept\)$/);
});

t.test('a state from the single-file format is taken over once, then kept per file', async (t) => {
  const { dir, stateDir } = await setup(t);
  // What an earlier version saved: ages and the last good records, while the file is broken now.
  await writeFile(join(dir, 'pools.yaml'), '\tbroken: [');
  await mkdir(stateDir, { recursive: true });
  const record = {
    identity: 'LoadBalancerIPPool/blue', document: 0, rawKind: 'LoadBalancerIPPool',
    object: { kind: 'LoadBalancerIPPool', meta: { name: 'blue', creationTimestamp: '2025-05-05T00:00:00Z' }, blocks: [{ cidr: '198.18.0.0/24' }], disabled: false, allowFirstLastIPs: false },
  };
  await writeFile(join(stateDir, 'manifests-state.json'), JSON.stringify({
    version: 1, directory: dir, creationTimestamps: { 'LoadBalancerIPPool/blue': '2025-05-05T00:00:00Z' }, files: { 'pools.yaml': [record] },
  }));
  const store = new Store();
  const source = new ManifestsSource({ directory: dir, stateDir, store, rescanIntervalMs: 60_000 });
  t.teardown(() => source.stop());
  await source.start();
  t.equal(store.snapshot().pools.get('blue')?.meta.creationTimestamp, '2025-05-05T00:00:00Z', 'the broken file keeps its last good pool from the old state');
  await t.rejects(readFile(join(stateDir, 'manifests-state.json'), 'utf8'), 'the old file is removed once the new state is written');
  const kept = JSON.parse(await readFile(join(stateDir, 'manifests', 'pools.yaml.json'), 'utf8')) as Array<{ identity: string }>;
  t.same(kept.map((r) => r.identity), ['LoadBalancerIPPool/blue']);
});

t.test('a pool added over a serving one conflicts, whatever creationTimestamp its file gives: no address moves (issue 17)', async (t) => {
  const { Ipam } = await import('../../src/ipam/allocator.js');
  const { dir, stateDir } = await setup(t);
  const svc = (name: string): string => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`;
  await writeFile(join(dir, 'serving.yaml'), `${POOL('serving', '198.18.0.0/28')}---\n${svc('web-a')}---\n${svc('web-b')}`);
  let clock = new Date('2026-03-01T00:00:00Z');
  const store = new Store();
  const source = new ManifestsSource({ directory: dir, stateDir, store, now: () => clock, rescanIntervalMs: 60_000 });
  t.teardown(() => source.stop());
  await source.start();
  const ipam = new Ipam({ pharosIsDefaultClass: true });
  const load = (): Map<string, string[]> => {
    const snap = store.snapshot();
    ipam.loadAll(snap.pools.values(), snap.services.values(), ipam.exportState());
    return new Map(['default/web-a', 'default/web-b'].map((k) => [k, (ipam.outcome(k) as { ingress?: string[] }).ingress ?? []]));
  };
  const before = load();
  t.same([...before.values()], [['198.18.0.0'], ['198.18.0.1']]);

  // A file that claims an age far older than the serving pool.
  clock = new Date('2026-03-02T00:00:00Z');
  await writeAtomic(join(dir, 'intruder.yaml'), POOL('intruder', '198.18.0.8/29').replace('  name: intruder', '  name: intruder\n  creationTimestamp: "2020-01-01T00:00:00Z"'));
  await source.scanNow();
  const pools = store.snapshot().pools;
  t.equal(pools.get('intruder')?.meta.creationTimestamp, '2020-01-01T00:00:00Z', 'its creationTimestamp is kept for display');
  t.equal(pools.get('intruder')?.meta.firstSeen, '2026-03-02T00:00:00Z', 'first seen now');
  const after = load();
  t.same(after, before, 'web-a and web-b keep their addresses');
  t.equal(ipam.poolStatus('intruder')!.conflicting, true, 'the pool added later is the conflicting one');
  t.equal(ipam.poolStatus('serving')!.conflicting, false);
});
