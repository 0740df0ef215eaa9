/**
 * One BGP session: the RFC 4271 §8 finite state machine over a TCP
 * connection (Idle, Connect, Active, OpenSent, OpenConfirm, Established),
 * with connect-retry (jittered), hold and keepalive timers, connection
 * collision resolution (§6.8), and exponential back-off when a peer keeps
 * failing after the OPEN exchange (DampPeerOscillations, §8.1.1).
 *
 * Every protocol error found in a peer's message is answered with the
 * NOTIFICATION the codec names, the connection is closed, and the session
 * reconnects later; nothing a peer sends can throw out of this module.
 *
 * The session knows nothing of routes: the speaker sends UPDATEs through
 * `send` once the session is Established and listens to `update` events.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import {
  AS_TRANS,
  BGP_VERSION,
  BgpError,
  CeaseSubcode,
  ErrorCode,
  FsmSubcode,
  MessageReader,
  MessageType,
  OpenSubcode,
  classicRouteFields,
  decodeMessage,
  describeNotification,
  encodeKeepalive,
  encodeNotification,
  encodeOpen,
  peerAsnOf,
  shutdownCommunication,
  type Capabilities,
  type DecodeContext,
  type GracefulRestartCapability,
  type NotificationMessage,
  type OpenMessage,
  type UpdateMessage,
} from './codec.js';
import { AFI_IPV4, AFI_IPV6, SAFI_UNICAST, addressBytes, type Afi } from './prefix.js';

export type SessionState = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

export interface SessionConfig {
  localAsn: number;
  peerAsn: number;
  /** Our BGP identifier (dotted quad). */
  routerId: string;
  peerAddress: string;
  peerPort: number;
  /** Source address for the outgoing connection. */
  localAddress?: string;
  /** Proposed hold time; 0 disables hold and keepalive timers. */
  holdTimeSeconds: number;
  /** Defaults to a third of the negotiated hold time. */
  keepaliveSeconds?: number;
  connectRetrySeconds: number;
  /** Only accept connections, never initiate. */
  passive?: boolean;
  /** Address families to negotiate (unicast). */
  families: Afi[];
  gracefulRestart?: { restartTimeSeconds: number; forwardingPreserved: boolean; restarting: boolean };
  /** RFC 7606: treat faulty UPDATE attributes as a withdrawal where allowed, instead of resetting. */
  revisedErrorHandling?: boolean;
  /** Ceiling of the back-off after repeated failures (default 300 s, never below connectRetry). */
  maxBackoffSeconds?: number;
  /** An Established session that lasted this long forgets earlier failures (default 60 s). */
  stableSeconds?: number;
  /**
   * Most prefixes the peer may announce to us (default DEFAULT_MAX_PREFIXES;
   * pharos only advertises and uses nothing it receives). Past it, `restart`
   * (default, as FRR's `maximum-prefix` and bird's `receive limit`) sends
   * NOTIFICATION Cease / Maximum Number of Prefixes Reached (RFC 4486
   * subcode 1) and reconnects after the back-off; `drop` keeps the session
   * and ignores (does not hold) the routes past the limit.
   */
  maxPrefixes?: number;
  maxPrefixAction?: MaxPrefixAction;
}

export type MaxPrefixAction = 'restart' | 'drop';
export const DEFAULT_MAX_PREFIXES = 1000;

/** Opens the outgoing TCP connection; the speaker swaps this for one that sets MD5 and TTL. */
export type Connector = (cfg: SessionConfig) => net.Socket;

export const plainConnector: Connector = (cfg) =>
  net.connect({ host: cfg.peerAddress, port: cfg.peerPort, ...(cfg.localAddress ? { localAddress: cfg.localAddress } : {}) });

export interface Negotiated {
  holdTimeSeconds: number;
  keepaliveSeconds: number;
  fourOctetAs: boolean;
  families: Afi[];
  routeRefresh: boolean;
  peerBgpId: string;
  peerAsn: number;
  peerGracefulRestart?: GracefulRestartCapability;
  localAddress: string;
  remoteAddress: string;
}

