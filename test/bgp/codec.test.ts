/**
 * The BGP codec: round trips, UPDATE packing under the 4096-byte limit, and
 * every malformed-length / bad-attribute case mapped to its RFC 4271 §6
 * NOTIFICATION (code, subcode, data), plus fast-check fuzzing that nothing
 * a peer can send makes the decoder throw anything but a BgpError.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import {
  AS_TRANS,
  BgpError,
  MessageReader,
  classicRouteFields,
  decodeMessage,
  describeNotification,
  encodeAnnouncements,
  encodeEndOfRib,
  encodeKeepalive,
  encodeNotification,
  encodeOpen,
  encodeRouteRefresh,
  encodeWithdrawals,
  endOfRibFamily,
  formatCommunity,
  parseCommunity,
  parseLargeCommunity,
  shutdownCommunication,
  type DecodeContext,
  type OpenMessage,
  type RouteAttributes,
  type UpdateMessage,
} from '../../src/bgp/codec.js';
import { canonicalPrefix, formatAddress, addressBytes, parsePrefix } from '../../src/bgp/prefix.js';

const CTX4: DecodeContext = { fourOctetAs: true };
const CTX2: DecodeContext = { fourOctetAs: false };

// ---------------------------------------------------------------- raw builders (independent of the encoder)

function header(type: number, body: Buffer, lengthOverride?: number): Buffer {
  const h = Buffer.alloc(19, 0xff);
  h.writeUInt16BE(lengthOverride ?? 19 + body.length, 16);
  h[18] = type;
  return Buffer.concat([h, body]);
}

function attr(flags: number, type: number, value: Buffer | number[]): Buffer {
  const v = Buffer.from(value);
  if (flags & 0x10) return Buffer.concat([Buffer.from([flags, type, v.length >> 8, v.length & 0xff]), v]);
  return Buffer.concat([Buffer.from([flags, type, v.length]), v]);
}

function rawUpdate(withdrawn: Buffer, attrs: Buffer, nlri: Buffer): Buffer {
  const wl = Buffer.alloc(2);
  wl.writeUInt16BE(withdrawn.length);
  const al = Buffer.alloc(2);
  al.writeUInt16BE(attrs.length);
  return header(2, Buffer.concat([wl, withdrawn, al, attrs, nlri]));
}

const ORIGIN = attr(0x40, 1, [0]);
const AS_PATH_4 = attr(0x40, 2, [2, 1, 0, 0, 0xfd, 0xe9]); // sequence [65001]
const NEXT_HOP = attr(0x40, 3, [198, 51, 100, 1]);
const NLRI = Buffer.from([32, 203, 0, 113, 7]);
const GOOD_ATTRS = Buffer.concat([ORIGIN, AS_PATH_4, NEXT_HOP]);

function expectError(t: Test, msg: Buffer, code: number, subcode: number, ctx: DecodeContext = CTX4, data?: Buffer): BgpError | undefined {
  try {
    decodeMessage(msg, ctx);
  } catch (e) {
    if (!(e instanceof BgpError)) {
      t.fail(`threw a non-BgpError: ${(e as Error).stack}`);
      return undefined;
    }
    t.equal(`${e.code}/${e.subcode}`, `${code}/${subcode}`, `${describeNotification(code, subcode)} (${e.message})`);
    if (data) t.same([...e.data], [...data], 'NOTIFICATION data');
    return e;
  }
  t.fail(`no error, expected ${describeNotification(code, subcode)}`);
  return undefined;
}



// ---------------------------------------------------------------- tests

t.test('prefixes and addresses: parse, canonical text, host bits', async (t) => {
  t.equal(canonicalPrefix('198.51.100.7'), '198.51.100.7/32');
  t.equal(canonicalPrefix('198.51.100.7/24'), '198.51.100.0/24');
  t.equal(canonicalPrefix('2001:DB8:0:0:0:0:0:7'), '2001:db8::7/128');
  t.equal(canonicalPrefix('2001:db8:0:0:1:0:0:1/128'), '2001:db8::1:0:0:1/128', 'first longest zero run compressed');
  t.equal(canonicalPrefix('::ffff:192.0.2.1/128'), '::ffff:c000:201/128');
  t.equal(canonicalPrefix('2001:db8::7/33'), '2001:db8::/33');
  t.equal(formatAddress(addressBytes('2001:db8:1:2:3:4:5:6')), '2001:db8:1:2:3:4:5:6');
  t.equal(formatAddress(addressBytes('::')), '::');
  t.throws(() => parsePrefix('198.51.100.7/33'));
  t.throws(() => parsePrefix('198.51.100.300/32'));
  t.throws(() => parsePrefix('2001:db8::/129'));
  t.throws(() => parsePrefix('nonsense'));
  await fc.assert(fc.property(fc.ipV6(), fc.integer({ min: 0, max: 128 }), (a, len) => {
    const p = canonicalPrefix(`${a}/${len}`);
    return canonicalPrefix(p) === p;
  }));
});

t.test('OPEN round trip with every capability', async (t) => {
  const open: Omit<OpenMessage, 'kind'> = {
    version: 4,
    myAs: AS_TRANS,
    holdTime: 9,
    bgpId: '192.0.2.1',
    capabilities: {
      multiprotocol: [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }],
      routeRefresh: true,
      enhancedRouteRefresh: true,
      fourOctetAs: 4200000001,
      gracefulRestart: { restarting: true, notification: false, restartTimeSeconds: 120, families: [{ afi: 1, safi: 1, forwardingPreserved: true }, { afi: 2, safi: 1, forwardingPreserved: false }] },
      unknown: [{ code: 73, value: Buffer.from('host') }],
    },
  };
  const decoded = decodeMessage(encodeOpen(open), CTX2);
  t.same(decoded, { kind: 'open', ...open });
});

t.test('KEEPALIVE, NOTIFICATION, ROUTE-REFRESH round trips', async (t) => {
  t.same(decodeMessage(encodeKeepalive(), CTX4), { kind: 'keepalive' });
  t.equal(encodeKeepalive().length, 19);
  const n = decodeMessage(encodeNotification(3, 6, Buffer.from([0x40, 1, 1, 5])), CTX4);
  t.same(n, { kind: 'notification', code: 3, subcode: 6, data: Buffer.from([0x40, 1, 1, 5]) });
  const shut = decodeMessage(encodeNotification(6, 2, Buffer.concat([Buffer.from([5]), Buffer.from('maint')])), CTX4);
  t.equal(shutdownCommunication(shut as never), 'maint', 'RFC 8203 shutdown communication');
  t.same(decodeMessage(encodeRouteRefresh(2, 1), CTX4), { kind: 'route-refresh', afi: 2, safi: 1, subtype: 0 });
  t.ok(encodeNotification(6, 0, Buffer.alloc(5000)).length <= 4096, 'NOTIFICATION data is capped at the message limit');
});

const ATTRS: RouteAttributes = {
  origin: 0,
  asPath: [4200000001],
  med: 50,
  communities: [parseCommunity('65001:100'), parseCommunity('no-export')],
  largeCommunities: [[4200000001, 1, 2]],
};

t.test('UPDATE round trips: IPv4 NLRI, IPv6 MP_REACH, withdrawals, End-of-RIB', async (t) => {
  const [v4] = encodeAnnouncements(['203.0.113.7/32', '198.51.100.0/24'], ATTRS, '198.51.100.1', { fourOctetAs: true });
  const u4 = decodeMessage(v4!, CTX4) as UpdateMessage;
  t.same(u4.nlri, ['203.0.113.7/32', '198.51.100.0/24']);
  t.equal(u4.attributes.nextHop, '198.51.100.1');
  t.same(u4.attributes.asPath, [{ type: 2, asns: [4200000001] }]);
  t.equal(u4.attributes.med, 50);
  t.same(u4.attributes.communities, [0xfde90064, 0xffffff01]);
  t.same(u4.attributes.largeCommunities, [[4200000001, 1, 2]]);
  t.equal(u4.attributes.localPref, undefined);

  const ibgp: RouteAttributes = { origin: 0, asPath: [], localPref: 250, communities: [], largeCommunities: [] };
  const [v6] = encodeAnnouncements(['2001:db8::7/128'], ibgp, '2001:db8:1::1', { fourOctetAs: true }, 'fe80::1');
  const u6 = decodeMessage(v6!, CTX4) as UpdateMessage;
  t.same(u6.nlri, []);
  t.same(u6.attributes.mpReach, { afi: 2, safi: 1, nextHops: ['2001:db8:1::1', 'fe80::1'], nlri: ['2001:db8::7/128'] });
  t.same(u6.attributes.asPath, [], 'iBGP AS_PATH is empty');
  t.equal(u6.attributes.localPref, 250);

  const [w4] = encodeWithdrawals(['203.0.113.7/32']);
  t.same((decodeMessage(w4!, CTX4) as UpdateMessage).withdrawn, ['203.0.113.7/32']);
  const [w6] = encodeWithdrawals(['2001:db8::7/128']);
  t.same((decodeMessage(w6!, CTX4) as UpdateMessage).attributes.mpUnreach, { afi: 2, safi: 1, withdrawn: ['2001:db8::7/128'] });

  t.equal(endOfRibFamily(decodeMessage(encodeEndOfRib(1), CTX4) as UpdateMessage), 1);
  t.equal(endOfRibFamily(decodeMessage(encodeEndOfRib(2), CTX4) as UpdateMessage), 2);
  t.equal(endOfRibFamily(u4), undefined);
  t.equal(encodeEndOfRib(1).length, 23);
});

t.test('4-octet ASN over a 2-octet session: AS_TRANS in AS_PATH, real path in AS4_PATH', async (t) => {
  const [m] = encodeAnnouncements(['203.0.113.7/32'], ATTRS, '198.51.100.1', { fourOctetAs: false });
  const u = decodeMessage(m!, CTX2) as UpdateMessage;
  t.same(u.attributes.asPath, [{ type: 2, asns: [AS_TRANS] }]);
  t.same(u.attributes.as4Path, [{ type: 2, asns: [4200000001] }]);
  const [small] = encodeAnnouncements(['203.0.113.7/32'], { ...ATTRS, asPath: [65001] }, '198.51.100.1', { fourOctetAs: false });
  t.equal((decodeMessage(small!, CTX2) as UpdateMessage).attributes.as4Path, undefined, 'no AS4_PATH when every ASN fits 2 octets');
});

t.test('batching: many prefixes per UPDATE, never above 4096 bytes, nothing lost', async (t) => {
  const v4 = Array.from({ length: 3000 }, (_, i) => `198.18.${i >> 8}.${i & 255}/32`);
  const msgs = encodeAnnouncements(v4, ATTRS, '198.51.100.1', { fourOctetAs: true });
  t.ok(msgs.every((m) => m.length <= 4096), 'every message within 4096 bytes');
  t.ok(msgs.length <= Math.ceil((3000 * 5) / 4000) + 1, `${msgs.length} messages for 3000 /32s`);
  t.ok(msgs.slice(0, -1).every((m) => m.length > 4096 - 5), 'messages are full before a new one starts');
  t.same(msgs.flatMap((m) => (decodeMessage(m, CTX4) as UpdateMessage).nlri), v4);

  const v6 = Array.from({ length: 1500 }, (_, i) => `2001:db8:${(i >> 8).toString(16)}::${(i & 255).toString(16)}/128`);
  const m6 = encodeAnnouncements(v6, ATTRS, '2001:db8:1::1', { fourOctetAs: true });
  t.ok(m6.every((m) => m.length <= 4096));
  t.same(m6.flatMap((m) => (decodeMessage(m, CTX4) as UpdateMessage).attributes.mpReach!.nlri), v6.map(canonicalPrefix));
  const w6 = encodeWithdrawals(v6);
  t.ok(w6.every((m) => m.length <= 4096));
  t.same(w6.flatMap((m) => (decodeMessage(m, CTX4) as UpdateMessage).attributes.mpUnreach!.withdrawn), v6.map(canonicalPrefix));
  const w4 = encodeWithdrawals(v4);
  t.same(w4.flatMap((m) => (decodeMessage(m, CTX4) as UpdateMessage).withdrawn), v4);

  // Property: any prefix set and attribute size packs losslessly within the limit.
  const v4prefix = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, l]) => canonicalPrefix(`${a}/${l}`));
  await fc.assert(fc.property(
    fc.uniqueArray(v4prefix, { maxLength: 1200 }),
    fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 200 }),
    (prefixes, communities) => {
      const attrs = { ...ATTRS, communities };
      const out = encodeAnnouncements(prefixes, attrs, '198.51.100.1', { fourOctetAs: true });
      return out.every((m) => m.length <= 4096) &&
        JSON.stringify(out.flatMap((m) => (decodeMessage(m, CTX4) as UpdateMessage).nlri)) === JSON.stringify(prefixes);
    },
  ), { numRuns: 60 });
});

t.test('communities: RFC 1997 text, well-known names, large communities', async (t) => {
  t.equal(parseCommunity('65001:100'), 0xfde90064);
  t.equal(parseCommunity('no-export'), 0xffffff01);
  t.equal(parseCommunity('no-advertise'), 0xffffff02);
  t.equal(parseCommunity('no-export-subconfed'), 0xffffff03);
  t.equal(parseCommunity('no-peer'), 0xffffff04);
  t.equal(parseCommunity('blackhole'), 0xffff029a);
  t.equal(parseCommunity('4259905636'), 4259905636);
  t.equal(formatCommunity(0xffffff01), 'no-export');
  t.equal(formatCommunity(0xfde90064), '65001:100');
  t.throws(() => parseCommunity('65536:1'));
  t.throws(() => parseCommunity('a:b'));
  t.same(parseLargeCommunity('4200000001:1:2'), [4200000001, 1, 2]);
  t.throws(() => parseLargeCommunity('1:2'));
  t.throws(() => parseLargeCommunity('4294967296:1:2'));
});

t.test('message header errors (RFC 4271 §6.1)', async (t) => {
  const ka = encodeKeepalive();
  const badMarker = Buffer.from(ka);
  badMarker[3] = 0;
  expectError(t, badMarker, 1, 1);
  expectError(t, header(4, Buffer.alloc(0), 18).subarray(0, 19), 1, 2, CTX4, Buffer.from([0, 18]));
  const long = header(2, Buffer.alloc(4080));
  expectError(t, long, 1, 2, CTX4, Buffer.from([0x10, 0x03]));
  expectError(t, header(9, Buffer.alloc(0)), 1, 3, CTX4, Buffer.from([9]));
  expectError(t, header(4, Buffer.alloc(1)), 1, 2, CTX4, Buffer.from([0, 20]));
  expectError(t, header(1, Buffer.alloc(9)), 1, 2, CTX4, Buffer.from([0, 28]));
  expectError(t, header(2, Buffer.alloc(3)), 1, 2, CTX4, Buffer.from([0, 22]));
  expectError(t, header(3, Buffer.alloc(1)), 1, 2, CTX4, Buffer.from([0, 20]));
  expectError(t, header(5, Buffer.alloc(3)), 1, 2, CTX4, Buffer.from([0, 22]));
  const rr = header(5, Buffer.alloc(5));
  expectError(t, rr, 7, 1, CTX4, rr);
  // A header whose length disagrees with the bytes handed in.
  expectError(t, Buffer.concat([encodeKeepalive(), Buffer.alloc(1)]), 1, 2);
});

t.test('OPEN message errors (RFC 4271 §6.2, RFC 5492)', async (t) => {
  const good = encodeOpen({ version: 4, myAs: 65001, holdTime: 90, bgpId: '192.0.2.1', capabilities: { multiprotocol: [{ afi: 1, safi: 1 }], routeRefresh: true, enhancedRouteRefresh: false, unknown: [] } });
  const v3 = Buffer.from(good);
  v3[19] = 3;
  expectError(t, v3, 2, 1, CTX4, Buffer.from([0, 4]));
  const optLen = Buffer.from(good);
  optLen[28] = optLen[28]! + 1;
  expectError(t, optLen, 2, 0);
  const body = (params: Buffer): Buffer => {
    const b = Buffer.alloc(10);
    b[0] = 4;
    b.writeUInt16BE(65001, 1);
    b.writeUInt16BE(90, 3);
    Buffer.from([192, 0, 2, 1]).copy(b, 5);
    b[9] = params.length;
    return header(1, Buffer.concat([b, params]));
  };
  expectError(t, body(Buffer.from([1, 2, 0, 0])), 2, 4, CTX4);
  expectError(t, body(Buffer.from([2, 3, 1, 4, 0])), 2, 0, CTX4); // parameter overruns
  expectError(t, body(Buffer.from([2, 5, 1, 3, 0, 1, 0])), 2, 0, CTX4); // MP capability of 3 bytes
  expectError(t, body(Buffer.from([2, 4, 65, 2, 0, 1])), 2, 0, CTX4); // 4-octet AS of 2 bytes
  expectError(t, body(Buffer.from([2, 5, 64, 3, 0, 0, 0])), 2, 0, CTX4); // GR of 3 bytes
  expectError(t, body(Buffer.from([2, 3, 2, 1, 0])), 2, 0, CTX4); // route refresh with a value
  expectError(t, body(Buffer.from([2, 1, 1])), 2, 0, CTX4); // truncated capability
  const ok = decodeMessage(body(Buffer.from([2, 6, 65, 4, 0, 0, 0xfd, 0xe9])), CTX4);
  t.equal((ok as OpenMessage).capabilities.fourOctetAs, 65001);
});

t.test('UPDATE errors: lengths and attribute list (RFC 4271 §6.3)', async (t) => {
  const wl = header(2, Buffer.from([0, 10, 0, 0]));
  expectError(t, wl, 3, 1);
  expectError(t, header(2, Buffer.from([0, 0, 0, 10, 0x40])), 3, 1, CTX4);
  expectError(t, rawUpdate(Buffer.alloc(0), Buffer.concat([GOOD_ATTRS, Buffer.from([0x40, 1])]), NLRI), 3, 1);
  const overrun = Buffer.concat([GOOD_ATTRS, Buffer.from([0x40, 5, 4, 0, 0])]);
  expectError(t, rawUpdate(Buffer.alloc(0), overrun, NLRI), 3, 5);
  expectError(t, rawUpdate(Buffer.alloc(0), Buffer.concat([GOOD_ATTRS, ORIGIN]), NLRI), 3, 1);
  const unknownWellKnown = attr(0x40, 99, [1, 2]);
  expectError(t, rawUpdate(Buffer.alloc(0), Buffer.concat([GOOD_ATTRS, unknownWellKnown]), NLRI), 3, 2, CTX4, unknownWellKnown);
  const optionalUnknown = attr(0xc0, 99, [1, 2]);
  const u = decodeMessage(rawUpdate(Buffer.alloc(0), Buffer.concat([GOOD_ATTRS, optionalUnknown]), NLRI), CTX4) as UpdateMessage;
  t.same(u.attributes.unknown, [{ flags: 0xc0, type: 99, value: Buffer.from([1, 2]) }], 'unknown optional attribute kept');
  expectError(t, rawUpdate(Buffer.alloc(0), Buffer.concat([AS_PATH_4, NEXT_HOP]), NLRI), 3, 3, CTX4, Buffer.from([1]));
  expectError(t, rawUpdate(Buffer.alloc(0), Buffer.concat([ORIGIN, NEXT_HOP]), NLRI), 3, 3, CTX4, Buffer.from([2]));
  expectError(t, rawUpdate(Buffer.alloc(0), Buffer.concat([ORIGIN, AS_PATH_4]), NLRI), 3, 3, CTX4, Buffer.from([3]));
  const withdrawOnly = decodeMessage(rawUpdate(Buffer.from([24, 198, 51, 100]), Buffer.alloc(0), Buffer.alloc(0)), CTX4) as UpdateMessage;
  t.same(withdrawOnly.withdrawn, ['198.51.100.0/24'], 'a pure withdrawal needs no attributes');
  expectError(t, rawUpdate(Buffer.alloc(0), GOOD_ATTRS, Buffer.from([33, 1, 2, 3, 4, 5])), 3, 10);
  expectError(t, rawUpdate(Buffer.alloc(0), GOOD_ATTRS, Buffer.from([32, 1, 2])), 3, 10);
  expectError(t, rawUpdate(Buffer.from([40, 1, 2, 3, 4, 5]), Buffer.alloc(0), Buffer.alloc(0)), 3, 10);
});

t.test('UPDATE errors: attribute flags, lengths and values', async (t) => {
  const withAttr = (a: Buffer, base: Buffer[] = [ORIGIN, AS_PATH_4, NEXT_HOP]): Buffer => {
    const type = a[1]!;
    const rest = base.filter((b) => b[1] !== type);
    return rawUpdate(Buffer.alloc(0), Buffer.concat([...rest, a]), NLRI);
  };
  // Flags (subcode 4), data = the whole attribute.
  for (const [name, a] of [
    ['ORIGIN marked optional', attr(0xc0, 1, [0])],
    ['ORIGIN not transitive', attr(0x00, 1, [0])],
    ['NEXT_HOP partial', attr(0x60, 3, [198, 51, 100, 1])],
    ['MED transitive', attr(0xc0, 4, [0, 0, 0, 1])],
    ['LOCAL_PREF optional', attr(0x80, 5, [0, 0, 0, 1])],
    ['COMMUNITIES not transitive', attr(0x80, 8, [0, 0, 0, 1])],
    ['MP_REACH transitive', attr(0xc0, 14, [0, 2, 1, 16, ...Buffer.alloc(16), 0])],
    ['LARGE_COMMUNITIES well-known', attr(0x40, 32, Buffer.alloc(12))],
  ] as const) {
    const e = expectError(t, withAttr(a), 3, 4, CTX4, a);
    t.ok(e, name);
  }
  // Lengths (subcode 5).
  for (const [name, a, ctx] of [
    ['ORIGIN of 2', attr(0x40, 1, [0, 0]), CTX4],
    ['NEXT_HOP of 5', attr(0x40, 3, [198, 51, 100, 1, 0]), CTX4],
    ['MED of 3', attr(0x80, 4, [0, 0, 1]), CTX4],
    ['LOCAL_PREF of 2', attr(0x40, 5, [0, 1]), CTX4],
    ['ATOMIC_AGGREGATE of 1', attr(0x40, 6, [0]), CTX4],
    ['AGGREGATOR of 6 on a 4-octet session', attr(0xc0, 7, Buffer.alloc(6)), CTX4],
    ['AGGREGATOR of 8 on a 2-octet session', attr(0xc0, 7, Buffer.alloc(8)), CTX2],
    ['COMMUNITIES of 5', attr(0xc0, 8, Buffer.alloc(5)), CTX4],
    ['LARGE_COMMUNITIES of 13', attr(0xc0, 32, Buffer.alloc(13)), CTX4],
    ['LARGE_COMMUNITIES of 0', attr(0xc0, 32, Buffer.alloc(0)), CTX4],
    ['AS4_AGGREGATOR of 6', attr(0xc0, 18, Buffer.alloc(6)), CTX4],
    ['MP_REACH of 4', attr(0x80, 14, Buffer.alloc(4)), CTX4],
    ['MP_UNREACH of 2', attr(0x80, 15, Buffer.alloc(2)), CTX4],
  ] as const) {
    const base = ctx === CTX2 ? [ORIGIN, attr(0x40, 2, [2, 1, 0xfd, 0xe9]), NEXT_HOP] : undefined;
    t.ok(expectError(t, withAttr(a, base), 3, 5, ctx, a), name);
  }
  // Values.
  const badOrigin = attr(0x40, 1, [3]);
  const originErr = expectError(t, withAttr(badOrigin), 3, 6, CTX4, badOrigin);
  t.ok(originErr?.treatAsWithdraw, 'invalid ORIGIN may be treated as withdraw (RFC 7606)');
  for (const nh of [[0, 0, 0, 0], [224, 0, 0, 1], [255, 255, 255, 255], [240, 0, 0, 1]]) {
    const a = attr(0x40, 3, nh);
    expectError(t, withAttr(a), 3, 8, CTX4, a);
  }
  for (const [name, value] of [
    ['segment type 5', [5, 1, 0, 0, 0, 1]],
    ['segment type 0', [0, 1, 0, 0, 0, 1]],
    ['empty segment', [2, 0]],
    ['segment overruns', [2, 2, 0, 0, 0, 1]],
    ['truncated segment header', [2]],
  ] as const) {
    const a = attr(0x40, 2, [...value]);
    t.ok(expectError(t, withAttr(a), 3, 11, CTX4, a), `AS_PATH ${name}`);
  }
  const as2 = attr(0x40, 2, [2, 1, 0, 0, 0xfd, 0xe9]);
  t.ok(expectError(t, withAttr(as2), 3, 11, CTX2), 'a 4-octet AS_PATH on a 2-octet session is malformed (odd length)');
  t.ok(expectError(t, withAttr(AS_PATH_4), 3, 11, { fourOctetAs: true, ebgpPeerAsn: 65002 }), 'eBGP: first AS must be the peer\'s');
  t.ok(decodeMessage(withAttr(AS_PATH_4), { fourOctetAs: true, ebgpPeerAsn: 65001 }), 'eBGP: first AS is the peer\'s');
  const as4 = attr(0xc0, 17, [2, 1, 0xfa, 0x56, 0xea]); // overruns
  t.ok(expectError(t, withAttr(as4), 3, 11, CTX4, as4), 'AS4_PATH malformed');
});

t.test('UPDATE errors: MP_REACH / MP_UNREACH (RFC 4760 §7)', async (t) => {
  const mp = (v: number[]): Buffer => attr(0x90, 14, v);
  const base = [ORIGIN, AS_PATH_4];
  const upd = (a: Buffer): Buffer => rawUpdate(Buffer.alloc(0), Buffer.concat([...base, a]), Buffer.alloc(0));
  const nh6 = [...addressBytes('2001:db8:1::1')];
  const ok = decodeMessage(upd(mp([0, 2, 1, 16, ...nh6, 0, 128, ...addressBytes('2001:db8::7')])), CTX4) as UpdateMessage;
  t.same(ok.attributes.mpReach?.nlri, ['2001:db8::7/128']);
  const e1 = expectError(t, upd(mp([0, 2, 1, 15, ...nh6.slice(0, 15), 0])), 3, 9);
  t.notOk(e1?.treatAsWithdraw, 'MP_REACH errors reset the session (RFC 7606 §7.11)');
  expectError(t, upd(mp([0, 1, 1, 5, 198, 51, 100, 1, 0, 0])), 3, 9);
  expectError(t, upd(mp([0, 2, 1, 16, ...nh6, 0, 129, ...Buffer.alloc(17)])), 3, 9);
  expectError(t, upd(mp([0, 2, 1, 16, ...nh6, 0, 128, 1, 2])), 3, 9);
  expectError(t, upd(mp([0, 2, 1, 40, ...nh6])), 3, 9);
  expectError(t, upd(mp([0, 2, 1, 16, ...Buffer.alloc(16), 0])), 3, 8);
  expectError(t, upd(mp([0, 2, 1, 16, 0xff, 2, ...Buffer.alloc(14), 0])), 3, 8);
  expectError(t, rawUpdate(Buffer.alloc(0), attr(0x90, 15, [0, 2, 1, 128, 1]), Buffer.alloc(0)), 3, 9);
  const foreign = decodeMessage(upd(mp([0, 25, 65, 4, 1, 2, 3, 4, 0, 9, 9])), CTX4) as UpdateMessage;
  t.same(foreign.attributes.mpReach?.nlri, [], 'a family we never negotiate is ignored');
  t.same(classicRouteFields(rawUpdate(Buffer.from([24, 198, 51, 100]), Buffer.alloc(0), NLRI)), { withdrawn: ['198.51.100.0/24'], nlri: ['203.0.113.7/32'] });
});

t.test('fuzz: arbitrary bodies and mutations never throw anything but BgpError', async (t) => {
  const valid: Buffer[] = [
    encodeKeepalive(),
    encodeOpen({ version: 4, myAs: 65001, holdTime: 90, bgpId: '192.0.2.1', capabilities: { multiprotocol: [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }], routeRefresh: true, enhancedRouteRefresh: false, fourOctetAs: 65001, gracefulRestart: { restarting: false, notification: false, restartTimeSeconds: 120, families: [{ afi: 1, safi: 1, forwardingPreserved: true }] }, unknown: [] } }),
    ...encodeAnnouncements(['203.0.113.7/32', '198.51.100.0/24'], { ...ATTRS, localPref: 100 }, '198.51.100.1', { fourOctetAs: true }),
    ...encodeAnnouncements(['2001:db8::7/128'], ATTRS, '2001:db8:1::1', { fourOctetAs: true }),
    ...encodeWithdrawals(['2001:db8::7/128']),
    encodeNotification(6, 2, Buffer.from([1, 65])),
    encodeRouteRefresh(1, 1),
  ];
  const check = (msg: Buffer, ctx: DecodeContext): boolean => {
    try {
      decodeMessage(msg, ctx);
      return true;
    } catch (e) {
      return e instanceof BgpError && e.code >= 1 && e.code <= 7;
    }
  };
  const ctxArb = fc.record({ fourOctetAs: fc.boolean(), ebgpPeerAsn: fc.option(fc.constantFrom(65001, 4200000001), { nil: undefined }) })
    .map((c) => (c.ebgpPeerAsn === undefined ? { fourOctetAs: c.fourOctetAs } : c) as DecodeContext);
  // Random bodies behind a valid header of every type.
  fc.assert(fc.property(fc.integer({ min: 0, max: 10 }), fc.uint8Array({ maxLength: 300 }), ctxArb, (type, body, ctx) =>
    check(header(type, Buffer.from(body)), ctx)), { numRuns: 3000 });
  // Byte mutations of valid messages (the header length kept consistent or not).
  fc.assert(fc.property(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), ctxArb, (msg, edits, ctx) => {
    const m = Buffer.from(msg);
    for (const [pos, val] of edits) m[19 + (pos % Math.max(1, m.length - 19))] = val;
    return check(m, ctx);
  }), { numRuns: 5000 });
  // Truncations and extensions with the length field fixed up.
  fc.assert(fc.property(fc.constantFrom(...valid), fc.integer({ min: -40, max: 40 }), fc.uint8Array({ maxLength: 40 }), ctxArb, (msg, delta, extra, ctx) => {
    const body = delta < 0 ? msg.subarray(19, Math.max(19, msg.length + delta)) : Buffer.concat([msg.subarray(19), Buffer.from(extra).subarray(0, delta)]);
    return check(header(msg[18]!, body), ctx);
  }), { numRuns: 3000 });
  // Attribute lists built from random (flags, type, value) triples.
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.constantFrom(1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 17, 18, 32, 99), fc.uint8Array({ maxLength: 40 })), { maxLength: 6 }),
    fc.uint8Array({ maxLength: 20 }), ctxArb,
    (attrs, nlri, ctx) => check(rawUpdate(Buffer.alloc(0), Buffer.concat(attrs.map(([f, ty, v]) => attr(f & 0xef, ty, Buffer.from(v)))), Buffer.from(nlri)), ctx),
  ), { numRuns: 5000 });
  t.pass('no exception other than BgpError');
});

t.test('MessageReader: any chunking yields the same messages', async (t) => {
  const msgs = [encodeKeepalive(), ...encodeAnnouncements(['203.0.113.7/32'], ATTRS, '198.51.100.1', { fourOctetAs: true }), encodeRouteRefresh(1, 1)];
  const stream = Buffer.concat(msgs);
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 30 }), (cuts) => {
    const r = new MessageReader();
    const out: Buffer[] = [];
    let off = 0;
    for (const c of [...cuts, stream.length]) {
      r.push(stream.subarray(off, Math.min(stream.length, off + c)));
      off = Math.min(stream.length, off + c);
      for (let m = r.next(); m; m = r.next()) out.push(Buffer.from(m));
      if (off >= stream.length) break;
    }
    return out.length === msgs.length && out.every((m, i) => m.equals(msgs[i]!));
  }), { numRuns: 300 });
  const r = new MessageReader();
  const bad = Buffer.from(encodeKeepalive());
  bad[0] = 0;
  r.push(bad);
  t.throws(() => r.next(), BgpError, 'a bad header is reported as soon as 19 bytes are in');
});
