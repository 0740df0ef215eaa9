/**
 * planSync (pure): desired frontends vs the current view → minimal operations.
 * DatapathSync.apply against real maps is covered by fixtures.test.ts and lab.test.ts.
 */
import t from 'tap';
import { planSync, frontendKeyString, backendKeyString, type View, type PlanOptions } from '../../src/datapath/sync.js';
import { FE_AFFINITY, FE_LOCAL_ONLY, FE_RESET_ON_REMOVE, FE_SOURCE_RANGES } from '../../src/datapath/abi.js';
import type { Backend, Frontend } from '../../src/model/types.js';

const M = 251; // prime > 100 × 2

function be(address: string, state: Backend['state'] = 'active', weight = 1): Backend {
  return { address, port: 8080, weight, state };
}

function fe(address: string, backends: Backend[], extra: Partial<Frontend> = {}): Frontend {
  return { service: 'ns/svc', kind: 'LoadBalancer', address, port: 80, protocol: 'TCP', backends, sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [], ...extra };
}

function emptyView(): View {
  return { frontends: new Map(), backends: new Map(), sourceRanges: new Map() };
}

function opts(): PlanOptions {
  return { maglevM: M, maxFrontends: 16, maxBackends: 16, cursor: { frontend: 1, backend: 1 } };
}

/** Apply a plan to a view the way DatapathSync.apply does (for multi-step tests). */
function applyToView(view: View, plan: ReturnType<typeof planSync>): View {
  for (const b of plan.addBackends) view.backends.set(backendKeyString(b), b);
  for (const f of plan.frontends) {
    const prev = view.frontends.get(f.key);
    view.frontends.set(f.key, { id: f.id, address: f.address, port: f.port, protocol: f.protocol, value: f.value, table: f.table ?? prev!.table });
  }
  for (const f of plan.removeFrontends) view.frontends.delete(frontendKeyString(f));
  for (const b of plan.removeBackends) view.backends.delete(backendKeyString(b));
  return view;
}

