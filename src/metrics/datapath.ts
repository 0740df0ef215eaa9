/**
 * Data-path metrics, read from the per-CPU BPF counters when Prometheus
 * scrapes, so the agent does no periodic map walks.
 *
 * Built for 10,000 services (≈30,000 frontends, 80,000 backends): one scrape
 * reads each counter map once (batch lookups in chunks, summed over CPUs
 * into a Float64Array, no Buffer per entry), joins the counts with label
 * strings rendered once per label-table version, and writes the families as
 * exposition text in O(series), pausing for the event loop every few ms.
 * Scrapes that arrive while one is in progress, or within `reuseMs` of the
 * last, share its result: the work per scrape does not grow with the number
 * of scrapers.
 */
import type { Registry } from 'prom-client';
import { addTextRenderer, registry as agentRegistry } from './registry.js';
import { EncodedStrings, ExpositionWriter, escapeLabelValue, familyHeader, formatValue, labelSet } from './exposition.js';
import { MapEntryCounts, type MapRow } from './map-entries.js';
import { BUSY, SingleFlight } from './single-flight.js';
import { readReasonCounters, readTrafficTable, type DatapathCounters, type Pause } from '../datapath/stats.js';
import { DROP_REASONS, MAP, PASS_REASONS, STAT_REASONS, type StatReason } from '../datapath/abi.js';
import type { DatapathMaps } from '../datapath/loader.js';

/** Metric labels of the frontend and backend ids currently programmed. */
export interface DatapathLabels {
  /**
   * Moves whenever an id → label entry is added, changed or removed: an
   * unchanged version promises unchanged maps, and the label sets rendered
   * for it are reused.
   */
  version: number;
  /** id → labels, walked once per new version (a Map, or a generator over the owner's own objects: nothing kept between scrapes). */
  frontends: Iterable<readonly [number, { service: string; frontend: string }]>;
  backends: Iterable<readonly [number, { backend: string }]>;
}

export interface DatapathMetricsSource {
  /** The loaded data path's maps; undefined until it is loaded. */
  maps?(): DatapathMaps | undefined;
  labels(): DatapathLabels;
  /** Entries of the maps the agent writes, by map name, as it counts them while writing; other maps are counted here. */
  mapEntries?(): ReadonlyMap<string, number>;
  mapFull(): Record<string, number>;
  /** Age of the responder's liveness stamp (see stats.readLivenessAgeSeconds); undefined when there is none. */
  livenessAgeSeconds?(): number | undefined;
  /** Transitional, used while maps() is absent: counters read by the agent. */
  counters?(): DatapathCounters | undefined;
  /** Transitional, used while maps() is absent: entries per map. */
  mapPressure?(): MapRow[];
  /** Transitional and ignored: pharos_conntrack_entries comes from the ph_ct row. */
  conntrackEntries?(): number;
}

export interface DatapathMetricsOptions {
  /** Default: the agent's registry. */
  registry?: Registry;
  /** The two per-backend families (most of the output at 80,000 backends); default true. */
  perBackend?: boolean;
  /** A finished scrape is reused for this long (default 1000 ms). */
  reuseMs?: number;
  /** Maps the agent does not count are counted again after this long (default 30 s). */
  countMaxAgeMs?: number;
  /** Awaited between chunks of work (default: one turn of the event loop). */
  pause?: Pause;
}

export interface DatapathMetrics {
  /** The data-path families as exposition text chunks (shared by concurrent callers). */
  render(): Promise<Buffer[]>;
  /**
   * Entries and capacity per map as of the last count (for /v1/state; never
   * waits for a map read). When that is older than countMaxAgeMs a refresh
   * starts in the background; empty until the first one ends.
   */
  mapRows(): MapRow[];
  /** Removes the families from the registry. */
  close(): void;
}

/** Label sets (`{service="…",frontend="…"}`) encoded by position, with the ids they belong to. */
export interface RenderedLabels {
  version: number | undefined;
  frontendIds: Uint32Array;
  frontendLabels: EncodedStrings;
  backendIds: Uint32Array;
  backendLabels: EncodedStrings;
}

