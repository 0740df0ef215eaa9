/**
 * The soak lab: real agents, a real bird2 router, real backends.
 *
 *                          ┌ up0 [n1: agent --kubeconfig] eth0 ┐
 *   cli ── c0 [rtr: bird2] ┼ up0 [n2: agent --kubeconfig] eth0 ┼ br0 [sw] ── be1, be2, be3 (HTTP 8080, UDP 8081)
 *                          └ up0 [m1: agent --manifests]  eth0 ┘
 *            n1, n2 ── mgmt ── br0 [mgmt]: Kubernetes API emulator 192.0.2.254:6443
 *
 * The LB nodes, the backend segment and the management network are the
 * cluster topology of every lab (buildCluster, src/lab/topology.ts), the
 * router and its point-to-point uplinks addRouterFront's, as in the ECMP lab.
 * n1 and n2 run the agent in Kubernetes mode against the API emulator
 * (IPAM, EndpointSlices, BGPPeeringPolicy with graceful restart) and
 * advertise the service address to the router over BGP; bird installs one
 * two-path route (ECMP, L4 hash), so client flows spread over both nodes.
 * m1 is a manifests-mode LB node (its own pool and service, advertised to
 * the same router) for the malformed-manifest fault. Every LB node SNATs to
 * its eth0 address. bird runs with `persist` and `graceful restart` in its
 * kernel protocol, as a router that restarts without dropping forwarding.
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import readline from 'node:readline';
import { join } from 'node:path';
import { createLab, run, stopProcess, type Lab, type TeardownHost } from '../../src/lab/netns.js';
import { startEchoServer } from '../../src/lab/echo.js';
import { API, Emulator } from '../../src/lab/l2-lab.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';
import type { SoakProfile } from './core.js';
import { lbServiceObject, lbServiceYaml } from '../../src/lab/manifests.js';
import { addRouterFront, buildCluster, routerNextHops } from '../../src/lab/topology.js';
import { sleep, waitFor } from '../../src/lab/wait.js';

export const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
export const LOADGEN = join(PROJECT_ROOT, 'bench', 'soak', 'loadgen.ts');
/**
 * Under tap, child processes get the test runner's process-info loader through NODE_OPTIONS
 * (tap re-adds it to every spawn), which more than doubles an agent's RSS: agents and the load
 * generator start through `env -u NODE_OPTIONS`, so they run as in production.
 */
const NO_NODE_OPTIONS = ['env', '-u', 'NODE_OPTIONS'];

export const CLIENT = '198.18.0.1';
export const ROUTER = { asn: 65000, id: '198.18.0.2', clientSide: '198.18.0.2' };
export const LB_ASN = 65010;
export const KUBE_POOL = { first: '203.0.113.0/28', added: '203.0.113.32/28' };
export const M1_POOL = '203.0.113.64/28';
export const HTTP = '127.0.0.1:9643';

export interface NodeSpec {
  name: 'n1' | 'n2' | 'm1';
  mode: 'kube' | 'manifests';
  /** Third octet of the node ↔ router link 198.18.K.0/24 (node .1, router .2). */
  k: number;
  /** eth0 address on the backend segment: the SNAT source. */
  snat: string;
  mgmt?: string;
}

export const NODES: NodeSpec[] = [
  { name: 'n1', mode: 'kube', k: 2, snat: '198.18.10.1', mgmt: '192.0.2.11' },
  { name: 'n2', mode: 'kube', k: 3, snat: '198.18.10.2', mgmt: '192.0.2.12' },
  { name: 'm1', mode: 'manifests', k: 4, snat: '198.18.10.3' },
];
export const BACKENDS = [1, 2, 3].map((i) => ({ name: `be${i}`, addr: `198.18.10.1${i}` }));
const uplink = (n: NodeSpec): string => `198.18.${n.k}.1`;
const routerSide = (n: NodeSpec): string => `198.18.${n.k}.2`;

export type Json = any;

