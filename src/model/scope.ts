/**
 * Which services pharos handles, and how a service looks to a selector: the
 * one answer every controller (IPAM, L2, BGP, data path) asks for, so they
 * can never disagree about a service.
 *
 * - `loadBalancerClass` unset (or empty): ours when the agent runs with
 *   `--default-lb-class` (the default), as MetalLB and Cilium treat it.
 * - `lb.pharos.io/l2` / `lb.pharos.io/bgp`: ours, announced only by L2 / only
 *   over BGP. Every other class belongs to another implementation: its status
 *   is never touched, its addresses never announced or served.
 * - Selectors (pools, L2 and BGP policies) see a service's labels plus the
 *   pseudo-labels naming it by namespace and name, with Cilium's keys, so
 *   Cilium's manifests select the same services here.
 */
import type { LabelLookup } from './selector.js';
import type { EndpointSlice, Service } from './types.js';

export const L2_LOAD_BALANCER_CLASS = 'lb.pharos.io/l2';
export const BGP_LOAD_BALANCER_CLASS = 'lb.pharos.io/bgp';

/** Pseudo-labels a service selector can match (Cilium's keys). */
export const SERVICE_NAMESPACE_LABEL = 'io.kubernetes.service.namespace';
export const SERVICE_NAME_LABEL = 'io.kubernetes.service.name';

/** Whether a service of this class is ours; `defaultClassIsOurs` is `--default-lb-class`. */
export function isOurService(svc: Service, defaultClassIsOurs: boolean): boolean {
  const cls = svc.loadBalancerClass;
  if (cls === undefined || cls === '') return defaultClassIsOurs;
  return cls === L2_LOAD_BALANCER_CLASS || cls === BGP_LOAD_BALANCER_CLASS;
}

/** The agent's scope as a predicate (`isOurService` with its `--default-lb-class`), handed to each controller. */
export type ServiceScope = (svc: Service) => boolean;

export function serviceScope(defaultClassIsOurs: boolean): ServiceScope {
  return (svc) => isOurService(svc, defaultClassIsOurs);
}

/** Whether L2 may announce a service that is ours: every class but the BGP-only one. */
export function l2MayAnnounce(svc: Service): boolean {
  return svc.loadBalancerClass !== BGP_LOAD_BALANCER_CLASS;
}

/** Whether BGP may advertise a service that is ours: every class but the L2-only one. */
export function bgpMayAdvertise(svc: Service): boolean {
  return svc.loadBalancerClass !== L2_LOAD_BALANCER_CLASS;
}

/** A service's labels as selectors see them, pseudo-labels included, without a copy per service. */
export function serviceLabelLookup(svc: Service): LabelLookup {
  const labels = svc.meta.labels;
  const namespace = svc.meta.namespace ?? '';
  const name = svc.meta.name;
  return (key) => {
    if (key === SERVICE_NAMESPACE_LABEL) return namespace;
    if (key === SERVICE_NAME_LABEL) return name;
    return Object.prototype.hasOwnProperty.call(labels, key) ? labels[key] : undefined;
  };
}

function readyOn(slice: EndpointSlice, nodeName: string): boolean {
  return slice.endpoints.some((e) => e.ready && e.nodeName === nodeName);
}

/** Whether any of `slices` has a ready endpoint on `nodeName` (externalTrafficPolicy Local). */
export function hasReadyEndpointOn(slices: Iterable<EndpointSlice> | undefined, nodeName: string): boolean {
  for (const slice of slices ?? []) if (readyOn(slice, nodeName)) return true;
  return false;
}

/** `namespace/name` of every service with a ready endpoint on `nodeName`, in one pass over the slices. */
export function servicesWithReadyEndpointOn(slices: Iterable<EndpointSlice>, nodeName: string): Set<string> {
  const out = new Set<string>();
  for (const slice of slices) if (readyOn(slice, nodeName)) out.add(`${slice.meta.namespace}/${slice.serviceName}`);
  return out;
}
