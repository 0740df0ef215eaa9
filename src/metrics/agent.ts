/**
 * IPAM, L2 and data-path status metrics, computed when Prometheus scrapes
 * from the controllers' own counts: pool addresses by family and state,
 * conflicting pools, unsatisfied services, services not in the data path,
 * announced addresses, refused responder entries and gratuitous frames.
 * Each callback costs O(pools) or one pass over the services, never a whole
 * state document (at 10,000 services that is megabytes).
 */
import client from 'prom-client';
import { registry } from './registry.js';

export interface PoolCounts {
  name: string;
  conflicting: boolean;
  /** By family ('IPv4', 'IPv6'), as decimal strings (IPv6 pools are large). */
  families: Record<string, { total: string; used: string; available: string }>;
}

/** Kubernetes mode: the API as L2 sees it, fences, duplicate answers, outage takeovers, peers (src/l2/outage.ts). */
export interface L2OutageMetrics {
  apiReachable: boolean;
  /** Addresses fenced now, by reason. */
  fenced: ReadonlyMap<string, number>;
  /** Fences since start, by reason. */
  fencesTotal: ReadonlyMap<string, number>;
  duplicates: number;
  takeovers: number;
  livePeers: number;
  unconfirmed: number;
}

export interface AgentMetricsSource {
  readonly counters: { gratuitousSent: { ipv4: number; ipv6: number }; leaseTransitions?: number };
  pools(): Iterable<PoolCounts>;
  /** Reasons of services whose address request is not satisfied (one entry per service). */
  unsatisfiedReasons(): Iterable<string>;
  /** Services not fully in the data path, by the reason of their first problem. */
  notProgrammedReasons(): Iterable<string>;
  /** (address, interface) pairs answered and announced, refused by the responder map, and waiting for a first announcement. */
  l2Counts(): { held: number; refused: number; awaitingFirst: number };
  /** Why this node is draining (src/model/drain.ts), if it is. */
  drainReason?(): string | undefined;
  /** What /readyz checks (source synced, data path attached, Kubernetes API reachable), each ok or not. */
  readiness?(): { readiness: Record<string, { ok: boolean }> };
  l2Outage?(): L2OutageMetrics | undefined;
  /** Kubernetes mode: announced addresses no live node holds, by reason (src/l2/holders.ts); undefined while this node cannot tell. */
  l2AddressesWithoutHolder?(): Readonly<Record<string, number>> | undefined;
  /** Kernel memory of each BPF map (fdinfo memlock), charged to the agent's memory cgroup. */
  mapMemory(): Iterable<{ map: string; bytes: number }>;
}

export function registerAgentMetrics(agent: AgentMetricsSource): void {
  new client.Gauge({
    name: 'pharos_ipam_pool_addresses',
    help: 'Addresses of each LB IP pool by family and state (used, available); a conflicting pool offers none',
    labelNames: ['pool', 'family', 'state'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of agent.pools()) {
        for (const [family, c] of Object.entries(p.families)) {
          if (c.total === '0') continue;
          this.set({ pool: p.name, family, state: 'used' }, Number(c.used));
          this.set({ pool: p.name, family, state: 'available' }, Number(c.available));
        }
      }
    },
  });
  new client.Gauge({
    name: 'pharos_ipam_conflicting_pools',
    help: 'Pools marked conflicting (overlap with an older pool, or within themselves)',
    registers: [registry],
    collect() {
      let n = 0;
      for (const p of agent.pools()) if (p.conflicting) n++;
      this.set(n);
    },
  });
  const byReason = (name: string, help: string, reasons: () => Iterable<string>): void => {
    new client.Gauge({
      name,
      help,
      labelNames: ['reason'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const r of reasons()) counts.set(r, (counts.get(r) ?? 0) + 1);
        for (const [reason, n] of counts) this.set({ reason }, n);
      },
    });
  };
  byReason('pharos_ipam_services_unsatisfied', 'Services of ours whose address request is not satisfied, by reason', () => agent.unsatisfiedReasons());
  byReason('pharos_datapath_services_not_programmed',
    'Services with frontends that are not (all) in this node\'s data path, by reason (FrontendMapFull, BackendMapFull, TooManyBackends, ...): not announced nor advertised',
    () => agent.notProgrammedReasons());
  const l2 = [
    ['pharos_l2_announced', 'Addresses this node announces on the local segment (ARP/NDP), per announcing interface', 'held'],
    ['pharos_l2_responder_refused', 'Addresses this node should announce but could not write into the XDP responder (map full): not announced', 'refused'],
    ['pharos_l2_announcements_pending', 'Addresses answered by the responder that still wait for their first gratuitous ARP/NA (paced by --l2-announce-rate)', 'awaitingFirst'],
  ] as const;
  for (const [name, help, field] of l2) {
    new client.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(agent.l2Counts()[field]);
      },
    });
  }
  new client.Gauge({
    name: 'pharos_bpf_map_memory_bytes',
    help: 'Kernel memory of each BPF map (memlock; per-CPU maps grow with the CPU count), charged to the agent\'s memory cgroup; "ph_maglev tables" is the inner Maglev tables',
    labelNames: ['map'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { map, bytes } of agent.mapMemory()) this.set({ map }, bytes);
    },
  });
  new client.Counter({
    name: 'pharos_l2_gratuitous_sent_total',
    help: 'Gratuitous ARP rounds and unsolicited neighbour advertisements sent, by family',
    labelNames: ['family'] as const,
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ family: 'ipv4' }, agent.counters.gratuitousSent.ipv4);
      this.inc({ family: 'ipv6' }, agent.counters.gratuitousSent.ipv6);
    },
  });
  registerL2OutageMetrics(agent);
  registerDrainMetric(agent);
  registerReadinessMetric(agent);
  new client.Counter({
    name: 'pharos_l2_lease_transitions_total',
    help: 'Times this node took over announcing an address (lease acquired, or the one node of manifests mode started announcing it)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(agent.counters.leaseTransitions ?? 0);
    },
  });
}

