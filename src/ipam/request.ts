/**
 * What one Service asks of the IPAM: whether it is ours at all, which
 * families it wants, which addresses it names, and with whom it may share.
 * Read from the typed Service (spec fields and annotations) with every
 * annotation spelling pharos accepts (its own, Cilium's, MetalLB's).
 *
 * Pure. An unparsable annotation yields `error` naming the field; the
 * allocator then keeps what the service already has and changes nothing else.
 */
import { parseAddress } from '../model/cidr.js';
import type { LabelLookup } from '../model/selector.js';
import { isOurService, serviceLabelLookup } from '../model/scope.js';
import { objectKey, type FieldError, type IPFamily, type Service } from '../model/types.js';

/** Requested addresses, in precedence order: the first one present wins. */
export const REQUESTED_IPS_SOURCES = [
  'lb.pharos.io/ips',
  'spec.loadBalancerIP',
  'lbipam.cilium.io/ips',
  'io.cilium/lb-ipam-ips',
  'metallb.io/loadBalancerIPs',
  'metallb.universe.tf/loadBalancerIPs',
] as const;

export const SHARING_KEY_ANNOTATIONS = [
  'lb.pharos.io/sharing-key',
  'lbipam.cilium.io/sharing-key',
  'metallb.io/allow-shared-ip',
  'metallb.universe.tf/allow-shared-ip',
] as const;

/** Value: `*` (or `true`) for any namespace, or a comma-separated list of namespaces. */
export const CROSS_NAMESPACE_ANNOTATIONS = [
  'lb.pharos.io/sharing-cross-namespace',
  'lbipam.cilium.io/sharing-cross-namespace',
] as const;

export interface ScopeOptions {
  /** Whether a LoadBalancer service without loadBalancerClass is ours. */
  pharosIsDefaultClass: boolean;
}

/** Whether the IPAM manages this service at all (a LoadBalancer of our class, src/model/scope.ts); anything else is left alone. */
export function isIpamService(svc: Service, options: ScopeOptions): boolean {
  return svc.type === 'LoadBalancer' && isOurService(svc, options.pharosIsDefaultClass);
}

export interface RequestedAddress {
  value: bigint;
  text: string;
}

export interface IpamRequest {
  key: string;
  namespace: string;
  /** Sort key: creation time, then key. Decides who wins a contested address. */
  order: string;
  /** Wanted families, primary first. */
  families: readonly IPFamily[];
  /** RequireDualStack: every family or unsatisfied. SingleStack has one family anyway. */
  requireAll: boolean;
  /** A named address per family (the other wanted family, if any, is allocated freely). */
  requested: ReadonlyMap<IPFamily, RequestedAddress>;
  /** Field the requested addresses came from, for messages. */
  requestedField?: string;
  sharingKey?: string;
  sharingKeyField?: string;
  /** Namespaces this service agrees to share with, besides its own; '*' = any. */
  shareWithNamespaces: '*' | ReadonlySet<string>;
  /** `TCP/80` style, for the sharing clash check (only filled when there is a sharing key). */
  ports: ReadonlySet<string>;
  /** Labels plus the namespace/name pseudo-labels, for pool selectors. */
  selectorLabel: LabelLookup;
  /** Set when an annotation or field could not be understood. */
  error?: FieldError;
}

function annotationField(name: string): string {
  return `metadata.annotations[${JSON.stringify(name)}]`;
}

export function serviceOrder(svc: Service): string {
  return `${svc.meta.creationTimestamp ?? ''}\u0000${objectKey(svc.meta)}`;
}

// Shared, never mutated: one array per shape instead of one per service.
const FAMILY_LISTS: Record<IPFamily, { single: readonly IPFamily[]; dual: readonly IPFamily[] }> = {
  IPv4: { single: ['IPv4'], dual: ['IPv4', 'IPv6'] },
  IPv6: { single: ['IPv6'], dual: ['IPv6', 'IPv4'] },
};

