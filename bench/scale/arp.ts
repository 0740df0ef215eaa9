/**
 * ARP probes to one VIP from a client namespace, with Debian's arping
 * (Thomas Habets' 2.x: `-i IFACE -W SECONDS -c COUNT`), one request every
 * `intervalMs`. arping prints one line per request, as it happens (line
 * buffered into a pipe): `42 bytes from MAC (IP): index=N ...` for an
 * answer, `Timeout` for a request left unanswered until the next one is
 * due. Each line is stamped when it arrives here, and windows count the
 * lines that arrived inside them (a line lands at most one interval after
 * its request was sent).
 */
import type { ChildProcess } from 'node:child_process';
import readline from 'node:readline';

export interface ProbeRecord {
  /** performance.now() when the line arrived. */
  at: number;
  answered: boolean;
}

export interface ArpWindow {
  probes: number;
  lost: number;
  /** Longest run of consecutive unanswered probes, as time (count × interval). */
  longestOutageMs: number;
}

/** true: an answer, false: a request left unanswered, undefined: any other line. */
export function classifyArpingLine(line: string): boolean | undefined {
  if (/^\d+ bytes from /.test(line)) return true;
  if (/^Timeout\b/.test(line)) return false;
  return undefined;
}

export function probeWindow(records: readonly ProbeRecord[], from: number, to: number, intervalMs: number): ArpWindow {
  let probes = 0;
  let lost = 0;
  let run = 0;
  let longest = 0;
  for (const r of records) {
    if (r.at < from || r.at > to) continue;
    probes++;
    if (r.answered) {
      run = 0;
    } else {
      lost++;
      longest = Math.max(longest, ++run);
    }
  }
  return { probes, lost, longestOutageMs: longest * intervalMs };
}

export interface ArpProbeOptions {
  iface: string;
  vip: string;
  intervalMs?: number;
}

/** Runs arping until stop(); restarts it (counted) should it exit early. */
export class ArpProbe {
  readonly records: ProbeRecord[] = [];
  readonly intervalMs: number;
  /** Times arping exited on its own and was started again. */
  restarts = 0;
  stderr = '';
  private child?: ChildProcess;
  private stopped = false;

  private constructor(private readonly spawn: (cmd: string[]) => ChildProcess, private readonly opts: ArpProbeOptions) {
    this.intervalMs = opts.intervalMs ?? 100;
  }

  /** `spawn` runs a command in the client namespace with piped stdout (e.g. `(cmd) => lab.spawn('client', cmd)`). */
  static start(spawn: (cmd: string[]) => ChildProcess, opts: ArpProbeOptions): ArpProbe {
    const p = new ArpProbe(spawn, opts);
    p.launch();
    return p;
  }

  private launch(): void {
    // A count far past any run (12 h); stop() ends it.
    const count = Math.ceil((12 * 3600 * 1000) / this.intervalMs);
    const child = this.spawn(['arping', '-i', this.opts.iface, '-W', String(this.intervalMs / 1000), '-c', String(count), this.opts.vip]);
    this.child = child;
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const answered = classifyArpingLine(line);
      if (answered !== undefined) this.records.push({ at: performance.now(), answered });
    });
    child.stderr?.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-4000); });
    child.once('exit', () => {
      if (this.stopped) return;
      this.restarts++;
      if (this.restarts <= 20) setTimeout(() => { if (!this.stopped) this.launch(); }, 100).unref();
    });
  }

  /** Arrival time of the first answer at or after `from`. */
  firstAnswerAfter(from: number): number | undefined {
    return this.records.find((r) => r.at >= from && r.answered)?.at;
  }

  window(from: number, to: number): ArpWindow {
    return probeWindow(this.records, from, to, this.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }
}
