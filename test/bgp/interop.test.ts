/**
 * Interop: the pharos speaker (in a child process inside namespace
 * phb-spk) against real bird2, gobgpd and FRR (each in its own router
 * namespace), as eBGP and iBGP at once. Checked in the router's own view:
 * sessions Established, IPv4 and IPv6 routes with the right next hops,
 * communities, large communities and local-pref; withdrawals; graceful
 * restart keeps routes across a speaker kill; TCP MD5.
 */
import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { privilegedUnavailable } from '../support/privileged.js';
import { withLab, type Lab } from '../support/lab.js';
import { ADDON_PATH } from '../../src/native/libbpf.js';
import { parseCommunity } from '../../src/bgp/codec.js';
import { WellKnownCommunity } from '../../src/model/communities.js';
import type { DesiredBgp, PeerSpec, RouteSpec } from '../../src/bgp/speaker.js';
import { Bird, Frr, GoBgp, ROUTER_ORIGINATED, type Router, type RouterNeighbor, type RouterRoute } from '../../src/lab/bgp/routers.js';
import { SpeakerProcess } from '../../src/lab/bgp/speaker-process.js';
import { waitFor } from '../support/wait.js';

const ROUTER_ASN = 65000;
const SPEAKER_EBGP_ASN = 4200000001; // 4-octet: exercises RFC 6793 for real
const SPEAKER_ID = '192.0.2.1';
// eBGP sockets get their TTL (1 here) and MD5 keys through the addon when it is built.
const NATIVE = existsSync(ADDON_PATH);

interface Site {
  router: Router;
  ebgp: RouterNeighbor; // the speaker as the router sees it
  ibgp: RouterNeighbor;
  v6Self: string; // the speaker's global IPv6 on the link (the expected v6 next hop)
  net: number;
}

function routeSpec(prefix: string, extra: Partial<RouteSpec> = {}): RouteSpec {
  return { prefix, communities: [], largeCommunities: [], ...extra };
}

/** Routes for one site: distinct per session so each is checked on its own. */
function sessionRoutes(site: Site): { ebgp: RouteSpec[]; ibgp: RouteSpec[] } {
  const n = site.net;
  return {
    ebgp: [
      routeSpec(`203.0.113.${n * 10 + 1}/32`, { communities: [parseCommunity('65001:100'), WellKnownCommunity['no-export']!], largeCommunities: [[4200000001, 1, 2]] }),
      routeSpec(`203.0.113.${n * 10 + 2}/32`),
      routeSpec(`2001:db8:ff${n}::1/128`, { communities: [parseCommunity('65001:600')], largeCommunities: [[4200000001, 6, 6]] }),
    ],
    ibgp: [
      routeSpec(`203.0.113.${n * 10 + 5}/32`, { localPreference: 250, communities: [parseCommunity('65000:7')], largeCommunities: [[65000, 3, 4]] }),
      routeSpec(`2001:db8:ff${n}::5/128`, { localPreference: 260 }),
    ],
  };
}

function peerSpecs(site: Site, routes = sessionRoutes(site), password?: string): PeerSpec[] {
  const base = {
    peerPort: 179, holdTimeSeconds: 9, keepaliveSeconds: 3, connectRetrySeconds: 1, ebgpMultihopTtl: 1,
    families: [1, 2] as (1 | 2)[], gracefulRestart: { enabled: true, restartTimeSeconds: 60 },
    ...(password ? { password } : {}),
  };
  const routerAddr = site.ebgp.local;
  return [
    { ...base, id: `${site.router.name}-ebgp`, localAsn: SPEAKER_EBGP_ASN, peerAsn: ROUTER_ASN, peerAddress: routerAddr, localAddress: site.ebgp.address, routes: routes.ebgp },
    { ...base, id: `${site.router.name}-ibgp`, localAsn: ROUTER_ASN, peerAsn: ROUTER_ASN, peerAddress: routerAddr, localAddress: site.ibgp.address, routes: routes.ibgp },
  ];
}