t.test('a new frontend gets ids, backends and a full table', async (t) => {
  const plan = planSync(emptyView(), [fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2')])], opts());
  t.same(plan.errors, []);
  t.same(plan.addBackends.map((b) => b.id), [1, 2]);
  t.equal(plan.frontends.length, 1);
  const f = plan.frontends[0]!;
  t.equal(f.id, 1);
  t.equal(f.value.backends, 2);
  t.ok(f.writeValue);
  t.equal(f.table!.length, M);
  t.same(new Set(f.table), new Set([1, 2]));
});

t.test('applying the same desired state twice is a no-op', async (t) => {
  const desired = [fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2')]), fe('2001:db8::1', [be('2001:db8:2::1')])];
  const o = opts();
  const view = applyToView(emptyView(), planSync(emptyView(), desired, o));
  const again = planSync(view, [...desired].reverse(), o);
  t.same(again.addBackends, []);
  t.same(again.removeBackends, []);
  t.same(again.removeFrontends, []);
  t.ok(again.frontends.every((f) => !f.writeValue && f.table === undefined), 'nothing rewritten');
});

t.test('terminating and maintenance backends stay in the map but leave the table', async (t) => {
  const o = opts();
  const view = applyToView(emptyView(), planSync(emptyView(), [fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2')])], o));
  const plan = planSync(view, [fe('198.51.100.1', [be('198.18.2.1', 'terminating'), be('198.18.2.2')])], o);
  t.same(plan.removeBackends, [], 'terminating backend kept (its flows continue)');
  const f = plan.frontends[0]!;
  t.same(new Set(f.table), new Set([2]), 'table holds only the active backend');
  t.equal(f.value.backends, 1);
  const only = planSync(view, [fe('198.51.100.1', [be('198.18.2.1', 'maintenance'), be('198.18.2.2', 'terminating')])], o);
  t.equal(only.frontends[0]!.value.backends, 0, 'no active backend: new flows are no_backend');
  t.equal(only.frontends[0]!.table!.length, 0);
});

t.test('removed backends and frontends are deleted; unaffected frontends untouched', async (t) => {
  const o = opts();
  const a = fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2')]);
  const b = fe('198.51.100.2', [be('198.18.2.3')]);
  const view = applyToView(emptyView(), planSync(emptyView(), [a, b], o));
  const plan = planSync(view, [fe('198.51.100.1', [be('198.18.2.1')])], o);
  t.same(plan.removeFrontends.map((f) => f.address), ['198.51.100.2']);
  t.same(plan.removeBackends.map((b) => b.address).sort(), ['198.18.2.2', '198.18.2.3']);
  t.same(new Set(plan.frontends[0]!.table), new Set([1]));
});

t.test('ids are stable and not reused at once', async (t) => {
  const o = opts();
  let view = applyToView(emptyView(), planSync(emptyView(), [fe('198.51.100.1', [be('198.18.2.1')])], o));
  view = applyToView(view, planSync(view, [fe('198.51.100.1', [be('198.18.2.2')])], o));
  t.equal(view.backends.get('198.18.2.2|8080')!.id, 2, 'new backend takes the next id, not the freed 1');
  t.equal(view.frontends.get('TCP/198.51.100.1/80')!.id, 1);
  view = applyToView(view, planSync(view, [fe('198.51.100.1', [be('198.18.2.2')]), fe('198.51.100.9', [be('198.18.2.2')])], o));
  t.equal(view.frontends.get('TCP/198.51.100.9/80')!.id, 2);
});

t.test('flags: reset policy and local-only', async (t) => {
  const plan = planSync(emptyView(), [fe('198.51.100.1', [be('198.18.2.1')], { removedBackendPolicy: 'reset', localOnly: true })], opts());
  t.equal(plan.frontends[0]!.value.flags, FE_RESET_ON_REMOVE | FE_LOCAL_ONLY);
});

t.test('full maps and bad input are reported, the rest still planned', async (t) => {
  const o = { ...opts(), maxFrontends: 3, maxBackends: 3 }; // ids 1..2
  const plan = planSync(emptyView(), [
    fe('198.51.100.1', [be('198.18.2.1')]),
    fe('198.51.100.2', [be('198.18.2.2')]),
    fe('198.51.100.3', [be('198.18.2.1')]),
    fe('198.51.100.4', [be('2001:db8::1')]),
    fe('198.51.100.5', [], { protocol: 'SCTP' }),
  ], o);
  t.same(plan.frontends.map((f) => f.address), ['198.51.100.1', '198.51.100.2']);
  t.match(plan.errors, [
    { object: 'TCP/198.51.100.4/80', message: /not an IPv4 address/ },
    { object: 'SCTP/198.51.100.5/80', message: /SCTP/ },
    { object: 'TCP/198.51.100.3/80', map: 'ph_frontends', message: /frontend map full/ },
  ]);
  const b = planSync(emptyView(), [fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2'), be('198.18.2.3')])], o);
  t.match(b.errors, [{ map: 'ph_backends', message: /backend map full/ }]);
  t.same(new Set(b.frontends[0]!.table), new Set([1, 2]), 'table built from the backends that fit');
});

t.test('too many backends for M keeps the previous table', async (t) => {
  const o = { ...opts(), maglevM: 101, maxBackends: 64 };
  const view = applyToView(emptyView(), planSync(emptyView(), [fe('198.51.100.1', [be('198.18.2.1')])], o));
  const plan = planSync(view, [fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2')])], o);
  t.match(plan.errors, [{ message: /too small/ }]);
  t.equal(plan.frontends[0]!.table, undefined, 'published table unchanged');
});

t.test('issue 8 plan: affinity/source-range flags, default timeout, per-family ranges, members, draining backends', async (t) => {
  const o = opts();
  const plan = planSync(emptyView(), [
    fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2', 'maintenance')], { sessionAffinity: true, sessionAffinityTimeoutSeconds: 0, sourceRanges: ['192.0.2.0/24', '2001:db8::/32', 'bogus/99'] }),
    fe('2001:db8:100::1', [], { sourceRanges: ['192.0.2.0/24'] }),
  ], o);
  const [v4, v6] = plan.frontends;
  t.equal(v4!.value.flags, FE_AFFINITY | FE_SOURCE_RANGES);
  t.equal(v4!.value.affinityTimeout, 10800, 'Kubernetes default');
  t.equal(v4!.sourceRangeKeys.size, 1, 'only the IPv4 range (the bad one reported)');
  t.match(plan.errors, [{ message: /loadBalancerSourceRanges/ }]);
  t.equal(v4!.memberIds.size, 1, 'only the active backend may take affinity flows');
  t.equal(v6!.value.flags & FE_SOURCE_RANGES, 0, 'IPv4-only ranges leave the IPv6 frontend open');
  t.same(plan.addBackends.filter((b) => b.draining).map((b) => b.address), ['198.18.2.2']);
});

t.test('backends on the node\'s own addresses are marked local; a change of addresses updates them in place', async (t) => {
  const desired = [fe('198.51.100.1', [be('198.18.0.2'), be('198.18.2.1')])];
  const local = { ...opts(), localAddresses: new Set(['198.18.0.2']) };
  const plan = planSync(emptyView(), desired, local);
  t.same(plan.addBackends.map((b) => [b.address, Boolean(b.local)]), [['198.18.0.2', true], ['198.18.2.1', false]]);
  const view = applyToView(emptyView(), plan);
  t.same(planSync(view, desired, local).updateBackends, [], 'same addresses: nothing to rewrite');
  const moved = planSync(view, desired, { ...opts(), localAddresses: new Set(['198.18.2.1']) });
  t.same(moved.updateBackends.map((b) => [b.address, Boolean(b.local)]), [['198.18.0.2', false], ['198.18.2.1', true]], 'flags follow the addresses');
  t.same(moved.addBackends, [], 'same ids, no new backends');
});
