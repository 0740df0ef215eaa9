// The emulator's pure parts, without HTTP: patches (RFC 6902/7386 examples
// and kubectl's strategic directives), selectors, CRD schema handling,
// JSONPath for printer columns, AGE formatting, protobuf decoding.
import t from 'tap';
import { applyJsonPatch, applyMergePatch, applyStrategicMerge, PatchError } from '../../src/lab/apiserver/patch.js';
import { decodeKubernetesProtobuf } from '../../src/lab/apiserver/protobuf.js';
import { pruneAndDefault, validateSchema } from '../../src/lab/apiserver/schema.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError } from '../../src/lab/apiserver/selectors.js';
import { jsonPathValues } from '../../src/lab/apiserver/tables.js';
import { humanDuration } from '../../src/cli/table.js';
import { ciliumResources, crdObjectOf, resourcesFromCrd } from '../../src/lab/apiserver/resources.js';

t.test('merge patch: RFC 7386 appendix A examples', async (t) => {
  const cases: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, want] of cases) t.same(applyMergePatch(target, patch), want, JSON.stringify(patch));
});

t.test('JSON patch: RFC 6902 operations and errors', async (t) => {
  const doc = { foo: ['bar', 'baz'], obj: { a: 1 } };
  t.same(applyJsonPatch(doc, [{ op: 'add', path: '/foo/1', value: 'qux' }]), { foo: ['bar', 'qux', 'baz'], obj: { a: 1 } });
  t.same(applyJsonPatch(doc, [{ op: 'add', path: '/foo/-', value: 'end' }]).foo, ['bar', 'baz', 'end']);
  t.same(applyJsonPatch(doc, [{ op: 'remove', path: '/foo/0' }]).foo, ['baz']);
  t.same(applyJsonPatch(doc, [{ op: 'replace', path: '/obj/a', value: 2 }]).obj, { a: 2 });
  t.same(applyJsonPatch(doc, [{ op: 'move', from: '/obj/a', path: '/b' }]), { foo: ['bar', 'baz'], obj: {}, b: 1 });
  t.same(applyJsonPatch(doc, [{ op: 'copy', from: '/foo/0', path: '/c' }]).c, 'bar');
  t.same(applyJsonPatch({ 'a/b': { '~c': 1 } }, [{ op: 'replace', path: '/a~1b/~0c', value: 2 }]), { 'a/b': { '~c': 2 } }, 'pointer escapes');
  t.same(doc, { foo: ['bar', 'baz'], obj: { a: 1 } }, 'the target is not mutated');
  t.throws(() => applyJsonPatch(doc, [{ op: 'test', path: '/obj/a', value: 2 }]), PatchError);
  t.throws(() => applyJsonPatch(doc, [{ op: 'remove', path: '/missing' }]), PatchError);
  t.throws(() => applyJsonPatch(doc, [{ op: 'add', path: '/foo/9', value: 1 }]), PatchError);
  t.throws(() => applyJsonPatch(doc, { op: 'add' }), PatchError);
  t.throws(() => applyJsonPatch(doc, [{ op: 'frobnicate', path: '/foo' }]), PatchError);
});

t.test('strategic merge: kubectl directives', async (t) => {
  const live = {
    metadata: { labels: { a: '1', b: '2' }, finalizers: ['x', 'y'] },
    spec: {
      ports: [
        { name: 'http', port: 80, protocol: 'TCP', nodePort: 30001 },
        { name: 'https', port: 443, protocol: 'TCP', nodePort: 30002 },
      ],
      selector: { app: 'echo' },
    },
  };
  const changed = applyStrategicMerge(live, {
    spec: { '$setElementOrder/ports': [{ port: 80 }, { port: 443 }], ports: [{ port: 443, targetPort: 8443 }] },
  });
  t.same(changed.spec.ports[1], { name: 'https', port: 443, protocol: 'TCP', nodePort: 30002, targetPort: 8443 }, 'merged by key, other fields kept');
  t.equal(changed.spec.ports[0].nodePort, 30001);
  const removed = applyStrategicMerge(live, { spec: { '$setElementOrder/ports': [{ port: 443 }], ports: [{ port: 80, $patch: 'delete' }] } });
  t.same(removed.spec.ports.map((p: any) => p.port), [443], '$patch: delete on an element');
  t.same(applyStrategicMerge(live, { spec: { selector: { $patch: 'replace', tier: 'web' } } }).spec.selector, { tier: 'web' }, '$patch: replace on a map');
  t.same(applyStrategicMerge(live, { metadata: { '$deleteFromPrimitiveList/finalizers': ['x'] } }).metadata.finalizers, ['y']);
  t.same(applyStrategicMerge(live, { spec: { $retainKeys: ['ports'], ports: [] } }).spec, { ports: [] }, '$retainKeys');
  t.same(applyStrategicMerge(live, { metadata: { labels: { a: null } } }).metadata.labels, { b: '2' }, 'null deletes');
  t.same(applyStrategicMerge(live, { spec: { ports: [{ port: 1 }] } }).spec.ports, [{ port: 1 }], 'without directives a list is replaced');
});

