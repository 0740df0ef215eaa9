/**
 * Raw Kubernetes JSON (from the API server, a YAML manifest, or the client
 * library's typed objects) → the validated model of src/model/types.ts.
 *
 * Pure functions. Defaults are applied exactly where Kubernetes (or Cilium,
 * for its kinds) documents them, so controllers never re-check a field. Every
 * failure is a `ParseError` naming kind, object and field path — one per bad
 * field, all of them (the first carries the rest in `more`): each field,
 * list item and map entry is read under a `recover`/`items` boundary of
 * src/model/field-reader.ts, so a bad one is recorded and reading goes on.
 * An object with any bad field is rejected whole, as before.
 */
import { FieldReader, ParseError, show, type ObjectRef } from './field-reader.js';
import { tryParseAddress } from './cidr.js';
import {
  addressFamily,
  checkAddress,
  checkCidr,
  checkLabelKey,
  checkLabelName,
  checkLabelValue,
  checkPortName,
  checkServiceName,
  checkSubdomain,
  cidrFamily,
} from './syntax.js';
import type {
  BgpCommunities,
  BgpNeighbor,
  BgpNeighborBfd,
  BgpPathAttributes,
  BgpPolicy,
  BgpVirtualRouter,
  Condition,
  Endpoint,
  EndpointPort,
  EndpointSlice,
  IPFamily,
  IPFamilyPolicy,
  IPPool,
  Kind,
  L2Policy,
  LabelSelector,
  LabelSelectorRequirement,
  Lease,
  LoadBalancerIngress,
  ModelObject,
  Node,
  NodeAddress,
  ObjectMeta,
  PoolBlock,
  Protocol,
  Secret,
  SelectorOperator,
  Service,
  ServicePort,
  ServiceType,
} from './types.js';

export { ParseError } from './field-reader.js';

export type ParseResult<T extends ModelObject = ModelObject> =
  | { ok: true; object: T; /** Things accepted but not carried over (unsupported Cilium options, ...). */ warnings: string[] }
  | { ok: false; ignored?: false; error: ParseError }
  | { ok: false; ignored: true; reason: string };

/** Group of the pharos CRDs. */
export const PHAROS_API_VERSION = 'lb.pharos.io/v1alpha1';
/** Label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** pharos extension: Maglev weight of every endpoint in a slice. */
export const WEIGHT_ANNOTATION = 'lb.pharos.io/weight';
/** Honoured by Kubernetes cloud providers when spec.loadBalancerSourceRanges is empty. */
export const SOURCE_RANGES_ANNOTATION = 'service.beta.kubernetes.io/load-balancer-source-ranges';

type Flavor = 'pharos' | 'cilium';

interface Context {
  root: FieldReader;
  flavor: Flavor;
  warn(message: string): void;
}

type KindParser = (ctx: Context) => ModelObject;

/** `apiVersion kind` → parser. Anything else is ignored, with the reason. */
const PARSERS: ReadonlyMap<string, { model: Kind; parse: KindParser; flavor: Flavor }> = new Map([
  ['v1 Service', { model: 'Service', parse: parseServiceObject, flavor: 'pharos' }],
  ['v1 Node', { model: 'Node', parse: parseNodeObject, flavor: 'pharos' }],
  ['v1 Secret', { model: 'Secret', parse: parseSecretObject, flavor: 'pharos' }],
  ['discovery.k8s.io/v1 EndpointSlice', { model: 'EndpointSlice', parse: parseEndpointSliceObject, flavor: 'pharos' }],
  ['coordination.k8s.io/v1 Lease', { model: 'Lease', parse: parseLeaseObject, flavor: 'pharos' }],
  [`${PHAROS_API_VERSION} LoadBalancerIPPool`, { model: 'LoadBalancerIPPool', parse: parsePoolObject, flavor: 'pharos' }],
  [`${PHAROS_API_VERSION} L2AnnouncementPolicy`, { model: 'L2AnnouncementPolicy', parse: parseL2PolicyObject, flavor: 'pharos' }],
  [`${PHAROS_API_VERSION} BGPPeeringPolicy`, { model: 'BGPPeeringPolicy', parse: parseBgpPolicyObject, flavor: 'pharos' }],
  ['cilium.io/v2alpha1 CiliumLoadBalancerIPPool', { model: 'LoadBalancerIPPool', parse: parsePoolObject, flavor: 'cilium' }],
  ['cilium.io/v2 CiliumLoadBalancerIPPool', { model: 'LoadBalancerIPPool', parse: parsePoolObject, flavor: 'cilium' }],
  ['cilium.io/v2alpha1 CiliumL2AnnouncementPolicy', { model: 'L2AnnouncementPolicy', parse: parseL2PolicyObject, flavor: 'cilium' }],
  ['cilium.io/v2alpha1 CiliumBGPPeeringPolicy', { model: 'BGPPeeringPolicy', parse: parseBgpPolicyObject, flavor: 'cilium' }],
]);

