/**
 * The soak's pure parts (no I/O): the fault schedule, the per-fault window
 * statistics the load generator keeps, and the report (JSON in the issue's
 * format, a Markdown table, the targets).
 *
 * A window opens when a fault is injected and closes when the lab has
 * recovered and settled. A request belongs to the window in which it
 * started. `max_gap_ms` is the longest time one client (one load worker:
 * an HTTP keep-alive connection loop or a UDP request/response stream) went
 * without a successful answer inside the window — window start to first
 * answer, between answers, last answer to window end — so one stalled
 * connection shows even while the others are served. It includes the
 * worker's pacing interval.
 */

export const FAULTS = [
  'agent-sigkill', 'agent-restart', 'api-outage', 'watch-drop', 'bgp-peer-restart',
  'backend-add', 'backend-drain', 'backend-remove', 'pool-edit', 'bad-manifest', 'conntrack-full',
] as const;
export type FaultKind = (typeof FAULTS)[number];

export interface SoakProfile {
  name: 'ci' | 'full';
  /** How long the API emulator stays unreachable. */
  apiOutageMs: number;
  /** Quiet time after a fault has recovered, still inside its window. */
  settleMs: number;
  /** Quiet time between windows (not counted). */
  gapBetweenMs: number;
  /** Load generator bounds. */
  maxRequests: number;
  timeCapMs: number;
  httpWorkers: number;
  udpWorkers: number;
  /** Pause between one worker's requests. */
  paceMs: number;
  /** Requests on one keep-alive connection before it is closed and a new one opened. */
  requestsPerConnection: number;
  /** Agent conntrack size (--conntrack-size) and UDP flows opened to overfill it. */
  conntrackSize: number;
  fillerFlows: number;
}

export const PROFILES: Record<'ci' | 'full', SoakProfile> = {
  ci: {
    name: 'ci', apiOutageMs: 10_000, settleMs: 2_000, gapBetweenMs: 500, maxRequests: 400_000, timeCapMs: 150_000,
    httpWorkers: 16, udpWorkers: 4, paceMs: 40, requestsPerConnection: 100, conntrackSize: 2048, fillerFlows: 6000,
  },
  full: {
    name: 'full', apiOutageMs: 60_000, settleMs: 5_000, gapBetweenMs: 2_000, maxRequests: 2_000_000, timeCapMs: 900_000,
    httpWorkers: 24, udpWorkers: 6, paceMs: 30, requestsPerConnection: 150, conntrackSize: 2048, fillerFlows: 8000,
  },
};

/** The order faults are injected in: backend add → drain → remove act on the same backend. */
export function schedule(only?: readonly FaultKind[]): FaultKind[] {
  const order: FaultKind[] = [...FAULTS];
  if (!only) return order;
  for (const f of only) if (!FAULTS.includes(f)) throw new Error(`unknown fault ${f}`);
  return order.filter((f) => only.includes(f));
}

export type Outcome = 'ok' | 'fail' | 'reset';

export interface WindowStats {
  name: string;
  requests: number;
  /** Requests without a correct answer (resets included). */
  failed: number;
  /** Connections reset (ECONNRESET/EPIPE) under a request. */
  resets: number;
  max_gap_ms: number;
  /** A few failure descriptions, for the log. */
  samples: string[];
  /** Answers by who served them (the load generator's label, e.g. `be1 198.18.10.1`: backend and LB node). */
  served: Record<string, number>;
}

/** Accumulates request outcomes into the current window; one per load generator. */
export class WindowTracker {
  private current: { name: string; start: number; stats: WindowStats; last: Map<string, number> } | undefined;
  readonly closed: WindowStats[] = [];

  constructor(private readonly workers: readonly string[]) {}

  open(name: string, now: number): void {
    if (this.current) this.close(now);
    this.current = {
      name, start: now,
      stats: { name, requests: 0, failed: 0, resets: 0, max_gap_ms: 0, samples: [], served: {} },
      last: new Map(this.workers.map((w) => [w, now])),
    };
  }

  /** A request of `worker` started at `startedAt` finished at `now` with `outcome`. */
  record(worker: string, startedAt: number, now: number, outcome: Outcome, detail = '', servedBy?: string): void {
    const w = this.current;
    if (!w || startedAt < w.start) {
      // Started before this window (or outside any): its answer still ends a stall of this window.
      if (w && outcome === 'ok') this.noteSuccess(worker, now);
      return;
    }
    w.stats.requests++;
    if (outcome === 'ok') {
      if (servedBy) w.stats.served[servedBy] = (w.stats.served[servedBy] ?? 0) + 1;
      this.noteSuccess(worker, now);
      return;
    }
    w.stats.failed++;
    if (outcome === 'reset') w.stats.resets++;
    if (w.stats.samples.length < 5) w.stats.samples.push(`${worker} +${Math.round(startedAt - w.start)}ms ${outcome} ${detail}`.trim());
  }

  private noteSuccess(worker: string, now: number): void {
    const w = this.current!;
    const last = w.last.get(worker) ?? w.start;
    w.stats.max_gap_ms = Math.max(w.stats.max_gap_ms, now - last);
    w.last.set(worker, now);
  }

