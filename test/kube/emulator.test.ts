// Conformance of the Kubernetes API emulator (src/lab/apiserver), checked
// through the real @kubernetes/client-node 1.4.0 and the real kubectl, so the
// emulator stays an honest stand-in for kube-apiserver.
import t from 'tap';
import {
  ApisApi,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  ListWatch,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  Watch,
  type V1Service,
} from '@kubernetes/client-node';
import { startApiServer, type ApiServer } from '../../src/lab/apiserver/server.js';
import { eventually, Kubectl, kubeConfigFor } from './kube-support.js';

async function withApi(t: { teardown(fn: () => unknown): void }, opts: Parameters<typeof startApiServer>[0] = {}): Promise<ApiServer> {
  const api = await startApiServer(opts);
  t.teardown(() => api.close());
  return api;
}

/** The HTTP status of a failed library call, and the Status reason from its raw JSON body. */
async function failure(p: Promise<unknown>): Promise<{ code: number; reason: string }> {
  try {
    await p;
  } catch (e: any) {
    const body = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
    return { code: e.code, reason: body?.reason };
  }
  throw new Error('expected the call to fail');
}

const svc = (name: string, labels: Record<string, string> = {}, type = 'ClusterIP'): V1Service => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, labels },
  spec: { type, ports: [{ name: 'http', port: 80, targetPort: 8080 as any, protocol: 'TCP' }] },
});

t.test('discovery: versions, groups, resources with verbs, short names and status', async (t) => {
  const api = await withApi(t);
  const kc = kubeConfigFor(api.url);
  const core = await kc.makeApiClient(CoreV1Api).getAPIResources();
  const names = core.resources.map((r) => r.name);
  t.ok(names.includes('services') && names.includes('services/status') && names.includes('nodes'), 'core resources');
  t.same(core.resources.find((r) => r.name === 'services')?.shortNames, ['svc']);
  t.ok(core.resources.find((r) => r.name === 'services')?.verbs.includes('watch'));
  const groups = await kc.makeApiClient(ApisApi).getAPIVersions();
  const groupNames = groups.groups.map((g) => g.name);
  t.ok(['discovery.k8s.io', 'coordination.k8s.io', 'lb.pharos.io'].every((g) => groupNames.includes(g)), 'groups');
  t.notOk(groupNames.includes('cilium.io'), 'no Cilium unless asked');
  const res: any = await fetch(`${api.url}/apis/lb.pharos.io/v1alpha1`).then((r) => r.json());
  const pool = res.resources.find((r: any) => r.name === 'loadbalancerippools');
  t.equal(pool.namespaced, false);
  t.ok(pool.shortNames.includes('ippools'));
  t.ok(res.resources.some((r: any) => r.name === 'loadbalancerippools/status'));
  const openapi: any = await fetch(`${api.url}/openapi/v3`).then((r) => r.json());
  t.ok(openapi.paths['api/v1'] && openapi.paths['apis/lb.pharos.io/v1alpha1'], 'OpenAPI v3 root lists the group-versions');
  const v1: any = await fetch(`${api.url}${openapi.paths['api/v1'].serverRelativeURL}`).then((r) => r.json());
  const svcPatch = v1.paths['/api/v1/namespaces/{namespace}/services/{name}'].patch;
  t.same(svcPatch['x-kubernetes-group-version-kind'], { group: '', version: 'v1', kind: 'Service' });
  t.ok(svcPatch.parameters.some((p: any) => p.name === 'fieldValidation' && p.in === 'query'), 'PATCH takes fieldValidation: kubectl validates on the server');
  t.equal((await fetch(`${api.url}/openapi/v2`)).status, 404, 'no OpenAPI v2');
  const cil = await withApi(t, { cilium: true });
  const cg = await kubeConfigFor(cil.url).makeApiClient(ApisApi).getAPIVersions();
  t.ok(cg.groups.some((g) => g.name === 'cilium.io'));
});

