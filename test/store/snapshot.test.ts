/**
 * Store snapshots are immutable views; a kind that did not change keeps the
 * very same map (a lease renewal must not copy every service), and a kind
 * that did gets a fresh one that older snapshots never see.
 */
import t from 'tap';
import { Store } from '../../src/store/store.js';
import type { Lease, Service } from '../../src/model/types.js';
import { modelService } from '../../src/lab/manifests.js';

function lease(name: string, holder: string): Lease {
  return { kind: 'Lease', meta: { name, namespace: 'kube-system', labels: {}, annotations: {} }, holderIdentity: holder } as unknown as Lease;
}

function service(name: string, port: number): Service {
  return modelService({ name }, { ports: [{ name: 'http', protocol: 'TCP', port, targetPort: port }] });
}

t.test('unchanged kinds share their map between snapshots; changed kinds do not leak into older ones', async (t) => {
  const store = new Store();
  store.apply(service('a', 80));
  store.apply(lease('pharos-node-n1', 'n1'));
  const first = store.snapshot();
  t.equal(store.snapshot(), first, 'no change: the same snapshot');
  store.apply(lease('pharos-node-n1', 'n2'));
  const second = store.snapshot();
  t.not(second, first);
  t.equal(second.services, first.services, 'services did not change: same map');
  t.not(second.leases, first.leases, 'leases did: a new map');
  t.equal((first.leases.get('kube-system/pharos-node-n1') as unknown as { holderIdentity: string }).holderIdentity, 'n1', 'the older snapshot still sees the old lease');
  store.apply(service('b', 81));
  const third = store.snapshot();
  t.equal(third.leases, second.leases);
  t.equal(third.services.size, 2);
  t.equal(second.services.size, 1, 'an older snapshot never sees a later service');
  store.setServiceStatus('default/a', { ingress: [{ ip: '198.18.0.1' }], conditions: [] });
  const fourth = store.snapshot();
  t.not(fourth.services, third.services, 'a status write is a change of services');
  t.same(fourth.services.get('default/a')!.status.ingress, [{ ip: '198.18.0.1' }]);
  t.same(third.services.get('default/a')!.status.ingress, []);
});
