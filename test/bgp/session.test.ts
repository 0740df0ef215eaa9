/**
 * The session FSM against a scripted peer over 127.0.0.1: OPEN negotiation,
 * NOTIFICATION with the right code on every kind of error followed by a
 * reconnect, hold timer expiry, keepalives, back-off on a flapping peer,
 * connection collision resolution, graceful and notified stops.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import fc from 'fast-check';
import {
  ErrorCode,
  encodeAnnouncements,
  encodeKeepalive,
  encodeNotification,
  encodeRouteRefresh,
  shutdownCommunication,
  type NotificationMessage,
} from '../../src/bgp/codec.js';
import { BgpSession, type SessionConfig, type SessionState } from '../../src/bgp/session.js';
import { PeerConnection, ScriptedPeer, peerOpen } from './support/scripted-peer.js';

const LOCAL_ID = '192.0.2.100';

function config(port: number, extra: Partial<SessionConfig> = {}): SessionConfig {
  return {
    localAsn: 65001,
    peerAsn: 65000,
    routerId: LOCAL_ID,
    peerAddress: '127.0.0.1',
    peerPort: port,
    holdTimeSeconds: 90,
    connectRetrySeconds: 0.2,
    families: [1, 2],
    ...extra,
  };
}

async function setup(t: Test, extra: Partial<SessionConfig> = {}): Promise<{ peer: ScriptedPeer; session: BgpSession }> {
  const peer = new ScriptedPeer();
  const port = await peer.start();
  const session = new BgpSession(config(port, extra));
  t.teardown(async () => {
    session.stop();
    await peer.stop();
  });
  session.start();
  return { peer, session };
}

function waitState(session: BgpSession, state: SessionState, timeoutMs = 5000): Promise<void> {
  if (session.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`session not ${state} within ${timeoutMs} ms (is ${session.state})`)), timeoutMs);
    const on = (s: SessionState): void => {
      if (s !== state) return;
      clearTimeout(timer);
      session.off('state', on);
      resolve();
    };
    session.on('state', on);
  });
}

async function expectNotification(c: PeerConnection, code: number, subcode: number): Promise<NotificationMessage> {
  const n = await c.next('notification');
  if (n.code !== code || n.subcode !== subcode) throw new Error(`NOTIFICATION ${n.code}/${n.subcode}, expected ${code}/${subcode}`);
  await c.closed;
  return n;
}

/** A listener that hands connections to `session.acceptIncoming`; torn down with every socket destroyed. */
async function listenFor(t: Test, session: BgpSession): Promise<number> {
  const sockets = new Set<net.Socket>();
  const listener = net.createServer((s) => {
    sockets.add(s);
    session.acceptIncoming(s);
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => listener.close(() => r()));
  });
  return (listener.address() as net.AddressInfo).port;
}

const ORIGIN_BAD_UPDATE = (() => {
  const [m] = encodeAnnouncements(['203.0.113.7/32'], { origin: 0, asPath: [65000], communities: [], largeCommunities: [] }, '198.51.100.1', { fourOctetAs: true });
  const b = Buffer.from(m!);
  // ORIGIN is the first attribute: header(19) + withdrawn len(2) + attr len(2) + flags,type,len → value at 26.
  b[26] = 7;
  return b;
})();

t.test('OPEN negotiation: capabilities offered, hold time and families negotiated', async (t) => {
  const { peer, session } = await setup(t, { localAsn: 4200000001, holdTimeSeconds: 30, gracefulRestart: { restartTimeSeconds: 120, forwardingPreserved: true, restarting: true } });
  const c = await peer.accept();
  const open = await c.next('open');
  t.equal(open.myAs, 23456, 'AS_TRANS in the 2-octet field');
  t.equal(open.capabilities.fourOctetAs, 4200000001);
  t.equal(open.holdTime, 30);
  t.equal(open.bgpId, LOCAL_ID);
  t.same(open.capabilities.multiprotocol, [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }]);
  t.ok(open.capabilities.routeRefresh);
  t.same(open.capabilities.gracefulRestart, {
    restarting: true, notification: false, restartTimeSeconds: 120,
    families: [{ afi: 1, safi: 1, forwardingPreserved: true }, { afi: 2, safi: 1, forwardingPreserved: true }],
  }, 'GR capability with restart time and forwarding-state bits');
  t.equal(session.state, 'OpenSent');
  c.send(peerOpen({ asn: 65000, holdTime: 9, capabilities: { multiprotocol: [{ afi: 1, safi: 1 }] } }));
  await c.next('keepalive');
  t.equal(session.state, 'OpenConfirm');
  c.send(encodeKeepalive());
  await waitState(session, 'Established');
  t.equal(session.negotiated?.holdTimeSeconds, 9, 'hold time = min(ours, theirs)');
  t.equal(session.negotiated?.keepaliveSeconds, 3);
  t.same(session.negotiated?.families, [1], 'only the families both sides announced');
  t.equal(session.negotiated?.fourOctetAs, true);
});

