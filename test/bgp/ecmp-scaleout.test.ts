/**
 * ECMP scale-out: two LB nodes, each with the real pharos XDP data path and
 * a BgpSpeaker, advertise the same VIP to a bird2 router with multipath; the
 * router spreads client flows over both by an L4 hash.
 *
 *                                   ┌ up0 [phge-a: XDP, speaker] b0 ┐
 *   phge-cli ── c0 [phge-rtr: bird] ┤                               ├ br0 [phge-sw] ── be1, be2, be3
 *                                   └ up0 [phge-b: XDP, speaker] b0 ┘
 *
 * Each node SNATs to its own b0 address, so a backend's answer
 * (`beN <source>`) names the backend and the LB node that carried the flow.
 * Both nodes share the hash seed and the Maglev table, so a flow (same
 * 5-tuple) pinned through either node reaches the same backend.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { privilegedUnavailable } from '../support/privileged.js';
import { startEchoServer, withLab, type Lab } from '../support/lab.js';
import { ADDON_PATH, loadAddon, type NativeAddon } from '../../src/native/libbpf.js';
import { loadDatapath, removePins, type LoadedDatapath } from '../../src/datapath/loader.js';
import { DatapathSync } from '../../src/datapath/sync.js';
import { readReasonCounters } from '../../src/datapath/stats.js';
import type { Frontend } from '../../src/model/types.js';
import type { PeerSpec } from '../../src/bgp/speaker.js';
import { Bird, type RouterNeighbor } from '../../src/lab/bgp/routers.js';
import { SpeakerProcess } from '../../src/lab/bgp/speaker-process.js';
import { waitFor } from '../support/wait.js';

const PEER = fileURLToPath(new URL('../datapath/lab-peer.mjs', import.meta.url));
const VIP = '203.0.113.100';
const ROUTER_ASN = 65000;
const LB_ASN = 65010;
const HASH_SEED = 0x5eed1234;
const BACKENDS = [1, 2, 3];
const be = (i: number): string => `198.18.10.1${i}`;
const CONNECTIONS = 240;

interface LbNode {
  name: 'a' | 'b';
  /** Its b0 address: the SNAT source backends see. */
  snat: string;
  uplink: string;
  routerSide: string;
  dp?: LoadedDatapath;
  sync?: DatapathSync;
  liveness?: NodeJS.Timeout;
  speaker?: SpeakerProcess;
}

const NODES: LbNode[] = [
  { name: 'a', snat: '198.18.10.1', uplink: '198.18.2.1', routerSide: '198.18.2.2' },
  { name: 'b', snat: '198.18.10.2', uplink: '198.18.3.1', routerSide: '198.18.3.2' },
];
const pinDir = (n: LbNode): string => `/run/pharos/bpffs/phg-ecmp-${n.name}`;

function frontends(): Frontend[] {
  return [{
    service: 'lab/echo', kind: 'LoadBalancer', address: VIP, port: 80, protocol: 'TCP',
    backends: BACKENDS.map((i) => ({ address: be(i), port: 8080, weight: 1, state: 'active' as const })),
    sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [],
  }];
}

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

const skip = privilegedUnavailable() || (!existsSync(ADDON_PATH) && 'native addon not built (npm run build:native)');

