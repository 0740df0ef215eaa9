/**
 * DatapathPlanner (pure): the services that changed → the operations that
 * bring the maps in line, at a cost in proportion to the change.
 * DatapathSync against real maps is covered by fixtures.test.ts and the labs.
 */
import t from 'tap';
import { DatapathPlanner, type DatapathOps, type PlannerOptions } from '../../src/datapath/plan.js';
import { FE_AFFINITY, FE_DSR, FE_DSR_ENCAP, FE_DSR_L2, FE_LOCAL_ONLY, FE_RESET_ON_REMOVE, FE_SOURCE_RANGES } from '../../src/datapath/abi.js';
import { buildMaglevTable } from '../../src/datapath/maglev.js';
import type { Backend, Frontend } from '../../src/model/types.js';

function be(address: string, state: Backend['state'] = 'active', weight = 1): Backend {
  return { address, port: 8080, weight, state };
}

function fe(address: string, backends: Backend[], extra: Partial<Frontend> = {}): Frontend {
  return { service: 'ns/svc', kind: 'LoadBalancer', address, port: 80, protocol: 'TCP', backends, sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [], ...extra };
}

function planner(o: Partial<PlannerOptions> = {}): DatapathPlanner {
  return new DatapathPlanner({ maglev: { max: 65521 }, maxFrontends: 16, maxBackends: 16, maxTables: 16, ...o });
}

/** Everything, grouped by service (a full pass). */
function full(p: DatapathPlanner, frontends: Frontend[]): DatapathOps {
  const by = new Map<string, Frontend[]>();
  for (const f of frontends) by.set(f.service, [...(by.get(f.service) ?? []), f]);
  return p.plan(by, { full: true });
}

function writes(ops: DatapathOps): number {
  return ops.addBackends.length + ops.updateBackends.length + ops.addTables.length + ops.writeFrontends.length + ops.removeFrontends.length +
    ops.removeTables.length + ops.removeBackends.length + ops.addSourceRanges.length + ops.removeSourceRanges.length + ops.addMembers.length +
    ops.removeMembers.length + ops.addVips.length + ops.removeVips.length;
}

