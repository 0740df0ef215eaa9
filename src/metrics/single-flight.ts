/**
 * At most one computation of an expensive result in progress, however many
 * callers ask: a caller with the same key as the one in progress shares it,
 * a result younger than `reuseMs` is handed out again, and a caller with
 * another key waits for the one in progress to end — at most `queueLimit`
 * callers wait (sharing or queued), the others are told `BUSY` at once.
 * So the work per unit of time is bounded by the computation's own cost, not
 * by how many scrapers or CLI calls arrive together.
 */

export const BUSY: unique symbol = Symbol('busy');

export interface SingleFlightOptions {
  /** A finished result is reused for this long (0: only callers that arrive while it runs share it)... */
  reuseMs: number;
  /**
   * ...or for as long as it took to compute, when that is longer: back-to-back
   * requests then keep the computation busy at most half the time.
   */
  reuseForComputeTime?: boolean;
  /** Callers that may wait, sharing or queued; past it they get BUSY. */
  queueLimit: number;
  /** Start the computation on a later turn of the event loop, so requests that arrive together share it (default true). */
  deferStart?: boolean;
}

export class SingleFlight<T> {
  private running?: { key: string; result: Promise<T> };
  private last?: { key: string; at: number; reuseMs: number; value: T };
  private waiting = 0;

  constructor(private readonly opts: SingleFlightOptions) {}

  /** Callers waiting right now (sharing or queued); for tests and metrics. */
  get waiters(): number {
    return this.waiting;
  }

  async run(key: string, compute: () => Promise<T> | T): Promise<T | typeof BUSY> {
    for (;;) {
      const last = this.last;
      if (last && last.key === key && performance.now() - last.at < last.reuseMs) return last.value;
      const running = this.running;
      if (running) {
        if (this.waiting >= this.opts.queueLimit) return BUSY;
        this.waiting++;
        try {
          if (running.key === key) return await running.result;
          await running.result.catch(() => undefined);
        } finally {
          this.waiting--;
        }
        continue;
      }
      return this.start(key, compute);
    }
  }

  /** Forget the last result (the next caller computes afresh). */
  invalidate(): void {
    this.last = undefined;
  }

  private async start(key: string, compute: () => Promise<T> | T): Promise<T> {
    const result = (async () => {
      if (this.opts.deferStart !== false) await new Promise<void>((resolve) => setImmediate(resolve));
      return compute();
    })();
    const entry = { key, result };
    this.running = entry;
    const started = performance.now();
    try {
      const value = await result;
      const at = performance.now();
      const reuseMs = this.opts.reuseForComputeTime ? Math.max(this.opts.reuseMs, at - started) : this.opts.reuseMs;
      const last = { key, at, reuseMs, value };
      this.last = last;
      // Let go of it when it may no longer be handed out: a /metrics document is ~10 MB at 10,000 services.
      setTimeout(() => {
        if (this.last === last) this.last = undefined;
      }, reuseMs).unref();
      return value;
    } finally {
      if (this.running === entry) this.running = undefined;
    }
  }
}
