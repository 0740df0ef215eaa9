/**
 * BGPPeeringPolicy (pharos) and CiliumBGPPeeringPolicy: virtual routers,
 * neighbors (timers, auth, families, BFD, graceful restart), path attributes
 * and communities.
 */
import { type Context, readMeta, readSelector } from './common.js';
import { FieldReader, show } from '../field-reader.js';
import { addressFamily, checkSubdomain, cidrFamily } from '../syntax.js';
import { WELL_KNOWN_COMMUNITY_NAMES } from '../communities.js';
import type { BgpCommunities, BgpNeighbor, BgpNeighborBfd, BgpPathAttributes, BgpPolicy, BgpVirtualRouter } from '../types.js';

const MAX_ASN = 4294967295;

export function parseBgpPolicyObject(ctx: Context): BgpPolicy {
  const meta = readMeta(ctx, 'cluster');
  const spec = ctx.root.get('spec');
  spec.object();
  if (ctx.flavor === 'pharos') spec.onlyKeys(['nodeSelector', 'virtualRouters']);
  const virtualRouters = readDistinctList(spec.get('virtualRouters'), {
    what: 'virtual router',
    read: (r) => readVirtualRouter(r, ctx),
    keyField: 'localASN',
    key: (vr) => (vr.localASN === 0 ? undefined : vr.localASN), // 0: its localASN was bad (reported)
    duplicate: (prev, vr) => `duplicate of virtualRouters[${prev}].localASN (${vr.localASN})`,
  });
  const policy: BgpPolicy = { kind: 'BGPPeeringPolicy', meta, flavor: ctx.flavor, virtualRouters };
  const nodeSelector = spec.recover(() => readSelector(spec.get('nodeSelector')), undefined);
  if (nodeSelector) policy.nodeSelector = nodeSelector;
  return policy;
}

/**
 * A list of at least one item (`what` names it), each read by `read`; a bad
 * item is reported and left out. An item whose key another item before it
 * has is reported at its `keyField` (an undefined key is not compared).
 */
function readDistinctList<T>(list: FieldReader, o: {
  what: string;
  read: (item: FieldReader) => T | undefined;
  keyField: string;
  key: (item: T) => string | number | undefined;
  duplicate: (previousIndex: number, item: T) => string;
}): T[] {
  const readers = list.recover(() => list.list(), []);
  // Index for index with readers; undefined where an item was bad (reported).
  const read = readers.map((r) => r.recover(() => o.read(r), undefined));
  if (readers.length === 0 && (list.absent || Array.isArray(list.value))) list.report(`at least one ${o.what} is required`);
  const seen = new Map<string | number, number>();
  read.forEach((item, i) => {
    if (item === undefined) return;
    const key = o.key(item);
    if (key === undefined) return;
    const prev = seen.get(key);
    if (prev !== undefined) readers[i]!.get(o.keyField).report(o.duplicate(prev, item));
    seen.set(key, i);
  });
  return read.filter((item): item is T => item !== undefined);
}

function readVirtualRouter(r: FieldReader, ctx: Context): BgpVirtualRouter {
  r.object();
  if (ctx.flavor === 'pharos') {
    r.onlyKeys(['localASN', 'exportPodCIDR', 'serviceSelector', 'serviceAdvertisements', 'neighbors']);
  }
  const localASN = r.recover(() => r.get('localASN').integer(1, MAX_ASN), 0);
  const adsReader = r.get('serviceAdvertisements');
  // Cilium's default when the list is absent: LoadBalancer IPs only.
  let serviceAdvertisements: BgpVirtualRouter['serviceAdvertisements'] = ['LoadBalancerIP'];
  if (!adsReader.absent) {
    const ads: BgpVirtualRouter['serviceAdvertisements'] = [];
    adsReader.items((item) => {
      // Cilium also knows ClusterIP (skipped with a warning); pharos' own kind does not.
      const kind = item.oneOf<'LoadBalancerIP' | 'ExternalIP' | 'ClusterIP'>(
        ctx.flavor === 'cilium' ? ['LoadBalancerIP', 'ExternalIP', 'ClusterIP'] : ['LoadBalancerIP', 'ExternalIP'],
      );
      if (kind === 'ClusterIP') {
        ctx.warn(`${item.path}: ClusterIP advertisement is not supported by pharos; skipped`);
        return;
      }
      if (!ads.includes(kind)) ads.push(kind);
    });
    serviceAdvertisements = ads;
  }
  if (ctx.flavor === 'cilium' && !r.get('podIPPoolSelector').absent) {
    ctx.warn(`${r.path}.podIPPoolSelector: multi-pool pod IPAM is not supported by pharos; ignored`);
  }
  const neighbors = readDistinctList(r.get('neighbors'), {
    what: 'neighbor',
    read: (n) => readNeighbor(n, ctx),
    keyField: 'peerAddress',
    key: (n) => n.peerAddress.split('/')[0]!,
    duplicate: (prev) => `duplicate of neighbors[${prev}].peerAddress`,
  });
  const router: BgpVirtualRouter = {
    localASN,
    exportPodCIDR: r.recover(() => r.get('exportPodCIDR').boolean(false), false),
    serviceAdvertisements,
    neighbors,
  };
  const serviceSelector = r.recover(() => readSelector(r.get('serviceSelector')), undefined);
  if (serviceSelector) router.serviceSelector = serviceSelector;
  return router;
}

