/**
 * The CRDs in deploy/crds/ against the examples in deploy/examples/ and
 * against src/model/parse.ts: the lab API server's schema code
 * (src/lab/apiserver/schema.ts) checks each manifest as the API server would,
 * and the same manifests go through the parser. Schema defaults and parser
 * defaults must agree.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { pruneAndDefault, validateSchema } from '../../src/lab/apiserver/schema.js';
import { parseObject } from '../../src/model/parse.js';

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  default?: unknown;
  oneOf?: Schema[];
  anyOf?: Schema[];
  not?: Schema;
  format?: string;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

interface Crd {
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; singular: string; listKind: string; shortNames?: string[] };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: object };
      additionalPrinterColumns?: { name: string; type: string; jsonPath: string; priority?: number }[];
      schema: { openAPIV3Schema: Schema };
    }[];
  };
}

const root = join(import.meta.dirname, '..', '..');
const crdDir = join(root, 'deploy', 'crds');
const exampleDir = join(root, 'deploy', 'examples');

function loadDocs(path: string): unknown[] {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d) => {
      if (d.errors.length) throw new Error(`${path}: ${d.errors[0]!.message}`);
      return d.toJS() as unknown;
    })
    .filter((d) => d !== null);
}

const crds: Crd[] = readdirSync(crdDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .flatMap((f) => loadDocs(join(crdDir, f)) as Crd[]);

function crdFor(apiVersion: string, kind: string): Crd | undefined {
  return crds.find((c) => `${c.spec.group}/${c.spec.versions[0]!.name}` === apiVersion && c.spec.names.kind === kind);
}

/** The manifest as the API server stores it: pruned and defaulted by its CRD's schema. */
function defaultedBySchema(crd: Crd, raw: object): Record<string, unknown> {
  const doc = structuredClone(raw) as Record<string, unknown>;
  pruneAndDefault(doc, crd.spec.versions[0]!.schema.openAPIV3Schema, true);
  return doc;
}

/**
 * What the API server does with the manifest (src/lab/apiserver/schema.ts:
 * prune, default, validate), as `path: message`; a pruned unknown field is
 * an error here (the server would drop it silently: a typo in a manifest).
 */
function validateManifest(raw: Record<string, unknown>): string[] {
  const crd = crdFor(String(raw.apiVersion), String(raw.kind));
  if (!crd) throw new Error(`no CRD for ${String(raw.apiVersion)} ${String(raw.kind)}`);
  const schema = crd.spec.versions[0]!.schema.openAPIV3Schema;
  const doc = structuredClone(raw);
  const pruned: string[] = [];
  pruneAndDefault(doc, schema, true, pruned);
  return [...pruned.map((path) => `${path}: unknown field`), ...validateSchema(doc, schema, '', true).map((i) => `${i.field}: ${i.message}`)];
}

/** Structural-schema rules: every node typed (outside oneOf/anyOf/not), no `type` inside those. */
const SCHEMA_KEYWORDS = new Set([
  'type', 'properties', 'additionalProperties', 'items', 'required', 'enum', 'pattern', 'minLength', 'maxLength',
  'minimum', 'maximum', 'minItems', 'maxItems', 'default', 'oneOf', 'anyOf', 'not', 'format', 'description', 'nullable',
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-map-type', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys',
]);

function structuralProblems(schema: Schema, path: string, inCombinator: boolean, out: string[]): void {
  for (const key of Object.keys(schema)) if (!SCHEMA_KEYWORDS.has(key)) out.push(`${path}: unknown schema keyword ${key}`);
  if (schema.properties === null) out.push(`${path}: empty properties`);
  if (!inCombinator && !schema.type && !schema['x-kubernetes-preserve-unknown-fields']) out.push(`${path}: no type`);
  if (inCombinator && (schema.type || schema.default !== undefined)) out.push(`${path}: type/default inside a combinator`);
  for (const [k, s] of Object.entries(schema.properties ?? {})) structuralProblems(s, `${path}.${k}`, inCombinator, out);
  if (schema.items) structuralProblems(schema.items, `${path}[]`, inCombinator, out);
  if (typeof schema.additionalProperties === 'object') structuralProblems(schema.additionalProperties, `${path}{}`, inCombinator, out);
  for (const s of [...(schema.oneOf ?? []), ...(schema.anyOf ?? []), ...(schema.not ? [schema.not] : [])]) {
    structuralProblems(s, `${path}(combinator)`, true, out);
  }
  if (schema.default !== undefined) {
    out.push(...validateSchema(schema.default, schema, path).map((i) => `default: ${i.field}: ${i.message}`));
  }
}