  close(now: number): WindowStats | undefined {
    const w = this.current;
    if (!w) return undefined;
    for (const last of w.last.values()) w.stats.max_gap_ms = Math.max(w.stats.max_gap_ms, now - last);
    w.stats.max_gap_ms = Math.round(w.stats.max_gap_ms);
    this.current = undefined;
    this.closed.push(w.stats);
    return w.stats;
  }
}

export interface FaultResult {
  fault: FaultKind;
  requests: number;
  failed: number;
  resets: number;
  max_gap_ms: number;
  address_changed: boolean;
}

export interface SoakReport {
  faults: FaultResult[];
  rss_start_mb: number;
  rss_end_mb: number;
}

/** The format, fields in its order. */
export function soakReport(windows: WindowStats[], addressChanged: Record<string, boolean>, rssStartBytes: number, rssEndBytes: number): SoakReport {
  const mb = (b: number): number => Math.round((b / (1024 * 1024)) * 10) / 10;
  return {
    faults: windows.filter((w) => (FAULTS as readonly string[]).includes(w.name)).map((w) => ({
      fault: w.name as FaultKind,
      requests: w.requests,
      failed: w.failed,
      resets: w.resets,
      max_gap_ms: w.max_gap_ms,
      address_changed: addressChanged[w.name] ?? false,
    })),
    rss_start_mb: mb(rssStartBytes),
    rss_end_mb: mb(rssEndBytes),
  };
}

export interface TargetCheck {
  target: string;
  met: boolean;
  detail: string;
}

/** Samples at each end of the run whose median is the start / end RSS. */
export const RSS_EDGE = 10;

/** Start and end RSS from periodic samples: the median of the first and of the last RSS_EDGE samples (one sample of a GC'd heap is noise). */
export function rssEnds(samples: number[]): { start: number; end: number } {
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    if (s.length === 0) return 0;
    const m = s.length >> 1;
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  const n = Math.min(RSS_EDGE, Math.ceil(samples.length / 2));
  return { start: median(samples.slice(0, n)), end: median(samples.slice(samples.length - n)) };
}

/** RSS may move by GC noise: "does not grow" means not more than this above the start. */
export const RSS_TOLERANCE = { ratio: 0.1, mb: 8 };

/** The targets, checked against a report. A fault missing from the report is not judged. */
export function checkTargets(report: SoakReport): TargetCheck[] {
  const by = new Map(report.faults.map((f) => [f.fault, f]));
  const out: TargetCheck[] = [];
  const zero = (fault: FaultKind, fields: ('failed' | 'resets')[], target: string): void => {
    const f = by.get(fault);
    if (!f) return;
    const bad = fields.filter((k) => f[k] !== 0);
    out.push({ target, met: bad.length === 0, detail: fields.map((k) => `${k} ${f[k]}`).join(', ') });
  };
  zero('agent-sigkill', ['failed', 'resets'], 'agent SIGKILL + restart (pinned maps): zero failed, zero resets');
  zero('agent-restart', ['failed', 'resets'], 'agent clean restart (pinned maps): zero failed, zero resets');
  zero('api-outage', ['failed'], 'API outage: zero failed');
  zero('backend-drain', ['failed'], 'backend drain: zero failed on existing connections');
  zero('bad-manifest', ['failed', 'resets'], 'malformed manifest: zero effect');
  const changed = report.faults.filter((f) => f.address_changed).map((f) => f.fault);
  out.push({ target: 'no assigned address changes', met: changed.length === 0, detail: changed.length ? `changed during ${changed.join(', ')}` : 'none changed' });
  const limit = report.rss_start_mb + Math.max(RSS_TOLERANCE.mb, report.rss_start_mb * RSS_TOLERANCE.ratio);
  out.push({
    target: `agent RSS does not grow (end ≤ start + max(${RSS_TOLERANCE.mb} MB, ${RSS_TOLERANCE.ratio * 100}%))`,
    met: report.rss_end_mb <= limit,
    detail: `${report.rss_start_mb} → ${report.rss_end_mb} MB`,
  });
  return out;
}

export function markdownTable(report: SoakReport, checks: TargetCheck[], notes: string[] = []): string {
  const rows = report.faults.map((f) => `| ${f.fault} | ${f.requests} | ${f.failed} | ${f.resets} | ${f.max_gap_ms} | ${f.address_changed ? 'yes' : 'no'} |`);
  return [
    '| fault | requests | failed | resets | max gap (ms) | address changed |',
    '|---|---:|---:|---:|---:|---|',
    ...rows,
    '',
    `Agent RSS: ${report.rss_start_mb} MB at the start, ${report.rss_end_mb} MB at the end.`,
    '',
    '| target | met | measured |',
    '|---|---|---|',
    ...checks.map((c) => `| ${c.target} | ${c.met ? 'yes' : '**no**'} | ${c.detail} |`),
    ...(notes.length ? ['', ...notes.map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
}
