/**
 * The Grafana dashboard for pharos agents, as data: rows of panels, each a
 * few PromQL queries over the families the agent exports (README
 * "Metrics"). `buildDashboard()` turns it into the JSON Grafana imports
 * (pharos-dashboard.json, written by generate.ts): a `datasource`
 * variable (any Prometheus) and an `instance` variable (the agents). The
 * queries are checked against a real Prometheus scraping an agent in a lab
 * (test/monitoring/prometheus.test.ts).
 */

export interface PanelQuery {
  expr: string;
  legend: string;
}

export interface PanelSpec {
  title: string;
  description: string;
  /** Grafana unit id: pps, binBps, short, percentunit, s, bytes, ... */
  unit: string;
  kind?: 'timeseries' | 'stat';
  queries: PanelQuery[];
}

export interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

const I = 'instance=~"$instance"';
const RATE = '$__rate_interval';

/** The query of a "rate of `metric`, summed by `label`" panel, with that label as its legend. */
function rateBy(metric: string, label: string): PanelQuery[] {
  return [{ expr: `sum by (${label}) (rate(${metric}{${I}}[${RATE}]))`, legend: `{{${label}}}` }];
}
/** Hash maps: the array maps (statistics, next hops, the program table) always read full. */
export const HASH_MAPS = 'ph_frontends|ph_backends|ph_maglev|ph_vips|ph_responder|ph_fe_members|ph_affinity|ph_src_ranges';

