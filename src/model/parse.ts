/**
 * Raw Kubernetes JSON (from the API server, a YAML manifest, or the client
 * library's typed objects) → the validated model of src/model/types.ts.
 * This file dispatches on apiVersion + kind; each kind's reader is in
 * src/model/parse/<kind>.ts, their shared readers in parse/common.ts.
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
import type { EndpointSlice, Kind, Lease, ModelObject, Node, Secret, Service } from './types.js';
import type { Context, Flavor } from './parse/common.js';
import { parseServiceObject } from './parse/service.js';
import { parseEndpointSliceObject, SERVICE_NAME_LABEL } from './parse/endpoint-slice.js';
import { parseNodeObject } from './parse/node.js';
import { parseLeaseObject } from './parse/lease.js';
import { parseSecretObject } from './parse/secret.js';
import { parsePoolObject } from './parse/pool.js';
import { parseL2PolicyObject } from './parse/l2-policy.js';
import { parseBgpPolicyObject } from './parse/bgp-policy.js';

export { ParseError } from './field-reader.js';

export type ParseResult<T extends ModelObject = ModelObject> =
  | { ok: true; object: T; /** Things accepted but not carried over (unsupported Cilium options, ...). */ warnings: string[] }
  | { ok: false; ignored?: false; error: ParseError }
  | { ok: false; ignored: true; reason: string };

/** Group of the pharos CRDs. */
export const PHAROS_API_VERSION = 'lb.pharos.io/v1alpha1';

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
