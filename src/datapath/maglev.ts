/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016), built here and
 * published to the data path as one inner array per frontend.
 *
 * The table depends only on the backends' identities (address + port),
 * their weights and M — not on the order they are given in nor on the
 * node-local backend ids — so every LB node computes the same table, and
 * with the same flow hash (`flowHash`, the C twin is bpf/lib/maglev.h) they
 * send a flow to the same backend without sharing state.
 */

export const DEFAULT_MAGLEV_M = 16381;
/** Maglev's disruption bound needs M much larger than N; the paper uses M > 100 × N. */
export const MAGLEV_MIN_RATIO = 100;

/**
 * The table sizes pharos chooses from: primes that about double. A frontend
 * gets the smallest one with M > 100 × N, so adding a backend changes M (and
 * reshuffles the table) only when N crosses a step, and 10,000 services of 8
 * backends need 1021-slot tables (4 KiB in the kernel) instead of 16381.
 */
export const MAGLEV_SIZES: readonly number[] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
/** Default cap on M (--maglev-max-table-size): 100 × 655 backends at the full ratio. */
export const DEFAULT_MAGLEV_MAX_M = 65521;

export interface MaglevSizing {
  /** One M for every table (--maglev-table-size); otherwise M follows the backend count. */
  fixed?: number;
  /** The largest M to use (a prime). */
  max: number;
}

export interface MaglevSize {
  m: number;
  /** False when M ≤ 100 × N: every backend still gets its share (±1 slot), but more flows move when backends change. */
  fullRatio: boolean;
}

/**
 * M for a table of n backends. Throws a MaglevError when n does not fit
 * (M must exceed N so that every backend owns at least one slot).
 */
export function maglevTableSize(n: number, sizing: MaglevSizing): MaglevSize {
  const count = Math.max(1, n);
  if (sizing.fixed !== undefined) {
    if (sizing.fixed <= count) throw new MaglevError(`${n} backends do not fit a Maglev table of ${sizing.fixed} slots (--maglev-table-size)`);
    return { m: sizing.fixed, fullRatio: sizing.fixed > MAGLEV_MIN_RATIO * count };
  }
  const candidates = MAGLEV_SIZES.filter((m) => m <= sizing.max);
  if (isPrime(sizing.max) && !candidates.includes(sizing.max)) candidates.push(sizing.max);
  const full = candidates.find((m) => m > MAGLEV_MIN_RATIO * count);
  if (full !== undefined) return { m: full, fullRatio: true };
  const largest = candidates[candidates.length - 1];
  if (largest === undefined || largest <= count) {
    throw new MaglevError(`${n} backends do not fit a Maglev table of at most ${sizing.max} slots (--maglev-max-table-size)`);
  }
  return { m: largest, fullRatio: false };
}

export interface MaglevMember {
  /** Stable identity, e.g. `10.0.0.1|8080`; the permutation comes from its hash. */
  key: string;
  /** Relative weight, > 0. */
  weight: number;
}

export class MaglevError extends Error {}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** The smallest prime > 100 × n and ≥ `atLeast`: a table size valid for n backends. */
export function maglevSizeFor(n: number, atLeast = DEFAULT_MAGLEV_M): number {
  let m = Math.max(atLeast, MAGLEV_MIN_RATIO * n + 1);
  while (!isPrime(m)) m++;
  return m;
}

// ---------------------------------------------------------------- hashing

function rotl32(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0;
}

function murmurMix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = rotl32(k, 15);
  k = Math.imul(k, 0x1b873593);
  h = (h ^ k) >>> 0;
  h = rotl32(h, 13);
  return (Math.imul(h, 5) + 0xe6546b64) >>> 0;
}

function murmurFinal(h: number, len: number): number {
  h = (h ^ len) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 x86_32 of bytes. */
export function murmur3(data: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const blocks = data.length >> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i * 4;
    h = murmurMix(h, (data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16) | (data[o + 3]! << 24)) >>> 0);
  }
  const tail = blocks * 4;
  const rest = data.length & 3;
  if (rest > 0) {
    let k = 0;
    for (let i = rest - 1; i >= 0; i--) k = (k << 8) | data[tail + i]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = rotl32(k, 15);
    k = Math.imul(k, 0x1b873593);
    h = (h ^ k) >>> 0;
  }
  return murmurFinal(h, data.length);
}

/**
 * The data path's flow hash over a 40-byte `struct ph_flow` key (abi.ts
 * `encodeFlow`): the nine words src, dst, ports, then proto | family << 8,
 * as bpf/lib/maglev.h `flow_hash` reads them (little-endian loads).
 */