export interface AgentProc {
  node: NodeSpec;
  proc: ChildProcess;
  log: string[];
  exited: Promise<void>;
}


/** waitFor of test/support/wait.ts, polling every `everyMs`. */
export function until<T>(what: string, ms: number, probe: () => Promise<T | undefined | false>, everyMs = 200): Promise<Exclude<T, false>> {
  return waitFor(what, ms, probe, { everyMs });
}

/** bird2 in the router namespace, restartable (graceful restart recovery with -R). */
class Bird {
  private readonly sock: string;
  private readonly conf: string;
  private child?: ChildProcess;
  log = '';

  constructor(private readonly lab: Lab, private readonly dir: string) {
    this.sock = join(dir, 'bird.ctl');
    this.conf = join(dir, 'bird.conf');
    const protocols = NODES.map((n) => `
protocol bgp p_${n.name} {
  local ${routerSide(n)} as ${ROUTER.asn};
  neighbor ${uplink(n)} as ${LB_ASN};
  hold time 9; keepalive time 3;
  connect delay time 1; connect retry time 1; error wait time 1,5;
  graceful restart on;
  ipv4 { import all; export none; };
}`).join('\n');
    writeFileSync(this.conf, `router id ${ROUTER.id};
log stderr all;
protocol device { scan time 10; }
protocol kernel { ipv4 { export all; }; merge paths on; persist; graceful restart on; }
${protocols}
`);
  }

  birdc(args: string[]): Promise<{ stdout: string; code: number }> {
    return run(['birdc', '-s', this.sock, ...args], { allowFail: true, timeoutMs: 20_000 });
  }

  async start(recovery = false): Promise<void> {
    this.child = this.lab.spawn('rtr', ['bird', '-f', ...(recovery ? ['-R'] : []), '-c', this.conf, '-s', this.sock, '-P', join(this.dir, 'bird.pid')]);
    this.child.stderr!.on('data', (d: Buffer) => { this.log = (this.log + d.toString()).slice(-20_000); });
    await until('bird up', 10_000, async () => {
      const r = await this.birdc(['show', 'status']);
      return r.code === 0 && r.stdout.includes('Daemon is up');
    }, 100);
  }

  async established(node: string): Promise<boolean> {
    const r = await this.birdc(['show', 'protocols', `p_${node}`]);
    return /Established/.test(r.stdout);
  }

  /** Graceful restart of the router: `birdc graceful restart` (peers keep its routes), then bird -R. */
  async restart(): Promise<void> {
    const child = this.child!;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const r = await this.birdc(['graceful', 'restart']);
    if (r.code !== 0) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    await this.start(true);
  }

  async stop(): Promise<void> {
    if (this.child) await stopProcess(this.child, 3000);
  }
}

export class SoakLab {
  readonly work = mkdtempSync(join(tmpdir(), 'pho-soak-'));
  readonly kubeconfig = join(this.work, 'kubeconfig');
  readonly manifests = join(this.work, 'manifests');
  api!: Emulator;
  bird!: Bird;
  readonly agents = new Map<string, AgentProc>();
  /** Extra agent flags per node (the CI test's negative control uses them). */
  agentArgs: Record<string, string[]> = {};
  private emulatorProc?: ChildProcess;

  private constructor(readonly lab: Lab, readonly profile: SoakProfile) {}

  pinDir(node: string): string {
    return `/run/pharos/bpffs/${this.lab.prefix}-soak-${node}`;
  }

  static create(t: TeardownHost, prefix: string, profile: SoakProfile): Promise<SoakLab> {
    return createLab(t, prefix, (lab) => new SoakLab(lab, profile), (s) => s.build());
  }

