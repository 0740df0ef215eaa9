/**
 * Data-path metrics from real BPF maps (privileged): per-CPU counter arrays
 * read in batch chunks and summed over CPUs, entries counted by batch
 * lookups (with a key walk where a map type has none), the agent's own
 * counts preferred to any walk, the liveness age, and the read cost of the
 * counter arrays at 30,000 frontends and 80,000 backends.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { Registry } from 'prom-client';
import { addon, type BpfMap } from '../../src/native/libbpf.js';
import { STAT_REASONS, SIZE, encodeLiveness } from '../../src/datapath/abi.js';
import type { DatapathMaps } from '../../src/datapath/loader.js';
import { countEntries, readLivenessAgeSeconds, readReasonCounters, readTraffic, readTrafficTable } from '../../src/datapath/stats.js';
import { registerDatapathMetrics } from '../../src/metrics/datapath.js';
import { renderMetrics } from '../../src/metrics/registry.js';
import { HttpEndpoint } from '../../src/metrics/server.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { parseExposition } from '../support/prom.js';
import { sliceMeter } from './slices.js';

const skip = privilegedUnavailable();
const execFileAsync = promisify(execFile);

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function track(t: { teardown(fn: () => void): void }, map: BpfMap): BpfMap {
  t.teardown(() => map.close());
  return map;
}

/** Per-CPU ph_traffic value: CPU c holds packets = base + c, bytes = 100 * (base + c). */
function trafficValue(map: BpfMap, base: number): Buffer {
  const cpus = addon().possibleCpus();
  const v = Buffer.alloc(map.valueBufferSize);
  for (let cpu = 0; cpu < cpus; cpu++) {
    v.writeBigUInt64LE(BigInt(base + cpu), cpu * 16);
    v.writeBigUInt64LE(BigInt(100 * (base + cpu)), cpu * 16 + 8);
  }
  return v;
}

function trafficSum(base: number): { packets: number; bytes: number } {
  const cpus = addon().possibleCpus();
  let packets = 0;
  for (let cpu = 0; cpu < cpus; cpu++) packets += base + cpu;
  return { packets, bytes: 100 * packets };
}

t.test('traffic arrays: summed over CPUs, by id, read only up to the highest id asked for', { skip }, async (t) => {
  const fe = track(t, addon().createMap('percpu_array', 4, SIZE.traffic, 5000, { name: 'ph_fe_stats' }));
  // Spread over several chunks (1,024 entries each) and past 2^32 on one id.
  for (const id of [0, 1, 1023, 1024, 3000, 4999]) fe.update(u32(id), trafficValue(fe, id * 10));
  fe.update(u32(7), trafficValue(fe, 2 ** 32));
  let pauses = 0;
  const table = await readTrafficTable(fe, { pause: async () => { pauses++; } });
  t.equal(table.length, 2 * 5000);
  for (const id of [0, 1, 1023, 1024, 3000, 4999]) {
    const want = trafficSum(id * 10);
    t.same([table[2 * id], table[2 * id + 1]], [want.packets, want.bytes], `id ${id}`);
  }
  t.same([table[14], table[15]], [trafficSum(2 ** 32).packets, trafficSum(2 ** 32).bytes], 'above 2^32: high words count');
  t.equal(table[2 * 2], 0, 'untouched slot reads 0');
  t.ok(pauses >= 4, `paused between chunks (${pauses})`);
  const viaLookup = readTraffic(fe, [1024]).get(1024)!;
  t.same([Number(viaLookup.packets), Number(viaLookup.bytes)], [table[2048], table[2049]], 'same sums as a per-id lookup');

  const partial = await readTrafficTable(fe, { upToId: 1023 });
  t.equal(partial.length, 2 * 1024, 'sized for the ids asked for');
  t.equal(partial[2 * 1023], trafficSum(10230).packets);
});

t.test('reason counters: one batch over ph_stats, summed over CPUs', { skip }, async (t) => {
  const stats = track(t, addon().createMap('percpu_array', 4, 8, STAT_REASONS.length, { name: 'ph_stats' }));
  const cpus = addon().possibleCpus();
  const v = Buffer.alloc(stats.valueBufferSize);
  for (let cpu = 0; cpu < cpus; cpu++) v.writeBigUInt64LE(BigInt(cpu + 1), cpu * 8);
  stats.update(u32(STAT_REASONS.indexOf('no_backend')), v);
  const r = readReasonCounters(stats);
  t.equal(r.no_backend, BigInt((cpus * (cpus + 1)) / 2));
  t.equal(r.ct_create, 0n);
  t.same(Object.keys(r), [...STAT_REASONS]);
});

