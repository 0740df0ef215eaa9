/**
 * The BGP ECMP lab of test/bgp/ecmp-scaleout.test.ts and
 * bench/failover-bgp.ts: two LB nodes with the pharos data path loaded
 * directly (no agent), behind a router that spreads client flows over them
 * by an L4 hash, in front of a backend segment.
 *
 *                            ┌ up0 [a: pharos] eth0 ┐
 *   cli ── c0 [rtr: bird2] ──┤                      ├── br0 [sw] ── be1, be2, ...
 *                            └ up0 [b: pharos] eth0 ┘
 *
 * The backend segment is buildCluster's; the router and the uplinks are
 * addRouterFront's (topology.ts). Each node SNATs to its own eth0 address,
 * so a backend's answer (`beN <source>`) names the backend and the node
 * that carried the flow. bird2 on the router installs a multipath route
 * from the nodes' speakers (startEcmpBgp, ecmpPeer).
 */
import type { NativeAddon } from '../native/libbpf.js';
import type { PeerSpec } from '../bgp/speaker.js';
import { loadDatapath, removePins, type LoadedDatapath } from '../datapath/loader.js';
import { DatapathSync } from '../datapath/sync.js';
import type { Frontend } from '../model/types.js';
import { startEchoServer } from './echo.js';
import type { Lab } from './netns.js';
import { addRouterFront, buildCluster } from './topology.js';
import { Bird, type RouterBfd } from './bgp/routers.js';
import { SpeakerProcess } from './bgp/speaker-process.js';

export const ECMP_CLIENT = '198.18.0.1';
export const ECMP_ROUTER = '198.18.0.2';
export const ECMP_ROUTER_ASN = 65000;
export const ECMP_LB_ASN = 65010;

export interface EcmpNode {
  name: 'a' | 'b';
  /** Its eth0 address on the backend segment: the SNAT source backends see. */
  snat: string;
  /** up0, and the router's end of that link. */
  uplink: string;
  routerSide: string;
  dp?: LoadedDatapath;
  sync?: DatapathSync;
  liveness?: NodeJS.Timeout;
}

/** The two nodes (fresh objects: callers hang their data path and speaker on them). */
export function ecmpNodes(): EcmpNode[] {
  return [
    { name: 'a', snat: '198.18.10.1', uplink: '198.18.2.1', routerSide: '198.18.2.2' },
    { name: 'b', snat: '198.18.10.2', uplink: '198.18.3.1', routerSide: '198.18.3.2' },
  ];
}

/** Backend `i`'s address (i = 1, 2, ...). */
export const ecmpBackend = (i: number): string => `198.18.10.1${i}`;

/** The echo service: `vip`:80/TCP to port 8080 of the given backends. */
export function ecmpFrontends(vip: string, backends: readonly number[]): Frontend[] {
  return [{
    service: 'lab/echo', kind: 'LoadBalancer', address: vip, port: 80, protocol: 'TCP',
    backends: backends.map((i) => ({ address: ecmpBackend(i), port: 8080, weight: 1, state: 'active' as const })),
    sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [],
  }];
}

/** Builds the namespaces and links and starts an echo server (HTTP 8080) on each backend. */
export async function buildEcmpLab(lab: Lab, nodes: readonly EcmpNode[], backends: readonly number[]): Promise<void> {
  await buildCluster(lab, {
    hosts: backends.map((i) => ({ name: `be${i}`, lan: [`${ecmpBackend(i)}/24`] })),
    nodes: nodes.map((n) => ({ name: n.name, lan: [`${n.snat}/24`] })),
  });
  await addRouterFront(lab, {
    client: `${ECMP_CLIENT}/24`,
    router: `${ECMP_ROUTER}/24`,
    clientSubnet: '198.18.0.0/24',
    uplinks: nodes.map((n) => ({ node: n.name, address: `${n.uplink}/24`, routerSide: `${n.routerSide}/24` })),
  });
  for (const i of backends) await startEchoServer(lab, `be${i}`, { name: `be${i}`, port: 8080 });
}

/**
 * Loads the data path on node `n` (tc ingress and egress on up0 and eth0, the
 * cluster-wide hash seed), programs `frontends`, keeps the liveness stamp
 * fresh and has the kernel keep the backends' neighbours resolved, as
 * src/datapath/neighbours.ts does on a node.
 */
