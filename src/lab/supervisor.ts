/**
 * The long-lived process behind `pharos lab up` (`pharos lab serve`, started
 * detached): hosts the API emulator, relays the agents' API traffic from
 * the mgmt namespace, plays the deployment and endpoint controllers, and is the parent of
 * every process of the lab (agents, echo servers, the forwarder), so they
 * are reaped and stopped with it. A small HTTP control socket lets
 * `pharos lab agent stop|start NODE` stop and restart one agent.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, connect, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../datapath/bpf-build.js';
import { startApiServer, type ApiServer } from './apiserver/server.js';
import { bundledCrdDir, readCrds } from './apiserver/crds.js';
import { ciliumResources, crdObjectOf } from './apiserver/resources.js';
import { kubeconfigFor } from './apiserver/main.js';
import { AGENT_HTTP, API_ADDR, API_PORT, labLayout, nsName, readState, writeState, type LabLayout, type LabState } from './cluster.js';
import { deploymentPods, deploymentStatus, podBackends, POD_BACKEND_ANNOTATION, type DeploymentLike } from './deployments.js';
import { desiredSlices, MANAGED_BY, sliceUpToDate, type LabBackend, type ServiceLike } from './endpoints.js';
import { labProgram, stopProcess } from './netns.js';
import { sleep } from './wait.js';

const execFileAsync = promisify(execFile);
/** Database resources whose changes the lab's controllers follow. */
const RECONCILED_ON = new Set(['/services', 'apps/deployments', '/pods']);
const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');

export function controlSocket(stateDir: string): string {
  return join(stateDir, 'control.sock');
}

class Supervisor {
  private api!: ApiServer;
  private relay?: Server;
  private control?: ReturnType<typeof createHttpServer>;
  private readonly procs = new Map<string, ChildProcess>();
  private reconcileTimer?: NodeJS.Timeout;
  private stopping = false;

  constructor(private readonly state: LabState, private readonly layout: LabLayout) {}

  private log(msg: string): void {
    process.stdout.write(`${new Date().toISOString()} ${msg}\n`);
  }

