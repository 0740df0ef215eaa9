/**
 * Event-loop delay: how late the agent's JavaScript gets to run. A stalled
 * loop delays everything the agent does on time (lease renewals, GARP,
 * liveness stamps refreshed from JavaScript), so it is exported as
 * `pharos_event_loop_delay_seconds` (histogram) and
 * `pharos_event_loop_delay_max_seconds` (worst delay of the last ~10 s).
 *
 * Measured by a drift sampler rather than perf_hooks.monitorEventLoopDelay:
 * a timer asks to run every `intervalMs`, and each time it runs, how late it
 * is goes into the Prometheus histogram as one observation. The histogram is
 * cumulative, so rate() over any window is that window's distribution, for
 * any number of scrapers. monitorEventLoopDelay samples the same way (a
 * libuv timer, one value per tick) but keeps an HDR histogram that can only
 * be read as percentiles: folding it into fixed buckets is approximate, and
 * resetting it on read breaks as soon as two scrapers read it. Both count a
 * long stall once (the one late tick), not once per interval it covered.
 */
import client, { type Registry } from 'prom-client';
import { registry as agentRegistry } from './registry.js';

/** 1 ms to 10 s: the liveness stamp's limit is in this range, and so are the stalls worth seeing. */
export const EVENT_LOOP_DELAY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const MAX_WINDOW_SECONDS = 10;

export interface EventLoopMonitor {
  stop(): void;
}

export interface EventLoopMonitorOptions {
  /** Default: the agent's registry. */
  registry?: Registry;
  /** How often the sampler asks to run (default 10 ms, monitorEventLoopDelay's default resolution). */
  intervalMs?: number;
}

/** Worst value per second over the last `seconds` seconds (a ring of per-second maxima). */
export class WindowMax {
  private readonly maxima: Float64Array;
  private readonly stamps: Float64Array;

  constructor(private readonly seconds: number) {
    this.maxima = new Float64Array(seconds);
    this.stamps = new Float64Array(seconds).fill(-1);
  }

  record(value: number, nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    const slot = second % this.seconds;
    if (this.stamps[slot] !== second) {
      this.stamps[slot] = second;
      this.maxima[slot] = value;
    } else if (value > this.maxima[slot]!) {
      this.maxima[slot] = value;
    }
  }

  max(nowMs: number): number {
    const second = Math.floor(nowMs / 1000);
    let max = 0;
    for (let slot = 0; slot < this.seconds; slot++) {
      if (this.stamps[slot]! > second - this.seconds && this.maxima[slot]! > max) max = this.maxima[slot]!;
    }
    return max;
  }
}

/** Starts sampling; the agent calls it once at start and stop() on shutdown (it also removes the two metrics). */
export function startEventLoopMonitor(opts: EventLoopMonitorOptions = {}): EventLoopMonitor {
  const reg = opts.registry ?? agentRegistry;
  const intervalMs = opts.intervalMs ?? 10;
  const window = new WindowMax(MAX_WINDOW_SECONDS);
  const histogram = new client.Histogram({
    name: 'pharos_event_loop_delay_seconds',
    help: `How late a timer asking to run every ${intervalMs} ms ran: one observation per run (a stall is counted once, with its length)`,
    buckets: EVENT_LOOP_DELAY_BUCKETS,
    registers: [reg],
  });
  new client.Gauge({
    name: 'pharos_event_loop_delay_max_seconds',
    help: `Worst event-loop delay seen in the last ${MAX_WINDOW_SECONDS} s`,
    registers: [reg],
    collect() {
      this.set(window.max(performance.now()));
    },
  });

  let due = performance.now() + intervalMs;
  let timer: NodeJS.Timeout;
  const tick = (): void => {
    const now = performance.now();
    const late = Math.max(0, now - due) / 1000;
    histogram.observe(late);
    window.record(late, now);
    due = now + intervalMs;
    timer = setTimeout(tick, intervalMs).unref();
  };
  timer = setTimeout(tick, intervalMs).unref();
  return {
    stop: () => {
      clearTimeout(timer);
      reg.removeSingleMetric('pharos_event_loop_delay_seconds');
      reg.removeSingleMetric('pharos_event_loop_delay_max_seconds');
    },
  };
}