export const ROWS: RowSpec[] = [
  {
    title: 'Data path',
    panels: [
      { title: 'Packets per service', unit: 'pps', description: 'Client-to-backend packets the data path forwarded, per service.',
        queries: rateBy('pharos_datapath_packets_total', 'service') },
      { title: 'Bytes per service', unit: 'binBps', description: 'Client-to-backend bytes the data path forwarded, per service.',
        queries: rateBy('pharos_datapath_bytes_total', 'service') },
      { title: 'Packets per backend', unit: 'pps', description: 'Packets sent to each backend (--metrics-per-backend).',
        queries: rateBy('pharos_datapath_backend_packets_total', 'backend') },
      { title: 'Bytes per backend', unit: 'binBps', description: 'Bytes sent to each backend (--metrics-per-backend).',
        queries: rateBy('pharos_datapath_backend_bytes_total', 'backend') },
      { title: 'Drops by reason', unit: 'pps', description: 'Packets of ours the data path dropped (README: data path reasons).',
        queries: rateBy('pharos_datapath_drops_total', 'reason') },
      { title: 'Passed to the kernel by reason', unit: 'pps', description: 'Packets of ours handed to the kernel (XDP_PASS).',
        queries: rateBy('pharos_datapath_passes_total', 'reason') },
      { title: 'Data path events', unit: 'ops', description: 'Conntrack creations and hits, reverse NAT, ARP/NA replies, forwarding verdicts.',
        queries: rateBy('pharos_datapath_events_total', 'event') },
    ],
  },
  {
    title: 'Conntrack and BPF maps',
    panels: [
      { title: 'Conntrack entries', unit: 'short', description: 'Flows in the conntrack table, against its capacity (--conntrack-size; LRU: a full table evicts).',
        queries: [
          { expr: `sum by (instance) (pharos_conntrack_entries{${I}})`, legend: '{{instance}} flows' },
          { expr: `max by (instance) (pharos_bpf_map_capacity{${I}, map="ph_ct"})`, legend: '{{instance}} capacity' },
        ] },
      { title: 'Map fill', unit: 'percentunit', description: 'Entries / capacity of the hash maps a write can find full.',
        queries: [{ expr: `max by (map) (pharos_bpf_map_entries{${I}, map=~"${HASH_MAPS}"} / pharos_bpf_map_capacity{${I}})`, legend: '{{map}}' }] },
      { title: 'Writes refused by a full map', unit: 'short', description: 'Objects refused for lack of room (counted once each); `pharos status` names them.',
        queries: [
          { expr: `sum by (map) (pharos_bpf_map_full_total{${I}})`, legend: '{{map}}' },
          { expr: `sum by (reason) (pharos_datapath_services_not_programmed{${I}})`, legend: 'services not programmed: {{reason}}' },
        ] },
      { title: 'Map memory', unit: 'bytes', description: 'Kernel memory of each BPF map, charged to the agent\'s cgroup.',
        queries: [{ expr: `sum by (map) (pharos_bpf_map_memory_bytes{${I}})`, legend: '{{map}}' }] },
    ],
  },
  {
    title: 'IPAM',
    panels: [
      { title: 'Pool addresses', unit: 'short', description: 'Used and available addresses of each pool and family.',
        queries: [{ expr: `max by (pool, family, state) (pharos_ipam_pool_addresses{${I}})`, legend: '{{pool}} {{family}} {{state}}' }] },
      { title: 'Pool usage', unit: 'percentunit', description: 'Share of each pool in use (the rules warn below 10% free).',
        queries: [{ expr: `max by (pool, family) (pharos_ipam_pool_addresses{${I}, state="used"}) / sum by (pool, family) (max by (pool, family, state) (pharos_ipam_pool_addresses{${I}}))`, legend: '{{pool}} {{family}}' }] },
      { title: 'Services without an address', unit: 'short', kind: 'stat', description: 'Services of ours whose address request is not satisfied, by reason: `pharos explain service NS/NAME`.',
        queries: [{ expr: `max by (reason) (pharos_ipam_services_unsatisfied{${I}})`, legend: '{{reason}}' }] },
      { title: 'Conflicting pools', unit: 'short', kind: 'stat', description: 'Pools that overlap an older pool and offer nothing.',
        queries: [{ expr: `max(pharos_ipam_conflicting_pools{${I}})`, legend: 'conflicting' }] },
    ],
  },
  {
    title: 'L2 announcements',
    panels: [
      { title: 'Addresses announced per node', unit: 'short', description: 'Addresses each node holds and answers ARP/NDP for.',
        queries: [{ expr: `sum by (instance) (pharos_l2_announced{${I}})`, legend: '{{instance}}' }] },
      { title: 'Addresses without a live holder', unit: 'short',
        description: 'Announced addresses whose lease names no live holder, by reason (Kubernetes mode; every agent counts the same cluster-wide leases, so the highest is shown). no-eligible-node: no live node the policies select can carry it.',
        queries: [{ expr: `max by (reason) (pharos_l2_addresses_without_holder{${I}})`, legend: '{{reason}}' }] },
      { title: 'Holder transitions', unit: 'short', description: 'Addresses a node took over (lease acquired) in the last 5 minutes.',
        queries: [{ expr: `sum by (instance) (increase(pharos_l2_lease_transitions_total{${I}}[5m]))`, legend: '{{instance}}' }] },
      { title: 'ARP / NDP answers and gratuitous frames', unit: 'pps', description: 'Answers from the XDP responder, and gratuitous ARP / unsolicited NA sent.',
        queries: [
          { expr: `sum by (instance) (rate(pharos_l2_arp_replies_total{${I}}[${RATE}]))`, legend: '{{instance}} ARP replies' },
          { expr: `sum by (instance) (rate(pharos_l2_na_replies_total{${I}}[${RATE}]))`, legend: '{{instance}} NA replies' },
          { expr: `sum by (instance, family) (rate(pharos_l2_gratuitous_sent_total{${I}}[${RATE}]))`, legend: '{{instance}} gratuitous {{family}}' },
        ] },
      { title: 'Split brain and fences', unit: 'short', description: 'Answers from another MAC for our addresses (5 min), and addresses held but fenced, by reason.',
        queries: [
          { expr: `sum by (instance) (increase(pharos_l2_duplicate_answers_total{${I}}[5m]))`, legend: '{{instance}} duplicate answers' },
          { expr: `sum by (instance, reason) (pharos_l2_fenced{${I}})`, legend: '{{instance}} fenced: {{reason}}' },
        ] },
      { title: 'Responder liveness age', unit: 's', description: 'Age of the stamp the XDP responder checks; past --responder-max-age (3 s) it stops answering.',
        queries: [{ expr: `max by (instance) (pharos_l2_responder_liveness_age_seconds{${I}})`, legend: '{{instance}}' }] },
    ],
  },
  {
    title: 'BGP and BFD',
    panels: [
      { title: 'Sessions established', unit: 'short', description: 'BGP sessions Established (1) per node and neighbor: `pharos bgp peers`.',
        queries: [{ expr: `max by (instance, peer) (pharos_bgp_session_up{${I}})`, legend: '{{instance}} {{peer}}' }] },
      { title: 'Routes', unit: 'short', description: 'Prefixes advertised to and received from each neighbor.',
        queries: [
          { expr: `sum by (peer) (pharos_bgp_advertised_routes{${I}})`, legend: '{{peer}} advertised' },
          { expr: `sum by (peer) (pharos_bgp_received_routes{${I}})`, legend: '{{peer}} received' },
        ] },
      { title: 'UPDATEs and NOTIFICATIONs', unit: 'ops', description: 'BGP messages per neighbor and direction.',
        queries: [
          { expr: `sum by (peer, direction) (rate(pharos_bgp_updates_total{${I}}[${RATE}]))`, legend: '{{peer}} updates {{direction}}' },
          { expr: `sum by (peer, direction) (rate(pharos_bgp_notifications_total{${I}}[${RATE}]))`, legend: '{{peer}} notifications {{direction}}' },
        ] },
      { title: 'Session flaps', unit: 'short', description: 'Times a session left Established, and was dropped by BFD, in the last 15 minutes.',
        queries: [
          { expr: `sum by (peer) (increase(pharos_bgp_session_flaps_total{${I}}[15m]))`, legend: '{{peer}} flaps' },
          { expr: `sum by (peer) (increase(pharos_bgp_bfd_down_total{${I}}[15m]))`, legend: '{{peer}} dropped by BFD' },
        ] },
      { title: 'BFD', unit: 'short', description: 'BFD sessions Up (1) and their detection time (seconds).',
        queries: [
          { expr: `max by (instance, peer) (pharos_bfd_session_up{${I}})`, legend: '{{instance}} {{peer}} up' },
          { expr: `max by (instance, peer) (pharos_bfd_detection_time_seconds{${I}})`, legend: '{{instance}} {{peer}} detection (s)' },
        ] },
    ],
  },
  {
    title: 'Agent health',
    panels: [
      { title: 'Agents scraped', unit: 'short', kind: 'stat', description: 'Agents Prometheus reaches (job name containing "pharos").',
        queries: [{ expr: `sum(up{job=~".*pharos.*", ${I}})`, legend: 'up' }] },
      { title: 'Data path attached', unit: 'short', description: 'Per interface: the pharos programs in place (1); the node is not ready while 0.',
        queries: [
          { expr: `min by (instance, interface) (pharos_datapath_attached{${I}})`, legend: '{{instance}} {{interface}}' },
          { expr: `max by (instance, interface, mode) (pharos_xdp_attached{${I}})`, legend: '{{instance}} {{interface}} {{mode}}' },
        ] },
      { title: 'Kubernetes API reachable', unit: 'short', description: '0 within ~0.75 s of losing the API (1 in manifests mode).',
        queries: [{ expr: `min by (instance) (pharos_k8s_api_reachable{${I}})`, legend: '{{instance}}' }] },
      { title: 'Configuration problems', unit: 'short', description: 'Objects rejected by validation (the last good version stays): `pharos status`.',
        queries: [{ expr: `sum by (instance, source) (pharos_config_problems{${I}})`, legend: '{{instance}} {{source}}' }] },
      { title: 'Reconcile time (p99)', unit: 's', description: 'How long each controller takes to reconcile.',
        queries: [{ expr: `histogram_quantile(0.99, sum by (le, controller) (rate(pharos_reconcile_duration_seconds_bucket{${I}}[5m])))`, legend: '{{controller}}' }] },
      { title: 'Reconcile errors', unit: 'short', description: 'Failed reconciliations in the last 10 minutes, by controller.',
        queries: [{ expr: `sum by (controller) (increase(pharos_reconcile_errors_total{${I}}[10m]))`, legend: '{{controller}}' }] },
      { title: 'Event-loop delay', unit: 's', description: 'Worst delay of the last 10 s and the p99, per agent: a stalled agent answers leases and BFD late.',
        queries: [
          { expr: `max by (instance) (pharos_event_loop_delay_max_seconds{${I}})`, legend: '{{instance}} max' },
          { expr: `histogram_quantile(0.99, sum by (instance, le) (rate(pharos_event_loop_delay_seconds_bucket{${I}}[5m])))`, legend: '{{instance}} p99' },
        ] },
      { title: 'Memory and CPU', unit: 'short', description: 'Resident memory (MiB) and CPU (cores) of each agent.',
        queries: [
          { expr: `pharos_process_resident_memory_bytes{${I}} / 1048576`, legend: '{{instance}} RSS MiB' },
          { expr: `rate(pharos_process_cpu_seconds_total{${I}}[${RATE}])`, legend: '{{instance}} CPU' },
        ] },
      { title: 'Kubernetes API writes', unit: 'ops', description: 'Writes to the API by resource and verb (Kubernetes mode).',
        queries: [{ expr: `sum by (resource, verb) (rate(pharos_k8s_api_writes_total{${I}}[${RATE}]))`, legend: '{{resource}} {{verb}}' }] },
    ],
  },
];

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