/** Whether a printer-column JSONPath names fields the schema has (`.a.b`, `.a[?(@.type=="x")].status`). */
function resolvesInSchema(schema: Schema, jsonPath: string): boolean {
  const parts = jsonPath.replace(/\[\?\(@\.type==".*?"\)\]/g, '[]').split('.').filter(Boolean);
  let node: Schema | undefined = schema;
  for (const part of parts) {
    const [name, filter] = part.endsWith('[]') ? [part.slice(0, -2), true] : [part, false];
    if (name === 'metadata' && node === schema) return true;
    node = node?.properties?.[name];
    if (filter) node = node?.items;
    if (!node) return false;
  }
  return true;
}

const examples = readdirSync(exampleDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => ({ file: f, docs: loadDocs(join(exampleDir, f)) as Record<string, unknown>[] }));

t.test('CRDs are structural, served, with status subresources and printer columns that resolve', async (t) => {
  t.same(crds.map((c) => c.spec.names.kind).sort(), ['BGPPeeringPolicy', 'L2AnnouncementPolicy', 'LoadBalancerIPPool']);
  for (const crd of crds) {
    const v = crd.spec.versions;
    t.equal(crd.spec.group, 'lb.pharos.io');
    t.equal(crd.metadata.name, `${crd.spec.names.plural}.lb.pharos.io`, 'CRD name is plural.group');
    t.equal(crd.spec.scope, 'Cluster');
    t.equal(crd.spec.names.singular, crd.spec.names.kind.toLowerCase());
    t.equal(crd.spec.names.listKind, `${crd.spec.names.kind}List`);
    t.same(v.map((x) => [x.name, x.served, x.storage]), [['v1alpha1', true, true]]);
    t.ok(v[0]!.subresources?.status, `${crd.spec.names.kind}: status subresource`);
    const problems: string[] = [];
    structuralProblems(v[0]!.schema.openAPIV3Schema, crd.spec.names.kind, false, problems);
    t.same(problems, [], `${crd.spec.names.kind}: structural schema`);
    for (const col of v[0]!.additionalPrinterColumns ?? []) {
      t.ok(resolvesInSchema(v[0]!.schema.openAPIV3Schema, col.jsonPath), `${crd.spec.names.kind} column ${col.name}: ${col.jsonPath}`);
    }
  }
  const pool = crds.find((c) => c.spec.names.kind === 'LoadBalancerIPPool')!;
  t.same(pool.spec.names.shortNames, ['ippools', 'ippool', 'lbippool']);
  const columns = (pool.spec.versions[0]!.additionalPrinterColumns ?? []).filter((c) => !c.priority).map((c) => c.name.toUpperCase());
  t.equal(['NAME', ...columns].join(' '), 'NAME DISABLED CONFLICTING IPS AVAILABLE AGE', 'kubectl get ippools columns');
});

t.test('examples validate against the CRDs and parse without errors', async (t) => {
  t.ok(examples.length >= 5);
  for (const { file, docs } of examples) {
    for (const [i, doc] of docs.entries()) {
      const label = `${file} doc ${i} (${String(doc.kind)} ${String((doc.metadata as { name?: string })?.name)})`;
      if (String(doc.apiVersion).startsWith('lb.pharos.io/')) t.same(validateManifest(doc), [], `${label}: schema`);
      const r = parseObject(doc);
      if (r.ok) t.same(r.warnings, [], `${label}: parsed without warnings`);
      else if (r.ignored) t.equal(doc.kind, 'Deployment', `${label}: only Deployments are ignored (${r.reason})`);
      else t.fail(`${label}: ${r.error.toString()}`);
    }
  }
});

t.test('schema defaults agree with the parser defaults', async (t) => {
  for (const { file, docs } of examples) {
    for (const [i, doc] of docs.entries()) {
      if (!String(doc.apiVersion).startsWith('lb.pharos.io/')) continue;
      const crd = crdFor(String(doc.apiVersion), String(doc.kind))!;
      const defaulted = defaultedBySchema(crd, doc);
      const a = parseObject(doc);
      const b = parseObject(defaulted);
      t.ok(a.ok && b.ok, `${file} doc ${i} parses both ways`);
      if (a.ok && b.ok) t.same(b.object, a.object, `${file} doc ${i}: same model with or without the API server's defaults`);
    }
  }
  // The bare minimum of each kind, defaulted by the schema, gives the parser's defaults too.
  const minimal = [
    { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'p' }, spec: { blocks: [{ cidr: '198.18.0.0/24' }] } },
    { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'l' }, spec: {} },
    {
      apiVersion: 'lb.pharos.io/v1alpha1',
      kind: 'BGPPeeringPolicy',
      metadata: { name: 'b' },
      spec: { virtualRouters: [{ localASN: 64512, neighbors: [{ peerAddress: '198.18.0.1/32', peerASN: 65000, gracefulRestart: { enabled: true } }] }] },
    },
  ];
  for (const doc of minimal) {
    const crd = crdFor(doc.apiVersion, doc.kind)!;
    const defaulted = defaultedBySchema(crd, doc);
    t.same(validateManifest(doc), [], `${doc.kind}: minimal manifest valid`);
    const a = parseObject(doc);
    const b = parseObject(defaulted);
    t.ok(a.ok && b.ok);
    if (a.ok && b.ok) t.same(b.object, a.object, `${doc.kind}: schema defaults = parser defaults`);
  }
});

