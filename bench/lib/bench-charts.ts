/**
 * Which chart each bench's results make (pure: results JSON → SVG), and the
 * one I/O step every bench calls at its end and `npm run bench:charts` calls
 * for all: read bench/results/<name>.json, write <name>.svg next to it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stackCharts, type BarChart, type Chart } from './svg-chart.js';
import { median } from './stats.js';

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');


interface DatapathResults { results: { mode: string; flows: string; pps_median: number }[]; kernel?: string }

/** Data-path modes side by side per flow setting (Mpps). */
export function datapathCharts(r: DatapathResults): Chart[] {
  const flows = [...new Set(r.results.map((x) => x.flows))];
  const modes = [...new Set(r.results.map((x) => x.mode))];
  const label = (f: string): string => (f === 'new' ? 'every packet a new flow' : `${Number(f).toLocaleString('en-US')} flow${f === '1' ? '' : 's'}`);
  return [{
    kind: 'bars', title: 'Data path throughput, 64 B UDP, one core (median of runs)', yLabel: 'Mpps',
    groups: flows.map(label),
    series: modes.map((m) => ({ name: m, values: flows.map((f) => { const row = r.results.find((x) => x.mode === m && x.flows === f); return row ? row.pps_median / 1e6 : null; }) })),
  }];
}

interface AttachResults { results: { mode: string; stream_gbps: number[]; cps: number[] }[] }

/** XDP modes on veth: bulk TCP and connections per second (medians). */
export function attachCharts(r: AttachResults): Chart[] {
  const modes = r.results.map((x) => x.mode);
  return [
    { kind: 'bars', title: 'Attach mode on veth: one TCP stream (median)', yLabel: 'Gbit/s', groups: modes, series: [{ name: 'stream', values: r.results.map((x) => median(x.stream_gbps)) }] },
    { kind: 'bars', title: 'Attach mode on veth: new connections per second (median)', yLabel: 'connections/s', groups: modes, series: [{ name: 'connections/s', values: r.results.map((x) => median(x.cps)) }] },
  ];
}

interface CpsResults { results: Array<{ mode: string; cps: number[] }> }

/** TCP connections per second through each LB mode (median of the runs). */
export function cpsCharts(r: CpsResults): Chart[] {
  return [{
    kind: 'bars', title: 'TCP connections per second through the LB (median)', yLabel: 'connections/s',
    groups: r.results.map((x) => x.mode), series: [{ name: 'connections/s', values: r.results.map((x) => median(x.cps)) }],
  }];
}

interface FailoverRun { gapMs: number; takeoverMs: number; clientMovedMs: number }
interface FailoverResults {
  runs: Record<string, FailoverRun[] | Record<string, FailoverRun>>;
  bgp_hung_node?: { medians: Record<string, { failedWindowMs: number; routeMovedMs: number }> };
}

/** L2 failover per fault (client-seen gap, new holder, client moved), and the BGP hung-node window with and without BFD. */
export function failoverCharts(r: FailoverResults): Chart[] {
  // L2 fault rows: arrays of runs with a client-seen gap (other rows, e.g. the BGP hung node, have their own chart).
  const faults = Object.keys(r.runs).filter((k) => {
    const runs = r.runs[k];
    return Array.isArray(runs) && runs.length > 0 && runs.every((x) => typeof x?.gapMs === 'number');
  });
  const med = (f: string, key: keyof FailoverRun): number => median((r.runs[f] as FailoverRun[]).map((x) => x[key]));
  const charts: Chart[] = [{
    kind: 'bars', title: 'L2 failover per fault (median of runs)', yLabel: 'ms',
    groups: faults.map((f) => f.replace(/_/g, ' ')),
    series: [
      { name: 'client-seen gap', values: faults.map((f) => med(f, 'gapMs')) },
      { name: 'new holder after', values: faults.map((f) => med(f, 'takeoverMs')) },
      { name: 'client moved after', values: faults.map((f) => med(f, 'clientMovedMs')) },
    ],
  }];
  const bgp = r.bgp_hung_node?.medians;
  if (bgp) {
    const keys = Object.keys(bgp);
    const name = (k: string): string => (k === 'bfd' ? 'with BFD' : k === 'noBfd' ? 'without BFD (hold timer)' : k);
    charts.push({
      kind: 'bars', title: 'BGP: a hung LB node in ECMP, failed-connection window (median)', yLabel: 'ms', groups: keys.map(name),
      series: [
        { name: 'failed-connection window', values: keys.map((k) => bgp[k]!.failedWindowMs) },
        { name: 'route moved after', values: keys.map((k) => bgp[k]!.routeMovedMs) },
      ],
      reference: { value: 1500, label: 'target 1.5 s' },
    });
  }
  return charts;
}