/** The (apiVersion, kind) pairs parseObject understands, for sources that decide what to watch. */
export function supportedKinds(): { apiVersion: string; kind: string }[] {
  return [...PARSERS.keys()].map((k) => {
    const [apiVersion, kind] = k.split(' ') as [string, string];
    return { apiVersion, kind };
  });
}

/** The model kind a raw object would become (`CiliumLoadBalancerIPPool` → `LoadBalancerIPPool`), if supported. */
export function modelKindOf(raw: unknown): Kind | undefined {
  if (!isRecord(raw)) return undefined;
  return PARSERS.get(`${String(raw.apiVersion)} ${String(raw.kind)}`)?.model;
}

/** Parses any supported object, dispatching on apiVersion + kind. Never throws. */
export function parseObject(raw: unknown): ParseResult {
  const rawKind = isRecord(raw) && typeof raw.kind === 'string' ? raw.kind : '';
  const rawName = isRecord(raw) && isRecord(raw.metadata) && typeof raw.metadata.name === 'string' ? raw.metadata.name : '';
  const ref: ObjectRef = { kind: rawKind || 'object', name: rawName };
  const root = FieldReader.root(ref, raw);
  try {
    root.object();
    const apiVersion = root.get('apiVersion').nonEmptyString();
    const kind = root.get('kind').nonEmptyString();
    const entry = PARSERS.get(`${apiVersion} ${kind}`);
    if (!entry) {
      const knownKind = [...PARSERS.keys()].find((k) => k.endsWith(` ${kind}`));
      // A kind pharos reads under an apiVersion it does not serve is a typo worth an error (a Service
      // under `apiVersion: v2` would otherwise be dropped without a word); so is anything else in our group.
      if (knownKind) root.get('apiVersion').fail(`${show(apiVersion)} is not served (use ${knownKind.split(' ')[0]})`);
      if (apiVersion.startsWith('lb.pharos.io/')) {
        const ours = [...PARSERS.keys()].filter((k) => k.startsWith('lb.pharos.io/')).map((k) => k.split(' ')[1]);
        root.get('kind').fail(`${show(kind)} is not a kind of lb.pharos.io (${ours.join(', ')})`);
      }
      return {
        ok: false,
        ignored: true,
        reason: `${kind} "${rawName}": kind ${kind} in ${apiVersion} is not one pharos uses`,
      };
    }
    if (kind === 'EndpointSlice') {
      const missingLabel = serviceNameMissing(raw);
      if (missingLabel) return missingLabel;
    }
    return runParser(root, entry.flavor, entry.parse);
  } catch (err) {
    if (err instanceof ParseError) return { ok: false, error: err };
    throw err;
  }
}

function runParser<T extends ModelObject>(root: FieldReader, flavor: Flavor, parse: (ctx: Context) => T): ParseResult<T> {
  const warnings: string[] = [];
  const ctx: Context = {
    root,
    flavor,
    warn: (message) => warnings.push(message),
  };
  const object = root.recover(() => parse(ctx), undefined);
  if (object === undefined || root.problems.list.length > 0) return { ok: false, error: root.problems.error() };
  return { ok: true, object, warnings };
}

