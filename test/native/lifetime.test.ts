/**
 * Native addon resource lifetimes: fds are released by close() and, when a
 * caller forgets, by GC finalizers; a map taken from an object keeps working
 * while the object itself is unreachable.
 */
import t from 'tap';
import { readdirSync } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { addon, type BpfMap } from '../../src/native/libbpf.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { compileTestObject } from './test-object.js';

const skip = privilegedUnavailable();

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Collects garbage until the fd count drops to `target` (bounded); returns the last count. */
async function collectUntil(target: number): Promise<number> {
  let fds = openFds();
  for (let i = 0; i < 20 && fds > target; i++) {
    gc();
    await nextTurn();
    fds = openFds();
  }
  return fds;
}

const compiled = skip ? undefined : compileTestObject();
t.teardown(() => compiled?.cleanup());

t.test('close() releases a map fd at once, and is idempotent', { skip }, async (t) => {
  const before = openFds();
  const maps = Array.from({ length: 50 }, () => addon().createMap('hash', 4, 4, 4));
  t.equal(openFds(), before + 50);
  for (const m of maps) m.close();
  for (const m of maps) m.close();
  t.equal(openFds(), before);
});

t.test('unclosed maps and objects are released by GC', { skip }, async (t) => {
  for (let i = 0; i < 3; i++) {
    gc();
    await nextTurn();
  }
  const baseline = openFds();
  (() => {
    for (let i = 0; i < 100; i++) addon().createMap('array', 4, 8, 16);
    for (let i = 0; i < 5; i++) {
      const o = addon().openObject(compiled!.path);
      o.load();
      o.map('xdp_seen');
      o.program('xdp_test');
    }
  })();
  const grown = openFds();
  t.ok(grown >= baseline + 100, `fds grew to ${grown} from ${baseline}`);
  const after = await collectUntil(baseline);
  t.ok(after <= baseline + 2, `after GC: ${after} (baseline ${baseline})`);
});

t.test('a map from an object outlives its unreachable object', { skip }, async (t) => {
  let objectCollected = false;
  const registry = new FinalizationRegistry(() => (objectCollected = true));
  const map: BpfMap = (() => {
    const o = addon().openObject(compiled!.path);
    registry.register(o, 'object');
    o.load();
    return o.map('xdp_seen');
  })();
  for (let i = 0; i < 20 && !objectCollected; i++) {
    gc();
    await nextTurn();
  }
  t.ok(objectCollected, 'the object wrapper was collected');
  gc();
  await nextTurn();
  const key = Buffer.alloc(4, 7);
  map.update(key, Buffer.alloc(8, 1));
  t.same(map.lookup(key), Buffer.alloc(8, 1), 'the map still works');
  t.ok(map.fd >= 0);
  map.close();
  t.equal(map.fd, -1);
});