  private async build(): Promise<void> {
    const { lab } = this;
    for (const n of NODES) removePins(this.pinDir(n.name));
    await buildCluster(lab, {
      api: `${API}/24`,
      hosts: BACKENDS.map((b) => ({ name: b.name, lan: [`${b.addr}/24`] })),
      nodes: NODES.map((n) => ({ name: n.name, lan: [`${n.snat}/24`], ...(n.mgmt ? { mgmt: `${n.mgmt}/24` } : {}) })),
    });
    await addRouterFront(lab, {
      client: `${CLIENT}/24`,
      router: `${ROUTER.clientSide}/24`,
      clientSubnet: '198.18.0.0/24',
      uplinks: NODES.map((n) => ({ node: n.name, address: `${uplink(n)}/24`, routerSide: `${routerSide(n)}/24` })),
    });
    for (const b of BACKENDS) await startEchoServer(lab, b.name, { name: b.name, port: 8080, udpPort: 8081 });

    // The API emulator in the mgmt namespace, driven over stdin (src/lab/emulator.ts).
    const { api, child } = await Emulator.start(lab.ns('mgmt'), this.kubeconfig, NO_NODE_OPTIONS);
    this.emulatorProc = child;
    this.api = api;
    await this.seedApi();
    this.writeManifests();

    const birdDir = join(this.work, 'bird');
    mkdirSync(birdDir);
    this.bird = new Bird(lab, birdDir);
    await this.bird.start();
  }

