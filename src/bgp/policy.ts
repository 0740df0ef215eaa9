/**
 * What this node should tell its BGP neighbors, as a pure function of the
 * store snapshot: `desiredBgp(snapshot, nodeName)` → neighbors and, per
 * neighbor, the /32 and /128 routes with their communities and local-pref.
 *
 * Semantics follow Cilium's CiliumBGPPeeringPolicy v2alpha1, whose manifests
 * are accepted as they are:
 *  - `nodeSelector` absent = every node.
 *  - `serviceSelector` absent = no service for Cilium-flavoured policies (as
 *    Cilium), every service for pharos' own kind. Services also carry the
 *    virtual labels `io.kubernetes.service.name` / `.namespace`, as in Cilium.
 *  - `advertisedPathAttributes`: every entry whose selector matches adds its
 *    communities; the highest localPreference wins.
 *  - `externalTrafficPolicy: Local` advertises only while this node has a
 *    ready endpoint of the service.
 * Which services are ours (`loadBalancerClass`, `--default-lb-class`) is
 * src/model/scope.ts's answer; a service of the L2-only class is not advertised.
 */
import { matchesSelector, matchesSelectorWith } from '../model/selector.js';
import { bgpMayAdvertise, serviceLabelLookup, servicesWithReadyEndpointOn, type ServiceScope } from '../model/scope.js';
import { parseBlock, rangeContains, tryParseAddress } from '../model/cidr.js';
import type { BgpNeighbor, BgpPolicy, BgpVirtualRouter, IPPool, Kind, Service } from '../model/types.js';
import type { SnapshotOf } from '../store/store.js';
import { parseCommunity, parseLargeCommunity } from './codec.js';
import { AFI_IPV4, AFI_IPV6, canonicalPrefix, familyOf, type Afi } from './prefix.js';
import type { DesiredBgp, PeerSpec, RouteSpec } from './speaker.js';

/** Kinds desiredBgp reads (its snapshot type holds only these); Lease renewals (every second or so) must not recompute BGP. */
export type BgpKind = Extract<Kind, 'Service' | 'EndpointSlice' | 'Node' | 'LoadBalancerIPPool' | 'BGPPeeringPolicy' | 'Secret'>;
export const BGP_KINDS: ReadonlySet<BgpKind> = new Set<BgpKind>(['Service', 'EndpointSlice', 'Node', 'LoadBalancerIPPool', 'BGPPeeringPolicy', 'Secret']);

export interface BgpPolicyOptions {
  /** Router ID when the node has no IPv4 address to derive it from. */
  routerId?: string;
  /** Namespace of `authSecretRef` Secrets (pharos' own in Kubernetes mode); searched first, and named in problems. */
  secretNamespace?: string;
  /** The agent's scope (src/model/scope.ts, with its --default-lb-class): a service it does not handle is never advertised. Required: a default would be a second answer to "is this ours". */
  isOurService: ServiceScope;
  /** Whether a service (`ns/name`) is fully in this node's data path: one that is not is not advertised (it would attract traffic nobody serves). */
  isProgrammed?: (service: string) => boolean;
}

export interface DesiredBgpResult extends DesiredBgp {
  /** BGP identifier for this node (first IPv4 InternalIP, else the option, else undefined). */
  routerId?: string;
  /** Human-readable problems (a missing secret, a duplicate neighbor), each naming its policy. */
  problems: string[];
}

/** Addresses of `svc` this virtual router advertises. */
function advertisedAddresses(svc: Service, router: BgpVirtualRouter): string[] {
  const out: string[] = [];
  if (router.serviceAdvertisements.includes('LoadBalancerIP') && svc.type === 'LoadBalancer') {
    for (const ing of svc.status.ingress) if (ing.ip) out.push(ing.ip);
  }
  if (router.serviceAdvertisements.includes('ExternalIP')) out.push(...svc.externalIPs);
  return out;
}

function poolsContaining(pools: Iterable<IPPool>, address: string): IPPool[] {
  const addr = tryParseAddress(address);
  if (!addr) return [];
  const out: IPPool[] = [];
  for (const pool of pools) {
    const hit = pool.blocks.some((b, i) => {
      const parsed = parseBlock(b, `blocks[${i}]`);
      return parsed.ok && rangeContains(parsed.value, addr);
    });
    if (hit) out.push(pool);
  }
  return out;
}

