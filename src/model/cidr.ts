/**
 * IP address, CIDR and range arithmetic on BigInt, for IPv4 and IPv6 alike.
 *
 * Addresses are `{ family, value }` with the value as an unsigned BigInt, so a
 * /64 (2^64 addresses) is as cheap as a /30: nothing here ever allocates per
 * address. Sets of addresses are kept as sorted disjoint intervals
 * (`IntervalSet`), which is how the IPAM keeps its free space.
 *
 * Parsing is strict and every failure names the field it came from, so a
 * pool condition or a service condition can point the user at the exact spot.
 */
import type { FieldError, IPFamily, PoolBlock } from './types.js';

export interface IPAddress {
  family: IPFamily;
  value: bigint;
}

/** An inclusive range of addresses of one family. */
export interface AddressRange {
  family: IPFamily;
  first: bigint;
  last: bigint;
}

/** A pool block after parsing: its full range, and whether it came from a CIDR (and which prefix). */
export interface ParsedBlock extends AddressRange {
  /** Prefix length for `{cidr}` blocks; undefined for start/stop ranges. */
  prefixLength?: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: FieldError };

export const FAMILY_BITS: Readonly<Record<IPFamily, number>> = { IPv4: 32, IPv6: 128 };

export function familyMax(family: IPFamily): bigint {
  return (1n << BigInt(FAMILY_BITS[family])) - 1n;
}

function fail<T>(field: string, message: string): Parsed<T> {
  return { ok: false, error: { field, message } };
}

// ---------------------------------------------------------------- parsing

const DECIMAL_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Why `text` is not an IPv4 address, or its value. */
function parseIPv4(text: string): bigint | string {
  const parts = text.split('.');
  if (parts.length !== 4) return 'an IPv4 address has four dot-separated octets';
  let value = 0n;
  for (const part of parts) {
    // Leading zeros are refused: some parsers read them as octal, so they are ambiguous.
    if (!DECIMAL_OCTET.test(part)) return `octet ${JSON.stringify(part)} is not a decimal number 0-255 without leading zeros`;
    const n = Number(part);
    if (n > 255) return `octet ${part} is larger than 255`;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseIPv6(text: string): bigint | string {
  if (text.includes('%')) return 'zone identifiers (%...) are not allowed here';
  const gap = text.indexOf('::');
  if (gap >= 0 && text.indexOf('::', gap + 1) >= 0) return 'an IPv6 address may contain "::" only once';
  const split = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = gap >= 0 ? split(text.slice(0, gap)) : split(text);
  const tail = gap >= 0 ? split(text.slice(gap + 2)) : [];
  const groups: number[][] = [[], []];
  const all = [head, tail];
  for (let side = 0; side < 2; side++) {
    const parts = all[side]!;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const isLast = side === (gap >= 0 ? 1 : 0) && i === parts.length - 1;
      if (part.includes('.')) {
        if (!isLast) return 'an embedded IPv4 address may only end an IPv6 address';
        const v4 = parseIPv4(part);
        if (typeof v4 === 'string') return `embedded IPv4 ${JSON.stringify(part)}: ${v4}`;
        groups[side]!.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
        continue;
      }
      if (!HEX_GROUP.test(part)) return `group ${JSON.stringify(part)} is not 1-4 hexadecimal digits`;
      groups[side]!.push(parseInt(part, 16));
    }
  }
  const count = groups[0]!.length + groups[1]!.length;
  if (gap < 0 && count !== 8) return `an IPv6 address has eight groups, this has ${count}`;
  if (gap >= 0 && count > 7) return 'too many groups around "::"';
  const full = [...groups[0]!, ...new Array<number>(8 - count).fill(0), ...groups[1]!];
  let value = 0n;
  for (const g of full) value = (value << 16n) | BigInt(g);
  return value;
}

/** Parse an address; IPv6 if it contains a colon. */
export function parseAddress(text: string, field: string): Parsed<IPAddress> {
  const trimmed = text.trim();
  if (trimmed === '') return fail(field, 'an IP address is required, got an empty string');
  const family: IPFamily = trimmed.includes(':') ? 'IPv6' : 'IPv4';
  const value = family === 'IPv4' ? parseIPv4(trimmed) : parseIPv6(trimmed);
  if (typeof value === 'string') return fail(field, `${JSON.stringify(text)} is not an IP address: ${value}`);
  return { ok: true, value: { family, value } };
}

/** Convenience when the caller has no field to name (already validated input). */
export function tryParseAddress(text: string): IPAddress | undefined {
  const r = parseAddress(text, '');
  return r.ok ? r.value : undefined;
}

/**
 * Parse `address/prefix`. Host bits are allowed and masked off (Cilium and
 * MetalLB manifests in the wild write `10.0.10.1/24`-style blocks); the range
 * is the whole network.
 */
export function parseCidr(text: string, field: string): Parsed<ParsedBlock> {
  const slash = text.indexOf('/');
  if (slash < 0) return fail(field, `${JSON.stringify(text)} is not a CIDR: missing "/prefix-length"`);
  const addr = parseAddress(text.slice(0, slash), field);
  if (!addr.ok) return fail(field, `${JSON.stringify(text)} is not a CIDR: ${addr.error.message}`);
  const prefixText = text.slice(slash + 1);
  const bits = FAMILY_BITS[addr.value.family];
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
    return fail(field, `${JSON.stringify(text)} is not a CIDR: prefix length must be a number 0-${bits} for ${addr.value.family}`);
  }
  const prefixLength = Number(prefixText);
  const hostBits = BigInt(bits - prefixLength);
  const hostMask = (1n << hostBits) - 1n;
  const first = addr.value.value & ~hostMask & familyMax(addr.value.family);
  return { ok: true, value: { family: addr.value.family, first, last: first | hostMask, prefixLength } };
}

