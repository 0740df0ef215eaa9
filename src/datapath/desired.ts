/**
 * desired = f(snapshot) for the data path: which {VIP, port, protocol}
 * frontends exist and which backends each one has. Pure; the datapath sync
 * turns the result into map operations.
 *
 * - LoadBalancer addresses come from the service's status (written by IPAM,
 *   by us or, for a foreign class, not at all: foreign services are skipped);
 *   externalIPs are served for any service type, as kube-proxy does.
 * - Backends come from the service's EndpointSlices of the same address
 *   family. Ready endpoints are active; serving-but-terminating ones keep
 *   their flows but take no new ones; the rest are left out.
 * - externalTrafficPolicy: Local keeps only endpoints on this node; such a
 *   frontend without a ready local endpoint drops new flows; L2 and BGP do
 *   not attract its traffic (both ask src/model/scope.ts's
 *   `hasReadyEndpointOn`).
 * - NodePort frontends: `{node address, nodePort}` for every port of a
 *   NodePort service, and of a LoadBalancer service unless
 *   allocateLoadBalancerNodePorts is false, with the same backends.
 */
import { isIPv4 } from 'node:net';
import { tryParseAddress } from '../model/cidr.js';
import { objectKey, type Backend, type EndpointSlice, type ForwardingMode, type Frontend, type Service, type ServicePort } from '../model/types.js';
import type { SnapshotOf } from '../store/store.js';

export interface DesiredFrontendOptions {
  nodeName: string;
  /** Whether pharos handles this service's LoadBalancer addresses (its class is ours). */
  isOurService: (svc: Service) => boolean;
  /** This node's addresses NodePort frontends answer on; none when absent. */
  nodeAddresses?: readonly string[];
  /** The agent's --forwarding-mode, for services without the annotation (default snat). */
  forwardingMode?: ForwardingMode;
}

function targetPortFor(slice: EndpointSlice, port: ServicePort): number | undefined {
  const named = slice.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
  if (named) return named.port;
  if (slice.ports.length === 0 && typeof port.targetPort === 'number') return port.targetPort;
  return undefined;
}

/** Backends of one service port for one address family, deduplicated and in a stable order. */
export function backendsFor(svc: Service, port: ServicePort, slices: readonly EndpointSlice[], v4: boolean, nodeName: string): Backend[] {
  const byKey = new Map<string, Backend>();
  for (const slice of slices) {
    if (slice.addressType !== (v4 ? 'IPv4' : 'IPv6')) continue;
    const target = targetPortFor(slice, port);
    if (target === undefined) continue;
    for (const ep of slice.endpoints) {
      if (svc.externalTrafficPolicy === 'Local' && ep.nodeName !== nodeName) continue;
      const state = ep.ready ? 'active' : ep.serving && ep.terminating ? 'terminating' : undefined;
      if (!state) continue;
      for (const address of ep.addresses) {
        const key = `${address}|${target}`;
        const prev = byKey.get(key);
        // The same endpoint listed twice: the more available state wins.
        if (prev && prev.state === 'active') continue;
        byKey.set(key, { address, port: target, weight: ep.weight, state, ...(ep.nodeName ? { nodeName: ep.nodeName } : {}) });
      }
    }
  }
  return [...byKey.values()].sort((a, b) => compareAddresses(a.address, b.address) || a.port - b.port);
}

/** Numeric address order (203.0.113.2 before 203.0.113.10), so tables and listings read naturally. */
export function compareAddresses(a: string, b: string): number {
  const x = tryParseAddress(a);
  const y = tryParseAddress(b);
  if (!x || !y) return a < b ? -1 : a > b ? 1 : 0;
  if (x.family !== y.family) return x.family === 'IPv4' ? -1 : 1;
  return x.value < y.value ? -1 : x.value > y.value ? 1 : 0;
}

/** EndpointSlices grouped by their service's key (`ns/name`). */
export function slicesByService(slices: Iterable<EndpointSlice>): Map<string, EndpointSlice[]> {
  const out = new Map<string, EndpointSlice[]>();
  for (const slice of slices) {
    const key = serviceKeyOfSlice(slice);
    const list = out.get(key);
    if (list) list.push(slice);
    else out.set(key, [slice]);
  }
  return out;
}

