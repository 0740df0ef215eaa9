/**
 * Reads the data path's per-CPU counters and sums them over CPUs: the
 * per-reason counters (enum ph_stat ↔ abi.STAT_REASONS), and packets/bytes
 * per frontend id and per backend id (client → backend direction).
 *
 * Big maps are read with batch lookups into fixed buffers, in chunks: one
 * batch of the whole 131,072-slot per-CPU array blocks for 50-100 ms and
 * needs a value buffer of slots × CPUs × 16 bytes (268 MB at 128 CPUs);
 * chunks of at most 1,024 entries and 256 KiB block for a few ms each, and a
 * caller may yield between them.
 */
import type { BpfMap } from '../native/libbpf.js';
import { decodeLiveness, decodeTraffic, u32Key, STAT_REASONS, type StatReason, type Traffic } from './abi.js';
import type { DatapathMaps } from './loader.js';

export type ReasonCounters = Record<StatReason, bigint>;

/** What a caller awaits between chunks (e.g. a turn of the event loop); nothing by default. */
export type Pause = () => Promise<void>;

const CHUNK_ENTRIES = 1024;
const CHUNK_VALUE_BYTES = 256 * 1024;
const TWO_POW_32 = 2 ** 32;

/** A zeroed Buffer on its own ArrayBuffer (offset 0), so 32-bit views over it are aligned. */
function alignedBuffer(bytes: number): Buffer {
  return Buffer.from(new ArrayBuffer(bytes));
}

type OnChunk = (keys: Buffer, values: Buffer, count: number) => boolean | void;

/** Reusable buffers for one map's batch lookups: at most CHUNK_ENTRIES entries and CHUNK_VALUE_BYTES of values. */
function chunkBuffers(map: BpfMap): { cursor: Buffer; keys: Buffer; values: Buffer } {
  const entries = Math.max(1, Math.min(CHUNK_ENTRIES, Math.floor(CHUNK_VALUE_BYTES / map.valueBufferSize)));
  return { cursor: Buffer.alloc(map.keySize + 8), keys: alignedBuffer(entries * map.keySize), values: alignedBuffer(entries * map.valueBufferSize) };
}

/**
 * Batch lookups over `map` in chunks; `onChunk` sees the raw records
 * (`count` keys of keySize and values of valueBufferSize bytes) and may
 * return false to stop early. `pause` is awaited between chunks.
 */
export async function readInChunks(map: BpfMap, onChunk: OnChunk, pause?: Pause): Promise<void> {
  const { cursor, keys, values } = chunkBuffers(map);
  for (let first = true; ; first = false) {
    const { count, done } = map.lookupBatch(cursor, first, keys, values);
    if (count > 0 && onChunk(keys, values, count) === false) return;
    if (done) return;
    if (pause) await pause();
  }
}

/** readInChunks without pauses, for small maps (ph_stats: one call). */
function readInChunksNow(map: BpfMap, onChunk: OnChunk): void {
  const { cursor, keys, values } = chunkBuffers(map);
  for (let first = true; ; first = false) {
    const { count, done } = map.lookupBatch(cursor, first, keys, values);
    if (count > 0 && onChunk(keys, values, count) === false) return;
    if (done) return;
  }
}

export function readReasonCounters(stats: BpfMap): ReasonCounters {
  const out = Object.fromEntries(STAT_REASONS.map((r) => [r, 0n])) as ReasonCounters;
  const stride = stats.valueBufferSize / cpusOf(stats);
  readInChunksNow(stats, (keys, values, count) => {
    for (let i = 0; i < count; i++) {
      const reason = STAT_REASONS[keys.readUInt32LE(i * 4)];
      if (!reason) continue;
      for (let off = i * stats.valueBufferSize, end = off + stats.valueBufferSize; off < end; off += stride) out[reason] += values.readBigUInt64LE(off);
    }
  });
  return out;
}

/** Possible CPUs a per-CPU map's value spans (1 for other maps). */
function cpusOf(map: BpfMap): number {
  return map.perCpu ? map.valueBufferSize / (Math.ceil(map.valueSize / 8) * 8) : 1;
}

/**
 * Packets and bytes per id of a per-CPU traffic array (struct ph_traffic:
 * two u64), summed over CPUs, as [packets(0), bytes(0), packets(1), ...].
 * Ids above `upToId` are not read (an array is read in key order, so the
 * cost follows the highest id in use, not the capacity). Sums are doubles:
 * exact below 2^53, as Prometheus keeps them anyway.
 */
export async function readTrafficTable(map: BpfMap, opts: { upToId?: number; pause?: Pause } = {}): Promise<Float64Array> {
  const upToId = Math.min(opts.upToId ?? map.maxEntries - 1, map.maxEntries - 1);
  const table = new Float64Array(2 * Math.max(0, upToId + 1));
  if (upToId < 0) return table;
  const cpus = cpusOf(map);
  const wordsPerValue = map.valueBufferSize / 4;
  const wordsPerCpu = wordsPerValue / cpus;
  await readInChunks(map, (keys, values, count) => {
    const ids = new Uint32Array(keys.buffer, keys.byteOffset, count);
    const words = new Uint32Array(values.buffer, values.byteOffset, count * wordsPerValue);
    for (let i = 0; i < count; i++) {
      const id = ids[i]!;
      if (id > upToId) return false;
      let packets = 0;
      let bytes = 0;
      for (let w = i * wordsPerValue, end = w + wordsPerValue; w < end; w += wordsPerCpu) {
        packets += words[w]! + words[w + 1]! * TWO_POW_32;
        bytes += words[w + 2]! + words[w + 3]! * TWO_POW_32;
      }
      table[2 * id] = packets;
      table[2 * id + 1] = bytes;
    }
    return true;
  }, opts.pause);
  return table;
}

/**
 * Entries in a map, by batch lookups in chunks (no copy of the map kept);
 * a key walk where the map type has no batch lookup (lpm_trie).
 */
export async function countEntries(map: BpfMap, pause?: Pause): Promise<number> {
  let n = 0;
  try {
    await readInChunks(map, (_keys, _values, count) => {
      n += count;
    }, pause);
    return n;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (n > 0 || (code !== 'ENOTSUPP' && code !== 'EOPNOTSUPP' && code !== 'EINVAL')) throw err;
    return map.keys().length;
  }
}

/** Summed traffic of the given ids (one lookup each: for a few ids; ids absent from the map read as zero). */
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

/**
 * Seconds since the agent last stamped its liveness in ph_liveness (the
 * stamp the XDP responder checks), by the same clock (CLOCK_MONOTONIC, which
 * process.hrtime reads); undefined before the first stamp.
 */
export function readLivenessAgeSeconds(liveness: BpfMap, nowNs: bigint = process.hrtime.bigint()): number | undefined {
  const value = liveness.lookup(u32Key(0));
  const stamp = value ? decodeLiveness(value) : 0n;
  if (stamp === 0n) return undefined;
  return Number(nowNs - stamp) / 1e9;
}

export interface DatapathCounters {
  reasons: ReasonCounters;
  frontends: Map<number, Traffic>;
  backends: Map<number, Traffic>;
}

/** One lookup per id: what the agent calls until it hands its maps to registerDatapathMetrics (transitional). */
export function readCounters(maps: DatapathMaps, frontendIds: Iterable<number>, backendIds: Iterable<number>): DatapathCounters {
  return {
    reasons: readReasonCounters(maps.stats),
    frontends: readTraffic(maps.frontendStats, frontendIds),
    backends: readTraffic(maps.backendStats, backendIds),
  };
}
