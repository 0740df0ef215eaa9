/**
 * Reads the data path's per-CPU counters and sums them over CPUs: the
 * per-reason counters (enum ph_stat ↔ abi.STAT_REASONS), and packets/bytes
 * per frontend id and per backend id (client → backend direction).
 */
import type { BpfMap } from './libbpf.js';
import { decodeTraffic, u32Key, STAT_REASONS, type StatReason, type Traffic } from './abi.js';
import type { DatapathMaps } from './loader.js';

export type ReasonCounters = Record<StatReason, bigint>;

export function readReasonCounters(stats: BpfMap): ReasonCounters {
  const out = Object.fromEntries(STAT_REASONS.map((r) => [r, 0n])) as ReasonCounters;
  STAT_REASONS.forEach((reason, i) => {
    const v = stats.lookup(u32Key(i));
    if (!v) return;
    for (const cpu of stats.splitPerCpu(v)) out[reason] += cpu.readBigUInt64LE(0);
  });
  return out;
}

/** Summed traffic of the given ids (ids absent from the map read as zero). */
export function readTraffic(map: BpfMap, ids: Iterable<number>): Map<number, Traffic> {
  const out = new Map<number, Traffic>();
  for (const id of ids) {
    const v = map.lookup(u32Key(id));
    const sum: Traffic = { packets: 0n, bytes: 0n };
    if (v) {
      for (const cpu of map.splitPerCpu(v)) {
        const t = decodeTraffic(cpu);
        sum.packets += t.packets;
        sum.bytes += t.bytes;
      }
    }
    out.set(id, sum);
  }
  return out;
}

export interface DatapathCounters {
  reasons: ReasonCounters;
  frontends: Map<number, Traffic>;
  backends: Map<number, Traffic>;
}

export function readCounters(maps: DatapathMaps, frontendIds: Iterable<number>, backendIds: Iterable<number>): DatapathCounters {
  return {
    reasons: readReasonCounters(maps.stats),
    frontends: readTraffic(maps.frontendStats, frontendIds),
    backends: readTraffic(maps.backendStats, backendIds),
  };
}
