/**
 * The IPAM leader election (Lease pharos-ipam) against the API emulator:
 * exactly one leader, a clean stop hands over at once, a crashed leader is
 * replaced after the lease duration, and a leader that cannot renew steps
 * down (stops writing) before its lease could be taken.
 */
import t from 'tap';
import { startApiServer } from '../../src/lab/apiserver/server.js';
import { KubeWriter } from '../../src/sinks/kube/writer.js';
import { LeaderElector } from '../../src/sinks/kube/leader-election.js';
import { kubeConfigFor, eventually } from '../kube/kube-support.js';

const quiet = { info: () => undefined, debug: () => undefined };

t.test('one leader; clean stop hands over; a crashed leader is replaced after the lease', async (t) => {
  const api = await startApiServer({ crds: [] });
  t.teardown(() => api.close());
  const writer = new KubeWriter({ kc: kubeConfigFor(api.url), namespace: 'kube-system', timeoutMs: 1000 });
  const leading = new Set<string>();
  // Every elector is stopped at the end even when an assertion failed midway, so no timer keeps the file running.
  const electors: LeaderElector[] = [];
  t.teardown(() => Promise.all(electors.map((e) => e.stop())));
  const make = (id: string): LeaderElector => {
    const e = new LeaderElector({
      // A lease long enough that "handed over" and "waited it out" cannot be confused on a loaded machine.
      writer, lease: 'pharos-ipam', identity: id, leaseMs: 3000, renewDeadlineMs: 1800, retryMs: 100, log: quiet,
      onStartedLeading: () => leading.add(id), onStoppedLeading: () => leading.delete(id),
    });
    electors.push(e);
    return e;
  };
  const a = make('a');
  const b = make('b');
  a.start();
  await eventually(() => leading.has('a'), 3000, 'a leads');
  b.start();
  await new Promise((r) => setTimeout(r, 500));
  t.same([...leading], ['a'], 'exactly one leader');
  t.equal(b.holder, 'a', 'b sees a as the holder');

  const stoppedAt = performance.now();
  await a.stop();
  await eventually(() => leading.has('b'), 10_000, 'b leads after a stops');
  const handover = performance.now() - stoppedAt;
  t.ok(handover < 2000, `clean stop: handed over in ${handover.toFixed(0)} ms, without waiting out the 3 s lease`);
  t.equal(api.objects.get('leases', 'kube-system', 'pharos-ipam')?.spec?.holderIdentity, 'b');

  // b "crashes": its timers stop, the lease stays with b's name.
  const c = make('c');
  clearInterval((b as unknown as { timer?: NodeJS.Timeout }).timer);
  const crashedAt = performance.now();
  c.start();
  await eventually(() => leading.has('c'), 10_000, 'c leads after b\'s lease lapses');
  t.ok(performance.now() - crashedAt >= 2900, 'not before the lease duration');
  t.notOk(b.isLeader, 'b no longer counts itself leader (past its renew deadline)');
  await c.stop();
});

t.test('a leader that cannot renew steps down before the lease could be taken', async (t) => {
  const api = await startApiServer({ crds: [] });
  t.teardown(() => api.close());
  const writer = new KubeWriter({ kc: kubeConfigFor(api.url), namespace: 'kube-system', timeoutMs: 300 });
  let stoppedLeadingAt = 0;
  const a = new LeaderElector({
    writer, lease: 'pharos-ipam', identity: 'a', leaseMs: 1000, renewDeadlineMs: 600, retryMs: 100, log: quiet,
    onStartedLeading: () => undefined, onStoppedLeading: () => { stoppedLeadingAt = performance.now(); },
  });
  t.teardown(() => { api.resume(); return a.stop(); });
  a.start();
  await eventually(() => a.isLeader, 3000, 'a leads');
  const lastRenew = performance.now();
  api.pause();
  await eventually(() => !a.isLeader, 3000, 'a steps down');
  t.ok(performance.now() - lastRenew < 1000, 'stepped down within the renew deadline, before the lease lapses');
  api.resume();
  await eventually(() => stoppedLeadingAt > 0 || a.isLeader, 3000, 'the step-down was reported or leadership renewed');
  await a.stop();
});
