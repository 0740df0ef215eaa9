/**
 * Peer liveness on the segment, without the Kubernetes API: every agent
 * broadcasts a small UDP heartbeat on each of its announcing interfaces
 * (the IPv4 broadcast address of each subnet, so it never leaves the
 * segment the ARP answers are seen on; on an interface with no IPv4 subnet,
 * an IPv6-only segment, the link-local all-nodes group ff02::1 instead,
 * which every IPv6 interface listens to and no router forwards), every 200 ms, stating its node
 * name, whether it reaches the API, and the addresses it answers for with
 * the claim of each (outage-core.ts ranks them). What it hears is the
 * peers' view outage-core.ts decides from.
 *
 * As MetalLB's memberlist, but with no membership protocol: the heartbeats
 * are the whole state, a peer is alive while they arrive. Unauthenticated:
 * anyone on the segment can speak for a node (so can anyone answering ARP).
 */
import { createSocket, type Socket } from 'node:dgram';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import type { Claim, PeerView } from './outage-core.js';

export const HEARTBEAT_VERSION = 1;
/** Claims per datagram: ~40 × 45 bytes stays below a 1500-byte MTU. */
export const CLAIMS_PER_DATAGRAM = 40;
/** A node whose claims take more than one datagram sends them in full every 5th beat (1 s), and on every change. */
export const FULL_EVERY = 5;

export interface Heartbeat {
  node: string;
  api: boolean;
  /** Sender's beat number; the parts of one beat share it. */
  seq: number;
  part: number;
  parts: number;
  /** MACs of the sender's announcing interfaces. */
  macs: string[];
  /** Claims left out, unchanged since the last full beat (a liveness-only beat of a node with many). */
  same?: boolean;
  claims: [address: string, rv: string, takeovers: number][];
}

/** One beat as datagrams (at least one, even with no claims). */
export function encodeHeartbeat(node: string, api: boolean, seq: number, claims: ReadonlyMap<string, Claim> | 'same', macs: readonly string[] = []): Buffer[] {
  if (claims === 'same') return [Buffer.from(JSON.stringify({ v: HEARTBEAT_VERSION, node, api, seq, part: 0, parts: 1, macs, same: true, claims: [] }))];
  const all = [...claims].map(([a, c]) => [a, c.rv, c.takeovers] as Heartbeat['claims'][number]);
  const parts = Math.max(1, Math.ceil(all.length / CLAIMS_PER_DATAGRAM));
  const out: Buffer[] = [];
  for (let part = 0; part < parts; part++) {
    const msg = { v: HEARTBEAT_VERSION, node, api, seq, part, parts, macs, claims: all.slice(part * CLAIMS_PER_DATAGRAM, (part + 1) * CLAIMS_PER_DATAGRAM) };
    out.push(Buffer.from(JSON.stringify(msg)));
  }
  return out;
}