function wantedFamilies(svc: Service): readonly IPFamily[] {
  const primary: IPFamily = svc.ipFamilies[0] === 'IPv6' ? 'IPv6' : 'IPv4';
  return svc.ipFamilyPolicy === 'SingleStack' ? FAMILY_LISTS[primary].single : FAMILY_LISTS[primary].dual;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function readRequest(svc: Service): IpamRequest {
  const key = objectKey(svc.meta);
  const namespace = svc.meta.namespace ?? '';
  const annotations = svc.meta.annotations;
  const request: IpamRequest = {
    key,
    namespace,
    order: serviceOrder(svc),
    families: wantedFamilies(svc),
    requireAll: svc.ipFamilyPolicy === 'RequireDualStack',
    requested: NOTHING_REQUESTED,
    shareWithNamespaces: NO_NAMESPACES,
    ports: NO_PORTS,
    selectorLabel: serviceLabelLookup(svc),
  };
  // Both are read even when one fails, so a typo in one annotation does not also drop the sharing key.
  const requestError = readRequestedAddresses(svc, request);
  const sharingError = readSharing(annotations, request);
  const error = requestError ?? sharingError;
  if (error) request.error = error;
  if (request.sharingKey !== undefined) request.ports = new Set(svc.ports.map((p) => `${p.protocol}/${p.port}`));
  return request;
}

// Shared empty values: most services request nothing and share nothing, and 10,000 empty Maps add up.
const NOTHING_REQUESTED: ReadonlyMap<IPFamily, RequestedAddress> = new Map();
const NO_NAMESPACES: ReadonlySet<string> = new Set();
const NO_PORTS: ReadonlySet<string> = new Set();

function readRequestedAddresses(svc: Service, request: IpamRequest): FieldError | undefined {
  for (const source of REQUESTED_IPS_SOURCES) {
    const raw = source === 'spec.loadBalancerIP' ? svc.loadBalancerIP : svc.meta.annotations[source];
    if (raw === undefined || raw.trim() === '') continue;
    const field = source === 'spec.loadBalancerIP' ? source : annotationField(source);
    request.requestedField = field;
    const texts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const requested = new Map<IPFamily, RequestedAddress>();
    request.requested = requested;
    for (const text of texts) {
      const parsed = parseAddress(text, field);
      if (!parsed.ok) return parsed.error;
      const { family, value } = parsed.value;
      if (request.requested.has(family)) {
        return { field, message: `names two ${family} addresses (${request.requested.get(family)!.text}, ${text}); a service gets at most one per family` };
      }
      if (!request.families.includes(family)) {
        return { field, message: `${text} is ${family} but the service is ${svc.ipFamilyPolicy} ${request.families.join('/')} (spec.ipFamilies)` };
      }
      requested.set(family, { value, text });
    }
    return undefined;
  }
  return undefined;
}

function readSharing(annotations: Record<string, string>, request: IpamRequest): FieldError | undefined {
  for (const name of SHARING_KEY_ANNOTATIONS) {
    const value = annotations[name]?.trim();
    if (value === undefined || value === '') continue;
    request.sharingKey = value;
    request.sharingKeyField = annotationField(name);
    break;
  }
  for (const name of CROSS_NAMESPACE_ANNOTATIONS) {
    const raw = annotations[name];
    if (raw === undefined) continue;
    const value = raw.trim();
    if (value === '*' || value === 'true') {
      request.shareWithNamespaces = '*';
    } else if (value !== '' && value !== 'false') {
      const names = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
      const valid = (n: string): boolean => n === '*' || (n.length <= 63 && NAMESPACE.test(n));
      // The valid names still count: the service keeps sharing with them while the typo is reported.
      request.shareWithNamespaces = names.includes('*') ? '*' : new Set(names.filter(valid));
      const bad = names.find((n) => !valid(n));
      if (bad !== undefined) {
        return { field: annotationField(name), message: `${JSON.stringify(bad)} is not a namespace name; use "*" or a comma-separated list of namespaces` };
      }
    }
    break;
  }
  return undefined;
}

/** Whether two services may share one address: same key, disjoint ports, namespaces agreed both ways. */
export function shareProblem(a: IpamRequest, b: IpamRequest): 'key' | 'ports' | 'namespace' | undefined {
  if (a.sharingKey === undefined || a.sharingKey !== b.sharingKey) return 'key';
  if (a.namespace !== b.namespace) {
    const aAllows = a.shareWithNamespaces === '*' || a.shareWithNamespaces.has(b.namespace);
    const bAllows = b.shareWithNamespaces === '*' || b.shareWithNamespaces.has(a.namespace);
    if (!aAllows || !bAllows) return 'namespace';
  }
  for (const p of a.ports) if (b.ports.has(p)) return 'ports';
  return undefined;
}

export function clashingPorts(a: IpamRequest, b: IpamRequest): string[] {
  return [...a.ports].filter((p) => b.ports.has(p));
}
