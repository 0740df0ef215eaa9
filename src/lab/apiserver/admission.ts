/**
 * What the real API server does to an object on its way in, reduced to the
 * parts pharos and kubectl users can see: Service defaults, ClusterIP
 * allocation (198.19.0.0/16 and 2001:db8:ffff::/112 — lab ranges only),
 * NodePort allocation (30000–32767), name checks, generation.
 */
import type { Database, Json } from './database.js';

export class AdmissionError extends Error {
  override name = 'AdmissionError';
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function checkName(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw new AdmissionError('name or generateName is required', 'metadata.name');
  if (name.length > 253 || !dns1123Subdomain.test(name)) {
    throw new AdmissionError(
      `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
      'metadata.name',
    );
  }
  return name;
}

/** JSON with sorted keys, to tell a change from a mere reordering of keys. */
export function canonicalJson(v: Json): string {
  return JSON.stringify(v, (_k, val) =>
    val && typeof val === 'object' && !Array.isArray(val) ? Object.fromEntries(Object.entries(val).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : val,
  );
}

/** Everything but metadata and status: a change here bumps metadata.generation. */
export function specPart(obj: Json): string {
  const { metadata: _m, status: _s, ...rest } = obj ?? {};
  return canonicalJson(rest);
}

// ---------------------------------------------------------------- Services

const v4Base = (198 << 24) | (19 << 16); // 198.19.0.0/16
const v4Size = 1 << 16;
const v6Prefix = '2001:db8:ffff::';
const v6Size = 1 << 16;
const nodePortMin = 30000;
const nodePortMax = 32767;

function v4String(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function usedServiceAddresses(db: Database): { ips: Set<string>; ports: Set<number> } {
  const ips = new Set<string>();
  const ports = new Set<number>();
  for (const svc of db.list('/services')) {
    for (const ip of svc.spec?.clusterIPs ?? []) ips.add(ip);
    for (const p of svc.spec?.ports ?? []) if (p.nodePort) ports.add(p.nodePort);
  }
  return { ips, ports };
}

function allocateIp(family: 'IPv4' | 'IPv6', used: Set<string>): string {
  // Skip .0 and .1 (network and the conventional kubernetes service address).
  for (let i = 2; i < (family === 'IPv4' ? v4Size : v6Size) - 1; i++) {
    const ip = family === 'IPv4' ? v4String(v4Base + i) : `${v6Prefix}${i.toString(16)}`;
    if (!used.has(ip)) {
      used.add(ip);
      return ip;
    }
  }
  throw new AdmissionError(`no ${family} cluster IPs left`, 'spec.clusterIPs');
}

function allocateNodePort(used: Set<number>): number {
  for (let p = nodePortMin; p <= nodePortMax; p++) {
    if (!used.has(p)) {
      used.add(p);
      return p;
    }
  }
  throw new AdmissionError('no node ports left', 'spec.ports');
}

/**
 * Apply Service defaults and allocations to `svc` (mutated). On update,
 * addresses and node ports the old object had are kept, as upstream does.
 */
export function admitService(svc: Json, old: Json | undefined, db: Database): void {
  const spec = (svc.spec ??= {});
  spec.type ??= 'ClusterIP';
  spec.sessionAffinity ??= 'None';
  spec.internalTrafficPolicy ??= 'Cluster';
  const ports: Json[] = spec.ports ?? [];
  for (const p of ports) {
    p.protocol ??= 'TCP';
    p.targetPort ??= p.port;
    if (typeof p.port !== 'number' || p.port < 1 || p.port > 65535) {
      throw new AdmissionError(`Invalid value: ${JSON.stringify(p.port)}: must be between 1 and 65535`, 'spec.ports.port');
    }
  }
  if (spec.type === 'ExternalName') return;

  if (old?.spec) {
    spec.clusterIP ??= old.spec.clusterIP;
    spec.clusterIPs ??= old.spec.clusterIPs;
    spec.ipFamilies ??= old.spec.ipFamilies;
    spec.ipFamilyPolicy ??= old.spec.ipFamilyPolicy;
  }
  spec.ipFamilyPolicy ??= 'SingleStack';
  const families: ('IPv4' | 'IPv6')[] =
    spec.ipFamilies ?? (spec.ipFamilyPolicy === 'SingleStack' ? ['IPv4'] : ['IPv4', 'IPv6']);
  spec.ipFamilies = families;

  const used = usedServiceAddresses(db);
  for (const ip of old?.spec?.clusterIPs ?? []) used.ips.delete(ip);
  for (const p of old?.spec?.ports ?? []) if (p.nodePort) used.ports.delete(p.nodePort);

  if (spec.clusterIP === 'None') {
    spec.clusterIPs = ['None'];
  } else {
    const ips: string[] = spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : []);
    for (const ip of ips) {
      if (used.ips.has(ip)) throw new AdmissionError(`Invalid value: "${ip}": provided IP is already allocated`, 'spec.clusterIPs');
      used.ips.add(ip);
    }
    for (let i = ips.length; i < families.length; i++) ips.push(allocateIp(families[i]!, used.ips));
    spec.clusterIPs = ips;
    spec.clusterIP = ips[0];
  }

  const wantsNodePorts =
    spec.type === 'NodePort' || (spec.type === 'LoadBalancer' && spec.allocateLoadBalancerNodePorts !== false);
  if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') spec.externalTrafficPolicy ??= 'Cluster';
  for (const p of ports) {
    if (!wantsNodePorts) {
      if (spec.type === 'ClusterIP') delete p.nodePort;
      continue;
    }
    if (!p.nodePort) {
      const before = (old?.spec?.ports ?? []).find((o: Json) => o.port === p.port && (o.protocol ?? 'TCP') === p.protocol);
      p.nodePort = before?.nodePort && !used.ports.has(before.nodePort) ? before.nodePort : undefined;
    }
    if (p.nodePort) {
      if (p.nodePort < nodePortMin || p.nodePort > nodePortMax) {
        throw new AdmissionError(`Invalid value: ${p.nodePort}: provided port is not in the valid range. The range of valid ports is 30000-32767`, 'spec.ports.nodePort');
      }
      if (used.ports.has(p.nodePort)) throw new AdmissionError(`Invalid value: ${p.nodePort}: provided port is already allocated`, 'spec.ports.nodePort');
      used.ports.add(p.nodePort);
    } else {
      p.nodePort = allocateNodePort(used.ports);
    }
  }
}
