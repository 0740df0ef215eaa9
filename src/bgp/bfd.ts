/**
 * BFD (RFC 5880), single-hop asynchronous mode, as a pure state machine:
 * no sockets and no timers. The I/O layer (bfd-socket.ts) hands it received
 * control packets and the current time, asks when it must next be woken
 * (`nextDeadline`), and sends the packets it returns.
 *
 * Not implemented (none is needed for single-hop liveness under BGP): demand
 * mode (we never set D and treat a peer's D as async), the echo function
 * (we advertise Required Min Echo RX 0), and authentication (a packet with
 * the A bit is discarded, as RFC 5880 §6.8.6 requires when none is
 * configured).
 */

export const BFD_CONTROL_PORT = 3784;
/** RFC 5881 §4: the source port of a session, unique per session. */
export const BFD_SOURCE_PORT_MIN = 49152;
export const BFD_SOURCE_PORT_MAX = 65535;
/** RFC 5881 §5: sent with TTL/hop limit 255, and received only with 255 (GTSM). */
export const BFD_TTL = 255;

export type BfdState = 'AdminDown' | 'Down' | 'Init' | 'Up';
const STATE_CODES: Record<BfdState, number> = { AdminDown: 0, Down: 1, Init: 2, Up: 3 };
const STATES: readonly BfdState[] = ['AdminDown', 'Down', 'Init', 'Up'];

/** RFC 5880 §4.1 diagnostic codes. */
export const BfdDiag = {
  None: 0,
  ControlDetectionTimeExpired: 1,
  EchoFunctionFailed: 2,
  NeighborSignaledSessionDown: 3,
  ForwardingPlaneReset: 4,
  PathDown: 5,
  ConcatenatedPathDown: 6,
  AdministrativelyDown: 7,
  ReverseConcatenatedPathDown: 8,
} as const;

const DIAG_TEXT = [
  'No Diagnostic', 'Control Detection Time Expired', 'Echo Function Failed', 'Neighbor Signaled Session Down',
  'Forwarding Plane Reset', 'Path Down', 'Concatenated Path Down', 'Administratively Down', 'Reverse Concatenated Path Down',
];

export function describeDiag(diag: number): string {
  return DIAG_TEXT[diag] ?? `diagnostic ${diag}`;
}

export interface BfdControlPacket {
  diag: number;
  state: BfdState;
  poll: boolean;
  final: boolean;
  /** C: the control plane can fail independently of forwarding (we set it: a hung agent must take BFD down). */
  controlPlaneIndependent: boolean;
  authPresent: boolean;
  demand: boolean;
  multipoint: boolean;
  detectMult: number;
  myDiscriminator: number;
  yourDiscriminator: number;
  /** Microseconds, as on the wire. */
  desiredMinTxUs: number;
  requiredMinRxUs: number;
  requiredMinEchoRxUs: number;
}

const CONTROL_LENGTH = 24;
const BFD_VERSION = 1;

export function encodeBfdControl(p: BfdControlPacket): Buffer {
  const b = Buffer.alloc(CONTROL_LENGTH);
  b[0] = (BFD_VERSION << 5) | (p.diag & 0x1f);
  b[1] = (STATE_CODES[p.state] << 6) | (p.poll ? 0x20 : 0) | (p.final ? 0x10 : 0) | (p.controlPlaneIndependent ? 0x08 : 0)
    | (p.authPresent ? 0x04 : 0) | (p.demand ? 0x02 : 0) | (p.multipoint ? 0x01 : 0);
  b[2] = p.detectMult;
  b[3] = CONTROL_LENGTH;
  b.writeUInt32BE(p.myDiscriminator >>> 0, 4);
  b.writeUInt32BE(p.yourDiscriminator >>> 0, 8);
  b.writeUInt32BE(p.desiredMinTxUs >>> 0, 12);
  b.writeUInt32BE(p.requiredMinRxUs >>> 0, 16);
  b.writeUInt32BE(p.requiredMinEchoRxUs >>> 0, 20);
  return b;
}

/**
 * Decodes a control packet and applies the RFC 5880 §6.8.6 checks that
 * need no session (version, length, multiplier, M bit, discriminators,
 * authentication). Returns the reason for discarding instead of throwing:
 * anything can arrive on port 3784.
 */
