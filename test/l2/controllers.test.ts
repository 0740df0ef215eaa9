/**
 * The L2 controllers above the announcer: only services the data path
 * carries are announced (manifests mode) or competed for (Kubernetes mode),
 * per-address logging stays readable when thousands change at once, and a
 * reconcile at 10,000 services costs milliseconds (CPU time measured, since
 * other work shares this machine).
 */
import t from 'tap';
import { LocalL2Controller, PER_ADDRESS_LINES, type L2Common, type L2Counters } from '../../src/l2/local-controller.js';
import { ElectedL2Controller } from '../../src/l2/elected-controller.js';
import { addressLeaseName } from '../../src/l2/election-core.js';
import { Store } from '../../src/store/store.js';
import { NotFoundError, WriteConflictError, type KubeWriter, type LeaseRecord, type LeaseSpec } from '../../src/sinks/kube/writer.js';
import type { Kind, Lease, ModelObject } from '../../src/model/types.js';
import type { ChangeSet } from '../../src/store/controller.js';
import type { Snapshot } from '../../src/store/store.js';
import type { LogFields, Logger } from '../../src/model/log.js';
import { FakeClock } from './fake-clock.js';
import { RecordingSink } from './recording-sink.js';
import { ETH0, POLICY, addressOf, service, slice, syntheticSnapshot, withService } from './synthetic.js';
import { waitFor } from '../support/wait.js';

interface Line {
  level: string;
  msg: string;
  fields: LogFields;
}

function captureLog(): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const make = (base: LogFields): Logger => {
    const emit = (level: string) => (msg: string, fields?: LogFields): void => void lines.push({ level, msg, fields: { ...base, ...fields } });
    return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'), with: (f) => make({ ...base, ...f }) };
  };
  return { log: make({}), lines };
}

function counters(): L2Counters {
  return { gratuitousSent: { ipv4: 0, ipv6: 0 }, l2Errors: 0, leaseTransitions: 0 };
}

function common(sink: RecordingSink, clock: FakeClock | undefined, over: Partial<L2Common> = {}): L2Common {
  return {
    nodeName: 'n1',
    interfaceNames: ['eth0'],
    interfaceReader: () => [ETH0],
    sink,
    isOurService: () => true,
    counters: counters(),
    log: captureLog().log,
    ...(clock ? { announcer: { clock } } : {}),
    ...over,
  };
}

const answered = (sink: RecordingSink): string[] => [...sink.responder.keys()].map((k) => k.split('|')[0]!).sort();

t.test('manifests mode: only services the data path carries are announced; programmedChanged() follows it', async (t) => {
  const clock = new FakeClock();
  const sink = new RecordingSink(clock);
  const programmed = new Set(['default/s0', 'default/s2']);
  const ctl = new LocalL2Controller(common(sink, clock, { isProgrammed: (s) => programmed.has(s) }));
  ctl.reconcile(syntheticSnapshot(3));
  clock.advance(0);
  t.same(answered(sink), [addressOf(0), addressOf(2)]);
  t.same(sink.framesFor(addressOf(1)), [], 'the unprogrammed service is not announced');

  programmed.add('default/s1');
  programmed.delete('default/s0');
  ctl.programmedChanged();
  t.notOk(sink.responder.has(`${addressOf(0)}|2`), 'no longer carried: withdrawn at once');
  clock.advance(0);
  t.same(answered(sink), [addressOf(1), addressOf(2)]);
  t.equal(sink.framesFor(addressOf(1)).length, 2, 'now carried: announced');
  t.same(ctl.rows().map((r) => `${r.service} ${r.address} ${r.interfaces.join(',')}`).sort(), [`default/s1 ${addressOf(1)} eth0`, `default/s2 ${addressOf(2)} eth0`]);
  t.same(sink.violations, []);

  const all = new LocalL2Controller(common(new RecordingSink(clock), clock));
  all.reconcile(syntheticSnapshot(3));
  t.equal(all.rows().length, 3, 'without isProgrammed everything is announced');
});

