/**
 * BGP-4 wire format (RFC 4271) with 4-octet ASNs (RFC 6793), multiprotocol
 * extensions (RFC 4760), route refresh (RFC 2918/7313), graceful restart
 * (RFC 4724), communities (RFC 1997) and large communities (RFC 8092).
 *
 * Decoding is strict: every malformed input throws a `BgpError` carrying the
 * NOTIFICATION (code, subcode, data) RFC 4271 §6 prescribes, plus whether
 * RFC 7606 would let the UPDATE be treated as a withdrawal instead. Pure: no
 * I/O, no clocks.
 */
import {
  AFI_IPV4,
  AFI_IPV6,
  SAFI_UNICAST,
  formatAddress,
  formatPrefix,
  nlriSize,
  parsePrefix,
  readNlri,
  writeNlri,
  addressBytes,
  type Afi,
  type Prefix,
} from './prefix.js';
import { WellKnownCommunity } from '../model/communities.js';

export const BGP_PORT = 179;
export const HEADER_SIZE = 19;
export const MAX_MESSAGE_SIZE = 4096;
export const AS_TRANS = 23456;
export const BGP_VERSION = 4;

export const MessageType = { Open: 1, Update: 2, Notification: 3, Keepalive: 4, RouteRefresh: 5 } as const;

export const ErrorCode = {
  MessageHeader: 1,
  Open: 2,
  Update: 3,
  HoldTimerExpired: 4,
  Fsm: 5,
  Cease: 6,
  RouteRefresh: 7,
} as const;

export const HeaderSubcode = { ConnectionNotSynchronized: 1, BadMessageLength: 2, BadMessageType: 3 } as const;

export const OpenSubcode = {
  Unspecific: 0,
  UnsupportedVersion: 1,
  BadPeerAs: 2,
  BadBgpIdentifier: 3,
  UnsupportedOptionalParameter: 4,
  UnacceptableHoldTime: 6,
  UnsupportedCapability: 7,
} as const;

export const UpdateSubcode = {
  MalformedAttributeList: 1,
  UnrecognizedWellKnownAttribute: 2,
  MissingWellKnownAttribute: 3,
  AttributeFlagsError: 4,
  AttributeLengthError: 5,
  InvalidOrigin: 6,
  InvalidNextHop: 8,
  OptionalAttributeError: 9,
  InvalidNetworkField: 10,
  MalformedAsPath: 11,
} as const;

/** RFC 6608. */
export const FsmSubcode = { Unspecified: 0, UnexpectedInOpenSent: 1, UnexpectedInOpenConfirm: 2, UnexpectedInEstablished: 3 } as const;

/** RFC 4486 / RFC 8538. */
export const CeaseSubcode = {
  MaxPrefixes: 1,
  AdministrativeShutdown: 2,
  PeerDeconfigured: 3,
  AdministrativeReset: 4,
  ConnectionRejected: 5,
  OtherConfigurationChange: 6,
  ConnectionCollisionResolution: 7,
  OutOfResources: 8,
  HardReset: 9,
  /** RFC 9384: the session was reset because BFD declared the path down. */
  BfdDown: 10,
} as const;

export const AttrType = {
  Origin: 1,
  AsPath: 2,
  NextHop: 3,
  Med: 4,
  LocalPref: 5,
  AtomicAggregate: 6,
  Aggregator: 7,
  Communities: 8,
  MpReach: 14,
  MpUnreach: 15,
  As4Path: 17,
  As4Aggregator: 18,
  LargeCommunities: 32,
} as const;

const FLAG_OPTIONAL = 0x80;
const FLAG_TRANSITIVE = 0x40;
const FLAG_PARTIAL = 0x20;
const FLAG_EXTENDED = 0x10;

export const CapabilityCode = {
  Multiprotocol: 1,
  RouteRefresh: 2,
  GracefulRestart: 64,
  FourOctetAs: 65,
  EnhancedRouteRefresh: 70,
} as const;

export const AsPathSegmentType = { Set: 1, Sequence: 2, ConfedSequence: 3, ConfedSet: 4 } as const;


const NOTIFICATION_NAMES: Record<number, [string, Record<number, string>]> = {
  1: ['message header error', { 1: 'connection not synchronized', 2: 'bad message length', 3: 'bad message type' }],
  2: ['OPEN message error', { 0: 'unspecific', 1: 'unsupported version number', 2: 'bad peer AS', 3: 'bad BGP identifier', 4: 'unsupported optional parameter', 6: 'unacceptable hold time', 7: 'unsupported capability' }],
  3: ['UPDATE message error', { 1: 'malformed attribute list', 2: 'unrecognized well-known attribute', 3: 'missing well-known attribute', 4: 'attribute flags error', 5: 'attribute length error', 6: 'invalid ORIGIN attribute', 8: 'invalid NEXT_HOP attribute', 9: 'optional attribute error', 10: 'invalid network field', 11: 'malformed AS_PATH' }],
  4: ['hold timer expired', {}],
  5: ['finite state machine error', { 1: 'unexpected message in OpenSent', 2: 'unexpected message in OpenConfirm', 3: 'unexpected message in Established' }],
  6: ['cease', { 1: 'maximum number of prefixes reached', 2: 'administrative shutdown', 3: 'peer de-configured', 4: 'administrative reset', 5: 'connection rejected', 6: 'other configuration change', 7: 'connection collision resolution', 8: 'out of resources', 9: 'hard reset', 10: 'BFD down' }],
  7: ['ROUTE-REFRESH message error', { 1: 'invalid message length' }],
};

/** Human text for a NOTIFICATION code/subcode, e.g. "UPDATE message error / invalid ORIGIN attribute". */
export function describeNotification(code: number, subcode: number): string {
  const entry = NOTIFICATION_NAMES[code];
  if (!entry) return `error code ${code} subcode ${subcode}`;
  const sub = entry[1][subcode];
  return sub ? `${entry[0]} / ${sub}` : subcode === 0 ? entry[0] : `${entry[0]} / subcode ${subcode}`;
}