/** This node's drain (src/model/drain.ts), by reason. */
function registerDrainMetric(agent: AgentMetricsSource): void {
  new client.Gauge({
    name: 'pharos_node_draining', help: 'Whether this node is being drained (1), by reason: label (lb.pharos.io/drain) or cordoned (spec.unschedulable / node.kubernetes.io/unschedulable)',
    labelNames: ['reason'] as const, registers: [registry],
    collect() {
      this.reset();
      const reason = agent.drainReason?.();
      for (const r of ['label', 'cordoned']) this.set({ reason: r }, r === reason ? 1 : 0);
    },
  });
}

/** /readyz as a metric: one series per check, so an alert can say which one fails. */
function registerReadinessMetric(agent: AgentMetricsSource): void {
  new client.Gauge({
    name: 'pharos_ready', help: 'Whether each readiness check of /readyz passes (1) or not (0): source (synced), datapath (attached and whole), api (Kubernetes mode: reachable)',
    labelNames: ['check'] as const, registers: [registry],
    collect() {
      this.reset();
      const checks = agent.readiness?.().readiness ?? {};
      for (const [check, r] of Object.entries(checks)) this.set({ check }, r.ok ? 1 : 0);
    },
  });
}

/** Each reads agent.l2Outage() on scrape; absent in manifests mode (no API, no peers). */
function registerL2OutageMetrics(agent: AgentMetricsSource): void {
  const gauge = (name: string, help: string, read: (m: L2OutageMetrics) => number, manifestsMode = 0): void => {
    new client.Gauge({
      name, help, registers: [registry],
      collect() {
        const m = agent.l2Outage?.();
        this.set(m ? read(m) : manifestsMode);
      },
    });
  };
  // Manifests mode has no API to lose: 1, so an alert on 0 never fires there.
  gauge('pharos_k8s_api_reachable', 'Whether this node reaches the Kubernetes API (its node lease renewed in time): 0 within ~0.75 s of an outage; 1 in manifests mode', (m) => (m.apiReachable ? 1 : 0), 1);
  gauge('pharos_l2_unconfirmed', 'Addresses answered here without a lease record confirming it now (API unreachable, or taken over during an outage and not yet written)', (m) => m.unconfirmed);
  gauge('pharos_l2_peers_alive', 'Peers whose L2 heartbeats arrive (--l2-peer-port)', (m) => m.livePeers);
  new client.Gauge({
    name: 'pharos_l2_fenced', help: 'Addresses this node holds but does not answer for, by reason (foreign-answer: another MAC answers during an API outage; peer-claim: a peer has a later lease record)',
    labelNames: ['reason'] as const, registers: [registry],
    collect() {
      this.reset();
      const m = agent.l2Outage?.();
      for (const reason of ['foreign-answer', 'peer-claim']) if (m) this.set({ reason }, m.fenced.get(reason) ?? 0);
    },
  });
  new client.Counter({
    name: 'pharos_l2_fences_total', help: 'Times an address was fenced here, by reason', labelNames: ['reason'] as const, registers: [registry],
    collect() {
      this.reset();
      const m = agent.l2Outage?.();
      for (const reason of ['foreign-answer', 'peer-claim']) if (m) this.inc({ reason }, m.fencesTotal.get(reason) ?? 0);
    },
  });
  new client.Counter({
    name: 'pharos_l2_duplicate_answers_total', help: 'ARP replies, gratuitous ARPs and NAs from another MAC for an address this node answers for (split brain), seen by the XDP program',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(agent.l2Outage?.()?.duplicates ?? 0);
    },
  });
  new client.Gauge({
    name: 'pharos_l2_addresses_without_holder',
    help: 'Announced addresses whose lease names no live holder, as this node sees the cluster\'s leases (every agent reports the same cluster-wide count: take max()), by reason: holder-down (its node lease is not renewed), no-holder (none, while a live node could take it), no-eligible-node; absent in manifests mode and while this node\'s view of the API is stale',
    labelNames: ['reason'] as const, registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(agent.l2AddressesWithoutHolder?.() ?? {})) this.set({ reason }, n);
    },
  });
  new client.Counter({
    name: 'pharos_l2_outage_takeovers_total', help: 'Addresses this node took over during an API outage because their holder fell silent (no heartbeat)', registers: [registry],
    collect() {
      this.reset();
      this.inc(agent.l2Outage?.()?.takeovers ?? 0);
    },
  });
}
