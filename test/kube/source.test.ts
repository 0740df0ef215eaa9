// The Kubernetes source (informers → parse → Store) and the KubeWriter,
// against the API emulator: normal flow, 410 relists, dropped and silent
// watches, 5xx, a full outage, status conflicts, Lease semantics, rate limits.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startApiServer, type ApiServer } from '../../src/lab/apiserver/server.js';
import { kubeConfigFrom, KubeConfigError } from '../../src/sources/kube/kubeconfig.js';
import { TokenBucket } from '../../src/sinks/kube/rate-limit.js';
import { KubeSource, type ParseFailure } from '../../src/sources/kube/source.js';
import { KubeWriter, WriteConflictError } from '../../src/sinks/kube/writer.js';
import { Store } from '../../src/store/store.js';
import { eventually, kubeConfigFor } from './kube-support.js';
import { lbServiceObject } from '../../src/lab/manifests.js';

const tuning = {
  initialBackoffMs: 50,
  maxBackoffMs: 400,
  listTimeoutMs: 2000,
  watchHeadersTimeoutMs: 800,
  watchIdleTimeoutMs: 1500,
  watchTimeoutSeconds: 60,
};

const service = (name: string) => lbServiceObject({ name });

const pool = (name: string, cidr: string) => ({
  apiVersion: 'lb.pharos.io/v1alpha1',
  kind: 'LoadBalancerIPPool',
  metadata: { name },
  spec: { blocks: [{ cidr }] },
});