t.test('refused responder entries show in refused() and in one log line, not in rows()', async (t) => {
  const clock = new FakeClock();
  const sink = new RecordingSink(clock);
  sink.capacity = 5;
  const { log, lines } = captureLog();
  const ctl = new LocalL2Controller(common(sink, clock, { log }));
  ctl.reconcile(syntheticSnapshot(50));
  clock.advance(0);
  t.equal(ctl.refused().length, 45);
  t.match(ctl.refused()[0], { service: 'default/s5', address: addressOf(5), interface: 'eth0', error: /E2BIG/ });
  t.equal(ctl.rows().filter((r) => r.interfaces.length > 0).length, 5, 'only the answered ones list an interface');
  await waitFor('the refusal summary', 3000, async () => lines.some((l) => l.msg.startsWith('responder entry refused')), { everyMs: 50 });
  const refusals = lines.filter((l) => l.msg.startsWith('responder entry refused'));
  t.equal(refusals.length, 1, 'one line for 45 refusals');
  t.match(refusals[0]!.fields, { addresses: 45, interface: 'eth0', error: /E2BIG/ });
});

t.test('one summary line when many addresses change at once, one line each when a few do', async (t) => {
  const clock = new FakeClock();
  const { log, lines } = captureLog();
  const ctl = new LocalL2Controller(common(new RecordingSink(clock), clock, { log }));
  let snap = syntheticSnapshot(100);
  ctl.reconcile(snap);
  const start = lines.filter((l) => l.msg === 'announcing address');
  t.equal(start.length, 1, 'a start with 100 addresses: one line');
  t.match(start[0]!.fields, { addresses: 100, sample: /^198\.18\.0\.1,/ });
  for (let i = 0; i < 3; i++) snap = withService(snap, service(i, { status: { ingress: [{ ip: addressOf(1000 + i) }], conditions: [] } }));
  const before = lines.length;
  ctl.reconcile(snap);
  const changed = lines.slice(before);
  t.equal(changed.filter((l) => l.msg === 'announcing address').length, 3, 'three new addresses: a line each');
  t.equal(changed.filter((l) => l.msg === 'stopped announcing address').length, 3);
  t.match(changed.find((l) => l.msg === 'announcing address')!.fields, { service: 'default/s0', address: addressOf(1000) });
  t.ok(PER_ADDRESS_LINES >= 3 && PER_ADDRESS_LINES < 100);
});

/** Median CPU milliseconds of `fn` over `runs` calls, each after its `prepare` (not counted). */
function cpuMedian<T>(runs: number, prepare: (i: number) => T, fn: (input: T) => void): number {
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const input = prepare(i);
    const before = process.cpuUsage();
    fn(input);
    const d = process.cpuUsage(before);
    xs.push((d.user + d.system) / 1000);
  }
  return xs.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

t.test('10,000 services: a reconcile costs milliseconds, in proportion to what changed', async (t) => {
  const clock = new FakeClock();
  const sink = new RecordingSink(clock);
  const ctl = new LocalL2Controller(common(sink, clock));
  let snap = syntheticSnapshot(10_000, { localEvery: 10 });
  const before = process.cpuUsage();
  ctl.reconcile(snap);
  const first = process.cpuUsage(before);
  const firstMs = (first.user + first.system) / 1000;
  clock.advance(0);
  const changeOf = (services: string[], slices: string[]): ChangeSet => ({
    all: false,
    keys: new Map<Kind, ReadonlySet<string>>([['Service', new Set(services)], ['EndpointSlice', new Set(slices)]]),
  });
  // A backend edit (a slice replaced) and a label edit: nothing L2 cares about changes.
  const edit = (i: number): { next: Snapshot; changes: ChangeSet } => {
    const slices = new Map(snap.endpointSlices);
    slices.set(`default/s${i * 10}-abc`, slice(i * 10, 7));
    const labelled = service(i * 10 + 1);
    labelled.meta.labels = { ...labelled.meta.labels, edit: String(i) };
    snap = { ...withService(snap, labelled), endpointSlices: slices };
    return { next: snap, changes: changeOf([`default/s${i * 10 + 1}`], [`default/s${i * 10}-abc`]) };
  };
  const unchangedFull = cpuMedian(20, edit, ({ next }) => ctl.reconcile(next));
  const unchanged = cpuMedian(20, (i) => edit(20 + i), ({ next, changes }) => ctl.reconcile(next, changes));
  // A service's address changes: the announcer and the record see the new list.
  const readdressed = cpuMedian(20, (i) => {
    snap = withService(snap, service(i + 2, { status: { ingress: [{ ip: addressOf(20_000 + i) }], conditions: [] } }));
    return { next: snap, changes: changeOf([`default/s${i + 2}`], []) };
  }, ({ next, changes }) => ctl.reconcile(next, changes));
  t.comment(`CPU: first reconcile ${firstMs.toFixed(1)} ms; one backend/label edit ${unchanged.toFixed(2)} ms with the agent's change set ` +
    `(${unchangedFull.toFixed(2)} ms comparing every service); one address change ${readdressed.toFixed(2)} ms (medians of 20)`);
  t.equal(ctl.rows().length, 10_000);
  t.same(sink.violations, []);
  // Generous bounds for a shared 2-vCPU machine; the figures above are what to read.
  t.ok(unchanged < 5 && unchangedFull < 15, `an edit that changes no announcement: ${unchanged.toFixed(2)} ms (${unchangedFull.toFixed(2)} ms without a change set)`);
  t.ok(readdressed < 40, `an edit that changes one announcement: ${readdressed.toFixed(2)} ms`);
});

