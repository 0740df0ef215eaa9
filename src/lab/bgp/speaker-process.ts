/**
 * The parent side of speaker-child.ts (tests and benches): starts the speaker inside a namespace and
 * talks to it over stdin/stdout. Killed by PID (and by parent-death signal).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { siblingModule } from '../netns.js';
import type { AdvertisedRoute, DesiredBgp, PeerStatus, SpeakerTotals } from '../../bgp/speaker.js';
import type { ModelObject } from '../../model/types.js';

/** speaker-child.ts, from source under tsx or compiled in dist. */
const CHILD = siblingModule(import.meta.url, 'speaker-child');

export interface ChildStatus {
  peers: PeerStatus[];
  advertised: AdvertisedRoute[];
  totals: SpeakerTotals;
}

export class SpeakerProcess {
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Record<string, unknown>) => void>();
  stderr = '';

  constructor(netnsName: string, options: { routerId: string; restarting?: boolean; native?: boolean; listenPort?: number; nodeName?: string }) {
    this.child = spawn('ip', ['netns', 'exec', netnsName, 'setpriv', '--pdeathsig', 'KILL', '--',
      process.execPath, ...CHILD, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        const msg = JSON.parse(line) as Record<string, unknown>;
        const done = this.waiting.get(msg.id as number);
        this.waiting.delete(msg.id as number);
        done?.(msg);
      } catch {
        // not a reply
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-20_000);
    });
    this.child.stdin!.on('error', () => {});
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private request(cmd: Record<string, unknown>, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`speaker child: no reply to ${String(cmd.cmd)} in ${timeoutMs} ms\n${this.stderr.slice(-2000)}`));
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        if (r.ok) resolve(r);
        else reject(new Error(`speaker child: ${String(r.error)}`));
      });
      this.child.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  }

  async apply(desired: DesiredBgp): Promise<void> {
    await this.request({ cmd: 'apply', desired });
  }

  /** Controller mode: objects into the child's store; returns the ms timestamp just before. */
  async storeApply(objects: ModelObject[]): Promise<number> {
    return (await this.request({ cmd: 'store-apply', objects })).t0 as number;
  }

  async storeSync(): Promise<void> {
    await this.request({ cmd: 'store-sync' });
  }

  /** Controller mode: `count` generated LoadBalancer services in one relist; returns t0. */
  async benchServices(count: number): Promise<number> {
    return (await this.request({ cmd: 'bench-services', count }, 60_000)).t0 as number;
  }

  async status(): Promise<ChildStatus> {
    return (await this.request({ cmd: 'status' })) as unknown as ChildStatus;
  }

  async stop(graceful: boolean): Promise<void> {
    await this.request({ cmd: 'stop', graceful });
  }

  /** SIGKILL: the abrupt agent death graceful restart is for. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGKILL');
    await exited;
  }
}
