/**
 * The IPAM controller against a real Store and an in-memory sink that echoes
 * status back into the store, as the API server (or the manifests overlay) does.
 */
import t from 'tap';
import { IpamController } from '../../src/ipam/controller.js';
import { MemoryStatusSink } from './memory-sink.js';
import { IPAM_CONDITION } from '../../src/ipam/allocator.js';
import { Store } from '../../src/store/store.js';
import type { Condition } from '../../src/model/types.js';
import { pool, svc } from './fixtures.js';

/** Writes into the store like the API server would, so the next snapshot shows our status. */
class EchoSink extends MemoryStatusSink {
  constructor(private readonly store: Store) {
    super();
  }
  override async writeServiceStatus(key: string, ingress: string[], condition: Condition | null): Promise<void> {
    await super.writeServiceStatus(key, ingress, condition);
    const current = this.store.get('Service', key);
    if (!current) return;
    const others = current.status.conditions.filter((c) => c.type !== IPAM_CONDITION);
    this.store.setServiceStatus(key, { ingress: ingress.map((ip) => ({ ip })), conditions: condition ? [...others, condition] : others });
  }
}

function setup(now = new Date('2024-06-01T00:00:00Z')) {
  const store = new Store();
  const sink = new EchoSink(store);
  let clock = now;
  const controller = new IpamController({ sink, pharosIsDefaultClass: true, now: () => clock });
  return { store, sink, controller, tick: (s: number) => (clock = new Date(clock.getTime() + s * 1000)) };
}

t.test('first sync writes service and pool status; a second sync with nothing new writes nothing', async (t) => {
  const { store, sink, controller } = setup();
  store.apply(pool({ name: 'blue-pool', blocks: ['192.0.2.0/30'] }));
  store.apply(svc({ name: 'a', created: '2024-01-01T00:00:01Z' }));
  store.apply(svc({ name: 'b', created: '2024-01-01T00:00:02Z' }));
  const first = await controller.sync(store.snapshot());
  t.same(first, { servicesWritten: 2, poolsWritten: 1, errors: [], conflicts: [] });
  t.same(sink.services.get('default/a')?.ingress, ['192.0.2.0']);
  t.same(sink.services.get('default/b')?.ingress, ['192.0.2.1']);
  t.equal(sink.services.get('default/a')?.condition?.lastTransitionTime, '2024-06-01T00:00:00Z');
  t.equal(sink.pools.get('blue-pool')?.available, '2');
  const echo = await controller.sync(store.snapshot());
  t.same(echo, { servicesWritten: 0, poolsWritten: 0, errors: [], conflicts: [] }, 'the status echo causes no write');
  const idle = await controller.sync(store.snapshot());
  t.same(idle, { servicesWritten: 0, poolsWritten: 0, errors: [], conflicts: [] });
});

t.test('a restarted controller adopts status and rewrites nothing', async (t) => {
  const { store, controller } = setup();
  store.apply(pool({ name: 'blue-pool', blocks: ['192.0.2.0/30'] }));
  store.apply(svc({ name: 'old', created: '2024-01-01T00:00:09Z' }));
  await controller.sync(store.snapshot());
  store.apply(svc({ name: 'older', created: '2024-01-01T00:00:01Z' }));
  await controller.sync(store.snapshot());
  const statuses = new Map([...store.snapshot().services].map(([k, s]) => [k, s.status.ingress.map((i) => i.ip)]));
  t.same(Object.fromEntries(statuses), { 'default/old': ['192.0.2.0'], 'default/older': ['192.0.2.1'] });

  const sink2 = new MemoryStatusSink();
  const restarted = new IpamController({ sink: sink2, pharosIsDefaultClass: true });
  const report = await restarted.sync(store.snapshot());
  t.equal(report.servicesWritten, 0, 'no service status rewritten');
  t.same(restarted.exportState().services, { 'default/old': ['192.0.2.0'], 'default/older': ['192.0.2.1'] }, 'the older service did not take .0');
});

t.test('only the changed service is written; other services keep their addresses', async (t) => {
  const { store, sink, controller } = setup();
  store.apply(pool({ name: 'blue-pool', blocks: ['192.0.2.0/29'], selector: { matchLabels: { color: 'blue' } } }));
  for (let i = 0; i < 4; i++) store.apply(svc({ name: `s${i}`, created: `2024-01-01T00:00:0${i}Z`, labels: { color: 'blue' } }));
  await controller.sync(store.snapshot());
  await controller.sync(store.snapshot());
  sink.calls.length = 0;
  store.remove('Service', 'default/s1');
  store.apply(svc({ name: 's3', created: '2024-01-01T00:00:03Z', labels: { color: 'red' } }));
  await controller.sync(store.snapshot());
  t.same(sink.calls, ['service default/s3 - no_pool', 'pool blue-pool 6']);
  t.same(controller.exportState().services, { 'default/s0': ['192.0.2.0'], 'default/s2': ['192.0.2.2'] });
});

t.test('a failed write is reported with the key and retried on the next sync', async (t) => {
  const { store, sink, controller } = setup();
  store.apply(pool({ name: 'p', blocks: ['192.0.2.0/30'] }));
  store.apply(svc({ name: 'a' }));
  sink.failNext = 1;
  const first = await controller.sync(store.snapshot());
  t.equal(first.servicesWritten, 0);
  t.match(first.errors, [/^service default\/a: injected write failure/]);
  const second = await controller.sync(store.snapshot());
  t.equal(second.servicesWritten, 1, 'retried without any change in the store');
  t.same(sink.services.get('default/a')?.ingress, ['192.0.2.0']);
});