/** A protocol error found in a peer's message: what to send back as NOTIFICATION. */
export class BgpError extends Error {
  constructor(
    readonly code: number,
    readonly subcode: number,
    readonly data: Buffer = Buffer.alloc(0),
    detail?: string,
    /** RFC 7606: the error is confined to this UPDATE's routes, which may be treated as withdrawn. */
    readonly treatAsWithdraw = false,
  ) {
    super(`${describeNotification(code, subcode)}${detail ? `: ${detail}` : ''}`);
    this.name = 'BgpError';
  }
}

// ---------------------------------------------------------------- message types

export interface AfiSafi {
  afi: number;
  safi: number;
}

export interface GracefulRestartCapability {
  /** R bit: the sender has restarted. */
  restarting: boolean;
  /** N bit (RFC 8538): the sender supports graceful NOTIFICATION. */
  notification: boolean;
  restartTimeSeconds: number;
  families: (AfiSafi & { forwardingPreserved: boolean })[];
}

export interface Capabilities {
  multiprotocol: AfiSafi[];
  routeRefresh: boolean;
  enhancedRouteRefresh: boolean;
  /** The sender's real ASN when it speaks 4-octet AS. */
  fourOctetAs?: number;
  gracefulRestart?: GracefulRestartCapability;
  unknown: { code: number; value: Buffer }[];
}

export interface OpenMessage {
  kind: 'open';
  version: number;
  /** The 2-octet "My Autonomous System" field (AS_TRANS for large ASNs). */
  myAs: number;
  holdTime: number;
  bgpId: string;
  capabilities: Capabilities;
}

export interface AsPathSegment {
  type: number;
  asns: number[];
}

export interface MpReach {
  afi: number;
  safi: number;
  /** Global next hop, then the link-local one when present (IPv6, 32 bytes). */
  nextHops: string[];
  nlri: string[];
}

export interface MpUnreach {
  afi: number;
  safi: number;
  withdrawn: string[];
}

export interface UnknownAttribute {
  flags: number;
  type: number;
  value: Buffer;
}

export interface PathAttributes {
  origin?: number;
  asPath?: AsPathSegment[];
  nextHop?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: { asn: number; address: string };
  /** RFC 1997 communities as 32-bit values. */
  communities?: number[];
  largeCommunities?: [number, number, number][];
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  as4Path?: AsPathSegment[];
  as4Aggregator?: { asn: number; address: string };
  unknown?: UnknownAttribute[];
}

export interface UpdateMessage {
  kind: 'update';
  /** IPv4 withdrawn routes (the classic field). */
  withdrawn: string[];
  attributes: PathAttributes;
  /** IPv4 NLRI (the classic field). */
  nlri: string[];
}

export interface NotificationMessage {
  kind: 'notification';
  code: number;
  subcode: number;
  data: Buffer;
}

export interface KeepaliveMessage {
  kind: 'keepalive';
}

export interface RouteRefreshMessage {
  kind: 'route-refresh';
  afi: number;
  safi: number;
  /** RFC 7313: 0 normal request, 1 BoRR, 2 EoRR. */
  subtype: number;
}

export type BgpMessage = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;

/** What decoding an UPDATE needs to know about the session. */
export interface DecodeContext {
  /** Both sides announced the 4-octet AS capability: AS_PATH carries 4-byte ASNs. */
  fourOctetAs: boolean;
  /** For the eBGP first-AS check (RFC 4271 §6.3); omit to skip it. */
  ebgpPeerAsn?: number;
}

// ---------------------------------------------------------------- framing

function withHeader(type: number, body: Buffer): Buffer {
  const msg = Buffer.alloc(HEADER_SIZE + body.length);
  msg.fill(0xff, 0, 16);
  msg.writeUInt16BE(msg.length, 16);
  msg[18] = type;
  body.copy(msg, HEADER_SIZE);
  return msg;
}

const MIN_LENGTH: Record<number, number> = { 1: 29, 2: 23, 3: 21, 4: 19, 5: 23 };

/**
 * Validates a message header (RFC 4271 §6.1) at the start of `buf`, which
 * holds at least HEADER_SIZE bytes. Returns the message length and type.
 */
export function readHeader(buf: Buffer): { length: number; type: number } {
  for (let i = 0; i < 16; i++) {
    if (buf[i] !== 0xff) throw new BgpError(ErrorCode.MessageHeader, HeaderSubcode.ConnectionNotSynchronized, undefined, 'marker is not all ones');
  }
  const length = buf.readUInt16BE(16);
  const type = buf[18]!;
  const lengthData = buf.subarray(16, 18);
  if (length < HEADER_SIZE || length > MAX_MESSAGE_SIZE) {
    throw new BgpError(ErrorCode.MessageHeader, HeaderSubcode.BadMessageLength, Buffer.from(lengthData), `length ${length}`);
  }
  const min = MIN_LENGTH[type];
  if (min === undefined) throw new BgpError(ErrorCode.MessageHeader, HeaderSubcode.BadMessageType, Buffer.from([type]), `type ${type}`);
  if (length < min || (type === MessageType.Keepalive && length !== HEADER_SIZE)) {
    throw new BgpError(ErrorCode.MessageHeader, HeaderSubcode.BadMessageLength, Buffer.from(lengthData), `length ${length} for message type ${type}`);
  }
  return { length, type };
}

