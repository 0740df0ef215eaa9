/**
 * The data-path families as /metrics shows them (src/metrics/datapath.ts):
 * exact text for a small table, label escaping, the per-backend switch, the
 * label cache keyed by the agent's version, one scrape shared by concurrent
 * callers — and the cost at 10,000 services (30,000 frontends, 80,000
 * backends), measured and bounded.
 */
import t from 'tap';
import { Registry } from 'prom-client';
import { DATAPATH_FAMILIES, registerDatapathMetrics, renderDatapathFamilies, renderLabels, type CounterTables, type DatapathLabels } from '../../src/metrics/datapath.js';
import { renderMetrics } from '../../src/metrics/registry.js';
import { STAT_REASONS, type StatReason } from '../../src/datapath/abi.js';
import type { DatapathCounters } from '../../src/datapath/stats.js';
import { parseExposition } from '../support/prom.js';
import { sliceMeter } from './slices.js';

function reasons(values: Partial<Record<StatReason, number>>): Float64Array {
  return Float64Array.from(STAT_REASONS, (r) => values[r] ?? 0);
}

const SMALL: DatapathLabels = {
  version: 1,
  frontends: new Map([
    [0, { service: 'shop/web', frontend: '198.51.100.64:80/TCP' }],
    [3, { service: 'odd/"quoted"\\name', frontend: '[2001:db8::40]:443/TCP' }],
  ]),
  backends: new Map([[5, { backend: '203.0.113.2:8080' }]]),
};

const SMALL_COUNTERS: CounterTables = {
  reasons: reasons({ no_backend: 4, fragment: 2, ct_create: 7, arp_reply: 11, na_reply: 1 }),
  // [packets, bytes] per id: id 0 and id 3 (ids 1-2 are unused slots).
  frontends: Float64Array.from([10, 1500, 0, 0, 0, 0, 2 ** 32 + 5, 123456789012]),
  backends: Float64Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 900]),
};

t.test('exact text of the traffic families for a small table, with escaping', async (t) => {
  const text = Buffer.concat(await renderDatapathFamilies({
    labels: await renderLabels(SMALL), counters: SMALL_COUNTERS, maps: [], mapFull: {}, scrapeErrors: 0,
  }, { perBackend: true })).toString();
  const traffic = text.slice(0, text.indexOf('# HELP pharos_datapath_drops_total'));
  t.equal(traffic, [
    '# HELP pharos_datapath_packets_total Packets the XDP data path forwarded, per frontend (client to backend direction)',
    '# TYPE pharos_datapath_packets_total counter',
    'pharos_datapath_packets_total{service="shop/web",frontend="198.51.100.64:80/TCP"} 10',
    'pharos_datapath_packets_total{service="odd/\\"quoted\\"\\\\name",frontend="[2001:db8::40]:443/TCP"} 4294967301',
    '',
    '# HELP pharos_datapath_bytes_total Bytes the XDP data path forwarded, per frontend',
    '# TYPE pharos_datapath_bytes_total counter',
    'pharos_datapath_bytes_total{service="shop/web",frontend="198.51.100.64:80/TCP"} 1500',
    'pharos_datapath_bytes_total{service="odd/\\"quoted\\"\\\\name",frontend="[2001:db8::40]:443/TCP"} 123456789012',
    '',
    '# HELP pharos_datapath_backend_packets_total Packets the XDP data path sent to each backend',
    '# TYPE pharos_datapath_backend_packets_total counter',
    'pharos_datapath_backend_packets_total{backend="203.0.113.2:8080"} 9',
    '',
    '# HELP pharos_datapath_backend_bytes_total Bytes the XDP data path sent to each backend',
    '# TYPE pharos_datapath_backend_bytes_total counter',
    'pharos_datapath_backend_bytes_total{backend="203.0.113.2:8080"} 900',
    '',
    '',
  ].join('\n'));
  const families = parseExposition(text);
  t.equal(families.get('pharos_datapath_packets_total')!.samples[1]!.labels.service, 'odd/"quoted"\\name', 'escaping reads back');
});

