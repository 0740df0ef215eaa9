/**
 * Reading the agent's /metrics text for the bench: the event-loop delay of
 * a phase from two scrapes. Pure.
 *
 * Preferred source: the histogram `pharos_event_loop_delay_seconds`
 * (cumulative `_bucket{le}` counters since the process started): the p99 of a
 * phase is the upper edge of the bucket that holds the 99th percentile of
 * the counts added between the scrape before and the scrape after it.
 * Fallback (today's agent): prom-client's default
 * `pharos_nodejs_eventloop_lag_p99_seconds`, a gauge that holds the p99 since
 * the previous scrape (prom-client resets its histogram on every collect), so
 * the phase value is the largest reading among the scrapes that ended inside
 * or at the end of the phase.
 */
export const DELAY_HISTOGRAM = 'pharos_event_loop_delay_seconds';
export const LAG_P99_GAUGE = 'pharos_nodejs_eventloop_lag_p99_seconds';
export const LAG_MAX_GAUGE = 'pharos_nodejs_eventloop_lag_max_seconds';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Samples of the Prometheus text format (comments and malformed lines skipped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    if (!Number.isNaN(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** Cumulative buckets of a histogram (summed over any other labels), by upper edge, ascending. */
export function histogramBuckets(samples: Sample[], name: string): Map<number, number> | undefined {
  const buckets = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || s.labels.le === undefined) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  if (buckets.size === 0) return undefined;
  return new Map([...buckets].sort((a, b) => a[0] - b[0]));
}

export interface Quantile {
  /** Upper bucket edge in seconds; for the +Inf bucket, the largest finite edge (a lower bound). */
  seconds: number;
  /** True when the quantile lies in the +Inf bucket. */
  aboveLargestBucket: boolean;
  /** Observations between the two scrapes. */
  count: number;
}

/**
 * The q-quantile of what a cumulative histogram observed between `before`
 * (undefined: the process started after it) and `after`. Undefined when
 * nothing was observed or the counters went backwards (a restart between
 * the scrapes).
 */
export function quantileBetween(before: Map<number, number> | undefined, after: Map<number, number>, q: number): Quantile | undefined {
  const edges = [...after.keys()];
  const diff = edges.map((le) => (after.get(le) ?? 0) - (before?.get(le) ?? 0));
  if (diff.some((d) => d < 0)) return undefined;
  const total = diff[diff.length - 1]!;
  if (total <= 0) return undefined;
  const rank = q * total;
  const i = diff.findIndex((c) => c >= rank);
  const finite = edges.filter((e) => Number.isFinite(e));
  const le = edges[i]!;
  return Number.isFinite(le)
    ? { seconds: le, aboveLargestBucket: false, count: total }
    : { seconds: finite[finite.length - 1] ?? 0, aboveLargestBucket: true, count: total };
}

/** Upper edge (seconds) of the highest bucket that gained observations between two scrapes: the worst delay, rounded up (+Inf: the largest finite edge). */
export function largestBetween(before: Map<number, number> | undefined, after: Map<number, number>): number | undefined {
  const edges = [...after.keys()];
  let prev = 0;
  let top: number | undefined;
  for (const le of edges) {
    const cumulative = (after.get(le) ?? 0) - (before?.get(le) ?? 0);
    if (cumulative > prev) top = le;
    prev = cumulative;
  }
  if (top === undefined || Number.isFinite(top)) return top;
  const finite = edges.filter((e) => Number.isFinite(e));
  return finite[finite.length - 1];
}

export function gauge(samples: Sample[], name: string): number | undefined {
  return samples.find((s) => s.name === name)?.value;
}

export type DelaySource = typeof DELAY_HISTOGRAM | typeof LAG_P99_GAUGE;

export interface PhaseDelay {
  p99Ms: number | null;
  source: DelaySource | null;
  /** Largest single delay in the phase: the histogram's highest bucket edge with observations, or prom-client's lag max gauge. */
  maxMs?: number;
  note?: string;
}

/** A phase's baseline when the agent process started inside the phase: its counters started at zero. */
export const PROCESS_START = Symbol('process start');

/**
 * Event-loop delay p99 of one phase, from the scrapes taken at its
 * boundaries and inside it (texts in time order). `baseline` is the scrape
 * just before the phase, PROCESS_START when the process started inside it,
 * undefined when that scrape got no answer.
 */
export function phaseDelay(baseline: string | typeof PROCESS_START | undefined, scrapes: string[]): PhaseDelay {
  if (scrapes.length === 0) return { p99Ms: null, source: null, note: 'no /metrics scrape answered in this phase' };
  const last = parseMetrics(scrapes[scrapes.length - 1]!);
  const after = histogramBuckets(last, DELAY_HISTOGRAM);
  if (after) {
    if (baseline === undefined) return { p99Ms: null, source: DELAY_HISTOGRAM, note: 'no /metrics answer at the start of the phase to count from' };
    const before = baseline === PROCESS_START ? undefined : histogramBuckets(parseMetrics(baseline), DELAY_HISTOGRAM);
    const q = quantileBetween(before, after, 0.99);
    if (!q) return { p99Ms: null, source: DELAY_HISTOGRAM, note: 'no observations between the scrapes (or the counters went back: a restart)' };
    const top = largestBetween(before, after);
    return {
      p99Ms: q.seconds * 1000,
      source: DELAY_HISTOGRAM,
      ...(top !== undefined ? { maxMs: top * 1000 } : {}),
      ...(q.aboveLargestBucket ? { note: `p99 above the largest bucket (${q.seconds} s): lower bound` } : {}),
    };
  }
  const readings = scrapes.map(parseMetrics);
  const p99s = readings.map((s) => gauge(s, LAG_P99_GAUGE)).filter((v): v is number => v !== undefined);
  if (p99s.length === 0) return { p99Ms: null, source: null, note: `neither ${DELAY_HISTOGRAM} nor ${LAG_P99_GAUGE} in /metrics` };
  const maxes = readings.map((s) => gauge(s, LAG_MAX_GAUGE)).filter((v): v is number => v !== undefined);
  return {
    p99Ms: Math.max(...p99s) * 1000,
    source: LAG_P99_GAUGE,
    ...(maxes.length ? { maxMs: Math.max(...maxes) * 1000 } : {}),
  };
}
