/**
 * parseObject on hostile input: random values and random mutations of valid
 * manifests never throw, and every failure names a field that exists in the
 * input (or the place where a required one is missing).
 */
import t from 'tap';
import fc from 'fast-check';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseObject } from '../../src/model/parse.js';

const exampleDir = join(import.meta.dirname, '..', '..', 'deploy', 'examples');
const valid: Record<string, unknown>[] = readdirSync(exampleDir)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => parseAllDocuments(readFileSync(join(exampleDir, f), 'utf8')).map((d) => d.toJS() as Record<string, unknown>))
  .filter((d) => parseObject(d).ok);

/** Every path in a JSON value, in parse.ts' notation (`a.b[2]["x/y"]`). */
function paths(value: unknown, prefix = ''): string[] {
  const out = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, `${prefix}[${i}]`)));
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      const seg = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? (prefix ? `${prefix}.${k}` : k) : `${prefix}[${JSON.stringify(k)}]`;
      out.push(...paths(v, seg));
    }
  }
  return out;
}

/** Replaces the value at a random path (by index into `paths`) with `replacement`. */
function mutate(doc: unknown, pick: number, replacement: unknown): unknown {
  const copy = structuredClone(doc);
  const all: { parent: any; key: string | number }[] = [];
  const walk = (v: any) => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        all.push({ parent: v, key: i });
        walk(x);
      });
    } else if (v && typeof v === 'object') {
      for (const k of Object.keys(v)) {
        all.push({ parent: v, key: k });
        walk(v[k]);
      }
    }
  };
  walk(copy);
  if (all.length === 0) return replacement;
  const target = all[pick % all.length]!;
  if (replacement === undefined) {
    if (Array.isArray(target.parent)) target.parent.splice(target.key as number, 1);
    else delete target.parent[target.key];
  } else target.parent[target.key] = replacement;
  return copy;
}

const hostile = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.string(),
  fc.constantFrom('', '-', '::', '1.2.3.4/99', '0x10', 'None', 'In', 'IPv4', '__proto__', 'constructor', 'a'.repeat(300)),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
);

function checkResult(input: unknown): void {
  const r = parseObject(input);
  if (r.ok || r.ignored) return;
  const existing = new Set(paths(input));
  const seen = new Set<string>();
  // Every error of the object (issue 17: all are reported), not only the first.
  for (const e of r.error.all) {
    const field = e.field;
    // A field is either in the input, or a missing child of something that is.
    const parent = field.replace(/((^|\.)[A-Za-z_][A-Za-z0-9_]*|\[[^\]]*\])$/, '');
    if (!existing.has(field) && !existing.has(parent)) throw new Error(`error names ${field}, not in the input: ${r.error.toString()}`);
    if (!r.error.toString().includes(e.message)) throw new Error('toString lost a message');
    if (e.kind !== r.error.kind || e.name !== r.error.name || e.namespace !== r.error.namespace) throw new Error(`errors of two objects: ${r.error.toString()}`);
    const line = `${field}: ${e.message}`;
    if (seen.has(line)) throw new Error(`reported twice: ${line}`);
    seen.add(line);
  }
}

t.test('arbitrary JSON never throws', async (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      checkResult(v);
    }),
    { numRuns: 500 },
  );
  t.pass('500 random values');
});

t.test('mutated valid manifests never throw and name an existing field', async (t) => {
  t.ok(valid.length >= 10, `${valid.length} valid example objects`);
  fc.assert(
    fc.property(fc.nat(valid.length - 1), fc.nat(), hostile, (which, pick, replacement) => {
      checkResult(mutate(valid[which], pick, replacement));
    }),
    { numRuns: 3000 },
  );
  t.pass('3000 mutations');
});

t.test('several mutations at once never throw, and every error names an existing field once', async (t) => {
  fc.assert(
    fc.property(fc.nat(valid.length - 1), fc.array(fc.tuple(fc.nat(), hostile), { minLength: 2, maxLength: 4 }), (which, edits) => {
      let input: unknown = valid[which];
      for (const [pick, replacement] of edits) input = mutate(input, pick, replacement);
      checkResult(input);
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 multi-mutations');
});
