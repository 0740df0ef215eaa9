/**
 * The lab library: network namespaces wired with veths and bridges,
 * processes run inside them, tcpdump captures, and removal of everything by
 * exact name. `pharos lab`, `pharos demo`, the tests and the benches all
 * build their namespaces with it.
 *
 *   const lab = await withLab(t, 'phd');
 *   await lab.addNamespace('client');
 *   await lab.addNamespace('lb', { forwarding: true });
 *   await lab.addLink({ ns: 'client', ifname: 'eth0', addrs: ['198.18.0.1/24'] },
 *                     { ns: 'lb', ifname: 'c0', addrs: ['198.18.0.2/24'] });
 *   await lab.exec('client', ['ping', '-c1', '-W1', '198.18.0.2']);
 *
 * Every namespace is named `${prefix}-${name}` and removed by that exact name
 * at teardown — after the test (tap teardown), when the process exits, and
 * when it is killed by SIGTERM/SIGINT/SIGHUP — unless `detach()` hands it
 * over to whoever outlives this process (`pharos lab up`, `demo --keep`).
 * `withLab` also removes leftovers of the same prefix from an earlier crashed
 * run. Processes started with `spawn` are tracked by PID and killed (SIGTERM,
 * then SIGKILL); they also get a parent-death SIGKILL unless they are to
 * outlive this process, so a crashed test leaves no orphan behind.
 *
 * Every address the lab assigns must lie in the test ranges
 * (`assertLabAddress`). Methods take the short namespace name; a full name
 * that this lab created is accepted too.
 */
import { execFileSync, spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROJECT_ROOT, clangArgs } from '../datapath/bpf-build.js';
import { readPcap } from './pcap.js';
import { sleep } from './wait.js';

export interface ExecResult { stdout: string; stderr: string; code: number }

/** A running tcpdump; `stop` ends it and returns the frames it saw. */
export interface Capture {
  /** Waits `settleMs` (default 100) for frames in flight, stops tcpdump, returns the frames. */
  stop(settleMs?: number): Promise<Buffer[]>;
}

export interface LinkEnd {
  ns: string;
  ifname: string;
  addrs?: string[];
  mac?: string;
  mtu?: number;
}

/** What `withLab` needs of a tap test. */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface SpawnOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** The child's stdout and stderr: piped to this process (default) or discarded. */
  output?: 'pipe' | 'ignore';
  /** No parent-death signal: the process keeps running when this one exits (see `detach`). */
  outliveParent?: boolean;
}

const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 2_000;
const MAX_IFNAME = 15;

// ---------------------------------------------------------------------------
// Address guard

interface Range { family: 4 | 6; base: bigint; len: number }

function parseV4(s: string): bigint | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let v = 0n;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return null;
    v = (v << 8n) | BigInt(o);
  }
  return v;
}