async function buildSite(lab: Lab, net: number, make: (s: { ns: string; neighbors: RouterNeighbor[]; routerId: string }) => Router, password?: string): Promise<Site> {
  const rns = `r${net}`;
  await lab.addNamespace(rns, { forwarding: true });
  const base = (net - 1) * 8;
  const speakerA = `198.51.100.${base + 1}`;
  const speakerB = `198.51.100.${base + 3}`;
  const routerA = `198.51.100.${base + 2}`;
  const v6Self = `2001:db8:${net}::1`;
  await lab.addLink(
    { ns: 'spk', ifname: `s${net}`, addrs: [`${speakerA}/29`, `${speakerB}/29`, `${v6Self}/64`] },
    { ns: rns, ifname: 'e0', addrs: [`${routerA}/29`, `2001:db8:${net}::2/64`] },
  );
  const ebgp: RouterNeighbor = { address: speakerA, asn: SPEAKER_EBGP_ASN, local: routerA, ...(password ? { password } : {}) };
  const ibgp: RouterNeighbor = { address: speakerB, asn: ROUTER_ASN, local: routerA, ...(password ? { password } : {}) };
  const router = make({ ns: lab.ns(rns), neighbors: [ebgp, ibgp], routerId: routerA });
  try {
    await router.start();
  } catch (e) {
    await router.stop(); // its temp directory and any half-started daemon
    throw e;
  }
  return { router, ebgp, ibgp, v6Self, net };
}

async function checkRoutes(t: Test, site: Site): Promise<void> {
  const r = site.router;
  const routes = sessionRoutes(site);
  const e4 = await waitFor(`${r.name}: ${routes.ebgp[0]!.prefix}`, 15_000, () => r.route(routes.ebgp[0]!.prefix), { everyMs: 100 });
  t.equal(e4.nextHop, site.ebgp.address, `${r.name} eBGP IPv4 next hop is the session's source address`);
  t.same(e4.asPath, [SPEAKER_EBGP_ASN], `${r.name} eBGP AS_PATH is our 4-octet AS`);
  t.ok(e4.communities.includes('65001:100'), `${r.name} sees community 65001:100 (${e4.communities.join(' ')})`);
  t.ok(e4.communities.some((c) => c === '65535:65281' || c === 'no-export'), `${r.name} sees no-export`);
  t.same(e4.largeCommunities, ['4200000001:1:2'], `${r.name} sees the large community`);
  const e6 = await waitFor(`${r.name}: ${routes.ebgp[2]!.prefix}`, 15_000, () => r.route(routes.ebgp[2]!.prefix), { everyMs: 100 });
  t.equal(e6.nextHop, site.v6Self, `${r.name} eBGP IPv6 next hop is our global IPv6 on the link`);
  t.same(e6.largeCommunities, ['4200000001:6:6'], `${r.name} IPv6 route carries its large community`);
  const i4 = await waitFor(`${r.name}: ${routes.ibgp[0]!.prefix}`, 15_000, () => r.route(routes.ibgp[0]!.prefix), { everyMs: 100 });
  t.equal(i4.nextHop, site.ibgp.address, `${r.name} iBGP IPv4 next hop`);
  t.same(i4.asPath, [], `${r.name} iBGP AS_PATH is empty`);
  t.equal(i4.localPref, 250, `${r.name} iBGP LOCAL_PREF`);
  t.same(i4.communities, ['65000:7'], `${r.name} iBGP community`);
  t.same(i4.largeCommunities, ['65000:3:4'], `${r.name} iBGP large community`);
  const i6 = await waitFor(`${r.name}: ${routes.ibgp[1]!.prefix}`, 15_000, () => r.route(routes.ibgp[1]!.prefix), { everyMs: 100 });
  t.equal(i6.nextHop, site.v6Self, `${r.name} iBGP IPv6 next hop`);
  t.equal(i6.localPref, 260, `${r.name} iBGP IPv6 LOCAL_PREF`);
}

const skip = privilegedUnavailable();

