/**
 * Hand-built SVG charts for the bench results: pure functions from data to
 * an SVG string (no DOM, no dependency), so a bench, `npm run bench:charts`
 * and the tests produce byte-identical files. Two kinds, which is all the
 * benches need: grouped bars (modes side by side per setting, gaps per
 * fault) and lines over a numeric x (scale curves). `stackCharts` puts
 * several under one another in one file.
 */

export interface BarSeries {
  name: string;
  /** One value per group, in the order of `groups`; null = not measured. */
  values: (number | null)[];
}

export interface BarChart {
  kind: 'bars';
  title: string;
  yLabel: string;
  groups: string[];
  series: BarSeries[];
  /** A horizontal line (a target), labelled. */
  reference?: { value: number; label: string };
}

export interface LineSeries {
  name: string;
  points: { x: number; y: number }[];
}

export interface LineChart {
  kind: 'lines';
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  reference?: { value: number; label: string };
}

export type Chart = BarChart | LineChart;

export const CHART_WIDTH = 720;
export const CHART_HEIGHT = 320;
const MARGIN = { left: 70, right: 20, top: 40, bottom: 90 };
/** Average width of a 12 px sans-serif character, to tell when group labels would overlap. */
const CHAR_WIDTH = 6.8;
/** Colour-blind-safe (Okabe-Ito), one per series in order. */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Up to 3 significant digits, thousands separated: 2468961 → "2,470,000", 0.0251 → "0.0251". */
export function formatNumber(v: number): string {
  if (v === 0) return '0';
  const abs = Math.abs(v);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : Math.min(6, 2 - Math.floor(Math.log10(abs)));
  const rounded = abs >= 1000 ? Number(v.toPrecision(3)) : Number(v.toFixed(digits));
  return rounded.toLocaleString('en-US', { maximumFractionDigits: digits });
}

/** A "nice" axis: 0 up to a round maximum ≥ max, with 4-6 ticks of 1, 2 or 5 × 10^k. */
export function niceTicks(max: number): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const rough = max / 5;
  const pow = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= rough)!;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const r1 = (v: number): string => (Math.round(v * 10) / 10).toString();

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${r1(x)}" y="${r1(y)}"${attrs ? ` ${attrs}` : ''}>${escapeXml(s)}</text>`;
}

function frame(c: Chart, ticks: number[], plot: { x: number; y: number; w: number; h: number }): string[] {
  const out: string[] = [];
  out.push(text(CHART_WIDTH / 2, 22, c.title, 'text-anchor="middle" font-size="15" font-weight="bold"'));
  const top = ticks[ticks.length - 1]!;
  for (const tv of ticks) {
    const y = plot.y + plot.h - (tv / top) * plot.h;
    out.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${r1(y)}" y2="${r1(y)}" stroke="#ddd"/>`);
    out.push(text(plot.x - 6, y + 4, formatNumber(tv), 'text-anchor="end" font-size="11"'));
  }
  out.push(`<line x1="${plot.x}" x2="${plot.x}" y1="${plot.y}" y2="${plot.y + plot.h}" stroke="#333"/>`);
  out.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${plot.y + plot.h}" y2="${plot.y + plot.h}" stroke="#333"/>`);
  out.push(text(16, plot.y + plot.h / 2, c.yLabel, `text-anchor="middle" font-size="12" transform="rotate(-90 16 ${r1(plot.y + plot.h / 2)})"`));
  if (c.reference) {
    const y = plot.y + plot.h - (c.reference.value / top) * plot.h;
    out.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${r1(y)}" y2="${r1(y)}" stroke="#D55E00" stroke-dasharray="6 4"/>`);
    out.push(text(plot.x + plot.w - 4, y - 5, c.reference.label, 'text-anchor="end" font-size="11" fill="#D55E00"'));
  }
  return out;
}