/** Per-kind entry points for sources that already know what they hold (an informer of one kind). */
export function parseService(raw: unknown): ParseResult<Service> {
  return parseAs(raw, 'Service', 'pharos', parseServiceObject);
}
export function parseEndpointSlice(raw: unknown): ParseResult<EndpointSlice> {
  const missingLabel = serviceNameMissing(raw);
  if (missingLabel) return missingLabel;
  return parseAs(raw, 'EndpointSlice', 'pharos', parseEndpointSliceObject);
}
export function parseNode(raw: unknown): ParseResult<Node> {
  return parseAs(raw, 'Node', 'pharos', parseNodeObject);
}
export function parseLease(raw: unknown): ParseResult<Lease> {
  return parseAs(raw, 'Lease', 'pharos', parseLeaseObject);
}
export function parseSecret(raw: unknown): ParseResult<Secret> {
  return parseAs(raw, 'Secret', 'pharos', parseSecretObject);
}

function parseAs<T extends ModelObject>(raw: unknown, kind: string, flavor: Flavor, parse: (ctx: Context) => T): ParseResult<T> {
  const rawName = isRecord(raw) && isRecord(raw.metadata) && typeof raw.metadata.name === 'string' ? raw.metadata.name : '';
  const root = FieldReader.root({ kind: isRecord(raw) && typeof raw.kind === 'string' ? raw.kind : kind, name: rawName }, raw);
  try {
    root.object();
  } catch (err) {
    if (err instanceof ParseError) return { ok: false, error: err };
    throw err;
  }
  return runParser(root, flavor, parse);
}

/** A slice that no Service owns is not an error, just nothing pharos balances to. */
function serviceNameMissing(raw: unknown): ParseResult<never> | undefined {
  if (!isRecord(raw) || !isRecord(raw.metadata)) return undefined;
  const labels = raw.metadata.labels;
  if (isRecord(labels) && labels[SERVICE_NAME_LABEL] !== undefined) return undefined;
  return { ok: false, ignored: true, reason: `EndpointSlice "${String(raw.metadata.name)}": no ${SERVICE_NAME_LABEL} label` };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------- metadata

type NameRule = 'subdomain' | 'service';

function readMeta(ctx: Context, scope: 'namespaced' | 'cluster', rule: NameRule = 'subdomain'): ObjectMeta {
  const m = ctx.root.get('metadata');
  m.object();
  const nameReader = m.get('name');
  const name = nameReader.nonEmptyString();
  ctx.root.ref.name = name;
  let namespace: string | undefined;
  if (scope === 'namespaced') {
    // kubectl puts a manifest without a namespace into "default"; so do we.
    const nsReader = m.get('namespace');
    namespace = nsReader.optString() ?? 'default';
    ctx.root.ref.namespace = namespace;
    const nsProblem = checkLabelName(namespace);
    if (nsProblem) nsReader.report(nsProblem);
  }
  const nameProblem = rule === 'service' ? checkServiceName(name) : checkSubdomain(name);
  if (nameProblem) nameReader.report(nameProblem);

  // Keys in one fixed order whatever the source: the store compares objects by their JSON.
  const meta: ObjectMeta = { name, ...(namespace !== undefined ? { namespace } : {}), labels: {}, annotations: {} };
  const uid = m.recover(() => m.get('uid').optString(), undefined);
  if (uid !== undefined) meta.uid = uid;
  const resourceVersion = m.recover(() => m.get('resourceVersion').optString(), undefined);
  if (resourceVersion !== undefined) meta.resourceVersion = resourceVersion;
  const generation = m.recover(() => m.get('generation').optInteger(0, Number.MAX_SAFE_INTEGER), undefined);
  if (generation !== undefined) meta.generation = generation;
  const created = m.recover(() => readTime(m.get('creationTimestamp'), true), undefined);
  if (created !== undefined) meta.creationTimestamp = created;

  const labels = m.get('labels');
  for (const [key, r] of labels.recover(() => labels.entries(), [])) {
    r.recover(() => {
      const keyProblem = checkLabelKey(key);
      if (keyProblem) r.report(keyProblem);
      const value = r.string();
      const valueProblem = checkLabelValue(value);
      if (valueProblem) r.report(valueProblem);
      meta.labels[key] = value;
    }, undefined);
  }
  const annotations = m.get('annotations');
  for (const [key, r] of annotations.recover(() => annotations.entries(), [])) {
    r.recover(() => {
      const keyProblem = checkLabelKey(key);
      if (keyProblem) r.report(keyProblem.replace('label key', 'annotation key'));
      meta.annotations[key] = r.string();
    }, undefined);
  }
  return meta;
}

/**
 * RFC 3339 text, or a Date as @kubernetes/client-node's typed objects carry.
 * `seconds` drops the milliseconds a Date adds, as metav1.Time has none.
 */
function readTime(r: FieldReader, seconds: boolean): string | undefined {
  if (r.absent) return undefined;
  if (r.value instanceof Date) {
    if (Number.isNaN(r.value.getTime())) r.fail('is not a valid time');
    const iso = r.value.toISOString();
    return seconds ? iso.replace(/\.\d{3}Z$/, 'Z') : iso;
  }
  const text = r.string();
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(text) || Number.isNaN(Date.parse(text))) {
    r.fail(`${show(text)} is not an RFC 3339 time`);
  }
  return text;
}