/** The importable dashboard: rows of panels laid out two (timeseries) or four (stat) across. */
export function buildDashboard(rows: RowSpec[] = ROWS): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of rows) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const p of row.panels) {
      const kind = p.kind ?? 'timeseries';
      const w = kind === 'stat' ? 6 : 12;
      const h = kind === 'stat' ? 4 : 8;
      if (x + w > 24) { x = 0; y += rowHeight; rowHeight = 0; }
      panels.push({
        id: id++, type: kind, title: p.title, description: p.description, datasource: DATASOURCE,
        gridPos: { h, w, x, y },
        fieldConfig: { defaults: { unit: p.unit, ...(kind === 'timeseries' ? { custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: 10, showPoints: 'never' } } : {}) }, overrides: [] },
        options: kind === 'stat'
          ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'none', textMode: 'auto' }
          : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
        targets: p.queries.map((q, i) => ({ refId: String.fromCharCode(65 + i), datasource: DATASOURCE, expr: q.expr, legendFormat: q.legend, range: true })),
      });
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return {
    title: 'pharos',
    uid: 'pharos-overview',
    description: 'pharos agents: data path, conntrack and maps, IPAM, L2, BGP/BFD, agent health (deploy/monitoring/dashboard.ts)',
    tags: ['pharos', 'load-balancer'],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    time: { from: 'now-1h', to: 'now' },
    refresh: '30s',
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1 },
        {
          name: 'instance', label: 'Agent', type: 'query', datasource: DATASOURCE,
          query: { query: 'label_values(pharos_datapath_attached, instance)', refId: 'instances' },
          definition: 'label_values(pharos_datapath_attached, instance)',
          includeAll: true, multi: true, allValue: '.*', current: { text: 'All', value: '$__all' }, refresh: 2, sort: 1, hide: 0,
        },
      ],
    },
    annotations: { list: [] },
    panels,
  };
}
