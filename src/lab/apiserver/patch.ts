/**
 * The three patch formats the API server accepts, applied to plain JSON:
 * JSON Patch (RFC 6902), JSON Merge Patch (RFC 7386), and a strategic merge
 * patch reduced to what kubectl actually sends.
 *
 * Strategic merge here is merge-patch plus the directives kubectl's
 * client-side apply emits: `$setElementOrder/<list>` (its entries reveal the
 * merge key, so list elements are merged by that key and ordered as given),
 * `$patch: delete|replace`, `$retainKeys` and `$deleteFromPrimitiveList/<list>`.
 * A list without a `$setElementOrder` directive is replaced as a whole
 * (merge-patch semantics) — the emulator has no per-field schema.
 */

export class PatchError extends Error {
  override name = 'PatchError';
  constructor(
    message: string,
    readonly code = 422,
  ) {
    super(message);
  }
}

type Json = any;

const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

const clone = <T>(v: T): T => (v === undefined ? v : JSON.parse(JSON.stringify(v)));

// ---------------------------------------------------------------- RFC 7386

export function applyMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

// ---------------------------------------------------------------- RFC 6902

function parsePointer(ptr: string): string[] {
  if (ptr === '') return [];
  if (!ptr.startsWith('/')) throw new PatchError(`invalid JSON pointer "${ptr}"`);
  return ptr
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, tokens: string[], op: string): Json {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObject(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw new PatchError(`${op}: path /${tokens.join('/')} does not exist`);
  }
  return cur;
}

function getAt(doc: Json, tokens: string[]): Json {
  let cur = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObject(cur)) cur = Object.prototype.hasOwnProperty.call(cur, t) ? cur[t] : undefined;
    else return undefined;
    if (cur === undefined) return undefined;
  }
  return cur;
}

function arrayIndex(arr: Json[], t: string, forInsert: boolean, op: string): number {
  if (forInsert && t === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(t)) throw new PatchError(`${op}: invalid array index "${t}"`);
  const i = Number(t);
  if (i > arr.length || (!forInsert && i === arr.length)) throw new PatchError(`${op}: array index ${i} out of bounds`);
  return i;
}

function removeAt(doc: Json, tokens: string[], op: string): Json {
  if (tokens.length === 0) throw new PatchError(`${op}: cannot remove the whole document`);
  const parent = parentOf(doc, tokens, op);
  const last = tokens[tokens.length - 1]!;
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, last, false, op);
    return parent.splice(i, 1)[0];
  }
  if (!isObject(parent) || !Object.prototype.hasOwnProperty.call(parent, last)) {
    throw new PatchError(`${op}: path /${tokens.join('/')} does not exist`);
  }
  const v = parent[last];
  delete parent[last];
  return v;
}

function addAt(doc: Json, tokens: string[], value: Json, op: string): Json {
  if (tokens.length === 0) return value;
  const parent = parentOf(doc, tokens, op);
  const last = tokens[tokens.length - 1]!;
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true, op), 0, value);
  else if (isObject(parent)) parent[last] = value;
  else throw new PatchError(`${op}: parent of /${tokens.join('/')} is not a container`);
  return doc;
}

export function applyJsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw new PatchError('a JSON patch must be an array of operations', 400);
  let doc = clone(target);
  for (const o of ops) {
    if (!isObject(o) || typeof o.op !== 'string' || typeof o.path !== 'string') {
      throw new PatchError('each JSON patch operation needs "op" and "path"', 400);
    }
    const tokens = parsePointer(o.path);
    switch (o.op) {
      case 'add':
        doc = addAt(doc, tokens, clone(o.value), 'add');
        break;
      case 'remove':
        removeAt(doc, tokens, 'remove');
        break;
      case 'replace':
        if (tokens.length === 0) doc = clone(o.value);
        else {
          removeAt(doc, tokens, 'replace');
          doc = addAt(doc, tokens, clone(o.value), 'replace');
        }
        break;
      case 'move': {
        const v = removeAt(doc, parsePointer(String(o.from)), 'move');
        doc = addAt(doc, tokens, v, 'move');
        break;
      }
      case 'copy': {
        const v = getAt(doc, parsePointer(String(o.from)));
        if (v === undefined) throw new PatchError(`copy: from ${o.from} does not exist`);
        doc = addAt(doc, tokens, clone(v), 'copy');
        break;
      }
      case 'test':
        if (JSON.stringify(getAt(doc, tokens)) !== JSON.stringify(o.value)) {
          throw new PatchError(`test failed at ${o.path}`);
        }
        break;
      default:
        throw new PatchError(`unknown JSON patch operation "${o.op}"`, 400);
    }
  }
  return doc;
}

