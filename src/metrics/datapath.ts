/**
 * Data-path metrics, read from the per-CPU BPF counters when Prometheus
 * scrapes (collect callbacks), so the agent does no periodic map walks.
 */
import client from 'prom-client';
import { registry } from './registry.js';
import type { DatapathCounters } from '../datapath/stats.js';

export interface DatapathMetricsSource {
  /** Summed counters for the frontends/backends currently programmed. */
  counters(): DatapathCounters | undefined;
  frontendLabels(id: number): { service: string; frontend: string } | undefined;
  backendLabels(id: number): { backend: string } | undefined;
  mapPressure(): { name: string; entries: number; capacity: number }[];
  conntrackEntries(): number;
  mapFull(): Record<string, number>;
}

const DROP_REASONS = new Set(['malformed_l2', 'malformed_l3', 'malformed_l4', 'no_backend', 'backend_gone', 'snat_exhausted', 'ct_insert_fail', 'fib_fail', 'redirect_fail', 'source_range']);
const PASS_REASONS = new Set(['fragment', 'ipv6_ext_limit', 'no_neigh', 'local_backend', 'icmp_pass', 'responder_stale', 'arp_ignored']);

export function registerDatapathMetrics(source: DatapathMetricsSource): void {
  let cached: { at: number; value: DatapathCounters | undefined } = { at: 0, value: undefined };
  // One map read per scrape, shared by every collect callback below.
  const counters = (): DatapathCounters | undefined => {
    if (Date.now() - cached.at > 200) cached = { at: Date.now(), value: source.counters() };
    return cached.value;
  };
  new client.Counter({
    name: 'pharos_datapath_packets_total',
    help: 'Packets the XDP data path forwarded, per frontend (client to backend direction)',
    labelNames: ['service', 'frontend'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const c = counters();
      if (!c) return;
      for (const [id, t] of c.frontends) {
        const l = source.frontendLabels(id);
        if (l) this.inc(l, Number(t.packets));
      }
    },
  });
  new client.Counter({
    name: 'pharos_datapath_bytes_total',
    help: 'Bytes the XDP data path forwarded, per frontend',
    labelNames: ['service', 'frontend'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const c = counters();
      if (!c) return;
      for (const [id, t] of c.frontends) {
        const l = source.frontendLabels(id);
        if (l) this.inc(l, Number(t.bytes));
      }
    },
  });
  new client.Counter({
    name: 'pharos_datapath_backend_packets_total',
    help: 'Packets the XDP data path sent to each backend',
    labelNames: ['backend'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const c = counters();
      if (!c) return;
      for (const [id, t] of c.backends) {
        const l = source.backendLabels(id);
        if (l) this.inc(l, Number(t.packets));
      }
    },
  });
  new client.Counter({
    name: 'pharos_datapath_backend_bytes_total',
    help: 'Bytes the XDP data path sent to each backend',
    labelNames: ['backend'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const c = counters();
      if (!c) return;
      for (const [id, t] of c.backends) {
        const l = source.backendLabels(id);
        if (l) this.inc(l, Number(t.bytes));
      }
    },
  });
  new client.Counter({
    name: 'pharos_datapath_drops_total',
    help: 'Packets of ours the data path dropped, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const c = counters();
      if (!c) return;
      for (const [reason, n] of Object.entries(c.reasons)) if (DROP_REASONS.has(reason)) this.inc({ reason }, Number(n));
    },
  });
  new client.Counter({
    name: 'pharos_datapath_passes_total',
    help: 'Packets of ours the data path handed to the kernel (XDP_PASS), by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const c = counters();
      if (!c) return;
      for (const [reason, n] of Object.entries(c.reasons)) if (PASS_REASONS.has(reason)) this.inc({ reason }, Number(n));
    },
  });
  new client.Counter({
    name: 'pharos_datapath_events_total',
    help: 'Data path events: conntrack creations and hits, reverse NAT, ARP/NA replies, forwarding verdicts',
    labelNames: ['event'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const c = counters();
      if (!c) return;
      for (const [event, n] of Object.entries(c.reasons)) if (!DROP_REASONS.has(event) && !PASS_REASONS.has(event)) this.inc({ event }, Number(n));
    },
  });
  new client.Counter({
    name: 'pharos_l2_arp_replies_total',
    help: 'ARP requests for announced addresses answered by the XDP responder',
    registers: [registry],
    collect() {
      this.reset();
      const n = counters()?.reasons.arp_reply;
      if (n !== undefined) this.inc(Number(n));
    },
  });
  new client.Counter({
    name: 'pharos_l2_na_replies_total',
    help: 'IPv6 neighbour solicitations for announced addresses answered by the XDP responder',
    registers: [registry],
    collect() {
      this.reset();
      const n = counters()?.reasons.na_reply;
      if (n !== undefined) this.inc(Number(n));
    },
  });
  new client.Gauge({
    name: 'pharos_conntrack_entries',
    help: 'Flows in the data path\'s conntrack table',
    registers: [registry],
    collect() {
      this.set(source.conntrackEntries());
    },
  });
  new client.Gauge({
    name: 'pharos_bpf_map_entries',
    help: 'Entries in each BPF map',
    labelNames: ['map'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const m of source.mapPressure()) this.set({ map: m.name }, m.entries);
    },
  });
  new client.Gauge({
    name: 'pharos_bpf_map_capacity',
    help: 'Capacity (max_entries) of each BPF map',
    labelNames: ['map'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const m of source.mapPressure()) this.set({ map: m.name }, m.capacity);
    },
  });
  new client.Counter({
    name: 'pharos_bpf_map_full_total',
    help: 'Writes refused because a BPF map was full, by map',
    labelNames: ['map'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [map, n] of Object.entries(source.mapFull())) this.inc({ map }, n);
    },
  });
}
