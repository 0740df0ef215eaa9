/** Measuring an outage from a prober's answered requests (the L2 failover tests, the walkthroughs, bench/failover). */

/**
 * Longest time inside [from, to] without an answered request — between
 * consecutive answers, or from an edge to the nearest one — minus the
 * prober's send interval (ms).
 */
export function longestGap(times: number[], from: number, to: number, intervalMs = 10): number {
  const inside = times.filter((x) => x >= from && x <= to).sort((a, b) => a - b);
  if (inside.length === 0) return to - from;
  let gap = Math.max(inside[0]! - from, to - inside[inside.length - 1]!);
  for (let i = 1; i < inside.length; i++) gap = Math.max(gap, inside[i]! - inside[i - 1]!);
  return Math.max(0, gap - intervalMs);
}
