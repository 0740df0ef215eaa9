/**
 * BFD over UDP (RFC 5881, single hop): the I/O around the pure sessions of
 * bfd.ts, run inside the BFD worker thread (bfd-worker.ts, owned by
 * BfdService in bfd-service.ts) so that a stall of the agent's main thread
 * holds up neither its timers nor its sockets. One receive socket per
 * address family on port 3784, one send socket per session bound to a
 * source port in 49152-65535 with TTL / hop limit 255, and one timer per
 * session armed at the session's next deadline (periodic transmission or
 * detection-time expiry).
 *
 * Demultiplexing (RFC 5880 §6.8.6, RFC 5881 §3): a packet with Your
 * Discriminator set goes to the session with that local discriminator;
 * with 0 (the peer has not heard us yet) to the session of its source
 * address.
 *
 * Receive-side TTL: RFC 5881 §5 wants packets with a TTL other than 255
 * discarded. Node's dgram sockets deliver no TTL (no IP_RECVTTL ancillary
 * data) and IP_MINTTL does not apply to UDP, so each receive socket gets a
 * socket filter from the native addon (`ttlFilter`) that empties a
 * datagram with another TTL; such a datagram is counted against its
 * source session as discarded. Without the addon the check is off, and the
 * status says so (`ttlChecked: false`).
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  BFD_CONTROL_PORT,
  BFD_SOURCE_PORT_MAX,
  BFD_SOURCE_PORT_MIN,
  BFD_TTL,
  BfdSession,
  decodeBfdControl,
  describeDiag,
  encodeBfdControl,
  type BfdOutput,
  type BfdSessionView,
  type BfdTimers,
  type BfdTransition,
} from './bfd.js';
import { plainAddress } from './session.js';

export interface BfdPeerConfig {
  peerAddress: string;
  /** Source address of our packets (the kernel picks one when absent). */
  localAddress?: string;
  timers: BfdTimers;
}

export interface BfdPeerStatus extends BfdSessionView {
  peerAddress: string;
  localAddress?: string;
  sourcePort?: number;
  /** What keeps the session from running (a socket that cannot be bound). */
  error?: string;
  /** Received packets are checked for TTL 255 (RFC 5881 §5): the receive socket has its filter. */
  ttlChecked: boolean;
}

export type BfdLog = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** What the TTL filter leaves of a datagram with the wrong TTL (its UDP header): shorter than any BFD packet. */
const TTL_CUT_LENGTH = 0;

/**
 * The file descriptor behind a dgram socket. Node has no public accessor;
 * its socket state (a symbol-keyed own property) holds the libuv handle,
 * whose `fd` getter has been there since Node 12. undefined when absent.
 */
