/**
 * The pure half of `npm run bench:scale-kube`: API write rates from the
 * emulator's per-second samples, and the Markdown table.
 */

/** Writes per second by what they write; `max` is the busiest single second. */
export interface WriteRates {
  seconds: number;
  status_per_s: number;
  status_max: number;
  node_lease_per_s: number;
  service_lease_per_s: number;
  service_lease_max: number;
  events: number;
  total_per_s: number;
  total_max: number;
}

export interface KubeScaleReport {
  services: number;
  nodes: number;
  k8s_qps: number;
  start_allocated_s: number;
  start_leases_held_s: number;
  start_to_programmed_s: number;
  restart_to_programmed_s: number;
  writes: Record<string, WriteRates>;
  agents: { node: string; rss_steady_mb: number; rss_peak_mb: number; cpu_s: number; event_loop_delay_p99_ms: number | null }[];
  emulator: { rss_mb: number; cpu_s: number };
  kernel: string;
  cpu: string;
  date: string;
}

/** Keys are `verb resource/name-prefix` (the emulator child's writesSince with byName; creates have no name). */
function kindOf(key: string): 'status' | 'node' | 'service' | 'event' | 'other' {
  if (key.includes(' services/status')) return 'status';
  if (key.includes(' leases/pharos-node-')) return 'node';
  // A create names no object in its URL: service leases are what is created (a node lease once per node start).
  if (key.includes(' leases/pharos-l2announce-') || key.startsWith('create leases/')) return 'service';
  if (key.includes(' events')) return 'event';
  return 'other';
}

export function writeRates(samples: Record<string, number>[]): WriteRates {
  const n = Math.max(samples.length, 1);
  const sums = { status: 0, node: 0, service: 0, event: 0, other: 0 };
  let statusMax = 0;
  let serviceMax = 0;
  let totalMax = 0;
  for (const s of samples) {
    const sec = { status: 0, node: 0, service: 0, event: 0, other: 0 };
    for (const [k, v] of Object.entries(s)) sec[kindOf(k)] += v;
    for (const k of Object.keys(sums) as (keyof typeof sums)[]) sums[k] += sec[k];
    statusMax = Math.max(statusMax, sec.status);
    serviceMax = Math.max(serviceMax, sec.service);
    totalMax = Math.max(totalMax, sec.status + sec.node + sec.service + sec.event + sec.other);
  }
  const r = (x: number): number => Math.round((x / n) * 10) / 10;
  return {
    seconds: samples.length,
    status_per_s: r(sums.status), status_max: statusMax,
    node_lease_per_s: r(sums.node),
    service_lease_per_s: r(sums.service), service_lease_max: serviceMax,
    events: sums.event,
    total_per_s: r(sums.status + sums.node + sums.service + sums.event + sums.other), total_max: totalMax,
  };
}

export function kubeScaleMarkdown(r: KubeScaleReport): string {
  const lines = [
    `## Kubernetes mode: ${r.services.toLocaleString('en')} services on ${r.nodes} LB nodes (API emulator, --k8s-qps ${r.k8s_qps})`,
    '',
    '| | |',
    '|---|---|',
    `| start → every service allocated | ${r.start_allocated_s} s |`,
    `| start → every service lease held | ${r.start_leases_held_s} s |`,
    `| start → every frontend in every node's data path | ${r.start_to_programmed_s} s |`,
    `| clean restart of one node → back in the data path, leases held | ${r.restart_to_programmed_s} s |`,
    `| emulator RSS / CPU | ${r.emulator.rss_mb} MiB / ${r.emulator.cpu_s} s |`,
    '',
    '| API writes | seconds | Service status /s (max) | node leases /s | service leases /s (max) | events | all /s (max) |',
    '|---|---|---|---|---|---|---|',
    ...Object.entries(r.writes).map(([phase, w]) =>
      `| ${phase} | ${w.seconds} | ${w.status_per_s} (${w.status_max}) | ${w.node_lease_per_s} | ${w.service_lease_per_s} (${w.service_lease_max}) | ${w.events} | ${w.total_per_s} (${w.total_max}) |`),
    '',
    '| agent | RSS steady / peak | CPU | event-loop delay p99 |',
    '|---|---|---|---|',
    ...r.agents.map((a) => `| ${a.node} | ${a.rss_steady_mb} / ${a.rss_peak_mb} MiB | ${a.cpu_s} s | ${a.event_loop_delay_p99_ms ?? '-'} ms |`),
    '',
    `Kernel ${r.kernel}; ${r.cpu}; ${r.date}.`,
    '',
  ];
  return lines.join('\n');
}