/** Decodes one complete message (header included). */
export function decodeMessage(msg: Buffer, ctx: DecodeContext): BgpMessage {
  const { length, type } = readHeader(msg);
  if (length !== msg.length) {
    throw new BgpError(ErrorCode.MessageHeader, HeaderSubcode.BadMessageLength, Buffer.from(msg.subarray(16, 18)), 'length field disagrees with the message');
  }
  const body = msg.subarray(HEADER_SIZE);
  switch (type) {
    case MessageType.Open: return decodeOpen(body);
    case MessageType.Update: return decodeUpdate(body, ctx);
    case MessageType.Notification: return { kind: 'notification', code: body[0]!, subcode: body[1]!, data: Buffer.from(body.subarray(2)) };
    case MessageType.Keepalive: return { kind: 'keepalive' };
    default: return decodeRouteRefresh(msg);
  }
}

/**
 * Splits a byte stream into messages. Feed it what the socket delivers;
 * `next()` returns complete messages one by one (header validated), or null
 * when more bytes are needed.
 */
export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  next(): Buffer | null {
    if (this.buffered < HEADER_SIZE) return null;
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    const buf = this.chunks[0]!;
    const { length } = readHeader(buf);
    if (buf.length < length) return null;
    const msg = buf.subarray(0, length);
    const rest = buf.subarray(length);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return msg;
  }
}

// ---------------------------------------------------------------- OPEN

export function encodeOpen(o: Omit<OpenMessage, 'kind'>): Buffer {
  const caps: Buffer[] = [];
  const cap = (code: number, value: Buffer): void => {
    caps.push(Buffer.concat([Buffer.from([code, value.length]), value]));
  };
  for (const f of o.capabilities.multiprotocol) {
    const v = Buffer.alloc(4);
    v.writeUInt16BE(f.afi, 0);
    v[3] = f.safi;
    cap(CapabilityCode.Multiprotocol, v);
  }
  if (o.capabilities.routeRefresh) cap(CapabilityCode.RouteRefresh, Buffer.alloc(0));
  if (o.capabilities.enhancedRouteRefresh) cap(CapabilityCode.EnhancedRouteRefresh, Buffer.alloc(0));
  if (o.capabilities.fourOctetAs !== undefined) {
    const v = Buffer.alloc(4);
    v.writeUInt32BE(o.capabilities.fourOctetAs);
    cap(CapabilityCode.FourOctetAs, v);
  }
  const gr = o.capabilities.gracefulRestart;
  if (gr) {
    const v = Buffer.alloc(2 + 4 * gr.families.length);
    v.writeUInt16BE(((gr.restarting ? 8 : 0) | (gr.notification ? 4 : 0)) << 12 | (gr.restartTimeSeconds & 0xfff), 0);
    gr.families.forEach((f, i) => {
      v.writeUInt16BE(f.afi, 2 + 4 * i);
      v[4 + 4 * i] = f.safi;
      v[5 + 4 * i] = f.forwardingPreserved ? 0x80 : 0;
    });
    cap(CapabilityCode.GracefulRestart, v);
  }
  for (const u of o.capabilities.unknown) cap(u.code, u.value);
  const params = Buffer.concat(caps);
  if (params.length + 2 > 255) throw new Error('capabilities do not fit one OPEN optional parameter');
  const body = Buffer.alloc(10 + (params.length ? params.length + 2 : 0));
  body[0] = o.version;
  body.writeUInt16BE(o.myAs, 1);
  body.writeUInt16BE(o.holdTime, 3);
  addressBytes(o.bgpId).copy(body, 5);
  if (params.length) {
    body[9] = params.length + 2;
    body[10] = 2; // optional parameter type: capabilities (RFC 5492)
    body[11] = params.length;
    params.copy(body, 12);
  } else {
    body[9] = 0;
  }
  return withHeader(MessageType.Open, body);
}

function openError(subcode: number, detail: string, data?: Buffer): BgpError {
  return new BgpError(ErrorCode.Open, subcode, data, detail);
}

function decodeOpen(body: Buffer): OpenMessage {
  const version = body[0]!;
  if (version !== BGP_VERSION) {
    throw openError(OpenSubcode.UnsupportedVersion, `version ${version}`, Buffer.from([0, BGP_VERSION]));
  }
  const myAs = body.readUInt16BE(1);
  const holdTime = body.readUInt16BE(3);
  const bgpId = formatAddress(body.subarray(5, 9));
  let optLen = body[9]!;
  let off = 10;
  let extended = false;
  // RFC 9072: extended optional parameters length.
  if (optLen === 255 && body.length > 10 && body[10] === 255) {
    if (body.length < 13) throw openError(OpenSubcode.Unspecific, 'truncated extended optional parameters');
    optLen = body.readUInt16BE(11);
    off = 13;
    extended = true;
  }
  if (off + optLen !== body.length) {
    throw openError(OpenSubcode.Unspecific, `optional parameters length ${optLen} disagrees with message length`);
  }
  const caps: Capabilities = { multiprotocol: [], routeRefresh: false, enhancedRouteRefresh: false, unknown: [] };
  const end = off + optLen;
  while (off < end) {
    const hdr = extended ? 3 : 2;
    if (off + hdr > end) throw openError(OpenSubcode.Unspecific, 'truncated optional parameter');
    const ptype = body[off]!;
    const plen = extended ? body.readUInt16BE(off + 1) : body[off + 1]!;
    off += hdr;
    if (off + plen > end) throw openError(OpenSubcode.Unspecific, 'optional parameter overruns the parameters field');
    if (ptype !== 2) throw openError(OpenSubcode.UnsupportedOptionalParameter, `optional parameter type ${ptype}`);
    decodeCapabilities(body.subarray(off, off + plen), caps);
    off += plen;
  }
  return { kind: 'open', version, myAs, holdTime, bgpId, capabilities: caps };
}

