/**
 * The speaker against a scripted peer over 127.0.0.1: full table and
 * End-of-RIB on Established, batched and incremental UPDATEs, withdrawals,
 * route refresh, per-family next hops, eBGP/iBGP attributes, neighbor
 * removal and reconfiguration, the listener, and the state it exposes.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { endOfRibFamily, type UpdateMessage } from '../../src/bgp/codec.js';
import { encodeNotification, encodeRouteRefresh } from '../../src/bgp/codec.js';
import client from 'prom-client';
import { bgpPeerViews, bgpRouteViews, registerBgpMetrics } from '../../src/bgp/metrics.js';
import { canonicalPrefix } from '../../src/bgp/prefix.js';
import { BgpSpeaker, type PeerSpec, type RouteSpec, type SocketOps } from '../../src/bgp/speaker.js';
import { existsSync } from 'node:fs';
import { addon, ADDON_PATH } from '../../src/native/libbpf.js';
import { PeerConnection, ScriptedPeer } from './support/scripted-peer.js';

const noAddon = !existsSync(ADDON_PATH) && 'native addon not built (npm run build:native)';

function route(prefix: string, extra: Partial<RouteSpec> = {}): RouteSpec {
  return { prefix, communities: [], largeCommunities: [], ...extra };
}

function spec(port: number, routes: RouteSpec[], extra: Partial<PeerSpec> = {}): PeerSpec {
  return {
    id: 'p1', localAsn: 65001, peerAsn: 65000, peerAddress: '127.0.0.1', peerPort: port,
    holdTimeSeconds: 90, keepaliveSeconds: 30, connectRetrySeconds: 0.2, ebgpMultihopTtl: 1,
    families: [1, 2], gracefulRestart: { enabled: false, restartTimeSeconds: 120 },
    nextHopV6: '2001:db8:1::1', routes, ...extra,
  };
}

/** Reads UPDATEs until both End-of-RIB markers arrived (or `count` UPDATEs). */
async function readUpdates(c: PeerConnection, opts: { untilEor?: number; count?: number; timeoutMs?: number } = {}): Promise<UpdateMessage[]> {
  const out: UpdateMessage[] = [];
  let eors = 0;
  for (let i = 0; i < 10_000; i++) {
    const u = await c.next('update', opts.timeoutMs ?? 3000);
    out.push(u);
    if (endOfRibFamily(u) !== undefined) eors++;
    if (opts.untilEor !== undefined && eors >= opts.untilEor) break;
    if (opts.count !== undefined && out.length >= opts.count) break;
  }
  return out;
}

function announced(us: UpdateMessage[]): string[] {
  return us.flatMap((u) => [...u.nlri, ...(u.attributes.mpReach?.nlri ?? [])]);
}

function withdrawn(us: UpdateMessage[]): string[] {
  return us.flatMap((u) => [...u.withdrawn, ...(u.attributes.mpUnreach?.withdrawn ?? [])]);
}

async function setup(t: Test, opts: ConstructorParameters<typeof BgpSpeaker>[0] = { routerId: '192.0.2.100' }) {
  const peer = new ScriptedPeer();
  const port = await peer.start();
  const speaker = new BgpSpeaker(opts);
  t.teardown(async () => {
    await speaker.stop({ graceful: true });
    await peer.stop();
  });
  return { peer, port, speaker };
}

t.test('Established: whole table in few UPDATEs, then End-of-RIB per family', async (t) => {
  const { peer, port, speaker } = await setup(t);
  const v4 = Array.from({ length: 1000 }, (_, i) => route(`198.18.${i >> 8}.${i & 255}/32`));
  const v6 = Array.from({ length: 300 }, (_, i) => route(`2001:db8:ff::${i.toString(16)}/128`));
  speaker.apply({ peers: [spec(port, [...v4, ...v6])] });
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  const ups = await readUpdates(c, { untilEor: 2 });
  t.equal(ups.length, 2 + 2 + 2, 'one UPDATE per 4 KiB of v4 and of v6 NLRI, plus two End-of-RIB');
  t.same(new Set(announced(ups)), new Set([...v4, ...v6].map((r) => canonicalPrefix(r.prefix))));
  const [first] = ups;
  t.equal(first!.attributes.nextHop, '127.0.0.1', 'IPv4 next hop: the session source address');
  t.same(first!.attributes.asPath, [{ type: 2, asns: [65001] }], 'eBGP prepends the local AS');
  t.equal(first!.attributes.localPref, undefined, 'no LOCAL_PREF to an external peer');
  const v6u = ups.find((u) => u.attributes.mpReach)!;
  t.same(v6u.attributes.mpReach!.nextHops, ['2001:db8:1::1'], 'IPv6 next hop: the configured global address');
  t.same(ups.slice(-2).map(endOfRibFamily), [1, 2]);
  const st = speaker.status()[0]!;
  t.equal(st.state, 'Established');
  t.equal(st.prefixesSent, 1300);
  t.equal(speaker.advertised().length, 1300);
  t.equal(speaker.totals().sessionsUp, 1);
});

