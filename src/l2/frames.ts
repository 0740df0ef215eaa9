/**
 * Gratuitous announcements, built as raw Ethernet frames for the packet
 * socket: the kernel sends none for addresses it does not own (LAB-FACTS:
 * no GARP on `ip addr add`, no NA for nodad addresses), and a VIP answered
 * by XDP is not a kernel address at all.
 *
 * IPv4: both a gratuitous request and a gratuitous reply (RFC 5227 §3 notes
 * implementations differ in which one they honour). IPv6: an unsolicited
 * Neighbor Advertisement to all-nodes with the Override flag (RFC 4861
 * §7.2.6), so a client's existing entry moves to us.
 */
import { addressBytes } from '../model/cidr.js';
import { macBytes } from '../model/mac.js';

const BROADCAST = Buffer.from('ffffffffffff', 'hex');
const ZERO_MAC = Buffer.alloc(6);

const ALL_NODES = addressBytes('ff02::1');

/**
 * A zeroed frame from Node's shared buffer pool: thousands of frames alive
 * for their 5 s of repeats are slices of a few 8 KB slabs, not one
 * ArrayBuffer each for the garbage collector to track.
 */
function frameBuffer(size: number): Buffer {
  return Buffer.allocUnsafe(size).fill(0);
}

/** ARP for `ip` from `mac`: op 1 = request (who-has ip tell ip), 2 = reply. */
export function gratuitousArp(mac: string, ip: string, op: 1 | 2): Buffer {
  const src = macBytes(mac);
  const spa = addressBytes(ip);
  if (spa.length !== 4) throw new Error(`ARP needs an IPv4 address, got ${JSON.stringify(ip)}`);
  const f = frameBuffer(42);
  BROADCAST.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // Ethernet
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(op, 20);
  src.copy(f, 22);
  spa.copy(f, 28);
  // Target MAC: zero in a request, broadcast in a reply (as Linux arping -U/-A does).
  (op === 2 ? BROADCAST : ZERO_MAC).copy(f, 32);
  spa.copy(f, 38);
  return f;
}

/** The Internet checksum (RFC 1071) over `parts` laid end to end (each but the last of even length). */
function checksum16(...parts: Buffer[]): number {
  let sum = 0;
  for (const buf of parts) {
    for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
    if (buf.length % 2) sum += buf[buf.length - 1]! << 8;
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Unsolicited NA for `ip` from `mac` to ff02::1, Override set, Solicited clear, with the target link-layer option. */
export function unsolicitedNeighborAdvert(mac: string, ip: string, srcIp = ip): Buffer {
  const src = macBytes(mac);
  const target = addressBytes(ip);
  const source = addressBytes(srcIp);
  if (target.length !== 16 || source.length !== 16) throw new Error(`a Neighbor Advertisement needs IPv6 addresses, got ${JSON.stringify(ip)} from ${JSON.stringify(srcIp)}`);
  const allNodes = ALL_NODES;
  const icmpLen = 32; // type..reserved (8) + target (16) + option (8)
  const f = frameBuffer(14 + 40 + icmpLen);
  Buffer.from('333300000001', 'hex').copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(0x86dd, 12);
  f.writeUInt32BE(0x60000000, 14);
  f.writeUInt16BE(icmpLen, 18);
  f[20] = 58; // ICMPv6
  f[21] = 255; // hop limit must be 255 for ND (RFC 4861 §7.1.2)
  source.copy(f, 22);
  allNodes.copy(f, 38);
  const icmp = 54;
  f[icmp] = 136;
  f[icmp + 1] = 0;
  f.writeUInt32BE(0x20000000, icmp + 4); // R=0 S=0 O=1
  target.copy(f, icmp + 8);
  f[icmp + 24] = 2; // target link-layer address option
  f[icmp + 25] = 1; // length in units of 8 bytes
  src.copy(f, icmp + 26);
  const pseudo = Buffer.alloc(40);
  source.copy(pseudo, 0);
  allNodes.copy(pseudo, 16);
  pseudo.writeUInt32BE(icmpLen, 32);
  pseudo[39] = 58;
  f.writeUInt16BE(checksum16(pseudo, f.subarray(icmp)), icmp + 2);
  return f;
}

/** The frames announcing one address: two for IPv4, one for IPv6. */
export function announcementFrames(mac: string, ip: string): Buffer[] {
  return ip.includes(':') ? [unsolicitedNeighborAdvert(mac, ip)] : [gratuitousArp(mac, ip, 1), gratuitousArp(mac, ip, 2)];
}