/** Summed counters of one scrape: reasons by STAT_REASONS index; traffic as [packets(id), bytes(id)] pairs. */
export interface CounterTables {
  reasons: Float64Array;
  frontends: Float64Array;
  backends?: Float64Array;
}

export interface DatapathSnapshot {
  labels: RenderedLabels;
  counters?: CounterTables;
  maps: MapRow[];
  mapFull: Record<string, number>;
  livenessAgeSeconds?: number;
  scrapeErrors: number;
}

const TRAFFIC = [
  { name: 'pharos_datapath_packets_total', help: 'Packets the XDP data path forwarded, per frontend (client to backend direction)', side: 'frontends', field: 0 },
  { name: 'pharos_datapath_bytes_total', help: 'Bytes the XDP data path forwarded, per frontend', side: 'frontends', field: 1 },
  { name: 'pharos_datapath_backend_packets_total', help: 'Packets the XDP data path sent to each backend', side: 'backends', field: 0 },
  { name: 'pharos_datapath_backend_bytes_total', help: 'Bytes the XDP data path sent to each backend', side: 'backends', field: 1 },
] as const;

const REASONS = [
  { name: 'pharos_datapath_drops_total', help: 'Packets of ours the data path dropped, by reason', label: 'reason', keep: (r: StatReason) => DROP_REASONS.has(r) },
  { name: 'pharos_datapath_passes_total', help: 'Packets of ours the data path handed to the kernel (XDP_PASS), by reason', label: 'reason', keep: (r: StatReason) => PASS_REASONS.has(r) },
  { name: 'pharos_datapath_events_total', help: 'Data path events: conntrack creations and hits, reverse NAT, ARP/NA replies, forwarding verdicts', label: 'event', keep: (r: StatReason) => !DROP_REASONS.has(r) && !PASS_REASONS.has(r) },
] as const;

const REPLIES = [
  { name: 'pharos_l2_arp_replies_total', help: 'ARP requests for announced addresses answered by the XDP responder', reason: 'arp_reply' },
  { name: 'pharos_l2_na_replies_total', help: 'IPv6 neighbour solicitations for announced addresses answered by the XDP responder', reason: 'na_reply' },
] as const;

/** Every family this module renders, by name (the README and the tests list them). */
export const DATAPATH_FAMILIES = [
  ...TRAFFIC.map((f) => f.name), ...REASONS.map((f) => f.name), ...REPLIES.map((f) => f.name),
  'pharos_conntrack_entries', 'pharos_bpf_map_entries', 'pharos_bpf_map_capacity', 'pharos_bpf_map_full_total',
  'pharos_l2_responder_liveness_age_seconds', 'pharos_datapath_scrape_errors_total',
] as const;

/** Awaits `pause` once the work since the last one has run for `sliceMs`: long loops stay a series of short event-loop turns. */
class TimeSlices {
  private start = performance.now();

  constructor(private readonly pause: Pause | undefined, private readonly sliceMs = 5) {}

  async maybePause(): Promise<void> {
    if (!this.pause || performance.now() - this.start < this.sliceMs) return;
    await this.pause();
    this.start = performance.now();
  }
}

/**
 * Label sets for every id of the table; O(ids), done once per label-table
 * version, pausing every few ms. The agent may change its maps during a
 * pause: the result then mixes versions and is tagged with none, so it
 * serves this scrape only.
 */
export async function renderLabels(labels: DatapathLabels, pause?: Pause): Promise<RenderedLabels> {
  const version = labels.version;
  const slices = new TimeSlices(pause);
  const side = async <L>(table: Iterable<readonly [number, L]>, text: (l: L) => string): Promise<{ ids: Uint32Array; strings: EncodedStrings }> => {
    const ids: number[] = [];
    const strings: string[] = [];
    for (const [id, l] of table) {
      ids.push(id);
      strings.push(text(l));
      if ((ids.length & 1023) === 0) await slices.maybePause();
    }
    return { ids: Uint32Array.from(ids), strings: new EncodedStrings(strings) };
  };
  const fe = await side(labels.frontends, (l) => `{service="${escapeLabelValue(l.service)}",frontend="${escapeLabelValue(l.frontend)}"}`);
  const be = await side(labels.backends, (l) => `{backend="${escapeLabelValue(l.backend)}"}`);
  return {
    version: labels.version === version ? version : undefined,
    frontendIds: fe.ids, frontendLabels: fe.strings,
    backendIds: be.ids, backendLabels: be.strings,
  };
}

