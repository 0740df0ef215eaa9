/** Small statistics the benches report. */
import type { ReasonCounters } from '../../src/datapath/stats.js';

/** The median (mean of the middle two for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The data path's reason counters that moved between two reads, by how much (a run's counters in the results). */
export function movedCounters(after: ReasonCounters, before: ReasonCounters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(after) as Array<keyof ReasonCounters>) {
    const d = Number(after[k] - before[k]);
    if (d !== 0) out[k] = d;
  }
  return out;
}