t.test('create/get/replace: server fields, 409 AlreadyExists, 409 Conflict, generation', async (t) => {
  const api = await withApi(t);
  const core = kubeConfigFor(api.url).makeApiClient(CoreV1Api);
  const created = await core.createNamespacedService({ namespace: 'default', body: svc('a', {}, 'LoadBalancer') });
  t.ok(created.metadata?.uid && created.metadata.creationTimestamp && created.metadata.resourceVersion, 'uid, creationTimestamp, resourceVersion');
  t.equal(created.metadata?.generation, 1);
  t.match(created.spec?.clusterIP, /^198\.19\.\d+\.\d+$/, 'ClusterIP from 198.19.0.0/16');
  const nodePort = created.spec?.ports?.[0]?.nodePort ?? 0;
  t.ok(nodePort >= 30000 && nodePort <= 32767, 'NodePort allocated');
  t.same(await failure(core.createNamespacedService({ namespace: 'default', body: svc('a') })), { code: 409, reason: 'AlreadyExists' });
  t.same(await failure(core.readNamespacedService({ namespace: 'default', name: 'nope' })), { code: 404, reason: 'NotFound' });

  const other = await core.createNamespacedService({ namespace: 'default', body: svc('b', {}, 'NodePort') });
  t.not(other.spec?.clusterIP, created.spec?.clusterIP, 'distinct ClusterIPs');
  t.not(other.spec?.ports?.[0]?.nodePort, nodePort, 'distinct NodePorts');

  const labelled = await core.replaceNamespacedService({
    namespace: 'default',
    name: 'a',
    body: { ...created, metadata: { ...created.metadata, labels: { x: 'y' } } },
  });
  t.ok(Number(labelled.metadata?.resourceVersion) > Number(created.metadata?.resourceVersion), 'RV bumped');
  t.equal(labelled.metadata?.generation, 1, 'metadata change keeps generation');
  t.equal(labelled.spec?.clusterIP, created.spec?.clusterIP, 'ClusterIP kept');
  t.same(await failure(core.replaceNamespacedService({ namespace: 'default', name: 'a', body: created })), { code: 409, reason: 'Conflict' }, 'stale RV');
  const respec = await core.replaceNamespacedService({
    namespace: 'default',
    name: 'a',
    body: { ...labelled, spec: { ...labelled.spec, sessionAffinity: 'ClientIP' } },
  });
  t.equal(respec.metadata?.generation, 2, 'spec change bumps generation');
  t.equal(respec.spec?.ports?.[0]?.nodePort, nodePort, 'NodePort kept across updates');
});