t.test('entries counted by batch lookups; a key walk where the map type has no batch (lpm_trie)', { skip }, async (t) => {
  const ct = track(t, addon().createMap('lru_hash', SIZE.flow, SIZE.ct, 8192, { name: 'ph_ct' }));
  const n = 3000;
  const keys = Buffer.alloc(n * SIZE.flow);
  for (let i = 0; i < n; i++) keys.writeUInt32LE(i, i * SIZE.flow);
  t.equal(ct.updateBatch(keys, Buffer.alloc(n * SIZE.ct), n), n);
  t.equal(await countEntries(ct), n);
  const empty = track(t, addon().createMap('hash', 4, 4, 16, { name: 'phm_empty' }));
  t.equal(await countEntries(empty), 0);
  const trie = track(t, addon().createMap('lpm_trie', 8, 4, 64, { name: 'phm_trie', flags: 1 }));
  for (let i = 0; i < 5; i++) {
    const key = Buffer.alloc(8);
    key.writeUInt32LE(32, 0);
    key.writeUInt32BE(0xc0000200 + i, 4);
    trie.update(key, u32(i));
  }
  t.equal(await countEntries(trie), 5);
});

t.test('liveness age: the ph_liveness stamp against CLOCK_MONOTONIC now; none before the first stamp', { skip }, async (t) => {
  const liveness = track(t, addon().createMap('array', 4, SIZE.liveness, 1, { name: 'ph_liveness' }));
  t.equal(readLivenessAgeSeconds(liveness), undefined, 'never stamped');
  const now = process.hrtime.bigint();
  liveness.update(u32(0), encodeLiveness(now - 1_500_000_000n));
  const age = readLivenessAgeSeconds(liveness, now)!;
  t.ok(Math.abs(age - 1.5) < 1e-6, `age ${age}`);
});