  private spawnIn(role: string, short: string, cmd: string[], marker: string): ChildProcess {
    mkdirSync(join(this.state.stateDir, 'logs'), { recursive: true });
    const logFile = join(this.state.stateDir, 'logs', `${role.replace('/', '-')}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn('ip', ['netns', 'exec', nsName(this.layout.prefix, short), ...cmd], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.procs.set(role, child);
    this.state.children[role] = { pid: child.pid!, marker };
    writeState(this.state);
    child.once('exit', (code, signal) => {
      this.log(`${role} (pid ${child.pid}) exited ${signal ?? code}`);
      if (this.procs.get(role) === child) {
        this.procs.delete(role);
        delete this.state.children[role];
        if (!this.stopping) writeState(this.state);
      }
    });
    return child;
  }

  async start(): Promise<void> {
    const { stateDir } = this.state;
    // Cilium's CRDs too, as in a cluster where Cilium is installed: its walkthroughs' pools and
    // policies apply as written, and `kubectl get crd` lists them next to the pharos ones.
    const bundled = bundledCrdDir();
    this.api = await startApiServer({ host: '127.0.0.1', port: 0, cilium: true, crds: [...(bundled ? readCrds(bundled) : []), ...ciliumResources.map(crdObjectOf)] });
    // Unix sockets cross network namespaces: the forwarder in the mgmt namespace relays to this one.
    const relayPath = join(stateDir, 'api.sock');
    rmSync(relayPath, { force: true });
    this.relay = createNetServer((sock) => {
      const upstream = connect(this.api.port, '127.0.0.1');
      sock.pipe(upstream).pipe(sock);
      const end = () => { sock.destroy(); upstream.destroy(); };
      sock.on('error', end);
      upstream.on('error', end);
    });
    await new Promise<void>((resolve) => this.relay!.listen(relayPath, resolve));

    const kubeconfig = join(stateDir, 'kubeconfig');
    writeFileSync(kubeconfig, kubeconfigFor(this.api.url));
    writeFileSync(join(stateDir, 'agent-kubeconfig'), kubeconfigFor(`http://${API_ADDR}:${API_PORT}`));
    this.state.kubeconfig = kubeconfig;
    this.state.apiUrl = this.api.url;
    writeState(this.state);
    this.log(`API emulator on ${this.api.url}`);

    this.spawnIn('forwarder', 'mgmt', [process.execPath, labProgram('forwarder'), '--listen', `${API_ADDR}:${API_PORT}`, '--unix', relayPath], relayPath);

    for (const ns of ['default', 'kube-system']) this.api.objects.put('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    for (const node of this.layout.nodes) {
      this.api.objects.put('nodes', {
        apiVersion: 'v1', kind: 'Node',
        metadata: { name: node.name, labels: { 'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux' } },
        status: { addresses: [{ type: 'InternalIP', address: node.v4 }, { type: 'InternalIP', address: node.v6 }, { type: 'Hostname', address: node.name }] },
      });
    }
    for (const be of this.layout.backends) {
      this.spawnIn(`echo/${be.name}`, be.name, [process.execPath, labProgram('echo-server'), '--name', be.name, '--port', be.listen.join(',')], `echo-server.js --name ${be.name}`);
    }
    this.api.database.on('event', (ev) => {
      if (RECONCILED_ON.has(ev.resource)) this.scheduleReconcile();
    });
    this.reconcile();

    await this.startControl();
    await Promise.all(this.layout.nodes.map((n) => this.startAgent(n.name)));
    this.state.ready = true;
    writeState(this.state);
    this.log('lab ready');
  }

  private scheduleReconcile(): void {
    if (this.reconcileTimer) return;
    this.reconcileTimer = setTimeout(() => {
      this.reconcileTimer = undefined;
      this.reconcile();
    }, 50);
  }

  /**
   * The deployment controller's part (deployments.ts): the Pods the lab
   * plays for each Deployment (added, and removed with it) and the
   * Deployment's status. Then the endpoint controller's, over the lab's
   * backends and those pods.
   */
  private reconcile(): void {
    const { backends } = this.layout;
    const deployments = this.api.objects.list('deployments') as DeploymentLike[];
    const pods = deploymentPods(deployments, backends);
    const podIds = new Set(pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`));
    for (const pod of pods) {
      if (!this.api.objects.get('pods', pod.metadata.namespace, pod.metadata.name)) this.api.objects.put('pods', pod);
    }
    for (const stored of this.api.objects.list('pods') as { metadata: { name: string; namespace: string; annotations?: Record<string, string> } }[]) {
      const m = stored.metadata;
      if (m.annotations?.[POD_BACKEND_ANNOTATION] && !podIds.has(`${m.namespace}/${m.name}`)) this.api.objects.delete('pods', m.namespace, m.name);
    }
    for (const d of deployments) {
      const mine = deploymentPods([d], backends).length;
      const status = deploymentStatus(d, mine, new Date());
      if (JSON.stringify(status) !== JSON.stringify(d.status ?? {})) {
        this.api.objects.put('deployments', { ...d, status });
        this.log(`deployment ${d.metadata.namespace}/${d.metadata.name}: ${mine} pods on the lab's backends`);
      }
    }
    this.reconcileEndpoints(podBackends(pods, backends));
  }

