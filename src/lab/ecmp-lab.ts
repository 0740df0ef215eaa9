/**
 * The BGP ECMP lab of test/bgp/ecmp-scaleout.test.ts and
 * bench/failover-bgp.ts: two LB nodes with the pharos data path loaded
 * directly (no agent), behind a router that spreads client flows over them
 * by an L4 hash, in front of a backend segment.
 *
 *                            ┌ up0 [a: XDP] eth0 ┐
 *   cli ── c0 [rtr: bird2] ──┤                   ├── br0 [sw] ── be1, be2, ...
 *                            └ up0 [b: XDP] eth0 ┘
 *
 * The backend segment is buildCluster's; the router and the uplinks are
 * addRouterFront's (topology.ts). Each node SNATs to its own eth0 address,
 * so a backend's answer (`beN <source>`) names the backend and the node
 * that carried the flow. The caller brings the router's BGP daemon and the
 * speakers.
 */
import type { NativeAddon } from '../native/libbpf.js';
import { loadDatapath, removePins, type LoadedDatapath } from '../datapath/loader.js';
import { DatapathSync } from '../datapath/sync.js';
import type { Frontend } from '../model/types.js';
import { startEchoServer } from './echo.js';
import type { Lab } from './netns.js';
import { addRouterFront, buildCluster } from './topology.js';

export const ECMP_CLIENT = '198.18.0.1';
export const ECMP_ROUTER = '198.18.0.2';

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
    xdpPeers: true,
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
 * Loads the data path on node `n` (XDP and tc egress on up0 and eth0, the
 * cluster-wide hash seed), programs `frontends`, keeps the liveness stamp
 * fresh and has the kernel keep the backends' neighbours resolved, as
 * src/datapath/neighbours.ts does on a node.
 */
export async function startEcmpDatapath(lab: Lab, addon: NativeAddon, n: EcmpNode, opts: { pinDir: string; hashSeed: number; frontends: Frontend[] }): Promise<void> {
  const dp = loadDatapath({ addon, pinDir: opts.pinDir, sizes: { conntrack: 65536, frontends: 16, backends: 64 }, config: { hashSeed: opts.hashSeed } });
  n.dp = dp;
  const sync = new DatapathSync(addon, dp.maps);
  n.sync = sync;
  sync.readState();
  for (const ifname of ['up0', 'eth0']) {
    dp.attachXdp(ifname, { netns: lab.nsPath(n.name) });
    dp.attachTcEgress(ifname, { netns: lab.nsPath(n.name) });
  }
  sync.setNodeConfig({ snatV4: n.snat, portMin: 40000, portMax: 49999 });
  sync.touchLiveness();
  n.liveness = setInterval(() => sync.touchLiveness(), 500);
  const r = sync.apply(opts.frontends);
  if (r.errors.length) throw new Error(JSON.stringify(r.errors));
  const backends = new Set(opts.frontends.flatMap((f) => f.backends.map((b) => b.address)));
  for (const address of backends) await lab.exec(n.name, ['ip', 'neigh', 'replace', address, 'dev', 'eth0', 'managed']);
}

/** Stops node `n`'s liveness stamp, closes its data path and removes its pins. */
export function stopEcmpDatapath(n: EcmpNode, pinDir: string): void {
  clearInterval(n.liveness);
  n.dp?.close();
  removePins(pinDir);
}
