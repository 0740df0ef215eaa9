/**
 * The pure core of manifests mode: file texts (plus what was good last time)
 * → the objects in force and the problems to report. No I/O here; the
 * watching and persistence live in source.ts.
 *
 * Rules (issue 5 and DESIGN.md "Bad input and faults"):
 * - A file that does not parse as YAML keeps every object it last had in force.
 * - A document that does not validate keeps the last good version of that
 *   object (found by kind + namespace/name, else by its position in the
 *   file); the other documents of the file still apply.
 * - The same object defined twice: the first in (file name, document) order
 *   wins, every other definition is reported and ignored.
 */
import { loadAll } from 'js-yaml';
import { LineCounter, parseAllDocuments } from 'yaml';
import { modelKindOf, parseObject } from '../../model/parse.js';
import { objectKey, type Kind, type ModelObject } from '../../model/types.js';

export type ProblemSeverity = 'error' | 'warning' | 'ignored';

export interface ManifestProblem {
  severity: ProblemSeverity;
  /** File name relative to the manifests directory ('' for the directory itself). */
  file: string;
  /** 0-based index of the YAML document in the file. */
  document?: number;
  /** 1-based line where the document starts. */
  line?: number;
  /** Index inside a `kind: List` document. */
  item?: number;
  kind?: string;
  name?: string;
  namespace?: string;
  field?: string;
  message: string;
  /** A previous good version of the object (or of the whole file) is still in force. */
  keptLastGood?: boolean;
}

/** One object a file contributes, with where it came from. */
export interface FileRecord {
  /** `Kind/namespace/name` (model kind): two records with one identity are the same object. */
  identity: string;
  document: number;
  item?: number;
  /** The kind as written (`CiliumLoadBalancerIPPool`), for position matching and messages. */
  rawKind: string;
  object: ModelObject;
}

export interface FileOutcome {
  /** What the file puts in force now (fresh objects plus kept last-good ones). */
  records: FileRecord[];
  problems: ManifestProblem[];
}

export function identityOf(obj: ModelObject): string {
  return `${obj.kind}/${objectKey(obj.meta)}`;
}

/** `pools.yaml doc 2 (line 14): LoadBalancerIPPool "blue": spec.blocks[0].cidr: ... (last good version kept)` */
export function formatProblem(p: ManifestProblem): string {
  let where = p.file || '(directory)';
  if (p.document !== undefined) where += ` doc ${p.document}`;
  if (p.item !== undefined) where += ` item ${p.item}`;
  if (p.line !== undefined) where += ` (line ${p.line})`;
  let who = '';
  if (p.kind) {
    const name = p.namespace ? `${p.namespace}/${p.name ?? ''}` : (p.name ?? '');
    who = `${p.kind} "${name}": `;
  }
  const field = p.field ? `${p.field}: ` : '';
  const kept = p.keptLastGood ? ' (last good version kept)' : '';
  return `${where}: ${who}${field}${p.message}${kept}`;
}

/**
 * The fast reader: JSON.parse for a `.json` file, else js-yaml (YAML 1.2
 * core schema, like the reference parser; ~10x faster than it: 10 MB of
 * manifests at 10,000 services take ~1.5 s instead of ~20 s). Undefined
 * when it refuses the text, and for anything with an alias (`*name`): the
 * reference parser bounds alias expansion, this one is told to take none.
 * Both parsers give the same values for the same well-formed text
 * (test/sources/manifests-parsers.test.ts).
 */
export function readDocumentsFast(file: string, text: string): RawDocument[] | undefined {
  const json = /\.json$/i.test(file);
  let docs: unknown[];
  try {
    docs = json ? [JSON.parse(text) as unknown] : loadAll(text, { maxAliases: 0, maxDepth: MAX_NESTING });
  } catch {
    return undefined;
  }
  const raws: RawDocument[] = [];
  // JSON.parse's strings are flat already, and its nesting is unbounded (no recursion over it here).
  docs.forEach((value, document) => pushDocument(raws, json ? value : detachStrings(value), document));
  return raws;
}

/** The reference reader's documents (for tests that compare the two). */
export function readDocumentsReference(file: string, text: string): RawDocument[] | undefined {
  const split = splitDocuments(file, text);
  return 'raws' in split ? split.raws : undefined;
}

function pushDocument(raws: RawDocument[], value: unknown, document: number, line?: number): void {
  if (value === null || value === undefined) return; // empty document, e.g. a trailing `---`
  const at = line !== undefined ? { line } : {};
  if (isListObject(value)) value.items.forEach((item, i) => raws.push({ document, ...at, item: i, value: item }));
  else raws.push({ document, ...at, value });
}

/**
 * The reference reader: text → documents. A `.json` file that is plain JSON skips the YAML parser (far
 * faster); anything else, or JSON that does not parse, goes through YAML (a
 * superset), which also gives line numbers for errors.
 */