/**
 * The neighbour fields of Cilium's CiliumBGPPeeringPolicy (v2alpha1) that
 * pharos reads with Cilium's meaning: `pharos convert` carries them over
 * (advertisedPathAttributes translated), the pharos kind accepts them.
 */
export const CILIUM_NEIGHBOR_FIELDS = [
  'peerAddress',
  'peerASN',
  'peerPort',
  'eBGPMultihopTTL',
  'connectRetryTimeSeconds',
  'holdTimeSeconds',
  'keepAliveTimeSeconds',
  'gracefulRestart',
  'families',
  'advertisedPathAttributes',
  'authSecretRef',
] as const;

/** A pharos BGPPeeringPolicy neighbour: Cilium's fields and pharos' own. */
const PHAROS_NEIGHBOR_FIELDS = [...CILIUM_NEIGHBOR_FIELDS, 'password', 'sourceAddress', 'maxPrefixes', 'maxPrefixAction', 'bfd'] as const;

function readNeighbor(r: FieldReader, ctx: Context): BgpNeighbor | undefined {
  r.object();
  if (ctx.flavor === 'pharos') r.onlyKeys(PHAROS_NEIGHBOR_FIELDS);
  const peerReader = r.get('peerAddress');
  // Undefined when bad (reported): the checks against it are skipped.
  const peerAddress = peerReader.recover(() => readPeerAddress(peerReader), undefined);
  const holdTimeSeconds = r.recover(() => r.get('holdTimeSeconds').integer(3, 65535, 90), undefined);
  const keepAliveReader = r.get('keepAliveTimeSeconds');
  const keepAliveTimeSeconds = keepAliveReader.recover(() => keepAliveReader.integer(1, 65535, 30), undefined);
  if (keepAliveTimeSeconds !== undefined && holdTimeSeconds !== undefined && keepAliveTimeSeconds > holdTimeSeconds) {
    keepAliveReader.report(`${keepAliveTimeSeconds} must not exceed holdTimeSeconds (${holdTimeSeconds})`);
  }
  const gr = r.get('gracefulRestart');
  const grUsable = gr.recover(() => {
    if (!gr.absent) {
      gr.object();
      if (ctx.flavor === 'pharos') gr.onlyKeys(['enabled', 'restartTimeSeconds']);
    }
    return true;
  }, false);
  const field = <T>(read: () => T, fallback: T): T => r.recover(read, fallback);
  const neighbor: BgpNeighbor = {
    peerAddress: peerAddress ?? '',
    peerASN: field(() => r.get('peerASN').integer(1, MAX_ASN), 0),
    peerPort: field(() => r.get('peerPort').integer(1, 65535, 179), 179),
    eBGPMultihopTTL: field(() => r.get('eBGPMultihopTTL').integer(1, 255, 1), 1),
    connectRetryTimeSeconds: field(() => r.get('connectRetryTimeSeconds').integer(1, 2147483647, 120), 120),
    holdTimeSeconds: holdTimeSeconds ?? 90,
    keepAliveTimeSeconds: keepAliveTimeSeconds ?? 30,
    // RFC 4724: the restart time is a 12-bit field.
    gracefulRestart: {
      enabled: grUsable ? field(() => gr.get('enabled').boolean(false), false) : false,
      restartTimeSeconds: grUsable ? field(() => gr.get('restartTimeSeconds').integer(1, 4095, 120), 120) : 120,
    },
    families: field(() => readFamilies(r.get('families'), ctx), []),
    advertisedPathAttributes: r
      .get('advertisedPathAttributes')
      .items((a) => readPathAttributes(a, ctx))
      .flat(),
  };
  const secretReader = r.get('authSecretRef');
  const authSecretRef = secretReader.recover(() => secretReader.optString(), undefined);
  if (authSecretRef !== undefined) {
    const problem = checkSubdomain(authSecretRef);
    if (problem) secretReader.report(problem);
    neighbor.authSecretRef = authSecretRef;
  }
  if (ctx.flavor === 'pharos') {
    const passwordReader = r.get('password');
    const password = passwordReader.recover(() => passwordReader.optString(), undefined);
    if (password !== undefined) {
      if (authSecretRef !== undefined) passwordReader.report('give either password or authSecretRef, not both');
      // TCP MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
      else if (Buffer.byteLength(password) > 80) passwordReader.report('must be at most 80 bytes (TCP MD5 key limit)');
      neighbor.password = password;
    }
    const sourceReader = r.get('sourceAddress');
    const sourceAddress = sourceReader.recover(() => sourceReader.optString(), undefined);
    if (sourceAddress !== undefined) {
      const family = addressFamily(sourceAddress);
      if (!family) sourceReader.report(`${show(sourceAddress)} is not an IP address`);
      else if (peerAddress !== undefined && family !== addressFamily(peerAddress.split('/')[0]!)) {
        sourceReader.report(`${show(sourceAddress)} is ${family} but peerAddress is not`);
      }
      neighbor.sourceAddress = sourceAddress;
    }
    // Received-prefix limit (pharos extension; FRR `maximum-prefix`, bird `receive limit`).
    const maxPrefixes = field(() => r.get('maxPrefixes').optInteger(1, 4294967295), undefined);
    if (maxPrefixes !== undefined) neighbor.maxPrefixes = maxPrefixes;
    const actionReader = r.get('maxPrefixAction');
    if (!actionReader.absent) {
      const action = actionReader.recover(() => actionReader.oneOf(['restart', 'drop'] as const), undefined);
      if (action !== undefined) neighbor.maxPrefixAction = action;
    }
    const bfdReader = r.get('bfd');
    if (!bfdReader.absent) {
      const bfd = bfdReader.recover(() => readBfd(bfdReader), undefined);
      if (bfd) neighbor.bfd = bfd;
    }
  }
  // Without a usable peer address (reported) it is left out, and so out of the duplicate check.
  return peerAddress === undefined ? undefined : neighbor;
}