t.test('label and field selectors', async (t) => {
  const labels = { app: 'web', tier: 'front', 'example.com/role': 'lb' };
  const match = (sel: string) => matchesLabels(parseLabelSelector(sel), labels);
  t.ok(match(''));
  t.ok(match('app=web'));
  t.ok(match('app = web'));
  t.ok(match('example.com/role==lb'));
  t.notOk(match('app!=web'));
  t.ok(match('missing!=x'), '!= matches a missing label');
  t.ok(match('app in (db,web)'));
  t.ok(match('app in ( db , web )'));
  t.notOk(match('tier notin (front,back)'));
  t.ok(match('missing notin (x)'));
  t.ok(match('tier,!missing'));
  t.notOk(match('!tier'));
  t.notOk(match('app=web,tier=back'));
  t.throws(() => parseLabelSelector('app in (a'), SelectorError);
  t.throws(() => parseLabelSelector('-bad=x'), SelectorError);
  const f = (sel: string) => matchesFields(parseFieldSelector(sel), { name: 'echo', namespace: 'default' });
  t.ok(f('metadata.name=echo,metadata.namespace==default'));
  t.notOk(f('metadata.name!=echo'));
  t.throws(() => parseFieldSelector('spec.type=LoadBalancer'), /not supported/);
});

t.test('CRD schema: prune, default, validate', async (t) => {
  const schema = {
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        required: ['blocks'],
        properties: {
          blocks: {
            type: 'array',
            minItems: 1,
            items: { type: 'object', properties: { cidr: { type: 'string', pattern: '^[0-9.]+/[0-9]+$' } }, oneOf: [{ required: ['cidr'] }, { required: ['start'] }] },
          },
          disabled: { type: 'boolean', default: false },
          mode: { type: 'string', enum: ['a', 'b'] },
          count: { type: 'integer', minimum: 1, maximum: 3 },
          free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          port: { 'x-kubernetes-int-or-string': true },
          keys: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], items: { type: 'object', properties: { name: { type: 'string' } } } },
        },
      },
    },
  };
  const obj: any = { apiVersion: 'x/v1', kind: 'X', metadata: { name: 'n', labels: { a: 'b' } }, spec: { blocks: [{ cidr: '10.0.0.0/8', junk: 1 }], extra: true, free: { any: { thing: 1 } } } };
  pruneAndDefault(obj, schema, true);
  t.same(obj.spec, { blocks: [{ cidr: '10.0.0.0/8' }], free: { any: { thing: 1 } }, disabled: false }, 'pruned and defaulted');
  t.same(obj.metadata, { name: 'n', labels: { a: 'b' } }, 'metadata untouched');
  t.same(validateSchema(obj, schema, '', true), []);
  const issues = validateSchema(
    { spec: { blocks: [{ cidr: 'nope' }], mode: 'c', count: 9, port: true, disabled: 'no', keys: [{ name: 'a' }, { name: 'a' }] } },
    schema,
  );
  const byField = Object.fromEntries(issues.map((i) => [i.field, i.message]));
  t.match(byField['spec.blocks[0].cidr'], /should match/);
  t.match(byField['spec.mode'], /Unsupported value: "c"/);
  t.match(byField['spec.count'], /less than or equal to 3/);
  t.match(byField['spec.port'], /int-or-string/);
  t.match(byField['spec.disabled'], /must be of type boolean/);
  t.match(byField['spec.keys[1]'], /Duplicate value/);
  t.match(validateSchema({ spec: {} }, schema)[0], { field: 'spec.blocks', message: 'Required value' });
  t.match(validateSchema({ spec: { blocks: [{}] } }, schema)[0]?.message, /oneOf/);
});