export async function startEcmpDatapath(lab: Lab, addon: NativeAddon, n: EcmpNode, opts: { pinDir: string; hashSeed: number; frontends: Frontend[] }): Promise<void> {
  // The tc build at tc ingress, as `--xdp-mode auto` picks on veth: the lab's peers need no XDP programs.
  const dp = loadDatapath({ addon, pinDir: opts.pinDir, hook: 'tc', sizes: { conntrack: 65536, frontends: 16, backends: 64 }, config: { hashSeed: opts.hashSeed } });
  n.dp = dp;
  const sync = new DatapathSync(addon, dp.maps);
  n.sync = sync;
  sync.readState();
  for (const ifname of ['up0', 'eth0']) attachEcmpInterface(lab, n, ifname);
  sync.setNodeConfig({ snatV4: n.snat, portMin: 40000, portMax: 49999 });
  sync.touchLiveness();
  n.liveness = setInterval(() => sync.touchLiveness(), 500);
  const r = sync.apply(opts.frontends);
  if (r.errors.length) throw new Error(JSON.stringify(r.errors));
  const backends = new Set(opts.frontends.flatMap((f) => f.backends.map((b) => b.address)));
  for (const address of backends) await lab.exec(n.name, ['ip', 'neigh', 'replace', address, 'dev', 'eth0', 'managed']);
}

/** Attaches node `n`'s loaded data path to `ifname` (tc ingress and egress), as at start (again after a detach). */
export function attachEcmpInterface(lab: Lab, n: EcmpNode, ifname: string): void {
  n.dp!.attachTcIngress(ifname, { netns: lab.nsPath(n.name) });
  n.dp!.attachTcEgress(ifname, { netns: lab.nsPath(n.name) });
}

/** Stops node `n`'s liveness stamp, closes its data path and removes its pins. */
export function stopEcmpDatapath(n: EcmpNode, pinDir: string): void {
  clearInterval(n.liveness);
  n.dp?.close();
  removePins(pinDir);
}

/**
 * bird2 on the router (multipath into the kernel) peering with every node,
 * with BFD if `bfd` is given, and a BGP speaker process in each node, not
 * yet configured (see ecmpPeer); `teardown` receives what stops them.
 */
export async function startEcmpBgp(lab: Lab, nodes: readonly EcmpNode[], opts: { bfd?: RouterBfd; teardown: (stop: () => unknown) => void }): Promise<{ bird: Bird; speakers: SpeakerProcess[] }> {
  const bird = new Bird({
    lab, ns: lab.ns('rtr'), asn: ECMP_ROUTER_ASN, routerId: ECMP_ROUTER,
    neighbors: nodes.map((n) => ({ address: n.uplink, asn: ECMP_LB_ASN, local: n.routerSide, ...(opts.bfd ? { bfd: opts.bfd } : {}) })),
  }, 'protocol kernel { ipv4 { export all; }; merge paths on; }');
  opts.teardown(() => bird.stop());
  await bird.start();
  const speakers = nodes.map((n, i) => {
    const speaker = new SpeakerProcess(lab.ns(n.name), { routerId: `192.0.2.${20 + i}`, native: true });
    opts.teardown(() => speaker.kill());
    return speaker;
  });
  return { bird, speakers };
}

/** Node `n`'s peering with the router, advertising `vip`/32 (no graceful restart; BFD if given). */
export function ecmpPeer(n: EcmpNode, vip: string, opts: { holdTimeSeconds: number; bfd?: RouterBfd }): PeerSpec {
  return {
    id: 'rtr', localAsn: ECMP_LB_ASN, peerAsn: ECMP_ROUTER_ASN, peerAddress: n.routerSide, peerPort: 179, localAddress: n.uplink,
    holdTimeSeconds: opts.holdTimeSeconds, keepaliveSeconds: 3, connectRetrySeconds: 1, ebgpMultihopTtl: 1, families: [1],
    gracefulRestart: { enabled: false, restartTimeSeconds: 60 },
    ...(opts.bfd ? { bfd: opts.bfd } : {}),
    routes: [{ prefix: `${vip}/32`, communities: [], largeCommunities: [] }],
  };
}