export function decodeBfdControl(buf: Buffer): BfdControlPacket | { discard: string } {
  if (buf.length < CONTROL_LENGTH) return { discard: `${buf.length} bytes, shorter than a control packet (24)` };
  const version = buf[0]! >> 5;
  if (version !== BFD_VERSION) return { discard: `version ${version}, not 1` };
  const length = buf[3]!;
  const flags = buf[1]!;
  const authPresent = (flags & 0x04) !== 0;
  if (length < (authPresent ? 26 : CONTROL_LENGTH)) return { discard: `length field ${length} too small` };
  if (length > buf.length) return { discard: `length field ${length} exceeds the ${buf.length}-byte payload` };
  const p: BfdControlPacket = {
    diag: buf[0]! & 0x1f,
    state: STATES[flags >> 6]!,
    poll: (flags & 0x20) !== 0,
    final: (flags & 0x10) !== 0,
    controlPlaneIndependent: (flags & 0x08) !== 0,
    authPresent,
    demand: (flags & 0x02) !== 0,
    multipoint: (flags & 0x01) !== 0,
    detectMult: buf[2]!,
    myDiscriminator: buf.readUInt32BE(4),
    yourDiscriminator: buf.readUInt32BE(8),
    desiredMinTxUs: buf.readUInt32BE(12),
    requiredMinRxUs: buf.readUInt32BE(16),
    requiredMinEchoRxUs: buf.readUInt32BE(20),
  };
  if (p.detectMult === 0) return { discard: 'detect multiplier 0' };
  if (p.multipoint) return { discard: 'multipoint (M) bit set' };
  if (p.myDiscriminator === 0) return { discard: 'my discriminator 0' };
  if (p.yourDiscriminator === 0 && p.state !== 'Down' && p.state !== 'AdminDown') {
    return { discard: `your discriminator 0 in state ${p.state}` };
  }
  // No authentication is configured on our side: §6.8.6 says discard.
  if (p.authPresent) return { discard: 'authentication present but none configured' };
  return p;
}

export interface BfdTimers {
  /** Desired Min TX Interval once Up, ms. */
  minTxMs: number;
  /** Required Min RX Interval, ms. */
  minRxMs: number;
  /** Detect Mult we send: the peer declares us down after this many missed intervals. */
  multiplier: number;
  /** Passive role (RFC 5880 §6.1): send nothing until the peer has been heard (MetalLB's passiveMode). */
  passive?: boolean;
}

export const DEFAULT_BFD_TIMERS: BfdTimers = { minTxMs: 300, minRxMs: 300, multiplier: 3 };

/** §6.8.3: while not Up, Desired Min TX is at least one second. */
const SLOW_TX_US = 1_000_000;

export interface BfdTransition {
  from: BfdState;
  to: BfdState;
  diag: number;
  at: number;
}

/** What a call to the session produced: packets to send now, and a state change if any. */
export interface BfdOutput {
  send: BfdControlPacket[];
  transition?: BfdTransition;
}

export interface BfdSessionView {
  state: BfdState;
  remoteState: BfdState;
  diag: number;
  localDiscriminator: number;
  remoteDiscriminator: number;
  /** The interval we send at now (before jitter), ms. */
  txIntervalMs: number;
  /** How long the peer may stay silent before we declare it down (0 until it has sent anything), ms. */
  detectionTimeMs: number;
  remoteMultiplier: number;
  pollActive: boolean;
  transitions: number;
  lastTransitionAt?: number;
  packetsReceived: number;
  packetsSent: number;
  packetsDiscarded: number;
}

export class BfdSession {
  state: BfdState = 'Down';
  private remoteState: BfdState = 'Down';
  private diag: number = BfdDiag.None;
  private remoteDiscr = 0;
  /** Values on the wire (µs); `pending` holds what a poll sequence will make effective. */
  private desiredMinTxUs = SLOW_TX_US;
  private requiredMinRxUs: number;
  /** The values the timing uses until a poll sequence ends (§6.8.3). */
  private effectiveTxUs = SLOW_TX_US;
  private effectiveRxUs: number;
  private remoteMinRxUs = 1; // §6.8.1: initialised to 1 µs
  private remoteDesiredTxUs = 0;
  private remoteMultiplier = 0;
  private pollActive = false;
  private finalOwed = false;
  private lastRxAt?: number;
  private nextTxAt: number;
  private transitions = 0;
  private lastTransitionAt?: number;
  private counters = { received: 0, sent: 0, discarded: 0 };

  constructor(
    readonly localDiscriminator: number,
    private timers: BfdTimers,
    now: number,
    /** Jitter in [0, 1); tests pass a constant. */
    private readonly random: () => number = Math.random,
  ) {
    if (localDiscriminator === 0 || localDiscriminator > 0xffffffff) throw new RangeError('BFD local discriminator must be 1..2^32-1');
    this.requiredMinRxUs = timers.minRxMs * 1000;
    this.effectiveRxUs = this.requiredMinRxUs;
    this.nextTxAt = now;
  }