export interface SessionCounters {
  messagesSent: number;
  messagesReceived: number;
  updatesSent: number;
  updatesReceived: number;
  notificationsSent: number;
  notificationsReceived: number;
  keepalivesSent: number;
  keepalivesReceived: number;
  routeRefreshesReceived: number;
  /** UPDATEs whose routes were treated as withdrawn (RFC 7606). */
  treatAsWithdraw: number;
  /** UPDATEs discarded because their AS_PATH holds our own AS. */
  asPathLoops: number;
  /** Times the session left Established. */
  flaps: number;
  /** Times a TCP connection was established (either direction). */
  connections: number;
  /** Times the peer went past maxPrefixes (each ends the session with `restart`). */
  maxPrefixExceeded: number;
  /** Announced prefixes ignored because the limit was reached (`drop`). */
  prefixesDropped: number;
}

export interface LastError {
  at: number;
  direction: 'sent' | 'received' | 'local';
  code?: number;
  subcode?: number;
  text: string;
}

interface Conn {
  socket: net.Socket;
  direction: 'outbound' | 'inbound';
  reader: MessageReader;
  open?: OpenMessage;
  closed: boolean;
}

const OPEN_HOLD_MS = 240_000; // RFC 4271 §8.2.2 suggests 4 minutes while waiting for OPEN.
const CLOSE_GRACE_MS = 1000;
const MAX_BACKOFF_EXPONENT = 8;

function jitter(ms: number): number {
  // RFC 4271 §10: reduce by a random 0-25% so peers do not synchronise.
  return ms * (0.75 + Math.random() * 0.25);
}

/** IPv4-mapped IPv6 addresses (from a dual-stack listener) back to IPv4 text. */
export function plainAddress(a: string | undefined): string {
  if (!a) return '';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1]! : a;
}

function idValue(id: string): number {
  return addressBytes(id).readUInt32BE(0);
}

export interface SessionEvents {
  state: [state: SessionState, previous: SessionState];
  established: [negotiated: Negotiated];
  /** Left Established (or the OPEN exchange failed); reason is human text. */
  down: [reason: string];
  update: [update: UpdateMessage];
  'route-refresh': [afi: number, safi: number];
  /** The peer announced more than maxPrefixes; `action` says what was done. */
  'max-prefix': [info: { limit: number; received: number; action: MaxPrefixAction }];
}

export class BgpSession extends EventEmitter<SessionEvents> {
  state: SessionState = 'Idle';
  readonly counters: SessionCounters = {
    messagesSent: 0, messagesReceived: 0, updatesSent: 0, updatesReceived: 0,
    notificationsSent: 0, notificationsReceived: 0, keepalivesSent: 0, keepalivesReceived: 0,
    routeRefreshesReceived: 0, treatAsWithdraw: 0, asPathLoops: 0, flaps: 0, connections: 0,
    maxPrefixExceeded: 0, prefixesDropped: 0,
  };
  /** `drop`: the limit was reached in this Established period (counted once per period). */
  private overLimit = false;
  lastError?: LastError;
  establishedAt?: number;
  negotiated?: Negotiated;
  /** Adj-RIB-In, for counting: prefixes the peer currently announces to us. */
  readonly received = new Set<string>();

  private conn?: Conn;
  /** An incoming connection racing the current one (collision, §6.8). */
  private candidate?: Conn;
  private running = false;
  private failures = 0;
  private retryTimer?: NodeJS.Timeout;
  private holdTimer?: NodeJS.Timeout;
  private keepaliveTimer?: NodeJS.Timeout;
  private candidateTimer?: NodeJS.Timeout;
  private stableTimer?: NodeJS.Timeout;
  private sentRestartBit = false;

  constructor(
    readonly config: SessionConfig,
    private readonly connector: Connector = plainConnector,
  ) {
    super();
  }

  get isEbgp(): boolean {
    return this.config.localAsn !== this.config.peerAsn;
  }