/** Parse `start`..`stop` (inclusive); both of one family, start not after stop. */
export function parseRange(start: string, stop: string, field: string): Parsed<ParsedBlock> {
  const a = parseAddress(start, `${field}.start`);
  if (!a.ok) return a;
  const b = parseAddress(stop === '' ? start : stop, `${field}.stop`);
  if (!b.ok) return b;
  if (a.value.family !== b.value.family) {
    return fail(`${field}.stop`, `${JSON.stringify(stop)} is ${b.value.family} but start ${JSON.stringify(start)} is ${a.value.family}: a range holds one family`);
  }
  if (b.value.value < a.value.value) {
    return fail(`${field}.stop`, `${JSON.stringify(stop)} comes before start ${JSON.stringify(start)}`);
  }
  return { ok: true, value: { family: a.value.family, first: a.value.value, last: b.value.value } };
}

/** A pool block (`{cidr}` or `{start, stop}`) at `field` (e.g. `spec.blocks[0]`). */
export function parseBlock(block: PoolBlock, field: string): Parsed<ParsedBlock> {
  if ('cidr' in block) return parseCidr(block.cidr, `${field}.cidr`);
  return parseRange(block.start, block.stop ?? '', field);
}

// ---------------------------------------------------------------- bytes

const LOW_64 = (1n << 64n) - 1n;

