/**
 * The agent: wires sources → store → controllers → sinks.
 *
 *   source (manifests | kube) ──► Store ──► reconcile():
 *                                             ipam      → service status (store overlay | API)
 *                                             datapath  → BPF maps (DatapathSync)
 *                                             l2        → responder map + gratuitous ARP/NA
 *
 * Every store change schedules one reconcile pass (debounced, never two at
 * once). Each controller computes desired = f(snapshot) in its own pure
 * module and applies only the difference. A failing controller is logged
 * and counted; the others still run, and what already serves keeps serving.
 */
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from './config.js';
import type { Logger } from './log.js';
import { readInterfaces } from './interfaces.js';
import { Store } from '../store/store.js';
import { objectKey, type Service, type Condition } from '../model/types.js';
import { addon as loadAddon, type NativeAddon } from '../datapath/libbpf.js';
import { loadDatapath, type LoadedDatapath } from '../datapath/loader.js';
import { DatapathSync } from '../datapath/sync.js';
import { readCounters } from '../datapath/stats.js';
import { desiredFrontends } from '../datapath/desired.js';
import { NeighbourPrimer } from '../datapath/neighbours.js';
import { Ipam, IPAM_CONDITION, type AllocationState } from '../ipam/allocator.js';
import type { PoolStatus } from '../ipam/pool-status.js';
import { L2Announcer } from '../l2/announcer.js';
import { l2Candidates, nodeLabels, type NodeInterface } from '../l2/policy.js';
import { ManifestsSource, formatProblem, writeFileAtomic } from '../sources/manifests/source.js';
import { HttpEndpoint } from '../metrics/server.js';
import { registry, timeReconcile, configProblems } from '../metrics/registry.js';
import { registerDatapathMetrics } from '../metrics/datapath.js';
import { registerAgentMetrics } from '../metrics/agent.js';
import { STATE_API_VERSION, type AgentStateView, type ConfigProblemView } from '../metrics/state-view.js';

export const VERSION = '0.1.0';
const IPAM_STATE_FILE = 'ipam-state.json';
const HEARTBEAT_MS = 500;
const RECONCILE_DEBOUNCE_MS = 10;

export class AgentStartError extends Error {}

interface Attachment {
  interface: string;
  ifindex: number;
  mode: string;
}

export class Agent {
  readonly store = new Store();
  private addon?: NativeAddon;
  private datapath?: LoadedDatapath;
  private sync?: DatapathSync;
  private readonly attachments: Attachment[] = [];
  private source?: ManifestsSource;
  private http?: HttpEndpoint;
  private ipam?: Ipam;
  private poolStatuses = new Map<string, PoolStatus>();
  private announcer?: L2Announcer;
  private readonly neighbours = new NeighbourPrimer((backend, message) => this.log.warn('backend next hop not primed', { backend, error: message }));
  private interfaces: NodeInterface[] = [];
  private problems: ConfigProblemView[] = [];
  private heartbeat?: NodeJS.Timeout;
  private reconcileTimer?: NodeJS.Timeout;
  private reconciling?: Promise<void>;
  private again = false;
  private stopping = false;
  private readonly startedAt = new Date().toISOString();
  private l2Since = new Map<string, string>();
  private l2Transitions = new Map<string, number>();
  private readonly conditionTimes = new Map<string, string>();
  private lastPersisted = '';
  readonly counters = { gratuitousSent: { ipv4: 0, ipv6: 0 }, l2Errors: 0 };

  constructor(readonly config: AgentConfig, private readonly log: Logger) {}