/**
 * A neighbor's `bfd` block (pharos extension; field names and ranges of
 * MetalLB's BFDProfile, whose profiles `pharos convert` copies here).
 * `enabled: false` keeps the block but runs no BFD.
 */
function readBfd(r: FieldReader): BgpNeighborBfd | undefined {
  r.object();
  r.onlyKeys(['enabled', 'receiveInterval', 'transmitInterval', 'detectMultiplier', 'passiveMode']);
  const enabled = r.recover(() => r.get('enabled').boolean(true), true);
  // 10 ms is FRR's floor (and MetalLB's); a JS event loop cannot promise much better anyway.
  const bfd: BgpNeighborBfd = {
    receiveInterval: r.recover(() => r.get('receiveInterval').integer(10, 60000, 300), 300),
    transmitInterval: r.recover(() => r.get('transmitInterval').integer(10, 60000, 300), 300),
    detectMultiplier: r.recover(() => r.get('detectMultiplier').integer(2, 255, 3), 3),
  };
  if (r.recover(() => r.get('passiveMode').boolean(false), false)) bfd.passiveMode = true;
  return enabled ? bfd : undefined;
}

/** `address` or `address/32` (`/128`): one host. */
function readPeerAddress(r: FieldReader): string {
  const peerAddress = r.nonEmptyString();
  if (peerAddress.includes('/')) {
    const family = cidrFamily(peerAddress);
    if (!family) r.fail(`${show(peerAddress)} is not an address or a CIDR`);
    const length = Number(peerAddress.split('/')[1]);
    if (length !== (family === 'IPv4' ? 32 : 128)) {
      r.fail(`${show(peerAddress)} must name one host (/${family === 'IPv4' ? 32 : 128})`);
    }
  } else if (!addressFamily(peerAddress)) {
    r.fail(`${show(peerAddress)} is not an IP address`);
  }
  return peerAddress;
}