  /** ManualStart: connect now (or wait for the peer when passive). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.failures = 0;
    this.beginAttempt();
  }

  /**
   * ManualStop. With `notify` a Cease (administrative shutdown by default)
   * goes out first; without it the TCP connection is simply closed, which a
   * graceful-restart helper takes as a restart and keeps our routes.
   */
  stop(opts: { notify?: boolean; subcode?: number; message?: string } = {}): void {
    this.running = false;
    this.clearTimers();
    for (const c of [this.candidate, this.conn]) {
      if (!c) continue;
      if (opts.notify && !c.closed && (this.state === 'OpenSent' || this.state === 'OpenConfirm' || this.state === 'Established' || c === this.candidate)) {
        const text = opts.message ? Buffer.from(opts.message, 'utf8').subarray(0, 255) : Buffer.alloc(0);
        const data = opts.message ? Buffer.concat([Buffer.from([text.length]), text]) : Buffer.alloc(0);
        this.closeConn(c, new BgpError(ErrorCode.Cease, opts.subcode ?? CeaseSubcode.AdministrativeShutdown, data, opts.message));
      } else {
        this.closeConn(c);
      }
    }
    this.candidate = undefined;
    const wasEstablished = this.state === 'Established';
    this.conn = undefined;
    this.setState('Idle');
    if (wasEstablished) this.leaveEstablished('stopped');
  }

  /** Sends messages on the Established connection; returns false when not Established. */
  send(messages: Buffer[]): boolean {
    if (this.state !== 'Established' || !this.conn || this.conn.closed) return false;
    for (const m of messages) {
      this.conn.socket.write(m);
      this.counters.messagesSent++;
      this.counters.updatesSent++;
    }
    // Any UPDATE counts as a KEEPALIVE for the peer's hold timer (§4.4): restart ours.
    if (messages.length) this.armKeepalive();
    return true;
  }

  /** Bytes queued in the socket, for callers that pace large table dumps. */
  get writableLength(): number {
    return this.conn?.socket.writableLength ?? 0;
  }

  /** An incoming connection from this peer, accepted by the speaker's listener. */
  acceptIncoming(socket: net.Socket): void {
    if (!this.running || this.state === 'Idle') {
      socket.destroy();
      return;
    }
    const conn = this.adopt(socket, 'inbound');
    this.counters.connections++;
    switch (this.state) {
      case 'Connect':
      case 'Active':
        if (this.conn) this.closeConn(this.conn);
        this.openOn(conn);
        return;
      case 'OpenSent':
      case 'OpenConfirm':
        if (this.candidate) this.closeConn(this.candidate);
        this.candidate = conn;
        this.sendOpen(conn);
        this.clearTimer('candidateTimer');
        this.candidateTimer = setTimeout(() => {
          if (this.candidate === conn) {
            this.candidate = undefined;
            this.closeConn(conn, new BgpError(ErrorCode.HoldTimerExpired, 0));
          }
        }, OPEN_HOLD_MS);
        return;
      case 'Established':
        if (this.negotiated?.peerGracefulRestart) {
          // RFC 4724 §4.2: a new connection from a GR-capable peer while Established means it restarted.
          this.dropConnection('peer reconnected (graceful restart)', undefined, false);
          if (!this.running) { socket.destroy(); return; }
          this.openOn(conn);
          return;
        }
        this.closeConn(conn, new BgpError(ErrorCode.Cease, CeaseSubcode.ConnectionCollisionResolution));
        return;
      default:
        socket.destroy();
    }
  }

  /**
   * BFD declared the forwarding path to this peer down (RFC 5882 §4.3):
   * drop the session now rather than at hold-timer expiry, with Cease/BFD
   * Down (RFC 9384) in case the peer still hears us, and reconnect after
   * the usual connect-retry delay.
   */
  bfdDown(reason: string): void {
    if (!this.running || this.state === 'Idle' || this.state === 'Connect' || this.state === 'Active') return;
    this.recordError('local', reason);
    this.dropConnection(reason, new BgpError(ErrorCode.Cease, CeaseSubcode.BfdDown, Buffer.alloc(0), reason), false);
  }

