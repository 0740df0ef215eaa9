/**
 * What a Cilium user sees with kubectl once pharos runs their IPAM: the
 * IPAM controller (the agent's Kubernetes code, informer-fed store, real
 * client) writes Cilium's own pool conditions, so `kubectl get ippools`
 * with Cilium's CRD prints CONFLICTING and IPS AVAILABLE as Cilium would;
 * and a service no pool serves has no `ingress` list at all, so the
 * walkthroughs' jsonpath prints nothing instead of failing.
 */
import t from 'tap';
import { startApiServer } from '../../src/lab/apiserver/server.js';
import { KubeSource } from '../../src/sources/kube/source.js';
import { KubeWriter } from '../../src/sinks/kube/writer.js';
import { KubeIpamController } from '../../src/ipam/kube-controller.js';
import { Store } from '../../src/store/store.js';
import { Kubectl, eventually, kubeConfigFor } from './kube-support.js';
import { lbServiceObject } from '../../src/lab/manifests.js';

const silent = { info() {}, debug() {}, warn() {}, error() {}, with() { return silent; } };

t.test('Cilium pool columns and a pending service through kubectl', async (t) => {
  const api = await startApiServer({ cilium: true });
  t.teardown(() => api.close());
  const kubectl = new Kubectl(api.url);
  t.teardown(() => kubectl.cleanup());
  api.objects.put('ciliumloadbalancerippools', {
    apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumLoadBalancerIPPool', metadata: { name: 'blue-pool' },
    spec: { blocks: [{ cidr: '203.0.113.0/28' }], serviceSelector: { matchLabels: { color: 'blue' } } },
  });
  // Overlaps blue-pool and is younger: conflicting.
  api.objects.put('ciliumloadbalancerippools', {
    apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumLoadBalancerIPPool', metadata: { name: 'red-pool' },
    spec: { blocks: [{ cidr: '203.0.113.8/29' }], serviceSelector: { matchLabels: { color: 'red' } } },
  });
  for (const [name, color] of [['blue', 'blue'], ['lonely', 'green']] as const) {
    api.objects.put('services', lbServiceObject({ name, labels: { color } }));
  }
  const kc = kubeConfigFor(api.url);
  const store = new Store();
  const source = new KubeSource({ kc, store, namespace: 'kube-system', tuning: { maxBackoffMs: 2000 } });
  const writer = new KubeWriter({ kc, namespace: 'kube-system' });
  let wanted = true;
  const ipam = new KubeIpamController(store, {
    writer, nodeName: 'node-a', pharosIsDefaultClass: true, leaseMs: 2000, renewDeadlineMs: 1500, retryMs: 200,
    log: silent as never, requestReconcile: () => { wanted = true; },
  });
  const synced = new Promise<void>((r) => store.once('synced', () => r()));
  await source.start();
  await synced;
  t.teardown(async () => { await ipam.stop(); await source.stop(); });
  store.on('change', () => { wanted = true; });
  ipam.start();
  const pool = (n: string): any => api.objects.get('ciliumloadbalancerippools', undefined, n);
  await eventually(() => {
    if (wanted) { wanted = false; void ipam.reconcile(store.snapshot()); }
    const svc = (n: string): any => api.objects.get('services', 'default', n);
    return !!svc('blue')?.status?.loadBalancer?.ingress?.length && !!svc('lonely')?.status?.conditions?.length &&
      !!pool('blue-pool')?.status?.conditions?.length && !!pool('red-pool')?.status?.conditions?.length;
  }, 15_000, 'the IPAM\'s status writes');

  const rows = (await kubectl.ok(['get', 'ciliumloadbalancerippools', '--no-headers'])).trim().split('\n').map((l) => l.trim().split(/\s+/));
  t.comment(rows.map((r) => r.join(' ')).join('\n'));
  const row = (n: string): string[] => rows.find((r) => r[0] === n)!;
  t.same(row('blue-pool').slice(0, 4), ['blue-pool', 'false', 'False', '15'], 'blue-pool: not disabled, not conflicting, 16 - 1 used = 15 available');
  t.same(row('red-pool').slice(0, 4), ['red-pool', 'false', 'True', '0'], 'red-pool: conflicting, nothing available');
  t.match(pool('blue-pool').status.conditions, [{ type: 'lb.pharos.io/PoolConflict' }, { type: 'lb.pharos.io/InvalidSpec' }, { type: 'cilium.io/PoolConflict', status: 'False' },
    { type: 'cilium.io/IPsTotal', status: 'Unknown', reason: 'noreason', message: '16' }, { type: 'cilium.io/IPsAvailable', message: '15' }, { type: 'cilium.io/IPsUsed', message: '1' }]);

  const lonely = api.objects.get('services', 'default', 'lonely') as any;
  t.notOk('ingress' in (lonely.status.loadBalancer ?? {}), `a pending service has no ingress list: ${JSON.stringify(lonely.status.loadBalancer)}`);
  const ip = await kubectl.run(['get', 'svc', 'lonely', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}']);
  t.equal(ip.code, 0, `kubectl jsonpath on a pending service exits 0 (${ip.stderr.trim()})`);
  t.equal(ip.stdout, '', 'and prints nothing');
});
