/**
 * SingleFlight: callers share one computation, a result is reused for
 * reuseMs, and after that it is let go — not held until the next caller
 * (a /metrics document is ~10 MB at 10,000 services, scraped every 15-30 s).
 */
import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SingleFlight } from '../../src/metrics/single-flight.js';
import { sleep } from '../support/wait.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

t.test('a result is shared, reused for reuseMs, then released', async (t) => {
  const flight = new SingleFlight<{ doc: Uint8Array }>({ reuseMs: 50, queueLimit: 4 });
  let computed = 0;
  const compute = async () => ({ doc: new Uint8Array(1 << 20).fill(++computed) });
  let [a, b]: unknown[] = await Promise.all([flight.run('k', compute), flight.run('k', compute)]);
  t.equal(computed, 1, 'callers that arrive together share one computation');
  t.equal(a, b);
  t.equal(await flight.run('k', compute), a, 'within reuseMs the same result is handed out');
  const ref = new WeakRef(a as object);
  a = b = undefined;
  await sleep(120);
  gc();
  await sleep(0);
  gc();
  t.equal(ref.deref(), undefined, 'past reuseMs nothing holds the result any more');
  await flight.run('k', compute);
  t.equal(computed, 2, 'the next caller computes afresh');
});