interface SoakResults { faults: { fault: string; requests: number; failed: number; max_gap_ms: number }[]; rss_start_mb?: number; rss_end_mb?: number }

/** The soak's faults in the order they ran: longest gap between answers and failed requests. */
export function soakCharts(r: SoakResults): Chart[] {
  return [
    { kind: 'bars', title: 'Soak: longest gap between answered requests, per fault (in run order)', yLabel: 'ms', groups: r.faults.map((f) => f.fault),
      series: [{ name: 'longest gap', values: r.faults.map((f) => f.max_gap_ms) }] },
    { kind: 'bars', title: `Soak: requests per fault window, ${r.faults.reduce((a, f) => a + f.failed, 0)} failed; RSS ${r.rss_start_mb ?? '?'} → ${r.rss_end_mb ?? '?'} MB`,
      yLabel: 'requests', groups: r.faults.map((f) => f.fault),
      series: [{ name: 'requests', values: r.faults.map((f) => f.requests) }, { name: 'failed', values: r.faults.map((f) => f.failed) }] },
  ];
}

interface ScaleResults { runs: { services: number; start_to_programmed_s: number; edit_ms_median: number; edit_ms_p99: number; rss_steady_mb: number; rss_peak_mb: number }[] }

/** Control-plane scale curves over the number of services. */
export function scaleCharts(r: ScaleResults): Chart[] {
  const pts = (f: (x: ScaleResults['runs'][number]) => number): { x: number; y: number }[] => r.runs.map((x) => ({ x: x.services, y: f(x) }));
  return [
    { kind: 'lines', title: 'Scale (manifests mode): start to all services in the data path', xLabel: 'services', yLabel: 's',
      series: [{ name: 'start → programmed', points: pts((x) => x.start_to_programmed_s) }], reference: { value: 20, label: 'target 20 s at 10,000' } },
    { kind: 'lines', title: 'Scale: one edit to the maps', xLabel: 'services', yLabel: 'ms',
      series: [{ name: 'median', points: pts((x) => x.edit_ms_median) }, { name: 'p99', points: pts((x) => x.edit_ms_p99) }], reference: { value: 50, label: 'target p99 50 ms' } },
    { kind: 'lines', title: 'Scale: agent memory', xLabel: 'services', yLabel: 'MiB',
      series: [{ name: 'RSS steady', points: pts((x) => x.rss_steady_mb) }, { name: 'RSS peak', points: pts((x) => x.rss_peak_mb) }] },
  ];
}

interface ScaleKubeResults { services: number; start_allocated_s: number; start_to_programmed_s: number; restart_to_programmed_s: number; writes: Record<string, { total_per_s: number; status_per_s: number; node_lease_per_s: number; service_lease_per_s: number }> }

export function scaleKubeCharts(r: ScaleKubeResults): Chart[] {
  const phases = Object.keys(r.writes);
  return [
    { kind: 'bars', title: `Scale (Kubernetes mode, ${r.services.toLocaleString('en-US')} services): time to`, yLabel: 's', groups: ['all allocated', 'all in the data path', 'restart → programmed'],
      series: [{ name: 'seconds', values: [r.start_allocated_s, r.start_to_programmed_s, r.restart_to_programmed_s] }] },
    { kind: 'bars', title: 'Scale (Kubernetes mode): API writes per second by phase', yLabel: 'writes/s', groups: phases,
      series: [
        { name: 'service status', values: phases.map((p) => r.writes[p]!.status_per_s) },
        { name: 'node leases', values: phases.map((p) => r.writes[p]!.node_lease_per_s) },
        { name: 'service leases', values: phases.map((p) => r.writes[p]!.service_lease_per_s) },
      ] },
  ];
}