  private async seedApi(): Promise<void> {
    for (const n of NODES.filter((x) => x.mode === 'kube')) {
      await this.api.put('nodes', {
        apiVersion: 'v1', kind: 'Node', metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name } },
        status: { addresses: [{ type: 'InternalIP', address: uplink(n) }] },
      });
      await this.api.put('bgppeeringpolicies', bgpPolicy(`to-router-${n.name}`, routerSide(n), { matchLabels: { 'kubernetes.io/hostname': n.name } }));
    }
    await this.putPool([KUBE_POOL.first]);
    await this.api.put('services', lbServiceObject({
      name: 'soak', labels: { soak: 'yes' },
      ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }, { name: 'echo', port: 53, targetPort: 8081, protocol: 'UDP' }],
    }));
    await this.putSlice({ be1: 'ready', be2: 'ready' });
  }

  async putPool(cidrs: string[]): Promise<void> {
    await this.api.put('loadbalancerippools', {
      apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'soak-pool' },
      spec: { blocks: cidrs.map((cidr) => ({ cidr })) },
    });
  }

  /** The service's EndpointSlice: each backend ready, terminating (drained, still serving) or absent. */
  async putSlice(state: Partial<Record<string, 'ready' | 'terminating'>>): Promise<void> {
    const endpoints = BACKENDS.filter((b) => state[b.name]).map((b) => ({
      addresses: [b.addr],
      conditions: state[b.name] === 'ready' ? { ready: true, serving: true, terminating: false } : { ready: false, serving: true, terminating: true },
      targetRef: { kind: 'Pod', name: b.name },
    }));
    await this.api.put('endpointslices', {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'soak-v4', namespace: 'default', labels: { 'kubernetes.io/service-name': 'soak' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'echo', port: 8081, protocol: 'UDP' }],
      endpoints,
    });
  }

  private writeManifests(): void {
    mkdirSync(this.manifests);
    const m1 = NODES.find((n) => n.name === 'm1')!;
    writeFileSync(join(this.manifests, 'pool.yaml'), `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: m1-pool }
spec:
  blocks: [{ cidr: ${M1_POOL} }]
`);
    // JSON is YAML: the same policy object the kube nodes get.
    writeFileSync(join(this.manifests, 'bgp.yaml'), `${JSON.stringify(bgpPolicy('to-router', routerSide(m1)))}\n`);
    writeFileSync(join(this.manifests, 'service.yaml'),
      lbServiceYaml({ name: 'm1web', namespace: 'default', labels: { soak: 'yes' }, endpoints: BACKENDS.map((b) => b.addr) }));
  }

  /** Starts the agent of `node` on its existing pins (never removed between starts: restarts are hitless). */
  async startAgent(name: string): Promise<AgentProc> {
    const node = NODES.find((n) => n.name === name)!;
    const source = node.mode === 'kube' ? ['--kubeconfig', this.kubeconfig] : ['--manifests', this.manifests];
    const proc = this.lab.spawn(name, [...NO_NODE_OPTIONS, process.execPath, CLI, 'agent', ...source, '--node-name', name, '--interfaces', 'up0,eth0',
      '--pin-dir', this.pinDir(name), '--state-dir', join(this.work, `state-${name}`), '--http', HTTP, '--log-format', 'text',
      '--snat-addresses', node.snat, '--conntrack-size', String(this.profile.conntrackSize), ...(this.agentArgs[name] ?? [])]);
    const log: string[] = [];
    const collect = (d: Buffer): void => {
      for (const line of d.toString().split('\n')) if (line) log.push(line);
      if (log.length > 4000) log.splice(0, 2000);
    };
    proc.stderr!.on('data', collect);
    proc.stdout!.on('data', collect);
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    const a: AgentProc = { node, proc, log, exited };
    this.agents.set(name, a);
    await until(`agent ${name} ready`, 60_000, async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`agent ${name} exited ${proc.exitCode ?? proc.signalCode}`);
      return (await this.httpGet(name, '/readyz')) !== undefined;
    }).catch((e: Error) => { throw new Error(`${e.message}\n${log.slice(-30).join('\n')}`); });
    return a;
  }

  async stopAgent(name: string, signal: NodeJS.Signals): Promise<void> {
    const a = this.agents.get(name);
    if (!a || a.proc.exitCode !== null || a.proc.signalCode !== null) return;
    a.proc.kill(signal);
    const timer = setTimeout(() => a.proc.kill('SIGKILL'), 15_000);
    await a.exited;
    clearTimeout(timer);
  }

  async httpGet(node: string, path: string): Promise<string | undefined> {
    const r = await this.lab.exec(node, ['curl', '-sf', '--max-time', '3', `http://${HTTP}${path}`], { allowFail: true, timeoutMs: 6000 });
    return r.code === 0 ? r.stdout : undefined;
  }

  /** VmRSS of an agent process, bytes. */
  rss(node: string): number {
    const pid = this.agents.get(node)?.proc.pid;
    if (!pid) return 0;
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  }

  /** The kube service's assigned addresses (status) and m1's service address (its /v1/state). */
  async addresses(): Promise<{ kube: string[]; m1: string[] }> {
    const svc = await this.api.get('services', 'default', 'soak');
    const kube = ((svc?.status?.loadBalancer?.ingress ?? []) as { ip: string }[]).map((i) => i.ip).sort();
    const state = await this.httpGet('m1', '/v1/state');
    const m1 = [...new Set((state ?? '').match(/203\.0\.113\.(6[4-9]|7\d)\b/g) ?? [])].sort();
    return { kube, m1 };
  }

  /** The router's kernel next hops for `prefix` (the ECMP set bird installed). */
  async nexthops(addr: string): Promise<string[]> {
    return routerNextHops(this.lab, addr);
  }

  static nodeUplink(name: string): string {
    return uplink(NODES.find((n) => n.name === name)!);
  }

  /** API unreachable: the emulator's bridge goes down (packets dropped, no RST), then comes back. */
  async apiLink(up: boolean): Promise<void> {
    await this.lab.exec('mgmt', ['ip', 'link', 'set', 'br0', up ? 'up' : 'down']);
  }

  /** Starts the load generator in the client namespace; resolves once it runs. */
  async startLoad(cfg: Json): Promise<LoadHandle> {
    const proc = spawnChild('ip', ['netns', 'exec', this.lab.ns('cli'), 'setpriv', '--pdeathsig', 'KILL', '--', ...NO_NODE_OPTIONS, process.execPath, '--import', 'tsx', LOADGEN, 'run', JSON.stringify(cfg)],
      { stdio: ['pipe', 'pipe', 'pipe'], cwd: PROJECT_ROOT });
    this.loadProc = proc;
    return LoadHandle.attach(proc);
  }

  private loadProc?: ChildProcess;

  async fill(host: string, port: number, flows: number): Promise<Json> {
    const r = await this.lab.exec('cli', [...NO_NODE_OPTIONS, process.execPath, '--import', 'tsx', LOADGEN, 'fill', host, String(port), String(flows)], { timeoutMs: 120_000 });
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  }

  async teardown(): Promise<void> {
    if (this.loadProc && this.loadProc.exitCode === null) this.loadProc.kill('SIGKILL');
    for (const a of this.agents.values()) if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill('SIGKILL');
    await this.bird?.stop();
    this.emulatorProc?.stdin?.end();
    if (this.emulatorProc && this.emulatorProc.exitCode === null) this.emulatorProc.kill('SIGKILL');
    await this.lab.teardown();
    for (const n of NODES) removePins(this.pinDir(n.name));
    rmSync(this.work, { recursive: true, force: true });
  }
}

