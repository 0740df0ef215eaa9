/**
 * The scale lab: one LB node running `pharos agent` in manifests mode and
 * a client that ARPs one VIP, in two network namespaces.
 *
 *   phsb-client                         phsb-lb
 *   eth0 198.18.0.1/24 ── veth ── eth0 198.18.0.2/24   pharos agent (XDP on eth0), --http 127.0.0.1:9643
 *   native XDP_PASS                    routes to the endpoint ranges via 198.18.0.1
 *   arping → 198.18.0.200 (probe VIP)
 *
 * The agent's XDP responder answers ARP with XDP_TX, which a veth delivers
 * only when its peer runs a native XDP program (LAB-FACTS): the client's
 * eth0 gets an XDP_PASS one. Endpoints (bench/scale/manifests.ts) are routed
 * through the client, so the agent primes one neighbour, not one per
 * backend; nothing sends them traffic.
 *
 * Reusable for a CI test at a few hundred services (tests may import bench/):
 *
 *   const lab = await ScaleLab.create({ prefix: 'phsci' });
 *   t.teardown(() => lab.teardown());
 *   const services = scaleServices(0, 300, 1);
 *   lab.writeFiles([...baseManifests(), ...serviceFiles(services)]);
 *   const probe = lab.startArpProbe();               // arping → PROBE_VIP every 100 ms
 *   const agent = await lab.startAgent();
 *   const r = await lab.waitProgrammed(expectedOf([PROBE_SERVICE, ...services]), 120_000);
 *   t.ok(r.doneAt !== undefined, `${r.last?.programmed} of 301 in the data path`);
 *   const from = probe.firstAnswerAfter(agent.startedAt) ?? agent.startedAt, to = r.doneAt ?? performance.now();
 *   t.equal(probe.window(from, to).lost, 0, 'no ARP probe to the probe VIP lost while the agent programmed 300 services');
 *   t.equal(lab.livenessBetween(from, to).staleMs, 0, 'the responder liveness stamp never went stale');
 *
 * (bench/scale/run.ts has the rest of the bench's protocol: edits, settling, scrapes, burst, restart.)
 *
 * Everything is removed by exact name: the agent by PID (SIGTERM, SIGKILL
 * after a grace), the namespaces, the pin directory, the work directory.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../src/lab/netns.js';
import { sleep } from '../../src/lab/wait.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';
import { ArpProbe } from './arp.js';
import { DatapathWatch, type ExpectedService, type ProgrammedCount } from './datapath-watch.js';
import { ENDPOINT_RANGES, LB_INTERFACE, LINK, PROBE_VIP, type ManifestFile, type ScaleService } from './manifests.js';
import { ProcSampler } from './proc.js';

export const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
export const AGENT_HTTP = '127.0.0.1:9643';
/** Outside /sys: `ip netns exec` remounts /sys (LAB-FACTS). */
const BPFFS = '/run/pharos/bpffs';

export interface ScaleLabOptions {
  /** Namespace prefix (1-8 lowercase letters/digits; default phsb — not phs, which test/datapath/services-lab and service-fixtures use); leftovers of it are removed first. */
  prefix?: string;
  /** Extra agent flags (e.g. capacity flags once they exist). */
  agentArgs?: string[];
  /** Flags for the agent's node (e.g. --cpu-prof), before the CLI path. */
  nodeArgs?: string[];
  /** Keep the work directory (manifests, agent logs, state) at teardown. */
  keepWork?: boolean;
}

export interface AgentRun {
  pid: number;
  /** performance.now() just before the spawn. */
  startedAt: number;
  proc: ChildProcess;
  exited: Promise<void>;
}

export interface HttpTiming {
  /** Status code; 0 when there was no answer. */
  status: number;
  /** Bytes on the wire (compressed when gzip was asked for and given). */
  bytes: number;
  /** Bytes of the document itself, when the body was kept. */
  documentBytes?: number;
  /** curl's time_total. */
  seconds: number;
  timedOut: boolean;
  /** Why there was no answer (curl's exit code and message), when there was none. */
  error?: string;
  body?: string;
}

