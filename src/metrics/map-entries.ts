/**
 * Entries and capacity of each BPF map (pharos_bpf_map_entries,
 * pharos_bpf_map_capacity, pharos_conntrack_entries and /v1/state), without
 * walking every key on every scrape:
 * - maps the agent writes: the count it keeps as it writes (`owned`);
 * - fixed-slot maps (arrays, devmaps, prog and map-in-map arrays): capacity;
 * - the rest (conntrack, reverse NAT and affinity, written by the data path):
 *   counted by batch lookups in chunks, with pauses between them, at most
 *   once per `maxAgeMs` per map (a full 262,144-entry conntrack costs
 *   ~160-180 ms of kernel time in ~5 ms slices).
 */
import type { BpfMap, MapType } from '../native/libbpf.js';
import { countEntries, type Pause } from '../datapath/stats.js';

export interface MapRow {
  name: string;
  entries: number;
  capacity: number;
}

const FIXED_SLOTS: ReadonlySet<MapType> = new Set<MapType>(['array', 'percpu_array', 'array_of_maps', 'devmap', 'prog_array']);

/** The shortest interval between two counts of one map. */
const MIN_RECOUNT_MS = 1000;

export class MapEntryCounts {
  private readonly counted = new Map<string, { entries: number; at: number; costMs: number }>();
  private latestRows: MapRow[] = [];
  private latestAt = -Infinity;
  private refreshing?: Promise<MapRow[]>;

  constructor(private readonly opts: { maxAgeMs: number; pause?: Pause }) {}

  /** Rows for `maps`; concurrent callers share one refresh. */
  refresh(maps: Iterable<BpfMap>, owned?: ReadonlyMap<string, number>): Promise<MapRow[]> {
    this.refreshing ??= this.compute([...maps], owned).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** The rows of the last refresh (empty before the first one); never reads a map. */
  latest(): MapRow[] {
    return this.latestRows;
  }

  /** Milliseconds since the last refresh ended (Infinity before the first). */
  age(): number {
    return performance.now() - this.latestAt;
  }

  private async compute(maps: BpfMap[], owned: ReadonlyMap<string, number> | undefined): Promise<MapRow[]> {
    const rows: MapRow[] = [];
    for (const map of maps) {
      const entries = owned?.get(map.name) ?? (FIXED_SLOTS.has(map.type) ? map.maxEntries : await this.count(map));
      rows.push({ name: map.name, entries, capacity: map.maxEntries });
    }
    this.latestRows = rows;
    this.latestAt = performance.now();
    return rows;
  }

  /**
   * A map is counted again once its count is older than a hundred times what
   * counting it cost (so counting takes at most ~1% of the time), within
   * [MIN_RECOUNT_MS, maxAgeMs]: a small conntrack map is counted every
   * second, a full 262,144-entry one (~180 ms) every ~18 s.
   */
  private async count(map: BpfMap): Promise<number> {
    const known = this.counted.get(map.name);
    const maxAge = known ? Math.min(this.opts.maxAgeMs, Math.max(MIN_RECOUNT_MS, known.costMs * 100)) : 0;
    if (known && performance.now() - known.at < maxAge) return known.entries;
    const t0 = performance.now();
    const entries = await countEntries(map, this.opts.pause);
    this.counted.set(map.name, { entries, at: performance.now(), costMs: performance.now() - t0 });
    return entries;
  }
}