function seed(api: ApiServer): void {
  api.objects.put('services', service('echo'));
  api.objects.put('endpointslices', {
    metadata: { name: 'echo-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'echo' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['198.18.2.10'], conditions: { ready: true }, nodeName: 'node-a' }],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });
  api.objects.put('nodes', { metadata: { name: 'node-a', labels: { zone: 'a' } }, status: { addresses: [{ type: 'InternalIP', address: '198.18.1.1' }] } });
  api.objects.put('leases', { metadata: { name: 'pharos-ipam', namespace: 'pharos-system' }, spec: { holderIdentity: 'node-a' } });
  api.objects.put('leases', { metadata: { name: 'elsewhere', namespace: 'default' }, spec: { holderIdentity: 'x' } });
  api.objects.put('loadbalancerippools', pool('blue', '198.18.100.0/24'));
  api.objects.put('l2announcementpolicies', { metadata: { name: 'l2' }, spec: { loadBalancerIPs: true } });
}

async function setup(t: { teardown(fn: () => unknown): void }, opts: { cilium?: boolean; port?: number } = {}) {
  const api = await startApiServer({ cilium: opts.cilium, port: opts.port });
  seed(api);
  const store = new Store();
  const source = new KubeSource({ kc: kubeConfigFor(api.url), store, tuning, crdProbeIntervalMs: 300 });
  const failures: string[] = [];
  const parseErrors: ParseFailure[] = [];
  source.on('failure', (f) => failures.push(`${f.kind} ${f.error.message}`));
  source.on('parseError', (p) => parseErrors.push(p));
  const synced = new Promise<void>((resolve) => store.once('synced', () => resolve()));
  await source.start();
  t.teardown(async () => {
    await source.stop();
    await api.close();
  });
  return { api, store, source, synced, failures, parseErrors };
}

t.test('initial lists fill the store and mark it synced; adds, updates, deletes follow', async (t) => {
  const { api, store, synced, source } = await setup(t);
  await synced;
  const snap = store.snapshot();
  t.equal(snap.services.get('default/echo')?.type, 'LoadBalancer');
  t.equal(snap.endpointSlices.get('default/echo-1')?.endpoints[0]?.addresses[0], '198.18.2.10');
  t.same(snap.nodes.get('node-a')?.addresses, [{ type: 'InternalIP', address: '198.18.1.1' }]);
  t.same([...snap.leases.keys()], ['pharos-system/pharos-ipam'], 'Leases only from the agent namespace');
  t.equal(snap.pools.get('blue')?.flavor, 'pharos');
  t.ok(snap.l2Policies.get('l2'));

  api.objects.put('services', service('second'));
  api.objects.put('services', lbServiceObject({ name: 'echo', labels: { color: 'blue' } }));
  api.objects.delete('endpointslices', 'default', 'echo-1');
  api.objects.put('loadbalancerippools', pool('green', '198.18.101.0/24'));
  await eventually(() => {
    const s = store.snapshot();
    return !!s.services.get('default/second') && s.services.get('default/echo')?.meta.labels.color === 'blue' && !s.endpointSlices.has('default/echo-1') && s.pools.has('green');
  }, 3000, 'changes in the store');
  t.pass('add, update, delete reached the store');
  await source.stop();
  await eventually(() => api.openWatches() === 0, 3000, 'watches closed by stop()');
  t.pass('stop() leaves no watch open');
});

t.test('an object that does not parse is reported and the last good version kept', async (t) => {
  const { api, store, synced, source, parseErrors } = await setup(t);
  await synced;
  api.objects.put('loadbalancerippools', pool('blue', '198.18.100/24'));
  await eventually(() => parseErrors.length === 1, 3000, 'parse error event');
  t.equal(parseErrors[0]!.kind, 'LoadBalancerIPPool');
  t.equal(parseErrors[0]!.key, 'blue');
  t.match(parseErrors[0]!.message, /spec\.blocks\[0\]\.cidr/);
  t.same(store.get('LoadBalancerIPPool', 'blue')?.blocks, [{ cidr: '198.18.100.0/24' }], 'last good version stays');
  t.equal(source.counters.parseErrors.LoadBalancerIPPool, 1);
  const recovered: string[] = [];
  source.on('parseRecovered', (r) => recovered.push(`${r.kind} ${r.key}`));
  api.objects.put('loadbalancerippools', pool('blue', '198.18.102.0/24'));
  await eventually(() => JSON.stringify(store.get('LoadBalancerIPPool', 'blue')?.blocks) === '[{"cidr":"198.18.102.0/24"}]', 3000, 'fixed pool');
  t.same(recovered, ['LoadBalancerIPPool blue'], 'recovery reported');
});

t.test('relist after 410: missed changes are repaired after compaction', async (t) => {
  const { api, store, synced } = await setup(t);
  await synced;
  const lists = () => api.requestCounts()['list services'] ?? 0;
  const before = lists();
  api.dropEvents(2);
  api.objects.delete('services', 'default', 'echo');
  api.objects.put('services', service('late'));
  await new Promise((r) => setTimeout(r, 200));
  t.ok(store.get('Service', 'default/echo'), 'dropped events not seen yet');
  api.compact();
  api.closeAllWatches();
  await eventually(() => !store.get('Service', 'default/echo') && !!store.get('Service', 'default/late'), 3000, 'relist repairs');
  t.ok(lists() > before, 'relisted');

  // The same through an ERROR 410 event on a live stream.
  api.dropEvents(1);
  api.objects.put('services', service('later'));
  api.compact();
  api.expireAllWatches();
  await eventually(() => !!store.get('Service', 'default/later'), 3000, 'relist after ERROR 410');
});

t.test('dropped watches reconnect from their resourceVersion without relisting', async (t) => {
  const { api, store, synced } = await setup(t);
  await synced;
  const lists = api.requestCounts()['list services'];
  for (let i = 0; i < 3; i++) {
    api.closeAllWatches();
    api.objects.put('services', service(`svc${i}`));
  }
  await eventually(() => [0, 1, 2].every((i) => store.get('Service', `default/svc${i}`)), 3000, 'events after reconnects');
  t.equal(api.requestCounts()['list services'], lists, 'no relist');

  // A server that ends every watch at once: re-watches back off instead of spinning.
  await new Promise((r) => setTimeout(r, 1100));
  const before = api.requestCounts()['watch services'] ?? 0;
  for (let i = 0; i < 40; i++) {
    api.closeAllWatches();
    await new Promise((r) => setTimeout(r, 10));
  }
  const rewatches = (api.requestCounts()['watch services'] ?? 0) - before;
  t.ok(rewatches <= 8, `${rewatches} re-watches in ~0.5 s of instantly closed streams`);
  api.objects.put('services', service('after-spin'));
  await eventually(() => !!store.get('Service', 'default/after-spin'), 3000, 'still following');
});

t.test('a 500 on list or watch: the informer backs off, retries and recovers', async (t) => {
  const api = await startApiServer();
  seed(api);
  api.failNext('list', 500, { resource: 'services', count: 2 });
  const store = new Store();
  const source = new KubeSource({ kc: kubeConfigFor(api.url), store, tuning });
  const failures: number[] = [];
  source.on('failure', (f) => f.kind === 'Service' && failures.push(f.retryInMs));
  const synced = new Promise<void>((resolve) => store.once('synced', () => resolve()));
  await source.start();
  t.teardown(async () => {
    await source.stop();
    await api.close();
  });
  await synced;
  t.same(failures, [50, 100], 'exponential back-off');
  t.ok(store.get('Service', 'default/echo'));

  api.failNext('watch', 500, { resource: 'services', count: 3 });
  api.closeAllWatches();
  await eventually(() => failures.length === 5, 5000, 'watch failures');
  api.objects.put('services', service('after-500'));
  await eventually(() => !!store.get('Service', 'default/after-500'), 5000, 'recovered');
  t.ok(source.counters.informerFailures.Service! >= 5);
});

t.test('API server outage: the store keeps everything; restart on the same port resyncs', async (t) => {
  const first = await startApiServer();
  seed(first);
  const port = first.port;
  const database = first.database;
  const store = new Store();
  const source = new KubeSource({ kc: kubeConfigFor(first.url), store, tuning });
  let failures = 0;
  source.on('failure', () => failures++);
  const synced = new Promise<void>((resolve) => store.once('synced', () => resolve()));
  await source.start();
  await synced;
  const removed: string[] = [];
  store.on('change', (cs) => cs.forEach((c) => c.type === 'delete' && removed.push(c.key)));
  const before = store.snapshot();

  await first.close();
  await eventually(() => failures >= 8, 5000, 'informers failing while the server is down');
  // The world changes while pharos cannot see it.
  database.delete('/services', 'default', 'echo');
  await new Promise((r) => setTimeout(r, 500));
  t.same(removed, [], 'nothing removed during the outage');
  t.equal(store.snapshot().services.size, before.services.size);
  t.equal(store.snapshot().pools.size, before.pools.size);

  const second = await startApiServer({ port, database });
  t.teardown(async () => {
    await source.stop();
    await second.close();
  });
  await eventually(() => !store.get('Service', 'default/echo'), 5000, 'deletion seen after the restart');
  t.equal(second.requestCounts()['list services'] ?? 0, 0, 'resumed from the event log, no relist');
  second.objects.put('services', service('new'));
  await eventually(() => !!store.get('Service', 'default/new'), 3000, 'live again');
});

t.test('an emulator restarted without its state: informers relist and drop what is gone', async (t) => {
  const { api, store, synced, source } = await setup(t);
  await synced;
  for (let i = 0; i < 20; i++) api.objects.put('services', service(`bump${i}`));
  await eventually(() => !!store.get('Service', 'default/bump19'), 3000, 'caught up');
  const port = api.port;
  await api.close();
  const fresh = await startApiServer({ port });
  t.teardown(() => fresh.close());
  fresh.objects.put('services', service('only-this'));
  await eventually(() => !!store.get('Service', 'default/only-this') && !store.get('Service', 'default/echo'), 5000, 'relisted against the new server');
  t.equal(store.snapshot().services.size, 1);
  await source.stop();
});

t.test('API server down at start: not synced until everything, pools included, is listed', async (t) => {
  const probe = await startApiServer();
  const port = probe.port;
  const database = probe.database;
  seed(probe);
  await probe.close();
  const store = new Store();
  const source = new KubeSource({ kc: kubeConfigFor(`http://127.0.0.1:${port}`), store, tuning, crdProbeIntervalMs: 60_000 });
  let failures = 0;
  source.on('failure', () => failures++);
  await source.start();
  await eventually(() => failures >= 4, 3000, 'informers failing');
  t.notOk(store.synced, 'not synced while the API server is down');
  const api = await startApiServer({ port, database });
  t.teardown(async () => {
    await source.stop();
    await api.close();
  });
  await eventually(() => store.synced, 5000, 'synced once the server is up');
  t.ok(store.get('LoadBalancerIPPool', 'blue'), 'pools were listed before synced');
  t.ok(store.get('L2AnnouncementPolicy', 'l2'));
});

t.test('a stalled API server: silent watches are restarted, nothing lost', async (t) => {
  const { api, store, synced, source, failures } = await setup(t);
  await synced;
  const watchesBefore = Object.values(source.informerStats()).reduce((n, s) => n + s.watches, 0);
  api.pause();
  api.objects.put('services', service('while-paused'));
  await new Promise((r) => setTimeout(r, 2500));
  t.notOk(store.get('Service', 'default/while-paused'), 'not delivered while stalled');
  t.ok(store.get('Service', 'default/echo'), 'store intact');
  const watchesAfter = Object.values(source.informerStats()).reduce((n, s) => n + s.watches, 0);
  t.ok(watchesAfter > watchesBefore, 'idle watches were re-opened');
  t.ok(failures.some((f) => /no response/.test(f)), 'stalled watch requests timed out');
  api.resume();
  await eventually(() => !!store.get('Service', 'default/while-paused'), 5000, 'delivered after resume');
});

t.test('Cilium CRDs are watched only when discovery shows them', async (t) => {
  const { api, store, synced, source } = await setup(t, { cilium: true });
  api.objects.put('ciliumloadbalancerippools', {
    apiVersion: 'cilium.io/v2alpha1',
    kind: 'CiliumLoadBalancerIPPool',
    metadata: { name: 'cil' },
    spec: { blocks: [{ cidr: '198.18.103.0/24' }] },
  });
  await synced;
  await eventually(() => store.get('LoadBalancerIPPool', 'cil')?.flavor === 'cilium', 3000, 'cilium pool');
  t.ok(Object.keys(source.informerStats()).includes('/apis/cilium.io/v2alpha1/ciliumloadbalancerippools'));

  const plain = await setup(t);
  await plain.synced;
  t.notOk(Object.keys(plain.source.informerStats()).some((p) => p.includes('cilium')), 'no Cilium informers without the CRDs');
  // Installing the CRD later is noticed by the periodic probe.
  await fetch(`${plain.api.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      metadata: { name: 'ciliuml2announcementpolicies.cilium.io' },
      spec: {
        group: 'cilium.io',
        scope: 'Cluster',
        names: { plural: 'ciliuml2announcementpolicies', kind: 'CiliumL2AnnouncementPolicy' },
        versions: [{ name: 'v2alpha1', served: true, storage: true }],
      },
    }),
  });
  plain.api.objects.put('ciliuml2announcementpolicies', { metadata: { name: 'cl2' }, spec: { loadBalancerIPs: true } });
  await eventually(() => plain.store.get('L2AnnouncementPolicy', 'cl2')?.flavor === 'cilium', 3000, 'late CRD picked up');
});

t.test('KubeWriter: status merge-patch retried after a 409 with a re-read', async (t) => {
  const api = await startApiServer();
  t.teardown(() => api.close());
  seed(api);
  api.objects.put('services', service('w'));
  const staleRv = api.objects.get('services', 'default', 'w').metadata.resourceVersion;
  api.objects.put('services', { ...service('w'), metadata: { name: 'w', namespace: 'default', labels: { moved: 'on' } } });
  const writer = new KubeWriter({ kc: kubeConfigFor(api.url) });
  const status = { loadBalancer: { ingress: [{ ip: '198.18.100.7' }] } };
  let recomputed = 0;
  const written = await writer.patchServiceStatus('default', 'w', status, {
    resourceVersion: staleRv,
    recompute: (fresh) => {
      recomputed++;
      t.equal(fresh.metadata.labels.moved, 'on', 'recompute sees the fresh object');
      return status;
    },
  });
  t.same(written.status.loadBalancer.ingress, [{ ip: '198.18.100.7' }]);
  t.same(api.objects.get('services', 'default', 'w').status.loadBalancer.ingress, [{ ip: '198.18.100.7' }]);
  t.equal(recomputed, 1);
  t.equal(writer.counters['Service patch conflict'], 1);
  t.equal(writer.counters['Service patch ok'], 1);
  t.equal(api.requestCounts()['patch services/status'], 2);

  const impatient = new KubeWriter({ kc: kubeConfigFor(api.url), maxConflictRetries: 0 });
  await t.rejects(impatient.patchServiceStatus('default', 'w', status, { resourceVersion: staleRv }), WriteConflictError);
  const gaveUp = await writer.patchServiceStatus('default', 'w', status, { resourceVersion: staleRv, recompute: () => null });
  t.equal(gaveUp, undefined, 'recompute may give up');

  const cond = { type: 'lb.pharos.io/IPsAvailable', status: 'True', reason: 'Allocated', message: '250' };
  await writer.patchPoolStatus('blue', { conditions: [cond] });
  t.same(api.objects.get('loadbalancerippools', undefined, 'blue').status.conditions, [cond]);
  t.same(api.objects.get('loadbalancerippools', undefined, 'blue').spec.blocks, [{ cidr: '198.18.100.0/24' }], 'spec untouched');
});

t.test('KubeWriter: Lease create, renew and release with optimistic concurrency', async (t) => {
  const api = await startApiServer();
  t.teardown(() => api.close());
  const a = new KubeWriter({ kc: kubeConfigFor(api.url) });
  const b = new KubeWriter({ kc: kubeConfigFor(api.url) });
  t.equal(await a.getLease('pharos-l2announce-default-echo'), undefined);
  const t0 = new Date();
  const mine = await a.createLease('pharos-l2announce-default-echo', { holderIdentity: 'node-a', leaseDurationSeconds: 15, acquireTime: t0, renewTime: t0, leaseTransitions: 0 });
  t.equal(mine.holderIdentity, 'node-a');
  t.ok(mine.renewTime instanceof Date && Math.abs(mine.renewTime.getTime() - t0.getTime()) < 1);
  t.match(api.objects.get('leases', 'pharos-system', 'pharos-l2announce-default-echo').spec.renewTime, /\.\d{6}Z$/, 'MicroTime on the wire');
  await t.rejects(b.createLease('pharos-l2announce-default-echo', { holderIdentity: 'node-b' }), WriteConflictError, 'second create loses');

  const theirs = await b.getLease('pharos-l2announce-default-echo');
  const renewed = await a.updateLease(mine, { ...mine, renewTime: new Date() });
  t.ok(Number(renewed.resourceVersion) > Number(mine.resourceVersion));
  await t.rejects(b.updateLease(theirs!, { ...theirs!, holderIdentity: 'node-b', leaseTransitions: 1 }), WriteConflictError, 'takeover with a stale RV loses');
  t.equal(b.counters['Lease update conflict'], 1);

  const released = await a.releaseLease(renewed);
  t.equal(released.holderIdentity, undefined);
  t.equal(released.leaseDurationSeconds, 1);
  const fresh = await b.getLease('pharos-l2announce-default-echo');
  const taken = await b.updateLease(fresh!, { holderIdentity: 'node-b', leaseDurationSeconds: 15, acquireTime: new Date(), renewTime: new Date(), leaseTransitions: 1 });
  t.equal(taken.holderIdentity, 'node-b');
  t.equal(taken.leaseTransitions, 1);

  // A stalled API server: a renewal fails by its deadline instead of hanging (the holder must fence in time).
  const quick = new KubeWriter({ kc: kubeConfigFor(api.url), timeoutMs: 300 });
  api.pause();
  const started = performance.now();
  await t.rejects(quick.updateLease(taken, { ...taken, renewTime: new Date() }));
  const took = performance.now() - started;
  api.resume();
  t.ok(took >= 250 && took < 2000, `timed out after ${took.toFixed(0)} ms`);
  t.equal(quick.counters['Lease update error'], 1);
});

t.test('writes honour the QPS/burst limit', async (t) => {
  const api = await startApiServer();
  t.teardown(() => api.close());
  const stamps: number[] = [];
  api.onRequest((r) => r.verb === 'create' && stamps.push(r.arrivedAt));
  const writer = new KubeWriter({ kc: kubeConfigFor(api.url), qps: 10, burst: 2 });
  const start = performance.now();
  await Promise.all([0, 1, 2, 3, 4, 5].map((i) => writer.createLease(`l${i}`, { holderIdentity: 'x' })));
  const elapsed = performance.now() - start;
  // 2 at once, then 4 more at 10/s: at least ~400 ms.
  t.ok(elapsed >= 380, `6 writes at 10 qps burst 2 took ${elapsed.toFixed(0)} ms`);
  stamps.sort((a, b) => a - b);
  t.ok(stamps[5]! - stamps[1]! >= 300, `spaced by the limiter (${(stamps[5]! - stamps[1]!).toFixed(0)} ms from the 2nd to the 6th)`);
  t.equal(writer.counters['Lease create ok'], 6);

  let now = 0;
  const bucket = new TokenBucket(2, 3, () => now);
  t.same([bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()], [true, true, true, false], 'burst');
  now += 499;
  t.notOk(bucket.tryTake());
  now += 2;
  t.ok(bucket.tryTake(), 'refilled at qps');
  t.throws(() => new TokenBucket(0, 1));
});

t.test('HTTPS with a CA from the kubeconfig; a wrong CA is a reported failure', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pharos-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cert = (name: string) => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.crt`)) };
  };
  const good = cert('server');
  const other = cert('other');
  const api = await startApiServer({ tls: good });
  t.teardown(() => api.close());
  t.match(api.url, /^https:/);
  seed(api);
  const kubeconfig = (ca: Buffer) => {
    const file = join(dir, `kubeconfig-${Math.random()}`);
    writeFileSync(
      file,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "${api.url}", certificate-authority-data: ${ca.toString('base64')}}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`,
    );
    return kubeConfigFrom({ kubeconfig: file });
  };
  const store = new Store();
  const source = new KubeSource({ kc: kubeconfig(good.cert), store, tuning });
  const synced = new Promise<void>((resolve) => store.once('synced', () => resolve()));
  await source.start();
  t.teardown(() => source.stop());
  await synced;
  t.ok(store.get('Service', 'default/echo'), 'listed over HTTPS');
  api.objects.put('services', service('over-tls'));
  await eventually(() => !!store.get('Service', 'default/over-tls'), 3000, 'watched over HTTPS');
  const writer = new KubeWriter({ kc: kubeconfig(good.cert) });
  await writer.createLease('tls', { holderIdentity: 'a' });
  t.ok(api.objects.get('leases', 'pharos-system', 'tls'), 'written over HTTPS');

  const distrusting = new KubeSource({ kc: kubeconfig(other.cert), store: new Store(), tuning });
  const errors: string[] = [];
  distrusting.on('failure', (f) => errors.push(f.error.message));
  await distrusting.start();
  t.teardown(() => distrusting.stop());
  await eventually(() => errors.length > 0, 3000, 'TLS failure reported');
  t.match(errors[0], /certificate|self.signed|verify/i);
});

t.test('kubeConfigFrom: file, server override, clear errors', async (t) => {
  t.throws(() => kubeConfigFrom({ kubeconfig: '/nonexistent/kubeconfig' }), /cannot read kubeconfig \/nonexistent\/kubeconfig: ENOENT/);
  const bad = join(tmpdir(), `pharos-bad-kubeconfig-${process.pid}`);
  writeFileSync(bad, 'clusters: [ this is not: yaml');
  t.teardown(() => writeFileSync(bad, ''));
  t.throws(() => kubeConfigFrom({ kubeconfig: bad }), KubeConfigError);
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBERNETES_SERVICE_HOST;
  t.throws(() => kubeConfigFrom({}), /not running in a pod/);
  if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;

  const api = await startApiServer();
  t.teardown(() => api.close());
  const file = join(tmpdir(), `pharos-kubeconfig-${process.pid}`);
  writeFileSync(
    file,
    `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "http://127.0.0.1:1"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`,
  );
  const kc = kubeConfigFrom({ kubeconfig: file, server: api.url });
  t.equal(kc.getCurrentCluster()?.server, api.url, '--server overrides the file');
  const store = new Store();
  const source = new KubeSource({ kc, store, tuning });
  const synced = new Promise<void>((resolve) => store.once('synced', () => resolve()));
  await source.start();
  t.teardown(() => source.stop());
  await synced;
  t.pass('a plain-HTTP kubeconfig works');
  const direct = kubeConfigFrom({ server: api.url });
  t.equal(direct.getCurrentCluster()?.skipTLSVerify, true);
});

t.test('a CRD installed after the start is picked up within seconds (the CRD watch), not at the next probe', async (t) => {
  const api = await startApiServer({});
  seed(api);
  const store = new Store();
  // A minute between probes: only the watch on CustomResourceDefinitions can find it in time.
  const source = new KubeSource({ kc: kubeConfigFor(api.url), store, tuning, crdProbeIntervalMs: 60_000 });
  const synced = new Promise<void>((resolve) => store.once('synced', () => resolve()));
  await source.start();
  t.teardown(async () => { await source.stop(); await api.close(); });
  await synced;
  t.same(source.kinds().waiting, ['CiliumLoadBalancerIPPool', 'CiliumL2AnnouncementPolicy', 'CiliumBGPPeeringPolicy'], 'waiting for Cilium\'s CRDs');
  t.ok(source.kinds().watching.includes('LoadBalancerIPPool') && source.kinds().watching.includes('Service'), `watching ${source.kinds().watching.join(', ')}`);
  const installedAt = performance.now();
  await fetch(`${api.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      metadata: { name: 'ciliumloadbalancerippools.cilium.io' },
      spec: {
        group: 'cilium.io', scope: 'Cluster',
        names: { plural: 'ciliumloadbalancerippools', kind: 'CiliumLoadBalancerIPPool' },
        versions: [{ name: 'v2alpha1', served: true, storage: true, subresources: { status: {} } }],
      },
    }),
  });
  api.objects.put('ciliumloadbalancerippools', { apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumLoadBalancerIPPool', metadata: { name: 'late' }, spec: { blocks: [{ cidr: '198.18.104.0/24' }] } });
  await eventually(() => store.get('LoadBalancerIPPool', 'late')?.flavor === 'cilium', 5000, 'the late CRD\'s pool in the store');
  t.pass(`picked up ${(performance.now() - installedAt).toFixed(0)} ms after the CRD was created`);
  t.same(source.kinds().waiting, ['CiliumL2AnnouncementPolicy', 'CiliumBGPPeeringPolicy'], 'no longer waiting for it');
});

t.test('Secrets the RBAC does not grant (403) are reported and not waited for: the store still syncs', async (t) => {
  const api = await startApiServer({});
  seed(api);
  api.failNext('list', 403, { resource: 'secrets', count: 1000 });
  const store = new Store();
  const source = new KubeSource({ kc: kubeConfigFor(api.url), store, secrets: true, tuning, crdProbeIntervalMs: 60_000 });
  const warnings: string[] = [];
  source.on('warning', (w) => warnings.push(w));
  const synced = new Promise<void>((resolve) => store.once('synced', () => resolve()));
  await source.start();
  t.teardown(async () => { await source.stop(); await api.close(); });
  await Promise.race([synced, new Promise((_, reject) => setTimeout(() => reject(new Error('never synced')), 10_000))]);
  t.ok(store.synced, 'synced without the Secrets');
  t.ok(warnings.some((w) => /Secrets in pharos-system cannot be read \(403\)/.test(w)), `warned: ${warnings.join(' | ')}`);
  t.notOk(source.kinds().watching.includes('Secret'), 'and no longer watching them');
  t.match(source.refused.get('Secret'), { object: 'Secret pharos-system/*', message: /cannot be read \(403\)/ }, 'kept for pharos status');
});
