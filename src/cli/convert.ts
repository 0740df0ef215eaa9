/**
 * `pharos convert FILE...`: Cilium and MetalLB load-balancer manifests →
 * pharos manifests (YAML on stdout), and a plain list of what could not be
 * carried over (stderr).
 *
 * Cilium's kinds have the same shape as pharos' (renamed kind and group, a
 * few options pharos lacks). MetalLB's model differs: pools are picked by
 * name from advertisements, while pharos policies select services. Where the
 * meaning cannot be kept exactly, the converter chooses the narrower reading
 * (a service without an address is visible; one announced from the wrong
 * place is not) and says so.
 *
 * Pure conversion in `convertDocuments`; `run` only reads files and prints.
 */
import { readFile } from 'node:fs/promises';
import { Document, parseAllDocuments } from 'yaml';
import { PHAROS_API_VERSION, parseObject } from '../model/parse.js';
import { CILIUM_NEIGHBOR_FIELDS } from '../model/parse/bgp-policy.js';

/** One input document with where it came from. */
export interface InputDocument {
  file: string;
  index: number;
  value: unknown;
}

export interface OutputObject {
  /** `file doc N Kind/name` of the input(s) it came from, for the header comment. */
  from: string;
  object: Record<string, any>;
}

export interface ConvertNote {
  /** `file doc N Kind/name` */
  source: string;
  message: string;
}

export interface ConvertResult {
  objects: OutputObject[];
  notes: ConvertNote[];
}

/** Label the converter puts on pools converted from MetalLB, so BGP attributes can pick pools by name. */
export const POOL_NAME_LABEL = 'lb.pharos.io/pool';
const NAMESPACE_PSEUDO_LABEL = 'io.kubernetes.service.namespace';
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

type Raw = Record<string, any>;

interface Item {
  doc: InputDocument;
  raw: Raw;
  source: string;
}

