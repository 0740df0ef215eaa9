/**
 * Network namespaces for `pharos demo` and `pharos lab`: create, wire,
 * run processes inside, and remove everything by exact name. The demo's
 * processes are tracked by PID and only those are ever signalled.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface VethEnd {
  ns: string;
  ifname: string;
  addrs?: string[];
}

export class NetnsSet {
  private readonly created: string[] = [];
  private readonly children: ChildProcess[] = [];

  constructor(readonly prefix: string) {}

  name(short: string): string {
    return `${this.prefix}-${short}`;
  }

  /** Namespaces of this prefix left behind by an earlier run. */
  static async leftovers(prefix: string): Promise<string[]> {
    const { stdout } = await run('ip', ['netns', 'list']);
    return stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`${prefix}-`));
  }

  async ip(args: string[]): Promise<string> {
    const { stdout } = await run('ip', args);
    return stdout;
  }

  async exec(short: string, cmd: string[], timeoutMs = 20_000): Promise<string> {
    try {
      const { stdout } = await run('ip', ['netns', 'exec', this.name(short), ...cmd], { timeout: timeoutMs, maxBuffer: 16 << 20 });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`in ${this.name(short)}: ${cmd.join(' ')}: ${(e.stderr || e.message).trim()}`);
    }
  }

  async addNamespace(short: string, opts: { forwarding?: boolean } = {}): Promise<void> {
    const ns = this.name(short);
    await run('ip', ['netns', 'add', ns]);
    this.created.push(ns);
    await this.exec(short, ['ip', 'link', 'set', 'lo', 'up']);
    const sysctls = ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'];
    if (opts.forwarding) sysctls.push('net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
    await this.exec(short, ['sysctl', '-q', '-w', ...sysctls]);
  }

  async addVeth(a: VethEnd, b: VethEnd): Promise<void> {
    await run('ip', ['link', 'add', a.ifname, 'netns', this.name(a.ns), 'type', 'veth', 'peer', 'name', b.ifname, 'netns', this.name(b.ns)]);
    for (const end of [a, b]) {
      for (const addr of end.addrs ?? []) {
        await this.exec(end.ns, ['ip', 'addr', 'add', addr, 'dev', end.ifname, ...(addr.includes(':') ? ['nodad'] : [])]);
      }
      await this.exec(end.ns, ['ip', 'link', 'set', end.ifname, 'up']);
    }
  }

  async mac(short: string, ifname: string): Promise<string> {
    const out = JSON.parse(await this.exec(short, ['ip', '-j', 'link', 'show', ifname])) as { address: string }[];
    return out[0]!.address;
  }

  /** Starts a long-running process inside a namespace; it is killed (by PID) in teardown. */
  spawn(short: string, cmd: string[], opts: { env?: NodeJS.ProcessEnv; stdio?: 'ignore' | 'pipe' } = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name(short), ...cmd], { env: opts.env ?? process.env, stdio: ['ignore', opts.stdio ?? 'ignore', opts.stdio ?? 'ignore'] });
    this.children.push(child);
    return child;
  }

  async stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Lets this process exit while the started processes keep running (`--keep`). */
  detachAll(): void {
    for (const c of this.children) c.unref();
    this.children.length = 0;
    this.created.length = 0;
  }

  /** Stops every process this set started and deletes its namespaces by exact name. */
  async teardown(): Promise<void> {
    await Promise.all(this.children.map((c) => this.stopChild(c)));
    this.children.length = 0;
    for (const ns of this.created.reverse()) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    this.created.length = 0;
  }

  /** Synchronous last-resort cleanup for process exit paths. */
  teardownSync(): void {
    for (const c of this.children) if (c.exitCode === null && c.pid) try { process.kill(c.pid, 'SIGKILL'); } catch { /* already gone */ }
    for (const ns of this.created) try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* best effort */ }
  }
}
