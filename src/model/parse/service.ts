/**
 * v1 Service: type, ports, addressing (families, cluster IPs), externalIPs,
 * source ranges, traffic policy, affinity, loadBalancerClass and status,
 * with Kubernetes' defaults.
 */
import { type Context, readConditions, readMeta } from './common.js';
import { FieldReader, show } from '../field-reader.js';
import { addressFamily, checkAddress, checkCidr, checkPortName } from '../syntax.js';
import type { DsrDispatch, ForwardingMode, IPFamily, IPFamilyPolicy, LoadBalancerIngress, Protocol, Service, ServicePort, ServiceType } from '../types.js';

/** Honoured by Kubernetes cloud providers when spec.loadBalancerSourceRanges is empty. */
export const SOURCE_RANGES_ANNOTATION = 'service.beta.kubernetes.io/load-balancer-source-ranges';
/** Per-service forwarding mode, over the agent's --forwarding-mode. */
export const FORWARDING_MODE_ANNOTATION = 'lb.pharos.io/forwarding-mode';
const FORWARDING_MODES: readonly ForwardingMode[] = ['snat', 'dsr'];
/** Per-service DSR dispatch: l2 (on-link backends only), ipip (always encapsulated), auto (default: each backend by its route). */
export const DSR_DISPATCH_ANNOTATION = 'lb.pharos.io/dsr-dispatch';
const DSR_DISPATCHES: readonly DsrDispatch[] = ['l2', 'ipip', 'auto'];
/**
 * Per-service: the established flows of a backend that leaves the service
 * are `rebalance`d to another backend (default; TCP then gets a reset from
 * it, UDP moves on) or `reset`: dropped at the load balancer, as IPVS'
 * expire_nodest_conn, so clients time out and reconnect.
 */
export const REMOVED_BACKEND_ANNOTATION = 'lb.pharos.io/removed-backend';
const REMOVED_BACKEND_POLICIES = ['rebalance', 'reset'] as const;

const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const FAMILY_POLICIES: readonly IPFamilyPolicy[] = ['SingleStack', 'PreferDualStack', 'RequireDualStack'];
const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