t.test('incremental: only the difference is sent, changes in one tick are coalesced', async (t) => {
  const { peer, port, speaker } = await setup(t);
  const base = [route('203.0.113.1/32'), route('203.0.113.2/32'), route('2001:db8:ff::1/128')];
  speaker.apply({ peers: [spec(port, base)] });
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  await readUpdates(c, { untilEor: 2 });
  const sentBefore = speaker.status()[0]!.counters.updatesSent;
  // Three applies in one tick: remove .2, add .3, change .1's communities, remove the v6 route.
  speaker.apply({ peers: [spec(port, [route('203.0.113.1/32'), route('203.0.113.2/32'), route('203.0.113.3/32')])] });
  speaker.apply({ peers: [spec(port, [route('203.0.113.1/32', { communities: [0xfde90064] }), route('203.0.113.3/32')])] });
  const ups = await readUpdates(c, { count: 4 });
  t.same(withdrawn(ups).sort(), ['2001:db8:ff::1/128', '203.0.113.2/32'].sort(), 'withdrawals for routes that left');
  t.same(announced(ups).sort(), ['203.0.113.1/32', '203.0.113.3/32'], 'announcements for new and changed routes only');
  const changed = ups.find((u) => u.nlri.includes('203.0.113.1/32'))!;
  t.same(changed.attributes.communities, [0xfde90064]);
  t.equal(speaker.status()[0]!.counters.updatesSent - sentBefore, 4, 'one round of UPDATEs for three applies');
  await new Promise((r) => setTimeout(r, 100));
  t.same(c.drain().filter((m) => m.kind === 'update'), [], 'nothing else sent');
});

t.test('route refresh: the family\'s Adj-RIB-Out is sent again', async (t) => {
  const { peer, port, speaker } = await setup(t);
  speaker.apply({ peers: [spec(port, [route('203.0.113.1/32'), route('2001:db8:ff::1/128')])] });
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  await readUpdates(c, { untilEor: 2 });
  c.send(encodeRouteRefresh(2, 1));
  const [u] = await readUpdates(c, { count: 1 });
  t.same(u!.attributes.mpReach?.nlri, ['2001:db8:ff::1/128']);
  c.send(encodeRouteRefresh(1, 1));
  const [u4] = await readUpdates(c, { count: 1 });
  t.same(u4!.nlri, ['203.0.113.1/32']);
});

t.test('iBGP: empty AS_PATH, LOCAL_PREF (default 100 or configured), MED and communities', async (t) => {
  const { peer, port, speaker } = await setup(t);
  speaker.apply({ peers: [spec(port, [
    route('203.0.113.1/32'),
    route('203.0.113.2/32', { localPreference: 250, med: 10, communities: [0xffffff01], largeCommunities: [[65000, 1, 2]] }),
  ], { localAsn: 65000 })] });
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  const ups = await readUpdates(c, { untilEor: 2 });
  const a = ups.find((u) => u.nlri.includes('203.0.113.1/32'))!;
  const b = ups.find((u) => u.nlri.includes('203.0.113.2/32'))!;
  t.same(a.attributes.asPath, []);
  t.equal(a.attributes.localPref, 100);
  t.equal(b.attributes.localPref, 250);
  t.equal(b.attributes.med, 10);
  t.same(b.attributes.communities, [0xffffff01]);
  t.same(b.attributes.largeCommunities, [[65000, 1, 2]]);
  t.same(speaker.advertised().find((r) => r.prefix === '203.0.113.2/32'), {
    peer: 'p1', prefix: '203.0.113.2/32', nextHop: '127.0.0.1', asPath: [], communities: ['no-export'],
    largeCommunities: ['65000:1:2'], localPreference: 250, med: 10,
  });
});