function decodeCapabilities(buf: Buffer, caps: Capabilities): void {
  let off = 0;
  while (off < buf.length) {
    if (off + 2 > buf.length) throw openError(OpenSubcode.Unspecific, 'truncated capability');
    const code = buf[off]!;
    const len = buf[off + 1]!;
    off += 2;
    if (off + len > buf.length) throw openError(OpenSubcode.Unspecific, `capability ${code} overruns its parameter`);
    const v = buf.subarray(off, off + len);
    off += len;
    const badLength = (): BgpError => openError(OpenSubcode.Unspecific, `capability ${code} has length ${len}`);
    switch (code) {
      case CapabilityCode.Multiprotocol:
        if (len !== 4) throw badLength();
        caps.multiprotocol.push({ afi: v.readUInt16BE(0), safi: v[3]! });
        break;
      case CapabilityCode.RouteRefresh:
        if (len !== 0) throw badLength();
        caps.routeRefresh = true;
        break;
      case CapabilityCode.EnhancedRouteRefresh:
        if (len !== 0) throw badLength();
        caps.enhancedRouteRefresh = true;
        break;
      case CapabilityCode.FourOctetAs:
        if (len !== 4) throw badLength();
        caps.fourOctetAs = v.readUInt32BE(0);
        break;
      case CapabilityCode.GracefulRestart: {
        if (len < 2 || (len - 2) % 4 !== 0) throw badLength();
        const word = v.readUInt16BE(0);
        const families: GracefulRestartCapability['families'] = [];
        for (let i = 2; i < len; i += 4) {
          families.push({ afi: v.readUInt16BE(i), safi: v[i + 2]!, forwardingPreserved: (v[i + 3]! & 0x80) !== 0 });
        }
        caps.gracefulRestart = {
          restarting: (word & 0x8000) !== 0,
          notification: (word & 0x4000) !== 0,
          restartTimeSeconds: word & 0xfff,
          families,
        };
        break;
      }
      default:
        caps.unknown.push({ code, value: Buffer.from(v) });
    }
  }
}

/** The peer's ASN as the OPEN tells it: the 4-octet capability if present, else the 2-octet field. */
export function peerAsnOf(open: OpenMessage): number {
  return open.capabilities.fourOctetAs ?? open.myAs;
}

// ---------------------------------------------------------------- KEEPALIVE, NOTIFICATION, ROUTE-REFRESH

export function encodeKeepalive(): Buffer {
  return withHeader(MessageType.Keepalive, Buffer.alloc(0));
}

export function encodeNotification(code: number, subcode: number, data: Buffer = Buffer.alloc(0)): Buffer {
  // Data is capped so the message stays within the 4096-byte maximum.
  const d = data.subarray(0, MAX_MESSAGE_SIZE - HEADER_SIZE - 2);
  return withHeader(MessageType.Notification, Buffer.concat([Buffer.from([code, subcode]), d]));
}

/** RFC 8203 shutdown communication carried by Cease/2 and Cease/4. */
export function shutdownCommunication(n: NotificationMessage): string | undefined {
  if (n.code !== ErrorCode.Cease || (n.subcode !== 2 && n.subcode !== 4) || n.data.length < 1) return undefined;
  const len = n.data[0]!;
  if (len + 1 > n.data.length) return undefined;
  return n.data.subarray(1, 1 + len).toString('utf8');
}

export function encodeRouteRefresh(afi: number, safi: number, subtype = 0): Buffer {
  const body = Buffer.alloc(4);
  body.writeUInt16BE(afi, 0);
  body[2] = subtype;
  body[3] = safi;
  return withHeader(MessageType.RouteRefresh, body);
}

function decodeRouteRefresh(msg: Buffer): RouteRefreshMessage {
  if (msg.length !== 23) {
    // RFC 7313 §5: the whole message as data.
    throw new BgpError(ErrorCode.RouteRefresh, 1, Buffer.from(msg), `length ${msg.length}`);
  }
  return { kind: 'route-refresh', afi: msg.readUInt16BE(19), subtype: msg[21]!, safi: msg[22]! };
}

// ---------------------------------------------------------------- UPDATE decoding

interface AttrRule {
  /** Expected (optional | transitive) bits. */
  flags: number;
  /** Fixed length, or a validator. */
  length?: number | ((len: number, ctx: DecodeContext) => boolean);
  /** RFC 7606 §7: the error may be treated as withdraw rather than a session reset. */
  withdrawable: boolean;
}

const WELL_KNOWN = FLAG_TRANSITIVE;
const OPTIONAL_TRANSITIVE = FLAG_OPTIONAL | FLAG_TRANSITIVE;
const OPTIONAL_NON_TRANSITIVE = FLAG_OPTIONAL;

const ATTR_RULES: Record<number, AttrRule> = {
  [AttrType.Origin]: { flags: WELL_KNOWN, length: 1, withdrawable: true },
  [AttrType.AsPath]: { flags: WELL_KNOWN, withdrawable: true },
  [AttrType.NextHop]: { flags: WELL_KNOWN, length: 4, withdrawable: true },
  [AttrType.Med]: { flags: OPTIONAL_NON_TRANSITIVE, length: 4, withdrawable: true },
  [AttrType.LocalPref]: { flags: WELL_KNOWN, length: 4, withdrawable: true },
  [AttrType.AtomicAggregate]: { flags: WELL_KNOWN, length: 0, withdrawable: true },
  [AttrType.Aggregator]: { flags: OPTIONAL_TRANSITIVE, length: (l, ctx) => l === (ctx.fourOctetAs ? 8 : 6), withdrawable: true },
  [AttrType.Communities]: { flags: OPTIONAL_TRANSITIVE, length: (l) => l % 4 === 0, withdrawable: true },
  [AttrType.MpReach]: { flags: OPTIONAL_NON_TRANSITIVE, length: (l) => l >= 5, withdrawable: false },
  [AttrType.MpUnreach]: { flags: OPTIONAL_NON_TRANSITIVE, length: (l) => l >= 3, withdrawable: false },
  [AttrType.As4Path]: { flags: OPTIONAL_TRANSITIVE, withdrawable: true },
  [AttrType.As4Aggregator]: { flags: OPTIONAL_TRANSITIVE, length: 8, withdrawable: true },
  [AttrType.LargeCommunities]: { flags: OPTIONAL_TRANSITIVE, length: (l) => l % 12 === 0 && l > 0, withdrawable: true },
};

