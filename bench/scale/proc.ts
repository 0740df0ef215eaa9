/**
 * Memory and CPU of an agent process from /proc, sampled on a timer (a
 * few microseconds per read, nothing asked of the agent). Samples of
 * several processes (an agent and its restarted successor) go into one
 * series, each tagged with its PID.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ProcSample {
  /** performance.now() of the read. */
  at: number;
  pid: number;
  rssKb: number;
  hwmKb: number;
  /** utime + stime, seconds. */
  cpuS: number;
}

let clockTicks: number | undefined;

/** USER_HZ, the unit of utime/stime in /proc/PID/stat. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** VmRSS and VmHWM (kB) from /proc/PID/status text. */
export function parseStatus(text: string): { rssKb: number; hwmKb: number } {
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}

/** utime + stime (clock ticks) from /proc/PID/stat text; the command name may hold spaces and parentheses. */
export function parseStatTicks(text: string): number {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After the command: state is field 3, utime 14, stime 15 (1-based, proc(5)).
  return Number(fields[14 - 3]) + Number(fields[15 - 3]);
}

/** x86-64 epoll_wait, epoll_pwait, epoll_pwait2: where an idle libuv loop waits. */
const EPOLL_WAITS = new Set(['232', '281', '441']);

/**
 * Whether the process's main thread (the event loop) is waiting in epoll
 * right now, from /proc/PID/syscall ("running" while it runs JavaScript, the
 * syscall number while it is inside one). A loop blocked in a syscall that
 * sleeps (say, a socket close waiting for an RCU grace period) uses no CPU,
 * so CPU alone does not tell an idle agent from a stalled one. Undefined
 * when unreadable.
 */
export function mainThreadIdle(pid: number): boolean | undefined {
  try {
    return EPOLL_WAITS.has(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]!.trim());
  } catch {
    return undefined;
  }
}

/** One read; undefined once the process is gone. */
export function readProc(pid: number): ProcSample | undefined {
  try {
    const status = parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
    const ticks = parseStatTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return { at: performance.now(), pid, ...status, cpuS: ticks / clockTicksPerSecond() };
  } catch {
    return undefined;
  }
}

export class ProcSampler {
  readonly samples: ProcSample[] = [];
  private timer?: NodeJS.Timeout;
  private pid?: number;
  /** When each PID was first followed (just after its spawn): its CPU before that counts as ~0. */
  private readonly followedAt = new Map<number, number>();

  constructor(private readonly everyMs = 250) {}

  /** Samples `pid` from now on (replacing the previous one). */
  follow(pid: number): void {
    this.pid = pid;
    this.followedAt.set(pid, performance.now());
    this.sampleNow();
    if (!this.timer) {
      this.timer = setInterval(() => this.sampleNow(), this.everyMs);
      this.timer.unref();
    }
  }

  sampleNow(): ProcSample | undefined {
    if (this.pid === undefined) return undefined;
    const s = readProc(this.pid);
    if (s) this.samples.push(s);
    return s;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  between(from: number, to: number): ProcSample[] {
    return this.samples.filter((s) => s.at >= from && s.at <= to);
  }

  /**
   * CPU seconds the followed processes used between two instants: per PID,
   * its last sample in the range minus its first (or minus nothing, for a
   * process started inside the range), summed.
   */
  cpuBetween(from: number, to: number): number {
    const byPid = new Map<number, ProcSample[]>();
    for (const s of this.between(from, to)) byPid.set(s.pid, [...(byPid.get(s.pid) ?? []), s]);
    let total = 0;
    for (const [pid, list] of byPid) {
      const startedInside = (this.followedAt.get(pid) ?? -Infinity) >= from;
      total += list[list.length - 1]!.cpuS - (startedInside ? 0 : list[0]!.cpuS);
    }
    return total;
  }

  /** CPU seconds of every followed process from its start (exec) to its last sample. */
  cpuTotal(): number {
    const last = new Map<number, number>();
    for (const s of this.samples) last.set(s.pid, s.cpuS);
    return [...last.values()].reduce((a, b) => a + b, 0);
  }

  /** Largest VmRSS or VmHWM seen, kB. */
  peakKb(): number {
    return this.samples.reduce((m, s) => Math.max(m, s.rssKb, s.hwmKb), 0);
  }
}