function parseV6(s: string): bigint | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let text = s;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4tail = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4tail) {
    const v4 = parseV4(v4tail[2]!);
    if (v4 === null) return null;
    text = `${v4tail[1]}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  return v;
}

function range(cidr: string): Range {
  const [addr, len] = cidr.split('/') as [string, string];
  const v4 = parseV4(addr);
  if (v4 !== null) return { family: 4, base: v4, len: Number(len) };
  return { family: 6, base: parseV6(addr)!, len: Number(len) };
}

/** The only ranges lab traffic may use (RFC 2544 benchmarking, RFC 5737 and RFC 3849 documentation). */
export const LAB_RANGES: readonly string[] = ['198.18.0.0/15', '192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '2001:db8::/32'];
const ALLOWED: Range[] = LAB_RANGES.map(range);

/** Throws unless `addr` (an address or a CIDR) lies entirely inside one of LAB_RANGES. */
export function assertLabAddress(addr: string): void {
  const [host, lenText, ...rest] = addr.split('/');
  const v4 = parseV4(host ?? '');
  const v6 = v4 === null ? parseV6(host ?? '') : null;
  const family = v4 !== null ? 4 : 6;
  const value = v4 ?? v6;
  const bits = family === 4 ? 32 : 128;
  const len = lenText === undefined ? bits : Number(lenText);
  if (value === null || rest.length > 0 || !Number.isInteger(len) || len < 0 || len > bits || (lenText !== undefined && !/^\d+$/.test(lenText))) {
    throw new Error(`lab address guard: '${addr}' is not an IP address or CIDR`);
  }
  for (const r of ALLOWED) {
    if (r.family !== family || len < r.len) continue;
    const shift = BigInt(bits - r.len);
    if (value >> shift === r.base >> shift) return;
  }
  throw new Error(`lab address guard: '${addr}' is outside the test ranges ${LAB_RANGES.join(', ')}`);
}

// ---------------------------------------------------------------------------
// Process-wide safety net: every live lab is torn down synchronously when the
// process exits or is killed by a catchable signal.

const liveLabs = new Set<Lab>();
let safetyNetInstalled = false;
// SIGALRM is how tap ends a test file that ran past its timeout.
const FATAL_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGALRM'];

function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.teardownSync();
  });
  for (const sig of FATAL_SIGNALS) {
    // Runs first and then steps aside, so another handler (tap's signal-exit,
    // which only acts when it is the last listener left) still sees the
    // signal and decides; with no other handler, die of the signal as we
    // would have without this one.
    const onSignal = (): void => {
      for (const lab of liveLabs) lab.teardownSync();
      process.removeListener(sig, onSignal);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.prependListener(sig, onSignal);
  }
}

function runSync(cmd: string[]): void {
  try {
    execFileSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // best effort: teardown of something already gone
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Signals a child (SIGTERM unless told) and SIGKILLs it after `graceMs`; resolves once it has exited. */
export async function stopProcess(child: ChildProcess, graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * A lab program (echo server, prober, API emulator child) as it runs inside
 * a namespace: compiled into dist/lab, started with plain node (~50 ms, no
 * tsx), so `npm run build:ts` must have run — as for the agent itself.
 */
export function labProgram(name: string): string {
  return join(PROJECT_ROOT, 'dist', 'lab', `${name}.js`);
}

/**
 * The node arguments that run a module beside `base` (an import.meta.url):
 * its TypeScript source through tsx when the caller runs from source (tests,
 * benches), the compiled file when it runs from dist.
 */
export function siblingModule(base: string, name: string): string[] {
  const fromSource = base.endsWith('.ts');
  const file = fileURLToPath(new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, base));
  return fromSource ? ['--import', 'tsx', file] : [file];
}

/** Runs a host command (no shell), collecting output; bounded by timeoutMs. */
export function run(cmd: string[], opts: { timeoutMs?: number; input?: string; allowFail?: boolean } = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawnChild(cmd[0]!, cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd.join(' ')}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const res: ExecResult = {
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        code: code ?? (signal ? 128 : 1),
      };
      if (timedOut) {
        if (opts.allowFail) resolve({ ...res, code: 124 });
        else reject(new Error(`${cmd.join(' ')}: timed out after ${timeoutMs} ms\n${res.stderr}`));
        return;
      }
      if (res.code !== 0 && !opts.allowFail) {
        reject(new Error(`${cmd.join(' ')}: exit ${res.code}${signal ? ` (${signal})` : ''}\n${res.stderr.trim()}`));
        return;
      }
      resolve(res);
    });
    child.stdin.on('error', () => { /* the command may exit before reading */ });
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * A test's prefix (`withLab`) is 1-8 lowercase letters or digits with no
 * '-', so that `${prefix}-*` never matches another test's namespaces. The
 * long-lived labs (`pharos lab --prefix`, `pharos demo`) take dash-separated
 * words as well (pharos-lab, phw-a).
 */
const TEST_PREFIX = /^[a-z][a-z0-9]{0,7}$/;
const LAB_PREFIX = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

function checkPrefix(prefix: string, rule: RegExp = LAB_PREFIX): void {
  if (rule.test(prefix) && prefix.length <= 24) return;
  throw new Error(rule === TEST_PREFIX
    ? `lab prefix '${prefix}' must be 1-8 lowercase letters/digits starting with a letter (no '-')`
    : `lab prefix '${prefix}' must be lowercase letters and digits, starting with a letter, words joined by '-' (at most 24 characters)`);
}

// ---------------------------------------------------------------------------

export class Lab {
  readonly prefix: string;
  private readonly namespaces = new Set<string>();
  private readonly children = new Set<ChildProcess>();
  private tornDown = false;

  constructor(prefix: string) {
    checkPrefix(prefix);
    this.prefix = prefix;
    liveLabs.add(this);
    installSafetyNet();
  }

  /** Full namespace name. A full name this lab created is returned as is. */
  ns(name: string): string {
    if (this.namespaces.has(name)) return name;
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad namespace name '${name}'`);
    return `${this.prefix}-${name}`;
  }

  nsPath(name: string): string {
    return `/run/netns/${this.ns(name)}`;
  }

  /** Names of existing namespaces that belong to `prefix` (exactly `${prefix}-*`). */
  static async list(prefix: string): Promise<string[]> {
    const res = await run(['ip', 'netns', 'list'], { allowFail: true });
    return res.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((n) => n.startsWith(`${prefix}-`));
  }

  /** Removes leftover namespaces of this exact prefix. Kills no process. */
  static async cleanup(prefix: string): Promise<void> {
    checkPrefix(prefix);
    for (const name of await Lab.list(prefix)) {
      await run(['ip', 'netns', 'del', name], { allowFail: true });
    }
  }

  async addNamespace(name: string, opts: { forwarding?: boolean } = {}): Promise<void> {
    this.assertLive();
    const full = this.ns(name);
    await run(['ip', 'netns', 'add', full]);
    this.namespaces.add(full);
    await run(['ip', '-n', full, 'link', 'set', 'lo', 'up']);
    const sysctls = [
      'net.ipv6.conf.all.accept_dad=0',
      'net.ipv6.conf.default.accept_dad=0',
      `net.ipv4.ip_forward=${opts.forwarding ? 1 : 0}`,
      `net.ipv6.conf.all.forwarding=${opts.forwarding ? 1 : 0}`,
    ];
    await run(['ip', 'netns', 'exec', full, 'sysctl', '-q', '-w', ...sysctls]);
  }

  async addLink(a: LinkEnd, b: LinkEnd): Promise<void> {
    this.assertLive();
    for (const end of [a, b]) this.checkEnd(end);
    const side = (end: LinkEnd): string[] => [
      end.ifname, 'netns', this.ns(end.ns),
      ...(end.mac ? ['address', end.mac] : []),
      ...(end.mtu ? ['mtu', String(end.mtu)] : []),
    ];
    // Created directly in the target namespaces: no name clash in the host namespace.
    await run(['ip', 'link', 'add', 'name', ...side(a), 'type', 'veth', 'peer', 'name', ...side(b)]);
    for (const end of [a, b]) {
      await this.addAddrs(end.ns, end.ifname, end.addrs ?? []);
      await run(['ip', '-n', this.ns(end.ns), 'link', 'set', 'dev', end.ifname, 'up']);
    }
  }

  async addBridge(ns: string, name: string, opts: { addrs?: string[] } = {}): Promise<void> {
    this.assertLive();
    this.checkIfname(name);
    for (const a of opts.addrs ?? []) assertLabAddress(a);
    const full = this.ns(ns);
    // No STP (no forwarding delay) and no snooping, so NS/NA multicast is flooded.
    await run(['ip', '-n', full, 'link', 'add', 'name', name, 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0']);
    await this.addAddrs(ns, name, opts.addrs ?? []);
    await run(['ip', '-n', full, 'link', 'set', 'dev', name, 'up']);
  }

  async attachToBridge(ns: string, ifname: string, bridge: string): Promise<void> {
    await run(['ip', '-n', this.ns(ns), 'link', 'set', 'dev', ifname, 'master', bridge]);
  }

  /** Adds addresses (CIDR) to an interface; IPv6 ones without DAD. */
  async addAddrs(ns: string, ifname: string, addrs: string[]): Promise<void> {
    for (const addr of addrs) {
      assertLabAddress(addr);
      const v6 = addr.includes(':');
      await run(['ip', '-n', this.ns(ns), 'addr', 'add', addr, 'dev', ifname, ...(v6 ? ['nodad'] : [])]);
    }
  }

  /** Runs a command inside the namespace; throws with stderr on non-zero exit unless allowFail. */
  exec(ns: string, cmd: string[], opts: { timeoutMs?: number; input?: string; allowFail?: boolean } = {}): Promise<ExecResult> {
    return run(['ip', 'netns', 'exec', this.ns(ns), ...cmd], opts);
  }

  /** The standard output of a command run inside the namespace (throws as `exec` does). */
  async output(ns: string, cmd: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    return (await this.exec(ns, cmd, opts)).stdout;
  }

  /**
   * Starts a long-running process inside the namespace. `ip netns exec` and
   * `setpriv` both exec, so the child's PID is the command's own; it is
   * killed by PID at teardown, and by the kernel if this process dies first
   * (unless `outliveParent`).
   */
  spawn(ns: string, cmd: string[], opts: SpawnOptions = {}): ChildProcess {
    this.assertLive();
    const guard = opts.outliveParent ? [] : ['setpriv', '--pdeathsig', 'KILL', '--'];
    const output = opts.output ?? 'pipe';
    const child = spawnChild('ip', ['netns', 'exec', this.ns(ns), ...guard, ...cmd], {
      stdio: ['ignore', output, output],
      env: { ...process.env, ...opts.env },
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    child.on('error', () => this.children.delete(child));
    return child;
  }

  async ifIndex(ns: string, ifname: string): Promise<number> {
    return (await this.linkInfo(ns, ifname)).ifindex;
  }

  async mac(ns: string, ifname: string): Promise<string> {
    return (await this.linkInfo(ns, ifname)).address;
  }

  /** Attaches a native XDP_PASS program, so XDP_TX/redirected frames into the peer veth are not dropped. */
  async attachXdpPass(ns: string, ifname: string): Promise<void> {
    const obj = await xdpPassObject();
    await run(['ip', '-n', this.ns(ns), '-force', 'link', 'set', 'dev', ifname, 'xdpdrv', 'obj', obj, 'sec', 'xdp']);
  }

  /**
   * Starts tcpdump on an interface inside the namespace (optional filter
   * words, e.g. ['udp', 'or', 'arp']). Resolves once tcpdump is listening.
   */
  async capture(ns: string, ifname: string, filter: string[] = []): Promise<Capture> {
    const dir = mkdtempSync(join(tmpdir(), `${this.prefix}-cap-`));
    const file = join(dir, 'cap.pcap');
    // -Z root: tcpdump would otherwise drop to a user that cannot write here.
    const child = this.spawn(ns, ['tcpdump', '-i', ifname, '-n', '-U', '--immediate-mode', '-s', '0', '-Z', 'root', '-w', file, ...filter]);
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`tcpdump on ${this.ns(ns)}/${ifname} not listening after 5 s: ${stderr}`)), 5_000);
      const onErr = (d: Buffer): void => {
        stderr += d.toString();
        if (stderr.includes('listening on')) done();
      };
      const onExit = (): void => done(new Error(`tcpdump on ${this.ns(ns)}/${ifname} exited: ${stderr}`));
      function done(err?: Error): void {
        clearTimeout(timer);
        child.stderr?.off('data', onErr);
        child.off('exit', onExit);
        if (err) { rmSync(dir, { recursive: true, force: true }); reject(err); } else resolve();
      }
      child.stderr?.on('data', onErr);
      child.on('exit', onExit);
    });
    child.stderr?.resume();
    return {
      stop: async (settleMs = 100) => {
        if (child.exitCode === null && child.signalCode === null) {
          // tcpdump drops what it has not read yet when interrupted.
          await sleep(settleMs);
          await stopProcess(child, 3_000, 'SIGINT');
        }
        try {
          return existsSync(file) ? readPcap(readFileSync(file)) : [];
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  }

  /**
   * Leaves the namespaces and the started processes running after this
   * process exits (`pharos lab up`, `pharos demo --keep`): nothing is torn
   * down any more, by this lab or by the exit and signal handlers.
   */
  detach(): void {
    for (const c of this.children) c.unref();
    this.children.clear();
    this.namespaces.clear();
    this.tornDown = true;
    liveLabs.delete(this);
  }

  /** Kills tracked processes and deletes this lab's namespaces by exact name. Idempotent. */
  async teardown(): Promise<void> {
    const children = [...this.children];
    for (const c of children) if (c.pid && c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    const deadline = Date.now() + KILL_GRACE_MS;
    while (Date.now() < deadline && children.some((c) => c.pid && isAlive(c.pid) && c.exitCode === null && c.signalCode === null)) {
      await sleep(25);
    }
    for (const c of children) if (c.pid && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    this.children.clear();
    for (const full of [...this.namespaces]) {
      await run(['ip', 'netns', 'del', full], { allowFail: true });
      this.namespaces.delete(full);
    }
    this.tornDown = true;
    liveLabs.delete(this);
  }

  /** Synchronous last resort used by the exit/signal handlers. */
  teardownSync(): void {
    for (const c of this.children) if (c.pid && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    this.children.clear();
    for (const full of this.namespaces) runSync(['ip', 'netns', 'del', full]);
    this.namespaces.clear();
    this.tornDown = true;
    liveLabs.delete(this);
  }

  private async linkInfo(ns: string, ifname: string): Promise<{ ifindex: number; address: string }> {
    const res = await run(['ip', '-n', this.ns(ns), '-j', 'link', 'show', 'dev', ifname]);
    const info = (JSON.parse(res.stdout) as Array<{ ifindex: number; address: string }>)[0];
    if (!info) throw new Error(`no interface ${ifname} in ${this.ns(ns)}`);
    return info;
  }

  private checkEnd(end: LinkEnd): void {
    this.checkIfname(end.ifname);
    if (!this.namespaces.has(this.ns(end.ns))) throw new Error(`namespace ${this.ns(end.ns)} was not added to this lab`);
    for (const a of end.addrs ?? []) assertLabAddress(a);
  }

  private checkIfname(name: string): void {
    if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.length > MAX_IFNAME) {
      throw new Error(`interface name '${name}' must be 1-${MAX_IFNAME} characters of [A-Za-z0-9_.-]`);
    }
  }

  private assertLive(): void {
    if (this.tornDown) throw new Error(`lab ${this.prefix} was already torn down`);
  }
}

/** Creates a Lab, cleans leftovers of the prefix first, registers t.teardown(() => lab.teardown()). */
export async function withLab(t: TeardownHost, prefix: string): Promise<Lab> {
  checkPrefix(prefix, TEST_PREFIX);
  await Lab.cleanup(prefix);
  const lab = new Lab(prefix);
  t.teardown(() => lab.teardown());
  return lab;
}


/**
 * A lab made of more than namespaces (agents, an API emulator, work
 * files): cleans leftovers of `prefix`, makes the Lab, wraps it with `make`,
 * has `t` tear the whole down, then runs `build`.
 */
export async function createLab<T extends { teardown(): Promise<void> }>(t: TeardownHost, prefix: string, make: (lab: Lab) => T, build: (made: T) => Promise<void>): Promise<T> {
  await Lab.cleanup(prefix);
  const made = make(new Lab(prefix));
  t.teardown(() => made.teardown());
  await build(made);
  return made;
}

// ---------------------------------------------------------------------------
// Lab-only BPF objects

/**
 * Compiles a BPF source into build/test/<name>.o with the product's clang
 * flags, when the object is missing or older than its source.
 */
export async function labBpfObject(source: string, name: string): Promise<string> {
  const object = join(PROJECT_ROOT, 'build', 'test', `${name}.o`);
  if (!existsSync(object) || statSync(object).mtimeMs < statSync(source).mtimeMs) {
    mkdirSync(join(PROJECT_ROOT, 'build', 'test'), { recursive: true });
    // Compile to a per-process temp name then rename: parallel test files may race here.
    const tmp = `${object}.${process.pid}.tmp`;
    await run(['clang', ...clangArgs(source, tmp)]);
    await run(['mv', '-f', tmp, object]);
  }
  return object;
}

/** The minimal native XDP_PASS program for veth peers (src/lab/bpf/xdp_pass.bpf.c; the path holds in src/ and dist/). */
export function xdpPassObject(): Promise<string> {
  return labBpfObject(join(PROJECT_ROOT, 'src', 'lab', 'bpf', 'xdp_pass.bpf.c'), 'xdp_pass');
}