t.test('ECMP scale-out: two XDP LB nodes behind a multipath bird2 router', { skip }, async (t) => {
  const lab: Lab = await withLab(t, 'phge');
  const addon: NativeAddon = loadAddon();
  for (const n of NODES) removePins(pinDir(n));
  t.teardown(() => {
    for (const n of NODES) {
      clearInterval(n.liveness);
      n.dp?.close();
      removePins(pinDir(n));
    }
  });

  // ---- topology
  await lab.addNamespace('cli');
  await lab.addNamespace('rtr', { forwarding: true });
  await lab.addNamespace('sw');
  await lab.addBridge('sw', 'br0');
  await lab.addLink({ ns: 'cli', ifname: 'eth0', addrs: ['198.18.0.1/24'] }, { ns: 'rtr', ifname: 'c0', addrs: ['198.18.0.2/24'] });
  await lab.exec('cli', ['ip', 'route', 'add', 'default', 'via', '198.18.0.2']);
  // Senders compute checksums in software: an XDP redirect loses veth's
  // CHECKSUM_PARTIAL state (LAB-FACTS).
  await lab.exec('cli', ['ethtool', '-K', 'eth0', 'tx', 'off']);
  // L4 hash: flows of one client spread over both next hops.
  await lab.exec('rtr', ['sysctl', '-qw', 'net.ipv4.fib_multipath_hash_policy=1']);
  for (const n of NODES) {
    await lab.addNamespace(n.name, { forwarding: true });
    await lab.addLink({ ns: n.name, ifname: 'up0', addrs: [`${n.uplink}/24`] }, { ns: 'rtr', ifname: `d${n.name}`, addrs: [`${n.routerSide}/24`] });
    await lab.addLink({ ns: n.name, ifname: 'b0', addrs: [`${n.snat}/24`] }, { ns: 'sw', ifname: `p${n.name}` });
    await lab.attachToBridge('sw', `p${n.name}`, 'br0');
    // Frames the node's XDP redirects out of up0 / b0 arrive on these peers.
    await lab.attachXdpPass('rtr', `d${n.name}`);
    await lab.attachXdpPass('sw', `p${n.name}`);
    await lab.exec(n.name, ['ip', 'route', 'add', '198.18.0.0/24', 'via', n.routerSide]);
    await lab.exec(n.name, ['sysctl', '-qw', 'net.ipv4.conf.all.accept_local=1', 'net.ipv4.conf.up0.accept_local=1',
      'net.ipv4.conf.b0.accept_local=1', 'net.ipv4.conf.all.rp_filter=0']);
  }
  for (const i of BACKENDS) {
    await lab.addNamespace(`be${i}`);
    await lab.addLink({ ns: 'sw', ifname: `pbe${i}` }, { ns: `be${i}`, ifname: 'eth0', addrs: [`${be(i)}/24`] });
    await lab.attachToBridge('sw', `pbe${i}`, 'br0');
    await lab.exec(`be${i}`, ['ethtool', '-K', 'eth0', 'tx', 'off']);
    await startEchoServer(lab, `be${i}`, { name: `be${i}`, port: 8080 });
  }

  // ---- data path on each node: same seed, same frontends, managed neighbours
  for (const n of NODES) {
    const netns = lab.nsPath(n.name);
    const dp = loadDatapath({ addon, pinDir: pinDir(n), sizes: { conntrack: 65536, frontends: 16, backends: 64 }, config: { hashSeed: HASH_SEED } });
    n.dp = dp;
    const sync = new DatapathSync(addon, dp.maps);
    n.sync = sync;
    sync.readState();
    for (const ifname of ['up0', 'b0']) {
      dp.attachXdp(ifname, { netns });
      dp.attachTcEgress(ifname, { netns });
    }
    sync.setNodeConfig({ snatV4: n.snat, portMin: 40000, portMax: 49999 });
    sync.touchLiveness();
    n.liveness = setInterval(() => sync.touchLiveness(), 500);
    const r = sync.apply(frontends());
    if (r.errors.length) throw new Error(JSON.stringify(r.errors));
    // What src/datapath/neighbours.ts does on a node: the kernel resolves and keeps them REACHABLE.
    for (const i of BACKENDS) await lab.exec(n.name, ['ip', 'neigh', 'replace', be(i), 'dev', 'b0', 'managed']);
  }

  // ---- BGP: bird2 with multipath into the kernel; one speaker per node
  const neighbors: RouterNeighbor[] = NODES.map((n) => ({ address: n.uplink, asn: LB_ASN, local: n.routerSide }));
  const bird = new Bird({ lab, ns: lab.ns('rtr'), asn: ROUTER_ASN, routerId: '198.18.0.2', neighbors },
    'protocol kernel { ipv4 { export all; }; merge paths on; }');
  t.teardown(() => bird.stop());
  await bird.start();
  for (const [i, n] of NODES.entries()) {
    const speaker = new SpeakerProcess(lab.ns(n.name), { routerId: `192.0.2.${20 + i}`, native: true });
    n.speaker = speaker;
    t.teardown(() => speaker.kill());
    const peer: PeerSpec = {
      id: 'rtr', localAsn: LB_ASN, peerAsn: ROUTER_ASN, peerAddress: n.routerSide, peerPort: 179, localAddress: n.uplink,
      holdTimeSeconds: 9, keepaliveSeconds: 3, connectRetrySeconds: 1, ebgpMultihopTtl: 1, families: [1],
      gracefulRestart: { enabled: false, restartTimeSeconds: 60 },
      routes: [{ prefix: `${VIP}/32`, communities: [], largeCommunities: [] }],
    };
    await speaker.apply({ peers: [peer] });
  }
  const kernelNexthops = async (): Promise<string[]> => {
    const r = await lab.exec('rtr', ['ip', '-j', 'route', 'show', VIP], { allowFail: true });
    const routes = JSON.parse(r.stdout || '[]') as { gateway?: string; nexthops?: { gateway: string }[] }[];
    return routes.flatMap((x) => x.nexthops?.map((h) => h.gateway) ?? (x.gateway ? [x.gateway] : [])).sort();
  };
  const both = NODES.map((n) => n.uplink).sort();
  await waitFor('the VIP routed over both LB nodes', 20_000, async () => JSON.stringify(await kernelNexthops()) === JSON.stringify(both), { everyMs: 100 })
    .catch((e) => { throw new Error(`${(e as Error).message}\n${bird.log.slice(-2000)}\n${NODES.map((n) => n.speaker!.stderr.slice(-1500)).join('\n')}`); });
  t.pass('bird installed a two-path route to the VIP from both speakers');

  const nodeOf = (body: string): string | undefined => NODES.find((n) => body.endsWith(` ${n.snat}`))?.name;

  await t.test(`${CONNECTIONS} HTTP connections: all complete, both LB nodes carry traffic`, async (t) => {
    const before = NODES.map((n) => readReasonCounters(n.dp!.maps.stats));
    const res = await lab.exec('cli', [process.execPath, PEER, 'http-many', `http://${VIP}/`, String(CONNECTIONS), '8'], { timeoutMs: 90_000 });
    const { bodies, failures } = JSON.parse(res.stdout) as { bodies: string[]; failures: string[] };
    t.same(failures, [], 'no connection failed');
    t.equal(bodies.length, CONNECTIONS, 'every connection got its answer');
    t.ok(bodies.every((b) => /^be[123] 198\.18\.10\.[12]$/.test(b)), 'answered by a backend, through one of the nodes');
    const perNode = countBy(bodies.map((b) => nodeOf(b) ?? '?'));
    const perBackend = countBy(bodies.map((b) => b.split(' ')[0]!));
    t.comment(`per node ${JSON.stringify(perNode)}, per backend ${JSON.stringify(perBackend)}`);
    // Binomial(240, 1/2): σ ≈ 7.7; 20% (48) is 9σ below the mean.
    for (const n of NODES) t.ok((perNode[n.name] ?? 0) >= CONNECTIONS * 0.2, `node ${n.name} carried ${perNode[n.name] ?? 0} connections`);
    t.same(Object.keys(perBackend).sort(), ['be1', 'be2', 'be3'], 'every backend served');
    for (const [i, n] of NODES.entries()) {
      const after = readReasonCounters(n.dp!.maps.stats);
      const created = after.ct_create - before[i]!.ct_create;
      t.ok(created >= BigInt(perNode[n.name] ?? 0), `node ${n.name}'s XDP created ${created} flows (≥ its ${perNode[n.name] ?? 0} connections)`);
      t.ok(after.fwd_redirect - before[i]!.fwd_redirect > 0n || after.fwd_tx - before[i]!.fwd_tx > 0n, `node ${n.name} forwarded in XDP`);
    }
  });

  await t.test('the same 5-tuple reaches the same backend through either LB node', async (t) => {
    // Pin the client's flows to one node at a time with a policy-routing table
    // in front of bird's multipath route, then replay the same source ports.
    await lab.exec('rtr', ['ip', 'rule', 'add', 'iif', 'c0', 'lookup', '100', 'pref', '100']);
    // curl may close first and leave the port in TIME_WAIT for 60 s: keep none in the client.
    await lab.exec('cli', ['sysctl', '-qw', 'net.ipv4.tcp_max_tw_buckets=0']);
    const ports = Array.from({ length: 24 }, (_, k) => 31000 + k * 7);
    const seen: Record<string, string[]> = {};
    for (const n of NODES) {
      await lab.exec('rtr', ['ip', 'route', 'replace', `${VIP}/32`, 'via', n.uplink, 'table', '100']);
      seen[n.name] = [];
      for (const port of ports) {
        // A port still closing on the client refuses bind: retry briefly.
        let body = '';
        for (let attempt = 0; attempt < 10 && !body; attempt++) {
          const r = await lab.exec('cli', ['curl', '-sS', '--fail', '--noproxy', '*', '--max-time', '3', '--local-port', String(port), `http://${VIP}/`], { allowFail: true, timeoutMs: 6000 });
          if (r.code === 0) body = r.stdout;
          else if (r.code !== 45) throw new Error(`curl from port ${port} via ${n.name}: exit ${r.code} ${r.stderr}`);
          else await new Promise((res) => setTimeout(res, 100));
        }
        t.equal(nodeOf(body), n.name, `port ${port} pinned through node ${n.name}`);
        seen[n.name]!.push(body.split(' ')[0]!);
      }
    }
    t.same(seen.a, seen.b, 'each flow reached the same backend through node a and through node b');
    t.ok(new Set(seen.a).size >= 2, `the pinned flows still spread over backends (${JSON.stringify(countBy(seen.a!))})`);
  });
});
