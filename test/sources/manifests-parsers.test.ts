/**
 * The manifests source reads a file with a fast parser (js-yaml) and only a
 * file with something to report with the reference one (yaml), for its
 * messages and line numbers. The two must agree on every well-formed text,
 * or an object would change with the presence of an unrelated error:
 * checked on the shipped examples and CRDs, the bench's generated
 * manifests, hand-picked scalars of the YAML 1.2 core schema, and random
 * documents written both block- and flow-style.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { interpretFile, formatProblem, readDocumentsFast, readDocumentsReference, type RawDocument } from '../../src/sources/manifests/interpret.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { scaleServices, serviceFiles, baseManifests } from '../../bench/scale/manifests.js';

/** What a document is, apart from where it starts (only the reference parser knows lines). */
const comparable = (raws: RawDocument[] | undefined) => raws?.map(({ document, item, value }) => ({ document, item, value }));

function agree(t: Test, file: string, text: string): void {
  const fast = readDocumentsFast(file, text);
  t.ok(fast, `${file}: the fast parser reads it`);
  t.same(comparable(fast), comparable(readDocumentsReference(file, text)), `${file}: both parsers give the same documents`);
}

t.test('shipped examples, CRDs and the bench manifests read the same with both parsers', (t) => {
  for (const dir of ['deploy/examples', 'deploy/crds', 'deploy/kubernetes', 'bench/fuzz/corpus/manifests']) {
    for (const name of readdirSync(join(PROJECT_ROOT, dir)).filter((n) => /\.ya?ml$/.test(n))) agree(t, `${dir}/${name}`, readFileSync(join(PROJECT_ROOT, dir, name), 'utf8'));
  }
  for (const f of [...baseManifests(), ...serviceFiles(scaleServices(0, 30, 7))]) agree(t, f.name, f.text);
  t.end();
});

t.test('core-schema scalars resolve alike', (t) => {
  const scalars = ['0o17', '.inf', '-.Inf', '.nan', '1_000', '0x1F', '+12', '~', 'Null', 'NULL', 'yes', 'off', 'True', '2024-01-01', '2024-01-01T00:00:00Z',
    "'012'", '012', '1e3', '-.5', '0b101', '"\\u00e9"', '""', "''", '1.', '.5', '-0', '0.0', '"a: b"', '>-\n  folded\n  text', '|\n  literal\n  text\n'];
  for (const s of scalars) agree(t, 'scalars.yaml', `value: ${s}\nlist: [${s.includes('\n') || s.includes(': ') ? '1' : s}]\n`);
  t.end();
});

t.test('random documents, block and flow style, read the same', (t) => {
  const key = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_./-]{0,12}$/);
  const scalar = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.double({ noNaN: true }), fc.boolean(), fc.constant(null));
  const value = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, tie('list'), tie('map')),
    list: fc.array(tie('node'), { maxLength: 4 }),
    map: fc.dictionary(key, tie('node'), { maxKeys: 4 }),
  })).map;
  const docs = fc.array(value, { minLength: 1, maxLength: 3 });
  const r = fc.check(fc.property(docs, fc.boolean(), (values, flow) => {
    const text = values.map((v) => stringify(v, flow ? { collectionStyle: 'flow' } : {})).join('---\n');
    const fast = readDocumentsFast('r.yaml', text);
    if (!fast) return false;
    return JSON.stringify(comparable(fast)) === JSON.stringify(comparable(readDocumentsReference('r.yaml', text)));
  }), { seed: 4242, numRuns: 300 });
  t.notOk(r.failed, r.failed ? `counterexample: ${JSON.stringify(r.counterexample)}` : 'no counterexample');
  t.end();
});

t.test('aliases and broken text go to the reference parser; problems keep their line numbers', (t) => {
  t.equal(readDocumentsFast('a.yaml', 'a: &x {b: 1}\nc: *x\n'), undefined, 'an alias: the fast parser takes none');
  t.same(comparable(readDocumentsReference('a.yaml', 'a: &x {b: 1}\nc: *x\n')), [{ document: 0, item: undefined, value: { a: { b: 1 }, c: { b: 1 } } }], 'the reference parser resolves it');
  t.equal(readDocumentsFast('b.yaml', 'a: [1, 2\n'), undefined, 'broken YAML: undefined, not an exception');
  const pool = (cidr: string) => `apiVersion: lb.pharos.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: blue}\nspec: {blocks: [{cidr: ${cidr}}]}\n`;
  const bad = interpretFile('p.yaml', `${pool('198.51.100.0/24')}---\n# a comment\n${pool('198.51.100.0/33')}`, undefined);
  t.equal(bad.problems.length >= 1, true, 'the invalid pool is reported');
  t.match(formatProblem(bad.problems.find((p) => p.severity === 'error')!), /^p\.yaml doc 1 \(line 7\): LoadBalancerIPPool "blue": spec\.blocks\[0\]\.cidr: /, 'with the line the document starts on');
  const good = interpretFile('p.yaml', pool('198.51.100.0/24'), undefined);
  t.same([good.records.length, good.problems.length], [1, 0], 'a valid file: its object, no problems');
  t.end();
});
