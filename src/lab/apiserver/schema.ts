/**
 * What a real API server does with a CRD's structural OpenAPI v3 schema on
 * every write of a custom resource, in its order: prune unknown fields, drop
 * nulls where the schema does not allow them, apply defaults, validate.
 * So `kubectl apply` of a bad pool fails in the lab as it would in a cluster,
 * and what the agent reads carries the same defaults.
 *
 * Covered: type, properties, additionalProperties, items, required, enum,
 * pattern, minimum/maximum (+exclusive), min/maxLength, min/maxItems,
 * min/maxProperties, nullable, default, anyOf/oneOf/allOf/not,
 * x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string,
 * x-kubernetes-list-type set/map uniqueness. Not covered: CEL
 * (x-kubernetes-validations) and `format`.
 */

type Json = any;

export interface SchemaIssue {
  field: string;
  message: string;
}

const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

/**
 * Prune unknown fields, drop disallowed nulls, apply defaults (mutates
 * `value`'s children). `pruned` collects the paths of the unknown fields
 * removed (a manifest check reports them; the API server drops them silently).
 */
export function pruneAndDefault(value: Json, schema: Json, isRoot = false, pruned?: string[], path = ''): void {
  if (!schema || (schema['x-kubernetes-preserve-unknown-fields'] === true && !schema.properties)) return;
  if (isObject(value)) {
    const props: Record<string, Json> | undefined = schema.properties;
    const additional = schema.additionalProperties;
    for (const key of Object.keys(value)) {
      if (isRoot && (key === 'apiVersion' || key === 'kind' || key === 'metadata')) continue;
      const sub = props?.[key] ?? (isObject(additional) ? additional : undefined);
      if (!sub) {
        if (!schema['x-kubernetes-preserve-unknown-fields'] && additional !== true && (props || additional === false || additional === undefined)) {
          delete value[key];
          pruned?.push(join(path, key));
        }
        continue;
      }
      if (value[key] === null && !sub.nullable) {
        delete value[key];
        continue;
      }
      pruneAndDefault(value[key], sub, false, pruned, join(path, key));
    }
    for (const [key, sub] of Object.entries(props ?? {})) {
      if (value[key] === undefined && (sub as Json)?.default !== undefined) {
        value[key] = structuredClone((sub as Json).default);
        pruneAndDefault(value[key], sub, false, pruned, join(path, key));
      }
    }
  } else if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => pruneAndDefault(item, schema.items, false, pruned, join(path, i)));
  }
}

function typeOf(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function show(v: Json): string {
  return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
}

export function validateSchema(value: Json, schema: Json, path = '', isRoot = false): SchemaIssue[] {
  const issues: SchemaIssue[] = [];
  if (!schema || value === undefined) return issues;
  const fail = (message: string) => issues.push({ field: path || '<root>', message });

  if (value === null) {
    if (!schema.nullable) fail(`Invalid value: "null": ${path} in body must be of type ${schema.type ?? 'object'}: "null"`);
    return issues;
  }
  const actual = typeOf(value);
  if (schema['x-kubernetes-int-or-string']) {
    if (actual !== 'integer' && actual !== 'string') fail(`Invalid value: ${show(value)}: ${path} in body must be of type int-or-string`);
  } else if (schema.type) {
    const ok = schema.type === actual || (schema.type === 'number' && actual === 'integer');
    if (!ok) {
      fail(`Invalid value: "${actual}": ${path} in body must be of type ${schema.type}: "${actual}"`);
      return issues;
    }
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e: Json) => JSON.stringify(e) === JSON.stringify(value))) {
    fail(`Unsupported value: ${show(value)}: supported values: ${schema.enum.map(show).join(', ')}`);
  }
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value)) fail(`Invalid value: ${show(value)}: ${path} in body should match '${schema.pattern}'`);
    if (schema.maxLength !== undefined && [...value].length > schema.maxLength) fail(`Too long: may not be more than ${schema.maxLength} bytes`);
    if (schema.minLength !== undefined && [...value].length < schema.minLength) fail(`Invalid value: ${show(value)}: ${path} in body should be at least ${schema.minLength} chars long`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && (schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum)) {
      fail(`Invalid value: ${value}: ${path} in body should be greater than ${schema.exclusiveMinimum ? '' : 'or equal to '}${schema.minimum}`);
    }
    if (schema.maximum !== undefined && (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum)) {
      fail(`Invalid value: ${value}: ${path} in body should be less than ${schema.exclusiveMaximum ? '' : 'or equal to '}${schema.maximum}`);
    }
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) fail(`Too many: ${value.length}: must have at most ${schema.maxItems} items`);
    if (schema.minItems !== undefined && value.length < schema.minItems) fail(`Invalid value: ${value.length}: ${path} in body should have at least ${schema.minItems} items`);
    const listType = schema['x-kubernetes-list-type'];
    const keys: string[] | undefined = schema['x-kubernetes-list-map-keys'];
    if (listType === 'set' || (listType === 'map' && keys)) {
      const seen = new Set<string>();
      value.forEach((item, i) => {
        const id = listType === 'set' ? JSON.stringify(item) : JSON.stringify(keys!.map((k) => item?.[k]));
        if (seen.has(id)) issues.push({ field: join(path, i), message: `Duplicate value: ${listType === 'set' ? show(item) : id}` });
        seen.add(id);
      });
    }
    if (schema.items) value.forEach((item, i) => issues.push(...validateSchema(item, schema.items, join(path, i))));
  }
  if (isObject(value)) {
    for (const req of schema.required ?? []) {
      if (value[req] === undefined) issues.push({ field: join(path, req), message: 'Required value' });
    }
    const n = Object.keys(value).length;
    if (schema.maxProperties !== undefined && n > schema.maxProperties) fail(`Too many: ${n}: must have at most ${schema.maxProperties} items`);
    if (schema.minProperties !== undefined && n < schema.minProperties) fail(`Invalid value: ${n}: ${path} in body should have at least ${schema.minProperties} properties`);
    for (const [key, v] of Object.entries(value)) {
      if (isRoot && key === 'metadata') continue;
      const sub = schema.properties?.[key] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
      if (sub) issues.push(...validateSchema(v, sub, join(path, key)));
    }
  }
  const matches = (s: Json) => validateSchema(value, s, path).length === 0;
  if (Array.isArray(schema.allOf)) for (const s of schema.allOf) issues.push(...validateSchema(value, s, path));
  if (Array.isArray(schema.anyOf) && !schema.anyOf.some(matches)) fail(`Invalid value: ${show(value)}: ${path} in body must match at least one schema in anyOf`);
  if (Array.isArray(schema.oneOf) && schema.oneOf.filter(matches).length !== 1) fail(`Invalid value: ${show(value)}: ${path} in body must validate one and only one schema (oneOf)`);
  if (schema.not && matches(schema.not)) fail(`Invalid value: ${show(value)}: ${path} in body must not validate the schema (not)`);
  return issues;
}
