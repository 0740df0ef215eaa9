/**
 * The pure half of `npm run bench:scale-kube` (bench/scale/kube-report.ts):
 * per-second write samples grouped by what they write, averages and the
 * busiest second, and the table.
 */
import t from 'tap';
import { kubeScaleMarkdown, writeRates, type KubeScaleReport } from '../../bench/scale/kube-report.js';

t.test('writeRates: by kind, average and busiest second', async (t) => {
  const r = writeRates([
    { 'patch services/status': 20, 'update leases/pharos-node-': 12, 'create leases/': 25, 'update leases/pharos-l2announce-': 5 },
    { 'patch services/status': 10, 'update leases/pharos-node-': 12, 'update leases/pharos-': 1, 'create events': 2 },
    {},
  ]);
  t.same(r, {
    seconds: 3,
    status_per_s: 10, status_max: 20,
    node_lease_per_s: 8,
    service_lease_per_s: 10, service_lease_max: 30,
    events: 2,
    total_per_s: 29, total_max: 62,
  });
  t.equal(writeRates([]).total_per_s, 0, 'no samples: zero, not NaN');
});

t.test('markdown: one row per phase and per agent', async (t) => {
  const w = writeRates([{ 'patch services/status': 3 }]);
  const report: KubeScaleReport = {
    services: 2000, nodes: 3, k8s_qps: 20, start_allocated_s: 101.2, start_leases_held_s: 103, start_to_programmed_s: 104.5, restart_to_programmed_s: 12,
    writes: { start: w, steady: w }, agents: [{ node: 'n1', rss_steady_mb: 200, rss_peak_mb: 230, cpu_s: 40, event_loop_delay_p99_ms: 25 }],
    emulator: { rss_mb: 300, cpu_s: 50 }, kernel: '6.18', cpu: 'x', date: 'd',
  };
  const md = kubeScaleMarkdown(report);
  t.match(md, /2,000 services on 3 LB nodes/);
  t.match(md, /\| start → every service allocated \| 101\.2 s \|/);
  t.match(md, /\| steady \| 1 \| 3 \(3\) \|/);
  t.match(md, /\| n1 \| 200 \/ 230 MiB \| 40 s \| 25 ms \|/);
});