/** Leases written straight into a Store, delivered back as a watch would (a turn later), rv-checked. */
class StoreLeaseWriter {
  private rv = 100;
  private readonly latest = new Map<string, Lease>();
  readonly writes: string[] = [];

  constructor(private readonly store: Store, private readonly namespace: string) {}

  async getLease(name: string): Promise<LeaseRecord | undefined> {
    const l = this.latest.get(name);
    return l ? this.record(l) : undefined;
  }

  async createLease(name: string, spec: LeaseSpec): Promise<LeaseRecord> {
    if (this.latest.has(name)) throw new WriteConflictError(`${name} exists`);
    return this.write(name, spec, 'create');
  }

  async updateLease(current: Pick<LeaseRecord, 'name' | 'resourceVersion'>, spec: LeaseSpec): Promise<LeaseRecord> {
    const l = this.latest.get(current.name);
    if (!l) throw new NotFoundError(current.name);
    if (l.meta.resourceVersion !== current.resourceVersion) throw new WriteConflictError(`${current.name}: resourceVersion ${current.resourceVersion} is old`);
    return this.write(current.name, spec, 'update');
  }

  releaseLease(current: Pick<LeaseRecord, 'name' | 'resourceVersion' | 'leaseTransitions'>): Promise<LeaseRecord> {
    const now = new Date();
    return this.updateLease(current, { leaseDurationSeconds: 1, acquireTime: now, renewTime: now, ...(current.leaseTransitions !== undefined ? { leaseTransitions: current.leaseTransitions } : {}) });
  }

  async deleteLease(name: string): Promise<void> {
    this.latest.delete(name);
    setImmediate(() => this.store.remove('Lease', `${this.namespace}/${name}`));
  }

  holder(name: string): string | undefined {
    return this.latest.get(name)?.holderIdentity;
  }

  private write(name: string, spec: LeaseSpec, verb: string): LeaseRecord {
    const lease: Lease = {
      kind: 'Lease',
      meta: { name, namespace: this.namespace, resourceVersion: String(++this.rv), labels: {}, annotations: {} },
      ...(spec.holderIdentity ? { holderIdentity: spec.holderIdentity } : {}),
      ...(spec.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: spec.leaseDurationSeconds } : {}),
      ...(spec.acquireTime ? { acquireTime: spec.acquireTime.toISOString() } : {}),
      ...(spec.renewTime ? { renewTime: spec.renewTime.toISOString() } : {}),
      ...(spec.leaseTransitions !== undefined ? { leaseTransitions: spec.leaseTransitions } : {}),
    };
    this.latest.set(name, lease);
    this.writes.push(`${verb} ${name} ${spec.holderIdentity ?? '-'}`);
    setImmediate(() => this.store.apply(lease));
    return this.record(lease);
  }

  private record(l: Lease): LeaseRecord {
    return {
      name: l.meta.name, namespace: this.namespace, resourceVersion: l.meta.resourceVersion!,
      ...(l.holderIdentity ? { holderIdentity: l.holderIdentity } : {}),
      ...(l.leaseTransitions !== undefined ? { leaseTransitions: l.leaseTransitions } : {}),
    };
  }
}