  /** Seconds since Established, or 0. */
  uptimeSeconds(now = Date.now()): number {
    return this.state === 'Established' && this.establishedAt ? Math.floor((now - this.establishedAt) / 1000) : 0;
  }

  // ---------------------------------------------------------------- connection lifecycle

  private beginAttempt(): void {
    if (!this.running) return;
    if (this.config.passive) {
      this.setState('Active');
      return;
    }
    this.setState('Connect');
    let socket: net.Socket;
    try {
      socket = this.connector(this.config);
    } catch (e) {
      this.recordError('local', `cannot open connection: ${(e as Error).message}`);
      this.connectFailed();
      return;
    }
    const conn = this.adopt(socket, 'outbound');
    this.conn = conn;
    // The connect-retry timer bounds the TCP handshake too (§8.2.2, Connect state).
    this.armRetry(this.retryDelayMs(), () => {
      if (this.conn === conn && this.state === 'Connect') {
        this.closeConn(conn);
        this.conn = undefined;
        this.beginAttempt();
      }
    });
    socket.once('connect', () => {
      if (conn.closed || this.conn !== conn || this.state !== 'Connect') return;
      this.counters.connections++;
      this.openOn(conn);
    });
  }

  private connectFailed(): void {
    if (!this.running) return;
    this.setState('Active');
    this.armRetry(this.retryDelayMs(), () => this.beginAttempt());
  }

