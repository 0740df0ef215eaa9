/**
 * Issue 17 item 4: every bad field of one object is reported, not only the
 * first — each naming the object (kind, namespace, name) and the field — and
 * the object is still rejected whole. The first error is the one reported
 * before (same field, same message), so every message test of
 * test/model/parse.test.ts still holds.
 */
import t from 'tap';
import fc from 'fast-check';
import { parseObject, type ParseResult } from '../../src/model/parse.js';
import { Problems } from '../../src/model/field-reader.js';
import { interpretFile } from '../../src/sources/manifests/interpret.js';

function errors(r: ParseResult): { field: string; message: string; who: string }[] {
  if (r.ok) throw new Error(`expected a validation error, got ${JSON.stringify(r.object)}`);
  if (r.ignored) throw new Error(`expected a validation error, got ignored: ${r.reason}`);
  return r.error.all.map((e) => ({ field: e.field, message: e.message, who: `${e.kind} ${e.namespace ? `${e.namespace}/` : ''}${e.name}` }));
}

t.test('a pool with an unknown field deep in a block, a bad CIDR and a bad selector operator: all three, in field order', async (t) => {
  const raw = {
    apiVersion: 'lb.pharos.io/v1alpha1',
    kind: 'LoadBalancerIPPool',
    metadata: { name: 'blue' },
    spec: {
      blocks: [{ cidr: '198.18.0.0/24', stopp: '198.18.0.9' }, { cidr: '198.18.1.0/33' }, { cidr: '198.18.2.0/24' }],
      serviceSelector: { matchExpressions: [{ key: 'color', operator: 'in', values: ['blue'] }] },
    },
  };
  const r = parseObject(raw);
  t.same(errors(r), [
    { who: 'LoadBalancerIPPool blue', field: 'spec.blocks[0].stopp', message: 'unknown field (expected one of: cidr, start, stop)' },
    { who: 'LoadBalancerIPPool blue', field: 'spec.blocks[1].cidr', message: '"198.18.1.0/33" is not a CIDR' },
    { who: 'LoadBalancerIPPool blue', field: 'spec.serviceSelector.matchExpressions[0].operator', message: '"in" is not one of In, NotIn, Exists, DoesNotExist' },
  ]);
  t.equal(
    !r.ok && !r.ignored && r.error.toString(),
    'LoadBalancerIPPool "blue": spec.blocks[0].stopp: unknown field (expected one of: cidr, start, stop); ' +
      'spec.blocks[1].cidr: "198.18.1.0/33" is not a CIDR; ' +
      'spec.serviceSelector.matchExpressions[0].operator: "in" is not one of In, NotIn, Exists, DoesNotExist',
    'one line names them all (what the Kubernetes source logs and lists in pharos status)',
  );
  t.match(!r.ok && !r.ignored && r.error.toJSON(), { field: 'spec.blocks[0].stopp', more: [{ field: 'spec.blocks[1].cidr' }, { field: 'spec.serviceSelector.matchExpressions[0].operator' }] });
  t.notOk(r.ok, 'the object is rejected whole: no valid block of it is taken alone');
});

t.test('a Service with several bad fields names each with its namespace', async (t) => {
  const raw = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'echo', namespace: 'demo', labels: { 'bad key!': 'x' } },
    spec: {
      type: 'ClusterIP',
      ports: [{ port: 80, name: 'Http' }, { port: 70000, name: 'b' }],
      externalIPs: ['198.51.100.1', 'nope'],
      loadBalancerIP: '198.51.100.300',
      loadBalancerClass: 'lb.pharos.io/l2',
      externalTrafficPolicy: 'Locale',
    },
  };
  const got = errors(parseObject(raw));
  t.same(
    got.map((e) => e.field),
    [
      'metadata.labels["bad key!"]',
      'spec.ports[0].name',
      'spec.ports[1].port',
      'spec.externalIPs[1]',
      'spec.loadBalancerIP',
      'spec.loadBalancerClass',
      'spec.externalTrafficPolicy',
    ],
  );
  t.ok(got.every((e) => e.who === 'Service demo/echo'));
  t.match(got[5]!.message, 'may only be set for type LoadBalancer, not ClusterIP');
});

t.test('no echo: a field that depends on a bad one is not reported again', async (t) => {
  const svc = errors(parseObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { type: 'Balancer', loadBalancerClass: 'c' } }));
  t.same(svc.map((e) => e.field), ['spec.type'], 'loadBalancerClass is not judged against a type that could not be read');
  const pool = errors(parseObject({ apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'p' }, spec: { blocks: [{ cidr: 'x' }] } }));
  t.same(pool.map((e) => e.field), ['spec.blocks[0].cidr'], 'a bad block is not also "at least one block is required"');
  const bgp = errors(
    parseObject({
      apiVersion: 'lb.pharos.io/v1alpha1',
      kind: 'BGPPeeringPolicy',
      metadata: { name: 'rack1' },
      spec: {
        virtualRouters: [
          { localASN: 65001, neighbors: [{ peerAddress: 'x', peerASN: 65000, sourceAddress: '198.51.100.9' }, { peerAddress: '198.51.100.1/32', peerASN: 0, holdTimeSeconds: 9, keepAliveTimeSeconds: 10 }] },
        ],
      },
    }),
  );
  t.same(
    bgp.map((e) => e.field),
    ['spec.virtualRouters[0].neighbors[0].peerAddress', 'spec.virtualRouters[0].neighbors[1].keepAliveTimeSeconds', 'spec.virtualRouters[0].neighbors[1].peerASN'],
    'sourceAddress is not compared with a peer address that could not be read; both neighbors are checked',
  );
});