t.test('a new frontend gets ids, backends and a table sized from its backend count', async (t) => {
  const p = planner();
  const ops = full(p, [fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2')])]);
  t.same(ops.addBackends.map((b) => b.id), [1, 2]);
  t.equal(ops.writeFrontends.length, 1);
  const v = ops.writeFrontends[0]!.value;
  t.equal(v.id, 1);
  t.equal(v.backends, 2);
  t.equal(ops.addTables.length, 1);
  const table = ops.addTables[0]!;
  t.equal(table.m, 251, 'the smallest size above 100 × 2');
  t.equal(v.table, table.id);
  t.equal(v.tableSize, 251);
  t.same(new Set(table.slots), new Set([1, 2]));
  t.same(ops.addVips, ['198.51.100.1']);
  t.same(p.status('ns/svc'), { frontends: 1, programmed: 1, problems: [] });
});

t.test('the table is the Maglev table of the backends, by id, whatever order they come in', async (t) => {
  const members = [be('198.18.2.3'), be('198.18.2.1'), be('198.18.2.2')];
  const ops = full(planner(), [fe('198.51.100.1', members)]);
  const ids = new Map(ops.addBackends.map((b) => [`${b.address}|${b.port}`, b.id]));
  const sorted = members.map((b) => ({ key: `${b.address}|${b.port}`, weight: 1 })).sort((a, b) => (a.key < b.key ? -1 : 1));
  const expected = buildMaglevTable(sorted, 509);
  t.equal(ops.addTables[0]!.m, 509, '3 backends: 509 slots');
  t.same([...ops.addTables[0]!.slots], [...expected].map((i) => ids.get(sorted[i]!.key)));
});

t.test('applying the same desired state twice writes nothing', async (t) => {
  const desired = [fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2')]), fe('2001:db8::1', [be('2001:db8:2::1')], { service: 'ns/v6' })];
  const p = planner();
  full(p, desired);
  t.equal(writes(full(p, [...desired].reverse())), 0, 'a full pass with nothing new');
  t.equal(writes(p.plan(new Map([['ns/svc', [desired[0]!]]]))), 0, 'an incremental pass with nothing new');
});

t.test('frontends with the same backend set share one table; a change moves one frontend to a new table', async (t) => {
  const p = planner();
  const set = [be('198.18.2.1'), be('198.18.2.2')];
  const ops = full(p, [fe('198.51.100.1', set, { service: 'ns/a' }), fe('198.51.100.2', set, { service: 'ns/b' })]);
  t.equal(ops.addTables.length, 1, 'one table for both');
  t.equal(ops.writeFrontends[0]!.value.table, ops.writeFrontends[1]!.value.table);
  const shared = ops.writeFrontends[0]!.value.table;
  const next = p.plan(new Map([['ns/b', [fe('198.51.100.2', [...set, be('198.18.2.3')], { service: 'ns/b' })]]]));
  t.equal(next.addTables.length, 1, 'b gets a table of its own');
  t.equal(next.writeFrontends.length, 1, 'only b is rewritten');
  t.not(next.writeFrontends[0]!.value.table, shared);
  t.equal(next.writeFrontends[0]!.value.tableSize, 509);
  t.same(next.removeTables, [], 'a still uses the shared table');
  const gone = p.plan(new Map([['ns/a', []]]));
  t.same(gone.removeTables, [shared], 'the shared table goes with its last user');
  t.same(gone.removeBackends, [], 'b still uses both backends');
});

t.test('terminating backends stay in the map but leave the table', async (t) => {
  const p = planner();
  full(p, [fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2')])]);
  const ops = p.plan(new Map([['ns/svc', [fe('198.51.100.1', [be('198.18.2.1', 'terminating'), be('198.18.2.2')])]]]));
  t.same(ops.removeBackends, [], 'terminating backend kept (its flows continue)');
  t.same(ops.updateBackends.map((b) => [b.address, b.draining]), [['198.18.2.1', true]]);
  t.same(new Set(ops.addTables[0]!.slots), new Set([2]), 'table holds only the active backend');
  t.equal(ops.writeFrontends[0]!.value.backends, 1);
  const none = p.plan(new Map([['ns/svc', [fe('198.51.100.1', [be('198.18.2.1', 'terminating'), be('198.18.2.2', 'terminating')])]]]));
  t.equal(none.writeFrontends[0]!.value.backends, 0, 'no active backend: new flows are no_backend');
  t.equal(none.writeFrontends[0]!.value.table, 0);
  t.equal(none.removeTables.length, 1, 'the unused table goes');
});

t.test('removed backends and frontends are deleted; other services are not touched', async (t) => {
  const p = planner();
  full(p, [fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2')], { service: 'ns/a' }), fe('198.51.100.2', [be('198.18.2.3')], { service: 'ns/b' })]);
  const ops = p.plan(new Map([['ns/b', []], ['ns/a', [fe('198.51.100.1', [be('198.18.2.1')], { service: 'ns/a' })]]]));
  t.same(ops.removeFrontends.map((f) => f.address), ['198.51.100.2']);
  t.same(ops.removeBackends.sort(), [2, 3]);
  t.same(ops.removeVips, ['198.51.100.2']);
  t.same(new Set(ops.addTables[0]!.slots), new Set([1]));
});

t.test('ids are stable and not reused at once, even within a full id space', async (t) => {
  const p = planner();
  full(p, [fe('198.51.100.1', [be('198.18.2.1')])]);
  const ops = p.plan(new Map([['ns/svc', [fe('198.51.100.1', [be('198.18.2.2')])]]]));
  t.same(ops.addBackends.map((b) => b.id), [2], 'new backend takes the next id, not the freed 1');
  t.same(ops.removeBackends, [1]);
  const more = p.plan(new Map([['ns/x', [fe('198.51.100.9', [be('198.18.2.2')], { service: 'ns/x' })]]]));
  t.equal(more.writeFrontends[0]!.value.id, 2);
});

t.test('flags: reset policy and local-only', async (t) => {
  const ops = full(planner(), [fe('198.51.100.1', [be('198.18.2.1')], { removedBackendPolicy: 'reset', localOnly: true })]);
  t.equal(ops.writeFrontends[0]!.value.flags, FE_RESET_ON_REMOVE | FE_LOCAL_ONLY);
});

t.test('full maps and bad input are reported per service; the rest is programmed; freed room is used at once', async (t) => {
  const p = planner({ maxFrontends: 3, maxBackends: 3 }); // ids 1..2
  const ops = full(p, [
    fe('198.51.100.1', [be('198.18.2.1')], { service: 'ns/a' }),
    fe('198.51.100.2', [be('198.18.2.2')], { service: 'ns/b' }),
    fe('198.51.100.3', [be('198.18.2.1')], { service: 'ns/c' }),
    fe('198.51.100.4', [be('2001:db8::1')], { service: 'ns/d' }),
    fe('198.51.100.5', [], { protocol: 'SCTP', service: 'ns/e' }),
  ]);
  t.same(ops.writeFrontends.map((f) => f.address).sort(), ['198.51.100.1', '198.51.100.2']);
  t.match(p.status('ns/c'), { frontends: 1, programmed: 0, problems: [{ reason: 'FrontendMapFull', map: 'ph_frontends', message: /frontend map full/ }] });
  t.match(p.status('ns/d'), { programmed: 0, problems: [{ reason: 'InvalidFrontend', message: /not an IPv4 address/ }] });
  t.match(p.status('ns/e'), { programmed: 0, problems: [{ reason: 'InvalidFrontend', message: /SCTP/ }] });
  t.same([...p.notProgrammed().keys()].sort(), ['ns/c', 'ns/d', 'ns/e']);
  // Removing a service frees an id: the refused frontend goes in with the same pass.
  const after = p.plan(new Map([['ns/b', []]]));
  t.same(after.removeFrontends.map((f) => f.address), ['198.51.100.2']);
  t.same(after.writeFrontends.map((f) => f.address), ['198.51.100.3'], 'the refused frontend is retried and fits');
  t.equal(p.status('ns/c').programmed, 1);
  t.same([...p.notProgrammed().keys()].sort(), ['ns/d', 'ns/e']);

  const q = planner({ maxBackends: 3 });
  const b = full(q, [fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2'), be('198.18.2.3')])]);
  t.match(q.status('ns/svc').problems, [{ reason: 'BackendMapFull', map: 'ph_backends', message: /backend map full/ }]);
  t.same(new Set(b.addTables[0]!.slots), new Set([1, 2]), 'table built from the backends that fit');
});

t.test('a table that cannot be built keeps the previous one and says why', async (t) => {
  const p = planner({ maglev: { max: 251 } });
  const first = full(p, [fe('198.51.100.1', [be('198.18.2.1')])]);
  const many = Array.from({ length: 300 }, (_, i) => be(`198.18.3.${i % 250}`, 'active')).map((b, i) => ({ ...b, port: 8000 + i }));
  const q = planner({ maglev: { max: 251 }, maxBackends: 1024 });
  full(q, [fe('198.51.100.1', [be('198.18.2.1')])]);
  const ops = q.plan(new Map([['ns/svc', [fe('198.51.100.1', many)]]]));
  t.equal(ops.writeFrontends.length, 0, 'the entry keeps its table');
  t.same(ops.removeTables, []);
  t.match(q.status('ns/svc').problems, [{ reason: 'TooManyBackends', message: /300 backends do not fit a Maglev table of at most 251 slots/ }]);
  t.equal(first.addTables[0]!.m, 251);
  // 200 backends still fit 251 slots (every backend owns at least one; fewer than 100 slots each).
  const r = planner({ maglev: { max: 251 }, maxBackends: 1024 });
  const ok = full(r, [fe('198.51.100.1', many.slice(0, 200))]);
  t.equal(ok.addTables[0]!.m, 251);
  t.equal(new Set(ok.addTables[0]!.slots).size, 200, 'every backend owns a slot');
});

t.test('affinity and source ranges: flags, default timeout, per-family ranges, members, draining backends', async (t) => {
  const p = planner();
  const ops = full(p, [
    fe('198.51.100.1', [be('198.18.2.1'), be('198.18.2.2', 'terminating')], { sessionAffinity: true, sessionAffinityTimeoutSeconds: 0, sourceRanges: ['192.0.2.0/24', '2001:db8::/32', 'bogus/99'] }),
    fe('2001:db8:100::1', [], { sourceRanges: ['192.0.2.0/24'], service: 'ns/v6' }),
  ]);
  const v4 = ops.writeFrontends.find((f) => f.address === '198.51.100.1')!.value;
  const v6 = ops.writeFrontends.find((f) => f.address === '2001:db8:100::1')!.value;
  t.equal(v4.flags, FE_AFFINITY | FE_SOURCE_RANGES);
  t.equal(v4.affinityTimeout, 10800, 'Kubernetes default');
  t.equal(ops.addSourceRanges.length, 1, 'only the IPv4 range (the bad one reported)');
  t.match(p.status('ns/svc').problems, [{ message: /loadBalancerSourceRanges/, blocking: false }]);
  t.equal(p.status('ns/svc').programmed, 1, 'a warning does not make it unprogrammed');
  t.same(ops.addMembers, [[v4.id, 1]], 'only the active backend may take affinity flows');
  t.equal(v6.flags & FE_SOURCE_RANGES, 0, 'IPv4-only ranges leave the IPv6 frontend open');
  t.same(ops.addBackends.filter((b) => b.draining).map((b) => b.address), ['198.18.2.2']);
  const off = p.plan(new Map([['ns/svc', [fe('198.51.100.1', [be('198.18.2.1')])]]]));
  t.equal(off.removeSourceRanges.length, 1);
  t.same(off.removeMembers, [[v4.id, 1]]);
});

t.test('backends on the node\'s own addresses are marked local; a change of addresses updates them in place', async (t) => {
  const p = planner();
  p.setLocalAddresses(new Set(['198.18.0.2']));
  const ops = full(p, [fe('198.51.100.1', [be('198.18.0.2'), be('198.18.2.1')])]);
  t.same(ops.addBackends.map((b) => [b.address, b.local]), [['198.18.0.2', true], ['198.18.2.1', false]]);
  t.notOk(p.setLocalAddresses(new Set(['198.18.0.2'])), 'same addresses: no change');
  t.ok(p.setLocalAddresses(new Set(['198.18.2.1'])));
  const moved = p.relocalize();
  t.same(moved.updateBackends.map((b) => [b.address, b.local]).sort(), [['198.18.0.2', false], ['198.18.2.1', true]], 'flags follow the addresses');
  t.same(moved.addBackends, []);
});

t.test('a frontend claimed by two services stays with the one that has it; the other is reported, and takes over when it goes', async (t) => {
  const p = planner();
  full(p, [fe('198.51.100.1', [be('198.18.2.1')], { service: 'ns/b' })]);
  const ops = p.plan(new Map([['ns/a', [fe('198.51.100.1', [be('198.18.2.2')], { service: 'ns/a' })]]]));
  t.equal(ops.writeFrontends.length, 0, 'ns/b keeps it although ns/a sorts first');
  t.match(p.status('ns/a'), { programmed: 0, problems: [{ reason: 'FrontendConflict', message: /also claimed by ns\/b/ }] });
  t.same(p.status('ns/b'), { frontends: 1, programmed: 1, problems: [] });
  const handover = p.plan(new Map([['ns/b', []]]));
  t.equal(handover.writeFrontends.length, 1);
  t.ok(handover.services.has('ns/a'), 'ns/a is told its status changed');
  t.same(p.status('ns/a'), { frontends: 1, programmed: 1, problems: [] });
  t.same(handover.removeBackends, [1]);
});

t.test('one service change among 10,000 costs only that service', async (t) => {
  const p = planner({ maxFrontends: 65536, maxBackends: 131072, maxTables: 65536 });
  const all: Frontend[] = [];
  for (let i = 0; i < 10_000; i++) {
    const service = `ns/s${i}`;
    const backends = Array.from({ length: 3 + (i % 6) }, (_, j) => be(`198.18.${(i >> 6) & 255}.${((i & 63) << 2) + (j & 3)}`)).map((b, j) => ({ ...b, port: 8000 + j }));
    all.push(fe(`198.19.${i >> 8}.${i & 255}`, backends, { service }));
  }
  const start = performance.now();
  const ops = full(p, all);
  const fullMs = performance.now() - start;
  t.equal(ops.writeFrontends.length, 10_000);
  t.same(p.notProgrammed().size, 0);
  const edited = { ...all[4321]!, backends: all[4321]!.backends.slice(1) };
  const t0 = performance.now();
  const one = p.plan(new Map([['ns/s4321', [edited]]]));
  const oneMs = performance.now() - t0;
  t.equal(one.writeFrontends.length, 1, 'one frontend rewritten');
  t.ok(one.addTables.length === 1 && one.removeTables.length <= 1, 'one table swapped');
  t.same(one.removeBackends.length, 1, 'the dropped backend is removed');
  t.ok(oneMs < 50, `one change planned in ${oneMs.toFixed(2)} ms (full pass of 10,000: ${fullMs.toFixed(0)} ms)`);
});

t.test('after a restart, tables that are already right are kept, others replaced, strays removed', async (t) => {
  const a = planner();
  const set = [be('198.18.2.1'), be('198.18.2.2')];
  const first = full(a, [fe('198.51.100.1', set, { service: 'ns/a' }), fe('198.51.100.2', [be('198.18.2.3')], { service: 'ns/b' })]);
  const published = new Map(first.addTables.map((x) => [x.id, x.slots]));
  const frontends = first.writeFrontends.map((f) => ({ address: f.address, port: f.port, protocol: f.protocol, value: f.value }));
  const b = planner();
  b.adopt({
    frontends, backends: first.addBackends.map((x) => ({ id: x.id, address: x.address, port: x.port })),
    tables: [...published.keys(), 9], sourceRanges: new Map(), members: new Map(), vips: ['198.51.100.1', '198.51.100.2', '198.51.100.77'],
  }, (id) => published.get(id));
  // ns/a unchanged, ns/b now has another backend.
  const ops = full(b, [fe('198.51.100.1', set, { service: 'ns/a' }), fe('198.51.100.2', [be('198.18.2.4')], { service: 'ns/b' })]);
  t.equal(ops.addTables.length, 1, 'only ns/b needs a new table');
  const bTable = first.writeFrontends.find((f) => f.address === '198.51.100.2')!.value.table;
  t.same(ops.removeTables.sort(), [bTable, 9].sort(), 'its old table and the stray one go');
  t.same(ops.writeFrontends.map((f) => f.address), ['198.51.100.2']);
  t.same(ops.removeBackends, [3]);
  t.same(ops.addBackends.map((x) => x.id), [4], 'ids continue after the adopted ones');
  t.same(ops.removeVips, ['198.51.100.77']);
  t.same(ops.addVips, []);
});

t.test('a DSR frontend limited to L2 dispatch with a backend behind a gateway is reported DsrBackendNotOnLink, never programmed, until the route is on-link', async (t) => {
  const p = planner();
  // DSR keeps the port: backends serve port 80 themselves.
  const dsrBackends = [be('198.18.2.1'), be('203.0.113.7')].map((b) => ({ ...b, port: 80 }));
  const ops = full(p, [
    fe('198.51.100.1', dsrBackends, { forwardingMode: 'dsr', dsrDispatch: 'l2' }),
    fe('198.51.100.2', [be('203.0.113.7')], { service: 'ns/snat' }),
    fe('198.51.100.3', dsrBackends, { service: 'ns/auto', forwardingMode: 'dsr' }),
    fe('198.51.100.4', dsrBackends, { service: 'ns/ipip', forwardingMode: 'dsr', dsrDispatch: 'ipip' }),
  ]);
  t.same(ops.writeFrontends.map((w) => [w.address, w.value.flags]), [
    ['198.51.100.1', FE_DSR | FE_DSR_L2], ['198.51.100.2', 0], ['198.51.100.3', FE_DSR], ['198.51.100.4', FE_DSR | FE_DSR_ENCAP],
  ], 'the dispatch travels in the frontend flags');
  t.same(p.status('ns/svc'), { frontends: 1, programmed: 1, problems: [] }, 'before the routes are known');
  t.same(p.setOffLinkBackends(new Map([['203.0.113.7', '198.18.2.254']])), ['ns/svc'], 'only services with a DSR frontend may change');
  const st = p.status('ns/svc');
  t.equal(st.programmed, 0);
  t.equal(st.problems.length, 1);
  t.match(st.problems[0], { object: 'TCP/198.51.100.1/80', service: 'ns/svc', reason: 'DsrBackendNotOnLink', blocking: true });
  t.match(st.problems[0]!.message, /ns\/svc.*203\.0\.113\.7.*198\.18\.2\.254/, 'names the service, the backend and the gateway');
  t.same(p.status('ns/snat'), { frontends: 1, programmed: 1, problems: [] }, 'a SNAT frontend reaches a backend through a router');
  t.same(p.status('ns/auto'), { frontends: 1, programmed: 1, problems: [] }, 'auto encapsulates to it');
  t.same(p.status('ns/ipip'), { frontends: 1, programmed: 1, problems: [] }, 'ipip encapsulates to it');
  t.same([...p.notProgrammed().keys()], ['ns/svc'], 'listed with the services not in the data path (pharos status, the metric)');
  p.setOffLinkBackends(new Map());
  t.same(p.status('ns/svc'), { frontends: 1, programmed: 1, problems: [] }, 'the route is on-link again: programmed');
  t.same([...p.notProgrammed().keys()], []);
});