function splitDocuments(file: string, text: string): { raws: RawDocument[] } | { problems: ManifestProblem[] } {
  const raws: RawDocument[] = [];
  const push = (value: unknown, document: number, line: number) => pushDocument(raws, value, document, line);
  if (/\.json$/i.test(file)) {
    try {
      push(JSON.parse(text) as unknown, 0, 1);
      return { raws };
    } catch {
      // fall through: the YAML parser says where it breaks
    }
  }
  const depth = nestingDepth(text);
  if (depth > MAX_NESTING) {
    // The yaml parser's flow-collection handling aborts the whole process on
    // pathologically deep input (found by fuzzing: two 5,000-deep `[[[…`
    // files killed Node): refuse before parsing.
    return { problems: [{ severity: 'error', file, document: 0, message: `not valid YAML: nesting deeper than ${MAX_NESTING} levels` }] };
  }
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [];
  const problems: ManifestProblem[] = [];
  list.forEach((doc, index) => {
    const first = doc.errors[0];
    if (!first) return;
    const pos = first.pos ? lineCounter.linePos(first.pos[0]) : undefined;
    problems.push({
      severity: 'error',
      file,
      document: index,
      ...(pos ? { line: pos.line } : {}),
      message: `not valid YAML: ${first.message.split('\n')[0]}`,
    });
  });
  if (problems.length > 0) return { problems };
  for (const [index, doc] of list.entries()) {
    const start = doc.contents?.range?.[0] ?? doc.range[0];
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 1000 });
    } catch (err) {
      // Unresolved aliases and alias bombs throw here, not in doc.errors.
      return { problems: [{ severity: 'error', file, document: index, line: lineCounter.linePos(start).line, message: `not valid YAML: ${(err as Error).message.split('\n')[0]}` }] };
    }
    push(detachStrings(value), index, lineCounter.linePos(start).line);
  }
  return { raws };
}

/**
 * The yaml parser's scalars are slices of the file's text (V8 makes a
 * substring of 13 or more characters a view into its parent), so one
 * endpoint address kept by the store would keep its whole file alive:
 * 10 MB of manifest text at 10,000 services. Copies such strings out;
 * JSON.parse already gives flat ones.
 */
const SLICED_MIN_LENGTH = 13;

function detachStrings(value: unknown, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return value.length >= SLICED_MIN_LENGTH ? Buffer.from(value, 'utf8').toString('utf8') : value;
  // An alias can make the value cyclic (`&a` then `<<: *a`, found by fuzzing): visit each node once.
  if (value === null || typeof value !== 'object' || seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = detachStrings(value[i], seen);
    return value;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const before = record[key];
    const after = detachStrings(before, seen); // objects are detached in place
    // (A copied string compares equal to its original: test the type, not identity.) An own
    // `__proto__` key (yaml defines it as data) must not go through the setter.
    if (typeof before === 'string' && before.length >= SLICED_MIN_LENGTH) Object.defineProperty(record, key, { value: after, writable: true, enumerable: true, configurable: true });
  }
  return value;
}

/** Deepest nesting of flow brackets and block indentation; manifests need a few dozen levels at most. */
const MAX_NESTING = 200;

function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth); // [ {
    else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--; // ] }
  }
  let indentMax = 0;
  for (const line of text.split('\n')) {
    const indent = line.length - line.trimStart().length;
    if (indent > indentMax) indentMax = indent;
  }
  return Math.max(max, Math.floor(indentMax / 2));
}

export interface RawDocument {
  document: number;
  /** 1-based line where the document starts (the reference parser's; the fast one does not say). */
  line?: number;
  item?: number;
  value: unknown;
}

/**
 * One file's text → its outcome, given what it put in force last time.
 * `text` undefined with `readError` means the file could not be read: kept as a whole.
 */
export function interpretFile(file: string, text: string | undefined, previous: FileOutcome | undefined, readError?: string): FileOutcome {
  const lastGood = previous?.records ?? [];
  if (text === undefined) {
    return {
      records: lastGood,
      problems: [{ severity: 'error', file, message: `cannot read: ${readError ?? 'unknown error'}`, keptLastGood: lastGood.length > 0 }],
    };
  }

  // Most files are well-formed and valid: read them with the fast parser, and
  // only a file with something to report goes through the reference one, for
  // its messages and line numbers.
  const fast = readDocumentsFast(file, text);
  if (fast) {
    const outcome = interpretDocuments(file, fast, lastGood);
    if (outcome.problems.length === 0) return outcome;
  }
  const split = splitDocuments(file, text);
  if ('problems' in split) {
    // A file that does not parse keeps everything it had: half a file is not what anyone meant.
    return { records: lastGood, problems: split.problems.map((p) => ({ ...p, keptLastGood: lastGood.length > 0 })) };
  }
  return interpretDocuments(file, split.raws, lastGood);
}