function legend(names: string[], y: number): string[] {
  const out: string[] = [];
  let x = MARGIN.left;
  names.forEach((n, i) => {
    out.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`);
    out.push(text(x + 16, y, n, 'font-size="12"'));
    x += 28 + n.length * 7;
  });
  return out;
}

function maxOf(values: number[], reference?: { value: number }): number {
  return Math.max(0, ...values.filter((v) => Number.isFinite(v)), reference?.value ?? 0);
}

function barBody(c: BarChart): string[] {
  const plot = { x: MARGIN.left, y: MARGIN.top, w: CHART_WIDTH - MARGIN.left - MARGIN.right, h: CHART_HEIGHT - MARGIN.top - MARGIN.bottom };
  const values = c.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const ticks = niceTicks(maxOf(values, c.reference));
  const top = ticks[ticks.length - 1]!;
  const out = frame(c, ticks, plot);
  const groupW = plot.w / Math.max(1, c.groups.length);
  const barW = Math.min(90, (groupW * 0.8) / Math.max(1, c.series.length));
  const rotate = c.groups.some((g) => g.length * CHAR_WIDTH > groupW - 4);
  c.groups.forEach((g, gi) => {
    const gx = plot.x + gi * groupW + (groupW - barW * c.series.length) / 2;
    c.series.forEach((s, si) => {
      const v = s.values[gi];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const h = (v / top) * plot.h;
      const x = gx + si * barW;
      out.push(`<rect x="${r1(x)}" y="${r1(plot.y + plot.h - h)}" width="${r1(barW - 2)}" height="${r1(h)}" fill="${PALETTE[si % PALETTE.length]}"><title>${escapeXml(`${s.name}, ${g}: ${formatNumber(v)}`)}</title></rect>`);
      if (barW >= 26) out.push(text(x + (barW - 2) / 2, plot.y + plot.h - h - 3, formatNumber(v), 'text-anchor="middle" font-size="10"'));
    });
    const cx = plot.x + gi * groupW + groupW / 2;
    // Labels wider than their group are slanted so that neighbours do not overlap.
    if (rotate) out.push(text(cx, plot.y + plot.h + 14, g, `text-anchor="end" font-size="12" transform="rotate(-30 ${r1(cx)} ${r1(plot.y + plot.h + 14)})"`));
    else out.push(text(cx, plot.y + plot.h + 16, g, 'text-anchor="middle" font-size="12"'));
  });
  out.push(...legend(c.series.map((s) => s.name), CHART_HEIGHT - 18));
  return out;
}

function lineBody(c: LineChart): string[] {
  const plot = { x: MARGIN.left, y: MARGIN.top, w: CHART_WIDTH - MARGIN.left - MARGIN.right, h: CHART_HEIGHT - MARGIN.top - MARGIN.bottom };
  const ys = c.series.flatMap((s) => s.points.map((p) => p.y));
  const xs = c.series.flatMap((s) => s.points.map((p) => p.x));
  const ticks = niceTicks(maxOf(ys, c.reference));
  const top = ticks[ticks.length - 1]!;
  const xTicks = niceTicks(maxOf(xs));
  const xTop = xTicks[xTicks.length - 1]!;
  const out = frame(c, ticks, plot);
  const px = (x: number): number => plot.x + (x / xTop) * plot.w;
  const py = (y: number): number => plot.y + plot.h - (y / top) * plot.h;
  for (const tv of xTicks) out.push(text(px(tv), plot.y + plot.h + 16, formatNumber(tv), 'text-anchor="middle" font-size="11"'));
  out.push(text(plot.x + plot.w / 2, plot.y + plot.h + 34, c.xLabel, 'text-anchor="middle" font-size="12"'));
  c.series.forEach((s, si) => {
    const colour = PALETTE[si % PALETTE.length];
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    if (pts.length > 1) out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.map((p) => `${r1(px(p.x))},${r1(py(p.y))}`).join(' ')}"/>`);
    for (const p of pts) {
      out.push(`<circle cx="${r1(px(p.x))}" cy="${r1(py(p.y))}" r="4" fill="${colour}"><title>${escapeXml(`${s.name}: ${formatNumber(p.x)} → ${formatNumber(p.y)}`)}</title></circle>`);
    }
  });
  out.push(...legend(c.series.map((s) => s.name), CHART_HEIGHT - 12));
  return out;
}

/** One chart as a standalone SVG document. */
export function renderChart(c: Chart): string {
  return stackCharts([c]);
}

/** Several charts under one another in one SVG document. */
export function stackCharts(charts: Chart[], note?: string): string {
  const noteH = note ? 24 : 0;
  const height = charts.length * CHART_HEIGHT + noteH;
  const parts = charts.map((c, i) => {
    const body = c.kind === 'bars' ? barBody(c) : lineBody(c);
    return `<g transform="translate(0 ${i * CHART_HEIGHT})">\n${body.join('\n')}\n</g>`;
  });
  if (note) parts.push(text(MARGIN.left, height - 8, note, 'font-size="11" fill="#555"'));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${CHART_WIDTH}" height="${height}" viewBox="0 0 ${CHART_WIDTH} ${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
${parts.join('\n')}
</svg>
`;
}