function peerAddressOf(n: BgpNeighbor): string {
  return n.peerAddress.split('/')[0]!;
}

export function peerId(localAsn: number, address: string, port: number): string {
  return `${localAsn}/${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/** The neighbor's password, or what is wrong with its authSecretRef (a problem, never the password, in the text). */
function resolvePassword(snapshot: SnapshotOf<'Secret'>, n: BgpNeighbor, secretNamespace: string | undefined): { password?: string } | { problem: string } {
  if (n.password !== undefined) return { password: n.password };
  if (n.authSecretRef === undefined) return {};
  const secrets = [...snapshot.secrets.values()].filter((s) => s.meta.name === n.authSecretRef);
  secrets.sort((a, b) => Number(b.meta.namespace === secretNamespace) - Number(a.meta.namespace === secretNamespace));
  const pw = secrets[0]?.data.password;
  if (pw !== undefined) return { password: pw };
  const name = `Secret ${secrets[0]?.meta.namespace ?? secretNamespace ?? ''}${secrets[0]?.meta.namespace ?? secretNamespace ? '/' : ''}${n.authSecretRef}`;
  return { problem: secrets.length ? `${name} has no key "password"` : `${name} not found` };
}

/** The desired BGP state of `nodeName` given everything in the store. */
export function desiredBgp(snapshot: SnapshotOf<BgpKind>, nodeName: string, options: BgpPolicyOptions): DesiredBgpResult {
  const problems: string[] = [];
  const node = snapshot.nodes.get(nodeName);
  const nodeLabels = { 'kubernetes.io/hostname': nodeName, ...(node?.meta.labels ?? {}) };
  const nodeV4 = node?.addresses.find((a) => a.type === 'InternalIP' && tryParseAddress(a.address)?.family === 'IPv4')?.address;
  const routerId = nodeV4 ?? options.routerId;

  const policies = [...snapshot.bgpPolicies.values()]
    .filter((p) => !p.nodeSelector || matchesSelector(p.nodeSelector, nodeLabels))
    .sort((a, b) => (a.meta.name < b.meta.name ? -1 : a.meta.name > b.meta.name ? 1 : 0));
  const peers = new Map<string, PeerSpec>();
  // No policy for this node: nothing to advertise, and no reason to walk every service.
  if (policies.length === 0) return { peers: [], problems, ...(routerId ? { routerId } : {}) };
  const scope = options.isOurService;
  const programmed = options.isProgrammed ?? (() => true);
  // Store keys order services deterministically (plain comparison: localeCompare costs ~µs per call).
  const services = [...snapshot.services.entries()].filter(([key, s]) => scope(s) && bgpMayAdvertise(s) && programmed(key))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, s]) => s);

  for (const policy of policies) {
    for (const router of policy.virtualRouters) {
      const routes = routesOf(snapshot, policy, router, services, nodeName, problems);
      for (const n of router.neighbors) {
        const address = peerAddressOf(n);
        const id = peerId(router.localASN, address, n.peerPort);
        if (peers.has(id)) {
          problems.push(`BGPPeeringPolicy ${policy.meta.name}: neighbor ${address} (local AS ${router.localASN}) is already configured by another policy; ignored`);
          continue;
        }
        const auth = resolvePassword(snapshot, n, options.secretNamespace);
        if ('problem' in auth) {
          problems.push(`BGPPeeringPolicy ${policy.meta.name}: neighbor ${address}: authSecretRef: ${auth.problem}; neighbor not configured`);
          continue;
        }
        const password = auth.password;
        const families: Afi[] = n.families.map((f) => (f.afi === 'ipv4' ? AFI_IPV4 : AFI_IPV6));
        const spec: PeerSpec = {
          id,
          localAsn: router.localASN,
          peerAsn: n.peerASN,
          peerAddress: address,
          peerPort: n.peerPort,
          holdTimeSeconds: n.holdTimeSeconds,
          keepaliveSeconds: n.keepAliveTimeSeconds,
          connectRetrySeconds: n.connectRetryTimeSeconds,
          ebgpMultihopTtl: n.eBGPMultihopTTL,
          families,
          gracefulRestart: { ...n.gracefulRestart },
          routes: routes.filter((r) => families.includes(familyOf(r.prefix.split('/')[0]!)))
            .map((r) => withNeighborAttributes(r, n, { snapshot, problems, policy })),
        };
        if (n.sourceAddress) spec.localAddress = n.sourceAddress;
        if (n.maxPrefixes !== undefined) spec.maxPrefixes = n.maxPrefixes;
        if (n.maxPrefixAction) spec.maxPrefixAction = n.maxPrefixAction;
        if (n.bfd) {
          spec.bfd = { minRxMs: n.bfd.receiveInterval, minTxMs: n.bfd.transmitInterval, multiplier: n.bfd.detectMultiplier, ...(n.bfd.passiveMode ? { passive: true } : {}) };
        }
        if (password !== undefined) spec.password = password;
        peers.set(id, spec);
      }
    }
  }
  return { peers: [...peers.values()], problems, ...(routerId ? { routerId } : {}) };
}

interface RouteDraft {
  prefix: string;
  service: Service;
  address: string;
}

function routesOf(
  snapshot: SnapshotOf<'EndpointSlice'>, policy: BgpPolicy, router: BgpVirtualRouter, services: Service[], nodeName: string,
  problems: string[],
): (RouteDraft & { drafts: RouteDraft[] })[] {
  const selectAll = policy.flavor === 'pharos';
  let local: Set<string> | undefined;
  const byPrefix = new Map<string, RouteDraft[]>();
  for (const svc of services) {
    if (router.serviceSelector ? !matchesSelectorWith(router.serviceSelector, serviceLabelLookup(svc)) : !selectAll) continue;
    if (svc.externalTrafficPolicy === 'Local') {
      local ??= servicesWithReadyEndpointOn(snapshot.endpointSlices.values(), nodeName);
      if (!local.has(`${svc.meta.namespace}/${svc.meta.name}`)) continue;
    }
    for (const address of advertisedAddresses(svc, router)) {
      let prefix: string;
      try {
        prefix = canonicalPrefix(address);
      } catch {
        problems.push(`Service ${svc.meta.namespace}/${svc.meta.name}: ${JSON.stringify(address)} is not an IP address; not advertised`);
        continue;
      }
      const list = byPrefix.get(prefix) ?? byPrefix.set(prefix, []).get(prefix)!;
      list.push({ prefix, service: svc, address });
    }
  }
  return [...byPrefix.values()].map((drafts) => ({ ...drafts[0]!, drafts }));
}

interface AttributeContext {
  snapshot: SnapshotOf<'LoadBalancerIPPool'>;
  problems: string[];
  policy: BgpPolicy;
}

/** Applies a neighbor's advertisedPathAttributes to one route (all services sharing the address count). */
function withNeighborAttributes(route: RouteDraft & { drafts: RouteDraft[] }, n: BgpNeighbor, ctx: AttributeContext): RouteSpec {
  const services = [...new Set(route.drafts.map((d) => `${d.service.meta.namespace}/${d.service.meta.name}`))];
  const spec: RouteSpec = { prefix: route.prefix, communities: [], largeCommunities: [], services };
  for (const attrs of n.advertisedPathAttributes) {
    let hit = false;
    if (attrs.selectorType === 'Service') {
      hit = route.drafts.some((d) => !attrs.selector || matchesSelectorWith(attrs.selector, serviceLabelLookup(d.service)));
    } else if (attrs.selectorType === 'LoadBalancerIPPool' || attrs.selectorType === 'CiliumLoadBalancerIPPool') {
      hit = poolsContaining(ctx.snapshot.pools.values(), route.address).some((p) => !attrs.selector || matchesSelector(attrs.selector, p.meta.labels));
    }
    if (!hit) continue;
    for (const c of attrs.communities.standard) {
      try {
        spec.communities.push(parseCommunity(c));
      } catch (e) {
        ctx.problems.push(`BGPPeeringPolicy ${ctx.policy.meta.name}: ${(e as Error).message}`);
      }
    }
    for (const c of attrs.communities.large) spec.largeCommunities.push(parseLargeCommunity(c));
    if (attrs.localPreference !== undefined) spec.localPreference = Math.max(spec.localPreference ?? 0, attrs.localPreference);
  }
  return spec;
}