function updateError(subcode: number, detail: string, data?: Buffer, withdrawable = false): BgpError {
  return new BgpError(ErrorCode.Update, subcode, data, detail, withdrawable);
}

function decodeAsPath(v: Buffer, asnSize: 2 | 4, data: Buffer, withdrawable: boolean): AsPathSegment[] {
  const segments: AsPathSegment[] = [];
  let off = 0;
  while (off < v.length) {
    if (off + 2 > v.length) throw updateError(UpdateSubcode.MalformedAsPath, 'truncated segment header', data, withdrawable);
    const type = v[off]!;
    const count = v[off + 1]!;
    off += 2;
    if (type < 1 || type > 4) throw updateError(UpdateSubcode.MalformedAsPath, `segment type ${type}`, data, withdrawable);
    if (count === 0) throw updateError(UpdateSubcode.MalformedAsPath, 'empty segment', data, withdrawable);
    if (off + count * asnSize > v.length) throw updateError(UpdateSubcode.MalformedAsPath, 'segment overruns the attribute', data, withdrawable);
    const asns: number[] = [];
    for (let i = 0; i < count; i++) asns.push(asnSize === 4 ? v.readUInt32BE(off + 4 * i) : v.readUInt16BE(off + 2 * i));
    off += count * asnSize;
    segments.push({ type, asns });
  }
  return segments;
}

function isUnicastV4NextHop(b: Buffer): boolean {
  // Not a host address at all: 0.0.0.0/8 ("this network"), 224/4 multicast, 240/4 reserved and broadcast.
  return b[0] !== 0 && b[0]! < 224;
}

function isUnicastV6NextHop(b: Buffer): boolean {
  return !b.equals(Buffer.alloc(16)) && b[0] !== 0xff && !(b.subarray(0, 15).equals(Buffer.alloc(15)) && b[15] === 1);
}

function decodeMpReach(v: Buffer, data: Buffer): MpReach {
  const afi = v.readUInt16BE(0);
  const safi = v[2]!;
  const nhLen = v[3]!;
  const bad = (detail: string): BgpError => updateError(UpdateSubcode.OptionalAttributeError, `MP_REACH_NLRI: ${detail}`, data);
  if (4 + nhLen + 1 > v.length) throw bad('next hop overruns the attribute');
  const nh = v.subarray(4, 4 + nhLen);
  const nlriBuf = v.subarray(5 + nhLen);
  if (safi !== SAFI_UNICAST || (afi !== AFI_IPV4 && afi !== AFI_IPV6)) {
    // Families we never negotiate: RFC 4760 §7 lets us ignore the attribute.
    return { afi, safi, nextHops: [], nlri: [] };
  }
  const nextHops: string[] = [];
  if (afi === AFI_IPV4) {
    if (nhLen !== 4) throw bad(`IPv4 next hop of ${nhLen} bytes`);
    if (!isUnicastV4NextHop(nh)) throw updateError(UpdateSubcode.InvalidNextHop, `next hop ${formatAddress(nh)}`, data, true);
    nextHops.push(formatAddress(nh));
  } else {
    if (nhLen !== 16 && nhLen !== 32) throw bad(`IPv6 next hop of ${nhLen} bytes`);
    const global = nh.subarray(0, 16);
    if (!isUnicastV6NextHop(global)) throw updateError(UpdateSubcode.InvalidNextHop, `next hop ${formatAddress(global)}`, data, true);
    nextHops.push(formatAddress(global));
    if (nhLen === 32) nextHops.push(formatAddress(nh.subarray(16)));
  }
  const prefixes = readNlri(afi as Afi, nlriBuf);
  if (!prefixes) throw bad('malformed NLRI');
  return { afi, safi, nextHops, nlri: prefixes.map(formatPrefix) };
}

function decodeMpUnreach(v: Buffer, data: Buffer): MpUnreach {
  const afi = v.readUInt16BE(0);
  const safi = v[2]!;
  if (safi !== SAFI_UNICAST || (afi !== AFI_IPV4 && afi !== AFI_IPV6)) return { afi, safi, withdrawn: [] };
  const prefixes = readNlri(afi as Afi, v.subarray(3));
  if (!prefixes) throw updateError(UpdateSubcode.OptionalAttributeError, 'MP_UNREACH_NLRI: malformed withdrawn routes', data);
  return { afi, safi, withdrawn: prefixes.map(formatPrefix) };
}