t.test('obvious mistakes are rejected by the schema and by the parser alike', async (t) => {
  const pool = (spec: unknown) => ({ apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'p' }, spec });
  const l2 = (spec: unknown) => ({ apiVersion: 'lb.pharos.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'l' }, spec });
  const bgp = (vr: Record<string, unknown>, n: Record<string, unknown> = {}) => ({
    apiVersion: 'lb.pharos.io/v1alpha1',
    kind: 'BGPPeeringPolicy',
    metadata: { name: 'b' },
    spec: { virtualRouters: [{ localASN: 64512, neighbors: [{ peerAddress: '198.18.0.1/32', peerASN: 65000, ...n }], ...vr }] },
  });
  const mistakes: [string, Record<string, unknown>][] = [
    ['no blocks', pool({ blocks: [] })],
    ['cidr and start', pool({ blocks: [{ cidr: '198.18.0.0/24', start: '198.18.0.1' }] })],
    ['stop alone', pool({ blocks: [{ stop: '198.18.0.1' }] })],
    ['empty block', pool({ blocks: [{}] })],
    ['cidr without length', pool({ blocks: [{ cidr: '198.18.0.0' }] })],
    ['cidr with a name', pool({ blocks: [{ cidr: 'office-net/24' }] })],
    ['disabled as string', pool({ blocks: [{ cidr: '198.18.0.0/24' }], disabled: 'true' })],
    ['allowFirstLastIPs lowercase', pool({ blocks: [{ cidr: '198.18.0.0/24' }], allowFirstLastIPs: 'yes' })],
    ['selector typo', pool({ blocks: [{ cidr: '198.18.0.0/24' }], serviceSelector: { matchLabel: { a: 'b' } } })],
    ['bad operator', pool({ blocks: [{ cidr: '198.18.0.0/24' }], serviceSelector: { matchExpressions: [{ key: 'a', operator: 'Equals' }] } })],
    ['spec typo', pool({ block: [{ cidr: '198.18.0.0/24' }] })],
    ['interfaces as string', l2({ interfaces: 'eth0' })],
    ['loadBalancerIPs as string', l2({ loadBalancerIPs: 'yes' })],
    ['ASN 0', bgp({ localASN: 0 })],
    ['ASN too big', bgp({ localASN: 4294967296 })],
    ['no neighbors', bgp({ neighbors: [] })],
    ['peer port 0', bgp({}, { peerPort: 0 })],
    ['hold time 1', bgp({}, { holdTimeSeconds: 1 })],
    ['restart time 5000', bgp({}, { gracefulRestart: { enabled: true, restartTimeSeconds: 5000 } })],
    ['family l2vpn', bgp({}, { families: [{ afi: 'l2vpn', safi: 'evpn' }] })],
    ['advertise ClusterIP', bgp({ serviceAdvertisements: ['ClusterIP'] })],
    ['Cilium selectorType', bgp({}, { advertisedPathAttributes: [{ selectorType: 'CiliumLoadBalancerIPPool' }] })],
    ['community word', bgp({}, { advertisedPathAttributes: [{ selectorType: 'Service', communities: { standard: ['no-such'] } }] })],
    ['password and secret', bgp({}, { password: 'a', authSecretRef: 'b' })],
    ['password too long', bgp({}, { password: 'x'.repeat(81) })],
    ['neighbor typo', bgp({}, { peerAsn: 1 })],
  ];
  for (const [what, doc] of mistakes) {
    t.not(validateManifest(doc).length, 0, `${what}: schema rejects`);
    const r = parseObject(doc);
    t.ok(!r.ok && !r.ignored, `${what}: parser rejects${r.ok ? '' : r.ignored ? '' : ` (${r.error.toString()})`}`);
  }
});
