/**
 * The received-prefix limit (maxPrefixes / maxPrefixAction on a
 * BGPPeeringPolicy neighbor). Session level against a scripted peer, then
 * through the agent against a real bird2 router that exports more routes
 * than the limit:
 * - restart (default, what FRR's `maximum-prefix` and bird's `receive limit`
 *   do): NOTIFICATION Cease / Maximum Number of Prefixes Reached (RFC 4486
 *   subcode 1), bird shows it as the last error, the session comes back
 *   after pharos's back-off and is reset again while the peer keeps sending
 *   too many; pharos_bgp_max_prefix_exceeded_total counts it.
 * - drop: the session stays Established (our routes stay in bird), the
 *   routes past the limit are ignored and counted.
 */
import t from 'tap';
import { startBgpAgentLab } from './support/agent-lab.js';
import { encodeAnnouncements, encodeKeepalive, encodeWithdrawals } from '../../src/bgp/codec.js';
import YAML from 'yaml';
import { parseObject } from '../../src/model/parse.js';
import { establishedWithPeer } from './support/scripted-peer.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { ROUTER_ORIGINATED } from '../../src/lab/bgp/routers.js';
import { BGP_SERVICE, bgpPoolAndPolicy } from '../support/manifests.js';

const ATTRS = { origin: 0, asPath: [65000], communities: [], largeCommunities: [] };
const v4 = (n: number, base = 0): string[] => Array.from({ length: n }, (_, i) => `198.18.${(base + i) >> 8 & 255}.${(base + i) & 255}/32`);

t.test('restart: exactly the limit is fine; one more ends the session with Cease 1 and the AFI/SAFI/limit data', async (t) => {
  const { session, c, peer } = await establishedWithPeer(t, { maxPrefixes: 10 });
  const events: unknown[] = [];
  session.on('max-prefix', (e) => events.push(e));
  c.send(...encodeAnnouncements(v4(10), ATTRS, '127.0.0.1', { fourOctetAs: true }), encodeKeepalive());
  await new Promise((r) => setTimeout(r, 200));
  t.equal(session.state, 'Established', '10 of 10: still Established');
  t.equal(session.received.size, 10);
  // Withdraw two, announce two others: still 10.
  c.send(...encodeWithdrawals(v4(2)), ...encodeAnnouncements(v4(2, 100), ATTRS, '127.0.0.1', { fourOctetAs: true }), encodeKeepalive());
  await new Promise((r) => setTimeout(r, 200));
  t.equal(session.state, 'Established', 'a withdrawal makes room');
  c.send(...encodeAnnouncements(v4(1, 200), ATTRS, '127.0.0.1', { fourOctetAs: true }));
  const n = await c.until('notification', 5000);
  t.same([n.code, n.subcode], [6, 1]);
  t.same([n.data.readUInt16BE(0), n.data[2], n.data.readUInt32BE(3)], [1, 1, 10]);
  t.same(events, [{ limit: 10, received: 11, action: 'restart' }]);
  t.equal(session.counters.maxPrefixExceeded, 1);
  // It reconnects by itself (after the back-off).
  const again = await peer.accept(10_000);
  await again.establish({ asn: 65000 });
  await new Promise((r) => setTimeout(r, 200));
  t.equal(session.state, 'Established', 'reconnected');
  t.equal(session.received.size, 0, 'nothing held from the previous session');
});

t.test('drop: the session stays, routes past the limit are ignored and counted, counted once per excursion', async (t) => {
  const { session, c } = await establishedWithPeer(t, { maxPrefixes: 50, maxPrefixAction: 'drop' });
  c.send(...encodeAnnouncements(v4(80), ATTRS, '127.0.0.1', { fourOctetAs: true }), encodeKeepalive());
  await new Promise((r) => setTimeout(r, 300));
  t.equal(session.state, 'Established');
  t.equal(session.received.size, 50, 'holds exactly the limit');
  t.equal(session.counters.prefixesDropped, 30);
  t.equal(session.counters.maxPrefixExceeded, 1);
  c.send(...encodeAnnouncements(v4(5, 300), ATTRS, '127.0.0.1', { fourOctetAs: true }), encodeKeepalive());
  await new Promise((r) => setTimeout(r, 200));
  t.equal(session.counters.prefixesDropped, 35);
  t.equal(session.counters.maxPrefixExceeded, 1, 'still the same excursion');
  t.same(c.drain().filter((m) => m.kind === 'notification'), [], 'no NOTIFICATION');
});

