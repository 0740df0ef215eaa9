/**
 * The one builder of the cluster-shaped lab that `pharos lab`, `pharos
 * demo`, the L2 tests and the benches (failover, scale-kube, soak) stand on:
 *
 *   hosts (client, backends) ─┐                    ┌─ n1 … nN (LB nodes) ─┐
 *                             ├── br0 [sw] ────────┤                      ├── br0 [mgmt]: the API address
 *   (optional second segment) └── br1 [sw] ────────┘                      ┘
 *
 * Callers say what differs (node count, addresses, a second segment, a
 * management network for an API emulator or none, XDP-ready peers) and get
 * the same namespace and interface names: `eth0` on the first segment
 * (switch port `p-NAME`), `eth1` on the second (`q-NAME`), `mgmt` on the
 * management switch (`m-NAME`).
 */
import type { Lab } from './netns.js';

export interface ClusterMember {
  /** Namespace short name (`n1`, `client`, `be1`). */
  name: string;
  /** Addresses (CIDR) on the first segment; a host without is not on it (a backend behind the nodes). */
  lan?: string[];
  /** Addresses on the second segment; the member is not on it without. */
  seg2?: string[];
}

export interface ClusterNode extends ClusterMember {
  /** Address (CIDR) on the management switch. */
  mgmt?: string;
}

export interface ClusterTopology {
  hosts: ClusterMember[];
  /** LB nodes: IP forwarding on, and a management link when `api` is set. */
  nodes: ClusterNode[];
  /** The API's address (CIDR) on the management switch; no management network without it. */
  api?: string;
  /** Adds the second segment (bridge br1 in the switch namespace). */
  secondSegment?: boolean;
}

const SWITCH_NS = 'sw';
const MGMT_NS = 'mgmt';

/** Switch-side name of a member's port on a segment (interface names are at most 15 characters). */
function switchPort(segment: 'p' | 'q' | 'm', member: string): string {
  return `${segment}-${member}`.slice(0, 15);
}

/**
 * Builds the topology in `lab`. `beforeNamespace` runs before each
 * namespace is made (pharos lab records it in its state file first).
 */
export async function buildCluster(lab: Lab, topo: ClusterTopology, beforeNamespace: (short: string) => void = () => undefined): Promise<void> {
  const addNamespace = async (short: string, opts: { forwarding?: boolean } = {}): Promise<void> => {
    beforeNamespace(short);
    await lab.addNamespace(short, opts);
  };
  const plug = async (member: string, ifname: string, addrs: string[], switchNs: string, bridge: string, port: string): Promise<void> => {
    await lab.addLink({ ns: member, ifname, addrs }, { ns: switchNs, ifname: port });
    await lab.attachToBridge(switchNs, port, bridge);
  };

  await addNamespace(SWITCH_NS);
  await lab.addBridge(SWITCH_NS, 'br0');
  if (topo.secondSegment) await lab.addBridge(SWITCH_NS, 'br1');
  if (topo.api) {
    await addNamespace(MGMT_NS);
    await lab.addBridge(MGMT_NS, 'br0', { addrs: [topo.api] });
  }

  for (const h of topo.hosts) {
    await addNamespace(h.name);
    if (h.lan) await plug(h.name, 'eth0', h.lan, SWITCH_NS, 'br0', switchPort('p', h.name));
    if (topo.secondSegment && h.seg2) {
      await plug(h.name, 'eth1', h.seg2, SWITCH_NS, 'br1', switchPort('q', h.name));
    }
  }

  for (const n of topo.nodes) {
    await addNamespace(n.name, { forwarding: true });
    if (topo.secondSegment && n.seg2) {
      await plug(n.name, 'eth1', n.seg2, SWITCH_NS, 'br1', switchPort('q', n.name));
    }
    await plug(n.name, 'eth0', n.lan ?? [], SWITCH_NS, 'br0', switchPort('p', n.name));
    if (topo.api && n.mgmt) await plug(n.name, 'mgmt', [n.mgmt], MGMT_NS, 'br0', switchPort('m', n.name));
  }
}

export interface RouterFront {
  /** The client's address (CIDR) on its link to the router, the router's end, and that link's subnet (the nodes route it back). */
  client: string;
  router: string;
  clientSubnet: string;
  /** Each LB node's uplink `up0` (CIDR) and the router's end of it (`dNODE`). */
  uplinks: { node: string; address: string; routerSide: string }[];
}

/**
 * A router (namespace `rtr`, IP forwarding, multipath hashed on L4 so one
 * client's flows spread) between a client (`cli`, eth0) and LB nodes that
 * buildCluster made: one point-to-point uplink per node, the nodes routing
 * the client's subnet back through it, peers ready for the nodes' XDP
 * redirects. The BGP daemon on the router is the caller's.
 */
export async function addRouterFront(lab: Lab, front: RouterFront): Promise<void> {
  const address = (cidr: string): string => cidr.split('/')[0]!;
  await lab.addNamespace('cli');
  await lab.addNamespace('rtr', { forwarding: true });
  await lab.addLink({ ns: 'cli', ifname: 'eth0', addrs: [front.client] }, { ns: 'rtr', ifname: 'c0', addrs: [front.router] });
  await lab.exec('cli', ['ip', 'route', 'add', 'default', 'via', address(front.router)]);
  await lab.exec('rtr', ['sysctl', '-qw', 'net.ipv4.fib_multipath_hash_policy=1']);
  for (const u of front.uplinks) {
    await lab.addLink({ ns: u.node, ifname: 'up0', addrs: [u.address] }, { ns: 'rtr', ifname: `d${u.node}`, addrs: [u.routerSide] });
    await lab.exec(u.node, ['ip', 'route', 'add', front.clientSubnet, 'via', address(u.routerSide)]);
    // Replies the node's data path turns back towards an address of its own must not be dropped as martians.
    await lab.exec(u.node, ['sysctl', '-qw', 'net.ipv4.conf.all.accept_local=1', 'net.ipv4.conf.up0.accept_local=1',
      'net.ipv4.conf.eth0.accept_local=1', 'net.ipv4.conf.all.rp_filter=0']);
  }
}

/** The next hops of the router's kernel route to `address`, sorted (the ECMP set its BGP daemon installed). */
export async function routerNextHops(lab: Lab, address: string): Promise<string[]> {
  const r = await lab.exec('rtr', ['ip', '-j', 'route', 'show', address], { allowFail: true });
  const routes = JSON.parse(r.stdout || '[]') as { gateway?: string; nexthops?: { gateway: string }[] }[];
  return routes.flatMap((x) => x.nexthops?.map((h) => h.gateway) ?? (x.gateway ? [x.gateway] : [])).sort();
}