t.test('leaving scope releases the address and removes only our status; a foreign class is never written', async (t) => {
  const { store, sink, controller } = setup();
  store.apply(pool({ name: 'p', blocks: ['192.0.2.0/30'] }));
  store.apply(svc({ name: 'a', created: '2024-01-01T00:00:01Z' }));
  store.apply(svc({ name: 'foreign', class: 'example.com/other', ingress: ['198.51.100.7'] }));
  await controller.sync(store.snapshot());
  t.notOk(sink.services.has('default/foreign'), 'foreign class untouched');
  const other: Condition = { type: 'example.com/Ready', status: 'True', reason: 'ok', message: '' };
  const current = store.get('Service', 'default/a')!;
  store.setServiceStatus('default/a', { ...current.status, conditions: [...current.status.conditions, other] });
  store.apply({ ...svc({ name: 'a', created: '2024-01-01T00:00:01Z', type: 'ClusterIP' }), status: store.get('Service', 'default/a')!.status });
  await controller.sync(store.snapshot());
  t.same(sink.services.get('default/a'), { ingress: [], condition: null });
  t.same(store.get('Service', 'default/a')!.status.conditions, [other], 'the other controller\'s condition stays');
  t.same(controller.exportState().services, {});
  store.apply(svc({ name: 'b' }));
  await controller.sync(store.snapshot());
  t.same(sink.services.get('default/b')?.ingress, ['192.0.2.0'], 'the freed address is handed out again');
  t.notOk(sink.services.has('default/foreign'));
});

t.test('manifests mode: exported state brings the same addresses back without any status', async (t) => {
  const { store, controller } = setup();
  store.apply(pool({ name: 'p', blocks: ['192.0.2.0/30'] }));
  store.apply(svc({ name: 'a', created: '2024-01-01T00:00:01Z' }));
  store.apply(svc({ name: 'b', created: '2024-01-01T00:00:02Z' }));
  await controller.sync(store.snapshot());
  store.remove('Service', 'default/a');
  store.apply(svc({ name: 'c', created: '2024-01-01T00:00:03Z' }));
  await controller.sync(store.snapshot());
  const state = JSON.parse(JSON.stringify(controller.exportState()));
  t.same(state, { version: 1, services: { 'default/b': ['192.0.2.1'], 'default/c': ['192.0.2.0'] } });

  const fresh = new Store();
  fresh.apply(pool({ name: 'p', blocks: ['192.0.2.0/30'] }));
  fresh.apply(svc({ name: 'b', created: '2024-01-01T00:00:02Z' }));
  fresh.apply(svc({ name: 'c', created: '2024-01-01T00:00:03Z' }));
  const sink = new MemoryStatusSink();
  const again = new IpamController({ sink, pharosIsDefaultClass: true });
  again.importState(state);
  await again.sync(fresh.snapshot());
  t.same(sink.services.get('default/b')?.ingress, ['192.0.2.1']);
  t.same(sink.services.get('default/c')?.ingress, ['192.0.2.0']);
  t.throws(() => again.importState(state), /before the first sync/);
  t.throws(() => new IpamController({ sink, pharosIsDefaultClass: true }).importState({ version: 2 } as never), /unsupported IPAM state/);
});

t.test('lastTransitionTime moves only when the condition status flips', async (t) => {
  const { store, sink, controller, tick } = setup();
  store.apply(pool({ name: 'p', blocks: ['192.0.2.0/32'] }));
  store.apply(svc({ name: 'a', created: '2024-01-01T00:00:01Z' }));
  store.apply(svc({ name: 'b', created: '2024-01-01T00:00:02Z' }));
  await controller.sync(store.snapshot());
  t.equal(sink.services.get('default/b')?.condition?.reason, 'out_of_ips');
  t.equal(sink.services.get('default/b')?.condition?.lastTransitionTime, '2024-06-01T00:00:00Z');
  tick(60);
  store.apply(pool({ name: 'p', blocks: ['192.0.2.0/32'], selector: { matchLabels: { x: 'y' } } }));
  store.apply(pool({ name: 'q', blocks: ['198.51.100.0/32'], selector: { matchLabels: { x: 'z' } } }));
  await controller.sync(store.snapshot());
  t.equal(sink.services.get('default/b')?.condition?.reason, 'no_pool', 'reason changed');
  t.equal(sink.services.get('default/b')?.condition?.lastTransitionTime, '2024-06-01T00:00:00Z', 'still False: time kept');
  tick(60);
  store.apply(svc({ name: 'b', created: '2024-01-01T00:00:02Z', labels: { x: 'z' } }));
  await controller.sync(store.snapshot());
  t.equal(sink.services.get('default/b')?.condition?.status, 'True');
  t.equal(sink.services.get('default/b')?.condition?.lastTransitionTime, '2024-06-01T00:02:00Z', 'flipped to True: time moved');
  t.equal(sink.pools.get('q')?.conditions[0]?.lastTransitionTime, '2024-06-01T00:01:00Z');
});

t.test('release after a restart removes addresses of our pools and keeps others', async (t) => {
  const { store, sink, controller } = setup();
  store.apply(pool({ name: 'p', blocks: ['192.0.2.0/30'] }));
  const ours: Condition = { type: IPAM_CONDITION, status: 'True', reason: 'satisfied', message: 'assigned 192.0.2.1 (pool p)' };
  store.apply(svc({ name: 'a', type: 'NodePort', ingress: ['192.0.2.1', '203.0.113.5'], conditions: [ours] }));
  const report = await controller.sync(store.snapshot());
  t.equal(report.servicesWritten, 1);
  t.same(sink.services.get('default/a'), { ingress: ['203.0.113.5'], condition: null });
  t.same(await controller.sync(store.snapshot()), { servicesWritten: 0, poolsWritten: 0, errors: [], conflicts: [] }, 'done once');
});
