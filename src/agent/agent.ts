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
import { mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from './config.js';
import type { Logger } from '../model/log.js';
import { localAddresses, readInterfaces } from './interfaces.js';
import type { AgentController } from '../store/controller.js';
import { ReconcileLoop } from './reconcile-loop.js';
import { LocalIpamController, type IpamView } from '../ipam/local-controller.js';
import { LocalL2Controller, type L2Counters } from '../l2/local-controller.js';
import type { ElectedL2Controller } from '../l2/elected-controller.js';
import type { ForeignAnswer } from '../l2/outage.js';
import { Store } from '../store/store.js';
import { IPAM_CONDITION } from '../ipam/allocator.js';
import { addon as loadAddon, type LivenessKeeper, type NativeAddon, type PacketSocket } from '../native/libbpf.js';
import { attachIngress, ingressHookOf, loadDatapathAsync, mapMemory, PINNED, type IngressBuilds, type LoadedDatapath } from '../datapath/loader.js';
import { DatapathSync } from '../datapath/sync.js';
import { DatapathController } from '../datapath/controller.js';
import { AttachmentWatch } from '../datapath/attach-watch.js';
import { parseSnatOverride, planSnat } from '../datapath/snat.js';
import { SolicitedNodeGroups } from '../l2/ndp-groups.js';
import { directoryProblem } from './directories.js';
import type { ServiceProgramStatus } from '../datapath/plan.js';
import { startSocketLb, stopSocketLb, type RunningSocketLb } from '../datapath/socket-lb.js';
import { decodeL2Foreign, decodeLiveness, decodeResponderKey, MAP, SIZE, u32Key } from '../datapath/abi.js';
import type { ConntrackView } from '../metrics/state-view.js';
import { buildAgentState } from '../metrics/agent-state.js';
import { conntrackPage } from '../datapath/conntrack-view.js';
import { bgpAgentPart, type BgpAgentPart } from '../bgp/agent-part.js';
import { registerBgpMetrics } from '../bgp/metrics.js';
import { NeighbourPrimer } from '../datapath/neighbours.js';
import { BackendRoleController } from '../datapath/backend-role.js';
import type { L2Sink } from '../l2/announcer.js';
import type { NodeInterface } from '../model/types.js';
import { ManifestsSource, formatProblem } from '../sources/manifests/source.js';
import type { KubeSource } from '../sources/kube/source.js';
import type { WriteRecord } from '../sinks/kube/writer.js';
import type { KubeConfig } from '@kubernetes/client-node';
import { HttpEndpoint } from '../metrics/server.js';
import { registry, configProblems, k8sApiWrites, manifestsRefused, xdpAttached } from '../metrics/registry.js';
import { registerDatapathMetrics, type DatapathLabels, type DatapathMetrics } from '../metrics/datapath.js';
import { startEventLoopMonitor, type EventLoopMonitor } from '../metrics/event-loop.js';
import { registerAgentMetrics, type L2OutageMetrics, type PoolCounts } from '../metrics/agent.js';
import { registerSocketLbMetrics } from '../metrics/socket-lb.js';
import { registerDecapMetrics } from '../metrics/dsr-backend.js';
import type { AgentStateView, ConfigProblemView } from '../metrics/state-view.js';
import { DATAPATH_CONDITION, type KubeDatapathReporter } from '../datapath/kube-reporter.js';
import { drainReason, type DrainReason } from '../model/drain.js';
import { isOurService, type ServiceScope } from '../model/scope.js';

export const VERSION = '0.1.0';
/** Manifests mode: how often the XDP responder's liveness stamp is refreshed (by a native thread). */
const HEARTBEAT_MS = 500;
/** How often JavaScript tells that thread it is alive, and how long it may stay silent before the stamp stops. */
const PET_MS = 250;
const LIVENESS_WATCHDOG_MS = 10_000;
/** Manifests mode: how long after a clean stop the responder keeps answering (a restart takes a few seconds). */
const STOP_GRACE_MS = 10_000;
const RECONCILE_DEBOUNCE_MS = 2;

export class AgentStartError extends Error {}

interface Attachment {
  interface: string;
  ifindex: number;
  mode: string;
  /** Why this mode (--xdp-mode auto chooses per interface). */
  reason: string;
}

function writeResource(kind: WriteRecord['kind']): string {
  return kind === 'Service' ? 'services' : kind === 'Lease' ? 'leases' : kind === 'Event' ? 'events' : 'loadbalancerippools';
}

export class Agent {
  readonly store = new Store();
  private addon?: NativeAddon;
  /** The data path: the XDP build, or the tc build (bpf/lib/ctx.h) when every interface takes tc ingress. */
  private datapath?: LoadedDatapath;
  /** The tc build beside the XDP one, when some interfaces take XDP and others tc ingress (same maps). */
  private datapathTc?: LoadedDatapath;
  private sync?: DatapathSync;
  private backendRole?: BackendRoleController;
  private datapathCtl?: DatapathController;
  private readonly attachments: Attachment[] = [];
  /** Checks every few seconds that the programs are still attached and the maps pinned (attach-watch.ts). */
  private attachWatch?: AttachmentWatch;
  private socketLb?: RunningSocketLb;
  private manifests?: ManifestsSource;
  private kube?: KubeSource;
  private datapathReporter?: KubeDatapathReporter;
  private readonly ndpGroups: SolicitedNodeGroups;
  private http?: HttpEndpoint;
  private ipam?: AgentController & IpamView;
  private l2?: LocalL2Controller | ElectedL2Controller;
  private bgp?: BgpAgentPart;
  /** Every controller, in reconcile order (IPAM first: the others read the addresses it assigns). */
  private readonly loop: ReconcileLoop;
  /** Some service went in or out of the data path since L2 last looked. */
  private programmedChanged = false;
  private readonly neighbours = new NeighbourPrimer((backend, message) => this.log.warn('backend next hop not primed', { backend, error: message }), {
    // DSR L2 dispatch reaches only backends on a segment of this node: the primer's routes say which are not.
    onOffLinkChange: () => this.datapathCtl?.offLinkBackendsChanged(this.neighbours.offLink()),
  });
  private interfaces: NodeInterface[] = [];
  private problems: ConfigProblemView[] = [];
  private heartbeat?: NodeJS.Timeout;
  private keeper?: LivenessKeeper;
  private datapathMetrics?: DatapathMetrics;
  private eventLoop?: EventLoopMonitor;
  private stopping = false;
  private readonly startedAt = new Date().toISOString();
  readonly counters: L2Counters = { gratuitousSent: { ipv4: 0, ipv6: 0 }, l2Errors: 0, leaseTransitions: 0 };

  constructor(readonly config: AgentConfig, private readonly log: Logger) {
    this.ndpGroups = new SolicitedNodeGroups(log.with({ controller: 'l2' }));
    this.loop = new ReconcileLoop({
      store: this.store,
      requireSynced: this.kubernetes,
      debounceMs: RECONCILE_DEBOUNCE_MS,
      // L2 announces only what is in the data path: a pass after programmed states moved.
      beforeTurn: (c) => {
        if (c === this.l2 && this.programmedChanged) {
          this.programmedChanged = false;
          this.l2.programmedChanged();
        }
      },
      onError: (c, err) => this.log.error(`${c.name} reconcile failed`, { controller: c.name, error: err.message }),
    });
  }

  private get kubernetes(): boolean {
    return !!(this.config.kubeconfig || this.config.inCluster);
  }

  /** Checks inputs, loads and attaches the data path, starts the HTTP endpoint and the source. Throws AgentStartError with a clear message. */
  async start(): Promise<void> {
    const cfg = this.config;
    let kc: KubeConfig | undefined;
    if (this.kubernetes) {
      // Loaded only here: the Kubernetes client costs seconds of start-up that manifests mode need not pay.
      const { kubeConfigFrom } = await import('../sources/kube/kubeconfig.js');
      try {
        kc = kubeConfigFrom(cfg.kubeconfig ? { kubeconfig: cfg.kubeconfig } : {});
      } catch (err) {
        throw new AgentStartError((err as Error).message);
      }
    } else if (!cfg.manifests || !existsSync(cfg.manifests)) throw new AgentStartError(`--manifests ${cfg.manifests}: directory not found`);
    for (const [flag, path] of [['--state-dir', cfg.stateDir], ['--pin-dir', cfg.pinDir]] as const) {
      const problem = directoryProblem(flag, path);
      if (problem) throw new AgentStartError(problem);
    }
    try {
      mkdirSync(cfg.stateDir, { recursive: true });
    } catch (err) {
      throw new AgentStartError(`--state-dir ${cfg.stateDir}: ${(err as Error).message}`);
    }

    // 1. Metrics and the read-only HTTP endpoint first: a taken port must fail the
    //    start before anything in the kernel is touched (/readyz says not ready until attached).
    this.datapathMetrics = registerDatapathMetrics({
      maps: () => this.datapath?.maps,
      labels: () => this.datapathLabels(),
      mapEntries: () => this.sync?.mapEntries() ?? new Map<string, number>(),
      livenessAgeSeconds: () => this.livenessAgeSeconds(),
      mapFull: () => this.sync?.mapFull ?? {},
    }, { perBackend: cfg.metricsPerBackend });
    this.eventLoop = startEventLoopMonitor();
    registerAgentMetrics(this);
    registerSocketLbMetrics(() => this.socketLb?.loaded.counters());
    registerDecapMetrics(() => this.backendRole?.loaded?.counters());
    registerBgpMetrics(registry, () => this.bgp?.speaker);
    const [host, port] = splitHostPort(cfg.http);
    this.http = new HttpEndpoint({
      host, port, registry, state: (query) => this.state(query), readiness: () => this.readiness(), documents: { '/v1/conntrack': (q) => this.conntrack(q) },
    });
    try {
      const bound = await this.http.start();
      // With port 0 the kernel picks one: say which.
      this.log.info('HTTP endpoint listening', { address: `${bound.host.includes(':') ? `[${bound.host}]` : bound.host}:${bound.port}` });
    } catch (err) {
      throw new AgentStartError((err as Error).message);
    }

    // 2. Data path: load (re-adopting pinned maps), attach to every interface.
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
    if (cfg.role === 'backend') return this.startBackendRole();
    // A restart in manifests mode: the previous agent's responder entries are pinned and still right;
    // keep them answered while this agent loads (verifying the programs takes seconds).
    if (!this.kubernetes) this.startEarlyLivenessKeeper(join(cfg.pinDir, MAP.liveness));
    // With leases, the responder must fall silent before another node may take over:
    // the stamp is the send time of the last node-lease renewal, its age limit below the lease.
    const livenessMaxMs = this.kubernetes
      ? Math.min(cfg.responderMaxAgeSeconds * 1000, cfg.l2NodeLeaseSeconds * 1000 - cfg.l2NodeRenewMs)
      : cfg.responderMaxAgeSeconds * 1000;
    try {
      const load = {
        addon: this.addon,
        pinDir: cfg.pinDir,
        sizes: { conntrack: cfg.conntrackSize, frontends: cfg.frontendMapSize, backends: cfg.backendMapSize, responder: cfg.responderMapSize },
        config: { hashSeed: cfg.hashSeed, livenessMaxMs, snat: true }, // DSR is per frontend (PH_FE_DSR); the rest is SNATed
      };
      // Only the builds the interfaces take: verifying one costs seconds (more on a busy node).
      const hooks = new Set(cfg.interfaces.map((name) => ingressHookOf(cfg.xdpMode, name)));
      this.datapath = await loadDatapathAsync({ ...load, hook: hooks.has('xdp') ? 'xdp' : 'tc' });
      // Both: the same maps (re-adopted from the pins the XDP build just made), the tc build's own tail-call array.
      if (hooks.size === 2) this.datapathTc = await loadDatapathAsync({ ...load, hook: 'tc' });
    } catch (err) {
      const msg = (err as Error).message;
      const hint = /EPERM|EACCES/.test(msg) ? ' (needs root or CAP_BPF + CAP_NET_ADMIN)' : '';
      throw new AgentStartError(`data path: ${msg}${hint}`);
    }
    const memory = mapMemory(this.datapath.maps);
    this.log.info(this.datapath.adopted ? 'data path loaded, pinned maps re-adopted (hitless restart)' : 'data path loaded, maps pinned', {
      pinDir: cfg.pinDir,
      // Charged to this process's memory cgroup (a DaemonSet's limit must leave room for it); per-CPU maps grow with the CPUs.
      kernelMemoryMiB: Math.round(memory.reduce((n, m) => n + m.bytes, 0) / 2 ** 20),
      largest: memory.slice(0, 4).map((m) => `${m.map} ${Math.round(m.bytes / 2 ** 20)} MiB`).join(', '),
      possibleCpus: this.addon.possibleCpus(),
    });
    this.sync = new DatapathSync(this.addon, this.datapath.maps, {
      maglev: { max: cfg.maglevMaxTableSize, ...(cfg.maglevTableSize ? { fixed: cfg.maglevTableSize } : {}) },
    });
    await this.sync.readStateAsync();
    this.datapathCtl = new DatapathController({
      sync: this.sync,
      nodeName: cfg.nodeName,
      isOurService: this.isOurService,
      forwardingMode: cfg.mode,
      nodeAddresses: () => this.interfaces.flatMap((i) => i.addresses),
      localAddresses,
      onStatus: (service, status) => this.onProgramStatus(service, status),
      onBackends: (addresses) => {
        this.neighbours.sync(addresses).catch((err: unknown) => this.log.warn('backend next hops not primed', { error: (err as Error).message }));
      },
      onBackendChanges: (added, removed) => {
        this.neighbours.change(added, removed).catch((err: unknown) => this.log.warn('backend next hops not primed', { error: (err as Error).message }));
      },
      requestPass: () => this.loop.poke(this.datapathCtl!),
      log: this.log.with({ controller: 'datapath' }),
    });
    this.interfaces = readInterfaces(cfg.interfaces);
    this.configureNode();
    if (!this.kubernetes) this.sync.touchLiveness();
    for (const name of cfg.interfaces) {
      const { ifindex, mode, reason } = attachIngress(this.ingressBuilds(), name, { mode: cfg.xdpMode, procSysNet: cfg.procSysNet });
      this.datapath.attachTcEgress(name);
      this.attachments.push({ interface: name, ifindex, mode, reason });
      xdpAttached.set({ interface: name, mode }, 1);
      this.log.info(mode === 'tc' ? 'data path attached at tc ingress' : 'XDP attached', { interface: name, ifindex, mode, reason });
    }
    this.startSocketLb();
    if (!this.kubernetes) this.startLivenessKeeper();
    this.startAttachWatch();

    // 3. Controllers, then the source.
    const sink: L2Sink = {
      addResponder: (address, i) => {
        this.sync!.setResponder(address, i.ifindex, i.mac);
        // A physical NIC passes the solicitations for it only once the node joins its solicited-node group.
        this.ndpGroups.add(address, i.name);
      },
      removeResponder: (address, i) => {
        this.sync!.deleteResponder(address, i.ifindex);
        this.ndpGroups.remove(address, i.name);
      },
      sendFrame: (i, frame) => void this.sendFrames(i.ifindex, [frame]),
      sendFrames: (i, frames) => this.sendFrames(i.ifindex, frames),
    };
    const l2Common = {
      nodeName: cfg.nodeName, interfaceNames: cfg.interfaces, sink, isOurService: this.isOurService, counters: this.counters, log: this.log,
      interfaceReader: readInterfaces,
      // Announced only once every frontend is in the data path (a service it has not seen yet is not).
      isProgrammed: (service: string) => this.datapathWhole() && (this.datapathCtl?.isProgrammed(service) ?? false),
      announcer: { framesPerSecond: cfg.l2AnnounceRate },
    };
    this.loop.start();
    if (kc) {
      await this.startKubernetes(kc, l2Common);
    } else {
      this.ipam = new LocalIpamController(this.store, { stateDir: cfg.stateDir, nodeName: cfg.nodeName, pharosIsDefaultClass: cfg.defaultLoadBalancerClass, log: this.log });
      this.l2 = new LocalL2Controller(l2Common);
      for (const c of [this.ipam, this.datapathCtl!, this.l2]) this.loop.add(c);
      await this.startManifests();
    }
    // BGP: a speaker with no peers does nothing, so it is always part of the agent.
    const routerId = this.interfaces.flatMap((i) => i.addresses).find((a) => !a.includes(':')) ?? '0.0.0.1';
    this.bgp = bgpAgentPart({
      store: this.store, sockets: this.addon, nodeName: cfg.nodeName, routerId,
      restarting: this.datapath.adopted, shutdown: cfg.bgpShutdown, log: this.log,
      isOurService: this.isOurService, isProgrammed: (service) => this.datapathWhole() && (this.datapathCtl?.isProgrammed(service) ?? true),
      ...(this.kubernetes ? { secretNamespace: cfg.namespace } : {}),
      drainWithdrawMs: cfg.bgpDrainWithdrawSeconds * 1000,
    });
    this.loop.add(this.bgp);
    this.loop.schedule(0);
  }

  /** --role backend (manifests mode): only DSR's decapsulation and the VIPs this host serves (src/datapath/backend-role.ts). */
  private async startBackendRole(): Promise<void> {
    const cfg = this.config;
    if (this.kubernetes) throw new AgentStartError('--role backend: manifests mode only (in Kubernetes every node will decapsulate)');
    this.backendRole = new BackendRoleController({
      addon: this.addon!, pinDir: cfg.pinDir, interfaces: cfg.interfaces, nodeName: cfg.nodeName, procSysNet: cfg.procSysNet, stateDir: cfg.stateDir,
      maglev: { max: cfg.maglevMaxTableSize, ...(cfg.maglevTableSize ? { fixed: cfg.maglevTableSize } : {}) }, hashSeed: cfg.hashSeed,
      handoffMs: cfg.dsrHandoffSeconds * 1000, isOurService: this.isOurService, log: this.log.with({ controller: 'dsr-backend' }),
    });
    try {
      for (const a of this.backendRole.start()) this.attachments.push({ ...a, mode: 'tc', reason: '--role backend: DSR decapsulation at tc ingress' });
    } catch (err) {
      throw new AgentStartError(`DSR backend: ${(err as Error).message}`);
    }
    this.log.info('DSR backend: decapsulation attached', { interfaces: cfg.interfaces.join(',') });
    this.ipam = new LocalIpamController(this.store, { stateDir: cfg.stateDir, nodeName: cfg.nodeName, pharosIsDefaultClass: cfg.defaultLoadBalancerClass, log: this.log });
    for (const c of [this.ipam, this.backendRole]) this.loop.add(c);
    this.loop.start();
    await this.startManifests();
    this.loop.schedule(0);
  }

  private async startManifests(): Promise<void> {
    const cfg = this.config;
    this.manifests = new ManifestsSource({
      directory: cfg.manifests!, stateDir: cfg.stateDir, store: this.store,
      maxFileBytes: cfg.manifestsMaxFileBytes, maxTotalBytes: cfg.manifestsMaxBytes,
    });
    this.manifests.on('refused', (r) => {
      manifestsRefused.inc({ reason: r.reason });
      this.log.error('manifest file refused unread; its last good version stays in force', { file: r.file, reason: r.reason, bytes: r.bytes, limit: r.limit });
    });
    this.manifests.on('report', (report) => {
      this.problems = [...report.errors, ...report.warnings].map((p) => ({
        source: 'manifests',
        object: p.kind ? `${p.kind} ${p.namespace ? `${p.namespace}/` : ''}${p.name ?? ''}`.trim() : p.file,
        ...(p.field ? { field: p.field } : {}),
        message: formatProblem(p),
        at: new Date().toISOString(),
      }));
      configProblems.set({ source: 'manifests' }, report.errors.length);
    });
    this.manifests.on('error', (p) => this.log.error('manifest rejected; the last good version stays in force', { problem: formatProblem(p) }));
    const report = await this.manifests.start();
    this.log.info('manifests loaded', { directory: cfg.manifests, files: report.files, objects: report.objects, errors: report.errors.length });
  }

  private async startKubernetes(kc: KubeConfig, l2Common: ConstructorParameters<typeof LocalL2Controller>[0]): Promise<void> {
    const cfg = this.config;
    const [{ KubeWriter }, { KubeSource }, { KubeIpamController }, { ElectedL2Controller }, { KubeDatapathReporter }] = await Promise.all([
      import('../sinks/kube/writer.js'), import('../sources/kube/source.js'), import('../ipam/kube-controller.js'), import('../l2/elected-controller.js'), import('../datapath/kube-reporter.js'),
    ]);
    const onWrite = (w: WriteRecord): void => k8sApiWrites.inc({ resource: writeResource(w.kind), verb: w.verb });
    const writer = new KubeWriter({ kc, namespace: cfg.namespace, qps: cfg.k8sQps, burst: cfg.k8sBurst, onWrite });
    // Service leases have a bucket of their own: on the IPAM leader a burst of status writes (one
    // per service) would otherwise hold its lease acquisitions back past the grace period, and the
    // other nodes would take its share (seen as 50/67/83 of 200 services instead of ~67 each).
    const leaseWriter = new KubeWriter({ kc, namespace: cfg.namespace, qps: cfg.k8sQps, burst: cfg.k8sBurst, onWrite });
    // The node lease has a bucket of its own: a burst of service-lease writes must never delay it past its deadline.
    const nodeWriter = new KubeWriter({
      kc, namespace: cfg.namespace, qps: Math.max(2, 2000 / cfg.l2NodeRenewMs), burst: 4, timeoutMs: cfg.l2NodeLeaseSeconds * 1000, onWrite,
    });
    // What this node cannot carry goes on the Service (condition entry + event), within the status writer's budget.
    this.datapathReporter = new KubeDatapathReporter({ writer, store: this.store, node: cfg.nodeName, log: this.log.with({ controller: 'datapath' }) });
    const requestReconcile = (): void => this.loop.markDirty(this.ipam!);
    const ipam = new KubeIpamController(this.store, {
      writer, nodeName: cfg.nodeName, pharosIsDefaultClass: cfg.defaultLoadBalancerClass,
      leaseMs: cfg.l2ServiceLeaseSeconds * 1000, renewDeadlineMs: cfg.l2ServiceRenewSeconds * 2000, retryMs: cfg.l2ServiceRetrySeconds * 1000,
      log: this.log.with({ controller: 'ipam' }), requestReconcile,
    });
    const l2 = new ElectedL2Controller({
      ...l2Common,
      namespace: cfg.namespace,
      writer: leaseWriter,
      nodeWriter,
      nodeLeaseMs: cfg.l2NodeLeaseSeconds * 1000,
      nodeRenewMs: cfg.l2NodeRenewMs,
      serviceLeaseMs: cfg.l2ServiceLeaseSeconds * 1000,
      retryMs: cfg.l2ServiceRetrySeconds * 1000,
      store: this.store,
      datapathReady: () => this.datapathAttached(),
      onNodeRenewed: (sentAtNs) => this.stampLiveness(sentAtNs),
      peerPort: cfg.l2PeerPort,
      // A peer declared dead must have stopped answering: longer than its responder's liveness limit.
      peerTimeoutMs: Math.max(1000, cfg.l2NodeLeaseSeconds * 1000 - cfg.l2NodeRenewMs + 250),
      readForeign: () => this.readForeignAnswers(),
      stampLiveness: () => this.stampLiveness(process.hrtime.bigint()),
    });
    this.ipam = ipam;
    this.l2 = l2;
    for (const c of [ipam, this.datapathCtl!, l2]) this.loop.add(c);
    // Secrets of the agent's namespace: BGP neighbours' authSecretRef (MD5 passwords) resolve from them.
    this.kube = new KubeSource({ kc, store: this.store, namespace: cfg.namespace, secrets: true, tuning: { maxBackoffMs: 5000 } });
    const rejected = new Map<string, ConfigProblemView>();
    this.kube.on('parseError', (f) => {
      rejected.set(`${f.kind} ${f.key}`, { source: 'kubernetes', object: `${f.kind} ${f.key}`, message: f.message, at: new Date().toISOString() });
      this.problems = [...rejected.values()];
      configProblems.set({ source: 'kubernetes' }, rejected.size);
      this.log.error('object rejected; the last good version stays in force', { object: `${f.kind} ${f.key}`, problem: f.message });
    });
    this.kube.on('warning', (msg) => this.log.warn(msg));
    let failures = 0;
    this.kube.on('failure', ({ kind, error, retryInMs }) => {
      const forbidden = (error as { statusCode?: number }).statusCode === 403;
      if (failures++ % 20 === 0) {
        this.log.warn(forbidden ? 'Kubernetes API refused a read (403): the RBAC does not grant it (see deploy/kubernetes/rbac.yaml); serving from the last known state'
          : 'Kubernetes API unreachable; serving from the last known state', { kind, error: error.message, retryInMs });
      }
    });
    // The loop gives every controller a full pass once the informers have listed.
    this.store.on('synced', () => this.log.info('informers synced', { namespace: cfg.namespace }));
    ipam.start();
    l2.start();
    await this.kube.start();
  }

  /**
   * Node-local access (--socket-lb): load the socket programs over the XDP
   * object's pinned maps and attach them to the cgroup (swapping the
   * programs of links a previous agent left, with no gap). Off: remove any
   * links a previous agent left. An explicit cgroup that cannot be used
   * fails the start; with the default, a host without cgroup v2 or a
   * kernel that refuses the programs only logs, and an agent outside the
   * host's network namespace does not attach.
   */
  /** Node-local access (cgroup socket hooks), when configured; datapath/socket-lb.ts decides and attaches. */
  private startSocketLb(): void {
    const cfg = this.config;
    try {
      this.socketLb = startSocketLb({
        addon: this.addon!, datapath: this.datapath!, pinDir: cfg.pinDir, enabled: cfg.socketLb, cgroup: cfg.socketLbCgroup, allNamespaces: cfg.socketLbAllNamespaces, log: this.log,
      });
    } catch (err) {
      throw new AgentStartError((err as Error).message);
    }
  }

  private stopSocketLb(): void {
    if (this.socketLb) stopSocketLb(this.socketLb, this.log);
    this.socketLb = undefined;
  }

  /**
   * Gratuitous ARP/NA out of one kept packet socket per interface (a socket
   * per frame costs an RCU grace period, ~13 ms, on close). A socket whose
   * interface went away or down is reopened once.
   */
  private sendFrames(ifindex: number, frames: Buffer[]): number {
    for (let attempt = 0; ; attempt++) {
      let sock = this.packetSockets.get(ifindex);
      if (!sock) this.packetSockets.set(ifindex, (sock = this.addon!.packetSocket(ifindex)));
      try {
        return sock.sendMany(frames);
      } catch (err) {
        sock.close();
        this.packetSockets.delete(ifindex);
        const code = (err as { code?: string }).code;
        if (attempt > 0 || (code !== 'ENXIO' && code !== 'ENETDOWN' && code !== 'ENODEV')) throw err;
      }
    }
  }

  private readonly packetSockets = new Map<number, PacketSocket>();

  private datapathAttached(): boolean {
    return (!!this.datapath || !!this.backendRole?.loaded) && this.attachments.length === this.config.interfaces.length && this.datapathWhole();
  }

  /** False while a check found the programs gone and could not put them back (attach-watch.ts). */
  private datapathWhole(): boolean {
    return this.attachWatch?.whole ?? true;
  }

  /**
   * The data path checks itself (src/datapath/attach-watch.ts): programs
   * found gone are attached again as at start; while it cannot be made
   * whole, nothing draws traffic here: BGP withdraws (and L2 stops
   * announcing, and in Kubernetes mode competes for no lease) every
   * service, through the same `isProgrammed` they already read, and
   * /readyz says why.
   */
  private ingressBuilds(): IngressBuilds {
    const dp = this.datapath!;
    const tc = dp.hook === 'tc' ? dp : this.datapathTc;
    return { ...(dp.hook === 'xdp' ? { xdp: dp } : {}), ...(tc ? { tc } : {}) };
  }

  private startAttachWatch(): void {
    const dp = this.datapath!;
    this.attachWatch = new AttachmentWatch({
      addon: this.addon!,
      programs: (() => {
        const b = this.ingressBuilds();
        return { xdp: b.xdp?.xdp.id ?? 0, tcEgress: dp.tcEgress.id, ...(b.tc ? { tcIngress: b.tc.xdp.id } : {}) };
      })(),
      attachments: this.attachments,
      attachXdp: (name) => attachIngress(this.ingressBuilds(), name, { mode: this.config.xdpMode, procSysNet: this.config.procSysNet }),
      attachTcEgress: (name) => void dp.attachTcEgress(name),
      pins: PINNED.map((role) => ({ path: join(this.config.pinDir, MAP[role]), map: dp.maps[role] })),
      log: this.log.with({ controller: 'datapath' }),
      onChange: () => {
        this.programmedChanged = true;
        if (this.bgp) this.loop.markDirty(this.bgp);
        this.loop.schedule();
      },
    });
    this.attachWatch.start();
  }

  private stampLiveness(sentAtNs: bigint): void {
    try {
      this.sync?.touchLiveness(sentAtNs);
    } catch (err) {
      this.log.error('liveness refresh failed: the XDP responder will fall silent', { error: (err as Error).message });
    }
  }

  /** Another MAC's answers for our addresses (bpf/lib/l2_foreign.h), summed per address over interfaces. */
  private readForeignAnswers(): ForeignAnswer[] {
    const map = this.datapath?.maps.l2Foreign;
    if (!map) return [];
    const now = process.hrtime.bigint();
    const byAddress = new Map<string, ForeignAnswer & { lastNs: bigint }>();
    for (const key of map.keys()) {
      const value = map.lookup(key);
      if (!value) continue;
      const { address } = decodeResponderKey(key);
      const f = decodeL2Foreign(value);
      const prev = byAddress.get(address);
      const count = Number(f.count) + (prev?.count ?? 0);
      if (prev && prev.lastNs >= f.lastNs) prev.count = count;
      else byAddress.set(address, { address, count, lastNs: f.lastNs, ageMs: Math.max(0, Number(now - f.lastNs) / 1e6), mac: f.mac });
    }
    return [...byAddress.values()];
  }

  /** Add a controller (e.g. BGP) before start(); it runs after the built-in ones. */
  addController(c: AgentController): void {
    this.loop.add(c);
  }

  /**
   * SNAT sources (src/datapath/snat.ts): each interface's own address per
   * family, as MASQUERADE picks it, unless --snat-addresses says otherwise;
   * node-wide, the first address of the interfaces (for egress elsewhere).
   */
  private configureNode(): void {
    const cfg = this.config;
    const plan = planSnat(cfg.snatAddresses.map(parseSnatOverride), this.interfaces);
    this.sync!.setNodeConfig({ ...(plan.nodeV4 ? { snatV4: plan.nodeV4 } : {}), ...(plan.nodeV6 ? { snatV6: plan.nodeV6 } : {}), portMin: cfg.snatPorts[0], portMax: cfg.snatPorts[1] });
    this.sync!.setInterfaceSnat(plan.interfaces);
    const byInterface = this.interfaces.map((i) => {
      const a = plan.interfaces.get(i.ifindex);
      return `${i.name}=${[a?.v4, a?.v6].filter(Boolean).join('/') || 'node-wide'}`;
    }).join(' ');
    this.log.info('node configured', { snatV4: plan.nodeV4 ?? 'none', snatV6: plan.nodeV6 ?? 'none', snatByInterface: byInterface, ports: `${cfg.snatPorts[0]}-${cfg.snatPorts[1]}` });
    if (cfg.mode === 'snat' && !plan.nodeV4 && !plan.nodeV6) {
      this.log.warn('no SNAT source address: the interfaces have no global address and --snat-addresses gives none; new flows to remote backends are dropped (snat_exhausted)', { interfaces: cfg.interfaces.join(',') });
    }
    if (cfg.snatPorts[0] < 1024) {
      this.log.warn('--snat-ports reaches into the privileged ports (below 1024): backends may treat those sources as trusted, and the node\'s own services may use them', { ports: `${cfg.snatPorts[0]}-${cfg.snatPorts[1]}` });
    }
  }

  /**
   * Manifests mode: the stamp is refreshed by a native thread (liveness.cc),
   * so a long JavaScript task cannot silence every address; it keeps going
   * only while the event loop pets it within LIVENESS_WATCHDOG_MS, so a
   * wedged agent still falls silent. (Kubernetes mode stamps with each node
   * lease renewal instead: answering must stop before others may take over.)
   */
  private startLivenessKeeper(): void {
    if (this.keeper) return; // started early on the pinned map: the same map
    try {
      this.keeper = this.addon!.livenessKeeper(this.datapath!.maps.liveness.fd, HEARTBEAT_MS, LIVENESS_WATCHDOG_MS);
      this.heartbeat = setInterval(() => this.keeper?.pet(), PET_MS);
    } catch (err) {
      this.log.warn('native liveness thread not started; the event loop refreshes the stamp', { error: (err as Error).message });
      this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    }
  }

  /** The keeper on a pinned ph_liveness left by a previous agent, before this one has loaded anything. */
  private startEarlyLivenessKeeper(path: string): void {
    if (!existsSync(path)) return;
    try {
      const map = this.addon!.openPinnedMap(path);
      try {
        if (map.type !== 'array' || map.valueSize !== SIZE.liveness) return;
        this.keeper = this.addon!.livenessKeeper(map.fd, HEARTBEAT_MS, LIVENESS_WATCHDOG_MS);
        this.heartbeat = setInterval(() => this.keeper?.pet(), PET_MS);
      } finally {
        map.close(); // the keeper works on its own duplicate of the fd
      }
    } catch (err) {
      this.log.warn('could not refresh the pinned liveness stamp early', { error: (err as Error).message });
    }
  }

  /** Age of the responder's liveness stamp, seconds (undefined before the first). */
  livenessAgeSeconds(): number | undefined {
    const v = this.datapath?.maps.liveness.lookup(u32Key(0));
    const stamp = v ? decodeLiveness(v) : 0n;
    if (!stamp) return undefined;
    return Number(process.hrtime.bigint() - stamp) / 1e9;
  }

  private beat(): void {
    try {
      this.sync?.touchLiveness();
    } catch (err) {
      this.log.error('liveness refresh failed: the XDP responder will fall silent', { error: (err as Error).message });
    }
  }

  // ---- cheap counts for /metrics (registerAgentMetrics): no state document is built per scrape

  *pools(): Iterable<PoolCounts> {
    for (const [name, st] of this.ipam?.poolStatuses() ?? []) yield { name, conflicting: st.conflicting, families: st.families };
  }

  *unsatisfiedReasons(): Iterable<string> {
    for (const svc of this.store.snapshot().services.values()) {
      const cond = svc.status.conditions.find((c) => c.type === IPAM_CONDITION);
      if (cond && cond.status !== 'True') yield cond.reason;
    }
  }

  *notProgrammedReasons(): Iterable<string> {
    for (const st of this.datapathCtl?.notProgrammed().values() ?? []) yield st.problems.find((p) => p.blocking)?.reason ?? 'NotProgrammed';
  }

  mapMemory(): Array<{ map: string; bytes: number }> {
    if (!this.datapath) return [];
    return [...mapMemory(this.datapath.maps), ...(this.sync ? [{ map: 'ph_maglev tables', bytes: this.sync.tableMemory() }] : [])];
  }

  /** Kubernetes mode: the L2 outage guard's state, for metrics. */
  l2Outage(): L2OutageMetrics | undefined {
    if (!this.l2 || !('outage' in this.l2)) return undefined;
    const o = this.l2.outage;
    const fenced = new Map<string, number>();
    for (const f of o.fences.values()) fenced.set(f.reason.kind, (fenced.get(f.reason.kind) ?? 0) + 1);
    return {
      apiReachable: o.apiReachable, fenced, fencesTotal: o.counts.fences, duplicates: o.counts.duplicates,
      takeovers: o.counts.takeovers, livePeers: o.livePeers().length, unconfirmed: o.unconfirmed,
    };
  }

  /** Kubernetes mode: announced addresses no live node holds (pharos_l2_addresses_without_holder). */
  l2AddressesWithoutHolder(): Readonly<Record<string, number>> | undefined {
    return this.l2 && 'addressesWithoutHolder' in this.l2 ? this.l2.addressesWithoutHolder() : undefined;
  }

  drainReason(): DrainReason | undefined {
    return this.store.synced ? drainReason(this.store.snapshot().nodes.get(this.config.nodeName)) : undefined;
  }

  l2Counts(): { held: number; refused: number; awaitingFirst: number } {
    const c = this.l2?.announcementCounts();
    return { held: c?.held ?? 0, refused: c?.refused ?? 0, awaitingFirst: c?.awaitingFirst ?? 0 };
  }

  /** Asks for a pass of every controller whose inputs changed (the loop debounces). */
  scheduleReconcile(delay?: number): void {
    this.loop.schedule(delay);
  }

  private isOurService: ServiceScope = (svc) => isOurService(svc, this.config.defaultLoadBalancerClass);

  /**
   * A service's frontends went in or out of the data path. In manifests mode
   * the condition is laid over the service's status (pharos is its only
   * writer); a service that is not fully programmed is not announced (L2)
   * nor advertised (BGP), which read the data-path controller directly.
   */
  private onProgramStatus(service: string, status: ServiceProgramStatus | undefined): void {
    const blocking = status?.problems.filter((p) => p.blocking) ?? [];
    const programmed = !status || status.programmed >= status.frontends;
    // Announcing (L2) and advertising (BGP) follow the programmed state: give them a pass.
    this.programmedChanged = true;
    if (this.bgp) this.loop.markDirty(this.bgp);
    if (!programmed) {
      this.log.warn('service not fully in the data path: not announced', {
        service, frontends: status!.frontends, programmed: status!.programmed, reason: blocking[0]?.reason, problem: blocking[0]?.message,
      });
    }
    // The same words in both modes: reason and count, then the first problems.
    const problem = programmed ? undefined : {
      reason: blocking[0]?.reason ?? 'NotProgrammed',
      message: `${status!.frontends - status!.programmed} of ${status!.frontends} frontends not in the data path: ${blocking.map((p) => p.message).slice(0, 3).join('; ')}`,
    };
    if (this.kubernetes) {
      this.datapathReporter?.set(service, problem);
      return;
    }
    const svc = this.store.get('Service', service);
    if (!svc) return;
    const had = svc.status.conditions.find((c) => c.type === DATAPATH_CONDITION);
    // Written once a service fails; before that, no condition means programmed (10,000 status writes for nothing otherwise).
    if (programmed && !had) return;
    const condition = problem
      ? { type: DATAPATH_CONDITION, status: 'False' as const, ...problem }
      : { type: DATAPATH_CONDITION, status: 'True' as const, reason: 'Programmed', message: `all ${status?.frontends ?? 0} frontends are in the data path` };
    if (had && had.status === condition.status && had.reason === condition.reason && had.message === condition.message) return;
    const at = had && had.status === condition.status ? had.lastTransitionTime : new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    this.store.setServiceStatus(service, {
      ...svc.status,
      conditions: [...svc.status.conditions.filter((c) => c.type !== DATAPATH_CONDITION), { ...condition, ...(at ? { lastTransitionTime: at } : {}) }],
    });
  }

  /** Metric labels by id: the data path's programmed frontends (with their service) and backends. */
  private datapathLabels(): DatapathLabels {
    return this.datapathCtl?.labelTable() ?? { version: 0, frontends: new Map(), backends: new Map() };
  }

  /** One page of conntrack entries for `pharos bpf ct list` (datapath/conntrack-view.ts). */
  conntrack(query: URLSearchParams): ConntrackView {
    const maps = this.datapath?.maps;
    if (!maps) return { entries: [], truncated: false, total: 0 };
    const total = this.datapathMetrics?.mapRows().find((r) => r.name === MAP.conntrack)?.entries ?? 0;
    return conntrackPage(maps.conntrack, query, total, () => this.sync?.backends.values() ?? []);
  }

  /** `; watching ...; waiting for the CRDs of ...` (what `pharos status` shows of the source). */
  private kubeKinds(): string {
    const k = this.kube?.kinds();
    if (!k) return '';
    return `; watching ${k.watching.join(', ')}${k.waiting.length ? `; waiting for the CRDs of ${k.waiting.join(', ')} (picked up when installed)` : ''}`;
  }

  /** What /readyz reports (cheap: no walk over services). */
  readiness(): Pick<AgentStateView, 'ready' | 'readiness'> {
    const readiness = {
      source: this.kubernetes
        ? { ok: this.store.synced, detail: `${this.store.synced ? `informers synced (namespace ${this.config.namespace})` : 'waiting for the informers to list'}${this.kubeKinds()}` }
        : { ok: this.store.synced, detail: this.store.synced ? `manifests ${this.config.manifests} loaded` : 'waiting for the first scan' },
      datapath: { ok: this.datapathAttached(), detail: this.datapathDetail() },
      ...(this.l2 && 'outage' in this.l2 && this.store.synced ? { api: this.apiReadiness(this.l2) } : {}),
    };
    return { ready: Object.values(readiness).every((r) => r.ok), readiness };
  }

  /** The API as the L2 election sees it (node-lease renewals): unreachable within a node lease (~0.75 s by default). */
  private apiReadiness(l2: ElectedL2Controller): { ok: boolean; detail: string } {
    const o = l2.outage;
    const fenced = o.fences.size ? `; ${o.fences.size} L2 addresses fenced (pharos l2 list)` : '';
    if (o.apiReachable) return { ok: true, detail: `Kubernetes API reachable (node lease renewed)${fenced}` };
    const peers = o.livePeers();
    return {
      ok: false,
      detail: `Kubernetes API unreachable since ${o.apiUnreachableSince ?? '?'}: serving from the last known state; ` +
        `${o.unconfirmed} L2 addresses answered without the API, ${peers.length} peers heard${peers.length ? ` (${peers.join(', ')})` : ''}${fenced}`,
    };
  }

  private datapathDetail(): string {
    const health = this.attachWatch?.health();
    if (health && !health.whole) {
      return `broken since ${health.brokenSince ?? '?'}, not drawing traffic (BGP routes withdrawn, L2 not announced): ${health.interfaces.filter((i) => !i.ok).map((i) => i.problem).join('; ')}`;
    }
    const on = this.attachments.map((a) => `${a.interface} (${a.mode})`).join(', ') || 'nothing';
    return health?.checkedAt ? `XDP on ${on}; checked every ${health.intervalMs / 1000} s, last ${health.checkedAt}` : `XDP on ${on}`;
  }

  /** GET /v1/state (metrics/agent-state.ts assembles it from this agent's parts). Throws StateQueryError on a bad query. */
  state(query: URLSearchParams = new URLSearchParams()): AgentStateView {
    return buildAgentState({
      node: this.config.nodeName, version: VERSION, source: this.kubernetes ? 'kubernetes' : 'manifests', startedAt: this.startedAt,
      config: this.config, snapshot: () => this.store.snapshot(), readiness: () => this.readiness(),
      sync: this.sync, datapathCtl: this.datapathCtl, ipam: this.ipam, l2: this.l2, bgp: this.bgp,
      attachments: this.attachments, mapRows: () => this.datapathMetrics?.mapRows() ?? [], attachWatch: this.attachWatch, socketLb: this.socketLb,
      drain: this.drainReason(), problems: this.problems, kubeRefused: [...this.kube?.refused.values() ?? []],
    }, query);
  }

  /**
   * Graceful stop: controllers stop (in Kubernetes mode every lease is handed
   * over at once, announcements withdrawn first), the source and HTTP
   * endpoint stop; programs stay attached and maps stay pinned, so traffic
   * keeps flowing while the agent is away (the next agent re-adopts them).
   * In manifests mode the responder keeps answering until the liveness
   * stamp goes stale.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const passesStopped = this.loop.stop();
    await this.attachWatch?.stop();
    await passesStopped;
    clearInterval(this.heartbeat);
    this.keeper?.stop();
    if (!this.kubernetes) {
      // Manifests mode: answer a while longer, so a restart (stop, load, attach) leaves no gap; a stamp
      // in the future counts as fresh until it is --responder-max-age old (responder.h).
      try {
        this.sync?.touchLiveness(process.hrtime.bigint() + BigInt(STOP_GRACE_MS) * 1_000_000n);
      } catch {
        // The maps may be gone already; the stamp then ages out as it would.
      }
    }
    await Promise.all([...this.loop.controllers].reverse().map(async (c) => {
      try {
        await c.stop();
      } catch (err) {
        this.log.warn(`${c.name} stop failed`, { error: (err as Error).message });
      }
    }));
    await this.manifests?.stop();
    this.datapathReporter?.stop();
    this.ndpGroups.stop();
    await this.kube?.stop();
    await this.http?.stop();
    this.eventLoop?.stop();
    this.stopSocketLb();
    for (const sock of this.packetSockets.values()) sock.close();
    this.packetSockets.clear();
    const loaded = !!this.datapath;
    this.datapath?.close();
    this.datapathTc?.close();
    this.log.info(loaded ? 'agent stopped; the data path keeps forwarding from pinned maps' : 'agent stopped (no data path was loaded)');
  }

  /** SIGHUP: re-read what can change without a restart. */
  reload(next: AgentConfig): void {
    const changed: string[] = [];
    for (const key of ['snatPorts', 'snatAddresses', 'logLevel'] as const) {
      if (JSON.stringify(this.config[key]) !== JSON.stringify(next[key])) changed.push(key);
    }
    // The logger reads logLevel from this config object at every line (cli/agent.ts).
    Object.assign(this.config, { snatPorts: next.snatPorts, snatAddresses: next.snatAddresses, logLevel: next.logLevel });
    if (changed.includes('snatPorts') || changed.includes('snatAddresses')) this.configureNode();
    const restartOnly = (['manifests', 'kubeconfig', 'namespace', 'interfaces', 'pinDir', 'http', 'mode', 'role', 'dsrHandoffSeconds', 'nodeName', 'socketLb', 'socketLbCgroup', 'socketLbAllNamespaces'] as const).filter((k) => JSON.stringify(this.config[k]) !== JSON.stringify(next[k]));
    this.log.info('configuration reloaded', { applied: changed.join(',') || 'nothing', needsRestart: restartOnly.join(',') || undefined });
    this.scheduleReconcile();
  }
}

export function splitHostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1))];
}
