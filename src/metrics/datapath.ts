/**
 * Data-path metrics, read from the per-CPU BPF counters when Prometheus
 * scrapes (collect callbacks), so the agent does no periodic map walks.
 */
import client from 'prom-client';
import { registry } from './registry.js';
import type { DatapathCounters } from '../datapath/stats.js';
import { DROP_REASONS, PASS_REASONS, type StatReason } from '../datapath/abi.js';

/** Metric labels of the frontend and backend ids currently programmed. */
export interface DatapathLabels {
  /** Moves whenever the tables below change: renderers cache by it. */
  version: number;
  frontends: ReadonlyMap<number, { service: string; frontend: string }>;
  backends: ReadonlyMap<number, { backend: string }>;
}

export interface DatapathMetricsSource {
  /** Summed counters for the frontends/backends currently programmed. */
  counters(): DatapathCounters | undefined;
  labels(): DatapathLabels;
  mapPressure(): { name: string; entries: number; capacity: number }[];
  conntrackEntries(): number;
  mapFull(): Record<string, number>;
}


export function registerDatapathMetrics(source: DatapathMetricsSource): void {
  let cached: { at: number; value: DatapathCounters | undefined; labels: DatapathLabels } | undefined;
  // One map read and one label table per scrape, shared by every collect callback below.
  const scrape = (): NonNullable<typeof cached> => {
    if (!cached || Date.now() - cached.at > 200) cached = { at: Date.now(), value: source.counters(), labels: source.labels() };
    return cached;
  };
  const counters = (): DatapathCounters | undefined => scrape().value;
  // Packets/bytes per frontend and per backend: four families of one shape.
  const traffic = [
    { name: 'pharos_datapath_packets_total', help: 'Packets the XDP data path forwarded, per frontend (client to backend direction)', field: 'packets', side: 'frontends' },
    { name: 'pharos_datapath_bytes_total', help: 'Bytes the XDP data path forwarded, per frontend', field: 'bytes', side: 'frontends' },
    { name: 'pharos_datapath_backend_packets_total', help: 'Packets the XDP data path sent to each backend', field: 'packets', side: 'backends' },
    { name: 'pharos_datapath_backend_bytes_total', help: 'Bytes the XDP data path sent to each backend', field: 'bytes', side: 'backends' },
  ] as const;
  for (const spec of traffic) {
    new client.Counter({
      name: spec.name,
      help: spec.help,
      labelNames: spec.side === 'frontends' ? ['service', 'frontend'] : ['backend'],
      registers: [registry],
      collect() {
        this.reset();
        const c = counters();
        if (!c) return;
        for (const [id, t] of c[spec.side]) {
          const labels = scrape().labels[spec.side].get(id);
          if (labels) this.inc(labels, Number(t[spec.field]));
        }
      },
    });
  }
  // Per-reason counters, split into what was dropped, what was passed to the kernel, and the rest.
  const reasons = [
    { name: 'pharos_datapath_drops_total', help: 'Packets of ours the data path dropped, by reason', label: 'reason', keep: (r: StatReason) => DROP_REASONS.has(r) },
    { name: 'pharos_datapath_passes_total', help: 'Packets of ours the data path handed to the kernel (XDP_PASS), by reason', label: 'reason', keep: (r: StatReason) => PASS_REASONS.has(r) },
    { name: 'pharos_datapath_events_total', help: 'Data path events: conntrack creations and hits, reverse NAT, ARP/NA replies, forwarding verdicts', label: 'event', keep: (r: StatReason) => !DROP_REASONS.has(r) && !PASS_REASONS.has(r) },
  ] as const;
  for (const spec of reasons) {
    new client.Counter({
      name: spec.name,
      help: spec.help,
      labelNames: [spec.label],
      registers: [registry],
      collect() {
        this.reset();
        const c = counters();
        if (!c) return;
        for (const [reason, n] of Object.entries(c.reasons) as Array<[StatReason, bigint]>) if (spec.keep(reason)) this.inc({ [spec.label]: reason }, Number(n));
      },
    });
  }
  for (const [name, help, reason] of [
    ['pharos_l2_arp_replies_total', 'ARP requests for announced addresses answered by the XDP responder', 'arp_reply'],
    ['pharos_l2_na_replies_total', 'IPv6 neighbour solicitations for announced addresses answered by the XDP responder', 'na_reply'],
  ] as const) {
    new client.Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        const n = counters()?.reasons[reason];
        if (n !== undefined) this.inc(Number(n));
      },
    });
  }
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
