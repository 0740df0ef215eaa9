/**
 * Ethernet MAC addresses: text (`aa:bb:cc:dd:ee:ff`, `-` separators too) to
 * the 6 bytes frames and BPF maps carry, and back.
 */

/** Parsed MACs: a node has a handful of interfaces and announces thousands of addresses from them. */
const parsed = new Map<string, Buffer>();
const PARSED_MAX = 64;

/** The 6 bytes of `mac`, shared between callers: copy from it, never write to it. Throws when `mac` is not a MAC address. */
export function macBytes(mac: string): Buffer {
  let bytes = parsed.get(mac);
  if (bytes) return bytes;
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`${JSON.stringify(mac)} is not a MAC address`);
  bytes = Buffer.from(parts.map((p) => parseInt(p, 16)));
  if (parsed.size >= PARSED_MAX) parsed.clear();
  parsed.set(mac, bytes);
  return bytes;
}

/** `aa:bb:cc:dd:ee:ff` text of the 6 bytes at `off`. */
export function formatMac(bytes: Uint8Array, off = 0): string {
  let out = '';
  for (let i = 0; i < 6; i++) out += (i ? ':' : '') + bytes[off + i]!.toString(16).padStart(2, '0');
  return out;
}
