/**
 * The pure parts of `npm run bench:scale`: the manifests it writes, the
 * statistics that keep misses honest, the event-loop p99 from /metrics
 * text, the ARP probe accounting and the /proc parsing.
 */
import t from 'tap';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import {
  baseManifests, BASE_PORT, ENDPOINT_RANGES, endpointAddress, fileOf, MAX_ENDPOINTS, MIN_ENDPOINTS, PROBE_VIP, ScaleCluster, scaleServices, serviceFiles,
} from '../../bench/scale/manifests.js';
import { median, percentile } from '../../bench/scale/stats.js';
import { histogramBuckets, parseMetrics, phaseDelay, PROCESS_START, quantileBetween } from '../../bench/scale/prometheus.js';
import { classifyArpingLine, probeWindow } from '../../bench/scale/arp.js';
import { parseStatTicks, parseStatus } from '../../bench/scale/proc.js';
import { assertLabAddress } from '../support/lab.js';

t.test('services: deterministic, 3-8 distinct endpoints in the lab ranges, one port each', async (t) => {
  const a = scaleServices(0, 1000, 15);
  t.same(scaleServices(0, 1000, 15), a, 'same seed, same cluster');
  t.not(JSON.stringify(scaleServices(0, 1000, 16)), JSON.stringify(a), 'another seed, another cluster');
  t.same(scaleServices(990, 10, 15), a.slice(990), 'a later slice is the same services (a burst does not shift the others)');
  const counts = new Set(a.map((s) => s.endpoints.length));
  t.same([...counts].sort(), [3, 4, 5, 6, 7, 8], 'every count from 3 to 8 occurs');
  const all = a.flatMap((s) => s.endpoints);
  t.equal(new Set(all).size, all.length, 'no endpoint shared between services');
  for (const addr of [all[0]!, all[all.length - 1]!, endpointAddress(12_287, 7)]) assertLabAddress(addr);
  t.same(a.map((s) => s.port), a.map((_, i) => BASE_PORT + i), 'port = BASE_PORT + index');
  t.throws(() => endpointAddress(12_288, 0), /past the endpoint ranges/);
  t.equal(endpointAddress(2048, 0), '198.18.128.0', 'the second range follows the first (16,384 addresses = 2,048 services)');
  t.ok(ENDPOINT_RANGES.every((r) => !r.startsWith('198.19.0.')), 'endpoints never overlap the VIP pool');
});

t.test('shared endpoints: drawn from the pool, distinct within a service', async (t) => {
  const s = scaleServices(0, 500, 1, { kind: 'shared', size: 100 });
  const all = new Set(s.flatMap((x) => x.endpoints));
  t.ok(all.size <= 100, `${all.size} distinct addresses`);
  for (const x of s) t.equal(new Set(x.endpoints).size, x.endpoints.length);
});

t.test('files: ten services per file, valid Service + EndpointSlice documents; base files and probe', async (t) => {
  const services = scaleServices(0, 25, 3);
  const files = serviceFiles(services);
  t.same(files.map((f) => f.name), ['svc-0000.yaml', 'svc-0001.yaml', 'svc-0002.yaml']);
  const docs = parseAllDocuments(files[2]!.text).map((d) => d.toJS());
  t.equal(docs.length, 10, 'five services, two documents each');
  t.same(docs.map((d) => d.kind), Array(5).fill(['Service', 'EndpointSlice']).flat());
  t.equal(docs[0].spec.ports[0].port, BASE_PORT + 20);
  t.same(docs[1].endpoints.map((e: { addresses: string[] }) => e.addresses[0]), services[20]!.endpoints);
  const base = baseManifests();
  const pools = parseAllDocuments(base.find((f) => f.name === '00-pools.yaml')!.text).map((d) => d.toJS());
  t.same(pools.map((p) => p.spec.serviceSelector.matchLabels.bench), ['bulk', 'probe'], 'each pool for its own services');
  t.equal(pools[1].spec.blocks[0].start, PROBE_VIP);
  const probe = parseAllDocuments(base.find((f) => f.name === '01-probe.yaml')!.text).map((d) => d.toJS());
  t.equal(probe[0].metadata.labels.bench, 'probe');
  t.equal(parseYaml(base.find((f) => f.name === '00-l2.yaml')!.text).spec.loadBalancerIPs, true);
});

t.test('edits: one endpoint more or less, within 3..8, the whole file rewritten', async (t) => {
  const services = scaleServices(0, 40, 7);
  const cluster = new ScaleCluster(7);
  cluster.add(services);
  const candidates = services.map((s) => s.index);
  for (let i = 0; i < 200; i++) {
    const before = cluster.services.get(cluster.nextEdit(candidates).service.index);
    t.ok(before!.endpoints.length >= MIN_ENDPOINTS && before!.endpoints.length <= MAX_ENDPOINTS);
  }
  const e = cluster.nextEdit([12]);
  t.equal(e.file.name, fileOf(12));
  const docs = parseAllDocuments(e.file.text).map((d) => d.toJS());
  t.equal(docs.length, 20, 'every service of the file');
  const slice = docs.find((d) => d.kind === 'EndpointSlice' && d.metadata.name === 'svc-00012-1');
  t.equal(slice.endpoints.length, e.service.endpoints.length);
  t.same(services[12]!.endpoints, scaleServices(12, 1, 7)[0]!.endpoints, 'the input services are not mutated by edits');
});

