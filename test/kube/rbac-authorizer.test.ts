/**
 * The emulator's RBAC (src/lab/apiserver/rbac.ts), decided as upstream's
 * RBAC authorizer does, and enforced on HTTP for a token mapped to a user:
 * the real client gets 403 Forbidden with upstream's wording, and the
 * Kubernetes source runs with deploy/kubernetes/rbac.yaml's grants only
 * (Secrets read in pharos-system, never elsewhere).
 */
import { Buffer } from 'node:buffer';
import t from 'tap';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { authorize, groupsOf, ruleAllows, serviceAccountUser, type RbacObjects } from '../../src/lab/apiserver/rbac.js';
import { startApiServer } from '../../src/lab/apiserver/server.js';
import { KubeSource } from '../../src/sources/kube/source.js';
import { Store } from '../../src/store/store.js';
import { deployDocuments, pluralOf } from './agent-lab.js';

const SA = serviceAccountUser('pharos-system', 'pharos');

t.test('rules: verbs, groups, */subresource, resourceNames never match a request without a name', async (t) => {
  const rule = { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'list'], resourceNames: ['pharos-ipam'] };
  const lease = { apiGroup: 'coordination.k8s.io', resource: 'leases', namespace: 'x' };
  t.ok(ruleAllows(rule, { ...lease, verb: 'get', name: 'pharos-ipam' }), 'get of the named lease');
  t.notOk(ruleAllows(rule, { ...lease, verb: 'get', name: 'other' }), 'get of another lease');
  t.notOk(ruleAllows(rule, { ...lease, verb: 'create' }), 'create carries no name: resourceNames cannot allow it');
  t.notOk(ruleAllows(rule, { ...lease, verb: 'list' }), 'nor a list without a metadata.name field selector');
  t.ok(ruleAllows({ apiGroups: [''], resources: ['*/status'], verbs: ['patch'] }, { apiGroup: '', resource: 'services', subresource: 'status', verb: 'patch' }), '*/status');
  t.notOk(ruleAllows({ apiGroups: [''], resources: ['services'], verbs: ['patch'] }, { apiGroup: '', resource: 'services', subresource: 'status', verb: 'patch' }), 'services does not grant services/status');
  t.notOk(ruleAllows({ apiGroups: ['apps'], resources: ['services'], verbs: ['*'] }, { apiGroup: '', resource: 'services', verb: 'get' }), 'another group');
});

t.test('bindings: a ClusterRoleBinding reaches every namespace, a RoleBinding its own only, service accounts by namespace', async (t) => {
  const objects: RbacObjects = {
    clusterRoles: [{ metadata: { name: 'reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] }],
    roles: [{ metadata: { name: 'r', namespace: 'a' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['list'] }] }],
    roleBindings: [
      { metadata: { name: 'rb', namespace: 'a' }, roleRef: { kind: 'Role', name: 'r' }, subjects: [{ kind: 'ServiceAccount', name: 'pharos' }] },
      { metadata: { name: 'crb-in-b', namespace: 'b' }, roleRef: { kind: 'ClusterRole', name: 'reader' }, subjects: [{ kind: 'Group', name: 'system:serviceaccounts:a' }] },
    ],
    clusterRoleBindings: [],
  };
  const a = serviceAccountUser('a', 'pharos');
  const as = { user: a, groups: groupsOf(a) };
  t.ok(authorize(objects, { ...as, verb: 'list', apiGroup: '', resource: 'secrets', namespace: 'a' }).allowed, 'Role in its namespace (subject namespace from the binding)');
  t.notOk(authorize(objects, { ...as, verb: 'list', apiGroup: '', resource: 'secrets', namespace: 'c' }).allowed, 'not in another namespace');
  t.notOk(authorize(objects, { ...as, verb: 'list', apiGroup: '', resource: 'secrets' }).allowed, 'nor at the cluster scope');
  t.ok(authorize(objects, { ...as, verb: 'get', apiGroup: '', resource: 'pods', namespace: 'b', name: 'p' }).allowed, 'ClusterRole through a RoleBinding, by group');
  const d = authorize(objects, { ...as, verb: 'get', apiGroup: '', resource: 'pods', namespace: 'c', name: 'p' });
  t.equal(d.reason, `User "${a}" cannot get resource "pods" in API group "" in the namespace "c"`, 'upstream wording');
  const other = serviceAccountUser('z', 'pharos');
  t.notOk(authorize(objects, { user: other, groups: groupsOf(other), verb: 'list', apiGroup: '', resource: 'secrets', namespace: 'a' }).allowed, 'a same-named service account elsewhere is someone else');
});

t.test('enforced on HTTP: the agent\'s token gets exactly deploy/kubernetes/rbac.yaml', async (t) => {
  const api = await startApiServer({ rbac: { users: { 'sa-token': SA } } });
  t.teardown(() => api.close());
  for (const doc of deployDocuments()) api.objects.put(pluralOf(doc.kind), doc);
  const secret = (namespace: string, password: string) => api.objects.put('secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bgp', namespace }, data: { password: Buffer.from(password).toString('base64') } });
  secret('pharos-system', 'ours');
  secret('kube-system', 'theirs');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'emu', server: api.url, skipTLSVerify: true }], users: [{ name: 'sa', token: 'sa-token' }],
    contexts: [{ name: 'c', cluster: 'emu', user: 'sa' }], currentContext: 'c',
  });
  const code = (p: Promise<unknown>) => p.then(() => 200, (e: { code?: number; body?: string }) => ({ code: e.code, message: JSON.parse(e.body ?? '{}').message }));
  const core = kc.makeApiClient(CoreV1Api);
  t.same(await code(core.listNamespacedSecret({ namespace: 'kube-system' })), {
    code: 403, message: 'secrets is forbidden: User "system:serviceaccount:pharos-system:pharos" cannot list resource "secrets" in API group "" in the namespace "kube-system"',
  }, 'Secrets elsewhere: 403 with upstream\'s message');
  t.equal(await code(core.listNamespacedSecret({ namespace: 'pharos-system' })), 200, 'Secrets of pharos-system: allowed');
  const leases = kc.makeApiClient(CoordinationV1Api);
  t.match(await code(leases.createNamespacedLease({ namespace: 'kube-system', body: { metadata: { name: 'kube-scheduler' }, spec: {} } })), { code: 403 }, 'no Lease outside pharos-system');
  t.match(await code(core.patchNamespacedService({ namespace: 'default', name: 'x', body: {} })), { code: 403 }, 'no write to a Service\'s spec');
  t.equal(api.requestCounts()['list secrets'], 2, 'a refused request is still recorded');

  const store = new Store();
  const source = new KubeSource({ kc, store, namespace: 'pharos-system', secrets: true, tuning: { maxBackoffMs: 2000 } });
  const warnings: string[] = [];
  source.on('warning', (w) => warnings.push(w));
  const synced = new Promise<void>((resolve) => store.once('synced', () => resolve()));
  await source.start();
  t.teardown(() => source.stop());
  await Promise.race([synced, new Promise((_, reject) => setTimeout(() => reject(new Error(`never synced: ${warnings.join(' | ')}`)), 10_000))]);
  t.same([...store.snapshot().secrets.keys()], ['pharos-system/bgp'], 'the namespaced informer: the Secret of pharos-system, nothing else');
  t.same(warnings.filter((w) => /403/.test(w)), [], 'no 403 on the way');
});