t.test('no next hop for a family: its routes are held back, the others flow', async (t) => {
  const { peer, port, speaker } = await setup(t, { routerId: '192.0.2.100', discoverAddress: () => undefined });
  speaker.apply({ peers: [spec(port, [route('203.0.113.1/32'), route('2001:db8:ff::1/128')], { nextHopV6: undefined })] });
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  const ups = await readUpdates(c, { untilEor: 2 });
  t.same(announced(ups), ['203.0.113.1/32']);
});

t.test('neighbor removed → Cease/3; neighbor changed → Cease/6 and a new session', async (t) => {
  const { peer, port, speaker } = await setup(t);
  speaker.apply({ peers: [spec(port, [route('203.0.113.1/32')])] });
  let c = await peer.accept();
  await c.establish({ asn: 65000 });
  speaker.apply({ peers: [spec(port, [route('203.0.113.1/32')], { holdTimeSeconds: 30 })] });
  let n = await c.until('notification');
  t.equal(`${n.code}/${n.subcode}`, '6/6', 'other configuration change');
  c = await peer.accept();
  const open = await c.next('open');
  t.equal(open.holdTime, 30, 'the new session uses the new settings');
  c.send((await import('./support/scripted-peer.js')).peerOpen({ asn: 65000 }));
  speaker.apply({ peers: [] });
  n = await c.until('notification');
  t.equal(`${n.code}/${n.subcode}`, '6/3', 'peer de-configured');
  t.same(speaker.status(), []);
});

t.test('listener: a passive neighbor comes up on an incoming connection; strangers are refused', async (t) => {
  const speaker = new BgpSpeaker({ routerId: '192.0.2.100', listen: { port: 0, host: '127.0.0.1' } });
  t.teardown(() => speaker.stop());
  const port = await speaker.listen();
  speaker.apply({ peers: [spec(1, [route('203.0.113.9/32')], { passive: true, peerAddress: '127.0.0.1' })] });
  await new Promise((r) => setImmediate(r));
  const c = new PeerConnection(net.connect(port!, '127.0.0.1'));
  t.teardown(() => c.close());
  await c.establish({ asn: 65000 });
  const ups = await readUpdates(c, { untilEor: 2 });
  t.same(announced(ups), ['203.0.113.9/32']);
  const stranger = new BgpSpeaker({ routerId: '192.0.2.101', listen: { port: 0, host: '127.0.0.1' } });
  t.teardown(() => stranger.stop());
  const p2 = await stranger.listen();
  const s2 = net.connect(p2!, '127.0.0.1');
  await new Promise<void>((r) => s2.once('close', () => r()));
  t.pass('a connection from an address with no neighbor is closed');
});

t.test('graceful stop closes without NOTIFICATION; a hard stop sends Cease/2', async (t) => {
  const { peer, port, speaker } = await setup(t);
  speaker.apply({ peers: [spec(port, [route('203.0.113.1/32')])] });
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  await readUpdates(c, { untilEor: 2 });
  const hard = new BgpSpeaker({ routerId: '192.0.2.100' });
  hard.apply({ peers: [spec(port, [route('203.0.113.1/32')])] });
  const c2 = await peer.accept();
  await c2.establish({ asn: 65000 });
  await hard.stop({ graceful: false });
  const n = await c2.until('notification');
  t.equal(`${n.code}/${n.subcode}`, '6/2');
  await speaker.stop({ graceful: true });
  await c.closed;
  t.same(c.drain().filter((m) => m.kind === 'notification'), []);
});