t.test('printer-column JSONPath and AGE', async (t) => {
  const pool = { spec: { disabled: true }, status: { conditions: [{ type: 'A', status: 'True' }, { type: 'B', status: 'False', message: 'm' }] } };
  t.same(jsonPathValues(pool, '.spec.disabled'), [true]);
  t.same(jsonPathValues(pool, '.status.conditions[?(@.type=="B")].message'), ['m']);
  t.same(jsonPathValues(pool, '.status.conditions[*].type'), ['A', 'B']);
  t.same(jsonPathValues(pool, '.status.conditions[1].status'), ['False']);
  t.same(jsonPathValues(pool, '.status.missing'), []);
  const s = 1000;
  const cases: [number, string][] = [
    [-5 * s, '<invalid>'],
    [0, '0s'],
    [59 * s, '59s'],
    [119 * s, '119s'],
    [150 * s, '2m30s'],
    [10 * 60 * s, '10m'],
    [3 * 3600 * s, '3h'],
    [3 * 3600 * s + 5 * 60 * s, '3h5m'],
    [30 * 3600 * s, '30h'],
    [3 * 86400 * s + 4 * 3600 * s, '3d4h'],
    [20 * 86400 * s, '20d'],
    [3 * 365 * 86400 * s, '3y'],
  ];
  for (const [ms, want] of cases) t.equal(humanDuration(ms), want, `${ms} ms`);
});

t.test('protobuf envelope decoding', async (t) => {
  // Hand-encoded: runtime.Unknown{typeMeta{v1, Namespace}, raw: Namespace{metadata{name: "team", labels{a: b}}}}.
  const str = (field: number, v: string | Buffer) => {
    const b = typeof v === 'string' ? Buffer.from(v) : v;
    return Buffer.concat([Buffer.from([(field << 3) | 2, b.length]), b]);
  };
  const meta = Buffer.concat([str(1, 'team'), str(11, Buffer.concat([str(1, 'a'), str(2, 'b')]))]);
  const raw = str(1, meta);
  const unknown = Buffer.concat([str(1, Buffer.concat([str(1, 'v1'), str(2, 'Namespace')])), str(2, raw)]);
  const body = Buffer.concat([Buffer.from('k8s\0', 'latin1'), unknown]);
  t.same(decodeKubernetesProtobuf(body), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team', labels: { a: 'b' } } });
  t.throws(() => decodeKubernetesProtobuf(Buffer.from('nope')), /magic/);
  const pod = Buffer.concat([Buffer.from('k8s\0', 'latin1'), str(1, Buffer.concat([str(1, 'v1'), str(2, 'Pod')]))]);
  t.throws(() => decodeKubernetesProtobuf(pod), /not supported/);
  t.throws(() => decodeKubernetesProtobuf(Buffer.concat([Buffer.from('k8s\0', 'latin1'), Buffer.from([0x0a, 0x7f])])), /truncated/);
});

t.test('a built-in custom resource as a CRD object registers the same resource (pharos lab installs Cilium\'s this way)', async (t) => {
  for (const r of ciliumResources) {
    const crd = crdObjectOf(r) as { metadata: { name: string } };
    t.equal(crd.metadata.name, `${r.plural}.cilium.io`);
    const [back] = resourcesFromCrd(crd);
    t.same(
      { group: back!.group, version: back!.version, plural: back!.plural, kind: back!.kind, namespaced: back!.namespaced, shortNames: back!.shortNames, status: back!.statusSubresource },
      { group: r.group, version: r.version, plural: r.plural, kind: r.kind, namespaced: r.namespaced, shortNames: r.shortNames, status: r.statusSubresource },
      r.kind,
    );
    if (r.printerColumns) t.same(back!.printerColumns, r.printerColumns, `${r.kind}: its printer columns`);
  }
  const pool = resourcesFromCrd(crdObjectOf(ciliumResources[0]!))[0]!;
  const o: any = { spec: { blocks: [{ cidr: '198.51.100.96/28' }] } };
  pruneAndDefault(o, pool.schema, true);
  t.same(o.spec, { blocks: [{ cidr: '198.51.100.96/28' }], disabled: false }, 'the pool schema defaults spec.disabled and keeps the rest');
});