t.test('a malformed UPDATE gets the right NOTIFICATION, then the session reconnects', async (t) => {
  const { peer, session } = await setup(t);
  const downs: string[] = [];
  session.on('down', (r) => downs.push(r));
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  await waitState(session, 'Established');
  c.send(ORIGIN_BAD_UPDATE);
  const n = await expectNotification(c, ErrorCode.Update, 6);
  t.same([...n.data], [0x40, 1, 1, 7], 'data is the faulty attribute');
  t.match(session.lastError?.text, /invalid ORIGIN/);
  t.equal(session.lastError?.direction, 'sent');
  t.equal(session.counters.notificationsSent, 1);
  t.equal(downs.length, 1);
  const c2 = await peer.accept(3000);
  await c2.establish({ asn: 65000 });
  await waitState(session, 'Established');
  t.pass('reconnected and Established again');
});

t.test('header errors: bad marker, bad length, bad type', async (t) => {
  const { peer, session } = await setup(t);
  let c = await peer.accept();
  await c.establish({ asn: 65000 });
  const bad = Buffer.from(encodeKeepalive());
  bad[0] = 0;
  c.send(bad);
  await expectNotification(c, ErrorCode.MessageHeader, 1);
  c = await peer.accept(3000);
  await c.establish({ asn: 65000 });
  const longKa = Buffer.concat([encodeKeepalive(), Buffer.alloc(1)]);
  longKa.writeUInt16BE(20, 16);
  c.send(longKa);
  const n = await expectNotification(c, ErrorCode.MessageHeader, 2);
  t.same([...n.data], [0, 20]);
  c = await peer.accept(3000);
  await c.establish({ asn: 65000 });
  const ka = Buffer.from(encodeKeepalive());
  ka[18] = 42;
  c.send(ka);
  const n3 = await expectNotification(c, ErrorCode.MessageHeader, 3);
  t.same([...n3.data], [42]);
  t.equal(session.counters.notificationsSent, 3);
});

t.test('OPEN errors: bad peer AS, unacceptable hold time, bad BGP identifier, version', async (t) => {
  const { peer } = await setup(t);
  const cases: [string, Buffer, number][] = [
    ['peer AS', peerOpen({ asn: 65099 }), 2],
    ['hold time 2', peerOpen({ asn: 65000, holdTime: 2 }), 6],
    ['BGP identifier 0.0.0.0', peerOpen({ asn: 65000, bgpId: '0.0.0.0' }), 3],
  ];
  const v3 = Buffer.from(peerOpen({ asn: 65000 }));
  v3[19] = 3;
  cases.push(['version 3', v3, 1]);
  for (const [name, open, subcode] of cases) {
    const c = await peer.accept(3000);
    await c.next('open');
    c.send(open);
    await expectNotification(c, ErrorCode.Open, subcode);
    t.pass(`${name} → OPEN error subcode ${subcode}`);
  }
});

t.test('iBGP: a peer using our own BGP identifier is refused', async (t) => {
  const { peer } = await setup(t, { localAsn: 65000 });
  const c = await peer.accept();
  await c.next('open');
  c.send(peerOpen({ asn: 65000, bgpId: LOCAL_ID }));
  await expectNotification(c, ErrorCode.Open, 3);
});

t.test('FSM errors: unexpected messages in OpenSent, OpenConfirm and Established', async (t) => {
  const { peer } = await setup(t);
  const update = encodeAnnouncements(['203.0.113.7/32'], { origin: 0, asPath: [65000], communities: [], largeCommunities: [] }, '198.51.100.1', { fourOctetAs: true })[0]!;
  let c = await peer.accept();
  await c.next('open');
  c.send(update);
  await expectNotification(c, ErrorCode.Fsm, 1);
  c = await peer.accept(3000);
  await c.next('open');
  c.send(peerOpen({ asn: 65000 }));
  await c.next('keepalive');
  c.send(update);
  await expectNotification(c, ErrorCode.Fsm, 2);
  c = await peer.accept(3000);
  await c.establish({ asn: 65000 });
  c.send(peerOpen({ asn: 65000 }));
  await expectNotification(c, ErrorCode.Fsm, 3);
  t.pass('5/1, 5/2, 5/3');
});