  /** The transmit interval before jitter (§6.8.7): the larger of ours and the peer's receive floor. */
  private txIntervalUs(): number {
    return Math.max(this.effectiveTxUs, this.remoteMinRxUs);
  }

  /** Detection time (§6.8.4, asynchronous): the peer's multiplier × the agreed interval. */
  private detectionTimeUs(): number {
    if (!this.remoteMultiplier) return 0;
    return this.remoteMultiplier * Math.max(this.effectiveRxUs, this.remoteDesiredTxUs);
  }

  private jittered(intervalUs: number): number {
    // §6.8.7: 75-100% of the interval, 75-90% when the multiplier is 1.
    const factor = this.timers.multiplier === 1 ? 0.9 - 0.15 * this.random() : 1 - 0.25 * this.random();
    return (intervalUs * factor) / 1000;
  }

  private packet(final: boolean): BfdControlPacket {
    return {
      diag: this.diag,
      state: this.state,
      poll: this.pollActive && !final,
      final,
      controlPlaneIndependent: false,
      authPresent: false,
      demand: false,
      multipoint: false,
      detectMult: this.timers.multiplier,
      myDiscriminator: this.localDiscriminator,
      yourDiscriminator: this.remoteDiscr,
      desiredMinTxUs: this.desiredMinTxUs,
      requiredMinRxUs: this.requiredMinRxUs,
      requiredMinEchoRxUs: 0,
    };
  }

  private setState(to: BfdState, diag: number, now: number, out: BfdOutput): void {
    if (to === this.state) return;
    const from = this.state;
    this.state = to;
    this.diag = diag;
    this.transitions++;
    this.lastTransitionAt = now;
    out.transition = { from, to, diag, at: now };
    // §6.8.3: fast timers only while Up; slow (1 s) otherwise. Changing our TX while Up is done by a poll.
    this.changeTimers(to === 'Up' ? this.timers.minTxMs * 1000 : SLOW_TX_US, this.timers.minRxMs * 1000);
    // Tell the peer at once rather than at the next periodic packet (both bird and FRR do the same).
    out.send.push(this.packet(false));
    this.counters.sent++;
    this.nextTxAt = now + this.jittered(this.txIntervalUs());
  }

  /**
   * New Desired Min TX / Required Min RX (µs). While Up a poll sequence
   * announces them; an increase of TX and a decrease of RX take effect only
   * when the peer answers with Final (§6.8.3), so neither side's detection
   * time is ever shorter than the packets allow.
   */
  private changeTimers(txUs: number, rxUs: number): void {
    if (txUs === this.desiredMinTxUs && rxUs === this.requiredMinRxUs) return;
    this.desiredMinTxUs = txUs;
    this.requiredMinRxUs = rxUs;
    if (this.state === 'Up') {
      if (txUs < this.effectiveTxUs) this.effectiveTxUs = txUs;
      if (rxUs > this.effectiveRxUs) this.effectiveRxUs = rxUs;
      this.pollActive = true;
    } else {
      // Not Up: nothing depends on the old values, no poll needed.
      this.effectiveTxUs = txUs;
      this.effectiveRxUs = rxUs;
      this.pollActive = false;
    }
  }

  /** Operator change of the timers (a policy edit). */
  setTimers(timers: BfdTimers, now: number): void {
    this.timers = timers;
    this.changeTimers(this.state === 'Up' ? timers.minTxMs * 1000 : SLOW_TX_US, timers.minRxMs * 1000);
    // The poll (or the new interval) goes out with the next packet, sent now.
    this.nextTxAt = Math.min(this.nextTxAt, now);
  }