/** A datagram as a heartbeat, or undefined when it is not one (another version, garbage). */
export function decodeHeartbeat(b: Buffer): Heartbeat | undefined {
  let m: unknown;
  try {
    m = JSON.parse(b.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null) return undefined;
  const h = m as Record<string, unknown>;
  if (h.v !== HEARTBEAT_VERSION || typeof h.node !== 'string' || !h.node || typeof h.api !== 'boolean') return undefined;
  if (!Number.isInteger(h.seq) || !Number.isInteger(h.part) || !Number.isInteger(h.parts) || !Array.isArray(h.claims)) return undefined;
  const macs = Array.isArray(h.macs) ? (h.macs as unknown[]).filter((m): m is string => typeof m === 'string') : [];
  const claims: Heartbeat['claims'] = [];
  for (const c of h.claims as unknown[]) {
    if (!Array.isArray(c) || typeof c[0] !== 'string' || typeof c[1] !== 'string' || !Number.isInteger(c[2])) return undefined;
    claims.push([c[0], c[1], c[2] as number]);
  }
  return { node: h.node, api: h.api, seq: h.seq as number, part: h.part as number, parts: h.parts as number, macs, claims, ...(h.same === true ? { same: true } : {}) };
}

/**
 * Folds heartbeats into peer views: any datagram proves the peer alive;
 * its claims are replaced once every part of one beat has arrived.
 */
export class PeerTable {
  private readonly views = new Map<string, PeerView & { pending?: { seq: number; got: Set<number>; claims: Map<string, Claim> } }>();

  heard(h: Heartbeat, now: number): void {
    let v = this.views.get(h.node);
    if (!v) this.views.set(h.node, (v = { lastHeard: now, apiReachable: h.api, claims: new Map() }));
    v.lastHeard = now;
    v.apiReachable = h.api;
    v.macs = h.macs;
    if (h.same) return;
    if (!v.pending || v.pending.seq !== h.seq) v.pending = { seq: h.seq, got: new Set(), claims: new Map() };
    v.pending.got.add(h.part);
    for (const [address, rv, takeovers] of h.claims) v.pending.claims.set(address, { rv, takeovers });
    if (v.pending.got.size >= h.parts) {
      v.claims = v.pending.claims;
      v.pending = undefined;
    }
  }

  /** Peers heard since this agent started (silent ones kept: outage-core.ts asks who fell silent). */
  get peers(): ReadonlyMap<string, PeerView> {
    return this.views;
  }
}

/**
 * Where the beats go: the IPv4 broadcast address of each subnet, and
 * `ff02::1%<interface>` for each interface that has an IPv6 address but no
 * IPv4 subnet to broadcast on (an IPv6-only segment). One family per
 * interface: a dual-stack segment hears the IPv4 beats.
 */
export function heartbeatTargets(interfaces: readonly string[], all: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): { v4: string[]; v6: string[] } {
  const v6: string[] = [];
  for (const name of interfaces) {
    if (broadcastAddresses([name], all).length > 0) continue;
    if ((all[name] ?? []).some((a) => a.family === 'IPv6' && !a.internal)) v6.push(`${IPV6_ALL_NODES}%${name}`);
  }
  return { v4: broadcastAddresses(interfaces, all), v6 };
}

/** The link-local all-nodes group (RFC 4291 §2.7.1). */
export const IPV6_ALL_NODES = 'ff02::1';

/** The IPv4 broadcast address of every subnet on `interfaces` (a /31 or /32 has none). */
export function broadcastAddresses(interfaces: readonly string[], all: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  const out = new Set<string>();
  for (const name of interfaces) {
    for (const a of all[name] ?? []) {
      if (a.family !== 'IPv4' || a.internal) continue;
      const bits = Number(a.cidr?.split('/')[1] ?? 32);
      if (bits >= 31) continue;
      const addr = a.address.split('.').reduce((n, o) => (n << 8) | Number(o), 0) >>> 0;
      const bcast = (addr | (0xffffffff >>> bits)) >>> 0;
      out.add([24, 16, 8, 0].map((s) => (bcast >>> s) & 255).join('.'));
    }
  }
  return [...out];
}

export interface PeerHeartbeatOptions {
  node: string;
  port: number;
  intervalMs: number;
  interfaces: readonly string[];
  /** What to say in each beat. */
  state: () => { api: boolean; claims: ReadonlyMap<string, Claim> };
  onHeard?: () => void;
  onError?: (err: Error) => void;
  now?: () => number;
}

export class PeerHeartbeats {
  readonly table = new PeerTable();
  private socket?: Socket;
  /** The IPv6 socket, for interfaces without IPv4 (absent when the kernel has no IPv6). */
  private socket6?: Socket;
  private timer?: NodeJS.Timeout;
  private seq = 0;
  private lastClaims?: ReadonlyMap<string, Claim>;
  private readonly now: () => number;
  /** Datagrams sent and received (metrics). */
  sent = 0;
  received = 0;

  constructor(private readonly opts: PeerHeartbeatOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  async start(): Promise<void> {
    this.socket = await this.open('udp4');
    this.socket.setBroadcast(true);
    // IPv6 only for IPv6-only segments; a kernel without IPv6 simply has no such segment.
    this.socket6 = await this.open('udp6').catch((err: Error) => {
      if (heartbeatTargets(this.opts.interfaces).v6.length > 0) this.opts.onError?.(err);
      return undefined;
    });
    this.timer = setInterval(() => void this.beat(), this.opts.intervalMs);
    void this.beat();
  }

  private async open(type: 'udp4' | 'udp6'): Promise<Socket> {
    const socket = createSocket({ type, reuseAddr: true, ...(type === 'udp6' ? { ipv6Only: true } : {}) });
    socket.on('message', (msg) => {
      const h = decodeHeartbeat(msg);
      if (!h || h.node === this.opts.node) return;
      this.received++;
      this.table.heard(h, this.now());
      this.opts.onHeard?.();
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.opts.port, type === 'udp6' ? '::' : '0.0.0.0', () => {
        socket.off('error', reject);
        resolve();
      });
    }).catch((err: Error) => {
      socket.close();
      throw err;
    });
    socket.on('error', (err) => this.opts.onError?.(err));
    return socket;
  }

  /** Sends one beat now (also on every change of claims, so a yield or a takeover is heard at once). */
  beat(override?: { api: boolean; claims: ReadonlyMap<string, Claim> }): Promise<void> {
    const socket = this.socket;
    if (!socket) return Promise.resolve();
    const { api, claims } = override ?? this.opts.state();
    const all = networkInterfaces();
    const macs = [...new Set(this.opts.interfaces.flatMap((n) => (all[n] ?? []).map((a) => a.mac.toLowerCase())))];
    // Claims that take several datagrams go out in full every FULL_EVERY beats and on every change;
    // the beats between prove liveness alone (thousands of addresses would be hundreds of datagrams a second).
    const full = override !== undefined || claims !== this.lastClaims || claims.size <= CLAIMS_PER_DATAGRAM || this.seq % FULL_EVERY === 0;
    this.lastClaims = claims;
    const datagrams = encodeHeartbeat(this.opts.node, api, ++this.seq, full ? claims : 'same', macs);
    const sends: Promise<void>[] = [];
    const targets = heartbeatTargets(this.opts.interfaces, all);
    for (const [via, list] of [[socket, targets.v4], [this.socket6, targets.v6]] as const) {
      if (!via) continue;
      for (const target of list) {
        for (const d of datagrams) {
          sends.push(new Promise((resolve) => via.send(d, this.opts.port, target, (err) => {
            if (err) this.opts.onError?.(err);
            else this.sent++;
            resolve();
          })));
        }
      }
    }
    return Promise.all(sends).then(() => undefined);
  }

  /** A last beat claiming nothing (peers may take what this node held at once, not a peer timeout later), then close. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.socket) await Promise.race([this.beat({ api: false, claims: new Map() }), new Promise((r) => setTimeout(r, 200).unref())]);
    this.socket?.close();
    this.socket6?.close();
    this.socket = undefined;
    this.socket6 = undefined;
  }
}
