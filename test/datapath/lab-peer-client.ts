/**
 * The test side of lab-peer.mjs, run in a lab namespace: many HTTP requests
 * at once, and a set of long-lived connections that report where they are.
 * Shared by the data-path lab tests.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Lab } from '../support/lab.js';
import { sleep } from '../support/wait.js';

const PEER = fileURLToPath(new URL('./lab-peer.mjs', import.meta.url));

/** `n` GETs of `url` from namespace `ns`, `parallel` at a time: the bodies, and the errors of those that failed. */
export async function httpMany(lab: Lab, ns: string, url: string, n: number, parallel = 8): Promise<{ bodies: string[]; failures: string[] }> {
  const res = await lab.exec(ns, [process.execPath, PEER, 'http-many', url, String(n), String(parallel)], { timeoutMs: 60_000 });
  return JSON.parse(res.stdout) as { bodies: string[]; failures: string[] };
}

export function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

export interface HoldStatus { backend: string; open: boolean; acked: number; errors: string[] }

/** `n` open TCP connections exchanging data; `status()` says, per connection, which backend answers and whether it broke. */
export class Holder {
  private lines: string[] = [];
  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => this.lines.push(...d.toString().split('\n').filter(Boolean)));
  }

  static async open(lab: Lab, ns: string, n: number, host: string, port: number): Promise<Holder> {
    const h = new Holder(lab.spawn(ns, [process.execPath, PEER, 'hold', host, String(port), String(n)]));
    await h.waitFor((l) => l === 'ready', 10_000, 'connections ready');
    return h;
  }

  private async waitFor(pred: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const i = this.lines.findIndex(pred);
      if (i >= 0) return this.lines.splice(i, 1)[0]!;
      await sleep(20);
    }
    throw new Error(`holder: no ${what} within ${timeoutMs} ms`);
  }

  async status(): Promise<HoldStatus[]> {
    this.child.kill('SIGUSR1');
    return JSON.parse(await this.waitFor((l) => l.startsWith('['), 3000, 'status')) as HoldStatus[];
  }

  close(): void {
    this.child.kill('SIGTERM');
  }
}