/** A synced store holding `objects` and POLICY, as the Kubernetes source leaves it after its first listing. */
function syncedStore(objects: ModelObject[]): Store {
  const store = new Store();
  for (const o of objects) store.apply(o);
  store.apply(POLICY);
  store.markSynced();
  return store;
}

t.test('Kubernetes mode: a service the data path does not carry is not competed for; programmedChanged() takes it or hands it over', async (t) => {
  const store = syncedStore([0, 1].flatMap((i) => [service(i), slice(i)]));
  const writer = new StoreLeaseWriter(store, 'kube-system');
  const sink = new RecordingSink(new FakeClock());
  const programmed = new Set(['default/s0']);
  const ctl = new ElectedL2Controller({
    ...common(sink, undefined, { isProgrammed: (s) => programmed.has(s) }),
    namespace: 'kube-system',
    writer: writer as unknown as KubeWriter,
    nodeWriter: writer as unknown as KubeWriter,
    nodeLeaseMs: 2000,
    nodeRenewMs: 250,
    serviceLeaseMs: 15_000,
    retryMs: 500,
    store,
    datapathReady: () => true,
    onNodeRenewed: () => {},
  });
  store.on('change', () => ctl.reconcile(store.snapshot()));
  ctl.start();
  ctl.reconcile(store.snapshot());
  const lease = (i: number): string => addressLeaseName(addressOf(i));
  await waitFor('s0 taken and answered', 5000, async () => writer.holder(lease(0)) === 'n1' && sink.responder.has(`${addressOf(0)}|2`), { everyMs: 50 });
  // Past the grace period (500 ms) and five of them: nobody holds s1, and nothing of it is announced.
  await new Promise((r) => setTimeout(r, 3000));
  t.notOk(writer.writes.some((w) => w.includes(lease(1))), 'no write for the unprogrammed service\'s lease');
  t.same(sink.framesFor(addressOf(1)), []);

  programmed.add('default/s1');
  ctl.programmedChanged();
  await waitFor('s1 taken and answered once programmed', 5000, async () => writer.holder(lease(1)) === 'n1' && sink.responder.has(`${addressOf(1)}|2`), { everyMs: 50 });
  await waitFor('s1 announced', 2000, async () => sink.framesFor(addressOf(1)).length > 0, { everyMs: 50 });

  programmed.delete('default/s0');
  ctl.programmedChanged();
  await waitFor('s0 handed over: released and withdrawn', 5000, async () => writer.holder(lease(0)) === undefined && !sink.responder.has(`${addressOf(0)}|2`), { everyMs: 50 });
  t.ok(writer.writes.some((w) => w === `update ${lease(0)} -`), 'the lease was released (holder cleared) for another node to take');
  t.same(sink.violations, []);
  await ctl.stop();
});

