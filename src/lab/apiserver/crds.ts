/**
 * CustomResourceDefinitions from YAML files, so the emulator serves the
 * pharos CRDs exactly as deploy/crds/ defines them (printer columns, short
 * names, schema defaults and validation) instead of a copy that could drift.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** Every CustomResourceDefinition in the *.yaml/*.yml/*.json files of `dir` (sorted by file name). */
export function readCrds(dir: string): object[] {
  const out: object[] = [];
  for (const f of readdirSync(dir).sort()) {
    if (!/\.(ya?ml|json)$/.test(f)) continue;
    for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${join(dir, f)}: ${doc.errors[0]!.message}`);
      const o = doc.toJS();
      if (o?.kind === 'CustomResourceDefinition') out.push(o);
    }
  }
  return out;
}

/**
 * deploy/crds of this checkout or package: three levels up from both
 * src/lab/apiserver/ (tests via tsx) and dist/lab/apiserver/ (built).
 */
export function bundledCrdDir(): string | undefined {
  const dir = fileURLToPath(new URL('../../../deploy/crds/', import.meta.url));
  return existsSync(dir) ? dir : undefined;
}
