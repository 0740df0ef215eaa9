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
import type { BpfMap, MapType } from '../datapath/libbpf.js';
import { countEntries, type Pause } from '../datapath/stats.js';

export interface MapRow {
  name: string;
  entries: number;
  capacity: number;
}

const FIXED_SLOTS: ReadonlySet<MapType> = new Set<MapType>(['array', 'percpu_array', 'array_of_maps', 'devmap', 'prog_array']);

export class MapEntryCounts {
  private readonly counted = new Map<string, { entries: number; at: number }>();
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

  private async count(map: BpfMap): Promise<number> {
    const known = this.counted.get(map.name);
    if (known && performance.now() - known.at < this.opts.maxAgeMs) return known.entries;
    const entries = await countEntries(map, this.opts.pause);
    this.counted.set(map.name, { entries, at: performance.now() });
    return entries;
  }
}