// ---------------------------------------------------------------- strategic merge (subset)

function mergeKeyOf(order: Json[]): string | undefined {
  const first = order.find(isObject);
  if (!first) return undefined;
  const keys = Object.keys(first);
  return keys.length === 1 ? keys[0] : undefined;
}

function strategicList(original: Json, patchList: Json[], order: Json[] | undefined, deleteValues: Json[] | undefined): Json[] {
  const base: Json[] = Array.isArray(original) ? original : [];
  if (!order) {
    const replaced = patchList.filter((e) => !(isObject(e) && e.$patch === 'delete'));
    return deleteValues ? replaced.filter((e) => !deleteValues.includes(e)) : clone(replaced);
  }
  const key = mergeKeyOf(order);
  if (!key) {
    // Primitive list: the order directive lists every element of the result.
    return order.filter((e) => !(deleteValues ?? []).includes(e));
  }
  const same = (a: Json, b: Json) => isObject(a) && isObject(b) && JSON.stringify(a[key]) === JSON.stringify(b[key]);
  const result: Json[] = [];
  for (const want of order) {
    const patchEl = patchList.find((p) => same(p, want));
    if (patchEl?.$patch === 'delete') continue;
    const baseEl = base.find((b) => same(b, want));
    if (patchEl && baseEl) result.push(applyStrategicMerge(baseEl, patchEl));
    else if (patchEl) result.push(applyStrategicMerge({}, patchEl));
    else if (baseEl) result.push(clone(baseEl));
  }
  // Elements of the original that the order does not mention stay at the end (upstream keeps them too).
  for (const b of base) {
    if (!order.some((w) => same(b, w)) && !patchList.some((p) => same(p, b) && p.$patch === 'delete')) result.push(clone(b));
  }
  return result;
}

export function applyStrategicMerge(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _drop, ...rest } = patch;
    return clone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  const retainKeys: string[] | undefined = Array.isArray(patch.$retainKeys) ? patch.$retainKeys : undefined;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/') || k.startsWith('$deleteFromPrimitiveList/')) continue;
    if (v === null) {
      delete out[k];
      continue;
    }
    const order = patch[`$setElementOrder/${k}`];
    const deletes = patch[`$deleteFromPrimitiveList/${k}`];
    if (Array.isArray(v)) out[k] = strategicList(out[k], v, Array.isArray(order) ? order : undefined, Array.isArray(deletes) ? deletes : undefined);
    else {
      const merged = applyStrategicMerge(out[k], v);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
  }
  // Directives naming lists the patch body does not carry (pure reorders or deletions).
  for (const [k, v] of Object.entries(patch)) {
    const m = k.match(/^\$(setElementOrder|deleteFromPrimitiveList)\/(.+)$/);
    if (!m || !Array.isArray(v) || Object.prototype.hasOwnProperty.call(patch, m[2]!)) continue;
    const field = m[2]!;
    const order = patch[`$setElementOrder/${field}`];
    const deletes = patch[`$deleteFromPrimitiveList/${field}`];
    out[field] = strategicList(out[field], [], Array.isArray(order) ? order : (out[field] ?? []), Array.isArray(deletes) ? deletes : undefined);
  }
  if (retainKeys) for (const k of Object.keys(out)) if (!retainKeys.includes(k)) delete out[k];
  return out;
}