t.test('interop with bird2, gobgpd and FRR as eBGP and iBGP', { skip }, async (t) => {
  const lab = await withLab(t, 'phb');
  await lab.addNamespace('spk');
  const sites: Site[] = [];
  t.teardown(async () => { for (const s of sites) await s.router.stop(); });
  sites.push(await buildSite(lab, 1, (s) => new Bird({ lab, asn: ROUTER_ASN, ...s })));
  sites.push(await buildSite(lab, 2, (s) => new GoBgp({ lab, asn: ROUTER_ASN, ...s })));
  sites.push(await buildSite(lab, 3, (s) => new Frr({ lab, asn: ROUTER_ASN, ...s })));

  let speaker = new SpeakerProcess(lab.ns('spk'), { routerId: SPEAKER_ID, native: NATIVE });
  t.teardown(() => speaker.kill());
  const desired = (): DesiredBgp => ({ peers: sites.flatMap((s) => peerSpecs(s)) });
  await speaker.apply(desired());

  for (const site of sites) {
    await t.test(`${site.router.name}: sessions reach Established`, async (t) => {
      for (const n of [site.ebgp, site.ibgp]) {
        await waitFor(`${site.router.name} Established with ${n.address}`, 20_000, () => site.router.established(n.address), { everyMs: 100 })
          .catch((e) => { throw new Error(`${(e as Error).message}\n${(site.router as { log?: string }).log?.slice(-3000)}\n${speaker.stderr.slice(-3000)}`); });
        t.pass(`${site.router.name} Established with ${n.address}`);
      }
    });
    await t.test(`${site.router.name}: routes, next hops, communities, local-pref`, (t) => checkRoutes(t, site));
  }

  await t.test('speaker state: peers Established, prefixes counted, routes listed', async (t) => {
    // FRR batches its own announcements (update coalescing), so give the routers' routes a moment.
    const st = await waitFor('every router\'s routes received', 10_000, async () => {
      const s = await speaker.status();
      return s.peers.every((p) => p.prefixesReceived === ROUTER_ORIGINATED.length) && s;
    }, { everyMs: 100 }).catch(async () => {
      const frr = sites.find((s) => s.router instanceof Frr);
      if (frr) {
        const f = frr.router as Frr;
        t.comment((await f.vtysh('show bgp ipv4 unicast')).stdout);
        t.comment((await f.vtysh(`show bgp ipv4 unicast neighbors ${frr.ebgp.address} advertised-routes`)).stdout);
        t.comment((await f.vtysh(`show bgp neighbors ${frr.ebgp.address}`)).stdout.slice(0, 3000));
      }
      return speaker.status();
    });
    t.equal(st.peers.length, 6);
    for (const p of st.peers) {
      t.equal(p.state, 'Established', `${p.id} Established`);
      t.equal(p.prefixesSent, p.id.endsWith('ebgp') ? 3 : 2, `${p.id} prefixes sent`);
      t.equal(p.prefixesReceived, ROUTER_ORIGINATED.length, `${p.id}: the router's own IPv4 and IPv6 routes received, validated and counted`);
      t.equal(p.counters.notificationsSent, 0, `${p.id}: nothing the router sent was rejected`);
    }
    t.equal(st.totals.sessionsUp, 6);
    t.equal(st.advertised.length, 15);
    t.equal(st.totals.notificationsReceived, 0);
  });

  await t.test('withdrawal: a route leaving the desired set disappears from every router', async (t) => {
    const next = desired();
    for (const p of next.peers) p.routes = p.routes.filter((r) => !r.prefix.endsWith('2/32') && !r.prefix.endsWith('::5/128'));
    await speaker.apply(next);
    for (const site of sites) {
      const gone4 = `203.0.113.${site.net * 10 + 2}/32`;
      const gone6 = `2001:db8:ff${site.net}::5/128`;
      await waitFor(`${site.router.name}: ${gone4} withdrawn`, 15_000, async () => (await site.router.route(gone4)) === undefined, { everyMs: 100 });
      await waitFor(`${site.router.name}: ${gone6} withdrawn`, 15_000, async () => (await site.router.route(gone6)) === undefined, { everyMs: 100 });
      t.ok(await site.router.route(`203.0.113.${site.net * 10 + 1}/32`), `${site.router.name} keeps the other routes`);
      t.pass(`${site.router.name} withdrew ${gone4} and ${gone6}`);
    }
    await speaker.apply(desired());
    for (const site of sites) {
      await waitFor(`${site.router.name}: re-announced`, 15_000, () => site.router.route(`203.0.113.${site.net * 10 + 2}/32`), { everyMs: 100 });
    }
  });

  await t.test('graceful restart: a killed speaker\'s routes stay until it is back, then stale ones go', async (t) => {
    const bird = sites[0]!;
    const keep = `203.0.113.${bird.net * 10 + 1}/32`;
    const dropped = `203.0.113.${bird.net * 10 + 2}/32`;
    await speaker.kill();
    // The helper keeps the routes (as stale) while we are away.
    await new Promise((r) => setTimeout(r, 1500));
    for (const site of sites) {
      const r = await site.router.route(`203.0.113.${site.net * 10 + 1}/32`);
      t.ok(r, `${site.router.name} keeps our route after the speaker died`);
    }
    speaker = new SpeakerProcess(lab.ns('spk'), { routerId: SPEAKER_ID, restarting: true, native: NATIVE });
    const next = desired();
    for (const p of next.peers) p.routes = p.routes.filter((r) => !r.prefix.endsWith('2/32'));
    // Watch the kept route continuously while the new speaker comes up.
    let missing = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        if (!(await bird.router.route(keep))) missing++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await speaker.apply(next);
    for (const site of sites) {
      await waitFor(`${site.router.name} re-established`, 20_000, () => site.router.established(site.ebgp.address), { everyMs: 100 });
      await waitFor(`${site.router.name}: stale ${dropped} flushed after End-of-RIB`, 15_000, async () => (await site.router.route(`203.0.113.${site.net * 10 + 2}/32`)) === undefined, { everyMs: 100 });
      const r = await site.router.route(`203.0.113.${site.net * 10 + 1}/32`) as RouterRoute;
      t.ok(r && !r.stale, `${site.router.name} has the kept route, fresh`);
    }
    watching = false;
    await watcher;
    t.equal(missing, 0, 'bird never lost the kept route during the restart');
  });
});