  private adopt(socket: net.Socket, direction: Conn['direction']): Conn {
    const conn: Conn = { socket, direction, reader: new MessageReader(), closed: false };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (err) => this.onSocketGone(conn, `TCP: ${err.message}`));
    socket.on('close', () => this.onSocketGone(conn, 'TCP connection closed by peer'));
    return conn;
  }

  private onSocketGone(conn: Conn, reason: string): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.socket.destroy();
    if (conn === this.candidate) {
      this.candidate = undefined;
      return;
    }
    if (conn !== this.conn) return;
    if (this.state === 'Connect') {
      this.recordError('local', reason);
      this.conn = undefined;
      this.clearTimer('retryTimer');
      this.connectFailed();
      return;
    }
    this.dropConnection(reason, undefined, this.state !== 'Active');
  }

  /**
   * Ends the current connection (optionally with a NOTIFICATION) and goes
   * Idle; reconnects after a delay if still running.
   */
  private dropConnection(reason: string, notify: BgpError | undefined, protocolFailure: boolean): void {
    const conn = this.conn;
    const wasEstablished = this.state === 'Established';
    if (conn) this.closeConn(conn, notify);
    this.conn = undefined;
    this.clearTimers();
    if (this.candidate && this.running && !this.candidate.closed) {
      // The racing connection carries on as the session (its OPEN is already sent).
      this.conn = this.candidate;
      this.candidate = undefined;
      this.armHold(OPEN_HOLD_MS);
      this.setState('OpenSent');
      if (wasEstablished) this.leaveEstablished(reason);
      if (this.conn.open) this.onOpen(this.conn, this.conn.open);
      return;
    }
    this.setState('Idle');
    if (wasEstablished) this.leaveEstablished(reason);
    else this.emit('down', reason);
    if (!this.running) return;
    if (protocolFailure) this.failures++;
    this.armRetry(this.retryDelayMs(), () => this.beginAttempt());
  }

  private leaveEstablished(reason: string): void {
    this.counters.flaps++;
    this.establishedAt = undefined;
    this.received.clear();
    this.emit('down', reason);
  }

  private closeConn(conn: Conn, notify?: BgpError): void {
    if (conn.closed) return;
    conn.closed = true;
    if (notify) {
      this.counters.notificationsSent++;
      this.counters.messagesSent++;
      if (notify.code !== ErrorCode.Cease || notify.subcode !== CeaseSubcode.ConnectionCollisionResolution) {
        this.recordError('sent', notify.message, notify.code, notify.subcode);
      }
      conn.socket.end(encodeNotification(notify.code, notify.subcode, notify.data));
      setTimeout(() => conn.socket.destroy(), CLOSE_GRACE_MS).unref();
    } else {
      conn.socket.destroy();
    }
  }

  // ---------------------------------------------------------------- messages

  private onData(conn: Conn, chunk: Buffer): void {
    if (conn.closed) return;
    conn.reader.push(chunk);
    try {
      for (let msg = conn.reader.next(); msg && !conn.closed; msg = conn.reader.next()) {
        this.counters.messagesReceived++;
        this.onMessage(conn, msg);
      }
    } catch (e) {
      const err = e instanceof BgpError ? e : new BgpError(ErrorCode.Cease, 0, undefined, `internal error: ${(e as Error).message}`);
      this.failConn(conn, err);
    }
  }

  private failConn(conn: Conn, err: BgpError): void {
    if (conn === this.candidate) {
      this.candidate = undefined;
      this.clearTimer('candidateTimer');
      this.closeConn(conn, err);
      return;
    }
    if (conn !== this.conn) {
      this.closeConn(conn, err);
      return;
    }
    this.dropConnection(err.message, err, true);
  }

  private decodeContext(): DecodeContext {
    return {
      fourOctetAs: this.negotiated?.fourOctetAs ?? false,
      ...(this.isEbgp ? { ebgpPeerAsn: this.config.peerAsn } : {}),
    };
  }

  private onMessage(conn: Conn, raw: Buffer): void {
    // The FSM decides on the message type before the body is decoded: an
    // UPDATE cannot be decoded before the OPEN exchange fixed the AS width.
    const type = raw[18];
    const connState = conn === this.candidate ? 'OpenSent' : this.state;
    if (type !== MessageType.Notification) {
      if (connState === 'OpenSent' && type !== MessageType.Open) {
        throw new BgpError(ErrorCode.Fsm, FsmSubcode.UnexpectedInOpenSent, undefined, `message type ${type} in OpenSent`);
      }
      if (connState === 'OpenConfirm' && type !== MessageType.Keepalive) {
        throw new BgpError(ErrorCode.Fsm, FsmSubcode.UnexpectedInOpenConfirm, undefined, `message type ${type} in OpenConfirm`);
      }
      if (connState === 'Established' && type === MessageType.Open) {
        throw new BgpError(ErrorCode.Fsm, FsmSubcode.UnexpectedInEstablished, undefined, 'OPEN in Established');
      }
    }
    let msg;
    try {
      msg = decodeMessage(raw, this.decodeContext());
    } catch (e) {
      if (e instanceof BgpError && e.treatAsWithdraw && this.config.revisedErrorHandling && this.state === 'Established' && conn === this.conn) {
        this.counters.updatesReceived++;
        this.counters.treatAsWithdraw++;
        this.recordError('local', `treated as withdraw: ${e.message}`, e.code, e.subcode);
        const fields = classicRouteFields(raw);
        for (const p of [...(fields?.withdrawn ?? []), ...(fields?.nlri ?? [])]) this.received.delete(p);
        this.armHold();
        return;
      }
      throw e;
    }
    if (msg.kind === 'notification') {
      this.onNotification(conn, msg);
      return;
    }
    const state = conn === this.candidate ? 'OpenSent' : this.state;
    switch (state) {
      case 'OpenSent':
        if (msg.kind !== 'open') throw new BgpError(ErrorCode.Fsm, FsmSubcode.UnexpectedInOpenSent, undefined, `${msg.kind} in OpenSent`);
        this.validateOpen(msg);
        conn.open = msg;
        this.onOpen(conn, msg);
        return;
      case 'OpenConfirm':
        if (msg.kind !== 'keepalive') throw new BgpError(ErrorCode.Fsm, FsmSubcode.UnexpectedInOpenConfirm, undefined, `${msg.kind} in OpenConfirm`);
        this.counters.keepalivesReceived++;
        this.becomeEstablished();
        return;
      case 'Established':
        this.armHold();
        if (msg.kind === 'keepalive') {
          this.counters.keepalivesReceived++;
        } else if (msg.kind === 'update') {
          this.counters.updatesReceived++;
          this.applyReceived(msg);
          // The limit may have ended the session just now.
          if (this.state === 'Established') this.emit('update', msg);
        } else if (msg.kind === 'route-refresh') {
          this.counters.routeRefreshesReceived++;
          if (msg.subtype === 0) this.emit('route-refresh', msg.afi, msg.safi);
        } else {
          throw new BgpError(ErrorCode.Fsm, FsmSubcode.UnexpectedInEstablished, undefined, `${msg.kind} in Established`);
        }
        return;
      default:
        throw new BgpError(ErrorCode.Fsm, FsmSubcode.Unspecified, undefined, `${msg.kind} in ${state}`);
    }
  }

  private onNotification(conn: Conn, n: NotificationMessage): void {
    this.counters.notificationsReceived++;
    const note = shutdownCommunication(n);
    const text = `${describeNotification(n.code, n.subcode)}${note ? `: "${note}"` : ''}`;
    if (conn !== this.conn) {
      if (conn === this.candidate) this.candidate = undefined;
      this.closeConn(conn);
      return;
    }
    this.recordError('received', text, n.code, n.subcode);
    this.dropConnection(`NOTIFICATION received: ${text}`, undefined, true);
  }

  private validateOpen(open: OpenMessage): void {
    const asn = peerAsnOf(open);
    if (asn !== this.config.peerAsn) {
      const data = Buffer.alloc(2);
      data.writeUInt16BE(open.myAs);
      throw new BgpError(ErrorCode.Open, OpenSubcode.BadPeerAs, data, `peer AS ${asn}, expected ${this.config.peerAsn}`);
    }
    if (open.holdTime === 1 || open.holdTime === 2) {
      throw new BgpError(ErrorCode.Open, OpenSubcode.UnacceptableHoldTime, undefined, `hold time ${open.holdTime}`);
    }
    const id = idValue(open.bgpId);
    if (id === 0 || id === 0xffffffff || (!this.isEbgp && open.bgpId === this.config.routerId)) {
      throw new BgpError(ErrorCode.Open, OpenSubcode.BadBgpIdentifier, Buffer.from(addressBytes(open.bgpId)), `BGP identifier ${open.bgpId}`);
    }
  }

  /** OPEN accepted on `conn`: resolve a collision if there is one, then KEEPALIVE and OpenConfirm. */
  private onOpen(conn: Conn, open: OpenMessage): void {
    const other = conn === this.conn ? this.candidate : this.conn;
    if (this.state === 'Established' && conn === this.candidate) {
      // Never tear down an Established session for a racing connection.
      this.candidate = undefined;
      this.clearTimer('candidateTimer');
      this.closeConn(conn, new BgpError(ErrorCode.Cease, CeaseSubcode.ConnectionCollisionResolution));
      return;
    }
    if (other && !other.closed) {
      // §6.8: the connection opened by the side with the higher BGP identifier survives.
      const localWins = idValue(this.config.routerId) > idValue(open.bgpId);
      const keep = conn.direction === other.direction ? conn : (localWins ? (conn.direction === 'outbound' ? conn : other) : (conn.direction === 'inbound' ? conn : other));
      const drop = keep === conn ? other : conn;
      const collision = new BgpError(ErrorCode.Cease, CeaseSubcode.ConnectionCollisionResolution);
      this.clearTimer('candidateTimer');
      this.candidate = undefined;
      this.closeConn(drop, collision);
      this.conn = keep;
      if (keep !== conn) {
        // The survivor has not received its OPEN yet (or did, and is handled then).
        this.setState('OpenSent');
        this.armHold(OPEN_HOLD_MS);
        if (keep.open) this.onOpen(keep, keep.open);
        return;
      }
    }
    this.conn = conn;
    const proposed = this.config.holdTimeSeconds;
    const hold = Math.min(proposed, open.holdTime);
    const keepalive = hold === 0 ? 0 : Math.min(this.config.keepaliveSeconds ?? hold / 3, hold / 3);
    const peerFamilies: Afi[] = open.capabilities.multiprotocol.length === 0
      ? [AFI_IPV4] // RFC 4760 §8: no MP capability means IPv4 unicast only.
      : open.capabilities.multiprotocol.filter((f) => f.safi === SAFI_UNICAST && (f.afi === AFI_IPV4 || f.afi === AFI_IPV6)).map((f) => f.afi as Afi);
    this.negotiated = {
      holdTimeSeconds: hold,
      keepaliveSeconds: keepalive,
      fourOctetAs: open.capabilities.fourOctetAs !== undefined,
      families: this.config.families.filter((f) => peerFamilies.includes(f)),
      routeRefresh: open.capabilities.routeRefresh || open.capabilities.enhancedRouteRefresh,
      peerBgpId: open.bgpId,
      peerAsn: peerAsnOf(open),
      ...(open.capabilities.gracefulRestart ? { peerGracefulRestart: open.capabilities.gracefulRestart } : {}),
      localAddress: plainAddress(conn.socket.localAddress),
      remoteAddress: plainAddress(conn.socket.remoteAddress),
    };
    this.writeRaw(conn, encodeKeepalive());
    this.counters.keepalivesSent++;
    this.setState('OpenConfirm');
    this.armHold();
    this.armKeepalive();
  }

  private becomeEstablished(): void {
    this.establishedAt = Date.now();
    this.received.clear();
    this.overLimit = false;
    this.setState('Established');
    this.clearTimer('stableTimer');
    this.stableTimer = setTimeout(() => { this.failures = 0; }, (this.config.stableSeconds ?? 60) * 1000);
    this.stableTimer.unref();
    this.emit('established', this.negotiated!);
  }

  private applyReceived(u: UpdateMessage): void {
    for (const p of u.withdrawn) this.received.delete(p);
    for (const p of u.attributes.mpUnreach?.withdrawn ?? []) this.received.delete(p);
    const announced = [...u.nlri, ...(u.attributes.mpReach?.nlri ?? [])];
    // RFC 4271 §9.1.2: a route whose AS_PATH holds our own AS is a loop and is discarded
    // (routers such as FRR do send our own routes back to us).
    const path = [...(u.attributes.asPath ?? []), ...(u.attributes.as4Path ?? [])];
    const loop = path.some((seg) => seg.asns.includes(this.config.localAsn));
    if (loop && announced.length) this.counters.asPathLoops++;
    const limit = this.config.maxPrefixes ?? DEFAULT_MAX_PREFIXES;
    const action = this.config.maxPrefixAction ?? 'restart';
    let dropped = 0;
    for (const p of announced) {
      if (loop) this.received.delete(p);
      else if (this.received.size < limit || this.received.has(p)) this.received.add(p);
      else if (action === 'drop') dropped++;
      else {
        // One past the limit: the session ends here, before anything more is held (RFC 4486 §4 data: AFI, SAFI, limit).
        this.counters.maxPrefixExceeded++;
        const data = Buffer.alloc(7);
        data.writeUInt16BE(p.includes(':') ? AFI_IPV6 : AFI_IPV4, 0);
        data[2] = SAFI_UNICAST;
        data.writeUInt32BE(Math.min(limit, 0xffffffff), 3);
        this.emit('max-prefix', { limit, received: this.received.size + 1, action });
        this.dropConnection(`peer sent more than ${limit} prefixes (maximum-prefix limit)`,
          new BgpError(ErrorCode.Cease, CeaseSubcode.MaxPrefixes, data, `maximum number of prefixes reached (${limit})`), true);
        return;
      }
    }
    if (dropped > 0) {
      this.counters.prefixesDropped += dropped;
      if (!this.overLimit) {
        this.overLimit = true;
        this.counters.maxPrefixExceeded++;
        this.emit('max-prefix', { limit, received: this.received.size + dropped, action });
      }
    } else if (this.received.size < limit) this.overLimit = false;
  }

  /** `conn` becomes the session's connection: OPEN sent on it, the OPEN hold timer armed, OpenSent (RFC 4271 §8.2.2). */
  private openOn(conn: Conn): void {
    this.clearTimer('retryTimer');
    this.conn = conn;
    this.sendOpen(conn);
    this.armHold(OPEN_HOLD_MS);
    this.setState('OpenSent');
  }

  private sendOpen(conn: Conn): void {
    const c = this.config;
    const gr = c.gracefulRestart;
    const capabilities: Capabilities = {
      multiprotocol: c.families.map((afi) => ({ afi, safi: SAFI_UNICAST })),
      routeRefresh: true,
      enhancedRouteRefresh: false,
      fourOctetAs: c.localAsn,
      unknown: [],
    };
    if (gr) {
      capabilities.gracefulRestart = {
        // The R bit only on the first session after our own (re)start (RFC 4724 §3).
        restarting: gr.restarting && !this.sentRestartBit,
        notification: false,
        restartTimeSeconds: Math.min(gr.restartTimeSeconds, 4095),
        families: c.families.map((afi) => ({ afi, safi: SAFI_UNICAST, forwardingPreserved: gr.forwardingPreserved })),
      };
    }
    this.writeRaw(conn, encodeOpen({
      version: BGP_VERSION,
      myAs: c.localAsn > 0xffff ? AS_TRANS : c.localAsn,
      holdTime: c.holdTimeSeconds,
      bgpId: c.routerId,
      capabilities,
    }));
  }

  private writeRaw(conn: Conn, msg: Buffer): void {
    if (conn.closed) return;
    conn.socket.write(msg);
    this.counters.messagesSent++;
  }

  // ---------------------------------------------------------------- timers

  private retryDelayMs(): number {
    const base = this.config.connectRetrySeconds * 1000;
    if (this.failures <= 1) return jitter(base);
    const cap = Math.max(base, (this.config.maxBackoffSeconds ?? 300) * 1000);
    return jitter(Math.min(cap, base * 2 ** Math.min(this.failures - 1, MAX_BACKOFF_EXPONENT)));
  }

  private armRetry(ms: number, fn: () => void): void {
    this.clearTimer('retryTimer');
    this.retryTimer = setTimeout(fn, ms);
  }

  /** (Re)starts the hold timer: the negotiated hold time, or `ms` while waiting for OPEN. */
  private armHold(ms?: number): void {
    this.clearTimer('holdTimer');
    const holdMs = ms ?? (this.negotiated?.holdTimeSeconds ?? 0) * 1000;
    if (holdMs === 0) return;
    this.holdTimer = setTimeout(() => {
      this.dropConnection('hold timer expired', new BgpError(ErrorCode.HoldTimerExpired, 0), true);
    }, holdMs);
  }

  private armKeepalive(): void {
    this.clearTimer('keepaliveTimer');
    const seconds = this.negotiated?.keepaliveSeconds ?? 0;
    if (seconds === 0 || (this.state !== 'OpenConfirm' && this.state !== 'Established')) return;
    this.keepaliveTimer = setTimeout(() => {
      if (this.conn && !this.conn.closed) {
        this.writeRaw(this.conn, encodeKeepalive());
        this.counters.keepalivesSent++;
      }
      this.armKeepalive();
    }, jitter(seconds * 1000));
  }

  private clearTimer(name: 'retryTimer' | 'holdTimer' | 'keepaliveTimer' | 'candidateTimer' | 'stableTimer'): void {
    const t = this[name];
    if (t) clearTimeout(t);
    this[name] = undefined;
  }

  private clearTimers(): void {
    for (const n of ['retryTimer', 'holdTimer', 'keepaliveTimer', 'candidateTimer', 'stableTimer'] as const) this.clearTimer(n);
  }

  private setState(next: SessionState): void {
    const prev = this.state;
    if (prev === next) return;
    this.state = next;
    if (next === 'OpenSent' && this.config.gracefulRestart?.restarting) this.sentRestartBit = true;
    this.emit('state', next, prev);
  }

  private recordError(direction: LastError['direction'], text: string, code?: number, subcode?: number): void {
    this.lastError = { at: Date.now(), direction, text, ...(code !== undefined ? { code, subcode } : {}) };
  }
}