function bgpPolicy(name: string, peer: string, nodeSelector?: Json): Json {
  return {
    apiVersion: 'lb.pharos.io/v1alpha1', kind: 'BGPPeeringPolicy', metadata: { name },
    spec: {
      ...(nodeSelector ? { nodeSelector } : {}),
      virtualRouters: [{
        localASN: LB_ASN,
        serviceSelector: { matchLabels: { soak: 'yes' } },
        neighbors: [{
          peerAddress: `${peer}/32`, peerASN: ROUTER.asn, connectRetryTimeSeconds: 1, holdTimeSeconds: 9, keepAliveTimeSeconds: 3,
          gracefulRestart: { enabled: true, restartTimeSeconds: 120 },
        }],
      }],
    },
  };
}

/** The running load generator: window commands in, window results out. */
export class LoadHandle {
  readonly windows: Json[] = [];
  done?: Json;
  stderr = '';
  private lastPeek?: Json;
  private waiters: (() => void)[] = [];
  private constructor(private readonly proc: ChildProcess) {}

  static async attach(proc: ChildProcess): Promise<LoadHandle> {
    const h = new LoadHandle(proc);
    proc.stderr!.on('data', (d: Buffer) => { h.stderr = (h.stderr + d.toString()).slice(-10_000); });
    let started!: () => void;
    const ready = new Promise<void>((r) => { started = r; });
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      let msg: Json;
      try { msg = JSON.parse(line); } catch { return; }
      if (msg.started) started();
      if (msg.window) h.windows.push(msg.window);
      if (msg.done) h.done = msg.done;
      if (msg.peek) h.lastPeek = msg.peek;
      for (const w of h.waiters.splice(0)) w();
    });
    const exited = new Promise<void>((_, reject) => proc.once('exit', (c) => reject(new Error(`load generator exited ${c} before starting: ${h.stderr}`))));
    await Promise.race([ready, exited, sleep(30_000).then(() => { throw new Error('load generator did not start in 30 s'); })]);
    return h;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  private send(o: Json): void {
    this.proc.stdin!.write(`${JSON.stringify(o)}\n`);
  }

  open(name: string): void {
    this.send({ cmd: 'window', name });
  }

  /** Closes the open window and returns its stats. */
  async close(): Promise<Json> {
    const n = this.windows.length;
    this.send({ cmd: 'close' });
    await until('the window result', 10_000, async () => this.windows.length > n || undefined, 20);
    return this.windows[this.windows.length - 1];
  }

  /** Each HTTP worker's open connection: `{ served: "<backend> <source>", requests }`. */
  async peek(): Promise<Record<string, { served?: string; requests: number }>> {
    this.lastPeek = undefined;
    this.send({ cmd: 'peek' });
    return until('the load generator\'s connections', 10_000, async () => this.lastPeek, 20);
  }

  async stop(): Promise<Json> {
    this.send({ cmd: 'stop' });
    await until('the load generator to stop', 30_000, async () => this.done ?? undefined, 50);
    return this.done;
  }
}