t.test('TCP MD5 with bird2, FRR and gobgpd: a session comes up only with the right password', { skip: skip || (!existsSync(ADDON_PATH) && 'native addon not built (npm run build:native)') }, async (t) => {
  const lab = await withLab(t, 'phbm');
  await lab.addNamespace('spk');
  const sites: Site[] = [];
  t.teardown(async () => { for (const s of sites) await s.router.stop(); });
  sites.push(await buildSite(lab, 4, (s) => new Bird({ lab, asn: ROUTER_ASN, ...s }), 'phb-secret'));
  sites.push(await buildSite(lab, 5, (s) => new Frr({ lab, asn: ROUTER_ASN, ...s }), 'phb-secret'));
  sites.push(await buildSite(lab, 6, (s) => new GoBgp({ lab, asn: ROUTER_ASN, ...s }), 'phb-secret'));
  const speaker = new SpeakerProcess(lab.ns('spk'), { routerId: SPEAKER_ID, native: true });
  t.teardown(() => speaker.kill());
  const ebgpPeers = (password: string): PeerSpec[] => sites.map((site) => peerSpecs(site, undefined, password)[0]!);
  await speaker.apply({ peers: ebgpPeers('wrong-password') });
  await new Promise((r) => setTimeout(r, 3000));
  for (const site of sites) t.notOk(await site.router.established(site.ebgp.address), `${site.router.name}: no session with the wrong password`);
  await speaker.apply({ peers: ebgpPeers('phb-secret') });
  for (const site of sites) {
    await waitFor(`${site.router.name}: MD5 session Established`, 20_000, () => site.router.established(site.ebgp.address), { everyMs: 100 });
    t.ok(await waitFor(`${site.router.name}: route over the MD5 session`, 15_000, () => site.router.route(`203.0.113.${site.net * 10 + 1}/32`), { everyMs: 100 }),
      `${site.router.name}: Established, route received over the MD5 session`);
  }
});

