/**
 * Pool analysis: parse every pool's blocks, check its selector, and decide
 * which pools conflict. Pure and independent of services.
 *
 * Rules (issue 4):
 * - Pools are taken oldest first (creationTimestamp, then name; in manifests
 *   mode the time the agent first saw the pool, which a file cannot set, so a
 *   pool added over a serving one is always the newer one whatever
 *   creationTimestamp it carries). A pool whose own blocks overlap, or that
 *   overlaps an older non-conflicting pool, is conflicting and hands out
 *   nothing (services keep what they hold in it: see `keepingPool` in
 *   allocator.ts); the conflict clears when the overlap goes.
 * - `allowFirstLastIPs: No` removes the first and last address of each CIDR
 *   block of prefix < /31 (IPv4) or < /127 (IPv6); ranges never reserve.
 * - Special-purpose addresses (unspecified, loopback, link-local, multicast,
 *   broadcast) are never handed out, whatever the blocks cover.
 * - A pool with an invalid block or selector is `invalid`: its valid blocks
 *   still keep the addresses services already hold (nothing already serving
 *   moves because of a typo), but it hands out nothing new.
 */
import { FAMILY_BITS, parseBlock, rangeContains, rangesOverlap, formatRange, tryParseAddress, type AddressRange, type ParsedBlock } from '../model/cidr.js';
import { validateSelector } from '../model/selector.js';
import type { FieldError, IPFamily, IPPool } from '../model/types.js';

export type PoolState = 'active' | 'disabled' | 'invalid' | 'conflicting';

export interface PoolConflict {
  /** The older pool this one overlaps, or undefined for a self-overlap. */
  withPool?: string;
  message: string;
}

export interface AnalysedPool {
  name: string;
  pool: IPPool;
  order: string;
  /** Valid blocks, whole (reservations not removed); in spec order. */
  blocks: (ParsedBlock & { field: string })[];
  /** What may be handed out, per family, after reservations, sorted by address. */
  allocatable: Record<IPFamily, AddressRange[]>;
  errors: FieldError[];
  /** The selector could not be checked: the pool keeps what it holds, regardless of selector. */
  selectorInvalid: boolean;
  conflict?: PoolConflict;
  state: PoolState;
}

export function poolOrder(pool: IPPool): string {
  return `${pool.meta.firstSeen ?? pool.meta.creationTimestamp ?? ''}\u0000${pool.meta.name}`;
}

/**
 * Addresses no pool hands out, whatever its blocks say: unspecified, "this
 * network", loopback, link-local, multicast and the limited broadcast (a
 * `0.0.0.0/0` or `::/0` pool would otherwise give out `0.0.0.0` or `::`).
 */
const SPECIAL_PURPOSE: readonly AddressRange[] = [
  ['IPv4', '0.0.0.0', 8], ['IPv4', '127.0.0.0', 8], ['IPv4', '169.254.0.0', 16], ['IPv4', '224.0.0.0', 4], ['IPv4', '255.255.255.255', 32],
  ['IPv6', '::', 128], ['IPv6', '::1', 128], ['IPv6', 'fe80::', 10], ['IPv6', 'ff00::', 8],
].map(([family, address, prefix]) => {
  const parsed = parseBlock({ cidr: `${address}/${prefix}` }, 'special');
  if (!parsed.ok) throw new Error(`special-purpose range ${address}/${prefix}`);
  return { family: family as IPFamily, first: parsed.value.first, last: parsed.value.last };
});

/** `r` without the special-purpose ranges of its family (zero, one or two pieces each). */
function withoutSpecialPurpose(r: AddressRange): AddressRange[] {
  let pieces = [r];
  for (const s of SPECIAL_PURPOSE) {
    if (s.family !== r.family) continue;
    pieces = pieces.flatMap((p) => {
      if (s.last < p.first || s.first > p.last) return [p];
      const out: AddressRange[] = [];
      if (p.first < s.first) out.push({ family: p.family, first: p.first, last: s.first - 1n });
      if (p.last > s.last) out.push({ family: p.family, first: s.last + 1n, last: p.last });
      return out;
    });
  }
  return pieces;
}