t.test('policy: maxPrefixes / maxPrefixAction parsed and validated', async (t) => {
  const doc = (extra: string): string => `apiVersion: lb.pharos.io/v1alpha1
kind: BGPPeeringPolicy
metadata: { name: p }
spec:
  virtualRouters:
    - localASN: 64512
      neighbors:
        - { peerAddress: 198.18.0.1/32, peerASN: 64500${extra} }
`;
  const ok = parseObject(YAML.parse(doc(', maxPrefixes: 5, maxPrefixAction: drop')));
  t.match(JSON.stringify(ok), /"maxPrefixes":5,"maxPrefixAction":"drop"/);
  t.match(JSON.stringify(parseObject(YAML.parse(doc(', maxPrefixAction: warn')))), /maxPrefixAction.*warn\\" is not one of restart, drop/);
  t.match(JSON.stringify(parseObject(YAML.parse(doc(', maxPrefixes: 0')))), /maxPrefixes/);
});

// ------------------------------------------------------------------ bird2 through the agent

const ROUTES = 20;
const birdStatics = `protocol static { ipv4; ${Array.from({ length: ROUTES }, (_, i) => `route 198.19.${i}.0/24 blackhole;`).join(' ')} }`;

const manifests = (action: string): string => `${bgpPoolAndPolicy(['maxPrefixes: 10', `maxPrefixAction: ${action}`])}---\n${BGP_SERVICE}`;

for (const action of ['restart', 'drop'] as const) {
  t.test(`bird2 exports ${ROUTES} routes to an agent whose limit is 10 (${action})`, { skip: privilegedUnavailable() }, async (t) => {
    const { bird, log, diag, metric } = await startBgpAgentLab(t, { prefix: 'phop', birdConfig: birdStatics, manifests: manifests(action) });

    if (action === 'restart') {
      // bird: "Received: Maximum number of prefixes reached" as the protocol's last error.
      const text = await waitFor('bird to receive Cease/Maximum number of prefixes', 30_000, async () => {
        const p = await bird.protocolText('198.18.0.2');
        return /Received: Maximum number of prefixes reached/i.test(p) ? p : undefined;
      }).catch(diag);
      t.match(text, /Maximum number of prefixes reached/i, 'bird shows the NOTIFICATION pharos sent');
      t.ok(await waitFor('the counter', 15_000, async () => ((await metric('pharos_bgp_max_prefix_exceeded_total')) >= 1 ? true : undefined)), 'pharos_bgp_max_prefix_exceeded_total ≥ 1');
      t.match(log(), /more prefixes than its limit.*Cease/s, 'logged');
      // The session is tried again after the back-off and reset again while bird keeps sending 20.
      const first = await metric('pharos_bgp_max_prefix_exceeded_total');
      await waitFor('a second reset after the back-off', 30_000, async () => ((await metric('pharos_bgp_max_prefix_exceeded_total')) > first ? true : undefined)).catch(diag);
      t.pass('retried after the back-off, reset again');
      t.ok((await metric('pharos_bgp_received_routes')) <= 10, 'never holds more than the limit');
    } else {
      await waitFor('Established', 30_000, async () => ((await bird.established('198.18.0.2')) ? true : undefined)).catch(diag);
      const route = await waitFor('our route in bird', 15_000, () => bird.route('203.0.113.128/32')).catch(diag);
      t.ok(route, 'our service route is in bird');
      // bird announces the 20 statics plus its IPv4 ROUTER_ORIGINATED prefix (the IPv6 one has no
      // next hop on this IPv4-only link and bird withdraws it).
      const announced = ROUTES + ROUTER_ORIGINATED.filter((p) => !p.includes(':')).length;
      await waitFor(`${announced} announced, 10 held`, 15_000, async () => ((await metric('pharos_bgp_received_prefixes_dropped_total')) === announced - 10 ? true : undefined)).catch(diag);
      t.equal(await metric('pharos_bgp_received_routes'), 10, 'holds the limit');
      t.equal(await metric('pharos_bgp_max_prefix_exceeded_total'), 1);
      await new Promise((r) => setTimeout(r, 4000));
      t.ok(await bird.established('198.18.0.2'), 'still Established a keepalive period later');
      t.equal(await metric('pharos_bgp_session_flaps_total'), 0, 'no flap');
    }
  });
}
