/**
 * Server-side apply, reduced to its observable core for one manager at a
 * time: the applied configuration is merged into the live object (maps
 * recursively, associative lists by their keys, other lists replaced), and
 * fields this manager applied last time but no longer applies are removed.
 * What each manager owns is kept in `metadata.managedFields` (FieldsV1
 * format, operation Apply), as on a real API server.
 *
 * Not modelled: conflicts between managers (every apply behaves as with
 * `--force-conflicts`) and ownership of fields written by plain updates.
 */

type Json = any;

const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keys of associative lists of the built-in kinds, by field name (as the upstream schemas declare them). */
const builtinListKeys: Record<string, string[]> = {
  ports: ['port', 'protocol'],
  conditions: ['type'],
  containers: ['name'],
  ownerReferences: ['uid'],
};

/** How a list at `path` merges: by keys, as a set, or atomically. */
export type ListKind = { keys: string[] } | 'set' | 'atomic';

/** Finds the list semantics for a field: CRD schema first, then the built-in table. */
export function listKindFrom(schema: Json | undefined): (path: string[], field: string) => ListKind {
  return (path, field) => {
    let s = schema;
    for (const p of [...path, field]) s = s?.properties?.[p] ?? (isObject(s?.additionalProperties) ? s.additionalProperties : s?.items?.properties?.[p] ?? undefined);
    if (s?.['x-kubernetes-list-type'] === 'map' && Array.isArray(s['x-kubernetes-list-map-keys'])) return { keys: s['x-kubernetes-list-map-keys'] };
    if (s?.['x-kubernetes-list-type'] === 'set') return 'set';
    if (schema === undefined && builtinListKeys[field]) return { keys: builtinListKeys[field]! };
    if (field === 'finalizers') return 'set';
    return 'atomic';
  };
}

function itemKey(item: Json, keys: string[]): string {
  const o: Record<string, Json> = {};
  for (const k of keys) {
    // Upstream defaults protocol to TCP before keying Service ports.
    o[k] = item?.[k] ?? (k === 'protocol' ? 'TCP' : undefined);
  }
  return `k:${JSON.stringify(o)}`;
}

/** The FieldsV1 set of everything `applied` sets (metadata identity fields excluded). */
export function fieldSet(applied: Json, listKind: (path: string[], field: string) => ListKind, path: string[] = []): Json {
  const out: Json = {};
  if (!isObject(applied)) return out;
  for (const [k, v] of Object.entries(applied)) {
    if (path.length === 0 && (k === 'apiVersion' || k === 'kind')) continue;
    if (path.length === 1 && path[0] === 'metadata' && ['name', 'namespace', 'resourceVersion', 'uid', 'managedFields', 'creationTimestamp', 'generation'].includes(k)) continue;
    const f = `f:${k}`;
    if (isObject(v)) out[f] = fieldSet(v, listKind, [...path, k]);
    else if (Array.isArray(v)) {
      const lk = listKind(path, k);
      if (lk === 'atomic') out[f] = {};
      else if (lk === 'set') out[f] = Object.fromEntries(v.map((x) => [`v:${JSON.stringify(x)}`, {}]));
      else out[f] = Object.fromEntries(v.map((x) => [itemKey(x, lk.keys), { '.': {}, ...fieldSet(x, listKind, [...path, k]) }]));
    } else out[f] = {};
  }
  return out;
}

/** Remove from `live` what `before` has and `after` lacks. */
function removeOwned(live: Json, before: Json, after: Json, listKind: (path: string[], field: string) => ListKind, path: string[]): void {
  if (!isObject(live) || !isObject(before)) return;
  for (const [f, sub] of Object.entries(before)) {
    if (!f.startsWith('f:')) continue;
    const k = f.slice(2);
    if (!(k in live)) continue;
    const still = after?.[f];
    if (still === undefined) {
      delete live[k];
      continue;
    }
    const v = live[k];
    if (isObject(v)) removeOwned(v, sub, still, listKind, [...path, k]);
    else if (Array.isArray(v)) {
      const lk = listKind(path, k);
      if (lk === 'set') live[k] = v.filter((x) => !(`v:${JSON.stringify(x)}` in sub) || `v:${JSON.stringify(x)}` in still);
      else if (lk !== 'atomic') {
        live[k] = v.filter((x) => {
          const key = itemKey(x, lk.keys);
          return !(key in sub) || key in still;
        });
        for (const item of live[k]) {
          const key = itemKey(item, lk.keys);
          if (key in sub && key in still) removeOwned(item, sub[key], still[key], listKind, [...path, k]);
        }
      }
    }
  }
}

function merge(live: Json, applied: Json, listKind: (path: string[], field: string) => ListKind, path: string[]): Json {
  if (!isObject(applied)) return structuredClone(applied);
  const out: Json = isObject(live) ? { ...live } : {};
  for (const [k, v] of Object.entries(applied)) {
    if (Array.isArray(v) && Array.isArray(out[k])) {
      const lk = listKind(path, k);
      if (lk === 'set') out[k] = [...out[k], ...v.filter((x) => !out[k].some((y: Json) => JSON.stringify(y) === JSON.stringify(x)))];
      else if (lk !== 'atomic') {
        const result: Json[] = out[k].map((x: Json) => x);
        for (const item of v) {
          const i = result.findIndex((x) => itemKey(x, lk.keys) === itemKey(item, lk.keys));
          if (i >= 0) result[i] = merge(result[i], item, listKind, [...path, k]);
          else result.push(structuredClone(item));
        }
        out[k] = result;
      } else out[k] = structuredClone(v);
    } else out[k] = merge(out[k], v, listKind, [...path, k]);
  }
  return out;
}

/**
 * The object after `manager` applies `applied` to `live` (undefined = create),
 * with managedFields updated. Identity (name, namespace) comes from the caller.
 */
export function serverSideApply(live: Json | undefined, applied: Json, manager: string, apiVersion: string, listKind: (path: string[], field: string) => ListKind): Json {
  const owned = fieldSet(applied, listKind);
  const managed: Json[] = Array.isArray(live?.metadata?.managedFields) ? live.metadata.managedFields : [];
  const mine = managed.find((m) => m.manager === manager && m.operation === 'Apply');
  const base = live ? structuredClone(live) : {};
  if (mine?.fieldsV1) removeOwned(base, mine.fieldsV1, owned, listKind, []);
  const { metadata: appliedMeta, ...appliedRest } = applied;
  const merged = merge(base, { ...appliedRest, metadata: { ...(appliedMeta ?? {}) } }, listKind, []);
  merged.metadata.managedFields = [
    ...managed.filter((m) => m !== mine),
    { manager, operation: 'Apply', apiVersion, time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), fieldsType: 'FieldsV1', fieldsV1: owned },
  ];
  return merged;
}
