/**
 * BfdService and its worker thread, without a network: passive sessions
 * (nothing is sent until the peer speaks) on a receive port the kernel
 * picks. A worker that dies is reported (log, status error) and started
 * again with the same sessions; stop() ends it for good.
 */
import t from 'tap';
import type { Worker } from 'node:worker_threads';
import { BfdService } from '../../src/bgp/bfd-service.js';
import { DEFAULT_BFD_TIMERS } from '../../src/bgp/bfd.js';
import { sleep, waitFor } from '../support/wait.js';

const PEER = '192.0.2.1';

t.test('the worker reports status, is restarted when it dies, and ends on stop', async (t) => {
  const logs: { level: string; msg: string }[] = [];
  const bfd = new BfdService({ port: 0, log: (level, msg) => logs.push({ level, msg }) });
  t.teardown(() => bfd.stop());
  bfd.ensure({ peerAddress: PEER, timers: { ...DEFAULT_BFD_TIMERS, passive: true } });
  t.same(bfd.peers(), [PEER]);
  const first = await waitFor('a status from the worker', 5_000, async () => bfd.status(PEER));
  t.equal(first.state, 'Down');
  t.ok(first.localDiscriminator > 0, 'a discriminator was chosen in the worker');
  t.equal(first.error, undefined);

  // Test-only reach into the thread: terminate() is what a crash looks like from outside.
  const worker = (bfd as unknown as { worker: Worker }).worker;
  await worker.terminate();
  await waitFor('the death reported', 5_000, async () => logs.some((l) => l.level === 'error' && /BFD worker died/.test(l.msg)) || undefined);
  t.match(bfd.status(PEER)?.error ?? '', /BFD worker died .*restarting/, 'the status says why nothing runs');
  t.equal(bfd.status(PEER)?.state, 'Down');
  const again = await waitFor('the session back in a new worker', 5_000, async () => {
    const s = bfd.status(PEER);
    return s && !s.error ? s : undefined;
  });
  t.equal(bfd.restarts, 1);
  t.not(again.localDiscriminator, first.localDiscriminator, 'a new session in the new worker');

  await bfd.stop();
  t.equal((bfd as unknown as { worker?: Worker }).worker, undefined, 'no worker after stop');
  await sleep(300);
  t.equal(bfd.restarts, 1, 'a stopped service is not restarted');
  bfd.ensure({ peerAddress: '192.0.2.2', timers: DEFAULT_BFD_TIMERS });
  t.same(bfd.peers(), [PEER], 'nothing starts after stop');
});

t.test('a main thread wedged for more than 10 s mutes BFD until it runs again', async (t) => {
  const logs: { level: string; msg: string }[] = [];
  const bfd = new BfdService({ port: 0, log: (level, msg) => logs.push({ level, msg }) });
  t.teardown(() => bfd.stop());
  bfd.ensure({ peerAddress: PEER, timers: { ...DEFAULT_BFD_TIMERS, passive: true } });
  await waitFor('status', 5_000, async () => bfd.status(PEER));
  const stalled = (): boolean => logs.some((l) => l.level === 'error' && /main thread has not run/.test(l.msg));
  const end = performance.now() + 10_700;
  while (performance.now() < end) {
    // Wedged: no timer or message of this thread runs, so no pet reaches the worker.
  }
  await waitFor('the worker\'s watchdog report', 2_000, async () => stalled() || undefined);
  await waitFor('BFD sending again', 2_000, async () => logs.some((l) => /main thread runs again/.test(l.msg)) || undefined);
  t.pass('muted after 10 s without the main thread, unmuted when it ran again');
});

t.test('a 2 s stall does not trip the watchdog', async (t) => {
  const logs: string[] = [];
  const bfd = new BfdService({ port: 0, log: (_level, msg) => logs.push(msg) });
  t.teardown(() => bfd.stop());
  await sleep(300);
  const end = performance.now() + 2_000;
  while (performance.now() < end) {
    // Busy, as at start-up with many services.
  }
  await sleep(500);
  t.notOk(logs.some((m) => /main thread/.test(m)), 'no watchdog report');
});

t.test('remove forgets the session; timer changes reach the worker', async (t) => {
  const bfd = new BfdService({ port: 0 });
  t.teardown(() => bfd.stop());
  bfd.ensure({ peerAddress: PEER, timers: { ...DEFAULT_BFD_TIMERS, passive: true } });
  await waitFor('status', 5_000, async () => bfd.status(PEER));
  bfd.ensure({ peerAddress: PEER, timers: { minTxMs: 500, minRxMs: 700, multiplier: 5, passive: true } });
  // Not Up: the session sends at the slow 1 s rate whatever the timers; the change shows once Up. It must not be a new session.
  const before = bfd.status(PEER)!.localDiscriminator;
  await sleep(200);
  t.equal(bfd.status(PEER)!.localDiscriminator, before, 'a timer change keeps the session');
  bfd.remove(PEER);
  t.equal(bfd.status(PEER), undefined);
  t.same(bfd.peers(), []);
});