t.test('a hostile object reports at most Problems.LIMIT problems and counts the rest', async (t) => {
  const labels = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, `bad value ${i}`]));
  const r = parseObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x', labels }, spec: {} });
  const all = errors(r);
  t.equal(all.length, Problems.LIMIT + 1);
  t.same(all.at(-1), { who: 'Service default/x', field: '', message: `and ${200 - Problems.LIMIT} more problems not listed` });
});

t.test('manifests mode: one problem per bad field, each naming file, object and field; the last good version stays', async (t) => {
  const good = ['apiVersion: lb.pharos.io/v1alpha1', 'kind: LoadBalancerIPPool', 'metadata: {name: blue}', 'spec:', '  blocks: [{cidr: 198.18.0.0/24}]', ''].join('\n');
  const first = interpretFile('pools.yaml', good, undefined);
  t.equal(first.records.length, 1);
  const bad = [
    'apiVersion: lb.pharos.io/v1alpha1',
    'kind: LoadBalancerIPPool',
    'metadata: {name: blue}',
    'spec:',
    '  blocks: [{cidr: 198.18.0.0/24, stopp: x}, {cidr: 198.18.1.0/33}]',
    '  serviceSelector: {matchExpressions: [{key: color, operator: in, values: [blue]}]}',
    '',
  ].join('\n');
  const next = interpretFile('pools.yaml', bad, first);
  t.same(
    next.problems.map((p) => [p.severity, p.file, p.kind, p.name, p.field, p.keptLastGood]),
    [
      ['error', 'pools.yaml', 'LoadBalancerIPPool', 'blue', 'spec.blocks[0].stopp', true],
      ['error', 'pools.yaml', 'LoadBalancerIPPool', 'blue', 'spec.blocks[1].cidr', true],
      ['error', 'pools.yaml', 'LoadBalancerIPPool', 'blue', 'spec.serviceSelector.matchExpressions[0].operator', true],
    ],
  );
  t.same(next.records.map((r) => r.object), first.records.map((r) => r.object), 'the last good version is still in force');
});

// ---------------------------------------------------------------- property

/** A valid pool, and independent ways to break one field of it each (the field each one must be reported under). */
const CORRUPTIONS: { field: string; apply: (spec: Record<string, any>) => void }[] = [
  // In the order pharos reads them (unknown keys of spec first), which is the order they are reported in.
  { field: 'spec.serviceSelecter', apply: (s) => (s.serviceSelecter = {}) },
  { field: 'spec.blocks[0].stopp', apply: (s) => (s.blocks[0].stopp = '198.18.0.9') },
  { field: 'spec.blocks[1].cidr', apply: (s) => (s.blocks[1].cidr = '198.18.1.0/99') },
  { field: 'spec.blocks[2].stop', apply: (s) => (s.blocks[2].stop = '198.18.2.0') },
  { field: 'spec.disabled', apply: (s) => (s.disabled = 'yes') },
  { field: 'spec.allowFirstLastIPs', apply: (s) => (s.allowFirstLastIPs = true) },
  { field: 'spec.serviceSelector.matchLabels.color', apply: (s) => (s.serviceSelector.matchLabels.color = 'not ok') },
  { field: 'spec.serviceSelector.matchExpressions[0].operator', apply: (s) => (s.serviceSelector.matchExpressions[0].operator = 'in') },
  { field: 'spec.serviceSelector.matchExpressions[1].values', apply: (s) => (s.serviceSelector.matchExpressions[1].values = ['x']) },
];

function validPool(): { apiVersion: string; kind: string; metadata: { name: string }; spec: Record<string, any> } {
  return {
    apiVersion: 'lb.pharos.io/v1alpha1',
    kind: 'LoadBalancerIPPool',
    metadata: { name: 'blue' },
    spec: {
      blocks: [{ cidr: '198.18.0.0/24' }, { cidr: '198.18.1.0/24' }, { start: '198.18.2.5', stop: '198.18.2.9' }],
      disabled: false,
      allowFirstLastIPs: 'No',
      serviceSelector: {
        matchLabels: { color: 'blue' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['web'] },
          { key: 'legacy', operator: 'DoesNotExist' },
        ],
      },
    },
  };
}

t.test('any combination of bad fields: exactly those fields are reported, in field order, and the pool is rejected', async (t) => {
  t.ok(parseObject(validPool()).ok, 'the base pool is valid');
  fc.assert(
    fc.property(fc.subarray(CORRUPTIONS.map((_, i) => i), { minLength: 1 }), (picked) => {
      const raw = validPool();
      for (const i of picked) CORRUPTIONS[i]!.apply(raw.spec);
      const got = errors(parseObject(raw)).map((e) => e.field);
      const want = picked.map((i) => CORRUPTIONS[i]!.field);
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`broke ${JSON.stringify(want)}, reported ${JSON.stringify(got)}`);
    }),
    { numRuns: 300, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}) },
  );
  t.pass('every combination reported in full');
});