/** The address `text` names, or an error naming it: for wire encoders, whose input was validated upstream. */
function mustParse(text: string): IPAddress {
  const r = parseAddress(text, '');
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

/**
 * Writes the 4 (IPv4) or 16 (IPv6) bytes of `text` at `off`, network order,
 * and returns its family: the one encoder behind BPF map keys, frames and
 * BGP messages. Throws when `text` is not an address.
 */
export function writeAddressBytes(buf: Buffer, off: number, text: string): IPFamily {
  const a = mustParse(text);
  if (a.family === 'IPv4') {
    buf.writeUInt32BE(Number(a.value), off);
  } else {
    buf.writeBigUInt64BE(a.value >> 64n, off);
    buf.writeBigUInt64BE(a.value & LOW_64, off + 8);
  }
  return a.family;
}

/** The 4 or 16 network-order bytes of `text`; throws when it is not an address. */
export function addressBytes(text: string): Buffer {
  const out = Buffer.alloc(text.includes(':') ? 16 : 4);
  writeAddressBytes(out, 0, text);
  return out;
}

// ---------------------------------------------------------------- formatting

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed). */
export function formatAddress(family: IPFamily, value: bigint): string {
  if (family === 'IPv4') {
    const n = Number(value);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  return ipv6Text(groups);
}

/** Text form of 4 or 16 address bytes in network order (wire formats: BPF maps, packets, BGP NLRI). */
export function formatAddressBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new Error(`address of ${bytes.length} bytes`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  return ipv6Text(groups);
}

/** `address:port`, with IPv6 addresses in brackets. */
export function formatEndpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** RFC 5952 text of eight 16-bit groups: lowercase, the longest run (≥ 2) of zero groups as `::`. */
function ipv6Text(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 1; // RFC 5952 4.2.2: a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) { bestStart = i; bestLength = j - i; }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

export function formatIP(addr: IPAddress): string {
  return formatAddress(addr.family, addr.value);
}

/** Canonical form of an address string, or undefined if it is not one. */
export function canonicalAddress(text: string): string | undefined {
  const a = tryParseAddress(text);
  return a ? formatIP(a) : undefined;
}

export function formatRange(r: AddressRange): string {
  return r.first === r.last
    ? formatAddress(r.family, r.first)
    : `${formatAddress(r.family, r.first)}-${formatAddress(r.family, r.last)}`;
}

// ---------------------------------------------------------------- arithmetic

export function rangeSize(r: Pick<AddressRange, 'first' | 'last'>): bigint {
  return r.last - r.first + 1n;
}

export function rangesOverlap(a: AddressRange, b: AddressRange): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

export function rangeContains(r: AddressRange, addr: IPAddress): boolean {
  return r.family === addr.family && r.first <= addr.value && addr.value <= r.last;
}

/**
 * A set of BigInts held as sorted, disjoint, non-adjacent inclusive
 * intervals. Lookups are binary searches; inserting or removing one value
 * touches at most a couple of intervals (plus an array splice, a memmove).
 */
export class IntervalSet {
  private readonly lows: bigint[] = [];
  private readonly highs: bigint[] = [];
  private total = 0n;

  static of(ranges: Iterable<Pick<AddressRange, 'first' | 'last'>>): IntervalSet {
    const set = new IntervalSet();
    for (const r of ranges) set.addRange(r.first, r.last);
    return set;
  }

  /** Number of values in the set. */
  get size(): bigint {
    return this.total;
  }

  get intervalCount(): number {
    return this.lows.length;
  }

  intervals(): { first: bigint; last: bigint }[] {
    return this.lows.map((first, i) => ({ first, last: this.highs[i]! }));
  }

  /** Index of the last interval whose low is <= x, or -1. */
  private floorIndex(x: bigint): number {
    let lo = 0;
    let hi = this.lows.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.lows[mid]! <= x) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  has(x: bigint): boolean {
    const i = this.floorIndex(x);
    return i >= 0 && x <= this.highs[i]!;
  }

  /** The smallest value, or undefined when empty. */
  min(): bigint | undefined {
    return this.lows[0];
  }

  /** The smallest value >= x, or undefined. */
  ceiling(x: bigint): bigint | undefined {
    const i = this.floorIndex(x);
    if (i >= 0 && x <= this.highs[i]!) return x;
    return this.lows[i + 1];
  }

  /** Add [first, last], merging with overlapping or adjacent intervals. */
  addRange(first: bigint, last: bigint): void {
    if (last < first) return;
    // Every interval in [from, to) overlaps or touches [first, last].
    let from = this.floorIndex(first - 1n);
    if (from < 0 || this.highs[from]! < first - 1n) from++;
    let to = from;
    let low = first;
    let high = last;
    let removed = 0n;
    while (to < this.lows.length && this.lows[to]! <= last + 1n) {
      if (this.lows[to]! < low) low = this.lows[to]!;
      if (this.highs[to]! > high) high = this.highs[to]!;
      removed += this.highs[to]! - this.lows[to]! + 1n;
      to++;
    }
    this.lows.splice(from, to - from, low);
    this.highs.splice(from, to - from, high);
    this.total += high - low + 1n - removed;
  }

  add(x: bigint): void {
    this.addRange(x, x);
  }

  /** Remove one value; returns whether it was present. */
  delete(x: bigint): boolean {
    const i = this.floorIndex(x);
    if (i < 0 || x > this.highs[i]!) return false;
    const low = this.lows[i]!;
    const high = this.highs[i]!;
    this.total -= 1n;
    if (low === high) {
      this.lows.splice(i, 1);
      this.highs.splice(i, 1);
    } else if (x === low) {
      this.lows[i] = x + 1n;
    } else if (x === high) {
      this.highs[i] = x - 1n;
    } else {
      this.highs[i] = x - 1n;
      this.lows.splice(i + 1, 0, x + 1n);
      this.highs.splice(i + 1, 0, high);
    }
    return true;
  }
}
