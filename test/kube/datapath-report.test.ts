/**
 * Kubernetes mode's report of services a node cannot carry in full
 * (src/datapath/kube-reporter.ts): the pure merge of node entries into the
 * shared condition, then two nodes' reporters against the API emulator
 * through the real client (informer-fed store, KubeWriter): each node's
 * entry lands beside the other's and beside the IPAM's condition whatever
 * the write order and conflicts, a Warning event per node and problem, and
 * the condition turns True once the last node carries the service.
 */
import t from 'tap';
import { startApiServer } from '../../src/lab/apiserver/server.js';
import { KubeSource } from '../../src/sources/kube/source.js';
import { KubeWriter } from '../../src/sinks/kube/writer.js';
import { DATAPATH_CONDITION, KubeDatapathReporter, mergeNodeProblem, nodeEntries } from '../../src/datapath/kube-reporter.js';
import { Store } from '../../src/store/store.js';
import type { Condition } from '../../src/model/types.js';
import { eventually, kubeConfigFor } from './kube-support.js';
import { lbServiceObject } from '../../src/lab/manifests.js';

const T0 = '2026-12-07T10:00:00Z';
const T1 = '2026-12-07T10:05:00Z';
const full = { reason: 'FrontendMapFull', message: '2 of 2 frontends not in the data path: the frontend map is full (65536)' };

t.test('merge: entries per node, False while any is left, True after the last', async (t) => {
  t.equal(mergeNodeProblem(undefined, 'n1', undefined, T0), undefined, 'never reported, nothing to say: no condition');
  const one = mergeNodeProblem(undefined, 'n1', full, T0)!;
  t.match(one, { type: DATAPATH_CONDITION, status: 'False', reason: 'FrontendMapFull', lastTransitionTime: T0 });
  t.equal(one.message, `node n1: FrontendMapFull: ${full.message}`);
  const two = mergeNodeProblem(one, 'n2', { reason: 'TooManyBackends', message: 'a | b' }, T1)!;
  t.equal(two.reason, 'NotProgrammed', 'nodes disagree on the reason: the general one');
  t.equal(two.lastTransitionTime, T0, 'still False: the transition time stays');
  t.same([...nodeEntries(two).keys()], ['n1', 'n2']);
  t.equal(nodeEntries(two).get('n2')!.message, 'a / b', 'a separator inside a message cannot split an entry');
  t.same(mergeNodeProblem(two, 'n1', full, T1), two, 'the same report again: the same condition (no write)');
  const back = mergeNodeProblem(two, 'n1', undefined, T1)!;
  t.same([...nodeEntries(back).keys()], ['n2']);
  t.equal(back.reason, 'TooManyBackends');
  const done = mergeNodeProblem(back, 'n2', undefined, T1)!;
  t.match(done, { status: 'True', reason: 'Programmed', lastTransitionTime: T1 });
  t.same(nodeEntries(done).size, 0);
  t.same(mergeNodeProblem(done, 'n1', undefined, T1), { ...done }, 'True stays True');
  const many = Array.from({ length: 400 }, (_, i) => `node-${i}`).reduce<Condition | undefined>((c, n) => mergeNodeProblem(c, n, { reason: 'BackendMapFull', message: 'x'.repeat(500) }, T0), undefined)!;
  t.ok(many.message.length <= 32_000, `400 nodes with long messages stay within the API's limit (${many.message.length})`);
});

t.test('two nodes report through the emulator: entries merge, events, recovery', async (t) => {
  const api = await startApiServer({});
  t.teardown(() => api.close());
  const kc = kubeConfigFor(api.url);
  api.objects.put('services', {
    ...lbServiceObject({ name: 'web' }),
    status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] }, conditions: [{ type: 'lb.pharos.io/IPAMRequestSatisfied', status: 'True', reason: 'Allocated', message: 'ok', lastTransitionTime: T0 }] },
  });
  const silent = { warn() {}, debug() {} };
  const nodes = ['n1', 'n2'].map((node) => {
    const store = new Store();
    const source = new KubeSource({ kc, store, namespace: 'kube-system', tuning: { maxBackoffMs: 2000 } });
    const writer = new KubeWriter({ kc, namespace: 'kube-system' });
    return { node, store, source, reporter: new KubeDatapathReporter({ writer, store, node, log: silent }) };
  });
  for (const n of nodes) {
    const synced = new Promise<void>((r) => n.store.once('synced', () => r()));
    await n.source.start();
    await synced;
    t.teardown(() => n.source.stop());
  }
  const conditions = (): Condition[] => ((api.objects.get('services', 'default', 'web') as any)?.status?.conditions ?? []) as Condition[];
  const ours = (): Condition | undefined => conditions().find((c) => c.type === DATAPATH_CONDITION);

  // A conflict on the first write: the writer re-reads and merges into the fresh object.
  api.failNext('patch', 409, { resource: 'services' });
  nodes[0]!.reporter.set('default/web', full);
  nodes[1]!.reporter.set('default/web', { reason: 'BackendMapFull', message: '1 of 2 frontends not in the data path' });
  await eventually(() => nodeEntries(ours()).size === 2, 10_000, 'both nodes\' entries');
  t.match(ours(), { status: 'False', reason: 'NotProgrammed' });
  t.ok(conditions().some((c) => c.type === 'lb.pharos.io/IPAMRequestSatisfied'), 'the IPAM condition is kept');
  t.same((api.objects.get('services', 'default', 'web') as any).status.loadBalancer.ingress, [{ ip: '198.51.100.7' }], 'the address is kept');

  await eventually(() => api.objects.list('events', 'default').length === 2, 10_000, 'one event per node');
  const events = api.objects.list('events', 'default') as any[];
  t.same(events.map((e) => [e.type, e.reason, e.source.host, e.involvedObject.name]).sort(), [['Warning', 'BackendMapFull', 'n2', 'web'], ['Warning', 'FrontendMapFull', 'n1', 'web']]);
  t.match(events.find((e) => e.source.host === 'n1').message, /^node n1: 2 of 2 frontends/);

  // The same problem again (another pass): nothing new written.
  await eventually(() => nodes.every((n) => nodeEntries(n.store.get('Service', 'default/web')?.status.conditions.find((c) => c.type === DATAPATH_CONDITION)).size === 2), 10_000, 'the stores to see both entries');
  const before = nodes.map((n) => (n.reporter as KubeDatapathReporter).written);
  nodes[0]!.reporter.set('default/web', full);
  await new Promise((r) => setTimeout(r, 300));
  t.same(nodes.map((n) => n.reporter.written), before, 'a repeated report writes nothing');
  t.equal(api.objects.list('events', 'default').length, 2, 'and sends no event');

  nodes[0]!.reporter.set('default/web', undefined);
  await eventually(() => nodeEntries(ours()).size === 1, 10_000, 'n1 carries it now');
  t.match(ours(), { status: 'False', reason: 'BackendMapFull' });
  nodes[1]!.reporter.set('default/web', undefined);
  await eventually(() => ours()?.status === 'True', 10_000, 'every node carries it');
  t.match(ours(), { reason: 'Programmed' });

  // A service that was never reported: its first (programmed) status writes nothing.
  api.objects.put('services', lbServiceObject({ name: 'quiet' }));
  await eventually(() => !!nodes[0]!.store.get('Service', 'default/quiet'), 10_000, 'the store to see it');
  const w = nodes[0]!.reporter.written;
  nodes[0]!.reporter.set('default/quiet', undefined);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(nodes[0]!.reporter.written, w);
  t.notOk(((api.objects.get('services', 'default', 'quiet') as any)?.status?.conditions ?? []).length, 'no condition on it');
});
