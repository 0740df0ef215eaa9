/**
 * GET /v1/state, assembled from the agent's parts: the sections asked for
 * (all by default), list sections in pages of `limit` (state-view.ts
 * parseStateQuery), and a summary that holds at any scale. The agent hands
 * over what it has (`AgentStateSources`); nothing here changes state.
 */
import type { AgentConfig } from '../agent/config.js';
import type { DatapathController } from '../datapath/controller.js';
import type { DatapathSync } from '../datapath/sync.js';
import type { RunningSocketLb } from '../datapath/socket-lb.js';
import type { AttachmentWatch } from '../datapath/attach-watch.js';
import { frontendKeyString } from '../datapath/plan.js';
import type { IpamView } from '../ipam/local-controller.js';
import { IPAM_CONDITION } from '../ipam/allocator.js';
import type { PoolStatus } from '../ipam/pool-status.js';
import { describeFence, type OutageGuard } from '../l2/outage.js';
import type { L2Announcer } from '../l2/announcer.js';
import type { BgpAgentPart } from '../bgp/agent-part.js';
import { tryParseAddress } from '../model/cidr.js';
import { describeDrain, type DrainReason } from '../model/drain.js';
import type { Snapshot } from '../store/store.js';
import {
  MAX_NOT_PROGRAMMED, pageOf, parseStateQuery, serviceDetail, STATE_API_VERSION,
  type AgentStateView, type ConfigProblemView, type FrontendView, type L2View, type PoolView, type ServiceView, type StateSection,
} from './state-view.js';

/** What the agent hands over to build its state document. */
export interface AgentStateSources {
  node: string;
  version: string;
  source: 'kubernetes' | 'manifests';
  startedAt: string;
  config: AgentConfig;
  snapshot(): Snapshot;
  readiness(): Pick<AgentStateView, 'ready' | 'readiness'>;
  sync?: DatapathSync;
  datapathCtl?: DatapathController;
  ipam?: IpamView;
  l2?: { rows(snap: Snapshot): L2View[]; announcementCounts(): ReturnType<L2Announcer['counts']>; outage?: OutageGuard };
  bgp?: BgpAgentPart;
  attachments: AgentStateView['datapath']['attachments'];
  mapRows(): AgentStateView['datapath']['maps'];
  attachWatch?: AttachmentWatch;
  socketLb?: RunningSocketLb;
  drain?: DrainReason;
  /** The agent's own problems (manifests, config). */
  problems: readonly ConfigProblemView[];
  /** Objects the Kubernetes source refused to read. */
  kubeRefused: ReadonlyArray<Omit<ConfigProblemView, 'source'>>;
}

/**
 * GET /v1/state: the sections asked for (all by default), list sections
 * in pages of `limit` (state-view.ts parseStateQuery), and a summary that
 * holds at any scale. Throws StateQueryError on a bad query.
 */
