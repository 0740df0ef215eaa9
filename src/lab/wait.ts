/** Waiting in labs, tests and benches: one sleep and one bounded poll-until. */

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface WaitOptions {
  /** Poll interval (default 200 ms). */
  everyMs?: number;
  /** An error after which waiting cannot succeed (e.g. the process probed has exited): thrown at once. */
  fatal?: (err: Error) => boolean;
}

/**
 * Polls `probe` until it returns a value other than undefined or false, or
 * fails after `ms` naming `what` and the last error the probe threw (errors
 * count as "not yet" unless `fatal`).
 */
export async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined | false>, opts: WaitOptions = {}): Promise<Exclude<T, false>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as Exclude<T, false>;
    } catch (err) {
      if (opts.fatal?.(err as Error)) throw err;
      last = err;
    }
    await sleep(opts.everyMs ?? 200);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/**
 * Polls a counter every 20 ms until it reaches `want` (bounded by `ms`);
 * returns its last value, so the caller asserts what it saw.
 */
export async function countReaches(read: () => number, want: number, ms = 3000): Promise<number> {
  const deadline = Date.now() + ms;
  let value = read();
  while (value < want && Date.now() < deadline) {
    await sleep(20);
    value = read();
  }
  return value;
}