function maxId(ids: Uint32Array): number {
  let max = -1;
  for (const id of ids) if (id > max) max = id;
  return max;
}

/** The data-path families as exposition text; O(series), pausing every few ms. */
export async function renderDatapathFamilies(s: DatapathSnapshot, opts: { perBackend: boolean; pause?: Pause }): Promise<Buffer[]> {
  const out = new ExpositionWriter();
  const slices = new TimeSlices(opts.pause);
  for (const f of TRAFFIC) {
    if (f.side === 'backends' && !opts.perBackend) continue;
    out.text(familyHeader(f.name, f.help, 'counter'));
    const table = s.counters?.[f.side];
    if (table) {
      const name = Buffer.from(f.name);
      const ids = f.side === 'frontends' ? s.labels.frontendIds : s.labels.backendIds;
      const labels = f.side === 'frontends' ? s.labels.frontendLabels : s.labels.backendLabels;
      for (let i = 0; i < ids.length; i++) {
        out.sample(name, labels, i, table[2 * ids[i]! + f.field] ?? 0);
        if ((i & 1023) === 1023) await slices.maybePause();
      }
    }
    out.text('\n');
  }
  for (const f of REASONS) {
    out.text(familyHeader(f.name, f.help, 'counter'));
    if (s.counters) {
      STAT_REASONS.forEach((reason, i) => {
        if (f.keep(reason)) out.text(`${f.name}{${f.label}="${reason}"} ${formatValue(s.counters!.reasons[i]!)}\n`);
      });
    }
    out.text('\n');
  }
  for (const f of REPLIES) {
    const n = s.counters ? s.counters.reasons[STAT_REASONS.indexOf(f.reason)]! : 0;
    out.text(`${familyHeader(f.name, f.help, 'counter')}${f.name} ${formatValue(n)}\n\n`);
  }
  const conntrack = s.maps.find((m) => m.name === MAP.conntrack)?.entries ?? 0;
  out.text(`${familyHeader('pharos_conntrack_entries', 'Flows in the data path\'s conntrack table', 'gauge')}pharos_conntrack_entries ${formatValue(conntrack)}\n\n`);
  for (const [name, help, field] of [
    ['pharos_bpf_map_entries', 'Entries in each BPF map', 'entries'],
    ['pharos_bpf_map_capacity', 'Capacity (max_entries) of each BPF map', 'capacity'],
  ] as const) {
    out.text(familyHeader(name, help, 'gauge'));
    for (const m of s.maps) out.text(`${name}${labelSet([['map', m.name]])} ${formatValue(m[field])}\n`);
    out.text('\n');
  }
  out.text(familyHeader('pharos_bpf_map_full_total', 'Writes refused because a BPF map was full, by map', 'counter'));
  for (const [map, n] of Object.entries(s.mapFull)) out.text(`pharos_bpf_map_full_total${labelSet([['map', map]])} ${formatValue(n)}\n`);
  out.text('\n');
  out.text(familyHeader('pharos_l2_responder_liveness_age_seconds',
    'Age of the liveness stamp the XDP ARP/NDP responder checks (it falls silent past the configured maximum); absent before the first stamp', 'gauge'));
  if (s.livenessAgeSeconds !== undefined) out.text(`pharos_l2_responder_liveness_age_seconds ${formatValue(s.livenessAgeSeconds)}\n`);
  out.text('\n');
  out.text(familyHeader('pharos_datapath_scrape_errors_total', 'Scrapes whose data-path counters could not be read (their families were left empty)', 'counter'));
  out.text(`pharos_datapath_scrape_errors_total ${s.scrapeErrors}\n`);
  return out.finish();
}

