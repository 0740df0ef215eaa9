/**
 * What the walkthrough tests use: `pharos lab up/down` under a test prefix,
 * and the only two ways a walkthrough user touches the lab — kubectl (with
 * the lab's kubeconfig) and `ip netns exec <client>`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { longestGap } from '../../src/lab/outage.js';
import { sleep, waitFor as pollFor } from '../support/wait.js';

export const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

export { sleep };

/** waitFor of test/support/wait.ts, polling every `everyMs`. */
export function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>, everyMs = 100): Promise<Exclude<T, false>> {
  return pollFor(what, ms, probe, { everyMs });
}

export interface TeardownHost {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

export class WalkthroughLab {
  readonly stateDir: string;
  readonly kubeconfig: string;
  private readonly cacheDir = mkdtempSync(join(tmpdir(), 'phw-kubectl-'));
  private readonly watches: ChildProcess[] = [];

  constructor(readonly prefix: string) {
    this.stateDir = `/run/pharos/${prefix}-lab`;
    this.kubeconfig = join(this.stateDir, 'kubeconfig');
  }

  get client(): string {
    return `${this.prefix}-client`;
  }

  lab(args: string[], timeoutMs = 150_000): Promise<Result> {
    return run(process.execPath, [CLI, 'lab', ...args, '--prefix', this.prefix, '--state-dir', this.stateDir], { timeoutMs });
  }

  /** `pharos lab up [args]`; `pharos lab down` in teardown (also on failure). */
  static async up(t: TeardownHost, prefix: string, nodes: number, args: string[] = []): Promise<WalkthroughLab> {
    const lab = new WalkthroughLab(prefix);
    t.teardown(() => lab.down());
    const r = await lab.lab(['up', '--nodes', String(nodes), ...args]);
    if (r.code !== 0) throw new Error(`pharos lab up failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    return lab;
  }

  async down(): Promise<void> {
    for (const w of this.watches) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    await this.lab(['down'], 60_000);
    rmSync(this.cacheDir, { recursive: true, force: true });
  }

  private kubectlArgs(args: string[]): string[] {
    return ['--kubeconfig', this.kubeconfig, '--cache-dir', this.cacheDir, ...args];
  }

  /** kubectl; throws on a non-zero exit unless allowFail. */
  async kubectl(args: string[], opts: { input?: string; allowFail?: boolean } = {}): Promise<string> {
    const r = await run('kubectl', this.kubectlArgs(args), { input: opts.input });
    if (r.code !== 0 && !opts.allowFail) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /** `kubectl ... -w` in the background; lines arrive with their arrival time (performance.now()). */
  watch(args: string[]): { lines: { at: number; text: string }[]; stop: () => void } {
    const child = spawn('kubectl', this.kubectlArgs(args), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.watches.push(child);
    const lines: { at: number; text: string }[] = [];
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const text of parts) lines.push({ at: performance.now(), text });
    });
    return { lines, stop: () => child.kill('SIGTERM') };
  }

  /**
   * The name of the Lease that elects the announcer of `vip` (service
   * `namespace/name`), once it exists: one per address
   * (`pharos-l2announce-198-51-100-96`) or, in older agents, per service
   * (`pharos-l2announce-default-echo`).
   */
  async l2LeaseName(vip: string, namespace: string, name: string): Promise<string | undefined> {
    const names = (await this.kubectl(['-n', 'kube-system', 'get', 'lease', '-o', 'jsonpath={.items[*].metadata.name}'])).trim().split(/\s+/);
    const candidates = [`pharos-l2announce-${vip.replace(/[.:]/g, '-')}`, `pharos-l2announce-${namespace}-${name}`];
    return candidates.find((c) => names.includes(c));
  }

  /** A command in the client namespace. */
  clientExec(cmd: string[], timeoutMs = 20_000): Promise<Result> {
    return run('ip', ['netns', 'exec', this.client, ...cmd], { timeoutMs });
  }

  /** The MAC the client's neighbour table has for `ip`, once resolved. */
  async clientNeighbour(ip: string): Promise<string | undefined> {
    const r = await this.clientExec(['ip', '-j', 'neigh', 'show', ip, 'dev', 'eth0']);
    const e = (JSON.parse(r.stdout || '[]') as { lladdr?: string; state?: string[] }[])[0];
    return e?.state?.some((s) => s === 'FAILED' || s === 'INCOMPLETE') ? undefined : e?.lladdr;
  }

  /** The MAC that answers an ARP request for `ip` from the client (Habets arping). */
  async arpAnswer(ip: string): Promise<string | undefined> {
    const r = await this.clientExec(['arping', '-c', '1', '-w', '1', '-i', 'eth0', ip], 5000);
    return /from ([0-9a-f:]{17})/i.exec(r.stdout)?.[1]?.toLowerCase();
  }

  /**
   * A request every `intervalMs` from the client to `url` (each with a
   * 300 ms timeout); stop() returns the send times (Date.now(), shared by
   * both processes) of the requests that got an answer.
   */
  startProber(url: string, intervalMs = 20): { stop: () => Promise<number[]> } {
    const script = `
      const http = require('node:http');
      const end = Date.now() + 60000;
      const tick = () => {
        if (Date.now() > end) return process.exit(0);
        const at = Date.now();
        const req = http.get(${JSON.stringify(url)}, { timeout: 300, agent: false }, (res) => {
          let body = '';
          res.on('data', (d) => { body += d; });
          res.on('end', () => { if (res.statusCode === 200) process.stdout.write(at + ' ' + body.split(' ')[0] + '\\n'); });
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => {});
        setTimeout(tick, ${intervalMs});
      };
      tick();
      process.on('SIGTERM', () => process.exit(0));`;
    const child = spawn('ip', ['netns', 'exec', this.client, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.watches.push(child);
    const times: number[] = [];
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const l of parts) times.push(Number(l.split(' ')[0]));
    });
    return {
      stop: async () => {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(2000)]);
        return times;
      },
    };
  }
}

export { longestGap };