t.test('hold timer expiry sends NOTIFICATION 4/0; keepalives flow at a third of the hold time', async (t) => {
  const { peer, session } = await setup(t);
  const c = await peer.accept();
  await c.next('open');
  c.send(peerOpen({ asn: 65000, holdTime: 3 }));
  c.send(encodeKeepalive());
  await waitState(session, 'Established');
  const started = Date.now();
  const rawBefore = c.raw.length;
  const n = await c.next('notification', 6000);
  t.equal(`${n.code}/${n.subcode}`, '4/0', 'hold timer expired');
  const waited = Date.now() - started;
  const keepalives = c.raw.slice(rawBefore).filter((m) => m[18] === 4).length;
  t.ok(waited >= 2800 && waited < 4500, `expired after ${waited} ms (hold 3 s)`);
  t.ok(keepalives >= 1, `${keepalives} keepalives sent meanwhile`);
  t.match(session.lastError?.text, /hold timer expired/);
});

t.test('a NOTIFICATION from the peer ends the session; repeated failures back off', async (t) => {
  const { peer, session } = await setup(t, { connectRetrySeconds: 0.2 });
  for (let i = 0; i < 5; i++) {
    const c = await peer.accept(5000);
    await c.establish({ asn: 65000 });
    c.send(encodeNotification(6, 4));
    await c.closed;
  }
  t.equal(session.counters.notificationsReceived, 5);
  t.match(session.lastError?.text, /cease \/ administrative reset/);
  t.equal(session.lastError?.direction, 'received');
  const gaps = peer.acceptedAt.slice(1).map((at, i) => at - peer.acceptedAt[i]!);
  t.ok(gaps[0]! < 450, `first retry quick (${gaps[0]} ms)`);
  t.ok(gaps[3]! > 1000, `fourth retry backed off (${gaps.join(', ')} ms)`);
  t.ok(gaps[3]! > gaps[1]!, 'delays grow');
});

t.test('connection refused: the session retries every connect-retry interval', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const session = new BgpSession(config(port));
  const states: SessionState[] = [];
  session.on('state', (s) => states.push(s));
  session.start();
  await new Promise((r) => setTimeout(r, 900));
  session.stop();
  const connects = states.filter((s) => s === 'Connect').length;
  t.ok(connects >= 3 && connects <= 6, `${connects} attempts in 0.9 s with a 0.2 s retry`);
  t.ok(states.includes('Active'));
  t.equal(session.state, 'Idle');
});

t.test('treat-as-withdraw (RFC 7606) keeps the session when enabled', async (t) => {
  const { peer, session } = await setup(t, { revisedErrorHandling: true });
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  const good = encodeAnnouncements(['203.0.113.7/32', '203.0.113.8/32'], { origin: 0, asPath: [65000], communities: [], largeCommunities: [] }, '198.51.100.1', { fourOctetAs: true })[0]!;
  c.send(good);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(session.received.size, 2, 'prefixes received are counted');
  c.send(ORIGIN_BAD_UPDATE);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(session.state, 'Established');
  t.equal(session.counters.treatAsWithdraw, 1);
  t.same([...session.received], ['203.0.113.8/32'], 'the faulty UPDATE\'s route is treated as withdrawn');
  t.equal(session.counters.notificationsSent, 0);
});

t.test('received routes are counted; AS_PATH loops are discarded (RFC 4271 §9.1.2)', async (t) => {
  const { peer, session } = await setup(t);
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  const attrs = (asPath: number[]) => ({ origin: 0, asPath, communities: [], largeCommunities: [] });
  c.send(...encodeAnnouncements(['203.0.113.1/32', '203.0.113.2/32'], attrs([65000]), '198.51.100.1', { fourOctetAs: true }));
  c.send(...encodeAnnouncements(['2001:db8::1/128'], attrs([65000, 64999]), '2001:db8:1::1', { fourOctetAs: true }));
  c.send(...encodeAnnouncements(['203.0.113.2/32', '203.0.113.3/32'], attrs([65000, 65001]), '198.51.100.1', { fourOctetAs: true }));
  await new Promise((r) => setTimeout(r, 200));
  t.same([...session.received].sort(), ['2001:db8::1/128', '203.0.113.1/32'], 'a looped route replaces the earlier one as not received');
  t.equal(session.counters.asPathLoops, 1);
  t.equal(session.counters.updatesReceived, 3);
});

t.test('route refresh is reported to the speaker', async (t) => {
  const { peer, session } = await setup(t);
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  const got = new Promise<[number, number]>((r) => session.once('route-refresh', (afi, safi) => r([afi, safi])));
  c.send(encodeRouteRefresh(2, 1));
  t.same(await got, [2, 1]);
});

t.test('stop: silent close for graceful restart, Cease with a message otherwise', async (t) => {
  const { peer, session } = await setup(t);
  let c = await peer.accept();
  await c.establish({ asn: 65000 });
  session.stop();
  await c.closed;
  t.same(c.drain().filter((m) => m.kind === 'notification'), [], 'no NOTIFICATION on a graceful stop');
  session.start();
  c = await peer.accept();
  await c.establish({ asn: 65000 });
  session.stop({ notify: true, message: 'maintenance' });
  const n = await expectNotification(c, ErrorCode.Cease, 2);
  t.equal(shutdownCommunication(n), 'maintenance');
});