t.test('status subresource: each side keeps the other', async (t) => {
  const api = await withApi(t);
  const core = kubeConfigFor(api.url).makeApiClient(CoreV1Api);
  const body = svc('s', {}, 'LoadBalancer');
  body.status = { loadBalancer: { ingress: [{ ip: '198.18.0.99' }] } };
  const created = await core.createNamespacedService({ namespace: 'default', body });
  t.same(created.status?.loadBalancer?.ingress ?? [], [], 'status dropped on create');
  const withStatus = await core.replaceNamespacedServiceStatus({
    namespace: 'default',
    name: 's',
    body: { ...created, metadata: { ...created.metadata, labels: { ignored: 'yes' } }, spec: { ...created.spec, sessionAffinity: 'ClientIP' }, status: { loadBalancer: { ingress: [{ ip: '198.18.0.10' }] } } },
  });
  t.same(withStatus.status?.loadBalancer?.ingress, [{ ip: '198.18.0.10' }]);
  t.equal(withStatus.spec?.sessionAffinity, 'None', 'status PUT ignores spec');
  t.notOk(withStatus.metadata?.labels?.ignored, 'status PUT ignores metadata');
  t.ok(Number(withStatus.metadata?.resourceVersion) > Number(created.metadata?.resourceVersion), 'status write bumps RV');
  const specWrite = await core.replaceNamespacedService({
    namespace: 'default',
    name: 's',
    body: { ...withStatus, status: { loadBalancer: { ingress: [{ ip: '198.18.0.66' }] } }, spec: { ...withStatus.spec, externalIPs: ['198.18.0.5'] } },
  });
  t.same(specWrite.status?.loadBalancer?.ingress, [{ ip: '198.18.0.10' }], 'main PUT keeps status');
  t.same(specWrite.spec?.externalIPs, ['198.18.0.5']);
  const merged = await core.patchNamespacedServiceStatus(
    { namespace: 'default', name: 's', body: { status: { loadBalancer: { ingress: [{ ip: '198.18.0.11' }] } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  t.same(merged.status?.loadBalancer?.ingress, [{ ip: '198.18.0.11' }], 'merge-patch on /status');
  const stale = await failure(
    core.patchNamespacedServiceStatus(
      { namespace: 'default', name: 's', body: { metadata: { resourceVersion: created.metadata!.resourceVersion }, status: {} } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ),
  );
  t.same(stale, { code: 409, reason: 'Conflict' }, 'merge patch carrying a stale RV conflicts');
  const same = await core.replaceNamespacedServiceStatus({ namespace: 'default', name: 's', body: merged });
  t.equal(same.metadata?.resourceVersion, merged.metadata?.resourceVersion, 'a no-op write keeps the RV');
});

t.test('patch formats: json-patch (library default), merge, strategic, server-side apply; 415 for strategic on CRs', async (t) => {
  const api = await withApi(t);
  const kc = kubeConfigFor(api.url);
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedService({ namespace: 'default', body: svc('p', { a: '1' }) });
  const jp = await core.patchNamespacedService({ namespace: 'default', name: 'p', body: [{ op: 'add', path: '/metadata/labels/b', value: '2' }] });
  t.same(jp.metadata?.labels, { a: '1', b: '2' });
  const mp = await core.patchNamespacedService(
    { namespace: 'default', name: 'p', body: { metadata: { labels: { a: null, c: '3' } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  t.same(mp.metadata?.labels, { b: '2', c: '3' }, 'merge: null deletes');
  const smp = await core.patchNamespacedService(
    {
      namespace: 'default',
      name: 'p',
      body: { spec: { $setElementOrder: undefined, '$setElementOrder/ports': [{ port: 80 }, { port: 443 }], ports: [{ port: 443, targetPort: 8443, name: 'https' }] } },
    },
    setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
  );
  t.same(
    smp.spec?.ports?.map((p) => [p.name, p.port, p.targetPort, p.protocol]),
    [
      ['http', 80, 8080, 'TCP'],
      ['https', 443, 8443, 'TCP'],
    ],
    'strategic: list merged by the key $setElementOrder names',
  );
  const badJp = await failure(core.patchNamespacedService({ namespace: 'default', name: 'p', body: [{ op: 'remove', path: '/spec/nothing' }] }));
  t.equal(badJp.code, 422);
  // Server-side apply: merge by ownership; fields the manager stops applying go away, others' stay.
  const ssaOpts = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
  const applyCfg = (labels: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'p', labels }, spec: { ports: [{ port: 80, targetPort: 9090 }] } });
  const ssa1 = await core.patchNamespacedService({ namespace: 'default', name: 'p', body: applyCfg({ owner: 'ssa', extra: 'x' }), fieldManager: 'pharos', force: true }, ssaOpts);
  t.same(ssa1.metadata?.labels, { b: '2', c: '3', owner: 'ssa', extra: 'x' });
  t.equal(ssa1.spec?.ports?.find((p) => p.port === 80)?.targetPort, 9090, 'list item merged by key');
  t.equal(ssa1.spec?.ports?.length, 2, 'the other port (not applied) stays');
  const ssa2 = await core.patchNamespacedService({ namespace: 'default', name: 'p', body: applyCfg({ owner: 'ssa' }), fieldManager: 'pharos', force: true }, ssaOpts);
  t.same(ssa2.metadata?.labels, { b: '2', c: '3', owner: 'ssa' }, 'a label no longer applied is removed');
  t.equal(ssa2.metadata?.managedFields?.find((m) => m.manager === 'pharos')?.operation, 'Apply');
  const created = await core.patchNamespacedService(
    { namespace: 'default', name: 'fresh', body: { ...applyCfg({}), metadata: { name: 'fresh' } }, fieldManager: 'pharos', force: true },
    ssaOpts,
  );
  t.ok(created.metadata?.uid && created.spec?.clusterIP, 'apply creates a missing object');
  const noManager = await failure(core.patchNamespacedService({ namespace: 'default', name: 'p', body: applyCfg({}) }, ssaOpts));
  t.equal(noManager.code, 422, 'fieldManager is required');
  const custom = kc.makeApiClient(CustomObjectsApi);
  const pool = { group: 'lb.pharos.io', version: 'v1alpha1', plural: 'loadbalancerippools' };
  await custom.createClusterCustomObject({ ...pool, body: { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'blue' }, spec: { blocks: [{ cidr: '198.18.100.0/24' }] } } });
  const crSmp = await failure(custom.patchClusterCustomObject({ ...pool, name: 'blue', body: { spec: {} } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)));
  t.equal(crSmp.code, 415, 'strategic merge on a custom resource is refused, as upstream');
});

t.test('list: label and field selectors, limit/continue, resourceVersion', async (t) => {
  const api = await withApi(t);
  const core = kubeConfigFor(api.url).makeApiClient(CoreV1Api);
  const labels: Record<string, Record<string, string>> = {
    s1: { app: 'web', tier: 'front' },
    s2: { app: 'web', tier: 'back' },
    s3: { app: 'db' },
    s4: {},
  };
  for (const [name, l] of Object.entries(labels)) await core.createNamespacedService({ namespace: 'default', body: svc(name, l) });
  await core.createNamespacedService({ namespace: 'kube-system', body: svc('s5', { app: 'web' }) });
  const names = async (labelSelector?: string, fieldSelector?: string, namespace = 'default') =>
    (await core.listNamespacedService({ namespace, labelSelector, fieldSelector })).items.map((s) => s.metadata?.name);
  const cases: [string, string[]][] = [
    ['app=web', ['s1', 's2']],
    ['app==web', ['s1', 's2']],
    ['app!=web', ['s3', 's4']],
    ['app in (db, web),tier', ['s1', 's2']],
    ['tier notin (front)', ['s2', 's3', 's4']],
    ['tier', ['s1', 's2']],
    ['!tier', ['s3', 's4']],
    ['app=web,tier=back', ['s2']],
  ];
  for (const [sel, want] of cases) t.same(await names(sel), want, `labelSelector ${sel}`);
  t.same(await names(undefined, 'metadata.name=s3'), ['s3'], 'field metadata.name');
  t.same(await names(undefined, 'metadata.name!=s3'), ['s1', 's2', 's4'], 'field !=');
  const all = await core.listServiceForAllNamespaces({ fieldSelector: 'metadata.namespace=kube-system' });
  t.same(all.items.map((s) => s.metadata?.name), ['s5']);
  t.equal(all.metadata?.resourceVersion, String(api.database.resourceVersion), 'list RV is the current global RV');
  t.equal((await failure(core.listNamespacedService({ namespace: 'default', labelSelector: 'a b c' }))).code, 400);

  const page1 = await core.listNamespacedService({ namespace: 'default', limit: 3 });
  t.equal(page1.items.length, 3);
  t.ok(page1.metadata?._continue, 'continue token');
  t.equal(page1.metadata?.remainingItemCount, 1);
  const page2 = await core.listNamespacedService({ namespace: 'default', limit: 3, _continue: page1.metadata?._continue });
  t.same(page2.items.map((s) => s.metadata?.name), ['s4']);
  t.notOk(page2.metadata?._continue);
  await core.createNamespacedService({ namespace: 'default', body: svc('s6') });
  api.compact();
  t.same(await failure(core.listNamespacedService({ namespace: 'default', limit: 3, _continue: page1.metadata?._continue })), { code: 410, reason: 'Expired' }, 'continue after compaction');
});

/** Starts `inf` recording `add NAME` and `delete NAME` of what it sees; resolves once its watch is open. */
async function recordAddsAndDeletes(t: { teardown(fn: () => unknown): void }, api: ApiServer, inf: Pick<ListWatch<V1Service>, 'on' | 'start' | 'stop'>): Promise<string[]> {
  const seen: string[] = [];
  inf.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
  inf.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
  await inf.start();
  t.teardown(() => inf.stop());
  await eventually(() => api.openWatches() === 1, 3000, 'watch open');
  return seen;
}

t.test('informer (makeInformer): add, update, delete with new RVs; replay from RV after a closed watch', async (t) => {
  const api = await withApi(t);
  const kc = kubeConfigFor(api.url);
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedService({ namespace: 'default', body: svc('pre') });
  const inf = makeInformer(kc, '/api/v1/namespaces/default/services', () => core.listNamespacedService({ namespace: 'default' }));
  const seen: string[] = [];
  inf.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
  inf.on('update', (o) => seen.push(`update ${o.metadata?.name}`));
  inf.on('delete', (o) => seen.push(`delete ${o.metadata?.name} ${o.metadata?.resourceVersion}`));
  let connects = 0;
  inf.on('connect', () => connects++);
  await inf.start();
  t.teardown(() => inf.stop());
  await eventually(() => api.openWatches() === 1, 3000, 'watch open');
  await core.createNamespacedService({ namespace: 'default', body: svc('x') });
  const x = await core.readNamespacedService({ namespace: 'default', name: 'x' });
  await core.replaceNamespacedService({ namespace: 'default', name: 'x', body: { ...x, metadata: { ...x.metadata, labels: { k: 'v' } } } });
  await core.deleteNamespacedService({ namespace: 'default', name: 'x' });
  const deletedRv = api.database.resourceVersion;
  await eventually(() => seen.length === 4, 3000, 'four events');
  t.same(seen, ['add pre', 'add x', 'update x', `delete x ${deletedRv}`], 'DELETED carries a new RV');

  // Writes while no watch is open are replayed from the event log, without a relist.
  const lists = () => api.requestCounts()['list services'] ?? 0;
  const listsBefore = lists();
  api.closeAllWatches();
  // Synchronously, before the informer's next watch request can arrive.
  api.objects.put('services', svc('during'));
  await eventually(() => seen.includes('add during'), 3000, 'replayed add');
  t.equal(lists(), listsBefore, 'no relist: the watch resumed from its RV');
  t.ok(connects >= 2, 'reconnected');
});

t.test('watch: ERROR 410 event and HTTP 410 after compaction; informer relists; bookmarks; timeoutSeconds', async (t) => {
  for (const goneAs of ['event', 'http'] as const) {
    const api = await withApi(t, { goneAs });
    const kc = kubeConfigFor(api.url);
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedService({ namespace: 'default', body: svc('a') });
    const inf = makeInformer(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
    const events = await recordAddsAndDeletes(t, api, inf);
    // Miss a delete and an add entirely, then make the missed RVs unavailable.
    api.dropEvents(2);
    await core.deleteNamespacedService({ namespace: 'default', name: 'a' });
    await core.createNamespacedService({ namespace: 'default', body: svc('b') });
    api.compact();
    const listsBefore = api.requestCounts()['list services'] ?? 0;
    api.closeAllWatches();
    await eventually(() => events.includes('add b') && events.includes('delete a'), 5000, `relist (${goneAs})`);
    t.ok((api.requestCounts()['list services'] ?? 0) > listsBefore, `relisted after 410 as ${goneAs}`);
  }

  const api = await withApi(t, { bookmarkIntervalMs: 100 });
  const kc = kubeConfigFor(api.url);
  const types: string[] = [];
  let doneAt = 0;
  const started = Date.now();
  const req = await new Watch(kc).watch(
    '/api/v1/namespaces/default/services',
    { allowWatchBookmarks: true, timeoutSeconds: 1, resourceVersion: String(api.database.resourceVersion) },
    (type, obj) => types.push(`${type} ${obj?.metadata?.resourceVersion}`),
    () => (doneAt = Date.now()),
  );
  t.teardown(() => req.abort());
  await eventually(() => doneAt > 0, 3000, 'timeoutSeconds ends the watch');
  t.ok(doneAt - started >= 900, 'not before timeoutSeconds');
  t.ok(types.some((x) => x.startsWith('BOOKMARK ')), 'bookmarks sent');

  // A stale RV on a raw watch: ERROR 410 Status, then end of stream.
  api.compact();
  const errs: any[] = [];
  let ended = false;
  await new Watch(kc).watch('/api/v1/services', { resourceVersion: '1' }, (type, obj) => type === 'ERROR' && errs.push(obj), () => (ended = true));
  await eventually(() => ended, 3000, 'stream closed');
  t.equal(errs[0]?.code, 410);
  t.equal(errs[0]?.reason, 'Expired');
});

t.test('filtered watch (ListWatch with field selector) sees objects enter and leave', async (t) => {
  const api = await withApi(t);
  const kc = kubeConfigFor(api.url);
  const core = kc.makeApiClient(CoreV1Api);
  const labelSelector = 'pharos=yes';
  const lw = new ListWatch(
    '/api/v1/services',
    new Watch(kc),
    () => core.listServiceForAllNamespaces({ labelSelector, fieldSelector: 'metadata.namespace=default' }),
    false,
    labelSelector,
    'metadata.namespace=default',
  );
  const seen = await recordAddsAndDeletes(t, api, lw);
  await core.createNamespacedService({ namespace: 'kube-system', body: svc('elsewhere', { pharos: 'yes' }) });
  const s = await core.createNamespacedService({ namespace: 'default', body: svc('m') });
  await core.patchNamespacedService({ namespace: 'default', name: 'm', body: [{ op: 'add', path: '/metadata/labels', value: { pharos: 'yes' } }] });
  await core.patchNamespacedService({ namespace: 'default', name: 'm', body: [{ op: 'replace', path: '/metadata/labels/pharos', value: 'no' }] });
  await eventually(() => seen.length === 2, 3000, 'enter and leave');
  t.same(seen, ['add m', 'delete m']);
  t.ok(s.metadata?.uid);
});

t.test('Leases (CoordinationV1Api) with V1MicroTime; EndpointSlices (DiscoveryV1Api)', async (t) => {
  const api = await withApi(t);
  const kc = kubeConfigFor(api.url);
  const leases = kc.makeApiClient(CoordinationV1Api);
  const now = new V1MicroTime();
  const created = await leases.createNamespacedLease({
    namespace: 'kube-system',
    body: { metadata: { name: 'pharos-ipam' }, spec: { holderIdentity: 'node-a', leaseDurationSeconds: 15, renewTime: now, acquireTime: now } },
  });
  const stored = api.objects.get('leases', 'kube-system', 'pharos-ipam');
  t.match(stored.spec.renewTime, /\.\d{6}Z$/, 'MicroTime with 6 digits');
  const read = await leases.readNamespacedLease({ namespace: 'kube-system', name: 'pharos-ipam' });
  t.equal(read.spec?.holderIdentity, 'node-a');
  const renewed = await leases.replaceNamespacedLease({
    namespace: 'kube-system',
    name: 'pharos-ipam',
    body: { ...read, spec: { ...read.spec, renewTime: new V1MicroTime() } },
  });
  t.ok(Number(renewed.metadata?.resourceVersion) > Number(created.metadata?.resourceVersion));
  const stale = await failure(
    leases.replaceNamespacedLease({ namespace: 'kube-system', name: 'pharos-ipam', body: { ...read, spec: { ...read.spec, holderIdentity: 'node-b' } } }),
  );
  t.same(stale, { code: 409, reason: 'Conflict' }, 'a stale renewal loses');
  const dup = await failure(leases.createNamespacedLease({ namespace: 'kube-system', body: { metadata: { name: 'pharos-ipam' }, spec: {} } }));
  t.same(dup, { code: 409, reason: 'AlreadyExists' });

  const disc = kc.makeApiClient(DiscoveryV1Api);
  await disc.createNamespacedEndpointSlice({
    namespace: 'default',
    body: {
      metadata: { name: 'echo-1', labels: { 'kubernetes.io/service-name': 'echo' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['198.18.2.10'], conditions: { ready: true }, nodeName: 'node-a' }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    },
  });
  const slices = await disc.listNamespacedEndpointSlice({ namespace: 'default', labelSelector: 'kubernetes.io/service-name=echo' });
  t.equal(slices.items[0]?.endpoints[0]?.addresses[0], '198.18.2.10');
  const deleted = await disc.deleteNamespacedEndpointSlice({ namespace: 'default', name: 'echo-1' });
  t.ok(deleted, 'DELETE answers 200 with a body');
});

t.test('custom resources: cluster-scoped CRUD, status merge-patch, CRD registration, namespace deletion', async (t) => {
  const api = await withApi(t);
  const kc = kubeConfigFor(api.url);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const pool = { group: 'lb.pharos.io', version: 'v1alpha1', plural: 'loadbalancerippools' };
  await custom.createClusterCustomObject({ ...pool, body: { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'blue' }, spec: { blocks: [{ cidr: '198.18.100.0/24' }] }, status: { bogus: true } } });
  const list: any = await custom.listClusterCustomObject(pool);
  t.same(list.items.map((i: any) => i.metadata.name), ['blue']);
  t.notOk(list.items[0].status, 'status dropped on create');
  const patched: any = await custom.patchClusterCustomObjectStatus(
    { ...pool, name: 'blue', body: { status: { conditions: [{ type: 'lb.pharos.io/IPsAvailable', status: 'True', reason: 'x', message: '254' }] } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  t.equal(patched.status.conditions[0].message, '254');
  const specPatch: any = await custom.patchClusterCustomObject(
    { ...pool, name: 'blue', body: { spec: { disabled: true }, status: { conditions: [] } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  t.equal(specPatch.spec.disabled, true);
  t.equal(specPatch.status.conditions.length, 1, 'spec patch keeps status');
  t.equal(specPatch.metadata.generation, 2);

  // The CRD schema (deploy/crds) is enforced as a real API server does: prune, default, validate.
  const green: any = await custom.createClusterCustomObject({
    ...pool,
    body: { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'green' }, spec: { blocks: [{ cidr: '198.18.101.0/24' }], bogus: 1 } },
  });
  t.equal(green.spec.bogus, undefined, 'unknown field pruned');
  t.equal(green.spec.disabled, false, 'schema default applied');
  const invalid = await failure(
    custom.createClusterCustomObject({
      ...pool,
      body: { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'bad' }, spec: { blocks: [{ cidr: 'not a cidr' }], disabled: 'no' } },
    }),
  );
  t.same(invalid, { code: 422, reason: 'Invalid' });
  const badStatus = await failure(
    custom.patchClusterCustomObjectStatus({ ...pool, name: 'green', body: { status: { available: 'many' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
  );
  t.equal(badStatus.code, 422, 'status writes are validated too');

  // A CRD applied at run time becomes a served resource.
  await fetch(`${api.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'ciliumloadbalancerippools.cilium.io' },
      spec: {
        group: 'cilium.io',
        scope: 'Cluster',
        names: { plural: 'ciliumloadbalancerippools', singular: 'ciliumloadbalancerippool', kind: 'CiliumLoadBalancerIPPool', shortNames: ['ippools'] },
        versions: [{ name: 'v2alpha1', served: true, storage: true, subresources: { status: {} } }],
      },
    }),
  });
  const ok = await fetch(`${api.url}/apis/cilium.io/v2alpha1/ciliumloadbalancerippools`);
  t.equal(ok.status, 200, 'CRD registered');

  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'team' } } });
  await core.createNamespacedService({ namespace: 'team', body: svc('t1') });
  await core.deleteNamespace({ name: 'team' });
  t.same((await core.listNamespacedService({ namespace: 'team' })).items, [], 'namespace deletion removes its objects');
});

t.test('fault hooks: failNext, pause/resume, request counters, Table output', async (t) => {
  const api = await withApi(t);
  const core = kubeConfigFor(api.url).makeApiClient(CoreV1Api);
  api.failNext('list', 503, { resource: 'services' });
  t.equal((await failure(core.listNamespacedService({ namespace: 'default' }))).code, 503);
  await core.listNamespacedService({ namespace: 'default' });
  api.failNext('*', 429);
  const r = await fetch(`${api.url}/api/v1/nodes`);
  t.equal(r.status, 429);
  t.equal(r.headers.get('retry-after'), '1');

  api.pause();
  let answered = false;
  const pending = core.listNamespacedService({ namespace: 'default' }).then(() => (answered = true));
  await new Promise((res) => setTimeout(res, 200));
  t.notOk(answered, 'held while paused');
  api.resume();
  await pending;
  t.ok(answered);
  const counts = api.requestCounts();
  t.equal(counts['list services'], 3);
  t.equal(counts['list nodes'], 1);

  await core.createNamespacedService({ namespace: 'default', body: svc('lb', {}, 'LoadBalancer') });
  const table: any = await fetch(`${api.url}/api/v1/namespaces/default/services`, { headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' } }).then((x) => x.json());
  t.equal(table.kind, 'Table');
  t.same(table.columnDefinitions.filter((c: any) => c.priority === 0).map((c: any) => c.name), ['Name', 'Type', 'Cluster-IP', 'External-IP', 'Port(s)', 'Age']);
  t.equal(table.rows[0].cells[3], '<pending>');
  t.equal(table.rows[0].object.kind, 'PartialObjectMetadata');
});

t.test('kubectl: get, apply, label, annotate, patch, delete, -w, tables', async (t) => {
  const api = await withApi(t);
  const k = new Kubectl(api.url);
  t.teardown(() => k.cleanup());
  const manifest = `apiVersion: v1
kind: Service
metadata:
  name: echo
  labels: {app: echo}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: {name: blue}
spec:
  blocks: [{cidr: 198.18.100.0/24}]
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: pharos-l2announce-default-echo, namespace: kube-system}
spec: {holderIdentity: node-a, leaseDurationSeconds: 15}
`;
  // kubectl apply as walkthroughs write it: no --validate=false (validation is left to the server, openapi.ts).
  t.match(await k.ok(['apply', '-f', '-'], manifest), /service\/echo created[\s\S]*loadbalancerippool.lb.pharos.io\/blue created/);
  t.match(await k.ok(['apply', '--validate=false', '-f', '-'], manifest), /service\/echo unchanged/, 'and with --validate=false as before');
  const svcTable = await k.ok(['get', 'svc']);
  t.match(svcTable, /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\n/);
  t.match(svcTable, /echo\s+LoadBalancer\s+198\.19\.\d+\.\d+\s+<pending>\s+80:3\d{4}\/TCP,443:3\d{4}\/TCP\s+\d+s/);
  t.match(await k.ok(['get', 'ippools']), /^NAME\s+DISABLED\s+CONFLICTING\s+IPS AVAILABLE\s+AGE\nblue\s/);
  t.match(await k.ok(['-n', 'kube-system', 'get', 'leases']), /^NAME\s+HOLDER\s+AGE\npharos-l2announce-default-echo\s+node-a\s/);
  t.equal(await k.ok(['-n', 'kube-system', 'get', 'lease', 'pharos-l2announce-default-echo', '-o', 'jsonpath={.spec.holderIdentity}']), 'node-a');
  t.match(await k.ok(['get', 'ns']), /^NAME\s+STATUS\s+AGE\n[\s\S]*kube-system\s+Active/);
  api.objects.put('nodes', {
    metadata: { name: 'node-a', labels: { 'node-role.kubernetes.io/lb': '' } },
    status: { addresses: [{ type: 'InternalIP', address: '198.18.1.1' }], conditions: [{ type: 'Ready', status: 'True' }] },
  });
  t.match(await k.ok(['get', 'nodes', '-o', 'wide']), /^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\s+INTERNAL-IP\s+EXTERNAL-IP\nnode-a\s+Ready\s+lb\s+\S+\s+198\.18\.1\.1\s+<none>/);
  api.objects.put('endpointslices', {
    metadata: { name: 'echo-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'echo' } },
    addressType: 'IPv4',
    ports: [{ port: 8080 }],
    endpoints: [{ addresses: ['198.18.2.10'] }, { addresses: ['198.18.2.11'] }],
  });
  t.match(await k.ok(['get', 'endpointslices']), /echo-1\s+IPv4\s+8080\s+198\.18\.2\.10,198\.18\.2\.11\s/);

  await k.ok(['label', 'svc', 'echo', 'app=other', '--overwrite']);
  await k.ok(['annotate', 'svc', 'echo', 'note=hello']);
  const obj = JSON.parse(await k.ok(['get', 'svc', 'echo', '-o', 'json']));
  t.equal(obj.metadata.labels.app, 'other');
  t.equal(obj.metadata.annotations.note, 'hello');
  t.match(await k.ok(['get', 'svc', '--show-labels']), /app=other/);
  const nodePorts = obj.spec.ports.map((p: any) => p.nodePort);

  // Re-apply with one port changed: kubectl sends a strategic merge patch with $setElementOrder.
  const applied = await k.ok(['apply', '--validate=false', '-f', '-'], manifest.replace('targetPort: 8443', 'targetPort: 9443'));
  t.match(applied, /service\/echo configured/);
  const after = JSON.parse(await k.ok(['get', 'svc', 'echo', '-o', 'json']));
  t.same(after.spec.ports.map((p: any) => [p.name, p.targetPort, p.nodePort]), [
    ['http', 8080, nodePorts[0]],
    ['https', 9443, nodePorts[1]],
  ], 'ports merged by key, NodePorts kept');
  t.equal(after.metadata.labels.app, 'echo', 'apply restores the label it owns');

  await k.ok(['patch', 'ippool', 'blue', '--type', 'merge', '-p', '{"spec":{"disabled":true}}']);
  await k.ok(['patch', 'ippool', 'blue', '--subresource', 'status', '--type', 'merge', '-p', '{"status":{"available":"254","used":"2","total":"256"}}']);
  t.match(await k.ok(['get', 'ippools']), /blue\s+true\s+254\s/);
  t.match(await k.ok(['get', 'ippools', '-o', 'wide']), /^NAME\s+DISABLED\s+CONFLICTING\s+IPS AVAILABLE\s+USED\s+TOTAL\s+AGE\nblue\s+true\s+254\s+2\s+256\s/, 'CRD printer columns from deploy/crds');
  t.match(await k.ok(['get', 'crds']), /loadbalancerippools\.lb\.pharos\.io/);

  // get -w for a bounded time sees a status change.
  const watching = k.run(['get', 'svc', 'echo', '-w', '--request-timeout=3s'], { timeoutMs: 4000 });
  await eventually(() => api.openWatches() === 1, 3000, 'kubectl watch open');
  api.objects.put('services', { ...api.objects.get('services', 'default', 'echo'), status: { loadBalancer: { ingress: [{ ip: '198.18.100.1' }] } } });
  await new Promise((r) => setTimeout(r, 300));
  api.closeAllWatches();
  const w = await watching;
  t.match(w.stdout, /echo\s+LoadBalancer\s+\S+\s+<pending>[\s\S]*echo\s+LoadBalancer\s+\S+\s+198\.18\.100\.1\s/, 'watch printed the new EXTERNAL-IP');

  await k.ok(['apply', '--server-side', '--validate=false', '-f', '-'], 'apiVersion: v1\nkind: Service\nmetadata: {name: ssa, labels: {a: "1", b: "2"}}\nspec:\n  ports: [{port: 80}]\n');
  await k.ok(['label', 'svc', 'ssa', 'manual=yes']);
  t.match(await k.ok(['apply', '--server-side', '--validate=false', '-f', '-'], 'apiVersion: v1\nkind: Service\nmetadata: {name: ssa, labels: {a: "1"}}\nspec:\n  ports: [{port: 80}]\n'), /serverside-applied/);
  t.same(JSON.parse(await k.ok(['get', 'svc', 'ssa', '-o', 'jsonpath={.metadata.labels}'])), { a: '1', manual: 'yes' }, 'kubectl apply --server-side');

  const bad = await k.run(['apply', '--validate=false', '-f', '-'], { input: 'apiVersion: lb.pharos.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: red}\nspec:\n  blocks: [{cidr: "10.0.0.0/8/8"}]\n' });
  t.not(bad.code, 0, 'an invalid pool is refused');
  t.match(bad.stderr, /is invalid: spec\.blocks\[0\]\.cidr/);

  // Typed `kubectl create` commands send protobuf; the emulator decodes the kinds they make.
  await k.ok(['create', 'namespace', 'team']);
  await k.ok(['-n', 'team', 'create', 'service', 'loadbalancer', 'web', '--tcp=80:8080', '--tcp=443:https']);
  const web = JSON.parse(await k.ok(['-n', 'team', 'get', 'svc', 'web', '-o', 'json']));
  const wanted = JSON.parse(await k.ok(['-n', 'team', 'create', 'service', 'loadbalancer', 'web', '--tcp=80:8080', '--tcp=443:https', '--dry-run=client', '-o', 'json']));
  t.same(web.spec.ports.map((p: any) => ({ ...p, nodePort: undefined })), wanted.spec.ports.map((p: any) => ({ ...p, nodePort: undefined })), 'protobuf ports decoded');
  t.same([web.spec.type, web.spec.selector, web.metadata.labels, web.spec.sessionAffinity], ['LoadBalancer', { app: 'web' }, { app: 'web' }, 'None'], 'protobuf spec decoded, defaults applied');
  await k.ok(['-n', 'kube-system', 'create', 'secret', 'generic', 'bgp', '--from-literal=password=s3cret']);
  t.equal(Buffer.from(await k.ok(['-n', 'kube-system', 'get', 'secret', 'bgp', '-o', 'jsonpath={.data.password}']), 'base64').toString(), 's3cret');
  t.match(await k.ok(['-n', 'team', 'describe', 'svc', 'web']), /Type:\s+LoadBalancer[\s\S]*NodePort:\s+80-8080\s+3\d{4}\/TCP/);
  t.match(await k.ok(['-n', 'team', 'wait', '--for=jsonpath={.spec.type}=LoadBalancer', 'svc/web', '--timeout=5s']), /condition met/);
  await k.ok(['delete', 'namespace', 'team']);
  t.equal(api.objects.get('services', 'team', 'web'), undefined, 'namespace deletion removed its service');

  t.match(await k.ok(['delete', 'svc', 'echo']), /service "echo" deleted/);
  t.equal(api.objects.get('services', 'default', 'echo'), undefined);
  // Whole manifests (the examples' Deployment, the agent's RBAC and DaemonSet) apply: such kinds are stored.
  await k.ok(['apply', '--validate=false', '-f', 'deploy/examples/', '-f', 'deploy/kubernetes/']);
  t.ok(api.objects.get('daemonsets', 'pharos-system', 'pharos') && api.objects.get('clusterroles', undefined, 'pharos'), 'stored-only kinds kept');
  t.match(await k.ok(['api-resources']), /services\s+svc\s+v1\s+true\s+Service/);
  // kubectl scale through the /scale subresource: spec.replicas and the generation move, as a spec edit does.
  const echoDeploy = api.objects.get('deployments', 'default', 'echo')!;
  t.match(await k.ok(['scale', 'deployment/echo', '--replicas=3']), /deployment.apps\/echo scaled/);
  const scaled = api.objects.get('deployments', 'default', 'echo')!;
  t.same([scaled.spec.replicas, scaled.metadata.generation], [3, echoDeploy.metadata.generation + 1]);
  const scale = JSON.parse(await k.ok(['get', '--raw', '/apis/apps/v1/namespaces/default/deployments/echo/scale']));
  t.same([scale.kind, scale.spec.replicas, scale.status.selector], ['Scale', 3, 'app=echo']);
  const stale = await k.run(['scale', 'deployment/echo', '--replicas=1', '--current-replicas=2']);
  t.not(stale.code, 0, '--current-replicas that does not hold is refused');
  t.equal(api.objects.get('deployments', 'default', 'echo')!.spec.replicas, 3);
});