t.test('reasons, replies, maps, liveness: one family each, typed, every reason listed', async (t) => {
  const text = Buffer.concat(await renderDatapathFamilies({
    labels: await renderLabels(SMALL), counters: SMALL_COUNTERS,
    maps: [{ name: 'ph_ct', entries: 12, capacity: 262144 }, { name: 'ph_frontends', entries: 2, capacity: 1024 }],
    mapFull: { ph_backends: 3 }, livenessAgeSeconds: 0.25, scrapeErrors: 0,
  }, { perBackend: true })).toString();
  const families = parseExposition(text);
  t.same([...families.keys()], [...DATAPATH_FAMILIES], 'every family, in order, declared once');
  const value = (name: string, labels: Record<string, string> = {}) =>
    families.get(name)!.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  t.equal(value('pharos_datapath_drops_total', { reason: 'no_backend' }), 4);
  t.equal(value('pharos_datapath_passes_total', { reason: 'fragment' }), 2);
  t.equal(value('pharos_datapath_events_total', { event: 'ct_create' }), 7);
  const reasonCount = families.get('pharos_datapath_drops_total')!.samples.length + families.get('pharos_datapath_passes_total')!.samples.length +
    families.get('pharos_datapath_events_total')!.samples.length;
  t.equal(reasonCount, STAT_REASONS.length, 'every reason in exactly one of the three families');
  t.equal(value('pharos_l2_arp_replies_total'), 11);
  t.equal(value('pharos_l2_na_replies_total'), 1);
  t.equal(value('pharos_conntrack_entries'), 12);
  t.equal(value('pharos_bpf_map_entries', { map: 'ph_frontends' }), 2);
  t.equal(value('pharos_bpf_map_capacity', { map: 'ph_ct' }), 262144);
  t.equal(value('pharos_bpf_map_full_total', { map: 'ph_backends' }), 3);
  t.equal(value('pharos_l2_responder_liveness_age_seconds'), 0.25);
  t.match(text, /# TYPE pharos_l2_responder_liveness_age_seconds gauge\n/);
  t.match(text, /# TYPE pharos_datapath_drops_total counter\n/);
});

t.test('before the data path is loaded: headers, no traffic samples, zero replies, no liveness sample', async (t) => {
  const text = Buffer.concat(await renderDatapathFamilies({
    labels: await renderLabels({ version: 0, frontends: new Map(), backends: new Map() }), maps: [], mapFull: {}, scrapeErrors: 0,
  }, { perBackend: true })).toString();
  const families = parseExposition(text);
  t.same(families.get('pharos_datapath_packets_total')!.samples, []);
  t.same(families.get('pharos_l2_arp_replies_total')!.samples.map((s) => s.value), [0]);
  t.same(families.get('pharos_l2_responder_liveness_age_seconds')!.samples, []);
  t.same(families.get('pharos_conntrack_entries')!.samples.map((s) => s.value), [0]);
});

t.test('perBackend: false leaves out the two per-backend families', async (t) => {
  const text = Buffer.concat(await renderDatapathFamilies({
    labels: await renderLabels(SMALL), counters: SMALL_COUNTERS, maps: [], mapFull: {}, scrapeErrors: 0,
  }, { perBackend: false })).toString();
  const families = parseExposition(text);
  t.notOk(families.has('pharos_datapath_backend_packets_total'));
  t.notOk(families.has('pharos_datapath_backend_bytes_total'));
  t.equal(families.get('pharos_datapath_packets_total')!.samples.length, 2);
});

t.test('the label table is rendered once per version; a version change (or none) renders it again', async (t) => {
  const frontends = new Map([[0, { service: 'a/one', frontend: '198.51.100.1:80/TCP' }]]);
  const table: DatapathLabels & { version: number } = { version: 7, frontends, backends: new Map() };
  let labelCalls = 0;
  const reg = new Registry();
  const counters: DatapathCounters = { reasons: Object.fromEntries(STAT_REASONS.map((r) => [r, 0n])) as DatapathCounters['reasons'], frontends: new Map([[0, { packets: 1n, bytes: 2n }]]), backends: new Map() };
  const metrics = registerDatapathMetrics({
    labels: () => {
      labelCalls++;
      return table;
    },
    counters: () => counters,
    mapFull: () => ({}),
  }, { registry: reg, reuseMs: 0 });
  t.teardown(() => metrics.close());
  const scrape = async () => parseExposition(Buffer.concat(await renderMetrics(reg)).toString()).get('pharos_datapath_packets_total')!.samples;
  t.same((await scrape()).map((s) => s.labels.service), ['a/one']);
  // Changed without a version bump: the cached strings stay (the version is the agent's promise).
  frontends.set(0, { service: 'a/renamed', frontend: '198.51.100.1:80/TCP' });
  t.same((await scrape()).map((s) => s.labels.service), ['a/one'], 'same version: cached label strings');
  table.version++;
  t.same((await scrape()).map((s) => s.labels.service), ['a/renamed'], 'new version: rendered again');
  t.equal(labelCalls, 3, 'labels() asked once per scrape');
  t.throws(() => registerDatapathMetrics({ labels: () => table, mapFull: () => ({}) }, { registry: reg }), /already registered/);
});

t.test('concurrent scrapes share one computation; a later one (past reuseMs) computes again', async (t) => {
  const reg = new Registry();
  let scrapes = 0;
  const metrics = registerDatapathMetrics({
    labels: () => {
      scrapes++;
      return SMALL;
    },
    mapFull: () => ({}),
  }, { registry: reg, reuseMs: 50 });
  t.teardown(() => metrics.close());
  const texts = await Promise.all(Array.from({ length: 10 }, () => metrics.render()));
  t.equal(scrapes, 1, 'ten concurrent callers, one scrape');
  t.ok(texts.every((x) => x === texts[0]), 'all got the same chunks');
  await metrics.render();
  t.equal(scrapes, 1, 'within reuseMs: reused');
  await new Promise((r) => setTimeout(r, 80));
  await metrics.render();
  t.equal(scrapes, 2, 'past reuseMs: a new scrape');
});

t.test('cost at 10,000 services: 30,000 frontends and 80,000 backends', async (t) => {
  const FRONTENDS = 30_000;
  const BACKENDS = 80_000;
  const frontends = new Map<number, { service: string; frontend: string }>();
  for (let i = 0; i < FRONTENDS; i++) {
    const port = i % 3 === 2 ? 30000 + (i % 2000) : 80;
    frontends.set(i, { service: `team-${i % 50}/svc-${Math.floor(i / 3)}`, frontend: `198.18.${(i >> 8) & 255}.${i & 255}:${port}/TCP` });
  }
  const backends = new Map<number, { backend: string }>();
  for (let i = 0; i < BACKENDS; i++) backends.set(i, { backend: `198.19.${(i >> 8) & 255}.${i & 255}:8080` });
  const table = (n: number) => Float64Array.from({ length: 2 * n }, (_, i) => (i * 7919) % 4_000_000_000);
  const counters: CounterTables = { reasons: reasons({}), frontends: table(FRONTENDS), backends: table(BACKENDS) };
  const labelsTable: DatapathLabels = { version: 1, frontends, backends };

  const meter = sliceMeter();
  const pause = meter.pause;
  const cpu = process.cpuUsage();
  let start = performance.now();
  const labels = await renderLabels(labelsTable, pause);
  const labelsMs = performance.now() - start;
  start = performance.now();
  const all = await renderDatapathFamilies({ labels, counters, maps: [], mapFull: {}, scrapeErrors: 0 }, { perBackend: true, pause });
  const renderMs = performance.now() - start;
  start = performance.now();
  const lean = await renderDatapathFamilies({ labels, counters, maps: [], mapFull: {}, scrapeErrors: 0 }, { perBackend: false, pause });
  const leanMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  meter.stop();

  const bytes = (chunks: Buffer[]) => chunks.reduce((n, c) => n + c.length, 0);
  const families = parseExposition(Buffer.concat(all).toString());
  t.equal(families.get('pharos_datapath_packets_total')!.samples.length, FRONTENDS);
  t.equal(families.get('pharos_datapath_backend_bytes_total')!.samples.length, BACKENDS);
  t.equal(families.get('pharos_datapath_backend_bytes_total')!.samples[BACKENDS - 1]!.value, (2 * BACKENDS - 1) * 7919 % 4_000_000_000);
  t.comment(`labels ${labelsMs.toFixed(0)} ms; render ${renderMs.toFixed(0)} ms for ${bytes(all)} bytes (per backend), ` +
    `${leanMs.toFixed(0)} ms for ${bytes(lean)} bytes (perBackend: false); CPU ${((used.user + used.system) / 1000).toFixed(0)} ms in all; ` +
    `${meter.pauses} pauses, longest slice ${meter.longestSliceCpuMs.toFixed(1)} ms CPU, longest event-loop turn ${meter.longestTurnMs.toFixed(1)} ms wall`);
  // Generous bounds for a loaded 2-core box (~50 ms each of CPU when idle).
  t.ok(labelsMs < 5000, `label table in ${labelsMs.toFixed(0)} ms`);
  t.ok(renderMs < 5000, `render in ${renderMs.toFixed(0)} ms`);
  t.ok(meter.longestSliceCpuMs < 100, `cut into short slices (longest ${meter.longestSliceCpuMs.toFixed(1)} ms of CPU)`);
});