  /** Checks inputs, loads and attaches the data path, starts the HTTP endpoint and the source. Throws AgentStartError with a clear message. */
  async start(): Promise<void> {
    const cfg = this.config;
    if (cfg.kubeconfig || cfg.inCluster) {
      throw new AgentStartError('Kubernetes mode is not wired into the agent yet; use --manifests DIR');
    }
    if (!cfg.manifests || !existsSync(cfg.manifests)) throw new AgentStartError(`--manifests ${cfg.manifests}: directory not found`);
    try {
      mkdirSync(cfg.stateDir, { recursive: true });
    } catch (err) {
      throw new AgentStartError(`--state-dir ${cfg.stateDir}: ${(err as Error).message}`);
    }

    // 1. Data path: load (re-adopting pinned maps), attach to every interface.
    try {
      this.addon = loadAddon();
    } catch (err) {
      throw new AgentStartError(`native addon: ${(err as Error).message}`);
    }
    if (cfg.interfaces.length === 0) throw new AgentStartError('--interfaces: give at least one interface for the data path');
    for (const name of cfg.interfaces) {
      try {
        this.addon.ifIndex(name);
      } catch {
        throw new AgentStartError(`--interfaces: interface "${name}" does not exist in this network namespace`);
      }
    }
    try {
      this.datapath = loadDatapath({
        addon: this.addon,
        pinDir: cfg.pinDir,
        sizes: { conntrack: cfg.conntrackSize },
        config: { maglevM: cfg.maglevTableSize, hashSeed: cfg.hashSeed, livenessMaxMs: cfg.responderMaxAgeSeconds * 1000, snat: cfg.mode === 'snat' },
      });
    } catch (err) {
      const msg = (err as Error).message;
      const hint = /EPERM|EACCES/.test(msg) ? ' (needs root or CAP_BPF + CAP_NET_ADMIN)' : '';
      throw new AgentStartError(`data path: ${msg}${hint}`);
    }
    this.log.info(this.datapath.adopted ? 'data path loaded, pinned maps re-adopted (hitless restart)' : 'data path loaded, maps pinned',
      { pinDir: cfg.pinDir });
    this.sync = new DatapathSync(this.addon, this.datapath.maps, { maglevM: cfg.maglevTableSize });
    this.sync.readState();
    this.interfaces = readInterfaces(cfg.interfaces);
    this.configureNode();
    this.sync.touchLiveness();
    for (const name of cfg.interfaces) {
      const { ifindex, mode } = this.datapath.attachXdp(name, { mode: cfg.xdpMode });
      if (mode === 'generic') this.log.warn('XDP attached in generic mode (driver lacks native XDP): slower', { interface: name });
      this.datapath.attachTcEgress(name);
      this.attachments.push({ interface: name, ifindex, mode });
      this.log.info('XDP attached', { interface: name, ifindex, mode });
    }
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);

    // 2. Metrics and the read-only HTTP endpoint.
    registerDatapathMetrics({
      counters: () => this.readDatapathCounters(),
      frontendLabels: (id) => this.frontendLabel(id),
      backendLabels: (id) => this.backendLabel(id),
      mapPressure: () => this.mapPressure(),
      conntrackEntries: () => this.mapPressure().find((m) => m.name === 'ph_ct')?.entries ?? 0,
      mapFull: () => this.sync?.mapFull ?? {},
    });
    registerAgentMetrics(this);
    const [host, port] = splitHostPort(cfg.http);
    this.http = new HttpEndpoint({ host, port, registry, state: () => this.state() });
    try {
      await this.http.start();
    } catch (err) {
      throw new AgentStartError((err as Error).message);
    }