function isRecord(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sourceOf(doc: InputDocument, raw: Raw): string {
  return `${doc.file} doc ${doc.index} ${String(raw.kind)}/${String(raw.metadata?.name ?? '?')}`;
}

/** Name, labels and annotations; drops server-set fields, namespace (pharos kinds are cluster-scoped) and kubectl's bookkeeping. */
function cleanMeta(raw: Raw, extraLabels: Record<string, string> = {}): Raw {
  const meta: Raw = { name: raw.metadata?.name };
  const labels = { ...(isRecord(raw.metadata?.labels) ? raw.metadata.labels : {}), ...extraLabels };
  if (Object.keys(labels).length) meta.labels = labels;
  if (isRecord(raw.metadata?.annotations)) {
    const annotations = { ...raw.metadata.annotations };
    delete annotations[LAST_APPLIED];
    if (Object.keys(annotations).length) meta.annotations = annotations;
  }
  return meta;
}

function copySelector(sel: unknown): Raw | undefined {
  if (!isRecord(sel)) return undefined;
  const out: Raw = {};
  if (isRecord(sel.matchLabels) && Object.keys(sel.matchLabels).length) out.matchLabels = { ...sel.matchLabels };
  if (Array.isArray(sel.matchExpressions) && sel.matchExpressions.length) {
    out.matchExpressions = sel.matchExpressions.map((e: Raw) => ({ ...e, ...(Array.isArray(e.values) ? { values: [...e.values] } : {}) }));
  }
  return out;
}

/** Go `time.Duration` text (`90s`, `1m30s`, `2h`) → whole seconds; undefined when it is not one. */
export function durationSeconds(text: unknown): number | undefined {
  if (typeof text === 'number') return text;
  if (typeof text !== 'string' || text === '') return undefined;
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001, us: 1e-6, µs: 1e-6, ns: 1e-9 };
  let total = 0;
  let rest = text;
  while (rest) {
    const m = /^(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/.exec(rest);
    if (!m) return undefined;
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------- Cilium

function convertCiliumPool(item: Item): Raw {
  const spec = isRecord(item.raw.spec) ? item.raw.spec : {};
  const blocks = [...(Array.isArray(spec.blocks) ? spec.blocks : []), ...(Array.isArray(spec.cidrs) ? spec.cidrs : [])].map((b: Raw) => {
    const out: Raw = {};
    for (const k of ['cidr', 'start', 'stop']) if (b?.[k] !== undefined) out[k] = b[k];
    return out;
  });
  const out: Raw = { blocks };
  const selector = copySelector(spec.serviceSelector);
  if (selector) out.serviceSelector = selector;
  if (spec.disabled !== undefined) out.disabled = spec.disabled;
  if (spec.allowFirstLastIPs !== undefined) out.allowFirstLastIPs = spec.allowFirstLastIPs;
  return { apiVersion: PHAROS_API_VERSION, kind: 'LoadBalancerIPPool', metadata: cleanMeta(item.raw), spec: out };
}

function convertCiliumL2(item: Item): Raw {
  const spec = isRecord(item.raw.spec) ? item.raw.spec : {};
  const out: Raw = {};
  const serviceSelector = copySelector(spec.serviceSelector);
  if (serviceSelector) out.serviceSelector = serviceSelector;
  const nodeSelector = copySelector(spec.nodeSelector);
  if (nodeSelector) out.nodeSelector = nodeSelector;
  if (Array.isArray(spec.interfaces)) out.interfaces = [...spec.interfaces];
  // Written out: Cilium's booleans default to false, pharos' loadBalancerIPs to true.
  out.loadBalancerIPs = spec.loadBalancerIPs === true;
  out.externalIPs = spec.externalIPs === true;
  return { apiVersion: PHAROS_API_VERSION, kind: 'L2AnnouncementPolicy', metadata: cleanMeta(item.raw), spec: out };
}

function convertCiliumBgp(item: Item, note: (m: string) => void): Raw {
  const spec = isRecord(item.raw.spec) ? item.raw.spec : {};
  const routers = (Array.isArray(spec.virtualRouters) ? spec.virtualRouters : []).map((vr: Raw, i: number) => {
    const out: Raw = { localASN: vr.localASN };
    if (vr.exportPodCIDR !== undefined) out.exportPodCIDR = vr.exportPodCIDR;
    const serviceSelector = copySelector(vr.serviceSelector);
    if (serviceSelector) out.serviceSelector = serviceSelector;
    if (vr.podIPPoolSelector) note(`virtualRouters[${i}].podIPPoolSelector: multi-pool pod IPAM is not supported; dropped`);
    if (Array.isArray(vr.serviceAdvertisements)) {
      const kept = vr.serviceAdvertisements.filter((a: unknown) => a !== 'ClusterIP');
      if (kept.length !== vr.serviceAdvertisements.length) note(`virtualRouters[${i}].serviceAdvertisements: ClusterIP is not advertised by pharos; dropped`);
      out.serviceAdvertisements = kept;
    }
    out.neighbors = (Array.isArray(vr.neighbors) ? vr.neighbors : []).map((n: Raw, j: number) => {
      const where = `virtualRouters[${i}].neighbors[${j}]`;
      const neighbor: Raw = {};
      for (const k of CILIUM_NEIGHBOR_FIELDS) if (k !== 'advertisedPathAttributes' && n[k] !== undefined) neighbor[k] = structuredClone(n[k]);
      if (Array.isArray(n.families)) {
        neighbor.families = n.families.filter((f: Raw) => {
          const ok = (f.afi === 'ipv4' || f.afi === 'ipv6') && f.safi === 'unicast';
          if (!ok) note(`${where}.families: ${String(f.afi)}/${String(f.safi)} is not supported (IPv4/IPv6 unicast only); dropped`);
          return ok;
        });
        if (neighbor.families.length === 0) delete neighbor.families;
      }
      if (n.authSecretRef !== undefined) {
        note(`${where}.authSecretRef: Cilium reads "${String(n.authSecretRef)}" from its BGP secrets namespace (kube-system by default); pharos reads it from the agent's namespace: copy the Secret there`);
      }
      if (Array.isArray(n.advertisedPathAttributes)) {
        neighbor.advertisedPathAttributes = n.advertisedPathAttributes.flatMap((a: Raw, k: number) => {
          if (a.selectorType === 'CiliumPodIPPool') {
            note(`${where}.advertisedPathAttributes[${k}]: selectorType CiliumPodIPPool is not supported; dropped`);
            return [];
          }
          const attr: Raw = { selectorType: a.selectorType === 'CiliumLoadBalancerIPPool' ? 'LoadBalancerIPPool' : a.selectorType };
          const selector = copySelector(a.selector);
          if (selector) attr.selector = selector;
          if (isRecord(a.communities)) attr.communities = structuredClone(a.communities);
          if (a.localPreference !== undefined) attr.localPreference = a.localPreference;
          return [attr];
        });
      }
      return neighbor;
    });
    return out;
  });
  const out: Raw = {};
  const nodeSelector = copySelector(spec.nodeSelector);
  if (nodeSelector) out.nodeSelector = nodeSelector;
  out.virtualRouters = routers;
  return { apiVersion: PHAROS_API_VERSION, kind: 'BGPPeeringPolicy', metadata: cleanMeta(item.raw), spec: out };
}

// ---------------------------------------------------------------- MetalLB

interface MetalPool {
  item: Item;
  out: Raw;
  /** The converted serviceSelector, when the pool has one. */
  selector?: Raw;
}

function convertMetalPool(item: Item, note: (m: string) => void): MetalPool {
  const spec = isRecord(item.raw.spec) ? item.raw.spec : {};
  const blocks = (Array.isArray(spec.addresses) ? spec.addresses : []).map((a: unknown) => {
    const text = String(a).trim();
    const dash = text.indexOf('-');
    if (dash > 0) return { start: text.slice(0, dash).trim(), stop: text.slice(dash + 1).trim() };
    if (text.includes('/')) return { cidr: text };
    return { start: text };
  });
  const out: Raw = { blocks };
  if (spec.autoAssign === false) {
    note('autoAssign: false has no pharos equivalent: the pool now hands out addresses to every service it selects (give it a serviceSelector to narrow it)');
  }
  if (spec.avoidBuggyIPs === true) {
    note('avoidBuggyIPs: true (skip every .0 and .255) is not carried over; allowFirstLastIPs: "No" skips only the first and last address of each CIDR');
  }
  let selector: Raw | undefined;
  const alloc = isRecord(spec.serviceAllocation) ? spec.serviceAllocation : undefined;
  if (alloc) {
    if (alloc.priority !== undefined) note(`serviceAllocation.priority (${String(alloc.priority)}) is not carried over: pharos pools have no priority`);
    if (Array.isArray(alloc.namespaceSelectors) && alloc.namespaceSelectors.length) {
      note('serviceAllocation.namespaceSelectors is not carried over: pharos does not read namespace labels (list the namespaces instead)');
    }
    const selectors = Array.isArray(alloc.serviceSelectors) ? alloc.serviceSelectors : [];
    if (selectors.length > 1) {
      note(`serviceAllocation.serviceSelectors: ${selectors.length} selectors OR-ed cannot be expressed in one pharos selector; only the first is kept (narrower)`);
    }
    selector = copySelector(selectors[0]) ?? undefined;
    if (Array.isArray(alloc.namespaces) && alloc.namespaces.length) {
      selector ??= {};
      selector.matchExpressions = [
        ...(selector.matchExpressions ?? []),
        { key: NAMESPACE_PSEUDO_LABEL, operator: 'In', values: [...alloc.namespaces] },
      ];
    }
    if (selector) out.serviceSelector = selector;
  }
  return { item, out, ...(selector ? { selector } : {}) };
}

/**
 * The service selector that matches "services with an address from these pools",
 * as near as pharos can say it: all services when every pool is meant; the
 * pool's own selector when one selecting pool is named; otherwise all services, noted.
 */
function servicesOfPools(poolNames: string[] | undefined, pools: Map<string, MetalPool>, what: string, note: (m: string) => void): Raw | undefined {
  if (!poolNames || poolNames.length === 0 || poolNames.length === pools.size) return undefined;
  if (poolNames.length === 1) {
    const pool = pools.get(poolNames[0]!);
    if (pool?.selector) return structuredClone(pool.selector);
  }
  note(`${what}: pharos selects services, not pools; services from pools other than ${poolNames.join(', ')} are covered too`);
  return undefined;
}

function convertL2Advertisement(item: Item, pools: Map<string, MetalPool>, note: (m: string) => void): Raw[] {
  const spec = isRecord(item.raw.spec) ? item.raw.spec : {};
  const out: Raw = {};
  if (Array.isArray(spec.ipAddressPoolSelectors) && spec.ipAddressPoolSelectors.length) {
    note('ipAddressPoolSelectors is not carried over (pharos L2 policies select services)');
  }
  const serviceSelector = servicesOfPools(spec.ipAddressPools, pools, 'ipAddressPools', note);
  if (serviceSelector) out.serviceSelector = serviceSelector;
  if (Array.isArray(spec.interfaces) && spec.interfaces.length) {
    out.interfaces = spec.interfaces.map((name: unknown) => `^${escapeRegex(String(name))}$`);
  }
  out.loadBalancerIPs = true;
  out.externalIPs = false;
  const nodeSelectors = Array.isArray(spec.nodeSelectors) ? spec.nodeSelectors.map(copySelector).filter(Boolean) : [];
  const name = String(item.raw.metadata?.name);
  if (nodeSelectors.length <= 1) {
    if (nodeSelectors[0]) out.nodeSelector = nodeSelectors[0];
    return [{ apiVersion: PHAROS_API_VERSION, kind: 'L2AnnouncementPolicy', metadata: cleanMeta(item.raw), spec: out }];
  }
  // Several node selectors are OR-ed in MetalLB; pharos policies OR among themselves, so one policy each.
  return nodeSelectors.map((sel: Raw | undefined, i: number) => ({
    apiVersion: PHAROS_API_VERSION,
    kind: 'L2AnnouncementPolicy',
    metadata: { ...cleanMeta(item.raw), name: `${name}-${i + 1}` },
    spec: { ...structuredClone(out), nodeSelector: sel },
  }));
}

const WELL_KNOWN_ALIASES: Record<string, string> = {
  'no-export': 'no-export',
  'no-advertise': 'no-advertise',
  'no-export-subconfed': 'no-export-subconfed',
  'no-peer': 'no-peer',
  blackhole: 'blackhole',
};

function convertMetalBgp(
  peers: Item[],
  adverts: Item[],
  pools: Map<string, MetalPool>,
  communityAliases: Map<string, string>,
  noteFor: (item: Item) => (m: string) => void,
  bfdProfiles: Map<string, Item> = new Map(),
): { objects: OutputObject[]; referencedPools: Set<string> } {
  const referencedPools = new Set<string>();
  // Path attributes per peer name ('*' = every peer), from the advertisements.
  const attributesFor = new Map<string, Raw[]>();
  let serviceSelector: Raw | undefined;
  let anyAdvert = false;
  let selectorsDiffer = false;
  for (const ad of adverts) {
    const note = noteFor(ad);
    const spec = isRecord(ad.raw.spec) ? ad.raw.spec : {};
    anyAdvert = true;
    const poolNames: string[] | undefined = Array.isArray(spec.ipAddressPools) && spec.ipAddressPools.length ? spec.ipAddressPools : undefined;
    const sel = servicesOfPools(poolNames, pools, 'ipAddressPools', note) ?? {};
    if (serviceSelector && JSON.stringify(serviceSelector) !== JSON.stringify(sel)) selectorsDiffer = true;
    serviceSelector ??= sel;
    if (Array.isArray(spec.ipAddressPoolSelectors) && spec.ipAddressPoolSelectors.length) note('ipAddressPoolSelectors is not carried over');
    if (Array.isArray(spec.nodeSelectors) && spec.nodeSelectors.length) {
      note('nodeSelectors is not carried over: every node selected by the peering policy advertises');
    }
    if (spec.aggregationLength !== undefined && spec.aggregationLength !== 32) note(`aggregationLength ${String(spec.aggregationLength)} is not carried over: pharos advertises /32 routes`);
    if (spec.aggregationLengthV6 !== undefined && spec.aggregationLengthV6 !== 128) note(`aggregationLengthV6 ${String(spec.aggregationLengthV6)} is not carried over: pharos advertises /128 routes`);
    const standard: string[] = [];
    const large: string[] = [];
    for (const c of Array.isArray(spec.communities) ? spec.communities : []) {
      const text = communityAliases.get(String(c)) ?? WELL_KNOWN_ALIASES[String(c)] ?? String(c);
      if (/^large:/.test(text)) large.push(text.slice(6));
      else if (/^\d+:\d+$/.test(text) || Object.values(WELL_KNOWN_ALIASES).includes(text)) standard.push(text);
      else note(`community "${String(c)}" is an alias with no Community object in the input; dropped`);
    }
    if (standard.length || large.length || spec.localPref !== undefined) {
      const attr: Raw = { selectorType: 'LoadBalancerIPPool' };
      if (poolNames) {
        for (const p of poolNames) referencedPools.add(p);
        attr.selector = { matchExpressions: [{ key: POOL_NAME_LABEL, operator: 'In', values: [...poolNames] }] };
      }
      if (standard.length || large.length) attr.communities = { ...(standard.length ? { standard } : {}), ...(large.length ? { large } : {}) };
      if (spec.localPref !== undefined) attr.localPreference = spec.localPref;
      const targets: string[] = Array.isArray(spec.peers) && spec.peers.length ? spec.peers : ['*'];
      for (const t of targets) attributesFor.set(t, [...(attributesFor.get(t) ?? []), attr]);
    }
    if (Array.isArray(spec.peers) && spec.peers.length) {
      note(`peers: pharos advertises the selected services to every neighbor; only the communities/local-pref are limited to ${spec.peers.join(', ')}`);
    }
  }
  if (selectorsDiffer && adverts[0]) {
    noteFor(adverts[0])('advertisements select different pools; the converted policy advertises the services of the first one only (narrower)');
  }

  // Group peers by node selector: one BGPPeeringPolicy each, one virtual router per local ASN.
  const groups = new Map<string, { nodeSelector?: Raw; peers: Item[] }>();
  for (const peer of peers) {
    const note = noteFor(peer);
    const spec = isRecord(peer.raw.spec) ? peer.raw.spec : {};
    const selectors = Array.isArray(spec.nodeSelectors) ? spec.nodeSelectors : [];
    if (selectors.length > 1) note(`nodeSelectors: ${selectors.length} selectors OR-ed cannot be expressed in one policy; only the first is kept (narrower)`);
    const nodeSelector = selectors[0] ? copySelector(selectors[0]) : undefined;
    const key = JSON.stringify(nodeSelector ?? null);
    const group = groups.get(key) ?? { ...(nodeSelector ? { nodeSelector } : {}), peers: [] };
    group.peers.push(peer);
    groups.set(key, group);
  }

  const objects: OutputObject[] = [];
  let n = 0;
  for (const group of groups.values()) {
    n++;
    const routers = new Map<number, Raw[]>();
    for (const peer of group.peers) {
      const note = noteFor(peer);
      const spec = isRecord(peer.raw.spec) ? peer.raw.spec : {};
      const name = String(peer.raw.metadata?.name);
      const neighbor: Raw = {
        peerAddress: spec.peerAddress,
        peerASN: spec.peerASN,
      };
      if (spec.peerPort !== undefined && spec.peerPort !== 179) neighbor.peerPort = spec.peerPort;
      if (spec.ebgpMultiHop === true) neighbor.eBGPMultihopTTL = 255;
      const hold = durationSeconds(spec.holdTime);
      const keepalive = durationSeconds(spec.keepaliveTime);
      const connect = durationSeconds(spec.connectTime);
      if (spec.holdTime !== undefined && hold === undefined) note(`holdTime "${String(spec.holdTime)}" is not a duration; default kept`);
      if (hold !== undefined) neighbor.holdTimeSeconds = hold;
      if (keepalive !== undefined) neighbor.keepAliveTimeSeconds = keepalive;
      // MetalLB's keepalive defaults to a third of the hold time (pharos' fixed 30 s could exceed a short hold time).
      else if (hold !== undefined) neighbor.keepAliveTimeSeconds = Math.max(1, Math.floor(hold / 3));
      if (connect !== undefined) neighbor.connectRetryTimeSeconds = Math.max(1, connect);
      if (spec.enableGracefulRestart === true) neighbor.gracefulRestart = { enabled: true };
      if (spec.sourceAddress) neighbor.sourceAddress = spec.sourceAddress;
      if (spec.password) neighbor.password = spec.password;
      if (isRecord(spec.passwordSecret) && spec.passwordSecret.name) {
        neighbor.authSecretRef = spec.passwordSecret.name;
        note(`passwordSecret: pharos reads Secret "${String(spec.passwordSecret.name)}" (key "password") from the agent's namespace, not ${String(spec.passwordSecret.namespace ?? 'metallb-system')}: copy it there`);
        if (neighbor.password) {
          delete neighbor.password;
          note('password and passwordSecret both set: the Secret is kept');
        }
      }
      if (spec.bfdProfile) {
        const bfd = convertBfdProfile(String(spec.bfdProfile), bfdProfiles, note);
        if (bfd) neighbor.bfd = bfd;
      }
      if (spec.routerID) note(`routerID ${String(spec.routerID)}: pharos uses the node's address as router ID; dropped`);
      if (spec.vrf) note(`vrf "${String(spec.vrf)}": VRFs are not supported; dropped (the session uses the default VRF)`);
      if (spec.disableMP === true) note('disableMP: pharos always negotiates multiprotocol for the families it carries; dropped');
      if (spec.dynamicASN) note(`dynamicASN "${String(spec.dynamicASN)}": the peer ASN must be given; dropped`);
      const attributes = [...(attributesFor.get('*') ?? []), ...(attributesFor.get(name) ?? [])];
      if (attributes.length) neighbor.advertisedPathAttributes = structuredClone(attributes);
      const asn = Number(spec.myASN);
      routers.set(asn, [...(routers.get(asn) ?? []), neighbor]);
    }
    const virtualRouters = [...routers].map(([localASN, neighbors]) => {
      const vr: Raw = { localASN };
      if (anyAdvert) vr.serviceSelector = structuredClone(serviceSelector ?? {});
      vr.serviceAdvertisements = ['LoadBalancerIP'];
      vr.neighbors = neighbors;
      return vr;
    });
    const name = groups.size === 1 && group.peers.length === 1 ? String(group.peers[0]!.raw.metadata?.name) : `metallb-bgp-${n}`;
    const spec: Raw = {};
    if (group.nodeSelector) spec.nodeSelector = group.nodeSelector;
    spec.virtualRouters = virtualRouters;
    objects.push({
      from: group.peers.map((p) => p.source).join(', '),
      object: { apiVersion: PHAROS_API_VERSION, kind: 'BGPPeeringPolicy', metadata: { name }, spec },
    });
  }
  if (!anyAdvert && peers.length) {
    noteFor(peers[0]!)('no BGPAdvertisement in the input: as with MetalLB, the converted policy advertises no service (add spec.virtualRouters[].serviceSelector)');
  }
  return { objects, referencedPools };
}

/**
 * MetalLB's BFDProfile (referenced by a BGPPeer's bfdProfile) as the
 * neighbor's `bfd` block: the timers keep their names and milliseconds.
 * What pharos does not do is named: echo mode, a minimum TTL
 * (single hop only: pharos sends with TTL 255). A profile missing from the
 * input gives MetalLB's defaults (300 ms x 3), with a note.
 */
function convertBfdProfile(name: string, profiles: Map<string, Item>, note: (m: string) => void): Raw | undefined {
  const profile = profiles.get(name);
  if (!profile) {
    note(`bfdProfile "${name}": no BFDProfile of that name in the input; BFD with MetalLB's defaults (300 ms x 3)`);
    return {};
  }
  const spec = isRecord(profile.raw.spec) ? profile.raw.spec : {};
  const out: Raw = {};
  for (const field of ['receiveInterval', 'transmitInterval', 'detectMultiplier', 'passiveMode'] as const) {
    if (spec[field] !== undefined) out[field] = spec[field];
  }
  if (spec.echoMode === true) note(`bfdProfile "${name}": echoMode is not supported (pharos runs asynchronous mode only); dropped`);
  if (spec.echoInterval !== undefined) note(`bfdProfile "${name}": echoInterval is not supported; dropped`);
  if (spec.minimumTtl !== undefined && Number(spec.minimumTtl) !== 254 && Number(spec.minimumTtl) !== 255) {
    note(`bfdProfile "${name}": minimumTtl ${String(spec.minimumTtl)} (multi-hop) is not supported; pharos runs single-hop BFD (TTL 255); dropped`);
  }
  return out;
}

// ---------------------------------------------------------------- dispatch

const CILIUM_UNSUPPORTED = new Set(['CiliumBGPClusterConfig', 'CiliumBGPPeerConfig', 'CiliumBGPAdvertisement', 'CiliumBGPNodeConfigOverride', 'CiliumPodIPPool']);

/** All documents of all files → pharos objects and notes. */
export function convertDocuments(docs: InputDocument[]): ConvertResult {
  const notes: ConvertNote[] = [];
  // Notes are listed in input order (file, document), whatever order the conversion ran in.
  const order = new Map<string, number>();
  docs.forEach((d, i) => order.set(`${d.file} doc ${d.index}`, i));
  const noteFor = (item: Item) => (message: string) => notes.push({ source: item.source, message });
  const items: Item[] = [];
  for (const doc of docs) {
    if (doc.value === null || doc.value === undefined) continue;
    const values = isRecord(doc.value) && doc.value.kind === 'List' && Array.isArray(doc.value.items) ? doc.value.items : [doc.value];
    for (const raw of values) {
      if (!isRecord(raw)) {
        notes.push({ source: `${doc.file} doc ${doc.index}`, message: 'not an object; skipped' });
        continue;
      }
      items.push({ doc, raw, source: sourceOf(doc, raw) });
    }
  }

  const group = (apiPrefix: string, kind: string) =>
    items.filter((i) => String(i.raw.apiVersion).startsWith(apiPrefix) && i.raw.kind === kind);
  const objects: OutputObject[] = [];
  const handled = new Set<Item>();
  const take = (list: Item[]) => {
    for (const i of list) handled.add(i);
    return list;
  };

  for (const item of take([...group('cilium.io/', 'CiliumLoadBalancerIPPool')])) objects.push({ from: item.source, object: convertCiliumPool(item) });

  const metalPools = new Map<string, MetalPool>();
  for (const item of take(group('metallb.io/', 'IPAddressPool'))) {
    metalPools.set(String(item.raw.metadata?.name), convertMetalPool(item, noteFor(item)));
  }
  const aliases = new Map<string, string>();
  for (const item of take(group('metallb.io/', 'Community'))) {
    for (const c of Array.isArray(item.raw.spec?.communities) ? item.raw.spec.communities : []) {
      if (c?.name && c?.value) aliases.set(String(c.name), String(c.value));
    }
  }
  const bfdProfiles = new Map(take(group('metallb.io/', 'BFDProfile')).map((i) => [String(i.raw.metadata?.name), i]));
  const bgp = convertMetalBgp(take(group('metallb.io/', 'BGPPeer')), take(group('metallb.io/', 'BGPAdvertisement')), metalPools, aliases, noteFor, bfdProfiles);
  for (const [name, pool] of metalPools) {
    const extra: Record<string, string> = bgp.referencedPools.has(name) ? { [POOL_NAME_LABEL]: name } : {};
    objects.push({
      from: pool.item.source,
      object: { apiVersion: PHAROS_API_VERSION, kind: 'LoadBalancerIPPool', metadata: cleanMeta(pool.item.raw, extra), spec: pool.out },
    });
  }

  for (const item of take(group('cilium.io/', 'CiliumL2AnnouncementPolicy'))) objects.push({ from: item.source, object: convertCiliumL2(item) });
  for (const item of take(group('metallb.io/', 'L2Advertisement'))) {
    for (const object of convertL2Advertisement(item, metalPools, noteFor(item))) objects.push({ from: item.source, object });
  }
  for (const item of take(group('cilium.io/', 'CiliumBGPPeeringPolicy'))) {
    objects.push({ from: item.source, object: convertCiliumBgp(item, noteFor(item)) });
  }
  objects.push(...bgp.objects);

  for (const item of items) {
    if (handled.has(item)) continue;
    const kind = String(item.raw.kind);
    const apiVersion = String(item.raw.apiVersion);
    if (CILIUM_UNSUPPORTED.has(kind)) noteFor(item)(`${kind} is not converted (pharos has no equivalent yet); write a BGPPeeringPolicy by hand`);
    else if (apiVersion.startsWith('metallb.io/')) noteFor(item)(`${kind} has no pharos equivalent; skipped`);
    else if (apiVersion === 'v1' && kind === 'ConfigMap' && item.raw.data?.config) {
      noteFor(item)('MetalLB legacy ConfigMap configuration is not converted: convert it to CRDs with MetalLB\'s own tooling first');
    } else noteFor(item)('not a Cilium or MetalLB load-balancer kind; skipped (pharos reads Services and EndpointSlices as they are)');
  }

  // Two inputs converted to the same pharos object: keep the first, say so.
  const seen = new Map<string, string>();
  const unique: OutputObject[] = [];
  for (const o of objects) {
    const key = `${String(o.object.kind)}/${String((o.object.metadata as Raw | undefined)?.name)}`;
    const first = seen.get(key);
    if (first) {
      notes.push({ source: o.from, message: `converts to ${key}, already produced from ${first}; skipped` });
      continue;
    }
    seen.set(key, o.from);
    unique.push(o);
  }

  // The output must be valid pharos: anything the parser rejects is reported (and still printed, for editing).
  for (const o of unique) {
    const r = parseObject(o.object);
    if (!r.ok && !r.ignored) notes.push({ source: o.from, message: `converted object is not valid: ${r.error.toString()}` });
  }
  const rank = (source: string) => order.get(/^(.* doc \d+)/.exec(source)?.[1] ?? '') ?? Number.MAX_SAFE_INTEGER;
  notes.sort((a, b) => rank(a.source) - rank(b.source));
  return { objects: unique, notes };
}

/** Multi-document YAML with a comment naming each object's source. */
export function renderYaml(objects: OutputObject[]): string {
  return objects
    .map((o) => {
      // YAML 1.1 output quotes what kubectl (a YAML 1.1 reader) would turn into booleans
      // or numbers: allowFirstLastIPs "No", communities such as "1234:1".
      const doc = new Document(o.object, { version: '1.1' });
      if (doc.contents) doc.contents.commentBefore = ` converted from ${o.from}`;
      return doc.toString({ lineWidth: 0 });
    })
    .join('---\n');
}

const USAGE = `Usage: pharos convert FILE... (use - for stdin)

Converts Cilium (CiliumLoadBalancerIPPool, CiliumL2AnnouncementPolicy,
CiliumBGPPeeringPolicy) and MetalLB (IPAddressPool, L2Advertisement, BGPPeer,
BGPAdvertisement, Community, BFDProfile) manifests into pharos manifests on stdout.
What could not be carried over is listed on stderr.

Exit status: 0 converted (notes possible), 1 an input could not be read or
parsed, 2 usage.`;

export async function run(argv: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; stdin?: NodeJS.ReadableStream } = process): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const unknownFlag = argv.find((a) => a.startsWith('-') && a !== '-');
  if (argv.length === 0 || unknownFlag) {
    io.stderr.write(`${unknownFlag ? `pharos convert: unknown flag ${unknownFlag}\n` : ''}${USAGE}\n`);
    return 2;
  }
  const docs: InputDocument[] = [];
  let failed = false;
  for (const file of argv) {
    let text: string;
    try {
      text = file === '-' ? await readStream(io.stdin ?? process.stdin) : await readFile(file, 'utf8');
    } catch (err) {
      io.stderr.write(`pharos convert: cannot read ${file}: ${(err as Error).message}\n`);
      failed = true;
      continue;
    }
    const parsed = parseAllDocuments(text, { prettyErrors: false });
    const list = Array.isArray(parsed) ? parsed : [];
    list.forEach((d, index) => {
      if (d.errors.length) {
        io.stderr.write(`pharos convert: ${file} doc ${index}: not valid YAML: ${d.errors[0]!.message.split('\n')[0]}\n`);
        failed = true;
        return;
      }
      docs.push({ file, index, value: d.toJS() as unknown });
    });
  }
  const result = convertDocuments(docs);
  io.stdout.write(renderYaml(result.objects));
  if (result.notes.length) {
    io.stderr.write(`could not carry over (${result.notes.length}):\n`);
    for (const n of result.notes) io.stderr.write(`  - ${n.source}: ${n.message}\n`);
  }
  return failed ? 1 : 0;
}

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}