t.test('ECMP: two LB nodes advertise one VIP; bird installs a multipath route, and a single path when one leaves', { skip }, async (t) => {
  const lab = await withLab(t, 'phbe');
  await lab.addNamespace('r');
  const nodes = ['a', 'b'];
  const neighbors: RouterNeighbor[] = [];
  for (const [i, n] of nodes.entries()) {
    await lab.addNamespace(n);
    const base = 48 + i * 8;
    await lab.addLink({ ns: n, ifname: 'up0', addrs: [`198.51.100.${base + 1}/29`] }, { ns: 'r', ifname: `d${n}`, addrs: [`198.51.100.${base + 2}/29`] });
    neighbors.push({ address: `198.51.100.${base + 1}`, asn: 65001, local: `198.51.100.${base + 2}` });
  }
  const bird = new Bird({ lab, ns: lab.ns('r'), asn: ROUTER_ASN, routerId: '198.51.100.50', neighbors },
    'protocol kernel { ipv4 { export all; }; merge paths on; }');
  t.teardown(() => bird.stop());
  await bird.start();
  const speakers = nodes.map((n, i) => new SpeakerProcess(lab.ns(n), { routerId: `192.0.2.${10 + i}`, native: NATIVE }));
  t.teardown(async () => { for (const s of speakers) await s.kill(); });
  const vip = '203.0.113.200/32';
  for (const [i, s] of speakers.entries()) {
    await s.apply({ peers: [{
      id: 'r', localAsn: 65001, peerAsn: ROUTER_ASN, peerAddress: neighbors[i]!.local, peerPort: 179, localAddress: neighbors[i]!.address,
      holdTimeSeconds: 9, keepaliveSeconds: 3, connectRetrySeconds: 1, ebgpMultihopTtl: 1, families: [1],
      gracefulRestart: { enabled: false, restartTimeSeconds: 60 }, routes: [routeSpec(vip)],
    }] });
  }
  const kernelNexthops = async (): Promise<string[]> => {
    const r = await lab.exec('r', ['ip', '-j', 'route', 'show', vip.split('/')[0]!], { allowFail: true });
    const routes = JSON.parse(r.stdout || '[]') as { gateway?: string; nexthops?: { gateway: string }[] }[];
    return routes.flatMap((x) => x.nexthops?.map((n) => n.gateway) ?? (x.gateway ? [x.gateway] : [])).sort();
  };
  const both = neighbors.map((n) => n.address).sort();
  await waitFor('a two-path route in the router\'s kernel table', 20_000, async () => JSON.stringify(await kernelNexthops()) === JSON.stringify(both), { everyMs: 100 });
  t.same(await kernelNexthops(), both, 'the VIP is routed over both LB nodes');
  await speakers[0]!.stop(false);
  await waitFor('a single path once node a withdrew', 10_000, async () => JSON.stringify(await kernelNexthops()) === JSON.stringify([neighbors[1]!.address]), { everyMs: 100 });
  t.pass('node a leaving (Cease) moves all traffic to node b');
});

t.test('eBGP multihop TTL: a session to a router two hops away needs eBGPMultihopTTL 2', { skip: skip || (!existsSync(ADDON_PATH) && 'native addon not built (npm run build:native)') }, async (t) => {
  const lab = await withLab(t, 'phbt');
  await lab.addNamespace('spk');
  await lab.addNamespace('mid', { forwarding: true });
  await lab.addNamespace('r');
  await lab.addLink({ ns: 'spk', ifname: 'm0', addrs: ['198.51.100.97/29'] }, { ns: 'mid', ifname: 's0', addrs: ['198.51.100.98/29'] });
  await lab.addLink({ ns: 'mid', ifname: 'r0', addrs: ['198.51.100.105/29'] }, { ns: 'r', ifname: 'e0', addrs: ['198.51.100.106/29'] });
  await lab.exec('spk', ['ip', 'route', 'add', '198.51.100.104/29', 'via', '198.51.100.98']);
  await lab.exec('r', ['ip', 'route', 'add', '198.51.100.96/29', 'via', '198.51.100.105']);
  const neighbor: RouterNeighbor = { address: '198.51.100.97', asn: SPEAKER_EBGP_ASN, local: '198.51.100.106', multihop: 2 };
  const bird = new Bird({ lab, ns: lab.ns('r'), asn: ROUTER_ASN, routerId: '198.51.100.106', neighbors: [neighbor] });
  t.teardown(() => bird.stop());
  await bird.start();
  const speaker = new SpeakerProcess(lab.ns('spk'), { routerId: SPEAKER_ID, native: true });
  t.teardown(() => speaker.kill());
  const peer = (ttl: number): PeerSpec => ({
    id: 'r', localAsn: SPEAKER_EBGP_ASN, peerAsn: ROUTER_ASN, peerAddress: neighbor.local, peerPort: 179, localAddress: neighbor.address,
    holdTimeSeconds: 9, keepaliveSeconds: 3, connectRetrySeconds: 1, ebgpMultihopTtl: ttl, families: [1],
    gracefulRestart: { enabled: false, restartTimeSeconds: 60 }, routes: [routeSpec('203.0.113.77/32')],
  });
  await speaker.apply({ peers: [peer(1)] });
  await new Promise((r) => setTimeout(r, 3000));
  t.notOk(await bird.established(neighbor.address), 'TTL 1 (the default): no session across the middle router');
  const st = await speaker.status();
  t.match(st.peers[0]?.lastError ?? '', /EHOSTUNREACH/, `the SYN expired on the way: ${st.peers[0]?.lastError}`);
  await speaker.apply({ peers: [peer(2)] });
  await waitFor('Established with TTL 2', 15_000, () => bird.established(neighbor.address), { everyMs: 100 });
  t.ok(await waitFor('route over the multihop session', 15_000, () => bird.route('203.0.113.77/32'), { everyMs: 100 }), 'TTL 2: Established, route received');
});