export function dgramFd(socket: dgram.Socket): number | undefined {
  for (const key of Object.getOwnPropertySymbols(socket)) {
    const fd = (socket as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[key]?.handle?.fd;
    if (typeof fd === 'number' && fd >= 0) return fd;
  }
  return undefined;
}

export interface BfdServiceOptions {
  /** Receive port (default 3784; tests in one namespace may use another). */
  port?: number;
  /** Destination port of our packets (default 3784). */
  peerPort?: number;
  log?: BfdLog;
  /**
   * Attaches the received-TTL filter to a socket fd (the native addon's
   * attachTtlFilter); without it packets are not checked for TTL 255.
   */
  ttlFilter?: (fd: number, ttl: number) => void;
}

interface Endpoint {
  config: BfdPeerConfig;
  session: BfdSession;
  socket?: dgram.Socket;
  sourcePort?: number;
  timer?: NodeJS.Timeout;
  error?: string;
}

const MAX_BIND_ATTEMPTS = 32;

function family(address: string): 'udp4' | 'udp6' {
  return net.isIPv6(address) ? 'udp6' : 'udp4';
}

function now(): number {
  return performance.now();
}

/**
 * The sessions and their sockets. Events: `transition` on a state change,
 * `change` after anything that may have changed a session's status.
 */
export class BfdSockets extends EventEmitter<{ transition: [peerAddress: string, transition: BfdTransition]; change: [peerAddress: string] }> {
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly byDiscriminator = new Map<number, Endpoint>();
  private readonly receivers = new Map<'udp4' | 'udp6', dgram.Socket>();
  private readonly receiverErrors = new Map<'udp4' | 'udp6', string>();
  /** Receive sockets whose TTL filter is attached. */
  private readonly ttlChecked = new Set<'udp4' | 'udp6'>();
  private readonly log: BfdLog;
  private stopped = false;
  /**
   * Nothing is sent while set: the worker's watchdog sets it when the main
   * thread has been wedged too long, so the routers see a hung agent as down.
   */
  muted = false;
  /** Packets no session took (unknown source and discriminator, or malformed). */
  readonly unmatched = { unknownPeer: 0, malformed: 0, badTtl: 0 };

  constructor(private readonly options: BfdServiceOptions = {}) {
    super();
    this.log = options.log ?? (() => {});
  }

  /** Creates the session for `peerAddress`, or updates its timers. */
  ensure(config: BfdPeerConfig): void {
    if (this.stopped) return;
    const existing = this.endpoints.get(config.peerAddress);
    if (existing && existing.config.localAddress === config.localAddress) {
      if (JSON.stringify(existing.config.timers) !== JSON.stringify(config.timers)) {
        existing.config = config;
        existing.session.setTimers(config.timers, now());
        this.arm(existing);
        this.emit('change', config.peerAddress);
      }
      return;
    }
    if (existing) this.remove(config.peerAddress);
    let discriminator: number;
    do discriminator = randomInt(1, 0xffffffff); while (this.byDiscriminator.has(discriminator));
    const endpoint: Endpoint = { config, session: new BfdSession(discriminator, config.timers, now()) };
    this.endpoints.set(config.peerAddress, endpoint);
    this.byDiscriminator.set(discriminator, endpoint);
    this.openReceiver(family(config.peerAddress));
    this.openSender(endpoint);
    this.arm(endpoint);
    this.emit('change', config.peerAddress);
  }

  /**
   * Ends the session: the peer is told AdminDown (so it does not take it as
   * a failure) and forgotten. Resolves once the AdminDown packet is out and
   * the socket closed.
   */
  remove(peerAddress: string): Promise<void> {
    const endpoint = this.endpoints.get(peerAddress);
    if (!endpoint) return Promise.resolve();
    this.endpoints.delete(peerAddress);
    this.byDiscriminator.delete(endpoint.session.localDiscriminator);
    clearTimeout(endpoint.timer);
    const socket = endpoint.socket;
    const closed = socket ? new Promise<void>((resolve) => socket.once('close', () => resolve())) : Promise.resolve();
    const out = endpoint.session.adminDown(now());
    this.transmit(endpoint, out, () => socket?.close());
    // Closed after the AdminDown packet went out (transmit's callback), or now if nothing was sent.
    if (socket && out.send.length === 0) socket.close();
    return closed;
  }

  status(peerAddress: string): BfdPeerStatus | undefined {
    const e = this.endpoints.get(peerAddress);
    if (!e) return undefined;
    const error = e.error ?? this.receiverErrors.get(family(peerAddress));
    return {
      ...e.session.view(),
      peerAddress,
      ...(e.config.localAddress ? { localAddress: e.config.localAddress } : {}),
      ...(e.sourcePort ? { sourcePort: e.sourcePort } : {}),
      ...(error ? { error } : {}),
      ttlChecked: this.ttlChecked.has(family(peerAddress)),
    };
  }

  peers(): string[] {
    return [...this.endpoints.keys()];
  }

  /** AdminDown to every peer; resolves when every socket is closed. */
  async stop(): Promise<void> {
    this.stopped = true;
    const sent = [...this.endpoints.keys()].map((peer) => this.remove(peer));
    for (const r of this.receivers.values()) r.close();
    this.receivers.clear();
    await Promise.all(sent);
  }

  // ---------------------------------------------------------------- sockets

  private openReceiver(kind: 'udp4' | 'udp6'): void {
    if (this.receivers.has(kind)) return;
    const socket = dgram.createSocket({ type: kind, ...(kind === 'udp6' ? { ipv6Only: true } : {}) });
    this.receivers.set(kind, socket);
    socket.on('message', (msg, rinfo) => this.onPacket(msg, plainAddress(rinfo.address),
      !this.ttlChecked.has(kind) ? 'unknown' : msg.length === TTL_CUT_LENGTH ? 'bad' : 'ok'));
    socket.on('error', (e) => {
      const text = `cannot receive BFD on ${kind === 'udp4' ? '0.0.0.0' : '[::]'}:${this.options.port ?? BFD_CONTROL_PORT}: ${e.message}`;
      this.receiverErrors.set(kind, text);
      this.log('error', text);
      this.receivers.delete(kind);
      socket.close();
      this.changedFamily(kind);
    });
    socket.on('listening', () => {
      this.guardTtl(kind, socket);
      if (this.receiverErrors.delete(kind)) this.changedFamily(kind);
    });
    socket.bind({ port: this.options.port ?? BFD_CONTROL_PORT, address: kind === 'udp4' ? '0.0.0.0' : '::' });
  }

  /** RFC 5881 §5 in the kernel: see the file's header. */
  private guardTtl(kind: 'udp4' | 'udp6', socket: dgram.Socket): void {
    const fd = dgramFd(socket);
    const filter = this.options.ttlFilter;
    try {
      if (!filter || fd === undefined) throw new Error(!filter ? 'the native addon is not available' : 'the socket has no file descriptor');
      filter(fd, BFD_TTL);
      this.ttlChecked.add(kind);
    } catch (e) {
      this.ttlChecked.delete(kind);
      this.log('warn', 'BFD packets are not checked for TTL 255 (RFC 5881 §5): a peer more than one hop away is not rejected', { family: kind, error: (e as Error).message });
    }
    this.changedFamily(kind);
  }

  /** RFC 5881 §4: a source port in 49152-65535, unique per session (random, retried when taken). */
  private openSender(endpoint: Endpoint, attempt = 0): void {
    const kind = family(endpoint.config.peerAddress);
    const socket = dgram.createSocket({ type: kind, ...(kind === 'udp6' ? { ipv6Only: true } : {}) });
    const port = randomInt(BFD_SOURCE_PORT_MIN, BFD_SOURCE_PORT_MAX + 1);
    const onError = (e: NodeJS.ErrnoException): void => {
      socket.close();
      if (this.endpoints.get(endpoint.config.peerAddress) !== endpoint) return;
      if (e.code === 'EADDRINUSE' && attempt < MAX_BIND_ATTEMPTS) {
        this.openSender(endpoint, attempt + 1);
        return;
      }
      endpoint.error = `cannot bind the BFD source socket${endpoint.config.localAddress ? ` on ${endpoint.config.localAddress}` : ''}: ${e.message}`;
      this.log('error', endpoint.error, { peer: endpoint.config.peerAddress });
      this.emit('change', endpoint.config.peerAddress);
    };
    socket.once('error', onError);
    socket.bind({ port, ...(endpoint.config.localAddress ? { address: endpoint.config.localAddress } : {}) }, () => {
      socket.off('error', onError);
      if (this.endpoints.get(endpoint.config.peerAddress) !== endpoint) {
        socket.close();
        return;
      }
      // RFC 5881 §5: TTL / hop limit 255, so the peer can tell we are one hop away.
      socket.setTTL(BFD_TTL);
      socket.on('error', (e) => this.log('warn', 'BFD send error', { peer: endpoint.config.peerAddress, error: e.message }));
      endpoint.socket = socket;
      endpoint.sourcePort = port;
      delete endpoint.error;
      // Packets that were due while binding go out now.
      this.run(endpoint);
      this.emit('change', endpoint.config.peerAddress);
    });
  }

  private transmit(endpoint: Endpoint, out: BfdOutput, after?: () => void): void {
    if (out.transition) this.onTransition(endpoint, out.transition);
    const socket = endpoint.socket;
    if (!socket) return;
    if (this.muted) {
      after?.();
      return;
    }
    out.send.forEach((p, i) => {
      const last = i === out.send.length - 1;
      socket.send(encodeBfdControl(p), this.options.peerPort ?? BFD_CONTROL_PORT, endpoint.config.peerAddress, (e) => {
        if (e) this.log('debug', 'BFD packet not sent', { peer: endpoint.config.peerAddress, error: e.message });
        if (last) after?.();
      });
    });
  }

  private onTransition(endpoint: Endpoint, t: BfdTransition): void {
    const level = t.to === 'Down' && t.from === 'Up' ? 'warn' : 'info';
    this.log(level, `BFD session ${t.from} -> ${t.to}`, { peer: endpoint.config.peerAddress, diagnostic: describeDiag(t.diag) });
    this.emit('transition', endpoint.config.peerAddress, t);
  }

  /**
   * A received packet. `ttl` says whether it came with TTL / hop limit 255
   * (`bad`: the filter cut it; `unknown`: no filter): a bad one is counted
   * against its source's session and dropped (RFC 5881 §5).
   */
  onPacket(msg: Buffer, source: string, ttl: 'ok' | 'bad' | 'unknown'): void {
    if (ttl === 'bad') {
      this.unmatched.badTtl++;
      const endpoint = this.endpoints.get(source);
      if (endpoint) {
        endpoint.session.discarded();
        this.emit('change', source);
      }
      return;
    }
    const decoded = decodeBfdControl(msg);
    if ('discard' in decoded) {
      this.unmatched.malformed++;
      this.log('debug', 'BFD packet discarded', { source, reason: decoded.discard });
      return;
    }
    const endpoint = decoded.yourDiscriminator !== 0
      ? this.byDiscriminator.get(decoded.yourDiscriminator)
      : this.endpoints.get(source);
    // A packet for our discriminator from another address is not this session's peer.
    if (!endpoint || endpoint.config.peerAddress !== source) {
      this.unmatched.unknownPeer++;
      return;
    }
    this.transmit(endpoint, endpoint.session.receive(decoded, now()));
    this.arm(endpoint);
    this.emit('change', source);
  }

  private run(endpoint: Endpoint): void {
    if (this.endpoints.get(endpoint.config.peerAddress) !== endpoint) return;
    // Still binding: the bind callback runs this again, so the first packet is not lost.
    if (!endpoint.socket && !endpoint.error) return;
    this.transmit(endpoint, endpoint.session.tick(now()));
    this.arm(endpoint);
    this.emit('change', endpoint.config.peerAddress);
  }

  /** A receive socket's error shows in the status of every session of its family. */
  private changedFamily(kind: 'udp4' | 'udp6'): void {
    for (const peer of this.endpoints.keys()) if (family(peer) === kind) this.emit('change', peer);
  }

  private arm(endpoint: Endpoint): void {
    clearTimeout(endpoint.timer);
    const delay = Math.max(0, endpoint.session.nextDeadline() - now());
    endpoint.timer = setTimeout(() => this.run(endpoint), delay);
  }
}
