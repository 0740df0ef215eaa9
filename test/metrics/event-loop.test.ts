/**
 * Event-loop delay metrics (src/metrics/event-loop.ts): a 200 ms stall of
 * the loop shows up in the histogram's upper buckets and in the 10-second
 * maximum; the window forgets old maxima; stop() removes the metrics.
 */
import t from 'tap';
import { Registry } from 'prom-client';
import { startEventLoopMonitor, WindowMax, EVENT_LOOP_DELAY_BUCKETS } from '../../src/metrics/event-loop.js';
import { parseExposition, type Family } from '../support/prom.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function bucket(f: Family, le: string): number {
  return f.samples.find((s) => s.name.endsWith('_bucket') && s.labels.le === le)!.value;
}

t.test('a 200 ms stall moves the histogram past 100 ms and sets the 10 s maximum', async (t) => {
  const registry = new Registry();
  const monitor = startEventLoopMonitor({ registry });
  t.teardown(() => monitor.stop());
  await sleep(100);
  const before = parseExposition(await registry.metrics());
  const h0 = before.get('pharos_event_loop_delay_seconds')!;
  t.equal(h0.type, 'histogram');
  const count0 = bucket(h0, '+Inf');
  t.ok(count0 >= 3, `the sampler runs every 10 ms (${count0} observations in 100 ms)`);
  const over100ms0 = count0 - bucket(h0, '0.1');

  const until = performance.now() + 200;
  while (performance.now() < until); // the stall
  await sleep(50);

  const after = parseExposition(await registry.metrics());
  const h1 = after.get('pharos_event_loop_delay_seconds')!;
  const over100ms1 = bucket(h1, '+Inf') - bucket(h1, '0.1');
  t.ok(over100ms1 - over100ms0 >= 1, `one more observation above 100 ms (${over100ms0} → ${over100ms1})`);
  t.ok(bucket(h1, '0.5') - bucket(h1, '0.1') >= 1, 'between 100 and 500 ms');
  const max = after.get('pharos_event_loop_delay_max_seconds')!.samples[0]!.value;
  t.ok(max >= 0.18 && max < 1, `max over the last 10 s: ${max}`);
  t.same(h1.samples.filter((s) => s.name.endsWith('_bucket')).map((s) => s.labels.le), [...EVENT_LOOP_DELAY_BUCKETS.map(String), '+Inf'], 'buckets 1 ms to 10 s');
  const sum = h1.samples.find((s) => s.name.endsWith('_sum'))!.value;
  t.ok(sum >= 0.18, `sum of delays counts the stall (${sum})`);
});

t.test('stop() removes both metrics and the timer', async (t) => {
  const registry = new Registry();
  startEventLoopMonitor({ registry }).stop();
  t.same(parseExposition(await registry.metrics()).size, 0);
});

t.test('the maximum is over a sliding 10 s window of per-second maxima', async (t) => {
  const w = new WindowMax(10);
  w.record(0.5, 1_000);
  w.record(0.2, 1_500);
  w.record(0.1, 4_000);
  t.equal(w.max(4_000), 0.5);
  t.equal(w.max(10_999), 0.5, 'second 1 is still within the last 10 s at 10.999 s');
  t.equal(w.max(11_000), 0.1, 'gone at 11 s');
  w.record(0.3, 21_000);
  t.equal(w.max(21_000), 0.3, 'a slot reused for a later second starts afresh');
  t.equal(w.max(40_000), 0, 'nothing recent');
});
