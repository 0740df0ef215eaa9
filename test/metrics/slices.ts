/**
 * Measures how work is cut into event-loop turns: a pause function to hand
 * to the code under test that records the CPU time spent between pauses
 * (CPU, not wall time: on a loaded machine a wall-clock gap is mostly other
 * processes), and a probe of the longest wall-clock turn for the record.
 */
export interface SliceMeter {
  pause: () => Promise<void>;
  /** Pauses taken so far. */
  readonly pauses: number;
  /** Largest CPU time (ms) between two pauses (or from start to the first). */
  readonly longestSliceCpuMs: number;
  /** Longest wall-clock gap between 1 ms timer ticks since start (ms). */
  readonly longestTurnMs: number;
  stop(): void;
}

export function sliceMeter(): SliceMeter {
  let pauses = 0;
  let longestSliceCpuMs = 0;
  let longestTurnMs = 0;
  let sliceStart = process.cpuUsage();
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    longestTurnMs = Math.max(longestTurnMs, now - last);
    last = now;
  }, 1);
  const cpuMsSince = (from: NodeJS.CpuUsage) => {
    const d = process.cpuUsage(from);
    return (d.user + d.system) / 1000;
  };
  return {
    pause: async () => {
      pauses++;
      longestSliceCpuMs = Math.max(longestSliceCpuMs, cpuMsSince(sliceStart));
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStart = process.cpuUsage();
    },
    get pauses() {
      return pauses;
    },
    get longestSliceCpuMs() {
      return longestSliceCpuMs;
    },
    get longestTurnMs() {
      return longestTurnMs;
    },
    stop: () => clearInterval(probe),
  };
}