function reserve(block: ParsedBlock, allowFirstLast: boolean): AddressRange | undefined {
  if (allowFirstLast || block.prefixLength === undefined) return block;
  // /31 and /127 are point-to-point sized; /32 and /128 single addresses: nothing to reserve.
  if (block.prefixLength >= FAMILY_BITS[block.family] - 1) return block;
  return { family: block.family, first: block.first + 1n, last: block.last - 1n };
}

export function analysePool(pool: IPPool): AnalysedPool {
  const errors: FieldError[] = [];
  const blocks: AnalysedPool['blocks'] = [];
  pool.blocks.forEach((block, i) => {
    const field = `spec.blocks[${i}]`;
    const parsed = parseBlock(block, field);
    if (parsed.ok) blocks.push({ ...parsed.value, field });
    else errors.push(parsed.error);
  });
  const selectorErrors = pool.serviceSelector ? validateSelector(pool.serviceSelector, 'spec.serviceSelector') : [];
  errors.push(...selectorErrors);
  const allocatable: Record<IPFamily, AddressRange[]> = { IPv4: [], IPv6: [] };
  for (const b of blocks) {
    const r = reserve(b, pool.allowFirstLastIPs);
    if (r) allocatable[b.family].push(...withoutSpecialPurpose(r));
  }
  for (const family of ['IPv4', 'IPv6'] as const) allocatable[family].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  let conflict: PoolConflict | undefined;
  const sorted = [...blocks].sort((a, b) => (a.family !== b.family ? (a.family < b.family ? -1 : 1) : a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  for (let i = 1; i < sorted.length && !conflict; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (rangesOverlap(a, b)) {
      conflict = { message: `${a.field} (${formatRange(a)}) overlaps ${b.field} (${formatRange(b)}) of the same pool` };
    }
  }
  return {
    name: pool.meta.name,
    pool,
    order: poolOrder(pool),
    blocks,
    allocatable,
    errors,
    selectorInvalid: selectorErrors.length > 0,
    ...(conflict ? { conflict } : {}),
    state: conflict ? 'conflicting' : errors.length > 0 ? 'invalid' : pool.disabled ? 'disabled' : 'active',
  };
}

/** Every pool analysed, oldest first, with cross-pool conflicts decided. */
export function analysePools(pools: Iterable<IPPool>): AnalysedPool[] {
  const analysed = [...pools].map(analysePool).sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
  const kept: AnalysedPool[] = [];
  for (const p of analysed) {
    if (p.state === 'conflicting') continue;
    let clash: { other: AnalysedPool; mine: AddressRange; theirs: AddressRange } | undefined;
    for (const other of kept) {
      for (const mine of p.blocks) {
        const theirs = other.blocks.find((b) => rangesOverlap(mine, b));
        if (theirs) { clash = { other, mine, theirs }; break; }
      }
      if (clash) break;
    }
    if (clash) {
      p.conflict = {
        withPool: clash.other.name,
        message: `${formatRange(clash.mine)} overlaps ${formatRange(clash.theirs)} of older pool ${clash.other.name}`,
      };
      p.state = 'conflicting';
    } else {
      kept.push(p);
    }
  }
  return analysed;
}

/**
 * The pool each address lies in (the oldest non-conflicting pool whose
 * blocks contain it, as analysePools decides overlaps), for `pharos explain`
 * and /v1/state: every node can answer from the pools alone, whoever
 * allocated. Addresses in no pool are left out.
 */
export function poolsOfAddresses(pools: Iterable<IPPool>, addresses: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (addresses.length === 0) return out;
  const analysed = analysePools(pools).filter((p) => p.state !== 'conflicting');
  for (const text of addresses) {
    const addr = tryParseAddress(text);
    if (!addr) continue;
    const pool = analysed.find((p) => p.blocks.some((b) => b.family === addr.family && rangeContains(b, addr)));
    if (pool) out[text] = pool.name;
  }
  return out;
}