// ---------------------------------------------------------------- selectors

const SELECTOR_OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/**
 * A LabelSelector, structurally checked (keys, values, operators and their
 * value counts as the API server does). Absent → undefined. Unknown keys are
 * rejected: a typo such as `matchLabel` would otherwise select everything.
 */
export function readSelector(r: FieldReader): LabelSelector | undefined {
  if (r.absent) return undefined;
  r.object();
  r.onlyKeys(['matchLabels', 'matchExpressions']);
  const matchLabels: Record<string, string> = {};
  const labels = r.get('matchLabels');
  for (const [key, v] of labels.recover(() => labels.entries(), [])) {
    v.recover(() => {
      const keyProblem = checkLabelKey(key);
      if (keyProblem) v.report(keyProblem);
      const value = v.string();
      const valueProblem = checkLabelValue(value);
      if (valueProblem) v.report(valueProblem);
      matchLabels[key] = value;
    }, undefined);
  }
  const matchExpressions: LabelSelectorRequirement[] = r.get('matchExpressions').items((e) => {
    e.object();
    e.onlyKeys(['key', 'operator', 'values']);
    const keyReader = e.get('key');
    const key = keyReader.recover(() => keyReader.nonEmptyString(), '');
    const keyProblem = key === '' ? undefined : checkLabelKey(key);
    if (keyProblem) keyReader.report(keyProblem);
    const operatorReader = e.get('operator');
    const operator = operatorReader.recover(() => operatorReader.oneOf(SELECTOR_OPERATORS), undefined);
    const valuesReader = e.get('values');
    const values = valuesReader.items((v) => {
      const value = v.string();
      const problem = checkLabelValue(value);
      if (problem) v.report(problem);
      return value;
    });
    if ((operator === 'In' || operator === 'NotIn') && values.length === 0) {
      valuesReader.report(`must have at least one value for operator ${operator}`);
    }
    if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0) {
      valuesReader.report(`must be empty for operator ${operator}`);
    }
    return { key, operator: operator ?? 'In', values };
  });
  return { matchLabels, matchExpressions };
}

// ---------------------------------------------------------------- Service

const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const FAMILY_POLICIES: readonly IPFamilyPolicy[] = ['SingleStack', 'PreferDualStack', 'RequireDualStack'];
const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