export interface ProgrammedWait {
  /** performance.now() of the poll that saw every expected service; undefined on timeout. */
  doneAt?: number;
  /** The last count seen (undefined if the maps never appeared). */
  last?: ProgrammedCount;
  polls: number;
  /** Largest age of the responder's liveness stamp seen at a poll, ms. */
  livenessMaxAgeMs?: number;
}

export class AgentExitedError extends Error {}

/** The agent's default --responder-max-age: a stamp older than this silences the XDP responder. */
export const RESPONDER_MAX_AGE_MS = 3000;
const LIVENESS_EVERY_MS = 100;

/** Labs not yet torn down: their pins and work directories go on process exit too (the Lab's own net kills the agent, removes the namespaces). */
const liveLabs = new Set<ScaleLab>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const s of liveLabs) s.removeFilesSync();
  });
}

/** Port → expected backend count, the shape waitProgrammed takes. */
export function expectedOf(services: Iterable<ScaleService>): Map<number, ExpectedService> {
  return new Map([...services].map((s) => [s.port, { port: s.port, backends: s.endpoints.length }]));
}

export class ScaleLab {
  readonly work = mkdtempSync(join(tmpdir(), 'phsb-scale-'));
  readonly manifestsDir = join(this.work, 'manifests');
  readonly stateDir = join(this.work, 'state');
  readonly pinDir: string;
  readonly watch: DatapathWatch;
  readonly sampler = new ProcSampler(250);
  agent?: AgentRun;
  /** Age of the responder's liveness stamp (ph_liveness), sampled every 100 ms from the first agent start on. */
  readonly liveness: { at: number; ageMs: number }[] = [];
  private livenessTimer?: NodeJS.Timeout;
  private agentCount = 0;
  private spawnErrors = '';
  private readonly probes: ArpProbe[] = [];

  private constructor(readonly lab: Lab, private readonly opts: ScaleLabOptions) {
    this.pinDir = `${BPFFS}/${lab.prefix}-scale-lb`;
    this.watch = new DatapathWatch(this.pinDir);
    mkdirSync(this.manifestsDir);
  }

  static async create(opts: ScaleLabOptions = {}): Promise<ScaleLab> {
    const prefix = opts.prefix ?? 'phsb';
    if (!existsSync(CLI)) throw new Error(`${CLI} missing: run npm run build first`);
    if (!existsSync(BPFFS)) throw new Error(`${BPFFS} is not there: run deploy/setup.sh (it mounts a bpffs there)`);
    await Lab.cleanup(prefix);
    const s = new ScaleLab(new Lab(prefix), opts);
    liveLabs.add(s);
    installExitHook();
    try {
      await s.build();
    } catch (err) {
      await s.teardown();
      throw err;
    }
    return s;
  }

  private async build(): Promise<void> {
    const { lab } = this;
    removePins(this.pinDir);
    await lab.addNamespace('client');
    await lab.addNamespace('lb', { forwarding: true });
    await lab.addLink({ ns: 'client', ifname: 'eth0', addrs: [`${LINK.client}/${LINK.prefix}`] }, { ns: 'lb', ifname: LB_INTERFACE, addrs: [`${LINK.lb}/${LINK.prefix}`] });
    // The agent's ARP answers are XDP_TX on the LB's eth0: delivered only to a peer with native XDP.
    await lab.attachXdpPass('client', 'eth0');
    for (const range of ENDPOINT_RANGES) await lab.exec('lb', ['ip', 'route', 'add', range, 'via', LINK.client]);
  }

  /** Writes each file atomically (a dot-named temp file, which the agent skips, then rename). */
  writeFiles(files: readonly ManifestFile[]): void {
    for (const f of files) {
      const tmp = join(this.manifestsDir, `.${f.name}.tmp`);
      writeFileSync(tmp, f.text);
      renameSync(tmp, join(this.manifestsDir, f.name));
    }
  }