t.test('Kubernetes mode: services sharing an address share its one lease (issue 18)', async (t) => {
  // s0 and s1 share s0's address; s2 has its own.
  const store = syncedStore([service(0), service(1, { status: { ingress: [{ ip: addressOf(0) }], conditions: [] } }), service(2), ...[0, 1, 2].map((i) => slice(i))]);
  const writer = new StoreLeaseWriter(store, 'kube-system');
  const sink = new RecordingSink(new FakeClock());
  const ctl = new ElectedL2Controller({
    ...common(sink, undefined), namespace: 'kube-system', writer: writer as unknown as KubeWriter, nodeWriter: writer as unknown as KubeWriter,
    nodeLeaseMs: 2000, nodeRenewMs: 250, serviceLeaseMs: 15_000, retryMs: 500, store, datapathReady: () => true, onNodeRenewed: () => {},
  });
  store.on('change', () => ctl.reconcile(store.snapshot()));
  ctl.start();
  ctl.reconcile(store.snapshot());
  const shared = addressLeaseName(addressOf(0));
  await waitFor('both addresses held and answered', 5000, async () => writer.holder(shared) === 'n1' && writer.holder(addressLeaseName(addressOf(2))) === 'n1' && sink.responder.has(`${addressOf(0)}|2`) && sink.responder.has(`${addressOf(2)}|2`), { everyMs: 50 });
  const leases = writer.writes.filter((w) => w.startsWith('create pharos-l2announce-')).map((w) => w.split(' ')[1]).sort();
  t.same(leases, [shared, addressLeaseName(addressOf(2))].sort(), 'one lease per address, none per service');
  const rows = ctl.rows(store.snapshot()).map((r) => `${r.service} ${r.address} ${r.holder} ${r.local}`).sort();
  t.same(rows, [`default/s0 ${addressOf(0)} n1 true`, `default/s1 ${addressOf(0)} n1 true`, `default/s2 ${addressOf(2)} n1 true`], '`pharos l2 list`: a row per service and address, the holder the address\'s');
  // s0 goes: s1 still carries the address, which stays held (no write).
  const before = writer.writes.length;
  store.remove('Service', 'default/s0');
  await new Promise((r) => setTimeout(r, 700));
  t.equal(writer.holder(shared), 'n1', 'the address is still held for the service left');
  t.ok(sink.responder.has(`${addressOf(0)}|2`), 'and still answered');
  t.same(writer.writes.slice(before).filter((w) => w.includes(shared)), [], 'no write for it');
  store.remove('Service', 'default/s1');
  await waitFor('the address released once no service carries it', 5000, async () => writer.holder(shared) === undefined && !sink.responder.has(`${addressOf(0)}|2`), { everyMs: 50 });
  t.same(sink.violations, []);
  await ctl.stop();
});

t.test('Kubernetes mode, upgrade from per-service leases: a live older agent\'s lease keeps the address from us; our own is cleared', async (t) => {
  const store = syncedStore([0, 1].flatMap((i) => [service(i), slice(i)]));
  const writer = new StoreLeaseWriter(store, 'kube-system');
  // n2 runs an older agent: its node lease is live and it holds s0's per-service lease. n1's older self held s1's.
  const t0 = new Date();
  await writer.createLease('pharos-node-n2', { holderIdentity: 'n2', leaseDurationSeconds: 3600, acquireTime: t0, renewTime: t0 });
  await writer.createLease('pharos-l2announce-default-s0', { holderIdentity: 'n2', leaseDurationSeconds: 15, acquireTime: t0, renewTime: t0, leaseTransitions: 0 });
  await writer.createLease('pharos-l2announce-default-s1', { holderIdentity: 'n1', leaseDurationSeconds: 15, acquireTime: t0, renewTime: t0, leaseTransitions: 0 });
  const sink = new RecordingSink(new FakeClock());
  const ctl = new ElectedL2Controller({
    ...common(sink, undefined), namespace: 'kube-system', writer: writer as unknown as KubeWriter, nodeWriter: writer as unknown as KubeWriter,
    nodeLeaseMs: 2000, nodeRenewMs: 250, serviceLeaseMs: 15_000, retryMs: 300, store, datapathReady: () => true, onNodeRenewed: () => {},
  });
  store.on('change', () => ctl.reconcile(store.snapshot()));
  await new Promise((r) => setImmediate(r));
  ctl.start();
  ctl.reconcile(store.snapshot());
  await waitFor('s1\'s address taken, its old-name lease cleared', 5000, async () => writer.holder(addressLeaseName(addressOf(1))) === 'n1' && writer.holder('pharos-l2announce-default-s1') === undefined, { everyMs: 50 });
  // Well past five retry periods: s0's address stays with the older agent on n2.
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(writer.holder(addressLeaseName(addressOf(0))), undefined, 'no address lease taken while a live older agent answers for it');
  t.notOk(sink.responder.has(`${addressOf(0)}|2`), 'and not answered here');
  t.equal(writer.holder('pharos-l2announce-default-s0'), 'n2', 'its old-name lease left alone');
  // n2 is upgraded (its older agent stopped: node lease gone): the address is elected as usual.
  await writer.deleteLease('pharos-node-n2');
  await waitFor('s0\'s address taken once no older agent holds it', 5000, async () => writer.holder(addressLeaseName(addressOf(0))) === 'n1' && sink.responder.has(`${addressOf(0)}|2`), { everyMs: 50 });
  t.same(sink.violations, []);
  await ctl.stop();
});
