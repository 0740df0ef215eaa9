/**
 * Order statistics for the scale bench, with misses kept honest: a
 * measurement that timed out is `null` and ranks above every real value,
 * so a median or p99 that lands on a miss is itself `null` (unknown, and
 * larger than the timeout), never a made-up number. Pure.
 */

/** Nearest-rank percentile (q in 0..1) of values where null = "missed, larger than any value". */
export function percentile(values: readonly (number | null)[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => (a === null ? (b === null ? 0 : 1) : b === null ? -1 : a - b));
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1]!;
}

/** Median (the mean of the two middle values for an even count; null if either is a miss). */
export function median(values: readonly (number | null)[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => (a === null ? (b === null ? 0 : 1) : b === null ? -1 : a - b));
  const m = sorted.length >> 1;
  if (sorted.length % 2) return sorted[m]!;
  const [a, b] = [sorted[m - 1]!, sorted[m]!];
  return a === null || b === null ? null : (a + b) / 2;
}

export function round(x: number | null | undefined, digits = 1): number | null {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export const MIB = 1024 * 1024;