interface IpamResults { services: number; pools: number; full_reconcile_ms: number; single_change_ms: number }

export function ipamCharts(r: IpamResults): Chart[] {
  const bar = (title: string, value: number, target: number): BarChart => ({
    kind: 'bars', title, yLabel: 'ms', groups: [`${r.services.toLocaleString('en-US')} services, ${r.pools} pools`],
    series: [{ name: 'measured', values: [value] }], reference: { value: target, label: `target ${target} ms` },
  });
  return [bar('IPAM: full reconcile', r.full_reconcile_ms, 1000), bar('IPAM: one service change', r.single_change_ms, 5)];
}

interface BgpResults { assign_to_route_ms_median: number; assign_to_route_ms_p90: number; assign_to_route_ms_max: number; advertise_10k_ms: number; prefixes: number; router: string }

export function bgpCharts(r: BgpResults): Chart[] {
  return [
    { kind: 'bars', title: `BGP: address assigned → route in ${r.router}`, yLabel: 'ms', groups: ['median', 'p90', 'max'],
      series: [{ name: 'assign → route', values: [r.assign_to_route_ms_median, r.assign_to_route_ms_p90, r.assign_to_route_ms_max] }], reference: { value: 50, label: 'target median 50 ms' } },
    { kind: 'bars', title: `BGP: ${r.prefixes.toLocaleString('en-US')} prefixes into ${r.router}'s table`, yLabel: 'ms', groups: [`${r.prefixes.toLocaleString('en-US')} prefixes`],
      series: [{ name: 'advertise all', values: [r.advertise_10k_ms] }], reference: { value: 2000, label: 'target 2,000 ms' } },
  ];
}

interface FuzzResults { xdp: { frames: number; failures: number; verdicts: Record<string, number> } }

export function fuzzCharts(r: FuzzResults): Chart[] {
  const verdicts = Object.keys(r.xdp.verdicts);
  return [{ kind: 'bars', title: `XDP fuzz: ${r.xdp.frames.toLocaleString('en-US')} frames, ${r.xdp.failures} failures — verdicts`, yLabel: 'frames', groups: verdicts,
    series: [{ name: 'frames', values: verdicts.map((v) => r.xdp.verdicts[v]!) }] }];
}

/** Bench name (its results file's base name) → its charts. */
export const BENCH_CHARTS: Record<string, (results: any) => Chart[]> = {
  datapath: datapathCharts,
  attach: attachCharts,
  cps: cpsCharts,
  failover: failoverCharts,
  soak: soakCharts,
  scale: scaleCharts,
  'scale-kube': scaleKubeCharts,
  ipam: ipamCharts,
  bgp: bgpCharts,
  fuzz: fuzzCharts,
};

export function benchSvg(name: string, results: unknown, file = `${name}.json`): string {
  const make = BENCH_CHARTS[name];
  if (!make) throw new Error(`no chart for bench '${name}'`);
  return stackCharts(make(results), `bench/results/${file}`);
}

/**
 * Writes <dir>/<name>.svg from <dir>/<name>.json with the charts of bench
 * `bench` (default: the same name; soak-partial.json is drawn as a soak).
 * Benches call it last; a chart that cannot be drawn is reported, never a
 * reason to lose the run's results.
 */
export function writeBenchChart(name: string, dir = RESULTS_DIR, bench = name): string | undefined {
  const json = join(dir, `${name}.json`);
  if (!existsSync(json)) return undefined;
  try {
    const svg = join(dir, `${name}.svg`);
    writeFileSync(svg, benchSvg(bench, JSON.parse(readFileSync(json, 'utf8')), `${name}.json`));
    return svg;
  } catch (err) {
    console.error(`chart for ${name}: ${(err as Error).message}`);
    return undefined;
  }
}