t.test('views for `pharos bgp peers/routes` and the pharos_bgp_* metrics', async (t) => {
  const { peer, port, speaker } = await setup(t);
  speaker.apply({ peers: [spec(port, [route('203.0.113.1/32', { services: ['default/web'], communities: [0xffffff01] }), route('2001:db8:ff::1/128')])] });
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  await readUpdates(c, { untilEor: 2 });
  const peers = bgpPeerViews(speaker);
  t.match(peers, [{ peer: 'p1', asn: 65000, localAsn: 65001, state: 'Established', prefixesSent: 2, prefixesReceived: 0 }]);
  t.same(bgpRouteViews(speaker), [
    { prefix: '2001:db8:ff::1/128', nextHop: '2001:db8:1::1', peers: ['p1'], communities: [] },
    { prefix: '203.0.113.1/32', nextHop: '127.0.0.1', peers: ['p1'], communities: ['no-export'], service: 'default/web' },
  ]);
  const registry = new client.Registry();
  registerBgpMetrics(registry, () => speaker);
  const text = await registry.metrics();
  t.match(text, /pharos_bgp_session_up\{peer="p1",peer_asn="65000"\} 1/);
  t.match(text, /pharos_bgp_advertised_routes\{peer="p1"\} 2/);
  t.match(text, /pharos_bgp_updates_total\{peer="p1",direction="sent"\} 4/);
  t.match(text, /pharos_bgp_notifications_total\{peer="p1",direction="received"\} 0/);
  c.send(encodeNotification(6, 4));
  await c.closed;
  await new Promise((r) => setTimeout(r, 50));
  const after = await registry.metrics();
  t.match(after, /pharos_bgp_session_up\{peer="p1",peer_asn="65000"\} 0/);
  t.match(after, /pharos_bgp_notifications_total\{peer="p1",direction="received"\} 1/);
  t.match(bgpPeerViews(speaker)[0]!.lastError, /received: cease \/ administrative reset/);
});

t.test('eBGP sockets come from the addon: TTL and MD5 set before connect, source address bound', { skip: noAddon }, async (t) => {
  const native = addon();
  const calls: string[] = [];
  const sockets: SocketOps = {
    tcpSocket: (family) => { const fd = native.tcpSocket(family); calls.push(`socket ${family}`); return fd; },
    setTtl: (fd, ttl) => { calls.push(`ttl ${ttl}`); native.setTtl(fd, ttl); },
    setTcpMd5: (fd, peer, key) => { calls.push(`md5 ${peer}`); native.setTcpMd5(fd, peer, key); },
  };
  const { peer, port, speaker } = await setup(t, { routerId: '192.0.2.100', sockets });
  speaker.apply({ peers: [spec(port, [route('203.0.113.1/32')], { ebgpMultihopTtl: 3, localAddress: '127.0.0.2' })] });
  const c = await peer.accept();
  t.equal(c.socket.remoteAddress, '127.0.0.2', 'the session comes from the configured source address');
  await c.establish({ asn: 65000 });
  const ups = await readUpdates(c, { untilEor: 2 });
  t.same(announced(ups), ['203.0.113.1/32']);
  t.same(calls, ['socket ipv4', 'ttl 3'], 'a native socket, given the configured multihop TTL');
  t.equal(speaker.status()[0]!.negotiated?.localAddress, '127.0.0.2');
});

t.test('iBGP sessions and sessions without the addon use a plain socket; MD5 without the addon fails clearly', async (t) => {
  const { peer, port, speaker } = await setup(t, { routerId: '192.0.2.100' });
  speaker.apply({ peers: [spec(port, [route('203.0.113.1/32')], { localAddress: '127.0.0.3' })] });
  const c = await peer.accept();
  t.equal(c.socket.remoteAddress, '127.0.0.3', 'plain socket bound to the source address');
  await c.establish({ asn: 65000 });
  await readUpdates(c, { untilEor: 2 });
  speaker.apply({ peers: [spec(port, [], { id: 'md5', password: 'secret' })] });
  await new Promise((r) => setTimeout(r, 300));
  t.match(speaker.status()[0]!.lastError, /TCP MD5 requested but the native addon is not available/);
});

t.test('an accepted eBGP connection gets the multihop TTL on arrival', { skip: noAddon }, async (t) => {
  const native = addon();
  const ttls: number[] = [];
  const sockets: SocketOps = { ...native, setTtl: (fd, ttl) => { ttls.push(ttl); native.setTtl(fd, ttl); } };
  const speaker = new BgpSpeaker({ routerId: '192.0.2.100', listen: { port: 0, host: '127.0.0.1' }, sockets });
  t.teardown(() => speaker.stop());
  const port = await speaker.listen();
  speaker.apply({ peers: [spec(1, [route('203.0.113.9/32')], { passive: true, ebgpMultihopTtl: 4 })] });
  await new Promise((r) => setImmediate(r));
  const c = new PeerConnection(net.connect(port!, '127.0.0.1'));
  t.teardown(() => c.close());
  await c.establish({ asn: 65000 });
  t.same(announced(await readUpdates(c, { untilEor: 2 })), ['203.0.113.9/32']);
  t.same(ttls, [4], 'setTtl(fd, 4) on the accepted socket (IPv4 peer on a listener socket)');
});
