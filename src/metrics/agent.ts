/**
 * IPAM and L2 metrics, computed from the agent's state when Prometheus
 * scrapes: pool addresses by family and state, conflicting pools,
 * unsatisfied services, announced addresses and gratuitous frames sent.
 */
import client from 'prom-client';
import { registry } from './registry.js';
import type { AgentStateView } from './state-view.js';

export interface AgentMetricsSource {
  state(): AgentStateView;
  readonly counters: { gratuitousSent: { ipv4: number; ipv6: number }; leaseTransitions?: number };
  poolFamilies?(): Map<string, Record<string, { total: string; used: string; available: string }>>;
}

export function registerAgentMetrics(agent: AgentMetricsSource): void {
  // One state document per scrape, shared by every collect callback below.
  let cached: { at: number; value: AgentStateView } | undefined;
  const state = (): AgentStateView => {
    if (!cached || Date.now() - cached.at > 200) cached = { at: Date.now(), value: agent.state() };
    return cached.value;
  };
  new client.Gauge({
    name: 'pharos_ipam_pool_addresses',
    help: 'Addresses of each LB IP pool by family and state (used, available); a conflicting pool offers none',
    labelNames: ['pool', 'family', 'state'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const families = agent.poolFamilies?.();
      for (const p of state().pools) {
        const fam = families?.get(p.name);
        if (fam) {
          for (const [family, c] of Object.entries(fam)) {
            if (c.total === '0') continue;
            this.set({ pool: p.name, family, state: 'used' }, Number(c.used));
            this.set({ pool: p.name, family, state: 'available' }, Number(c.available));
          }
        } else {
          this.set({ pool: p.name, family: 'all', state: 'used' }, Number(p.used));
          this.set({ pool: p.name, family: 'all', state: 'available' }, Number(p.available));
        }
      }
    },
  });
  new client.Gauge({
    name: 'pharos_ipam_conflicting_pools',
    help: 'Pools marked conflicting (overlap with an older pool, or within themselves)',
    registers: [registry],
    collect() {
      this.set(state().pools.filter((p) => p.conflicting).length);
    },
  });
  new client.Gauge({
    name: 'pharos_ipam_services_unsatisfied',
    help: 'Services of ours whose address request is not satisfied, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of state().services) {
        if (s.ipam && s.ipam.status !== 'True') this.inc({ reason: s.ipam.reason });
      }
    },
  });
  new client.Gauge({
    name: 'pharos_l2_announced',
    help: 'Addresses this node announces on the local segment (ARP/NDP)',
    registers: [registry],
    collect() {
      this.set(state().l2.filter((l) => l.local).length);
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
  new client.Counter({
    name: 'pharos_l2_lease_transitions_total',
    help: 'Times this node took over announcing an address (lease acquired, or the one node of manifests mode started announcing it)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(agent.counters.leaseTransitions ?? state().l2.filter((l) => l.local).reduce((n, l) => n + l.transitions, 0));
    },
  });
}