export function flowHash(flowKey: Buffer, seed: number): number {
  let h = seed >>> 0;
  for (let off = 0; off < 36; off += 4) h = murmurMix(h, flowKey.readUInt32LE(off));
  h = murmurMix(h, (flowKey[36]! | (flowKey[37]! << 8)) >>> 0);
  return murmurFinal(h, 40);
}

// ---------------------------------------------------------------- table

const OFFSET_SEED = 0x6d61676c; // "magl"
const SKIP_SEED = 0x65763031; // "ev01"

/**
 * Build the lookup table: entry i holds the index (into `members`) of the
 * backend that owns slot i. Members are processed in key order so the input
 * order does not matter. Weights follow the weighted variant: in round r a
 * member takes a turn when floor((r+1)·w/W) > floor(r·w/W), W the largest
 * weight, so shares are proportional to weights.
 */
export function buildMaglevTable(members: readonly MaglevMember[], m = DEFAULT_MAGLEV_M, minRatio = MAGLEV_MIN_RATIO): Int32Array {
  const table = new Int32Array(m).fill(-1);
  if (members.length === 0) return table;
  if (!isPrime(m)) throw new MaglevError(`Maglev table size ${m} is not prime`);
  if (m <= Math.max(1, minRatio) * members.length) {
    throw new MaglevError(`Maglev table size ${m} is too small for ${members.length} backends (needs M > ${Math.max(1, minRatio)} × N; use ${maglevSizeFor(members.length, m)})`);
  }
  const order = members.map((mb, index) => ({ mb, index })).sort((a, b) => (a.mb.key < b.mb.key ? -1 : a.mb.key > b.mb.key ? 1 : 0));
  for (let i = 1; i < order.length; i++) {
    if (order[i]!.mb.key === order[i - 1]!.mb.key) throw new MaglevError(`duplicate Maglev member ${order[i]!.mb.key}`);
  }
  for (const { mb } of order) {
    if (!(mb.weight > 0) || !Number.isFinite(mb.weight)) throw new MaglevError(`Maglev member ${mb.key} has weight ${mb.weight}; weights must be > 0`);
  }
  const n = order.length;
  // pos[i] walks member i's permutation (offset + k·skip) mod m by additions: no multiply or modulo per probe.
  const pos = new Int32Array(n);
  const skip = new Int32Array(n);
  const weights = order.map((o) => o.mb.weight);
  const maxWeight = Math.max(...weights);
  const uniform = weights.every((w) => w === maxWeight);
  for (let i = 0; i < n; i++) {
    const key = order[i]!.mb.key;
    pos[i] = murmur3Key(key, OFFSET_SEED) % m;
    skip[i] = (murmur3Key(key, SKIP_SEED) % (m - 1)) + 1;
  }
  let filled = 0;
  // Each round fills at least one slot (the heaviest member always gets a turn), so m rounds bound the loop.
  for (let round = 0; filled < m && round <= 2 * m; round++) {
    for (let i = 0; i < n && filled < m; i++) {
      if (!uniform) {
        const w = weights[i]!;
        if (w !== maxWeight && Math.floor(((round + 1) * w) / maxWeight) === Math.floor((round * w) / maxWeight)) continue;
      }
      let slot = pos[i]!;
      const step = skip[i]!;
      while (table[slot] !== -1) {
        slot += step;
        if (slot >= m) slot -= m;
      }
      table[slot] = order[i]!.index;
      filled++;
      slot += step;
      pos[i] = slot >= m ? slot - m : slot;
    }
  }
  return table;
}

/** murmur3 of a member key's UTF-8 bytes; ASCII keys (addresses and ports) are hashed without encoding them first. */
function murmur3Key(key: string, seed: number): number {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) > 0x7f) return murmur3(new TextEncoder().encode(key), seed);
  let h = seed >>> 0;
  const blocks = key.length >> 2;
  for (let b = 0; b < blocks; b++) {
    const o = b * 4;
    h = murmurMix(h, (key.charCodeAt(o) | (key.charCodeAt(o + 1) << 8) | (key.charCodeAt(o + 2) << 16) | (key.charCodeAt(o + 3) << 24)) >>> 0);
  }
  const tail = blocks * 4;
  const rest = key.length & 3;
  if (rest > 0) {
    let k = 0;
    for (let i = rest - 1; i >= 0; i--) k = (k << 8) | key.charCodeAt(tail + i);
    k = Math.imul(k, 0xcc9e2d51);
    k = rotl32(k, 15);
    k = Math.imul(k, 0x1b873593);
    h = (h ^ k) >>> 0;
  }
  return murmurFinal(h, key.length);
}

/** Fraction of slots whose owner changed between two tables of member keys. */
export function tableDisruption(a: readonly string[], b: readonly string[]): number {
  if (a.length !== b.length) throw new MaglevError('tables of different sizes');
  let moved = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) moved++;
  return moved / a.length;
}
