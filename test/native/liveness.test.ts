/**
 * The native liveness keeper (native/src/liveness.cc): it refreshes the
 * stamp while the JavaScript event loop is blocked (the reason it exists),
 * and stops once JavaScript has not petted it within the watchdog window
 * (a wedged agent must still fall silent). Checked on a real BPF array map.
 */
import t from 'tap';
import { addon } from '../../src/native/libbpf.js';
import { privilegedUnavailable } from '../support/privileged.js';

const skip = privilegedUnavailable();

function stampOf(map: { lookup(k: Buffer): Buffer | null }): bigint {
  return map.lookup(Buffer.alloc(4))!.readBigUInt64LE(0);
}

function busy(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // Hold the event loop, as a long reconcile or a huge scrape would.
  }
}

t.test('the stamp keeps moving while the event loop is blocked, and stops after the watchdog', { skip }, async (t) => {
  const a = addon();
  const map = a.createMap('array', 4, 8, 1, { name: 'ph_test_live' });
  const keeper = a.livenessKeeper(map.fd, 50, 400);
  try {
    keeper.pet();
    const before = process.hrtime.bigint();
    busy(300);
    const stamp = stampOf(map);
    t.ok(stamp > before, 'stamped during the blocked stretch');
    t.ok(process.hrtime.bigint() - stamp < 120_000_000n, 'stamp at most about one period old');
    const s1 = keeper.stats();
    t.ok(s1.stamps >= 4, `${s1.stamps} stamps in 300 ms at a 50 ms period`);
    t.equal(s1.failures, 0);

    // No pet for longer than the watchdog: the stamp stops.
    await new Promise((r) => setTimeout(r, 700));
    const s2 = keeper.stats();
    t.ok(s2.withheld > 0, `${s2.withheld} stamps withheld once JavaScript went quiet`);
    const stale = process.hrtime.bigint() - stampOf(map);
    t.ok(stale > 250_000_000n, `stamp ${Number(stale / 1_000_000n)} ms old: the responder would fall silent`);

    keeper.pet();
    await new Promise((r) => setTimeout(r, 150));
    t.ok(process.hrtime.bigint() - stampOf(map) < 120_000_000n, 'a pet brings it back');
  } finally {
    keeper.stop();
    keeper.stop(); // idempotent
    map.close();
  }
});

t.test('bad arguments throw clearly', { skip }, async (t) => {
  const a = addon();
  t.throws(() => a.livenessKeeper(-1, 50, 400), /mapFd/);
  t.throws(() => a.livenessKeeper(0, 1, 400), /periodMs/);
});