  /**
   * Starts the agent (manifests mode, its own pin and state directories)
   * without NODE_OPTIONS (tap's loader doubles a Node child's RSS,
   * LAB-FACTS), its output appended to agent-N.log in the work directory.
   */
  async startAgent(): Promise<AgentRun> {
    if (this.agent && this.agent.proc.exitCode === null && this.agent.proc.signalCode === null) throw new Error('the agent is already running');
    const log = join(this.work, `agent-${++this.agentCount}.log`);
    const args = [process.execPath, ...(this.opts.nodeArgs ?? []), CLI, 'agent', '--manifests', this.manifestsDir, '--node-name', `${this.lab.prefix}-lb`, '--interfaces', LB_INTERFACE,
      '--state-dir', this.stateDir, '--pin-dir', this.pinDir, '--http', AGENT_HTTP, '--log-format', 'text', ...(this.opts.agentArgs ?? [])];
    const startedAt = performance.now();
    // ip netns exec, setpriv, sh and env all exec: the PID is the agent's own.
    const proc = this.lab.spawn('lb', ['sh', '-c', 'exec "$0" "$@" >>"$PHS_AGENT_LOG" 2>&1', 'env', '-u', 'NODE_OPTIONS', ...args], { env: { PHS_AGENT_LOG: log } });
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    // Before sh's redirect takes over, errors of ip netns exec / setpriv / sh come here.
    this.spawnErrors = '';
    proc.stderr?.on('data', (d: Buffer) => { this.spawnErrors = (this.spawnErrors + d.toString()).slice(-4000); });
    const pid = proc.pid!;
    // The exec chain ends in node itself (argv[0] the node binary, argv[1] the CLI), not ip or sh naming it.
    const isAgent = (): boolean => readCmdline(pid).startsWith([process.execPath, ...(this.opts.nodeArgs ?? []), CLI, 'agent'].join(' '));
    for (let i = 0; i < 400 && !isAgent() && proc.exitCode === null; i++) await sleep(5);
    if (!isAgent()) throw new AgentExitedError(`agent did not start (pid ${pid}, ${proc.exitCode === null ? 'still not node after 2 s' : `exited ${proc.exitCode}`}): ${this.spawnErrors.trim() || this.agentLogTail()}`);
    this.sampler.follow(pid);
    this.livenessTimer ??= setInterval(() => {
      const ageMs = this.watch.livenessAgeMs();
      if (ageMs !== undefined) this.liveness.push({ at: performance.now(), ageMs });
    }, LIVENESS_EVERY_MS).unref();
    this.agent = { pid, startedAt, proc, exited };
    return this.agent;
  }

  /**
   * Between two instants: the largest liveness-stamp age seen, and for how
   * long (sampled) it was past `maxAgeMs` — the responder answered nothing then.
   */
  livenessBetween(from: number, to: number, maxAgeMs = RESPONDER_MAX_AGE_MS): { maxAgeMs: number | null; staleMs: number } {
    const inside = this.liveness.filter((x) => x.at >= from && x.at <= to);
    return {
      maxAgeMs: inside.length ? Math.max(...inside.map((x) => x.ageMs)) : null,
      staleMs: inside.filter((x) => x.ageMs > maxAgeMs).length * LIVENESS_EVERY_MS,
    };
  }

