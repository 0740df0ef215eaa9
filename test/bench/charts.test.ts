/**
 * The bench charts (bench/lib/svg-chart.ts, bench/lib/bench-charts.ts):
 * pure data → SVG. The SVG parses as XML-shaped text with one bar per
 * measured value at a height proportional to it, labels escaped, axes that
 * cover the data; every committed bench/results/*.json has a chart and the
 * committed .svg is what `npm run bench:charts` draws from it now.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeXml, formatNumber, niceTicks, renderChart, stackCharts, CHART_HEIGHT, type BarChart } from '../../bench/lib/svg-chart.js';
import { BENCH_CHARTS, RESULTS_DIR, benchSvg, datapathCharts, failoverCharts } from '../../bench/lib/bench-charts.js';

const rects = (svg: string): { y: number; h: number; title: string }[] =>
  [...svg.matchAll(/<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="[^"]+"><title>([^<]*)<\/title>/g)]
    .map((m) => ({ y: Number(m[1]), h: Number(m[2]), title: m[3]! }));

t.test('niceTicks: from 0 to a round top at or above the maximum, 1/2/5 steps', async (t) => {
  t.same(niceTicks(3.6), [0, 1, 2, 3, 4]);
  t.same(niceTicks(972), [0, 200, 400, 600, 800, 1000]);
  t.same(niceTicks(0.025), [0, 0.005, 0.01, 0.015, 0.02, 0.025]);
  t.same(niceTicks(0), [0, 1], 'no data: a unit axis');
  for (const max of [0.7, 13, 99, 101, 64395, 2e6]) {
    const ticks = niceTicks(max);
    t.ok(ticks[ticks.length - 1]! >= max && ticks.length >= 3 && ticks.length <= 7, `${max}: ${ticks.join(',')}`);
  }
});

t.test('formatNumber and escapeXml', async (t) => {
  t.equal(formatNumber(2468961), '2,470,000');
  t.equal(formatNumber(2.468961), '2.47');
  t.equal(formatNumber(0.025), '0.025');
  t.equal(formatNumber(972), '972');
  t.equal(escapeXml('a<b & "c">'), 'a&lt;b &amp; &quot;c&quot;&gt;');
});

t.test('bars: one rectangle per measured value, heights proportional, missing values left out', async (t) => {
  const chart: BarChart = {
    kind: 'bars', title: 'T <&>', yLabel: 'Mpps', groups: ['1 flow', 'new'],
    series: [{ name: 'pharos', values: [2, 1] }, { name: 'iptables', values: [0.5, null] }],
    reference: { value: 3, label: 'target' },
  };
  const svg = renderChart(chart);
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.match(svg, /T &lt;&amp;&gt;/, 'title escaped');
  t.notMatch(svg, /NaN|undefined/);
  const bars = rects(svg);
  t.same(bars.map((b) => b.title), ['pharos, 1 flow: 2', 'iptables, 1 flow: 0.5', 'pharos, new: 1']);
  t.equal(Math.round((bars[0]!.h / bars[1]!.h) * 100) / 100, 4, 'four times as tall for 2 as for 0.5');
  t.equal(Math.round((bars[0]!.h / bars[2]!.h) * 100) / 100, 2);
  // All bars stand on the same baseline.
  t.equal(new Set(bars.map((b) => Math.round(b.y + b.h))).size, 1);
  t.match(svg, /stroke-dasharray="6 4"/, 'the reference line');
  t.equal((svg.match(/<text /g) ?? []).length > 10, true);
});

t.test('lines and stacking: one polyline per series, charts under one another', async (t) => {
  const svg = stackCharts([
    { kind: 'lines', title: 'a', xLabel: 'services', yLabel: 's', series: [{ name: 'x', points: [{ x: 10000, y: 16 }, { x: 1000, y: 5 }] }, { name: 'y', points: [{ x: 1000, y: 1 }] }] },
    { kind: 'bars', title: 'b', yLabel: 'ms', groups: ['g'], series: [{ name: 's', values: [1] }] },
  ], 'note');
  t.equal((svg.match(/<polyline /g) ?? []).length, 1, 'a series of one point has no line');
  t.equal((svg.match(/<circle /g) ?? []).length, 3);
  t.match(svg, new RegExp(`height="${2 * CHART_HEIGHT + 24}"`));
  t.match(svg, /<g transform="translate\(0 320\)">/);
  // Points sorted by x: the line goes left to right.
  const pts = /<polyline [^>]*points="([^"]+)"/.exec(svg)![1]!.split(' ').map((p) => Number(p.split(',')[0]));
  t.ok(pts[0]! < pts[1]!);
});

t.test('datapath: modes side by side per flow setting, in Mpps', async (t) => {
  const [c] = datapathCharts({ results: [
    { mode: 'pharos', flows: '1', pps_median: 2_000_000 }, { mode: 'iptables', flows: '1', pps_median: 500_000 },
    { mode: 'pharos', flows: 'new', pps_median: 300_000 },
  ] });
  t.same(c!.kind === 'bars' && { groups: c.groups, series: c.series }, {
    groups: ['1 flow', 'every packet a new flow'],
    series: [{ name: 'pharos', values: [2, 0.3] }, { name: 'iptables', values: [0.5, null] }],
  });
});

t.test('failover: medians per fault, odd and even run counts', async (t) => {
  const run = (gapMs: number): { gapMs: number; takeoverMs: number; clientMovedMs: number } => ({ gapMs, takeoverMs: gapMs * 10, clientMovedMs: gapMs * 11 });
  const [c] = failoverCharts({ runs: { sigkill: [run(4), run(9), run(2)], link_down: [run(100), run(80)], medians: {} } });
  t.same(c!.kind === 'bars' && c.series[0], { name: 'client-seen gap', values: [4, 90] });
  t.same(c!.kind === 'bars' && c.groups, ['sigkill', 'link down']);
});

t.test('every committed result has its chart, up to date (npm run bench:charts)', async (t) => {
  const names = readdirSync(RESULTS_DIR).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, ''));
  t.same(names.filter((n) => !(n in BENCH_CHARTS)), [], 'results without a chart');
  for (const n of names) {
    const svgPath = join(RESULTS_DIR, `${n}.svg`);
    t.ok(existsSync(svgPath), `${n}.svg exists`);
    const svg = benchSvg(n, JSON.parse(readFileSync(join(RESULTS_DIR, `${n}.json`), 'utf8')));
    t.notMatch(svg, /NaN|undefined|Infinity/, `${n}: every value drawn`);
    if (existsSync(svgPath)) t.equal(readFileSync(svgPath, 'utf8'), svg, `${n}.svg is what its JSON draws now`);
  }
});
