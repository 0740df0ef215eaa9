/**
 * Native addon, map side: every map kind pharos uses, batches, per-CPU
 * values, pinning, map-in-map, and bad input that must throw (not crash).
 */
import t from 'tap';
import { mkdirSync, rmSync } from 'node:fs';
import { addon, BpfError, type BpfMap } from '../../src/native/libbpf.js';
import { bpfErrorOf } from './bpf-error.js';
import { privilegedUnavailable } from '../support/privileged.js';

const skip = privilegedUnavailable();
const PIN_DIR = `/sys/fs/bpf/phn-maps-${process.pid}`;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function withMap<T>(map: BpfMap, fn: (m: BpfMap) => T): T {
  try {
    return fn(map);
  } finally {
    map.close();
  }
}

t.test('hash map: update, lookup, delete and update flags', { skip }, async (t) => {
  withMap(addon().createMap('hash', 4, 8, 16, { name: 'phn_hash' }), (m) => {
    t.match(m, { name: 'phn_hash', type: 'hash', keySize: 4, valueSize: 8, maxEntries: 16, perCpu: false, valueBufferSize: 8 });
    t.ok(m.id > 0, 'kernel id');
    t.ok(m.fd >= 0, 'fd');
    t.equal(m.lookup(u32(1)), null, 'absent key reads as null');
    m.update(u32(1), u64(100));
    t.same(m.lookup(u32(1)), u64(100));
    t.equal(bpfErrorOf(() => m.update(u32(1), u64(5), 1)).code, 'EEXIST', 'BPF_NOEXIST on a present key');
    t.equal(bpfErrorOf(() => m.update(u32(2), u64(5), 2)).code, 'ENOENT', 'BPF_EXIST on an absent key');
    m.update(u32(1), u64(101), 2);
    t.same(m.lookup(u32(1)), u64(101), 'BPF_EXIST replaced');
    t.equal(m.delete(u32(1)), true, 'delete a present key');
    t.equal(m.delete(u32(1)), false, 'delete an absent key');
    for (let i = 0; i < 16; i++) m.update(u32(i), u64(i));
    t.equal(bpfErrorOf(() => m.update(u32(99), u64(1))).code, 'E2BIG', 'a full hash refuses more');
  });
});

t.test('array map: zero-filled slots, bounds, no delete', { skip }, async (t) => {
  withMap(addon().createMap('array', 4, 4, 8), (m) => {
    t.same(m.lookup(u32(7)), u32(0), 'slots start zeroed');
    m.update(u32(7), u32(0xdeadbeef));
    t.same(m.lookup(u32(7)), u32(0xdeadbeef));
    t.equal(m.lookup(u32(8)), null, 'beyond max_entries reads as absent');
    t.equal(bpfErrorOf(() => m.update(u32(8), u32(1))).code, 'E2BIG');
    t.equal(bpfErrorOf(() => m.delete(u32(1))).code, 'EINVAL', 'array slots cannot be deleted');
    t.equal(m.keys().length, 8, 'every slot is a key');
  });
});