t.test('collision (RFC 4271 §6.8): the connection opened by the higher BGP identifier survives', async (t) => {
  for (const [peerId, survivor] of [['192.0.2.250', 'inbound'], ['192.0.2.1', 'outbound']] as const) {
    await t.test(`peer ${peerId} → ${survivor} kept`, async (t) => {
      const { peer, session } = await setup(t);
      const out = await peer.accept();
      await out.next('open'); // our outbound connection sits in OpenSent
      // The peer connects to us at the same time.
      const port = await listenFor(t, session);
      const inSock = net.connect(port, '127.0.0.1');
      const inbound = new PeerConnection(inSock);
      await inbound.next('open');
      inbound.send(peerOpen({ asn: 65000, bgpId: peerId }));
      const [loser, winner] = survivor === 'inbound' ? [out, inbound] : [inbound, out];
      await expectNotification(loser, ErrorCode.Cease, 7);
      if (survivor === 'inbound') {
        await winner.next('keepalive');
        winner.send(encodeKeepalive());
      } else {
        winner.send(peerOpen({ asn: 65000, bgpId: peerId }));
        await winner.next('keepalive');
        winner.send(encodeKeepalive());
      }
      await waitState(session, 'Established');
      t.equal(session.negotiated?.peerBgpId, peerId);
      t.notOk(winner.ended, 'the survivor is still open');
    });
  }
});

t.test('an Established session refuses a second connection from a peer without GR', async (t) => {
  const { peer, session } = await setup(t);
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  const port = await listenFor(t, session);
  const second = new PeerConnection(net.connect(port, '127.0.0.1'));
  await expectNotification(second, ErrorCode.Cease, 7);
  t.equal(session.state, 'Established');
  t.notOk(c.ended);
});

t.test('passive session: waits in Active and takes an incoming connection', async (t) => {
  const session = new BgpSession(config(1, { passive: true }));
  t.teardown(() => session.stop());
  session.start();
  t.equal(session.state, 'Active');
  const port = await listenFor(t, session);
  const c = new PeerConnection(net.connect(port, '127.0.0.1'));
  await c.establish({ asn: 65000 });
  await waitState(session, 'Established');
  t.pass('Established on an incoming connection');
});

t.test('fuzz over TCP: random bytes from an Established peer never crash the session', async (t) => {
  const peer = new ScriptedPeer();
  const port = await peer.start();
  t.teardown(() => peer.stop());
  const valid = encodeAnnouncements(['203.0.113.7/32'], { origin: 0, asPath: [65000], communities: [1], largeCommunities: [[1, 2, 3]] }, '198.51.100.1', { fourOctetAs: true })[0]!;
  const inputs: Buffer[] = [];
  fc.assert(fc.property(fc.uint8Array({ minLength: 19, maxLength: 200 }), fc.nat(), (bytes, mode) => {
    const b = Buffer.from(bytes);
    if (mode % 3 === 0) inputs.push(b); // raw garbage
    else if (mode % 3 === 1) inputs.push(Buffer.concat([valid.subarray(0, 19 + (mode % 20)), b])); // a good start, then garbage
    else { // a well-framed message with a random body
      const h = Buffer.alloc(19, 0xff);
      h.writeUInt16BE(Math.min(4096, 19 + b.length), 16);
      h[18] = 1 + (mode % 5);
      inputs.push(Buffer.concat([h, b]));
    }
    return true;
  }), { numRuns: 40 });
  let notified = 0;
  for (const input of inputs) {
    const session = new BgpSession(config(port, { connectRetrySeconds: 30 }));
    session.start();
    const c = await peer.accept();
    await c.establish({ asn: 65000 });
    c.send(input);
    // Either a NOTIFICATION and a close, or (a message still incomplete / valid) the session stays up.
    await Promise.race([c.closed, new Promise((r) => setTimeout(r, 150))]);
    if (c.ended) {
      notified++;
      // A NOTIFICATION from the peer is not answered; anything else faulty is.
      const answered = c.drain().some((m) => m.kind === 'notification');
      t.ok(answered || session.lastError?.direction === 'received', 'closed with a NOTIFICATION, or after receiving one',
        { input: input.toString('hex'), error: session.lastError });
    } else {
      t.equal(session.state, 'Established');
    }
    session.stop();
  }
  t.ok(notified >= inputs.length / 2, `${notified}/${inputs.length} inputs ended the session (the rest are incomplete messages still awaited); none crashed the process`);
});
