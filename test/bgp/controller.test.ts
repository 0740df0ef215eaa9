/**
 * Store → policy → speaker → a scripted peer: nothing before the store has
 * synced, then an assigned address becomes a route and a removed service
 * a withdrawal.
 */
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { parseObject } from '../../src/model/parse.js';
import type { ModelObject } from '../../src/model/types.js';
import { Store } from '../../src/store/store.js';
import { BgpSpeaker } from '../../src/bgp/speaker.js';
import { serviceScope } from '../../src/model/scope.js';
import { ReconcileLoop } from '../../src/agent/reconcile-loop.js';
import { BgpController } from '../../src/bgp/controller.js';
import { endOfRibFamily } from '../../src/bgp/codec.js';
import { ScriptedPeer } from './support/scripted-peer.js';

function obj(yaml: string): ModelObject {
  const r = parseObject(parseYaml(yaml));
  if (!r.ok) throw new Error(JSON.stringify(r));
  return r.object;
}

t.test('store changes become UPDATEs, only after the store synced', async (t) => {
  const peer = new ScriptedPeer();
  const port = await peer.start();
  const store = new Store();
  const speaker = new BgpSpeaker({ routerId: '192.0.2.100' });
  t.teardown(async () => {
    await speaker.stop();
    await peer.stop();
  });
  const controller = new BgpController(store, speaker, { nodeName: 'lb-1', isOurService: serviceScope(true) });
  // Driven by the agent's own loop: only the kinds BGP reads, nothing before the store synced.
  const loop = new ReconcileLoop({ store, requireSynced: true, onError: (_c, err) => t.fail(err.message) });
  loop.add(controller);
  loop.start();
  t.teardown(() => loop.stop());
  store.apply(obj(`
apiVersion: lb.pharos.io/v1alpha1
kind: BGPPeeringPolicy
metadata: { name: p }
spec:
  virtualRouters:
  - localASN: 65001
    neighbors: [ { peerAddress: 127.0.0.1, peerASN: 65000, peerPort: ${port}, connectRetryTimeSeconds: 1 } ]
`));
  const svc = (ip: string): ModelObject => obj(`
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { type: LoadBalancer, ports: [ { port: 80 } ] }
status: { loadBalancer: { ingress: [ { ip: "${ip}" } ] } }
`);
  store.apply(svc('198.51.100.10'));
  await new Promise((r) => setTimeout(r, 300));
  t.equal(peer.connections.length, 0, 'no session before the store synced');
  store.markSynced();
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  const first = await c.next('update');
  t.same(first.nlri, ['198.51.100.10/32'], 'the whole table before End-of-RIB');
  t.equal(endOfRibFamily(await c.next('update')), 1);
  t.equal(endOfRibFamily(await c.next('update')), 2, 'End-of-RIB for IPv6 too (both families by default)');
  store.apply(svc('198.51.100.11'));
  const moved = [await c.next('update'), await c.next('update')];
  t.same(moved.flatMap((u) => u.withdrawn), ['198.51.100.10/32']);
  t.same(moved.flatMap((u) => u.nlri), ['198.51.100.11/32']);
  const appliedAt = controller.lastAppliedAt;
  store.apply(obj(`
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: { name: pharos-node-lb-1, namespace: kube-system }
spec: { holderIdentity: lb-1, renewTime: "2026-01-01T00:00:00.000000Z" }
`));
  await new Promise((r) => setTimeout(r, 20));
  t.equal(controller.lastAppliedAt, appliedAt, 'a Lease renewal does not recompute BGP');
  store.remove('Service', 'default/web');
  t.same((await c.next('update')).withdrawn, ['198.51.100.11/32'], 'a removed service is withdrawn');
});