function decodeUpdate(body: Buffer, ctx: DecodeContext): UpdateMessage {
  const withdrawnLen = body.readUInt16BE(0);
  if (2 + withdrawnLen + 2 > body.length) {
    throw updateError(UpdateSubcode.MalformedAttributeList, `withdrawn routes length ${withdrawnLen} overruns the message`);
  }
  const attrLen = body.readUInt16BE(2 + withdrawnLen);
  const attrStart = 4 + withdrawnLen;
  if (attrStart + attrLen > body.length) {
    throw updateError(UpdateSubcode.MalformedAttributeList, `path attribute length ${attrLen} overruns the message`);
  }
  const withdrawn = readNlri(AFI_IPV4, body.subarray(2, 2 + withdrawnLen));
  if (!withdrawn) throw updateError(UpdateSubcode.InvalidNetworkField, 'malformed withdrawn routes');
  const nlri = readNlri(AFI_IPV4, body.subarray(attrStart + attrLen));
  if (!nlri) throw updateError(UpdateSubcode.InvalidNetworkField, 'malformed NLRI');

  const attrs = decodeAttributes(body.subarray(attrStart, attrStart + attrLen), ctx);

  const announces = nlri.length > 0 || (attrs.mpReach?.nlri.length ?? 0) > 0;
  if (announces) {
    const missing = attrs.origin === undefined ? AttrType.Origin : attrs.asPath === undefined ? AttrType.AsPath
      : nlri.length > 0 && attrs.nextHop === undefined ? AttrType.NextHop : 0;
    if (missing) throw updateError(UpdateSubcode.MissingWellKnownAttribute, `attribute ${missing} is missing`, Buffer.from([missing]), true);
  }
  if (announces && ctx.ebgpPeerAsn !== undefined && attrs.asPath) {
    const first = attrs.asPath[0];
    const expected = ctx.fourOctetAs || ctx.ebgpPeerAsn <= 0xffff ? ctx.ebgpPeerAsn : AS_TRANS;
    if (!first || first.type !== AsPathSegmentType.Sequence || first.asns[0] !== expected) {
      throw updateError(UpdateSubcode.MalformedAsPath, `AS_PATH does not start with the peer's AS ${expected}`, undefined, true);
    }
  }
  return { kind: 'update', withdrawn: withdrawn.map(formatPrefix), attributes: attrs, nlri: nlri.map(formatPrefix) };
}

function decodeAttributes(buf: Buffer, ctx: DecodeContext): PathAttributes {
  const attrs: PathAttributes = {};
  const seen = new Set<number>();
  let off = 0;
  while (off < buf.length) {
    if (off + 3 > buf.length) throw updateError(UpdateSubcode.MalformedAttributeList, 'truncated attribute header');
    const flags = buf[off]!;
    const type = buf[off + 1]!;
    const extended = (flags & FLAG_EXTENDED) !== 0;
    if (extended && off + 4 > buf.length) throw updateError(UpdateSubcode.MalformedAttributeList, 'truncated attribute header');
    const len = extended ? buf.readUInt16BE(off + 2) : buf[off + 2]!;
    const valueStart = off + (extended ? 4 : 3);
    const whole = buf.subarray(off, Math.min(valueStart + len, buf.length));
    const data = Buffer.from(whole);
    if (valueStart + len > buf.length) {
      throw updateError(UpdateSubcode.AttributeLengthError, `attribute ${type} length ${len} overruns the attribute list`, data);
    }
    const v = buf.subarray(valueStart, valueStart + len);
    off = valueStart + len;
    if (seen.has(type)) {
      // RFC 4271 §6.3; RFC 7606 §3(g) would discard, but MP attributes must reset.
      throw updateError(UpdateSubcode.MalformedAttributeList, `attribute ${type} appears twice`);
    }
    seen.add(type);

    const rule = ATTR_RULES[type];
    if (!rule) {
      if ((flags & FLAG_OPTIONAL) === 0) throw updateError(UpdateSubcode.UnrecognizedWellKnownAttribute, `well-known attribute ${type}`, data);
      (attrs.unknown ??= []).push({ flags, type, value: Buffer.from(v) });
      continue;
    }
    const relevant = flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE);
    const partialOk = rule.flags === OPTIONAL_TRANSITIVE;
    if (relevant !== rule.flags || (!partialOk && (flags & FLAG_PARTIAL) !== 0)) {
      throw updateError(UpdateSubcode.AttributeFlagsError, `attribute ${type} flags 0x${flags.toString(16)}`, data, rule.withdrawable);
    }
    const lengthOk = rule.length === undefined ? true : typeof rule.length === 'number' ? len === rule.length : rule.length(len, ctx);
    if (!lengthOk) throw updateError(UpdateSubcode.AttributeLengthError, `attribute ${type} length ${len}`, data, rule.withdrawable);

    switch (type) {
      case AttrType.Origin:
        if (v[0]! > 2) throw updateError(UpdateSubcode.InvalidOrigin, `ORIGIN ${v[0]}`, data, true);
        attrs.origin = v[0]!;
        break;
      case AttrType.AsPath:
        attrs.asPath = decodeAsPath(v, ctx.fourOctetAs ? 4 : 2, data, true);
        break;
      case AttrType.NextHop:
        if (!isUnicastV4NextHop(v)) throw updateError(UpdateSubcode.InvalidNextHop, `next hop ${formatAddress(v)}`, data, true);
        attrs.nextHop = formatAddress(v);
        break;
      case AttrType.Med:
        attrs.med = v.readUInt32BE(0);
        break;
      case AttrType.LocalPref:
        attrs.localPref = v.readUInt32BE(0);
        break;
      case AttrType.AtomicAggregate:
        attrs.atomicAggregate = true;
        break;
      case AttrType.Aggregator:
        attrs.aggregator = ctx.fourOctetAs
          ? { asn: v.readUInt32BE(0), address: formatAddress(v.subarray(4, 8)) }
          : { asn: v.readUInt16BE(0), address: formatAddress(v.subarray(2, 6)) };
        break;
      case AttrType.Communities:
        attrs.communities = [];
        for (let i = 0; i < len; i += 4) attrs.communities.push(v.readUInt32BE(i));
        break;
      case AttrType.LargeCommunities:
        attrs.largeCommunities = [];
        for (let i = 0; i < len; i += 12) attrs.largeCommunities.push([v.readUInt32BE(i), v.readUInt32BE(i + 4), v.readUInt32BE(i + 8)]);
        break;
      case AttrType.MpReach:
        attrs.mpReach = decodeMpReach(v, data);
        break;
      case AttrType.MpUnreach:
        attrs.mpUnreach = decodeMpUnreach(v, data);
        break;
      case AttrType.As4Path:
        attrs.as4Path = decodeAsPath(v, 4, data, true);
        break;
      case AttrType.As4Aggregator:
        attrs.as4Aggregator = { asn: v.readUInt32BE(0), address: formatAddress(v.subarray(4, 8)) };
        break;
    }
  }
  return attrs;
}