t.test('registered: real maps through /metrics; the agent\'s counts win over a walk; other maps counted at most once per countMaxAgeMs', { skip }, async (t) => {
  const cpus = addon().possibleCpus();
  const stats = track(t, addon().createMap('percpu_array', 4, 8, STAT_REASONS.length, { name: 'ph_stats' }));
  const fe = track(t, addon().createMap('percpu_array', 4, SIZE.traffic, 64, { name: 'ph_fe_stats' }));
  const be = track(t, addon().createMap('percpu_array', 4, SIZE.traffic, 64, { name: 'ph_be_stats' }));
  const ct = track(t, addon().createMap('lru_hash', SIZE.flow, SIZE.ct, 1024, { name: 'ph_ct' }));
  const frontendsMap = track(t, addon().createMap('hash', SIZE.feKey, SIZE.feValue, 64, { name: 'ph_frontends' }));
  fe.update(u32(3), trafficValue(fe, 5));
  be.update(u32(9), trafficValue(be, 7));
  const arp = Buffer.alloc(stats.valueBufferSize);
  arp.writeBigUInt64LE(4n, 0);
  stats.update(u32(STAT_REASONS.indexOf('arp_reply')), arp);
  const addFlows = (from: number, count: number) => {
    const keys = Buffer.alloc(count * SIZE.flow);
    for (let i = 0; i < count; i++) keys.writeUInt32LE(from + i, i * SIZE.flow);
    ct.updateBatch(keys, Buffer.alloc(count * SIZE.ct), count);
  };
  addFlows(0, 10);
  const maps = { stats, frontendStats: fe, backendStats: be, conntrack: ct, frontends: frontendsMap } as unknown as DatapathMaps;
  const reg = new Registry();
  const metrics = registerDatapathMetrics({
    maps: () => maps,
    labels: () => ({ version: 1, frontends: new Map([[3, { service: 'shop/web', frontend: '198.51.100.64:80/TCP' }]]), backends: new Map([[9, { backend: '203.0.113.2:8080' }]]) }),
    // ph_frontends is empty in the kernel: 42 can only come from here.
    mapEntries: () => new Map([['ph_frontends', 42]]),
    mapFull: () => ({ ph_backends: 1 }),
    livenessAgeSeconds: () => 0.125,
  }, { registry: reg, reuseMs: 0, countMaxAgeMs: 300 });
  t.teardown(() => metrics.close());
  const scrape = async () => parseExposition(Buffer.concat(await renderMetrics(reg)).toString());
  const value = (f: Awaited<ReturnType<typeof scrape>>, name: string, labels: Record<string, string> = {}) =>
    f.get(name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

  let f = await scrape();
  t.equal(value(f, 'pharos_datapath_packets_total', { service: 'shop/web' }), trafficSum(5).packets);
  t.equal(value(f, 'pharos_datapath_bytes_total', { frontend: '198.51.100.64:80/TCP' }), trafficSum(5).bytes);
  t.equal(value(f, 'pharos_datapath_backend_packets_total', { backend: '203.0.113.2:8080' }), trafficSum(7).packets);
  t.equal(value(f, 'pharos_l2_arp_replies_total'), 4);
  t.equal(value(f, 'pharos_bpf_map_entries', { map: 'ph_frontends' }), 42, 'the agent\'s count, not a walk');
  t.equal(value(f, 'pharos_bpf_map_entries', { map: 'ph_fe_stats' }), 64, 'arrays: every slot');
  t.equal(value(f, 'pharos_bpf_map_capacity', { map: 'ph_ct' }), 1024);
  t.equal(value(f, 'pharos_conntrack_entries'), 10);
  t.equal(value(f, 'pharos_bpf_map_full_total', { map: 'ph_backends' }), 1);
  t.equal(value(f, 'pharos_l2_responder_liveness_age_seconds'), 0.125);
  t.equal(value(f, 'pharos_datapath_scrape_errors_total'), 0);
  t.same(metrics.mapRows().find((r) => r.name === 'ph_ct'), { name: 'ph_ct', entries: 10, capacity: 1024 }, 'rows for /v1/state');

  addFlows(10, 5);
  fe.update(u32(3), trafficValue(fe, 6));
  f = await scrape();
  t.equal(value(f, 'pharos_conntrack_entries'), 10, 'within countMaxAgeMs: the last count');
  t.equal(value(f, 'pharos_datapath_packets_total', { service: 'shop/web' }), trafficSum(6).packets, 'counters are read every scrape');
  await new Promise((r) => setTimeout(r, 350));
  f = await scrape();
  t.equal(value(f, 'pharos_conntrack_entries'), 15, 'past countMaxAgeMs: counted again');

  fe.close();
  f = await scrape();
  t.equal(value(f, 'pharos_datapath_scrape_errors_total'), 1, 'a map that cannot be read is a counted scrape error');
  t.same(f.get('pharos_datapath_packets_total')?.samples, [], 'and no stale samples');
  t.ok(cpus >= 1);
});

t.test('read cost of the counter arrays at 30,000 frontends and 80,000 backends', { skip }, async (t) => {
  const fe = track(t, addon().createMap('percpu_array', 4, SIZE.traffic, 32768, { name: 'ph_fe_stats' }));
  const be = track(t, addon().createMap('percpu_array', 4, SIZE.traffic, 131072, { name: 'ph_be_stats' }));
  const meter = sliceMeter();
  const pause = meter.pause;
  const cpu = process.cpuUsage();
  let start = performance.now();
  await readTrafficTable(fe, { upToId: 29_999, pause });
  const feMs = performance.now() - start;
  start = performance.now();
  await readTrafficTable(be, { upToId: 79_999, pause });
  const beMs = performance.now() - start;
  start = performance.now();
  await readTrafficTable(be, { pause });
  const fullMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  meter.stop();
  t.comment(`frontends (30,000 ids) ${feMs.toFixed(0)} ms, backends (80,000 ids) ${beMs.toFixed(0)} ms, whole 131,072-slot array ${fullMs.toFixed(0)} ms; ` +
    `CPU ${((used.user + used.system) / 1000).toFixed(0)} ms (${used.system / 1000 | 0} ms in the kernel), ${addon().possibleCpus()} possible CPUs; ` +
    `${meter.pauses} pauses, longest slice ${meter.longestSliceCpuMs.toFixed(1)} ms CPU, longest event-loop turn ${meter.longestTurnMs.toFixed(1)} ms wall`);
  t.ok(feMs + beMs < 5000, 'generous bound');
  t.ok(meter.longestSliceCpuMs < 50, `read in short slices (longest ${meter.longestSliceCpuMs.toFixed(1)} ms of CPU)`);
});

t.test('a scrape at 10,000 services end to end: real maps, the HTTP endpoint, curl with gzip', { skip }, async (t) => {
  const FRONTENDS = 30_000;
  const BACKENDS = 80_000;
  const FLOWS = 200_000;
  const cpus = addon().possibleCpus();
  const stats = track(t, addon().createMap('percpu_array', 4, 8, STAT_REASONS.length, { name: 'ph_stats' }));
  const fe = track(t, addon().createMap('percpu_array', 4, SIZE.traffic, 32768, { name: 'ph_fe_stats' }));
  const be = track(t, addon().createMap('percpu_array', 4, SIZE.traffic, 131072, { name: 'ph_be_stats' }));
  const ct = track(t, addon().createMap('lru_hash', SIZE.flow, SIZE.ct, 262144, { name: 'ph_ct' }));
  const rev = track(t, addon().createMap('lru_hash', SIZE.flow, SIZE.rev, 262144, { name: 'ph_rev' }));
  const fill = (map: BpfMap, n: number, value: (i: number, v: Buffer, at: number) => void) => {
    const keys = Buffer.alloc(n * map.keySize);
    const values = Buffer.alloc(n * map.valueBufferSize);
    for (let i = 0; i < n; i++) {
      keys.writeUInt32LE(i, i * map.keySize);
      value(i, values, i * map.valueBufferSize);
    }
    t.equal(map.updateBatch(keys, values, n), n);
  };
  const traffic = (i: number, v: Buffer, at: number) => {
    for (let cpu = 0; cpu < cpus; cpu++) {
      v.writeBigUInt64LE(BigInt(i + cpu), at + cpu * 16);
      v.writeBigUInt64LE(BigInt((i + cpu) * 1400), at + cpu * 16 + 8);
    }
  };
  fill(fe, FRONTENDS, traffic);
  fill(be, BACKENDS, traffic);
  fill(ct, FLOWS, () => {});
  fill(rev, FLOWS, () => {});
  const frontends = new Map<number, { service: string; frontend: string }>();
  for (let i = 0; i < FRONTENDS; i++) {
    frontends.set(i, { service: `team-${i % 50}/svc-${Math.floor(i / 3)}`, frontend: `198.18.${(i >> 8) & 255}.${i & 255}:${i % 3 === 2 ? 30000 + (i % 2000) : 80}/TCP` });
  }
  const backends = new Map<number, { backend: string }>();
  for (let i = 0; i < BACKENDS; i++) backends.set(i, { backend: `198.19.${(i >> 8) & 255}.${i & 255}:8080` });
  const maps = { stats, frontendStats: fe, backendStats: be, conntrack: ct, reverseNat: rev } as unknown as DatapathMaps;

  const registry = new Registry();
  const meter = sliceMeter();
  const metrics = registerDatapathMetrics({ maps: () => maps, labels: () => ({ version: 1, frontends, backends }), mapFull: () => ({}) },
    { registry, reuseMs: 0, pause: meter.pause });
  t.teardown(() => metrics.close());
  const ep = new HttpEndpoint({ host: '127.0.0.1', port: 0, registry, state: () => ({}) as never, limits: { metricsReuseMs: 0 } });
  const { port } = await ep.start();
  t.teardown(() => ep.stop());
  const curl = async (headers: string[]) => {
    const { stdout } = await execFileAsync('curl', ['-s', '-o', '/dev/null', ...headers.flatMap((h) => ['-H', h]),
      '-w', '%{http_code} %{size_download} %{time_total}', `http://127.0.0.1:${port}/metrics`], { timeout: 30_000 });
    const [code, bytes, seconds] = stdout.split(' ').map(Number);
    return { code: code!, bytes: bytes!, ms: seconds! * 1000 };
  };
  const rss0 = process.memoryUsage().rss;
  const cpu0 = process.cpuUsage();
  const first = await curl(['Accept-Encoding: gzip']);
  const cpuFirst = process.cpuUsage(cpu0);
  await new Promise((r) => setTimeout(r, first.ms + 50)); // past the reuse window (as long as it took)
  const cpu1 = process.cpuUsage();
  const steady = await curl(['Accept-Encoding: gzip']);
  const cpuSteady = process.cpuUsage(cpu1);
  await new Promise((r) => setTimeout(r, steady.ms + 50));
  const plain = await curl([]);
  const rss1 = process.memoryUsage().rss;
  meter.stop();
  const cpuMs = (u: NodeJS.CpuUsage) => ((u.user + u.system) / 1000).toFixed(0);
  t.comment(`first scrape (labels rendered, 2 x ${FLOWS} LRU entries counted) ${first.ms.toFixed(0)} ms, CPU ${cpuMs(cpuFirst)} ms; ` +
    `steady scrape ${steady.ms.toFixed(0)} ms, CPU ${cpuMs(cpuSteady)} ms (incl. gzip in the pool), ${steady.bytes} bytes gzipped, ${plain.bytes} plain; ` +
    `longest event-loop turn ${meter.longestTurnMs.toFixed(1)} ms; RSS ${((rss1 - rss0) / 2 ** 20).toFixed(0)} MiB more`);
  t.same([first.code, steady.code, plain.code], [200, 200, 200]);
  t.ok(steady.bytes < plain.bytes / 4, 'gzipped');
  t.equal(metrics.mapRows().find((r) => r.name === 'ph_ct')?.entries, FLOWS, 'conntrack counted');
  t.ok(steady.ms < 10_000, 'generous bound');
  // Slices are asserted where nothing else runs (above, and in datapath-render.test.ts): here gzip's pool threads share the process's CPU time.
  t.ok(meter.pauses > 100, `cut into event-loop turns (${meter.pauses} pauses)`);
});