function readFamilies(r: FieldReader, ctx: Context): BgpNeighbor['families'] {
  // Cilium: no families listed = IPv4 and IPv6 unicast.
  if (r.absent || r.list().length === 0) {
    return [
      { afi: 'ipv4', safi: 'unicast' },
      { afi: 'ipv6', safi: 'unicast' },
    ];
  }
  const families: BgpNeighbor['families'] = [];
  r.items((item) => {
    item.object();
    if (ctx.flavor === 'pharos') item.onlyKeys(['afi', 'safi']);
    const afi = item.get('afi').oneOf(['ipv4', 'ipv6'] as const);
    const safi = item.get('safi').oneOf(['unicast'] as const);
    if (families.some((f) => f.afi === afi && f.safi === safi)) item.fail(`${afi}/${safi} is listed twice`);
    families.push({ afi, safi });
  });
  return families;
}

function readPathAttributes(r: FieldReader, ctx: Context): BgpPathAttributes[] {
  r.object();
  if (ctx.flavor === 'pharos') r.onlyKeys(['selectorType', 'selector', 'communities', 'localPreference']);
  const typeReader = r.get('selectorType');
  const allowed =
    ctx.flavor === 'pharos'
      ? (['PodCIDR', 'LoadBalancerIPPool', 'Service'] as const)
      : (['PodCIDR', 'CiliumLoadBalancerIPPool', 'CiliumPodIPPool'] as const);
  const selectorType = typeReader.oneOf<string>(allowed);
  if (selectorType === 'CiliumPodIPPool') {
    ctx.warn(`${r.path}: selectorType CiliumPodIPPool is not supported by pharos; skipped`);
    return [];
  }
  const attributes: BgpPathAttributes = {
    selectorType: selectorType as BgpPathAttributes['selectorType'],
    communities: r.recover(() => readCommunities(r.get('communities'), ctx), { standard: [], large: [] }),
  };
  const selector = r.recover(() => readSelector(r.get('selector')), undefined);
  if (selector) attributes.selector = selector;
  const localPreference = r.recover(() => r.get('localPreference').optInteger(0, 4294967295), undefined);
  if (localPreference !== undefined) attributes.localPreference = localPreference;
  return [attributes];
}

function readCommunities(r: FieldReader, ctx: Context): BgpCommunities {
  if (r.absent) return { standard: [], large: [] };
  r.object();
  if (ctx.flavor === 'pharos') r.onlyKeys(['standard', 'large', 'wellKnown']);
  const standard = r.get('standard').items((item) => {
    const text = item.string();
    if (!isStandardCommunity(text) && !WELL_KNOWN_COMMUNITY_NAMES.includes(text)) {
      item.report(`${show(text)} is not a community (ASN:value with each part 0..65535, a 32-bit number, or a well-known name)`);
    }
    return text;
  });
  standard.push(...r.get('wellKnown').items((item) => item.oneOf(WELL_KNOWN_COMMUNITY_NAMES)));
  const large = r.get('large').items((item) => {
    const text = item.string();
    const parts = text.split(':');
    if (parts.length !== 3 || !parts.every((p) => /^(0|[1-9][0-9]{0,9})$/.test(p) && Number(p) <= MAX_ASN)) {
      item.report(`${show(text)} is not a large community (global:local1:local2, each 0..4294967295)`);
    }
    return text;
  });
  return { standard, large };
}

function isStandardCommunity(text: string): boolean {
  const decimal = /^(0|[1-9][0-9]{0,9})$/;
  if (decimal.test(text)) return Number(text) <= MAX_ASN;
  const parts = text.split(':');
  return parts.length === 2 && parts.every((p) => decimal.test(p) && Number(p) <= 65535);
}