    // 3. Controllers' local state, then the source.
    this.ipam = new Ipam({ pharosIsDefaultClass: cfg.defaultLoadBalancerClass });
    this.announcer = new L2Announcer({
      addResponder: (address, i) => this.sync!.setResponder(address, i.ifindex, i.mac),
      removeResponder: (address, i) => void this.sync!.deleteResponder(address, i.ifindex),
      sendFrame: (i, frame) => this.addon!.sendFrame(i.ifindex, frame),
    }, {
      onSent: (family) => this.counters.gratuitousSent[family]++,
      onError: (err, address, iface) => {
        this.counters.l2Errors++;
        this.log.warn('L2 announcement failed', { address, interface: iface, error: err.message });
      },
    });
    this.store.on('change', () => this.scheduleReconcile());
    this.source = new ManifestsSource({ directory: cfg.manifests, stateDir: cfg.stateDir, store: this.store });
    this.source.on('report', (report) => {
      this.problems = [...report.errors, ...report.warnings].map((p) => ({
        source: 'manifests',
        object: p.kind ? `${p.kind} ${p.namespace ? `${p.namespace}/` : ''}${p.name ?? ''}`.trim() : p.file,
        ...(p.field ? { field: p.field } : {}),
        message: formatProblem(p),
        at: new Date().toISOString(),
      }));
      configProblems.set({ source: 'manifests' }, report.errors.length);
    });
    this.source.on('error', (p) => this.log.error('manifest rejected; the last good version stays in force', { problem: formatProblem(p) }));
    const report = await this.source.start();
    this.log.info('manifests loaded', { directory: cfg.manifests, files: report.files, objects: report.objects, errors: report.errors.length });
    this.scheduleReconcile(0);
  }

  /** SNAT addresses: the flag, else the first global address per family of the first interface that has one. */
  private configureNode(): void {
    const cfg = this.config;
    const all = [...cfg.snatAddresses, ...this.interfaces.flatMap((i) => i.addresses)];
    const snatV4 = all.find((a) => !a.includes(':'));
    const snatV6 = all.find((a) => a.includes(':'));
    this.sync!.setNodeConfig({ ...(snatV4 ? { snatV4 } : {}), ...(snatV6 ? { snatV6 } : {}), portMin: cfg.snatPorts[0], portMax: cfg.snatPorts[1] });
    this.log.info('node configured', { snatV4: snatV4 ?? 'none', snatV6: snatV6 ?? 'none', ports: `${cfg.snatPorts[0]}-${cfg.snatPorts[1]}` });
  }

  private beat(): void {
    try {
      this.sync?.touchLiveness();
    } catch (err) {
      this.log.error('liveness refresh failed: the XDP responder will fall silent', { error: (err as Error).message });
    }
  }

  poolFamilies(): Map<string, Record<string, { total: string; used: string; available: string }>> {
    return new Map([...this.poolStatuses].map(([name, st]) => [name, st.families]));
  }

  scheduleReconcile(delay = RECONCILE_DEBOUNCE_MS): void {
    if (this.stopping) return;
    if (this.reconciling) {
      this.again = true;
      return;
    }
    clearTimeout(this.reconcileTimer);
    this.reconcileTimer = setTimeout(() => {
      this.reconciling = this.reconcile().finally(() => {
        this.reconciling = undefined;
        if (this.again) {
          this.again = false;
          this.scheduleReconcile();
        }
      });
    }, delay);
  }

  /** One pass of every controller over the current snapshot. */
  async reconcile(): Promise<void> {
    await timeReconcile('ipam', () => this.reconcileIpam()).catch((err) => this.log.error('IPAM reconcile failed', { error: (err as Error).message }));
    await timeReconcile('datapath', () => this.reconcileDatapath()).catch((err) => this.log.error('data path reconcile failed', { error: (err as Error).message }));
    await timeReconcile('l2', () => this.reconcileL2()).catch((err) => this.log.error('L2 reconcile failed', { error: (err as Error).message }));
  }

  private isOurService = (svc: Service): boolean =>
    svc.loadBalancerClass === undefined ? this.config.defaultLoadBalancerClass : svc.loadBalancerClass === 'lb.pharos.io/l2' || svc.loadBalancerClass === 'lb.pharos.io/bgp';

  /** Manifests mode: pharos is the IPAM leader and the only status writer; allocations persist in --state-dir. */
  private async reconcileIpam(): Promise<void> {
    const snap = this.store.snapshot();
    const statePath = join(this.config.stateDir, IPAM_STATE_FILE);
    let previous: AllocationState | undefined;
    if (this.lastPersisted) previous = JSON.parse(this.lastPersisted) as AllocationState;
    else if (existsSync(statePath)) {
      try {
        previous = JSON.parse(readFileSync(statePath, 'utf8')) as AllocationState;
        this.lastPersisted = JSON.stringify(previous);
      } catch (err) {
        this.log.warn('IPAM state file unreadable; rebuilding from service status', { file: statePath, error: (err as Error).message });
      }
    }
    const ipam = this.ipam!;
    ipam.loadAll(snap.pools.values(), snap.services.values(), previous);
    for (const [key, outcome] of ipam.allOutcomes()) {
      if (outcome.kind === 'leave-alone') continue;
      const svc = snap.services.get(key);
      if (!svc) continue;
      if (outcome.kind === 'managed') {
        const condition = this.stampCondition(key, outcome.condition);
        const status = { ingress: outcome.ingress.map((ip) => ({ ip })), conditions: [...svc.status.conditions.filter((c) => c.type !== IPAM_CONDITION), condition] };
        if (JSON.stringify(status) !== JSON.stringify(svc.status)) {
          this.store.setServiceStatus(key, status);
          this.log.info(outcome.ingress.length ? 'address assigned' : 'no address assigned', {
            service: key, addresses: outcome.ingress.join(','), reason: condition.reason, message: condition.status === 'True' ? undefined : condition.message,
          });
        }
      } else {
        this.store.setServiceStatus(key, undefined);
        this.conditionTimes.delete(key);
        this.log.info('service left pharos\'s scope: address released', { service: key });
      }
    }
    this.poolStatuses = new Map(ipam.allPoolStatuses());
    const state = JSON.stringify(ipam.exportState());
    if (state !== this.lastPersisted) {
      await writeFileAtomic(statePath, state);
      this.lastPersisted = state;
    }
  }

  private stampCondition(key: string, c: Condition): Condition {
    const id = `${key}|${c.status}|${c.reason}`;
    let at = this.conditionTimes.get(id);
    if (!at) {
      at = new Date().toISOString();
      for (const k of [...this.conditionTimes.keys()]) if (k.startsWith(`${key}|`)) this.conditionTimes.delete(k);
      this.conditionTimes.set(id, at);
    }
    return { ...c, lastTransitionTime: at };
  }

  private async reconcileDatapath(): Promise<void> {
    const desired = desiredFrontends(this.store.snapshot(), { nodeName: this.config.nodeName, isOurService: this.isOurService });
    // Next hops first, so the first packet to a new backend finds its MAC in the FIB.
    await this.neighbours.sync(desired.flatMap((f) => f.backends.map((b) => b.address)));
    const result = this.sync!.apply(desired);
    for (const e of result.errors) this.log.error('data path refused an object; everything else is unchanged', { object: e.object, service: e.service, map: e.map, error: e.message });
    if (result.frontendsWritten || result.frontendsRemoved || result.backendsAdded || result.backendsRemoved) {
      this.log.info('data path updated', { ...result, errors: result.errors.length });
    }
  }

  /** Manifests mode has one node: it holds every address its policies select. */
  private async reconcileL2(): Promise<void> {
    const snap = this.store.snapshot();
    this.interfaces = readInterfaces(this.config.interfaces);
    const candidates = l2Candidates(snap, {
      nodeName: this.config.nodeName,
      nodeLabels: nodeLabels(snap.nodes.get(this.config.nodeName), this.config.nodeName),
      interfaces: this.interfaces,
      isOurService: this.isOurService,
    });
    const announcements = candidates.flatMap((c) => c.addresses.map((address) => ({ service: c.service, address, interfaces: c.interfaces })));
    const now = new Date().toISOString();
    const live = new Set<string>();
    for (const a of announcements) {
      const key = `${a.service}|${a.address}`;
      live.add(key);
      if (!this.l2Since.has(key)) {
        this.l2Since.set(key, now);
        this.l2Transitions.set(key, (this.l2Transitions.get(key) ?? 0) + 1);
        this.log.info('announcing address', { service: a.service, address: a.address, interfaces: a.interfaces.map((i) => i.name).join(',') });
      }
    }
    for (const key of [...this.l2Since.keys()]) {
      if (live.has(key)) continue;
      this.l2Since.delete(key);
      const [service, address] = key.split('|');
      this.log.info('stopped announcing address', { service, address });
    }
    this.announcer!.update(announcements);
  }

  private readDatapathCounters() {
    if (!this.datapath || !this.sync) return undefined;
    const view = this.sync.current();
    return readCounters(this.datapath.maps, [...view.frontends.values()].map((f) => f.id), [...view.backends.values()].map((b) => b.id));
  }

  private frontendLabel(id: number): { service: string; frontend: string } | undefined {
    const snapFrontends = this.frontendServiceIndex();
    for (const f of this.sync?.current().frontends.values() ?? []) {
      if (f.id !== id) continue;
      const name = `${f.address.includes(':') ? `[${f.address}]` : f.address}:${f.port}/${f.protocol}`;
      return { service: snapFrontends.get(`${f.protocol}/${f.address}/${f.port}`) ?? '', frontend: name };
    }
    return undefined;
  }

  private backendLabel(id: number): { backend: string } | undefined {
    for (const b of this.sync?.current().backends.values() ?? []) {
      if (b.id === id) return { backend: `${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port}` };
    }
    return undefined;
  }

  private frontendServiceIndex(): Map<string, string> {
    const out = new Map<string, string>();
    for (const f of desiredFrontends(this.store.snapshot(), { nodeName: this.config.nodeName, isOurService: this.isOurService })) {
      out.set(`${f.protocol}/${f.address}/${f.port}`, f.service);
    }
    return out;
  }

  private pressureCache: { at: number; value: { name: string; entries: number; capacity: number }[] } = { at: 0, value: [] };

  /** Entries per map (a key walk: cached for a few seconds so scrapes stay cheap). */
  mapPressure(): { name: string; entries: number; capacity: number }[] {
    if (!this.datapath) return [];
    if (Date.now() - this.pressureCache.at < 5000) return this.pressureCache.value;
    const out: { name: string; entries: number; capacity: number }[] = [];
    for (const m of Object.values(this.datapath.maps)) {
      if (m.type === 'array' || m.type === 'percpu_array' || m.type === 'array_of_maps' || m.type === 'devmap') {
        out.push({ name: m.name, entries: m.maxEntries, capacity: m.maxEntries });
      } else {
        out.push({ name: m.name, entries: m.keys().length, capacity: m.maxEntries });
      }
    }
    this.pressureCache = { at: Date.now(), value: out };
    return out;
  }

  state(): AgentStateView {
    const snap = this.store.snapshot();
    const desired = desiredFrontends(snap, { nodeName: this.config.nodeName, isOurService: this.isOurService });
    const view = this.sync?.current();
    const backendIds = new Map([...(view?.backends.values() ?? [])].map((b) => [`${b.address}|${b.port}`, b.id]));
    const frontends = desired.map((f) => ({
      id: view?.frontends.get(`${f.protocol}/${f.address}/${f.port}`)?.id ?? 0,
      service: f.service,
      kind: f.kind,
      address: f.address,
      port: f.port,
      protocol: f.protocol,
      backends: f.backends.map((b) => ({ id: backendIds.get(`${b.address}|${b.port}`) ?? 0, address: b.address, port: b.port, weight: b.weight, state: b.state, ...(b.nodeName ? { node: b.nodeName } : {}) })),
    }));
    const services = [...snap.services.values()].map((svc) => {
      const cond = svc.status.conditions.find((c) => c.type === IPAM_CONDITION);
      return {
        key: objectKey(svc.meta),
        type: svc.type,
        ...(svc.loadBalancerClass ? { loadBalancerClass: svc.loadBalancerClass } : {}),
        ingress: svc.status.ingress.map((i) => i.ip),
        externalIPs: svc.externalIPs,
        ports: svc.ports.map((p) => `${p.port}/${p.protocol}`),
        ...(cond ? { ipam: { status: cond.status, reason: cond.reason, message: cond.message } } : {}),
      };
    });
    const pools = [...snap.pools.values()].map((p) => {
      const st = this.poolStatuses.get(p.meta.name);
      return {
        name: p.meta.name,
        disabled: p.disabled,
        conflicting: st?.conflicting ?? false,
        ...(st?.conflicting ? { conflictReason: st.conditions.find((c) => c.status === 'True')?.message ?? '' } : {}),
        total: st?.total ?? '0',
        available: st?.available ?? '0',
        used: st?.used ?? '0',
        ...(p.meta.creationTimestamp ? { createdAt: p.meta.creationTimestamp } : {}),
      };
    });
    const held = this.announcer?.heldAddresses() ?? [];
    const l2 = [...this.l2Since.entries()].map(([key, since]) => {
      const [service, address] = key.split('|') as [string, string];
      return {
        service, address, since, local: true, holder: this.config.nodeName,
        interfaces: held.filter((h) => h.address === address).map((h) => h.interface),
        transitions: this.l2Transitions.get(key) ?? 0,
      };
    });
    const readiness = {
      source: { ok: this.store.synced, detail: this.store.synced ? `manifests ${this.config.manifests} loaded` : 'waiting for the first scan' },
      datapath: { ok: this.attachments.length === this.config.interfaces.length, detail: `XDP on ${this.attachments.map((a) => a.interface).join(',') || 'nothing'}` },
    };
    return {
      apiVersion: STATE_API_VERSION,
      node: this.config.nodeName,
      version: VERSION,
      source: 'manifests',
      startedAt: this.startedAt,
      ready: Object.values(readiness).every((r) => r.ok),
      readiness,
      datapath: { mode: this.config.mode, pinDir: this.config.pinDir, attachments: this.attachments, maps: this.mapPressure() },
      services, frontends, pools, l2,
      bgp: { peers: [], routes: [] },
      problems: this.problems,
      config: { ...this.config } as unknown as Record<string, unknown>,
    };
  }

  /**
   * Graceful stop: the source and HTTP endpoint stop; programs stay attached
   * and maps stay pinned, so traffic keeps flowing while the agent is away
   * (the next agent re-adopts them). The responder keeps answering until
   * the liveness stamp goes stale.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.reconcileTimer);
    await this.reconciling;
    clearInterval(this.heartbeat);
    await this.source?.stop();
    await this.http?.stop();
    this.datapath?.close();
    this.log.info('agent stopped; the data path keeps forwarding from pinned maps');
  }

  /** SIGHUP: re-read what can change without a restart. */
  reload(next: AgentConfig): void {
    const changed: string[] = [];
    for (const key of ['snatPorts', 'snatAddresses', 'logLevel'] as const) {
      if (JSON.stringify(this.config[key]) !== JSON.stringify(next[key])) changed.push(key);
    }
    Object.assign(this.config, { snatPorts: next.snatPorts, snatAddresses: next.snatAddresses });
    if (changed.includes('snatPorts') || changed.includes('snatAddresses')) this.configureNode();
    const restartOnly = (['manifests', 'interfaces', 'pinDir', 'http', 'mode', 'nodeName'] as const).filter((k) => JSON.stringify(this.config[k]) !== JSON.stringify(next[k]));
    this.log.info('configuration reloaded', { applied: changed.join(',') || 'nothing', needsRestart: restartOnly.join(',') || undefined });
    this.scheduleReconcile();
  }
}

export function splitHostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1))];
}