t.test('per-CPU maps: value buffers span every possible CPU, split per CPU', { skip }, async (t) => {
  const cpus = addon().possibleCpus();
  t.ok(cpus >= 1, `possible CPUs: ${cpus}`);
  // 4-byte values are rounded up to 8 bytes per CPU.
  withMap(addon().createMap('percpu_array', 4, 4, 2), (m) => {
    t.equal(m.perCpu, true);
    t.equal(m.valueBufferSize, cpus * 8);
    const value = Buffer.alloc(cpus * 8);
    for (let cpu = 0; cpu < cpus; cpu++) value.writeUInt32LE(1000 + cpu, cpu * 8);
    m.update(u32(1), value);
    const parts = m.splitPerCpu(m.lookup(u32(1))!);
    t.equal(parts.length, cpus);
    t.same(parts.map((p) => p.readUInt32LE()), Array.from({ length: cpus }, (_, cpu) => 1000 + cpu));
    t.ok(parts.every((p) => p.length === 4), 'each part is valueSize bytes');
    const e = bpfErrorOf(() => m.update(u32(1), Buffer.alloc(4)));
    t.match(e.message, /value buffer is 4 bytes, expected \d+ \(per-CPU/, 'names the per-CPU size');
    t.throws(() => m.splitPerCpu(Buffer.alloc(3)), BpfError);
  });
  withMap(addon().createMap('percpu_hash', 4, 12, 64), (m) => {
    t.equal(m.valueBufferSize, cpus * 16);
    const keys = Buffer.concat([u32(1), u32(2), u32(3)]);
    const values = Buffer.alloc(3 * m.valueBufferSize);
    for (let i = 0; i < 3; i++) {
      for (let cpu = 0; cpu < cpus; cpu++) values.writeUInt32LE(i * 10 + cpu, i * m.valueBufferSize + cpu * 16);
    }
    t.equal(m.updateBatch(keys, values, 3), 3);
    const entries = m.entries().map(([k, v]) => [k.readUInt32LE(), m.splitPerCpu(v).map((p) => p.readUInt32LE())]);
    entries.sort((a, b) => (a[0] as number) - (b[0] as number));
    t.same(entries, [1, 2, 3].map((k) => [k, Array.from({ length: cpus }, (_, cpu) => (k - 1) * 10 + cpu)]));
  });
  withMap(addon().createMap('lru_percpu_hash', 4, 8, 16), (m) => {
    t.equal(m.type, 'lru_percpu_hash');
    t.equal(m.perCpu, true);
  });
});

t.test('LRU hash evicts instead of refusing', { skip }, async (t) => {
  withMap(addon().createMap('lru_hash', 4, 8, 32), (m) => {
    for (let i = 0; i < 200; i++) m.update(u32(i), u64(i));
    const kept = m.keys().map((k) => k.readUInt32LE());
    t.ok(kept.length > 0 && kept.length <= 32, `kept ${kept.length} of 200 in a 32-entry LRU`);
    t.ok(kept.includes(199), 'the newest key survives');
    t.equal(m.lookup(u32(0)), null, 'the oldest key was evicted');
  });
});

t.test('LPM trie: longest prefix wins; iteration falls back to a key walk', { skip }, async (t) => {
  // key: u32 prefix length (host order) + IPv4 address bytes
  const key = (prefixLen: number, addr: string) => {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(prefixLen);
    addr.split('.').forEach((o, i) => (b[4 + i] = Number(o)));
    return b;
  };
  withMap(addon().createMap('lpm_trie', 8, 4, 16, { name: 'phn_lpm' }), (m) => {
    t.ok(m.flags & 1, 'BPF_F_NO_PREALLOC added for the trie');
    m.update(key(15, '198.18.0.0'), u32(1));
    m.update(key(24, '198.18.5.0'), u32(2));
    t.same(m.lookup(key(32, '198.18.5.7')), u32(2), '/24 beats /15');
    t.same(m.lookup(key(32, '198.19.200.1')), u32(1), '/15 covers 198.19');
    t.equal(m.lookup(key(32, '192.0.2.1')), null, 'outside every prefix');
    const entries = m.entries();
    t.equal(entries.length, 2);
    t.same(entries.map(([, v]) => v.readUInt32LE()).sort(), [1, 2]);
    t.equal(m.keys().length, 2);
  });
});

t.test('batch update, iteration and batch delete (hash and array)', { skip }, async (t) => {
  const n = 1000;
  withMap(addon().createMap('hash', 4, 8, 2048), (m) => {
    const keys = Buffer.concat(Array.from({ length: n }, (_, i) => u32(i * 7)));
    const values = Buffer.concat(Array.from({ length: n }, (_, i) => u64(i * 3)));
    t.equal(m.updateBatch(keys, values, n), n, 'all applied');
    const entries = m.entries();
    t.equal(entries.length, n, 'batch lookup returns every entry across calls');
    t.ok(entries.every(([k, v]) => Number(v.readBigUInt64LE()) === (k.readUInt32LE() / 7) * 3), 'values match keys');
    t.equal(m.keys().length, n, 'key walk agrees');
    // Every other key of the first 200, mixed with absent ones: absent keys are skipped.
    const doomed: Buffer[] = [];
    for (let i = 0; i < 200; i += 2) doomed.push(u32(i * 7), u32(100000 + i));
    t.equal(m.deleteBatch(Buffer.concat(doomed), doomed.length), 100, 'only present keys count');
    t.equal(m.entries().length, n - 100);
    t.equal(m.lookup(u32(0)), null);
    t.same(m.lookup(u32(7)), u64(3));
    const e = bpfErrorOf(() => m.updateBatch(keys, values, n + 1));
    t.match(e.message, /key buffer is 4000 bytes, expected 1001 x 4/);
  });
  withMap(addon().createMap('array', 4, 4, 64), (m) => {
    const keys = Buffer.concat([u32(3), u32(5), u32(63)]);
    t.equal(m.updateBatch(keys, Buffer.concat([u32(30), u32(50), u32(630)]), 3), 3);
    const entries = m.entries();
    t.equal(entries.length, 64, 'an array has all its slots');
    t.same(entries.filter(([, v]) => v.readUInt32LE() !== 0).map(([k, v]) => [k.readUInt32LE(), v.readUInt32LE()]),
      [[3, 30], [5, 50], [63, 630]]);
    t.equal(bpfErrorOf(() => m.deleteBatch(keys, 3)).code, 'EINVAL', 'array slots cannot be deleted');
  });
  withMap(addon().createMap('hash', 4, 4, 8), (m) => {
    t.same(m.entries(), [], 'empty map');
    t.same(m.keys(), []);
    t.equal(m.updateBatch(Buffer.alloc(0), Buffer.alloc(0), 0), 0, 'empty batch');
  });
});

t.test('pin a map and re-open it from the pin (data kept)', { skip }, async (t) => {
  rmSync(PIN_DIR, { recursive: true, force: true });
  mkdirSync(PIN_DIR, { recursive: true });
  t.teardown(() => rmSync(PIN_DIR, { recursive: true, force: true }));
  const path = `${PIN_DIR}/pinned`;
  const m = addon().createMap('hash', 4, 8, 16, { name: 'phn_pinned' });
  m.update(u32(42), u64(4242));
  m.pin(path);
  const id = m.id;
  t.equal(bpfErrorOf(() => m.pin(path)).code, 'EEXIST', 'pinning twice at one path');
  m.close();
  const again = addon().openPinnedMap(path);
  t.equal(again.id, id, 'same kernel map');
  t.equal(again.name, 'phn_pinned');
  t.same(again.lookup(u32(42)), u64(4242), 'data survived the first fd');
  again.close();
  const missing = bpfErrorOf(() => addon().openPinnedMap(`${PIN_DIR}/nope`));
  t.equal(missing.code, 'ENOENT');
  t.match(missing.message, `${PIN_DIR}/nope`, 'names the path');
});

t.test('map-in-map: replace an inner map, read its id, open it by id', { skip }, async (t) => {
  const a = addon();
  const template = a.createMap('array', 4, 4, 4, { name: 'phn_inner_t' });
  const inner = a.createMap('array', 4, 4, 4, { name: 'phn_inner' });
  const outer = a.createMap('array_of_maps', 4, 4, 2, { name: 'phn_outer', innerMapFd: template.fd });
  const hashOuter = a.createMap('hash_of_maps', 4, 4, 8, { innerMapFd: template.fd });
  t.teardown(() => [template, inner, outer, hashOuter].forEach((m) => m.close()));
  t.equal(outer.type, 'array_of_maps');
  outer.update(u32(1), u32(inner.fd));
  hashOuter.update(u32(77), u32(inner.fd));
  const innerId = outer.lookup(u32(1))!.readUInt32LE();
  t.equal(innerId, inner.id, 'lookup on the outer map returns the inner map id');
  t.equal(hashOuter.lookup(u32(77))!.readUInt32LE(), inner.id);
  const byId = a.mapFromId(innerId);
  t.teardown(() => byId.close());
  t.match(byId, { id: inner.id, name: 'phn_inner', type: 'array', keySize: 4, valueSize: 4, maxEntries: 4 });
  byId.update(u32(2), u32(9));
  t.same(inner.lookup(u32(2)), u32(9), 'writes through the id-opened fd land in the same map');
  const mismatched = a.createMap('array', 4, 8, 4);
  t.teardown(() => mismatched.close());
  t.equal(bpfErrorOf(() => outer.update(u32(0), u32(mismatched.fd))).code, 'EINVAL', 'inner must match the template');
  t.equal(bpfErrorOf(() => a.mapFromId(0xfffffff0)).code, 'ENOENT', 'unknown id');
});

t.test('bad input gives clear errors, never a crash', { skip }, async (t) => {
  const a = addon();
  const m = a.createMap('hash', 4, 8, 4, { name: 'phn_bad' });
  let e = bpfErrorOf(() => m.lookup(Buffer.alloc(3)));
  t.equal(e.code, 'EINVAL');
  t.equal(e.errno, 22);
  t.match(e.message, "map 'phn_bad': key buffer is 3 bytes, expected 4");
  e = bpfErrorOf(() => m.update(u32(1), Buffer.alloc(4)));
  t.match(e.message, "map 'phn_bad': value buffer is 4 bytes, expected 8");
  bpfErrorOf(() => m.delete(Buffer.alloc(5)));
  e = bpfErrorOf(() => m.lookup('abcd' as unknown as Buffer));
  t.match(e.message, 'must be a Buffer');
  e = bpfErrorOf(() => m.update(u32(1), u64(1), 1.5));
  t.match(e.message, 'flags must be an integer');
  e = bpfErrorOf(() => m.deleteBatch(u32(1), -1));
  t.match(e.message, 'count must be an integer');
  m.close();
  m.close();
  t.equal(m.fd, -1, 'closed map has no fd');
  e = bpfErrorOf(() => m.lookup(u32(1)));
  t.match(e.message, "map 'phn_bad' is closed");
  e = bpfErrorOf(() => a.createMap('nonsense' as 'hash', 4, 4, 4));
  t.match(e.message, "unknown map type 'nonsense'");
  e = bpfErrorOf(() => a.createMap('hash', 4, 4, 4, { name: 'a_name_too_long_for_bpf' }));
  t.match(e.message, 'longer than 15');
  e = bpfErrorOf(() => a.createMap('hash', 0, 4, 4));
  t.equal(e.code, 'EINVAL', 'kernel refuses a zero-size key');
  t.match(e.message, 'createMap(hash, key 0');
});