/** Documents → records and problems; `lastGood` stands in for objects that fail. */
function interpretDocuments(file: string, raws: readonly RawDocument[], lastGood: readonly FileRecord[]): FileOutcome {
  const records: FileRecord[] = [];
  const problems: ManifestProblem[] = [];
  const usedLastGood = new Set<FileRecord>();
  const fresh = new Set<string>();
  const failed: { raw: RawDocument; identity?: string; rawKind: string; problems: ManifestProblem[] }[] = [];

  for (const raw of raws) {
    const where = { file, document: raw.document, ...(raw.line !== undefined ? { line: raw.line } : {}), ...(raw.item !== undefined ? { item: raw.item } : {}) };
    const result = parseObject(raw.value);
    if (result.ok) {
      const record: FileRecord = {
        identity: identityOf(result.object),
        document: raw.document,
        rawKind: rawKindOf(raw.value),
        object: result.object,
        ...(raw.item !== undefined ? { item: raw.item } : {}),
      };
      records.push(record);
      fresh.add(record.identity);
      const who = whoOf(result.object, record.rawKind);
      for (const message of result.warnings) problems.push({ severity: 'warning', ...where, ...who, message });
    } else if (result.ignored) {
      problems.push({ severity: 'ignored', ...where, message: result.reason });
    } else {
      const e = result.error;
      const modelKind = modelKindOf(raw.value);
      const identity = modelKind && e.name ? `${modelKind}/${e.namespace ? `${e.namespace}/` : ''}${e.name}` : undefined;
      // One problem per bad field of the object (all of them, issue 17), each naming the object.
      const mine: ManifestProblem[] = e.all.map((one) => ({
        severity: 'error',
        ...where,
        kind: one.kind,
        name: one.name,
        ...(one.namespace ? { namespace: one.namespace } : {}),
        field: one.field,
        message: one.message,
      }));
      problems.push(...mine);
      failed.push({ raw, rawKind: rawKindOf(raw.value), problems: mine, ...(identity ? { identity } : {}) });
    }
  }

  // Keep the last good version of each object that failed, unless the file now defines it validly elsewhere.
  for (const f of failed) {
    const candidates = lastGood.filter((r) => !usedLastGood.has(r) && !fresh.has(r.identity));
    const kept =
      (f.identity ? candidates.find((r) => r.identity === f.identity) : undefined) ??
      // By position only for the same kind, or when the kind itself is what broke (a typo in `kind`).
      candidates.find(
        (r) => r.document === f.raw.document && r.item === f.raw.item && (r.rawKind === f.rawKind || !modelKindOf(f.raw.value)),
      );
    if (kept) {
      usedLastGood.add(kept);
      fresh.add(kept.identity);
      records.push({ ...kept, document: f.raw.document, ...(f.raw.item !== undefined ? { item: f.raw.item } : {}) });
      for (const p of f.problems) p.keptLastGood = true;
    }
  }
  records.sort((a, b) => a.document - b.document || (a.item ?? -1) - (b.item ?? -1));
  return { records, problems };
}

export interface Combined {
  /** Winners per kind, in file order. */
  byKind: Map<Kind, ModelObject[]>;
  problems: ManifestProblem[];
}

/** All files' outcomes → the objects in force; duplicates resolved by (file name, document) order. */
export function combineOutcomes(outcomes: ReadonlyMap<string, FileOutcome>): Combined {
  const files = [...outcomes.keys()].sort();
  const winners = new Map<string, { file: string; record: FileRecord }>();
  const byKind = new Map<Kind, ModelObject[]>();
  const problems: ManifestProblem[] = [];
  for (const file of files) {
    const outcome = outcomes.get(file)!;
    problems.push(...outcome.problems);
    for (const record of outcome.records) {
      const winner = winners.get(record.identity);
      if (winner) {
        problems.push({
          severity: 'error',
          file,
          document: record.document,
          ...(record.item !== undefined ? { item: record.item } : {}),
          ...whoOf(record.object, record.rawKind),
          message: `duplicate: also defined in ${winner.file} doc ${winner.record.document}, which wins; this one is ignored`,
        });
        continue;
      }
      winners.set(record.identity, { file, record });
      const list = byKind.get(record.object.kind) ?? [];
      list.push(record.object);
      byKind.set(record.object.kind, list);
    }
  }
  return { byKind, problems };
}

export function whoOf(obj: ModelObject, rawKind: string): Pick<ManifestProblem, 'kind' | 'name' | 'namespace'> {
  return { kind: rawKind || obj.kind, name: obj.meta.name, ...(obj.meta.namespace ? { namespace: obj.meta.namespace } : {}) };
}

function rawKindOf(value: unknown): string {
  return typeof value === 'object' && value !== null && typeof (value as { kind?: unknown }).kind === 'string'
    ? (value as { kind: string }).kind
    : '';
}

/** `kubectl get -o yaml` of several objects gives `kind: List` with items. */
function isListObject(value: unknown): value is { items: unknown[] } {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { kind?: unknown; apiVersion?: unknown; items?: unknown };
  return v.kind === 'List' && v.apiVersion === 'v1' && Array.isArray(v.items);
}