  agentAlive(): boolean {
    const p = this.agent?.proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  /** SIGTERM to the agent's PID; SIGKILL after `graceMs`. Resolves with how long it took and whether it had to be killed. */
  async stopAgent(graceMs = 30_000): Promise<{ ms: number; killed: boolean }> {
    const a = this.agent;
    const t0 = performance.now();
    if (!a || !this.agentAlive()) return { ms: 0, killed: false };
    this.sampler.sampleNow();
    a.proc.kill('SIGTERM');
    let killed = false;
    const timer = setTimeout(() => { killed = true; a.proc.kill('SIGKILL'); }, graceMs);
    // Keep sampling while it shuts down: its CPU counts until it is gone.
    const tick = setInterval(() => this.sampler.sampleNow(), 50);
    await a.exited;
    clearTimeout(timer);
    clearInterval(tick);
    return { ms: performance.now() - t0, killed };
  }

  agentLogTail(lines = 20): string {
    try {
      const text = readFileSync(join(this.work, `agent-${this.agentCount}.log`), 'utf8');
      return text.trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /**
   * GET `path` from the agent with curl inside the LB namespace, bounded by
   * `timeoutMs`; `body` keeps the response text; `gzip` asks for it as
   * Prometheus does (Accept-Encoding: gzip; curl decompresses).
   */
  async http(path: string, timeoutMs: number, opts: { body?: boolean; gzip?: boolean } = {}): Promise<HttpTiming> {
    const out = join(this.work, `http-${process.pid}-${Math.random().toString(36).slice(2)}.out`);
    const r = await this.lab.exec('lb', ['curl', '-sS', '--noproxy', '*', ...(opts.gzip ? ['--compressed'] : []), '-o', opts.body ? out : '/dev/null',
      '-w', '%{http_code} %{size_download} %{time_total}', '--max-time', String(timeoutMs / 1000), `http://${AGENT_HTTP}${path}`],
    { allowFail: true, timeoutMs: timeoutMs + 10_000 });
    const [code, bytes, seconds] = r.stdout.trim().split(' ').map(Number) as [number, number, number];
    const timing: HttpTiming = { status: code || 0, bytes: bytes || 0, seconds: seconds || 0, timedOut: r.code === 28 || r.code === 124 };
    if (r.code !== 0) timing.error = `curl exit ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}`;
    if (opts.body && existsSync(out)) {
      if (timing.status === 200) {
        timing.body = readFileSync(out, 'utf8');
        timing.documentBytes = Buffer.byteLength(timing.body);
      }
      rmSync(out, { force: true });
    }
    return timing;
  }

  /** Polls /readyz until 200; the performance.now() of the answer, or undefined after `timeoutMs`. */
  async waitReady(timeoutMs: number): Promise<number | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (let i = 0; i < 100_000 && performance.now() < deadline; i++) {
      this.assertAgentAlive();
      const left = deadline - performance.now();
      const r = await this.http('/readyz', Math.max(1000, Math.min(5000, left)));
      if (r.status === 200) return performance.now();
      await sleep(200);
    }
    return undefined;
  }

  /**
   * Polls the kernel every `everyMs` until every expected service is in the
   * data path (frontend with its backend count, responder entry), or
   * `timeoutMs` passes. Never throws on a timeout (the result says so);
   * throws AgentExitedError if the agent dies meanwhile.
   */
  async waitProgrammed(expected: ReadonlyMap<number, ExpectedService>, timeoutMs: number, opts: { everyMs?: number } = {}): Promise<ProgrammedWait> {
    const deadline = performance.now() + timeoutMs;
    const result: ProgrammedWait = { polls: 0 };
    for (let i = 0; i < 1_000_000 && performance.now() < deadline; i++) {
      this.assertAgentAlive();
      const count = this.watch.count(expected);
      result.polls++;
      const age = this.watch.livenessAgeMs();
      if (age !== undefined) result.livenessMaxAgeMs = Math.max(result.livenessMaxAgeMs ?? 0, age);
      if (count) {
        result.last = count;
        if (count.programmed === count.expected) {
          result.doneAt = performance.now();
          return result;
        }
      }
      await sleep(opts.everyMs ?? 300);
    }
    return result;
  }

  /** Starts ARP probes from the client to the probe VIP (or `vip`). */
  startArpProbe(opts: { vip?: string; intervalMs?: number } = {}): ArpProbe {
    const probe = ArpProbe.start((cmd) => this.lab.spawn('client', cmd), { iface: 'eth0', vip: opts.vip ?? PROBE_VIP, intervalMs: opts.intervalMs ?? 100 });
    this.probes.push(probe);
    return probe;
  }

  private assertAgentAlive(): void {
    const p = this.agent?.proc;
    if (p && (p.exitCode !== null || p.signalCode !== null)) {
      throw new AgentExitedError(`agent (pid ${p.pid}) exited ${p.signalCode ?? p.exitCode}:\n${[this.spawnErrors.trim(), this.agentLogTail()].filter(Boolean).join('\n')}`);
    }
  }

  async teardown(): Promise<void> {
    for (const p of this.probes.splice(0)) await p.stop();
    await this.stopAgent(10_000);
    clearInterval(this.livenessTimer);
    this.sampler.stop();
    this.watch.close();
    await this.lab.teardown();
    this.removeFilesSync();
  }

  /** Pins and (unless kept) the work directory. */
  removeFilesSync(): void {
    liveLabs.delete(this);
    removePins(this.pinDir);
    if (!this.opts.keepWork) rmSync(this.work, { recursive: true, force: true });
  }
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}