export function serviceKeyOfSlice(slice: EndpointSlice): string {
  return `${slice.meta.namespace ?? ''}/${slice.serviceName}`;
}

/** The frontends of one service (its VIPs, external IPs and NodePorts), in a stable order. */
export function frontendsForService(svc: Service, slices: readonly EndpointSlice[], opts: DesiredFrontendOptions): Frontend[] {
  const key = objectKey(svc.meta);
  const addresses: { address: string; kind: Frontend['kind'] }[] = [];
  if (svc.type === 'LoadBalancer' && opts.isOurService(svc)) {
    for (const ing of svc.status.ingress) if (ing.ip) addresses.push({ address: ing.ip, kind: 'LoadBalancer' });
  }
  for (const ip of svc.externalIPs) addresses.push({ address: ip, kind: 'ExternalIP' });
  const nodePorts = svc.type === 'NodePort' || (svc.type === 'LoadBalancer' && svc.allocateLoadBalancerNodePorts !== false);
  if (nodePorts) for (const ip of opts.nodeAddresses ?? []) addresses.push({ address: ip, kind: 'NodePort' });
  if (addresses.length === 0) return [];
  const out: Frontend[] = [];
  const seen = new Set<string>();
  // DSR needs the backend to hold the frontend's address: service addresses only, a node's own address (NodePort) never.
  const dsr = (svc.forwardingMode ?? opts.forwardingMode) === 'dsr';
  // One backend list per port and family, shared by that port's frontends (a VIP and its NodePorts).
  const backendLists = new Map<string, Frontend['backends']>();
  for (const { address, kind } of addresses) {
    for (const port of svc.ports) {
      if (port.protocol === 'SCTP') continue; // the data path carries TCP and UDP
      const frontendPort = kind === 'NodePort' ? port.nodePort : port.port;
      if (!frontendPort) continue; // NodePort not allocated (yet)
      const id = `${address}|${frontendPort}|${port.protocol}`;
      if (seen.has(id)) continue;
      seen.add(id);
      const v4 = isIPv4(address);
      const listKey = `${port.name ?? ''}|${port.port}|${port.protocol}|${v4}`;
      let backends = backendLists.get(listKey);
      if (!backends) backendLists.set(listKey, (backends = backendsFor(svc, port, slices, v4, opts.nodeName)));
      out.push({
        service: key,
        kind,
        address,
        port: frontendPort,
        protocol: port.protocol,
        backends,
        sessionAffinity: svc.sessionAffinity === 'ClientIP',
        sessionAffinityTimeoutSeconds: svc.sessionAffinityTimeoutSeconds,
        localOnly: svc.externalTrafficPolicy === 'Local',
        sourceRanges: svc.loadBalancerSourceRanges,
        ...(dsr && kind !== 'NodePort' ? { forwardingMode: 'dsr' as const, ...(svc.dsrDispatch && svc.dsrDispatch !== 'auto' ? { dsrDispatch: svc.dsrDispatch } : {}) } : {}),
        ...(svc.removedBackendPolicy === 'reset' ? { removedBackendPolicy: 'reset' as const } : {}),
      });
    }
  }
  return out.sort(compareFrontends);
}

function compareFrontends(a: Frontend, b: Frontend): number {
  return compareAddresses(a.address, b.address) || a.port - b.port || a.protocol.localeCompare(b.protocol);
}

export function desiredFrontends(snap: SnapshotOf<'Service' | 'EndpointSlice'>, opts: DesiredFrontendOptions): Frontend[] {
  const slices = slicesByService(snap.endpointSlices.values());
  const out: Frontend[] = [];
  for (const svc of snap.services.values()) out.push(...frontendsForService(svc, slices.get(objectKey(svc.meta)) ?? [], opts));
  return out.sort(compareFrontends);
}

/** Frontends of Local-policy services with no ready endpoint on this node: new flows to them are dropped here. */
export function frontendsWithoutLocalEndpoints(frontends: readonly Frontend[]): Frontend[] {
  return frontends.filter((f) => f.localOnly && !f.backends.some((b) => b.state === 'active'));
}