  /** A control packet from the peer (already decoded and demultiplexed to this session). */
  receive(p: BfdControlPacket, now: number): BfdOutput {
    const out: BfdOutput = { send: [] };
    if (p.yourDiscriminator !== 0 && p.yourDiscriminator !== this.localDiscriminator) {
      this.counters.discarded++;
      return out;
    }
    this.counters.received++;
    this.lastRxAt = now;
    this.remoteDiscr = p.myDiscriminator;
    this.remoteState = p.state;
    this.remoteMultiplier = p.detectMult;
    this.remoteDesiredTxUs = p.desiredMinTxUs;
    const remoteMinRxBefore = this.remoteMinRxUs;
    this.remoteMinRxUs = p.requiredMinRxUs;
    if (p.final && this.pollActive) {
      // The peer has seen our new values: they take effect now.
      this.pollActive = false;
      this.effectiveTxUs = this.desiredMinTxUs;
      this.effectiveRxUs = this.requiredMinRxUs;
    }
    if (this.state === 'AdminDown') return out;
    if (p.state === 'AdminDown') {
      if (this.state !== 'Down') this.setState('Down', BfdDiag.NeighborSignaledSessionDown, now, out);
    } else if (this.state === 'Down') {
      if (p.state === 'Down') this.setState('Init', BfdDiag.None, now, out);
      else if (p.state === 'Init') this.setState('Up', BfdDiag.None, now, out);
    } else if (this.state === 'Init') {
      if (p.state === 'Init' || p.state === 'Up') this.setState('Up', BfdDiag.None, now, out);
    } else if (p.state === 'Down') {
      this.setState('Down', BfdDiag.NeighborSignaledSessionDown, now, out);
    }
    if (p.poll) this.finalOwed = true;
    if (this.finalOwed) {
      // §6.8.6: answer a Poll with Final (P clear) as soon as practicable.
      this.finalOwed = false;
      out.send.push(this.packet(true));
      this.counters.sent++;
    }
    // The peer may have lowered its receive floor: do not wait out a long slow interval.
    if (p.requiredMinRxUs < remoteMinRxBefore) this.nextTxAt = Math.min(this.nextTxAt, now + this.jittered(this.txIntervalUs()));
    return out;
  }

  /** Counts a packet the I/O layer discarded for this session (wrong TTL, bad format). */
  discarded(): void {
    this.counters.discarded++;
  }

  /** When `tick` must next run (ms, same clock as `now`). */
  nextDeadline(): number {
    const detect = this.detectDeadline();
    return detect === undefined ? this.nextTxAt : Math.min(this.nextTxAt, detect);
  }

  private detectDeadline(): number | undefined {
    if (this.lastRxAt === undefined || this.state === 'AdminDown') return undefined;
    const d = this.detectionTimeUs();
    return d ? this.lastRxAt + d / 1000 : undefined;
  }

  /** Timers: detection-time expiry and periodic transmission. */
  tick(now: number): BfdOutput {
    const out: BfdOutput = { send: [] };
    const detect = this.detectDeadline();
    if (detect !== undefined && now >= detect) {
      this.lastRxAt = undefined;
      // §6.8.1: the peer's discriminator and receive floor are forgotten when it falls silent.
      this.remoteDiscr = 0;
      this.remoteMinRxUs = 1;
      this.remoteState = 'Down';
      this.remoteMultiplier = 0;
      if (this.state === 'Init' || this.state === 'Up') this.setState('Down', BfdDiag.ControlDetectionTimeExpired, now, out);
    }
    // §6.8.7: no periodic packets while the peer's Required Min RX is 0; §6.1: a passive side waits to be spoken to.
    const silent = this.timers.passive === true && this.remoteDiscr === 0;
    if (silent && now >= this.nextTxAt) {
      this.nextTxAt = now + SLOW_TX_US / 1000;
    } else if (now >= this.nextTxAt && this.remoteMinRxUs > 0) {
      out.send.push(this.packet(false));
      this.counters.sent++;
      this.nextTxAt = now + this.jittered(this.txIntervalUs());
    } else if (this.remoteMinRxUs === 0 && now >= this.nextTxAt) {
      this.nextTxAt = now + SLOW_TX_US / 1000;
    }
    return out;
  }

  /** Operator shutdown of the session: the peer sees AdminDown (diag 7) and must not treat it as a failure. */
  adminDown(now: number): BfdOutput {
    const out: BfdOutput = { send: [] };
    this.setState('AdminDown', BfdDiag.AdministrativelyDown, now, out);
    return out;
  }

  adminUp(now: number): BfdOutput {
    const out: BfdOutput = { send: [] };
    if (this.state === 'AdminDown') this.setState('Down', BfdDiag.None, now, out);
    return out;
  }

  view(): BfdSessionView {
    return {
      state: this.state,
      remoteState: this.remoteState,
      diag: this.diag,
      localDiscriminator: this.localDiscriminator,
      remoteDiscriminator: this.remoteDiscr,
      txIntervalMs: this.txIntervalUs() / 1000,
      detectionTimeMs: this.detectionTimeUs() / 1000,
      remoteMultiplier: this.remoteMultiplier,
      pollActive: this.pollActive,
      transitions: this.transitions,
      ...(this.lastTransitionAt !== undefined ? { lastTransitionAt: this.lastTransitionAt } : {}),
      packetsReceived: this.counters.received,
      packetsSent: this.counters.sent,
      packetsDiscarded: this.counters.discarded,
    };
  }
}
