/**
 * desired = f(snapshot) for L2 announcements: which addresses this node may
 * announce, and on which of its interfaces. Pure.
 *
 * A service is a candidate when a policy selects it (serviceSelector) and
 * this node (nodeSelector), it is ours (class unset or lb.pharos.io/l2), and
 * it actually has an address of a kind the policy announces
 * (loadBalancerIPs / externalIPs) — Cilium once created a lease per
 * selected service whether or not it had an address, and API servers
 * suffered for it. With externalTrafficPolicy Local only nodes with a ready
 * local endpoint compete. Interfaces: those matching any of the policy's
 * regexes (all eligible ones when none are given) that are up and have an
 * address; with no such interface the node does not compete.
 */
import { objectKey, type L2Policy, type Node, type Service } from '../model/types.js';
import { matchesSelector } from '../model/selector.js';
import type { Snapshot } from '../store/store.js';

export interface NodeInterface {
  name: string;
  ifindex: number;
  mac: string;
  up: boolean;
  addresses: string[];
}

export interface L2Candidate {
  service: string;
  addresses: string[];
  interfaces: NodeInterface[];
  /** Policies that selected it, for `pharos l2 list` and logs. */
  policies: string[];
}

export interface L2PolicyInput {
  nodeName: string;
  nodeLabels: Record<string, string>;
  interfaces: NodeInterface[];
  isOurService: (svc: Service) => boolean;
}

/** Node labels as selectors see them: the Node object's, plus the well-known hostname label. */
export function nodeLabels(node: Node | undefined, nodeName: string): Record<string, string> {
  return { 'kubernetes.io/hostname': nodeName, ...(node?.meta.labels ?? {}) };
}

function serviceLabels(svc: Service): Record<string, string> {
  // Pseudo-labels let a selector name a service by namespace or name, as Cilium's do.
  return { ...svc.meta.labels, 'io.kubernetes.service.namespace': svc.meta.namespace ?? '', 'io.kubernetes.service.name': svc.meta.name };
}

function compileInterfaces(policy: L2Policy): RegExp[] {
  const out: RegExp[] = [];
  for (const src of policy.interfaces) {
    try {
      out.push(new RegExp(src));
    } catch {
      // parse.ts rejects bad regexes; a policy that got here anyway matches nothing.
      return [/$^/];
    }
  }
  return out;
}

function hasLocalReadyEndpoint(snap: Snapshot, svc: Service, nodeName: string): boolean {
  for (const slice of snap.endpointSlices.values()) {
    if (slice.meta.namespace !== svc.meta.namespace || slice.serviceName !== svc.meta.name) continue;
    if (slice.endpoints.some((e) => e.ready && e.nodeName === nodeName)) return true;
  }
  return false;
}

export function l2Candidates(snap: Snapshot, input: L2PolicyInput): L2Candidate[] {
  const out: L2Candidate[] = [];
  const policies = [...snap.l2Policies.values()].filter((p) => !p.nodeSelector || matchesSelector(p.nodeSelector, input.nodeLabels));
  if (policies.length === 0) return out;
  const eligible = input.interfaces.filter((i) => i.up && i.addresses.length > 0);
  for (const svc of snap.services.values()) {
    if (!input.isOurService(svc)) continue;
    if (svc.loadBalancerClass && svc.loadBalancerClass !== 'lb.pharos.io/l2') continue;
    const labels = serviceLabels(svc);
    const addresses = new Set<string>();
    const ifaces = new Map<number, NodeInterface>();
    const names: string[] = [];
    for (const policy of policies) {
      if (policy.serviceSelector && !matchesSelector(policy.serviceSelector, labels)) continue;
      const addrs: string[] = [];
      if (policy.loadBalancerIPs && svc.type === 'LoadBalancer') addrs.push(...svc.status.ingress.map((i) => i.ip).filter(Boolean));
      if (policy.externalIPs) addrs.push(...svc.externalIPs);
      if (addrs.length === 0) continue;
      const regexes = compileInterfaces(policy);
      const matched = eligible.filter((i) => regexes.length === 0 || regexes.some((r) => r.test(i.name)));
      if (matched.length === 0) continue;
      for (const a of addrs) addresses.add(a);
      for (const i of matched) ifaces.set(i.ifindex, i);
      names.push(policy.meta.name);
    }
    if (addresses.size === 0) continue;
    if (svc.externalTrafficPolicy === 'Local' && !hasLocalReadyEndpoint(snap, svc, input.nodeName)) continue;
    out.push({
      service: objectKey(svc.meta),
      addresses: [...addresses].sort(),
      interfaces: [...ifaces.values()].sort((a, b) => a.ifindex - b.ifindex),
      policies: names.sort(),
    });
  }
  return out.sort((a, b) => a.service.localeCompare(b.service));
}

/**
 * For every service some policy would announce: the nodes that could compete
 * for it (policy nodeSelector; with externalTrafficPolicy Local, a ready
 * local endpoint). Interfaces are not known for other nodes, so they are
 * assumed to match; a node without one simply never takes the lease.
 */
export function l2EligibleNodes(snap: Snapshot, nodeNames: Iterable<string>, isOurService: (svc: Service) => boolean): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const nodes = [...new Set(nodeNames)].sort().map((name) => ({ name, labels: nodeLabels(snap.nodes.get(name), name) }));
  const policies = [...snap.l2Policies.values()];
  if (policies.length === 0) return out;
  for (const svc of snap.services.values()) {
    if (!isOurService(svc)) continue;
    if (svc.loadBalancerClass && svc.loadBalancerClass !== 'lb.pharos.io/l2') continue;
    const labels = serviceLabels(svc);
    const selecting = policies.filter((p) => {
      if (p.serviceSelector && !matchesSelector(p.serviceSelector, labels)) return false;
      const hasLb = p.loadBalancerIPs && svc.type === 'LoadBalancer' && svc.status.ingress.some((i) => i.ip);
      return hasLb || (p.externalIPs && svc.externalIPs.length > 0);
    });
    if (selecting.length === 0) continue;
    const names = nodes
      .filter((n) => selecting.some((p) => !p.nodeSelector || matchesSelector(p.nodeSelector, n.labels)))
      .filter((n) => svc.externalTrafficPolicy !== 'Local' || hasLocalReadyEndpoint(snap, svc, n.name))
      .map((n) => n.name);
    out.set(objectKey(svc.meta), names);
  }
  return out;
}

/** Every address some policy would announce for each service (whoever holds it), for `pharos l2 list`. */
export function l2AnnouncedAddresses(snap: Snapshot, isOurService: (svc: Service) => boolean): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const policies = [...snap.l2Policies.values()];
  for (const svc of snap.services.values()) {
    if (!isOurService(svc) || (svc.loadBalancerClass && svc.loadBalancerClass !== 'lb.pharos.io/l2')) continue;
    const labels = serviceLabels(svc);
    const addrs = new Set<string>();
    for (const p of policies) {
      if (p.serviceSelector && !matchesSelector(p.serviceSelector, labels)) continue;
      if (p.loadBalancerIPs && svc.type === 'LoadBalancer') for (const i of svc.status.ingress) if (i.ip) addrs.add(i.ip);
      if (p.externalIPs) for (const a of svc.externalIPs) addrs.add(a);
    }
    if (addrs.size > 0) out.set(objectKey(svc.meta), [...addrs].sort());
  }
  return out;
}