t.test('percentile and median: a miss (null) ranks above every value', async (t) => {
  t.equal(percentile([5, 1, 3], 0.5), 3);
  t.equal(percentile(Array.from({ length: 50 }, (_, i) => i + 1), 0.99), 50, 'nearest rank: p99 of 50 is the largest');
  t.equal(percentile([...Array(49).fill(1), null], 0.99), null, 'one miss in 50 makes p99 unknown');
  t.equal(median([1, 2, null, null]), null, 'the upper middle is a miss');
  t.equal(median([1, 2, 3, null]), 2.5, 'a miss above the middle does not matter');
  t.equal(median([1, 2, null]), 2);
  t.equal(median([4, 1, 2, 3]), 2.5);
  t.equal(median([]), null);
});

const histogram = (counts: [string, number][]): string =>
  [`# TYPE pharos_event_loop_delay_seconds histogram`, ...counts.map(([le, n]) => `pharos_event_loop_delay_seconds_bucket{le="${le}"} ${n}`),
    `pharos_event_loop_delay_seconds_count ${counts[counts.length - 1]![1]}`].join('\n');

t.test('event-loop p99 from histogram buckets: the bucket of the 99th percentile of what was added between scrapes', async (t) => {
  const before = histogram([['0.01', 1000], ['0.05', 1000], ['0.1', 1000], ['+Inf', 1000]]);
  const after = histogram([['0.01', 1990], ['0.05', 1998], ['0.1', 2000], ['+Inf', 2000]]);
  const q = quantileBetween(histogramBuckets(parseMetrics(before), 'pharos_event_loop_delay_seconds'), histogramBuckets(parseMetrics(after), 'pharos_event_loop_delay_seconds')!, 0.99);
  t.same(q, { seconds: 0.01, aboveLargestBucket: false, count: 1000 }, '990 of 1000 new ones ≤ 10 ms');
  const d = phaseDelay(before, [after]);
  t.same(d, { p99Ms: 10, source: 'pharos_event_loop_delay_seconds', maxMs: 100 }, 'the worst delay: the highest bucket that gained (0.05-0.1 s)');
  const slow = histogram([['0.01', 1100], ['0.05', 1100], ['0.1', 1100], ['+Inf', 2000]]);
  const s = phaseDelay(before, [slow]);
  t.equal(s.p99Ms, 100, 'in +Inf: the largest finite edge, as a lower bound');
  t.match(s.note, /lower bound/);
  t.equal(phaseDelay(after, [before]).p99Ms, null, 'counters that went back (a restart) give no figure');
  t.same(phaseDelay(PROCESS_START, [after]).p99Ms, 10, 'the process started in the phase: everything it counted');
  t.equal(phaseDelay(undefined, [after]).p99Ms, null, 'no answer at the start of the phase: nothing to count from');
  t.equal(phaseDelay(PROCESS_START, []).p99Ms, null, 'no scrape, no figure');
});

t.test('event-loop fallback: the largest prom-client lag p99 reading of the phase', async (t) => {
  const gauge = (p99: number, max: number): string => `pharos_nodejs_eventloop_lag_p99_seconds ${p99}\npharos_nodejs_eventloop_lag_max_seconds ${max}\n`;
  const d = phaseDelay(gauge(9, 9), [gauge(0.02, 0.5), gauge(0.3, 1.2)]);
  t.same(d, { p99Ms: 300, source: 'pharos_nodejs_eventloop_lag_p99_seconds', maxMs: 1200 }, 'the baseline reading (the phase before) is not counted');
  t.equal(phaseDelay(PROCESS_START, ['up 1\n']).p99Ms, null);
});

t.test('metrics text: labels with escapes and spaces, special values', async (t) => {
  const s = parseMetrics('# HELP x y\na{b="c d",e="f\\"g"} 1.5\nh +Inf\nbad line\n');
  t.same(s, [{ name: 'a', labels: { b: 'c d', e: 'f\\"g' }, value: 1.5 }, { name: 'h', labels: {}, value: Infinity }]);
});

t.test('ARP probes: answers, timeouts, windows and the longest outage', async (t) => {
  t.equal(classifyArpingLine('42 bytes from a2:83:a2:2c:4d:86 (198.18.0.200): index=0 time=13.856 usec'), true);
  t.equal(classifyArpingLine('Timeout'), false);
  t.equal(classifyArpingLine('ARPING 198.18.0.200'), undefined);
  t.equal(classifyArpingLine('--- 198.18.0.200 statistics ---'), undefined);
  const rec = [true, false, false, true, false, false, false, true].map((answered, i) => ({ at: i * 100, answered }));
  t.same(probeWindow(rec, 0, 700, 100), { probes: 8, lost: 5, longestOutageMs: 300 });
  t.same(probeWindow(rec, 350, 650, 100), { probes: 3, lost: 3, longestOutageMs: 300 }, 'only the lines inside the window');
  t.same(probeWindow([], 0, 1, 100), { probes: 0, lost: 0, longestOutageMs: 0 });
});

t.test('/proc parsing', async (t) => {
  t.same(parseStatus('Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n'), { rssKb: 102400, hwmKb: 204800 });
  const stat = '1234 (node (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 11 0 500 1000000 25000';
  t.equal(parseStatTicks(stat), 325, 'utime 250 + stime 75, past a command name with spaces and parentheses');
});