export function parseServiceObject(ctx: Context): Service {
  const meta = readMeta(ctx, 'namespaced', 'service');
  const spec = ctx.root.get('spec');
  spec.object();
  // Undefined when it is bad (reported): the checks that depend on it are skipped rather than guessed.
  const type = spec.recover(() => spec.get('type').oneOf(SERVICE_TYPES, 'ClusterIP'), undefined);
  const addressing = spec.recover(() => readServiceAddressing(spec), undefined);

  const portsReader = spec.get('ports');
  const portReaders = portsReader.recover(() => portsReader.list(), []);
  // Index for index with portReaders; undefined where a port was bad (reported).
  const read = portReaders.map((r) => r.recover(() => readServicePort(r, portReaders.length > 1), undefined));
  const ports = read.filter((p): p is ServicePort => p !== undefined);
  if (portsReader.absent || (Array.isArray(portsReader.value) && portsReader.value.length === 0)) {
    if ((type === 'LoadBalancer' || type === 'NodePort') && !addressing?.headless) portsReader.report(`required for type ${type}`);
  }
  const seenPorts = new Map<string, number>();
  const seenNames = new Map<string, number>();
  read.forEach((p, i) => {
    if (!p) return;
    const key = `${p.port}/${p.protocol}`;
    const prev = seenPorts.get(key);
    if (prev !== undefined) portReaders[i]!.report(`duplicate of ports[${prev}] (${key})`);
    seenPorts.set(key, i);
    const prevName = seenNames.get(p.name);
    if (prevName !== undefined) portReaders[i]!.get('name').report(`duplicate of ports[${prevName}].name`);
    seenNames.set(p.name, i);
  });

  const externalIPs = readAddressList(spec.get('externalIPs'));
  const loadBalancerIPReader = spec.get('loadBalancerIP');
  const loadBalancerIP = loadBalancerIPReader.recover(() => loadBalancerIPReader.optString(), undefined);
  if (loadBalancerIP !== undefined) {
    const problem = checkAddress(loadBalancerIP);
    if (problem) loadBalancerIPReader.report(problem);
  }
  let loadBalancerSourceRanges = readCidrList(spec.get('loadBalancerSourceRanges'));
  if (loadBalancerSourceRanges.length === 0 && meta.annotations[SOURCE_RANGES_ANNOTATION]) {
    const annotation = ctx.root.get('metadata').get('annotations').get(SOURCE_RANGES_ANNOTATION);
    loadBalancerSourceRanges = meta.annotations[SOURCE_RANGES_ANNOTATION]
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    for (const cidr of loadBalancerSourceRanges) {
      const problem = checkCidr(cidr);
      if (problem) annotation.report(problem);
    }
  }

  const loadBalancerClassReader = spec.get('loadBalancerClass');
  const loadBalancerClass = loadBalancerClassReader.recover(() => loadBalancerClassReader.optString(), undefined);
  if (loadBalancerClass !== undefined && type !== undefined && type !== 'LoadBalancer') {
    loadBalancerClassReader.report(`may only be set for type LoadBalancer, not ${type}`);
  }

  let forwardingMode: ForwardingMode | undefined;
  if (meta.annotations[FORWARDING_MODE_ANNOTATION] !== undefined) {
    const annotation = ctx.root.get('metadata').get('annotations').get(FORWARDING_MODE_ANNOTATION);
    forwardingMode = annotation.recover(() => annotation.oneOf(FORWARDING_MODES), undefined);
  }

  let dsrDispatch: DsrDispatch | undefined;
  if (meta.annotations[DSR_DISPATCH_ANNOTATION] !== undefined) {
    const annotation = ctx.root.get('metadata').get('annotations').get(DSR_DISPATCH_ANNOTATION);
    dsrDispatch = annotation.recover(() => annotation.oneOf(DSR_DISPATCHES), undefined);
  }

  let removedBackendPolicy: (typeof REMOVED_BACKEND_POLICIES)[number] | undefined;
  if (meta.annotations[REMOVED_BACKEND_ANNOTATION] !== undefined) {
    const annotation = ctx.root.get('metadata').get('annotations').get(REMOVED_BACKEND_ANNOTATION);
    removedBackendPolicy = annotation.recover(() => annotation.oneOf(REMOVED_BACKEND_POLICIES), undefined);
  }

  const sessionAffinity = spec.recover(() => spec.get('sessionAffinity').oneOf(['None', 'ClientIP'] as const, 'None'), 'None');
  const sessionAffinityTimeoutSeconds = spec.recover(
    () => spec.get('sessionAffinityConfig').get('clientIP').get('timeoutSeconds').integer(1, 86400, 10800),
    10800,
  );

  const service: Service = {
    kind: 'Service',
    meta,
    type: type ?? 'ClusterIP',
    ipFamilies: addressing?.ipFamilies ?? ['IPv4'],
    ipFamilyPolicy: addressing?.ipFamilyPolicy ?? 'SingleStack',
    clusterIPs: addressing?.clusterIPs ?? [],
    ports,
    externalIPs,
    externalTrafficPolicy: spec.recover(() => spec.get('externalTrafficPolicy').oneOf(['Cluster', 'Local'] as const, 'Cluster'), 'Cluster'),
    sessionAffinity,
    sessionAffinityTimeoutSeconds,
    loadBalancerSourceRanges,
    allocateLoadBalancerNodePorts: spec.recover(() => spec.get('allocateLoadBalancerNodePorts').boolean(true), true),
    status: ctx.root.recover(() => readServiceStatus(ctx.root.get('status')), { ingress: [], conditions: [] }),
  };
  if (loadBalancerClass !== undefined) service.loadBalancerClass = loadBalancerClass;
  if (loadBalancerIP !== undefined) service.loadBalancerIP = loadBalancerIP;
  if (forwardingMode !== undefined) service.forwardingMode = forwardingMode;
  if (dsrDispatch !== undefined) service.dsrDispatch = dsrDispatch;
  if (removedBackendPolicy !== undefined) service.removedBackendPolicy = removedBackendPolicy;
  return service;
}

/**
 * clusterIPs, clusterIP, ipFamilies and ipFamilyPolicy, which are checked
 * against each other: read together, and the first problem among them is the
 * one reported (the others would only echo it).
 */