export function buildAgentState(src: AgentStateSources, query: URLSearchParams): AgentStateView {
  const q = parseStateQuery(query);
  const want = (s: StateSection): boolean => q.sections.has(s);
  const snap = src.snapshot();
  let next: string | undefined;
  const only = q.service;
  const page = <T>(section: StateSection, items: T[], keyOf: (t: T) => string): T[] => {
    if (only) return items; // one service's entries: few, never paged
    const p = pageOf(section, items, keyOf, q);
    if (p.next) next = p.next;
    return p.items;
  };

  let frontends: FrontendView[] = [];
  if (want('frontends')) {
    const backendIds = src.sync?.backends;
    const all = [...(src.sync?.desired() ?? [])].filter(({ frontend: f }) => !only || f.service === only).map(({ frontend: f, programmed }) => ({ key: frontendSortKey(f), f, programmed }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    frontends = page('frontends', all, (x) => x.key).map(({ f, programmed }) => {
      const problem = programmed ? undefined : src.sync?.status(f.service).problems.find((p) => p.blocking && (p.object === frontendKeyString(f) || p.reason === 'InvalidFrontend'));
      return {
        id: programmed?.id ?? 0,
        service: f.service,
        kind: f.kind,
        address: f.address,
        port: f.port,
        protocol: f.protocol,
        backends: f.backends.map((b) => ({ id: backendIds?.get(`${b.address}|${b.port}`)?.id ?? 0, address: b.address, port: b.port, weight: b.weight, state: b.state, ...(b.nodeName ? { node: b.nodeName } : {}) })),
        programmed: programmed !== undefined,
        ...(programmed ? {} : { problem: problem?.message ?? 'not programmed yet' }),
      };
    });
  }
  let services: ServiceView[] = [];
  if (want('services')) {
    const keys = only ? (snap.services.has(only) ? [only] : []) : [...snap.services.keys()].sort();
    services = page('services', keys, (k) => k).map((key) => {
      const svc = snap.services.get(key)!;
      const cond = svc.status.conditions.find((c) => c.type === IPAM_CONDITION);
      const dp = src.datapathCtl?.status(key);
      const problem = dp?.problems.find((p) => p.blocking);
      return {
        key,
        type: svc.type,
        ...(svc.loadBalancerClass ? { loadBalancerClass: svc.loadBalancerClass } : {}),
        ingress: svc.status.ingress.map((i) => i.ip),
        externalIPs: svc.externalIPs,
        ports: svc.ports.map((p) => `${p.port}/${p.protocol}`),
        ...(cond ? { ipam: { status: cond.status, reason: cond.reason, message: cond.message } } : {}),
        ...(dp ? {
          datapath: {
            programmed: dp.programmed >= dp.frontends, frontends: dp.frontends, programmedFrontends: dp.programmed,
            ...(problem ? { reason: problem.reason, message: problem.message } : {}),
          },
        } : {}),
        ...(only ? { detail: serviceDetail(svc, snap.pools.values()) } : {}),
      };
    });
  }
  let pools: PoolView[] = [];
  if (want('pools')) {
    const poolStatuses: ReadonlyMap<string, PoolStatus> = src.ipam?.poolStatuses() ?? new Map<string, PoolStatus>();
    pools = [...snap.pools.values()].map((p) => {
      const st = poolStatuses.get(p.meta.name);
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
  }
  const l2 = want('l2') && src.l2
    ? page('l2', src.l2.rows(snap).filter((r) => !only || r.service === only).map((r) => ({ key: `${r.service}|${r.address}`, r })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)), (x) => x.key).map((x) => x.r)
    : [];
  const notProgrammed = [...(src.datapathCtl?.notProgrammed() ?? [])];
  const counts = src.l2?.announcementCounts();
  const { ready, readiness } = src.readiness();
  return {
    apiVersion: STATE_API_VERSION,
    node: src.node,
    version: src.version,
    source: src.source,
    startedAt: src.startedAt,
    ready,
    readiness,
    datapath: {
      mode: src.config.mode, pinDir: src.config.pinDir, attachments: src.attachments, maps: src.mapRows(),
      ...(src.attachWatch ? { health: src.attachWatch.health() } : {}),
      ...(src.socketLb ? { socketLb: socketLbView(src.socketLb) } : {}),
    },
    summary: {
      services: snap.services.size,
      frontends: src.sync?.claimedFrontends() ?? 0,
      frontendsProgrammed: src.sync?.frontends.size ?? 0,
      backends: src.sync?.pressure().ph_backends.used ?? 0,
      servicesNotProgrammed: notProgrammed.length,
      ...drainSummary(src),
      l2: {
        announced: counts?.held ?? 0, refused: counts?.refused ?? 0, pendingFirstAnnouncement: counts?.awaitingFirst ?? 0,
        ...(src.l2?.outage ? { outage: outageSummary(src.l2.outage) } : {}),
      },
    },
    notProgrammed: notProgrammed.filter(([service]) => !only || service === only).sort(([a], [b]) => (a < b ? -1 : 1)).slice(0, MAX_NOT_PROGRAMMED).map(([service, st]) => {
      const first = st.problems.find((p) => p.blocking);
      return { service, frontends: st.frontends, programmed: st.programmed, reason: first?.reason ?? 'NotProgrammed', message: first?.message ?? '' };
    }),
    sections: [...q.sections],
    services, frontends, pools, l2,
    bgp: want('bgp') ? bgpView(src, only) : { peers: [], routes: [] },
    problems: want('problems') ? [...src.problems, ...poolProblems(src), ...bgpProblems(src), ...src.kubeRefused.map((r) => ({ source: 'kubernetes', ...r }))] : [],
    config: want('config') ? { ...src.config } as unknown as Record<string, unknown> : {},
    ...(next ? { continue: next } : {}),
  };
}

function drainSummary(src: AgentStateSources): Pick<AgentStateView['summary'], 'drain'> {
  const reason = src.drain;
  if (!reason) return {};
  const bgp = src.bgp?.drain();
  return { drain: { reason, description: describeDrain(reason), ...(bgp ? { bgp: { phase: bgp.phase, since: bgp.since, withdrawAt: bgp.withdrawAt } } : {}) } };
}

/** Peers and routes; with `service`, only the routes of that service's addresses. */
function bgpView(src: AgentStateSources, service: string | undefined): AgentStateView['bgp'] {
  const views = src.bgp?.views() ?? { peers: [], routes: [] };
  return service ? { peers: views.peers, routes: views.routes.filter((r) => r.service === service) } : views;
}

function outageSummary(o: OutageGuard): NonNullable<AgentStateView['summary']['l2']['outage']> {
  const since = o.apiUnreachableSince;
  return {
    apiReachable: o.apiReachable, ...(since ? { apiUnreachableSince: since } : {}), livePeers: o.livePeers(), unconfirmed: o.unconfirmed,
    fenced: [...o.fences].map(([address, f]) => ({ address, reason: describeFence(f.reason), since: f.at })),
    duplicates: [...o.duplicates].map(([address, d]) => ({ address, ...d })),
  };
}

function socketLbView(s: RunningSocketLb): NonNullable<AgentStateView['datapath']['socketLb']> {
  const counters = s.loaded.counters();
  return {
    cgroup: s.attachment.cgroup,
    hooks: s.attachment.hooks.map((h) => h.hook),
    counters: Object.fromEntries(Object.entries(counters).map(([k, v]) => [k, Number(v)])),
  };
}

/** Conflicting pools, as problems (`pharos status`): they hand out nothing new (services keep the addresses they hold). */
function poolProblems(src: AgentStateSources): ConfigProblemView[] {
  const out: ConfigProblemView[] = [];
  for (const [name, st] of src.ipam?.poolStatuses() ?? []) {
    if (!st.conflicting) continue;
    const c = st.conditions.find((x) => x.status === 'True');
    out.push({ source: 'ipam', object: `LoadBalancerIPPool ${name}`, field: 'spec.blocks', message: `conflicting: ${c?.message ?? 'overlaps another pool'}`, at: c?.lastTransitionTime ?? src.startedAt });
  }
  return out;
}

/** Neighbors BGP cannot configure (a missing authSecretRef Secret, a duplicate), as problems. */
function bgpProblems(src: AgentStateSources): ConfigProblemView[] {
  return (src.bgp?.problems() ?? []).map(({ message, since }) => ({
    source: 'bgp', object: /^(BGPPeeringPolicy \S+):/.exec(message)?.[1] ?? 'BGPPeeringPolicy', message, at: since,
  }));
}

/** A string key whose order is the listing's (address numerically, then port, then protocol), for paging. */
function frontendSortKey(f: { address: string; port: number; protocol: string }): string {
  const a = tryParseAddress(f.address);
  const addr = a ? `${a.family === 'IPv4' ? 4 : 6}${a.value.toString(16).padStart(32, '0')}` : `9${f.address}`;
  return `${addr}|${String(f.port).padStart(5, '0')}|${f.protocol}`;
}