// ---------------------------------------------------------------- UPDATE encoding

/** The attributes pharos sends with a group of routes (everything but NLRI and next hop placement). */
export interface RouteAttributes {
  origin: number;
  /** Empty for iBGP; [localAsn] for eBGP. */
  asPath: number[];
  med?: number;
  localPref?: number;
  communities: number[];
  largeCommunities: [number, number, number][];
}

export interface EncodeContext {
  fourOctetAs: boolean;
}

function attribute(flags: number, type: number, value: Buffer): Buffer {
  const extended = value.length > 255;
  const hdr = Buffer.from(extended ? [flags | FLAG_EXTENDED, type, value.length >> 8, value.length & 0xff] : [flags, type, value.length]);
  return Buffer.concat([hdr, value]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function asPathValue(asns: number[], size: 2 | 4): Buffer {
  if (asns.length === 0) return Buffer.alloc(0);
  const segments: Buffer[] = [];
  // A segment holds at most 255 ASNs.
  for (let i = 0; i < asns.length; i += 255) {
    const chunk = asns.slice(i, i + 255);
    const b = Buffer.alloc(2 + chunk.length * size);
    b[0] = AsPathSegmentType.Sequence;
    b[1] = chunk.length;
    chunk.forEach((a, j) => (size === 4 ? b.writeUInt32BE(a, 2 + 4 * j) : b.writeUInt16BE(a > 0xffff ? AS_TRANS : a, 2 + 2 * j)));
    segments.push(b);
  }
  return Buffer.concat(segments);
}

/** Path attributes except MP_REACH/NEXT_HOP, in type order. */
function commonAttributes(a: RouteAttributes, ctx: EncodeContext): Buffer[] {
  const out: Buffer[] = [attribute(WELL_KNOWN, AttrType.Origin, Buffer.from([a.origin]))];
  out.push(attribute(WELL_KNOWN, AttrType.AsPath, asPathValue(a.asPath, ctx.fourOctetAs ? 4 : 2)));
  return out;
}

function trailingAttributes(a: RouteAttributes, ctx: EncodeContext): Buffer[] {
  const out: Buffer[] = [];
  if (a.med !== undefined) out.push(attribute(OPTIONAL_NON_TRANSITIVE, AttrType.Med, u32(a.med)));
  if (a.localPref !== undefined) out.push(attribute(WELL_KNOWN, AttrType.LocalPref, u32(a.localPref)));
  if (a.communities.length) out.push(attribute(OPTIONAL_TRANSITIVE, AttrType.Communities, Buffer.concat(a.communities.map(u32))));
  if (!ctx.fourOctetAs && a.asPath.some((x) => x > 0xffff)) {
    out.push(attribute(OPTIONAL_TRANSITIVE, AttrType.As4Path, asPathValue(a.asPath, 4)));
  }
  if (a.largeCommunities.length) {
    out.push(attribute(OPTIONAL_TRANSITIVE, AttrType.LargeCommunities, Buffer.concat(a.largeCommunities.flat().map(u32))));
  }
  return out;
}

function updateMessage(withdrawn: Buffer, attrs: Buffer, nlri: Buffer): Buffer {
  const body = Buffer.alloc(4 + withdrawn.length + attrs.length + nlri.length);
  body.writeUInt16BE(withdrawn.length, 0);
  withdrawn.copy(body, 2);
  body.writeUInt16BE(attrs.length, 2 + withdrawn.length);
  attrs.copy(body, 4 + withdrawn.length);
  nlri.copy(body, 4 + withdrawn.length + attrs.length);
  return withHeader(MessageType.Update, body);
}

/** Packs prefixes greedily into chunks of at most `room` encoded bytes. */
function packPrefixes(prefixes: Prefix[], room: number): Buffer[] {
  const chunks: Buffer[] = [];
  let cur = Buffer.alloc(room);
  let used = 0;
  for (const p of prefixes) {
    if (used + nlriSize(p) > room) {
      chunks.push(cur.subarray(0, used));
      cur = Buffer.alloc(room);
      used = 0;
    }
    used = writeNlri(p, cur, used);
  }
  if (used > 0) chunks.push(cur.subarray(0, used));
  return chunks;
}

/**
 * UPDATE messages announcing `prefixes` (one family) with the same
 * attributes, as few as the 4096-byte limit allows. IPv4 prefixes go in the
 * classic NLRI field with NEXT_HOP; IPv6 ones in MP_REACH_NLRI.
 * `nextHop` is the global next hop, `linkLocalNextHop` the optional IPv6 one.
 */
export function encodeAnnouncements(
  prefixes: string[],
  attrs: RouteAttributes,
  nextHop: string,
  ctx: EncodeContext,
  linkLocalNextHop?: string,
): Buffer[] {
  if (prefixes.length === 0) return [];
  const parsed = prefixes.map(parsePrefix);
  const afi = parsed[0]!.afi;
  if (parsed.some((p) => p.afi !== afi)) throw new Error('encodeAnnouncements: mixed address families');
  const head = Buffer.concat(commonAttributes(attrs, ctx));
  const tail = Buffer.concat(trailingAttributes(attrs, ctx));
  if (afi === AFI_IPV4) {
    const nh = attribute(WELL_KNOWN, AttrType.NextHop, addressBytes(nextHop));
    const all = Buffer.concat([head, nh, tail]);
    const room = MAX_MESSAGE_SIZE - HEADER_SIZE - 4 - all.length;
    return packPrefixes(parsed, room).map((chunk) => updateMessage(Buffer.alloc(0), all, chunk));
  }
  const nhBytes = Buffer.concat([addressBytes(nextHop), linkLocalNextHop ? addressBytes(linkLocalNextHop) : Buffer.alloc(0)]);
  const mpFixed = 5 + nhBytes.length;
  // MP_REACH always with the extended length header (4 bytes) so the room is simple to compute.
  const room = MAX_MESSAGE_SIZE - HEADER_SIZE - 4 - head.length - tail.length - 4 - mpFixed;
  return packPrefixes(parsed, room).map((chunk) => {
    const v = Buffer.alloc(mpFixed + chunk.length);
    v.writeUInt16BE(AFI_IPV6, 0);
    v[2] = SAFI_UNICAST;
    v[3] = nhBytes.length;
    nhBytes.copy(v, 4);
    v[4 + nhBytes.length] = 0;
    chunk.copy(v, mpFixed);
    const mp = Buffer.concat([Buffer.from([OPTIONAL_NON_TRANSITIVE | FLAG_EXTENDED, AttrType.MpReach, v.length >> 8, v.length & 0xff]), v]);
    return updateMessage(Buffer.alloc(0), Buffer.concat([head, mp, tail]), Buffer.alloc(0));
  });
}

/** UPDATE messages withdrawing `prefixes` (one family). */
export function encodeWithdrawals(prefixes: string[]): Buffer[] {
  if (prefixes.length === 0) return [];
  const parsed = prefixes.map(parsePrefix);
  const afi = parsed[0]!.afi;
  if (parsed.some((p) => p.afi !== afi)) throw new Error('encodeWithdrawals: mixed address families');
  if (afi === AFI_IPV4) {
    return packPrefixes(parsed, MAX_MESSAGE_SIZE - HEADER_SIZE - 4).map((chunk) => updateMessage(chunk, Buffer.alloc(0), Buffer.alloc(0)));
  }
  const room = MAX_MESSAGE_SIZE - HEADER_SIZE - 4 - 4 - 3;
  return packPrefixes(parsed, room).map((chunk) => updateMessage(Buffer.alloc(0), mpUnreach(AFI_IPV6, chunk), Buffer.alloc(0)));
}

function mpUnreach(afi: number, withdrawn: Buffer): Buffer {
  const v = Buffer.alloc(3 + withdrawn.length);
  v.writeUInt16BE(afi, 0);
  v[2] = SAFI_UNICAST;
  withdrawn.copy(v, 3);
  return Buffer.concat([Buffer.from([OPTIONAL_NON_TRANSITIVE | FLAG_EXTENDED, AttrType.MpUnreach, v.length >> 8, v.length & 0xff]), v]);
}

/** RFC 4724 End-of-RIB marker: an empty UPDATE for IPv4, an empty MP_UNREACH for other families. */
export function encodeEndOfRib(afi: number): Buffer {
  if (afi === AFI_IPV4) return updateMessage(Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0));
  return updateMessage(Buffer.alloc(0), mpUnreach(afi, Buffer.alloc(0)), Buffer.alloc(0));
}

/** The family an UPDATE is End-of-RIB for, or undefined. */
export function endOfRibFamily(u: UpdateMessage): number | undefined {
  const a = u.attributes;
  const keys = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  if (u.withdrawn.length === 0 && u.nlri.length === 0 && keys.length === 0) return AFI_IPV4;
  if (keys.length === 1 && a.mpUnreach && a.mpUnreach.withdrawn.length === 0) return a.mpUnreach.afi;
  return undefined;
}

// ---------------------------------------------------------------- communities text

/** Parses `65000:100`, a well-known name, or a bare 32-bit number; throws on bad input. */
export function parseCommunity(text: string): number {
  const known = WellKnownCommunity[text.trim().toLowerCase()];
  if (known !== undefined) return known;
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  if (m) {
    const hi = Number(m[1]);
    const lo = Number(m[2]);
    if (hi > 0xffff || lo > 0xffff) throw new Error(`community '${text}' has a part above 65535`);
    return (hi * 0x10000 + lo) >>> 0;
  }
  if (/^\d+$/.test(text.trim()) && Number(text) <= 0xffffffff) return Number(text);
  throw new Error(`'${text}' is not a community (ASN:value or no-export, no-advertise, no-export-subconfed, no-peer)`);
}

export function formatCommunity(c: number): string {
  for (const [name, v] of Object.entries(WellKnownCommunity)) if (v === c && c !== 0) return name;
  return `${Math.floor(c / 0x10000)}:${c & 0xffff}`;
}

/** Parses `global:local1:local2` (RFC 8092). */
export function parseLargeCommunity(text: string): [number, number, number] {
  const m = /^(\d+):(\d+):(\d+)$/.exec(text.trim());
  const parts = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
  if (!m || parts.some((p) => p > 0xffffffff)) throw new Error(`'${text}' is not a large community (global:local1:local2)`);
  return parts as [number, number, number];
}

/**
 * The classic withdrawn-routes and NLRI fields of an UPDATE (header
 * included), or null when they cannot be read. Used for RFC 7606
 * treat-as-withdraw after the attributes were found faulty.
 */
export function classicRouteFields(msg: Buffer): { withdrawn: string[]; nlri: string[] } | null {
  const body = msg.subarray(HEADER_SIZE);
  if (body.length < 4) return null;
  const wl = body.readUInt16BE(0);
  if (4 + wl > body.length) return null;
  const al = body.readUInt16BE(2 + wl);
  if (4 + wl + al > body.length) return null;
  const withdrawn = readNlri(AFI_IPV4, body.subarray(2, 2 + wl));
  const nlri = readNlri(AFI_IPV4, body.subarray(4 + wl + al));
  if (!withdrawn || !nlri) return null;
  return { withdrawn: withdrawn.map(formatPrefix), nlri: nlri.map(formatPrefix) };
}