function readServiceAddressing(spec: FieldReader): Pick<Service, 'clusterIPs' | 'ipFamilies' | 'ipFamilyPolicy'> & { headless: boolean } {
  // clusterIPs wins; a lone clusterIP is its first element (the API server keeps them in step).
  const clusterIPsReader = spec.get('clusterIPs');
  let clusterIPs = clusterIPsReader.list().map((r) => readClusterIP(r));
  const clusterIPReader = spec.get('clusterIP');
  const clusterIP = clusterIPReader.optString();
  if (clusterIP !== undefined) {
    readClusterIP(clusterIPReader);
    if (clusterIPs.length === 0) clusterIPs = [clusterIP];
    else if (clusterIPs[0] !== clusterIP) clusterIPReader.fail(`${show(clusterIP)} must equal clusterIPs[0] (${show(clusterIPs[0])})`);
  }
  if (clusterIPs.length > 2) clusterIPsReader.fail('may hold at most two addresses');
  const headless = clusterIPs[0] === 'None';
  const clusterIPFamilies = clusterIPs.filter((ip) => ip !== 'None').map((ip) => addressFamily(ip) as IPFamily);
  if (clusterIPFamilies.length === 2 && clusterIPFamilies[0] === clusterIPFamilies[1]) {
    clusterIPsReader.fail('must hold one address of each family');
  }

  const familiesReader = spec.get('ipFamilies');
  let ipFamilies = familiesReader.list().map((r) => r.oneOf(FAMILIES));
  if (ipFamilies.length > 2) familiesReader.fail('may hold at most two families');
  if (ipFamilies.length === 2 && ipFamilies[0] === ipFamilies[1]) familiesReader.fail(`${ipFamilies[0]} is listed twice`);

  // Kubernetes: an unset policy is RequireDualStack when two families or two cluster IPs are given.
  const policyReader = spec.get('ipFamilyPolicy');
  const ipFamilyPolicy = policyReader.oneOf(
    FAMILY_POLICIES,
    ipFamilies.length === 2 || clusterIPFamilies.length === 2 ? 'RequireDualStack' : 'SingleStack',
  );
  if (ipFamilies.length === 0) {
    if (clusterIPFamilies.length > 0) ipFamilies = [...clusterIPFamilies];
    else ipFamilies = ipFamilyPolicy === 'SingleStack' ? ['IPv4'] : ['IPv4', 'IPv6'];
  } else if (ipFamilies.length === 1 && ipFamilyPolicy !== 'SingleStack' && clusterIPs.length === 0) {
    // No API server has defaulted this object (manifests mode, a dual-stack "cluster"): as a
    // dual-stack API server does, a dual-stack policy gets the other family appended.
    ipFamilies = [ipFamilies[0]!, ipFamilies[0] === 'IPv4' ? 'IPv6' : 'IPv4'];
  }
  if (ipFamilyPolicy === 'SingleStack' && ipFamilies.length > 1) {
    policyReader.fail('SingleStack allows one family, but ipFamilies lists two (use PreferDualStack or RequireDualStack)');
  }
  if (!headless) {
    clusterIPFamilies.forEach((family, i) => {
      if (ipFamilies[i] !== undefined && ipFamilies[i] !== family) {
        const where = clusterIPsReader.absent ? clusterIPReader : clusterIPsReader.list()[i]!;
        where.fail(`${show(clusterIPs[i])} is ${family} but ipFamilies[${i}] is ${ipFamilies[i]}`);
      }
    });
  }
  return { clusterIPs, ipFamilies, ipFamilyPolicy, headless };
}

function readClusterIP(r: FieldReader): string {
  const ip = r.nonEmptyString();
  if (ip === 'None') return ip;
  const problem = checkAddress(ip);
  if (problem) r.fail(problem);
  return ip;
}

function readServicePort(r: FieldReader, nameRequired: boolean): ServicePort {
  r.object();
  const nameReader = r.get('name');
  const name = nameReader.optString() ?? '';
  if (name === '' && nameRequired) nameReader.report('required when the service has more than one port');
  if (name !== '') {
    const problem = checkPortName(name);
    if (problem) nameReader.report(problem);
  }
  const port = r.get('port').integer(1, 65535);
  const protocol = r.get('protocol').oneOf(PROTOCOLS, 'TCP');
  const targetReader = r.get('targetPort');
  let targetPort: number | string = port;
  if (!targetReader.absent) {
    if (typeof targetReader.value === 'number') targetPort = targetReader.integer(1, 65535);
    else {
      const text = targetReader.string();
      if (text !== '') {
        const problem = checkPortName(text);
        if (problem) targetReader.fail(problem);
        targetPort = text;
      }
    }
  }
  const result: ServicePort = { name, protocol, port, targetPort };
  const nodePort = r.get('nodePort').optInteger(0, 65535);
  if (nodePort) result.nodePort = nodePort;
  return result;
}

/** A list of strings, each checked by `check` (a problem is reported at that item). */
function readCheckedList(r: FieldReader, check: (text: string) => string | undefined): string[] {
  return r.items((item) => {
    const text = item.string();
    const problem = check(text);
    if (problem) item.report(problem);
    return text;
  });
}

function readAddressList(r: FieldReader): string[] {
  return readCheckedList(r, checkAddress);
}

function readCidrList(r: FieldReader): string[] {
  return readCheckedList(r, checkCidr);
}

/** Status is written by controllers (ours or others); entries without an IP (hostname-only) are skipped. */
function readServiceStatus(r: FieldReader): Service['status'] {
  const ingress: LoadBalancerIngress[] = [];
  r.get('loadBalancer').get('ingress').items((item) => {
    const ipReader = item.get('ip');
    const ip = ipReader.optString();
    if (ip === undefined) return;
    const problem = checkAddress(ip);
    if (problem) ipReader.report(problem);
    ingress.push({ ip });
  });
  return { ingress, conditions: readConditions(r.get('conditions')) };
}