  /** Writes the slices the lab's backends and pods imply and removes the ones no Service needs any more. */
  private reconcileEndpoints(pods: LabBackend[]): void {
    const services = this.api.objects.list('services') as ServiceLike[];
    // Pods first: a named targetPort resolves through the first member's container ports.
    const want = desiredSlices(services, [...pods, ...this.layout.backends]);
    const wanted = new Set(want.map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
    for (const slice of want) {
      const stored = this.api.objects.get('endpointslices', slice.metadata.namespace, slice.metadata.name);
      if (!sliceUpToDate(stored, slice)) {
        this.api.objects.put('endpointslices', slice);
        this.log(`endpointslice ${slice.metadata.namespace}/${slice.metadata.name}: ${slice.endpoints.map((e) => e.addresses[0]).join(', ')}`);
      }
    }
    for (const stored of this.api.objects.list('endpointslices') as { metadata: { name: string; namespace: string; labels?: Record<string, string> } }[]) {
      const m = stored.metadata;
      if (m.labels?.[MANAGED_BY.key] === MANAGED_BY.value && !wanted.has(`${m.namespace}/${m.name}`)) {
        this.api.objects.delete('endpointslices', m.namespace, m.name);
        this.log(`endpointslice ${m.namespace}/${m.name} removed`);
      }
    }
  }

  async startAgent(node: string): Promise<number> {
    const n = this.layout.nodes.find((x) => x.name === node);
    if (!n) throw new Error(`no node ${node} in this lab (${this.layout.nodes.map((x) => x.name).join(', ')})`);
    const running = this.procs.get(`agent/${node}`);
    if (running) return running.pid!;
    const child = this.spawnIn(`agent/${node}`, node, [process.execPath, CLI, 'agent', '--kubeconfig', join(this.state.stateDir, 'agent-kubeconfig'),
      '--node-name', node, '--interfaces', 'eth0', '--namespace', 'kube-system', '--pin-dir', n.pinDir,
      '--state-dir', join(this.state.stateDir, `state-${node}`), '--http', AGENT_HTTP, '--log-format', 'text', ...(this.state.agentArgs ?? [])], `--pin-dir ${n.pinDir}`);
    const deadline = Date.now() + 60_000;
    for (let i = 0; i < 600 && Date.now() < deadline; i++) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`agent ${node} exited ${child.signalCode ?? child.exitCode}; see ${this.state.stateDir}/logs/agent-${node}.log`);
      const code = await execFileAsync('ip', ['netns', 'exec', nsName(this.layout.prefix, node), 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${AGENT_HTTP}/readyz`], { timeout: 5000 })
        .then((r) => r.stdout, () => '');
      if (code === '200') {
        this.log(`agent ${node} ready (pid ${child.pid})`);
        return child.pid!;
      }
      await sleep(200);
    }
    throw new Error(`agent ${node} not ready in 60 s; see ${this.state.stateDir}/logs/agent-${node}.log`);
  }

  async stopAgent(node: string, signal: NodeJS.Signals): Promise<number | undefined> {
    const child = this.procs.get(`agent/${node}`);
    if (!child) return undefined;
    await stopProcess(child, 10_000, signal);
    return child.pid;
  }

  private async startControl(): Promise<void> {
    const path = controlSocket(this.state.stateDir);
    rmSync(path, { force: true });
    this.control = createHttpServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.control!.listen(path, resolve));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://lab');
    const m = /^\/agents\/([a-z0-9-]+)\/(start|stop)$/.exec(url.pathname);
    try {
      if (req.method === 'POST' && m) {
        const [, node, verb] = m;
        if (verb === 'stop') {
          const signal = (url.searchParams.get('signal') ?? 'SIGTERM') as NodeJS.Signals;
          const pid = await this.stopAgent(node!, signal);
          return reply(200, { node, stopped: pid ?? null });
        }
        return reply(200, { node, started: await this.startAgent(node!) });
      }
      if (req.method === 'GET' && url.pathname === '/status') {
        return reply(200, { agents: Object.fromEntries(this.layout.nodes.map((n) => [n.name, this.procs.get(`agent/${n.name}`)?.pid ?? null])) });
      }
      reply(404, { error: `no ${req.method} ${url.pathname}` });
    } catch (err) {
      reply(500, { error: (err as Error).message });
    }
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log('stopping');
    const all = [...this.procs.values()];
    await Promise.all(all.map((c) => stopProcess(c, 5000)));
    this.control?.close();
    this.relay?.close();
    await this.api?.close();
  }
}

/** Entry of `pharos lab serve`: runs until SIGTERM/SIGINT. */
export async function serve(stateDir: string): Promise<number> {
  const state = readState(stateDir);
  if (!state) {
    console.error(`pharos lab serve: no state in ${stateDir}`);
    return 1;
  }
  // Recorded here, not by `lab up`, so the two never race on the state file.
  state.supervisor = { pid: process.pid, marker: `lab serve --state-dir ${stateDir}` };
  writeState(state);
  const sup = new Supervisor(state, labLayout(state.prefix, state.stateDir, state.nodeCount));
  const done = new Promise<void>((resolve) => {
    const onSignal = () => void sup.stop().then(resolve);
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  try {
    await sup.start();
  } catch (err) {
    state.error = (err as Error).message;
    writeState(state);
    console.error(`pharos lab serve: ${state.error}`);
    await sup.stop();
    return 1;
  }
  await done;
  return 0;
}