function parseServiceObject(ctx: Context): Service {
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

function readAddressList(r: FieldReader): string[] {
  return r.items((item) => {
    const text = item.string();
    const problem = checkAddress(text);
    if (problem) item.report(problem);
    return text;
  });
}

function readCidrList(r: FieldReader): string[] {
  return r.items((item) => {
    const text = item.string();
    const problem = checkCidr(text);
    if (problem) item.report(problem);
    return text;
  });
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

function readConditions(r: FieldReader): Condition[] {
  return r.items((item) => {
    item.object();
    const condition: Condition = {
      type: item.get('type').nonEmptyString(),
      status: item.get('status').oneOf(['True', 'False', 'Unknown'] as const),
      reason: item.get('reason').optString() ?? '',
      message: item.get('message').optString() ?? '',
    };
    const since = readTime(item.get('lastTransitionTime'), true);
    if (since !== undefined) condition.lastTransitionTime = since;
    const observed = item.get('observedGeneration').optInteger(0, Number.MAX_SAFE_INTEGER);
    if (observed !== undefined) condition.observedGeneration = observed;
    return condition;
  });
}

// ---------------------------------------------------------------- EndpointSlice

function parseEndpointSliceObject(ctx: Context): EndpointSlice {
  const meta = readMeta(ctx, 'namespaced');
  const labelReader = ctx.root.get('metadata').get('labels').get(SERVICE_NAME_LABEL);
  const serviceName = labelReader.nonEmptyString();
  const serviceNameProblem = checkServiceName(serviceName);
  if (serviceNameProblem) labelReader.report(serviceNameProblem);

  const weightText = meta.annotations[WEIGHT_ANNOTATION];
  let weight = 1;
  if (weightText !== undefined) {
    const weightReader = ctx.root.get('metadata').get('annotations').get(WEIGHT_ANNOTATION);
    if (!/^(0|[1-9][0-9]{0,4})$/.test(weightText.trim()) || Number(weightText) > 65535) {
      weightReader.report(`${show(weightText)} is not a weight (an integer 0..65535)`);
    } else weight = Number(weightText);
  }

  const addressType = ctx.root.get('addressType').oneOf(['IPv4', 'IPv6', 'FQDN'] as const);
  const ports: EndpointPort[] = [];
  ctx.root.get('ports').items((r) => {
    r.object();
    const portReader = r.get('port');
    // A nil port means "all ports" in the API; pharos needs a port to forward to.
    if (portReader.absent) {
      ctx.warn(`${r.path}: no port (all ports) is not supported; entry skipped`);
      return;
    }
    const nameReader = r.get('name');
    const name = nameReader.optString() ?? '';
    if (name !== '') {
      const problem = checkPortName(name);
      if (problem) nameReader.report(problem);
    }
    ports.push({ name, port: portReader.integer(1, 65535), protocol: r.get('protocol').oneOf(PROTOCOLS, 'TCP') });
  });

  const endpoints: Endpoint[] = ctx.root
    .get('endpoints')
    .items((r) => {
      r.object();
      const addressesReader = r.get('addresses');
      const addresses = addressesReader.list().map((a) => {
        const text = a.nonEmptyString();
        if (addressType !== 'FQDN') {
          const family = addressFamily(text);
          if (!family) a.fail(`${show(text)} is not an IP address`);
          if (family !== addressType) a.fail(`${show(text)} is ${family} but addressType is ${addressType}`);
        }
        return text;
      });
      if (addresses.length === 0) addressesReader.fail('at least one address is required');
      if (addresses.length > 100) addressesReader.fail('may hold at most 100 addresses');
      const conditions = r.get('conditions');
      // API documentation: nil ready = ready; nil serving defers to ready; nil terminating = false.
      const ready = conditions.get('ready').boolean(true);
      const endpoint: Endpoint = {
        addresses,
        ready,
        serving: conditions.get('serving').boolean(ready),
        terminating: conditions.get('terminating').boolean(false),
        weight,
      };
      const nodeName = r.get('nodeName').optString();
      if (nodeName !== undefined) endpoint.nodeName = nodeName;
      const zone = r.get('zone').optString();
      if (zone !== undefined) endpoint.zone = zone;
      return endpoint;
    });

  return { kind: 'EndpointSlice', meta, serviceName, addressType, ports, endpoints };
}

// ---------------------------------------------------------------- Node, Lease, Secret

function parseNodeObject(ctx: Context): Node {
  const meta = readMeta(ctx, 'cluster');
  const addresses: NodeAddress[] = ctx.root
    .get('status')
    .get('addresses')
    .list()
    .map((r) => ({ type: r.get('type').nonEmptyString(), address: r.get('address').nonEmptyString() }));
  // Read for the drain hand-off only (src/model/drain.ts), leniently: a malformed field there must not lose the Node.
  const spec = ctx.root.get('spec').value as { unschedulable?: unknown; taints?: unknown } | null | undefined;
  const unschedulable = spec?.unschedulable === true;
  const taintKeys = Array.isArray(spec?.taints)
    ? spec.taints.map((t: unknown) => (t as { key?: unknown } | null)?.key).filter((k): k is string => typeof k === 'string')
    : [];
  return { kind: 'Node', meta, addresses, ...(unschedulable ? { unschedulable } : {}), ...(taintKeys.length ? { taintKeys } : {}) };
}

function parseLeaseObject(ctx: Context): Lease {
  const meta = readMeta(ctx, 'namespaced');
  const spec = ctx.root.get('spec');
  const lease: Lease = { kind: 'Lease', meta };
  const holder = spec.get('holderIdentity').optString();
  if (holder !== undefined) lease.holderIdentity = holder;
  const duration = spec.get('leaseDurationSeconds').optInteger(0, 2 ** 31 - 1);
  if (duration !== undefined) lease.leaseDurationSeconds = duration;
  const acquireTime = readTime(spec.get('acquireTime'), false);
  if (acquireTime !== undefined) lease.acquireTime = acquireTime;
  const renewTime = readTime(spec.get('renewTime'), false);
  if (renewTime !== undefined) lease.renewTime = renewTime;
  const transitions = spec.get('leaseTransitions').optInteger(0, 2 ** 31 - 1);
  if (transitions !== undefined) lease.leaseTransitions = transitions;
  return lease;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function parseSecretObject(ctx: Context): Secret {
  const meta = readMeta(ctx, 'namespaced');
  const data: Record<string, string> = {};
  const dataReader = ctx.root.get('data');
  for (const [key, r] of dataReader.recover(() => dataReader.entries(), [])) {
    r.recover(() => {
      const encoded = r.string();
      if (!BASE64.test(encoded)) r.report('is not valid base64');
      data[key] = Buffer.from(encoded, 'base64').toString('utf8');
    }, undefined);
  }
  // stringData is write-only in the API (merged into data, winning); manifests use it.
  const stringData = ctx.root.get('stringData');
  for (const [key, r] of stringData.recover(() => stringData.entries(), [])) {
    r.recover(() => {
      data[key] = r.string();
    }, undefined);
  }
  return { kind: 'Secret', meta, data };
}

// ---------------------------------------------------------------- LoadBalancerIPPool

function parsePoolObject(ctx: Context): IPPool {
  const meta = readMeta(ctx, 'cluster');
  const spec = ctx.root.get('spec');
  spec.object();
  if (ctx.flavor === 'pharos') spec.onlyKeys(['blocks', 'serviceSelector', 'disabled', 'allowFirstLastIPs']);
  const blocksReader = spec.get('blocks');
  const blocks = blocksReader.items((r) => readBlock(r, ctx.flavor));
  // Cilium before 1.15 wrote spec.cidrs[] {cidr}; v2alpha1 still accepts it next to blocks.
  const cidrsReader = spec.get('cidrs');
  if (ctx.flavor === 'cilium') blocks.push(...cidrsReader.items((r) => readBlock(r, ctx.flavor)));
  // None written at all (a written but bad block has been reported already).
  const written = (r: FieldReader): number => (r.absent ? 0 : Array.isArray(r.value) ? r.value.length : 1);
  if (written(blocksReader) + (ctx.flavor === 'cilium' ? written(cidrsReader) : 0) === 0) {
    blocksReader.report(ctx.flavor === 'cilium' ? 'at least one block (or cidr) is required' : 'at least one block is required');
  }
  const pool: IPPool = {
    kind: 'LoadBalancerIPPool',
    meta,
    flavor: ctx.flavor,
    blocks,
    disabled: spec.recover(() => spec.get('disabled').boolean(false), false),
    allowFirstLastIPs: spec.recover(() => spec.get('allowFirstLastIPs').oneOf(['Yes', 'No'] as const, 'Yes'), 'Yes') === 'Yes',
  };
  const serviceSelector = spec.recover(() => readSelector(spec.get('serviceSelector')), undefined);
  if (serviceSelector) pool.serviceSelector = serviceSelector;
  return pool;
}

function readBlock(r: FieldReader, flavor: Flavor): PoolBlock {
  r.object();
  if (flavor === 'pharos') r.onlyKeys(['cidr', 'start', 'stop']);
  const cidrReader = r.get('cidr');
  const startReader: FieldReader = r.get('start');
  const stopReader: FieldReader = r.get('stop');
  const cidr = cidrReader.optString();
  const start = startReader.optString();
  const stop = stopReader.optString();
  if (cidr !== undefined) {
    if (start !== undefined || stop !== undefined) r.fail('give either cidr or start/stop, not both');
    const problem = checkCidr(cidr);
    if (problem) cidrReader.fail(problem);
    return { cidr };
  }
  if (start === undefined) {
    if (stop !== undefined) startReader.fail('required when stop is given');
    r.fail('needs cidr or start (with an optional stop)');
  }
  const startFamily = addressFamily(start);
  if (!startFamily) startReader.fail(`${show(start)} is not an IP address`);
  if (stop === undefined) return { start, stop: start };
  const stopFamily = addressFamily(stop);
  if (!stopFamily) stopReader.fail(`${show(stop)} is not an IP address`);
  if (stopFamily !== startFamily) stopReader.fail(`${show(stop)} is ${stopFamily} but start ${show(start)} is ${startFamily}`);
  if (addressValue(stop) < addressValue(start)) {
    stopReader.fail(`${show(stop)} comes before start ${show(start)}`);
  }
  return { start, stop };
}

function addressValue(text: string): bigint {
  return tryParseAddress(text)?.value ?? 0n;
}

// ---------------------------------------------------------------- L2AnnouncementPolicy

function parseL2PolicyObject(ctx: Context): L2Policy {
  const meta = readMeta(ctx, 'cluster');
  const spec = ctx.root.get('spec');
  spec.object();
  if (ctx.flavor === 'pharos') {
    spec.onlyKeys(['serviceSelector', 'nodeSelector', 'interfaces', 'loadBalancerIPs', 'externalIPs']);
  }
  const interfaces = spec.get('interfaces').items((r) => {
    const pattern = r.string();
    try {
      new RegExp(pattern);
    } catch (err) {
      r.report(`${show(pattern)} is not a valid regular expression: ${(err as Error).message}`);
    }
    return pattern;
  });
  // Cilium's booleans default to false; pharos announces load-balancer IPs unless told not to,
  // because a policy that announces nothing is never what a user meant.
  const policy: L2Policy = {
    kind: 'L2AnnouncementPolicy',
    meta,
    flavor: ctx.flavor,
    interfaces,
    loadBalancerIPs: spec.recover(() => spec.get('loadBalancerIPs').boolean(ctx.flavor === 'pharos'), ctx.flavor === 'pharos'),
    externalIPs: spec.recover(() => spec.get('externalIPs').boolean(false), false),
  };
  if (!policy.loadBalancerIPs && !policy.externalIPs) {
    ctx.warn('announces nothing: neither spec.loadBalancerIPs nor spec.externalIPs is true');
  }
  const serviceSelector = spec.recover(() => readSelector(spec.get('serviceSelector')), undefined);
  if (serviceSelector) policy.serviceSelector = serviceSelector;
  const nodeSelector = spec.recover(() => readSelector(spec.get('nodeSelector')), undefined);
  if (nodeSelector) policy.nodeSelector = nodeSelector;
  return policy;
}

// ---------------------------------------------------------------- BGPPeeringPolicy

const MAX_ASN = 4294967295;
const WELL_KNOWN_COMMUNITIES = [
  'internet',
  'planned-shut',
  'accept-own',
  'route-filter-translated-v4',
  'route-filter-v4',
  'route-filter-translated-v6',
  'route-filter-v6',
  'llgr-stale',
  'no-llgr',
  'blackhole',
  'no-export',
  'no-advertise',
  'no-export-subconfed',
  'no-peer',
] as const;

function parseBgpPolicyObject(ctx: Context): BgpPolicy {
  const meta = readMeta(ctx, 'cluster');
  const spec = ctx.root.get('spec');
  spec.object();
  if (ctx.flavor === 'pharos') spec.onlyKeys(['nodeSelector', 'virtualRouters']);
  const routersReader = spec.get('virtualRouters');
  const routerReaders = routersReader.recover(() => routersReader.list(), []);
  // Index for index with routerReaders; undefined where a router was bad (reported).
  const read = routerReaders.map((r) => r.recover(() => readVirtualRouter(r, ctx), undefined));
  const virtualRouters = read.filter((vr): vr is BgpVirtualRouter => vr !== undefined);
  if (routerReaders.length === 0 && (routersReader.absent || Array.isArray(routersReader.value))) {
    routersReader.report('at least one virtual router is required');
  }
  const seenASN = new Map<number, number>();
  read.forEach((vr, i) => {
    if (!vr || vr.localASN === 0) return; // 0: its localASN was bad (reported)
    const prev = seenASN.get(vr.localASN);
    if (prev !== undefined) routerReaders[i]!.get('localASN').report(`duplicate of virtualRouters[${prev}].localASN (${vr.localASN})`);
    seenASN.set(vr.localASN, i);
  });
  const policy: BgpPolicy = { kind: 'BGPPeeringPolicy', meta, flavor: ctx.flavor, virtualRouters };
  const nodeSelector = spec.recover(() => readSelector(spec.get('nodeSelector')), undefined);
  if (nodeSelector) policy.nodeSelector = nodeSelector;
  return policy;
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
  const neighborsReader = r.get('neighbors');
  const neighborReaders = neighborsReader.recover(() => neighborsReader.list(), []);
  // Index for index with neighborReaders; undefined where a neighbor was bad (reported).
  const read = neighborReaders.map((n) => n.recover(() => readNeighbor(n, ctx), undefined));
  const neighbors = read.filter((n): n is BgpNeighbor => n !== undefined);
  if (neighborReaders.length === 0 && (neighborsReader.absent || Array.isArray(neighborsReader.value))) {
    neighborsReader.report('at least one neighbor is required');
  }
  const seenPeers = new Map<string, number>();
  read.forEach((n, i) => {
    if (!n) return;
    const address = n.peerAddress.split('/')[0]!;
    const prev = seenPeers.get(address);
    if (prev !== undefined) neighborReaders[i]!.get('peerAddress').report(`duplicate of neighbors[${prev}].peerAddress`);
    seenPeers.set(address, i);
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

function readNeighbor(r: FieldReader, ctx: Context): BgpNeighbor | undefined {
  r.object();
  if (ctx.flavor === 'pharos') {
    r.onlyKeys([
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
      'password',
      'sourceAddress',
      'maxPrefixes',
      'maxPrefixAction',
      'bfd',
    ]);
  }
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
    if (!isStandardCommunity(text) && !(WELL_KNOWN_COMMUNITIES as readonly string[]).includes(text)) {
      item.report(`${show(text)} is not a community (ASN:value with each part 0..65535, a 32-bit number, or a well-known name)`);
    }
    return text;
  });
  standard.push(...r.get('wellKnown').items((item) => item.oneOf(WELL_KNOWN_COMMUNITIES)));
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
