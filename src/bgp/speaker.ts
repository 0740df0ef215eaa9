/**
 * The BGP speaker: one session per configured neighbor, an Adj-RIB-Out per
 * neighbor, and incremental, batched UPDATEs that move the router's view
 * from what was sent to what is desired.
 *
 * `apply(desired)` is the only input (computed by policy.ts from the store);
 * sessions start on the first `apply`, so the agent must call it only once
 * its sources have synced. That ordering is what makes graceful restart
 * safe: a restarted agent re-establishes, sends its whole table and only
 * then End-of-RIB, so the router (which kept our routes as stale while we
 * were away) never sees a service route withdrawn by the restart.
 *
 * Received routes are validated and counted, never installed.
 */
import { EventEmitter } from 'node:events';
import { closeSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import {
  BGP_PORT,
  CeaseSubcode,
  encodeAnnouncements,
  encodeEndOfRib,
  encodeWithdrawals,
  formatCommunity,
  type RouteAttributes,
} from './codec.js';
import { AFI_IPV4, AFI_IPV6, familyOf, type Afi } from './prefix.js';
import type { NativeAddon } from '../native/libbpf.js';
import { describeDiag, type BfdTimers, type BfdTransition } from './bfd.js';
import type { BfdPeerStatus, BfdServiceOptions } from './bfd-socket.js';
import { BfdService } from './bfd-service.js';
import { BgpSession, plainAddress, type Connector, type MaxPrefixAction, type Negotiated, type SessionConfig, type SessionCounters, type SessionState } from './session.js';

/** One route to advertise to one neighbor. */
export interface RouteSpec {
  /** Canonical prefix text (`198.51.100.7/32`, `2001:db8::7/128`). */
  prefix: string;
  communities: number[];
  largeCommunities: [number, number, number][];
  localPreference?: number;
  med?: number;
  /** Extra copies of our AS on external sessions (a worse path: a draining node, drain.ts). */
  asPathPrepend?: number;
  /** Services (`ns/name`) the address belongs to, for display only. */
  services?: string[];
}

/** One neighbor as the policy wants it. */
export interface PeerSpec {
  /** Stable identity; a change of anything but `routes` restarts the session. */
  id: string;
  localAsn: number;
  peerAsn: number;
  peerAddress: string;
  peerPort: number;
  /** Overrides the speaker's router ID. */
  routerId?: string;
  localAddress?: string;
  holdTimeSeconds: number;
  keepaliveSeconds: number;
  connectRetrySeconds: number;
  /** eBGP multihop TTL; 1 = directly connected. */
  ebgpMultihopTtl: number;
  passive?: boolean;
  families: Afi[];
  gracefulRestart: { enabled: boolean; restartTimeSeconds: number };
  password?: string;
  /** Next hops for the family the session does not run over (discovered from the interface when absent). */
  nextHopV4?: string;
  nextHopV6?: string;
  /** Received-prefix limit and what to do past it (session.ts; defaults 1000, `restart`). */
  maxPrefixes?: number;
  maxPrefixAction?: MaxPrefixAction;
  /** BFD to this neighbor (bfd.ts): the BGP session is dropped when BFD goes from Up to Down. */
  bfd?: BfdTimers;
  routes: RouteSpec[];
}

export interface DesiredBgp {
  peers: PeerSpec[];
}

export interface PeerStatus {
  id: string;
  peerAddress: string;
  peerPort: number;
  peerAsn: number;
  localAsn: number;
  state: SessionState;
  uptimeSeconds: number;
  prefixesSent: number;
  prefixesReceived: number;
  lastError?: string;
  lastErrorAt?: string;
  counters: SessionCounters;
  /** The BFD session to this neighbor's address, when configured. */
  bfd?: BfdPeerStatus;
  /** Times BFD going down dropped this BGP session. */
  bfdDrops: number;
  negotiated?: {
    holdTimeSeconds: number;
    keepaliveSeconds: number;
    families: string[];
    fourOctetAs: boolean;
    peerGracefulRestart: boolean;
    localAddress: string;
    peerBgpId: string;
  };
}

export interface AdvertisedRoute {
  peer: string;
  prefix: string;
  nextHop: string;
  asPath: number[];
  communities: string[];
  largeCommunities: string[];
  localPreference?: number;
  med?: number;
  services?: string[];
}

export interface SpeakerTotals {
  sessionsUp: number;
  advertisedRoutes: number;
  updatesSent: number;
  updatesReceived: number;
  notificationsSent: number;
  notificationsReceived: number;
}

/** The native socket calls the speaker uses. */
export type SocketOps = Pick<NativeAddon, 'tcpSocket' | 'setTcpMd5' | 'setTtl'>;

export type Log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface SpeakerOptions {
  routerId: string;
  /** Accept incoming sessions on this port (default none: we always initiate unless a peer is passive). */
  listen?: { port?: number; host?: string };
  /**
   * Socket calls of the native addon (`addon()` from src/native/libbpf.ts
   * fits). Outgoing sessions are made from `tcpSocket` so TCP MD5 and the
   * eBGP TTL are set before connect; accepted ones get the TTL on arrival.
   * Without it, peers with a password cannot connect and eBGP sessions use
   * the kernel's default TTL (64).
   */
  sockets?: SocketOps;
  /** Set the GR restart bit on the first sessions (this process is a restart of an earlier agent). */
  restarting?: boolean;
  revisedErrorHandling?: boolean;
  log?: Log;
  /** Finds an address of `family` on the interface that holds `localAddress` (default: os.networkInterfaces()). */
  discoverAddress?: (localAddress: string, family: Afi) => string | undefined;
  /** BFD sockets (ports; the defaults are RFC 5881's). */
  bfd?: BfdServiceOptions;
}

interface SentRoute {
  key: string;
  nextHop: string;
  attrs: RouteAttributes;
}

interface Peer {
  spec: PeerSpec;
  specKey: string;
  session: BgpSession;
  desired: Map<string, RouteSpec>;
  adjRibOut: Map<string, SentRoute>;
  flushScheduled: boolean;
  /** Families for which End-of-RIB went out in this session. */
  eorSent: Set<Afi>;
  nextHopWarned: Set<Afi>;
  bfdDrops: number;
}

const DEFAULT_LOCAL_PREF = 100;
/** On stop, how long BFD keeps running after the BGP sessions close, before its AdminDown (see stop()). */
const BFD_ADMIN_DOWN_AFTER_CLOSE_MS = 200;

function sessionKey(spec: PeerSpec): string {
  // BFD timers change without a BGP restart (a poll sequence, bfd.ts).
  const { routes: _routes, bfd: _bfd, ...rest } = spec;
  return JSON.stringify(rest);
}

/** Finds an address of the other family on the same interface as `localAddress`. */
export function addressOnSameInterface(localAddress: string, family: Afi): string | undefined {
  for (const addrs of Object.values(networkInterfaces())) {
    if (!addrs?.some((a) => plainAddress(a.address) === localAddress)) continue;
    const candidates = addrs.filter((a) => (family === AFI_IPV4 ? a.family === 'IPv4' : a.family === 'IPv6' && !/^fe[89ab]/i.test(a.address)));
    return candidates[0]?.address;
  }
  return undefined;
}

export class BgpSpeaker extends EventEmitter<{ 'state-change': [peer: string, state: SessionState]; established: [peer: string] }> {
  private readonly peers = new Map<string, Peer>();
  private server?: net.Server;
  private bfd?: BfdService;
  private readonly log: Log;
  private stopped = false;

  constructor(private readonly options: SpeakerOptions) {
    super();
    this.log = options.log ?? (() => {});
  }

  /** Starts the listener (if configured). */
  async listen(): Promise<number | undefined> {
    const l = this.options.listen;
    if (!l || this.server) return undefined;
    const server = net.createServer((socket) => this.onIncoming(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(l.port ?? BGP_PORT, l.host ?? '::', () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.log('error', 'BGP listener error', { error: e.message }));
    for (const p of this.peers.values()) this.setListenerMd5(p.spec, p.spec.password ?? '');
    return (server.address() as net.AddressInfo).port;
  }

  /** Moves every neighbor and route toward `desired`. */
  apply(desired: DesiredBgp): void {
    if (this.stopped) return;
    const wanted = new Map(desired.peers.map((p) => [p.id, p]));
    for (const [id, peer] of this.peers) {
      if (!wanted.has(id)) {
        this.log('info', 'BGP neighbor removed', { peer: id });
        this.removePeer(peer, CeaseSubcode.PeerDeconfigured);
      }
    }
    for (const spec of wanted.values()) {
      let peer = this.peers.get(spec.id);
      if (peer && peer.specKey !== sessionKey(spec)) {
        this.log('info', 'BGP neighbor changed, restarting the session', { peer: spec.id });
        this.removePeer(peer, CeaseSubcode.OtherConfigurationChange);
        peer = undefined;
      }
      if (!peer) peer = this.addPeer(spec);
      peer.spec = spec;
      peer.desired = new Map(spec.routes.map((r) => [r.prefix, r]));
      this.scheduleFlush(peer);
    }
    this.applyBfd(desired.peers);
  }

  /** One BFD session per neighbor address that asks for it; the first neighbor's timers win. */
  private applyBfd(specs: PeerSpec[]): void {
    const wanted = new Map<string, PeerSpec>();
    for (const s of specs) if (s.bfd && !wanted.has(s.peerAddress)) wanted.set(s.peerAddress, s);
    if (!this.bfd && wanted.size === 0) return;
    const bfd = this.bfd ??= this.startBfd();
    for (const address of bfd.peers()) if (!wanted.has(address)) bfd.remove(address);
    for (const s of wanted.values()) {
      bfd.ensure({ peerAddress: s.peerAddress, ...(s.localAddress ? { localAddress: s.localAddress } : {}), timers: s.bfd! });
    }
  }

  private startBfd(): BfdService {
    const bfd = new BfdService({ ...this.options.bfd, log: this.log });
    bfd.on('transition', (address, t) => this.onBfdTransition(address, t));
    return bfd;
  }

  /**
   * RFC 5882 §4.3: BFD going from Up to Down means the path is gone, so the
   * BGP session goes now instead of after the hold time. A peer that says
   * AdminDown is being reconfigured, not failing (§3.2): BGP is left alone.
   */
  private onBfdTransition(address: string, t: BfdTransition): void {
    if (t.from !== 'Up' || t.to !== 'Down') return;
    if (this.bfd?.status(address)?.remoteState === 'AdminDown') return;
    for (const peer of this.peers.values()) {
      if (peer.spec.peerAddress !== address || !peer.spec.bfd) continue;
      const wasUp = peer.session.state === 'OpenSent' || peer.session.state === 'OpenConfirm' || peer.session.state === 'Established';
      if (!wasUp) continue;
      peer.bfdDrops++;
      this.log('warn', 'BFD session down: dropping the BGP session', { peer: peer.spec.id, diagnostic: describeDiag(t.diag) });
      peer.session.bfdDown(`BFD session down (${describeDiag(t.diag)})`);
    }
  }

  /**
   * Stops every session. `graceful` (for an agent restart) closes TCP without
   * a NOTIFICATION so GR-capable routers keep our routes; otherwise a Cease
   * (administrative shutdown) makes them withdraw at once.
   */
  async stop(opts: { graceful: boolean } = { graceful: true }): Promise<void> {
    this.stopped = true;
    for (const peer of this.peers.values()) {
      peer.session.stop(opts.graceful ? {} : { notify: true, subcode: CeaseSubcode.AdministrativeShutdown, message: 'pharos agent stopping' });
    }
    this.peers.clear();
    // AdminDown tells the peers' BFD this is not a failure (RFC 5882 §3.2), so graceful restart holds.
    // FRR 8 honours that only once it has seen the TCP session go (graceful-restart helper): an
    // AdminDown that arrives first drops BGP and the routes (bfd-interop.test.ts, 3 runs of 3). BFD
    // runs in its own thread, which could beat the close, so the router gets a moment first.
    const bfd = this.bfd;
    this.bfd = undefined;
    if (bfd) {
      await new Promise((r) => setTimeout(r, BFD_ADMIN_DOWN_AFTER_CLOSE_MS));
      await bfd.stop();
    }
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  status(now = Date.now()): PeerStatus[] {
    return [...this.peers.values()].map((p) => {
      const s = p.session;
      const n = s.negotiated;
      return {
        id: p.spec.id,
        peerAddress: p.spec.peerAddress,
        peerPort: p.spec.peerPort,
        peerAsn: p.spec.peerAsn,
        localAsn: p.spec.localAsn,
        state: s.state,
        uptimeSeconds: s.uptimeSeconds(now),
        prefixesSent: s.state === 'Established' ? p.adjRibOut.size : 0,
        prefixesReceived: s.received.size,
        ...(s.lastError ? { lastError: `${s.lastError.direction}: ${s.lastError.text}`, lastErrorAt: new Date(s.lastError.at).toISOString() } : {}),
        counters: { ...s.counters },
        ...(p.spec.bfd && this.bfd?.status(p.spec.peerAddress) ? { bfd: this.bfd.status(p.spec.peerAddress)! } : {}),
        bfdDrops: p.bfdDrops,
        ...(n && s.state === 'Established' ? {
          negotiated: {
            holdTimeSeconds: n.holdTimeSeconds,
            keepaliveSeconds: n.keepaliveSeconds,
            families: n.families.map((f) => (f === AFI_IPV4 ? 'ipv4-unicast' : 'ipv6-unicast')),
            fourOctetAs: n.fourOctetAs,
            peerGracefulRestart: n.peerGracefulRestart !== undefined,
            localAddress: n.localAddress,
            peerBgpId: n.peerBgpId,
          },
        } : {}),
      };
    });
  }

  /** Routes currently advertised (in the Adj-RIB-Out of Established sessions). */
  advertised(): AdvertisedRoute[] {
    const out: AdvertisedRoute[] = [];
    for (const p of this.peers.values()) {
      if (p.session.state !== 'Established') continue;
      for (const [prefix, r] of p.adjRibOut) {
        const services = p.desired.get(prefix)?.services;
        out.push({
          peer: p.spec.id,
          prefix,
          nextHop: r.nextHop,
          asPath: r.attrs.asPath,
          communities: r.attrs.communities.map(formatCommunity),
          largeCommunities: r.attrs.largeCommunities.map((l) => l.join(':')),
          ...(r.attrs.localPref !== undefined ? { localPreference: r.attrs.localPref } : {}),
          ...(r.attrs.med !== undefined ? { med: r.attrs.med } : {}),
          ...(services ? { services } : {}),
        });
      }
    }
    return out;
  }

  totals(): SpeakerTotals {
    const t: SpeakerTotals = { sessionsUp: 0, advertisedRoutes: 0, updatesSent: 0, updatesReceived: 0, notificationsSent: 0, notificationsReceived: 0 };
    for (const p of this.peers.values()) {
      const c = p.session.counters;
      if (p.session.state === 'Established') {
        t.sessionsUp++;
        t.advertisedRoutes += p.adjRibOut.size;
      }
      t.updatesSent += c.updatesSent;
      t.updatesReceived += c.updatesReceived;
      t.notificationsSent += c.notificationsSent;
      t.notificationsReceived += c.notificationsReceived;
    }
    return t;
  }

  // ---------------------------------------------------------------- peers

  private addPeer(spec: PeerSpec): Peer {
    const config: SessionConfig = {
      localAsn: spec.localAsn,
      peerAsn: spec.peerAsn,
      routerId: spec.routerId ?? this.options.routerId,
      peerAddress: spec.peerAddress,
      peerPort: spec.peerPort,
      ...(spec.localAddress ? { localAddress: spec.localAddress } : {}),
      holdTimeSeconds: spec.holdTimeSeconds,
      keepaliveSeconds: spec.keepaliveSeconds,
      connectRetrySeconds: spec.connectRetrySeconds,
      passive: spec.passive ?? false,
      families: spec.families,
      ...(spec.gracefulRestart.enabled ? {
        gracefulRestart: {
          restartTimeSeconds: spec.gracefulRestart.restartTimeSeconds,
          // The XDP data path keeps forwarding while the agent is away.
          forwardingPreserved: true,
          restarting: this.options.restarting ?? false,
        },
      } : {}),
      revisedErrorHandling: this.options.revisedErrorHandling ?? false,
      ...(spec.maxPrefixes !== undefined ? { maxPrefixes: spec.maxPrefixes } : {}),
      ...(spec.maxPrefixAction ? { maxPrefixAction: spec.maxPrefixAction } : {}),
    };
    const session = new BgpSession(config, this.connectorFor(spec));
    const peer: Peer = {
      spec,
      specKey: sessionKey(spec),
      session,
      desired: new Map(),
      adjRibOut: new Map(),
      flushScheduled: false,
      eorSent: new Set(),
      nextHopWarned: new Set(),
      bfdDrops: 0,
    };
    session.on('state', (state, prev) => {
      this.log('debug', 'BGP session state', { peer: spec.id, state, prev });
      this.emit('state-change', spec.id, state);
    });
    session.on('established', (n) => this.onEstablished(peer, n));
    session.on('down', (reason) => {
      peer.adjRibOut.clear();
      peer.eorSent.clear();
      this.log('warn', 'BGP session down', { peer: spec.id, reason });
    });
    session.on('max-prefix', ({ limit, received, action }) => {
      this.log('error', action === 'restart'
        ? 'BGP neighbor sent more prefixes than its limit: NOTIFICATION Cease/Maximum Number of Prefixes Reached sent, reconnecting after back-off'
        : 'BGP neighbor sent more prefixes than its limit: the routes past it are ignored', { peer: spec.id, limit, received, action });
    });
    session.on('route-refresh', (afi) => {
      // RFC 2918: resend the Adj-RIB-Out of that family.
      for (const [prefix] of peer.adjRibOut) if (familyOf(prefix.split('/')[0]!) === afi) peer.adjRibOut.delete(prefix);
      this.flush(peer);
    });
    this.peers.set(spec.id, peer);
    if (spec.password && this.server) this.setListenerMd5(spec, spec.password);
    session.start();
    return peer;
  }

  private removePeer(peer: Peer, subcode: number): void {
    peer.session.stop({ notify: true, subcode });
    if (peer.spec.password && this.server) this.setListenerMd5(peer.spec, '');
    this.peers.delete(peer.spec.id);
  }

  private onIncoming(socket: net.Socket): void {
    const remote = plainAddress(socket.remoteAddress);
    const peer = [...this.peers.values()].find((p) => p.spec.peerAddress === remote);
    if (!peer) {
      this.log('debug', 'BGP connection from an unknown address rejected', { remote });
      socket.destroy();
      return;
    }
    const ttl = peer.spec.localAsn !== peer.spec.peerAsn ? peer.spec.ebgpMultihopTtl : undefined;
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (ttl !== undefined && this.options.sockets && fd !== undefined && fd >= 0) {
      try {
        this.options.sockets.setTtl(fd, ttl);
      } catch (e) {
        this.log('warn', 'cannot set the TTL of an incoming BGP connection', { peer: peer.spec.id, error: (e as Error).message });
      }
    }
    peer.session.acceptIncoming(socket);
  }

  private setListenerMd5(spec: PeerSpec, key: string): void {
    const fd = (this.server as unknown as { _handle?: { fd?: number } })?._handle?.fd;
    if (!this.options.sockets || fd === undefined || fd < 0) return;
    try {
      // The addon keys an IPv4 peer by its mapped address on a dual-stack listener.
      this.options.sockets.setTcpMd5(fd, spec.peerAddress, key);
    } catch (e) {
      this.log('error', 'cannot set TCP MD5 on the BGP listener', { peer: spec.id, error: (e as Error).message });
    }
  }

  /** Outgoing connections: TCP MD5 and TTL need the socket before connect(), so it is made by the addon. */
  private connectorFor(spec: PeerSpec): Connector | undefined {
    const sockets = this.options.sockets;
    const ttl = spec.localAsn !== spec.peerAsn ? spec.ebgpMultihopTtl : undefined;
    if (!sockets) {
      if (!spec.password) return undefined;
      return () => { throw new Error('TCP MD5 requested but the native addon is not available'); };
    }
    if (!spec.password && ttl === undefined) return undefined;
    return (cfg) => preparedSocket(cfg, sockets, (fd) => {
      if (spec.password) sockets.setTcpMd5(fd, cfg.peerAddress, spec.password);
      if (ttl !== undefined) sockets.setTtl(fd, ttl);
    });
  }

  // ---------------------------------------------------------------- routes

  private onEstablished(peer: Peer, n: Negotiated): void {
    this.log('info', 'BGP session established', { peer: peer.spec.id, hold: n.holdTimeSeconds, families: n.families });
    this.emit('established', peer.spec.id);
    peer.adjRibOut.clear();
    peer.eorSent.clear();
    this.flush(peer);
  }

  private scheduleFlush(peer: Peer): void {
    if (peer.flushScheduled) return;
    peer.flushScheduled = true;
    // Coalesce changes made in the same tick into one round of UPDATEs.
    setImmediate(() => {
      peer.flushScheduled = false;
      if (this.peers.get(peer.spec.id) === peer) this.flush(peer);
    });
  }

  private nextHopFor(peer: Peer, afi: Afi, n: Negotiated): string | undefined {
    const local = n.localAddress;
    const localFamily = familyOf(local);
    if (afi === localFamily && !(afi === AFI_IPV6 && /^fe[89ab]/i.test(local))) return local;
    const configured = afi === AFI_IPV4 ? peer.spec.nextHopV4 : peer.spec.nextHopV6;
    if (configured) return configured;
    return (this.options.discoverAddress ?? addressOnSameInterface)(local, afi);
  }

  private attributesFor(peer: Peer, r: RouteSpec): RouteAttributes {
    const ebgp = peer.spec.localAsn !== peer.spec.peerAsn;
    const communities = [...new Set(r.communities)].sort((a, b) => a - b);
    const large = [...new Map(r.largeCommunities.map((l) => [l.join(':'), l])).values()]
      .sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    return {
      origin: 0, // IGP
      asPath: ebgp ? new Array<number>(1 + (r.asPathPrepend ?? 0)).fill(peer.spec.localAsn) : [],
      ...(r.med !== undefined ? { med: r.med } : {}),
      // LOCAL_PREF is for internal peers only (RFC 4271 §5.1.5).
      ...(!ebgp ? { localPref: r.localPreference ?? DEFAULT_LOCAL_PREF } : {}),
      communities,
      largeCommunities: large,
    };
  }

  /** Sends what moves the peer's Adj-RIB-Out to the desired routes. */
  private flush(peer: Peer): void {
    const session = peer.session;
    const n = session.negotiated;
    if (session.state !== 'Established' || !n) return;
    const nextHops = new Map<Afi, string | undefined>();
    for (const afi of n.families) {
      const nh = this.nextHopFor(peer, afi, n);
      nextHops.set(afi, nh);
      if (!nh && !peer.nextHopWarned.has(afi)) {
        peer.nextHopWarned.add(afi);
        this.log('warn', `no ${afi === AFI_IPV4 ? 'IPv4' : 'IPv6'} next hop for this peering: configure one or add an address of that family on the peering interface`, { peer: peer.spec.id });
      }
    }
    const withdraw = new Map<Afi, string[]>();
    const announce = new Map<string, { afi: Afi; attrs: RouteAttributes; nextHop: string; prefixes: string[] }>();
    for (const [prefix] of peer.adjRibOut) {
      const afi = familyOf(prefix.split('/')[0]!);
      if (!peer.desired.has(prefix) || !nextHops.get(afi)) {
        (withdraw.get(afi) ?? withdraw.set(afi, []).get(afi)!).push(prefix);
        peer.adjRibOut.delete(prefix);
      }
    }
    for (const [prefix, route] of peer.desired) {
      const afi = familyOf(prefix.split('/')[0]!);
      const nextHop = nextHops.get(afi);
      if (!nextHop) continue;
      const attrs = this.attributesFor(peer, route);
      const key = `${afi}|${nextHop}|${JSON.stringify(attrs)}`;
      if (peer.adjRibOut.get(prefix)?.key === key) continue;
      peer.adjRibOut.set(prefix, { key, nextHop, attrs });
      const group = announce.get(key) ?? announce.set(key, { afi, attrs, nextHop, prefixes: [] }).get(key)!;
      group.prefixes.push(prefix);
    }
    const messages: Buffer[] = [];
    const ctx = { fourOctetAs: n.fourOctetAs };
    for (const prefixes of withdraw.values()) messages.push(...encodeWithdrawals(prefixes));
    for (const g of announce.values()) messages.push(...encodeAnnouncements(g.prefixes, g.attrs, g.nextHop, ctx));
    for (const afi of n.families) {
      if (!peer.eorSent.has(afi)) {
        peer.eorSent.add(afi);
        messages.push(encodeEndOfRib(afi));
      }
    }
    if (messages.length) session.send(messages);
  }
}

/**
 * A TCP socket whose fd exists before connect(), so TCP_MD5SIG and the TTL
 * can be set on it: an unconnected fd from the addon, adopted by net.Socket,
 * which binds the source address (if any) and connects.
 */
function preparedSocket(cfg: SessionConfig, sockets: SocketOps, prepare: (fd: number) => void): net.Socket {
  const fd = sockets.tcpSocket(net.isIPv6(cfg.peerAddress) ? 'ipv6' : 'ipv4');
  try {
    prepare(fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const socket = new net.Socket({ fd, readable: true, writable: true });
  socket.connect({ host: cfg.peerAddress, port: cfg.peerPort, ...(cfg.localAddress ? { localAddress: cfg.localAddress } : {}) });
  return socket;
}

export { AFI_IPV4, AFI_IPV6 };