/** Turns the agent's per-id counters (transitional source.counters()) into tables. */
function tablesFromCounters(c: DatapathCounters): CounterTables {
  const table = (m: DatapathCounters['frontends']): Float64Array => {
    let top = -1;
    for (const id of m.keys()) top = Math.max(top, id);
    const t = new Float64Array(2 * (top + 1));
    for (const [id, v] of m) {
      t[2 * id] = Number(v.packets);
      t[2 * id + 1] = Number(v.bytes);
    }
    return t;
  };
  return { reasons: Float64Array.from(STAT_REASONS, (r) => Number(c.reasons[r])), frontends: table(c.frontends), backends: table(c.backends) };
}

const registered = new WeakSet<Registry>();

export function registerDatapathMetrics(source: DatapathMetricsSource, options: DatapathMetricsOptions = {}): DatapathMetrics {
  const reg = options.registry ?? agentRegistry;
  if (registered.has(reg)) throw new Error('data-path metrics are already registered in this registry');
  registered.add(reg);
  const perBackend = options.perBackend ?? true;
  const pause = options.pause ?? (() => new Promise<void>((resolve) => setImmediate(resolve)));
  const countMaxAgeMs = options.countMaxAgeMs ?? 30_000;
  const mapCounts = new MapEntryCounts({ maxAgeMs: countMaxAgeMs, pause });
  const scrapes = new SingleFlight<Buffer[]>({ reuseMs: options.reuseMs ?? 1000, queueLimit: Infinity });
  let labelCache: RenderedLabels | undefined;
  let scrapeErrors = 0;

  const currentLabels = async (): Promise<RenderedLabels> => {
    const labels = source.labels();
    if (labelCache && labelCache.version === labels.version) return labelCache;
    labelCache = await renderLabels(labels, pause);
    return labelCache;
  };

  const readCounters = async (maps: DatapathMaps, labels: RenderedLabels): Promise<CounterTables> => {
    const reasons = readReasonCounters(maps.stats);
    return {
      reasons: Float64Array.from(STAT_REASONS, (r) => Number(reasons[r])),
      frontends: await readTrafficTable(maps.frontendStats, { upToId: maxId(labels.frontendIds), pause }),
      backends: perBackend ? await readTrafficTable(maps.backendStats, { upToId: maxId(labels.backendIds), pause }) : undefined,
    };
  };

  const scrape = async (): Promise<Buffer[]> => {
    const labels = await currentLabels();
    const maps = source.maps?.();
    let counters: CounterTables | undefined;
    let rows: MapRow[] = [];
    try {
      if (maps) {
        counters = await readCounters(maps, labels);
        rows = await mapCounts.refresh(Object.values(maps), source.mapEntries?.());
      } else {
        const legacy = source.counters?.();
        counters = legacy && tablesFromCounters(legacy);
        rows = source.mapPressure?.() ?? [];
      }
    } catch {
      // A map closed under us (agent stopping, data path reloaded): this scrape shows no data-path samples, and says so.
      scrapeErrors++;
      counters = undefined;
    }
    return renderDatapathFamilies({ labels, counters, maps: rows, mapFull: source.mapFull(), livenessAgeSeconds: source.livenessAgeSeconds?.(), scrapeErrors },
      { perBackend, pause });
  };

  const render = async (): Promise<Buffer[]> => {
    const result = await scrapes.run('datapath', scrape);
    return result === BUSY ? [] : result;
  };
  const remove = addTextRenderer(reg, render);
  return {
    render,
    mapRows: () => {
      const maps = source.maps?.();
      if (maps && mapCounts.age() > countMaxAgeMs) mapCounts.refresh(Object.values(maps), source.mapEntries?.()).catch(() => undefined);
      return mapCounts.latest();
    },
    close: () => {
      remove();
      registered.delete(reg);
    },
  };
}
