/**
 * Addresses and prefixes as BGP carries them: IPv4/IPv6 literals to bytes
 * and back (RFC 5952 text for IPv6), and the NLRI `<length, prefix>` encoding
 * of RFC 4271 §4.3 shared by the UPDATE fields and MP_REACH/MP_UNREACH.
 */
import { addressBytes as bytesOf, formatAddressBytes as formatAddress, tryParseAddress } from '../model/cidr.js';

export const AFI_IPV4 = 1;
export const AFI_IPV6 = 2;
export const SAFI_UNICAST = 1;

export type Afi = typeof AFI_IPV4 | typeof AFI_IPV6;

/** 4 bytes for IPv4, 16 for IPv6 (a zone suffix `%eth0` is ignored); throws on anything that is not an address literal. */
export function addressBytes(address: string): Buffer {
  return bytesOf(address.split('%')[0]!);
}

export function familyOf(address: string): Afi {
  const parsed = tryParseAddress(address.split('%')[0]!);
  if (!parsed) throw new Error(`'${address}' is not an IP address`);
  return parsed.family === 'IPv4' ? AFI_IPV4 : AFI_IPV6;
}

/** Text form of 4 or 16 address bytes (IPv6 per RFC 5952). */
export { formatAddress };

/** A prefix in canonical text (`198.51.100.7/32`, `2001:db8::7/128`), host bits cleared. */
export interface Prefix {
  afi: Afi;
  length: number;
  /** Only the significant bytes: ceil(length / 8). */
  bytes: Buffer;
}

/** Parses `addr/len` (or a bare address = host route); throws on bad input. Host bits are cleared. */
export function parsePrefix(text: string): Prefix {
  const [addr, lenText, ...rest] = text.split('/');
  if (rest.length > 0 || addr === undefined) throw new Error(`'${text}' is not a prefix`);
  const full = addressBytes(addr);
  const max = full.length * 8;
  const length = lenText === undefined ? max : Number(lenText);
  if (!/^\d+$/.test(lenText ?? String(max)) || length > max) throw new Error(`'${text}' has a bad prefix length`);
  const bytes = Buffer.from(full.subarray(0, Math.ceil(length / 8)));
  if (length % 8 !== 0) bytes[bytes.length - 1]! &= 0xff << (8 - (length % 8));
  return { afi: full.length === 4 ? AFI_IPV4 : AFI_IPV6, length, bytes };
}

export function formatPrefix(p: Prefix): string {
  const full = Buffer.alloc(p.afi === AFI_IPV4 ? 4 : 16);
  p.bytes.copy(full);
  return `${formatAddress(full)}/${p.length}`;
}

/** Canonical text of a prefix given in any accepted form. */
export function canonicalPrefix(text: string): string {
  return formatPrefix(parsePrefix(text));
}

/** Bytes the prefix takes in an NLRI field. */
export function nlriSize(p: Prefix): number {
  return 1 + p.bytes.length;
}

export function writeNlri(p: Prefix, out: Buffer, offset: number): number {
  out[offset] = p.length;
  p.bytes.copy(out, offset + 1);
  return offset + 1 + p.bytes.length;
}

/**
 * Decodes an NLRI field. Returns null when a prefix length exceeds the
 * family's width or a prefix runs past the end (the caller picks the error).
 * Non-zero trailing bits are cleared, as routers do.
 */
export function readNlri(afi: Afi, buf: Buffer): Prefix[] | null {
  const max = afi === AFI_IPV4 ? 32 : 128;
  const out: Prefix[] = [];
  let off = 0;
  while (off < buf.length) {
    const length = buf[off]!;
    if (length > max) return null;
    const n = Math.ceil(length / 8);
    if (off + 1 + n > buf.length) return null;
    const bytes = Buffer.from(buf.subarray(off + 1, off + 1 + n));
    if (length % 8 !== 0) bytes[n - 1]! &= 0xff << (8 - (length % 8));
    out.push({ afi, length, bytes });
    off += 1 + n;
  }
  return out;
}
