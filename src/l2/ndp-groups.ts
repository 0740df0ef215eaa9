/**
 * NDP on real NICs. A neighbour solicitation for an IPv6 address is sent to
 * the address's solicited-node multicast group (ff02::1:ffXX:XXXX, the low
 * 24 bits of the address; RFC 4291 2.7.1, RFC 4861 7.2.2). A NIC drops
 * multicast it was not asked to receive, so an address the kernel does not
 * own never has its solicitations reach the XDP responder (veth passes
 * everything, so labs never show it; Cilium issue 44311). The node joins the
 * group of every IPv6 address it answers, on each interface it answers on,
 * which programs the NIC's filter and sends an MLD report for switches that
 * snoop; it leaves the group when the last address of it is withdrawn.
 *
 * Memberships are held by UDP sockets, one set per interface (a socket
 * holds a bounded number of groups: the kernel charges each to its option
 * memory), bound to an ephemeral port that nothing sends to.
 */
import { createSocket, type Socket } from 'node:dgram';
import { formatAddress, tryParseAddress } from '../model/cidr.js';

const SOLICITED_NODE_PREFIX = 0xff02_0000_0000_0000_0000_0001_ff00_0000n;
const LOW_24 = 0xff_ffffn;

/** ff02::1:ffXX:XXXX for `address` (IPv6). */
export function solicitedNodeGroup(address: string): string {
  const parsed = tryParseAddress(address);
  if (parsed?.family !== 'IPv6') throw new Error(`${JSON.stringify(address)} is not an IPv6 address`);
  return formatAddress('IPv6', SOLICITED_NODE_PREFIX | (parsed.value & LOW_24));
}

/** Groups per socket: well inside the default option memory (net.core.optmem_max). */
const GROUPS_PER_SOCKET = 128;

interface GroupSocket {
  socket: Socket;
  ready: Promise<void>;
  groups: Set<string>;
}

export interface NdpGroupsLog {
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export class SolicitedNodeGroups {
  /** `${ifname}|${group}` → the addresses that need it. */
  private readonly needed = new Map<string, Set<string>>();
  private readonly sockets = new Map<string, GroupSocket[]>();
  private stopped = false;

  constructor(private readonly log: NdpGroupsLog) {}

  /** `address` is answered on `ifname` (IPv4 addresses are ignored). */
  add(address: string, ifname: string): void {
    if (!address.includes(':') || this.stopped) return;
    const group = solicitedNodeGroup(address);
    const key = `${ifname}|${group}`;
    let set = this.needed.get(key);
    if (!set) this.needed.set(key, (set = new Set()));
    const first = set.size === 0;
    set.add(address);
    if (first) this.join(ifname, group);
  }

  remove(address: string, ifname: string): void {
    if (!address.includes(':')) return;
    const group = solicitedNodeGroup(address);
    const key = `${ifname}|${group}`;
    const set = this.needed.get(key);
    if (!set?.delete(address) || set.size > 0) return;
    this.needed.delete(key);
    this.leave(ifname, group);
  }

  /** Groups joined per interface (for status and tests). */
  joined(ifname: string): string[] {
    return (this.sockets.get(ifname) ?? []).flatMap((s) => [...s.groups]).sort();
  }

  stop(): void {
    this.stopped = true;
    for (const list of this.sockets.values()) for (const s of list) s.socket.close();
    this.sockets.clear();
    this.needed.clear();
  }

  private socketFor(ifname: string): GroupSocket {
    let list = this.sockets.get(ifname);
    if (!list) this.sockets.set(ifname, (list = []));
    const free = list.find((s) => s.groups.size < GROUPS_PER_SOCKET);
    if (free) return free;
    const socket = createSocket({ type: 'udp6', reuseAddr: false });
    socket.on('error', (err) => this.log.warn('NDP multicast socket error', { interface: ifname, error: err.message }));
    socket.on('message', () => undefined);
    const ready = new Promise<void>((resolve) => socket.bind({ port: 0, address: '::' }, () => { socket.unref(); resolve(); }));
    const s = { socket, ready, groups: new Set<string>() };
    list.push(s);
    return s;
  }

  private join(ifname: string, group: string): void {
    const s = this.socketFor(ifname);
    s.groups.add(group);
    void s.ready.then(() => {
      if (this.stopped || !s.groups.has(group)) return;
      try {
        s.socket.addMembership(group, `::%${ifname}`);
      } catch (err) {
        s.groups.delete(group);
        this.log.warn('solicited-node multicast group not joined: neighbour solicitations for this address may not reach XDP on a physical NIC', {
          interface: ifname, group, error: (err as Error).message,
        });
      }
    });
  }

  private leave(ifname: string, group: string): void {
    const s = (this.sockets.get(ifname) ?? []).find((x) => x.groups.has(group));
    if (!s) return;
    s.groups.delete(group);
    void s.ready.then(() => {
      if (this.stopped) return;
      try {
        s.socket.dropMembership(group, `::%${ifname}`);
      } catch {
        // Already gone with its interface.
      }
    });
  }
}
