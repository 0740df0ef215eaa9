/**
 * Shared readers of every kind's parser: metadata (names, labels,
 * annotations, times), label selectors, status conditions, and the parse
 * context (the kind's flavor: pharos or Cilium, and its warnings).
 */
import { FieldReader, show } from '../field-reader.js';
import { checkLabelKey, checkLabelName, checkLabelValue, checkServiceName, checkSubdomain } from '../syntax.js';
import type { Condition, LabelSelector, LabelSelectorRequirement, ObjectMeta, SelectorOperator } from '../types.js';

export type Flavor = 'pharos' | 'cilium';

export interface Context {
  root: FieldReader;
  flavor: Flavor;
  warn(message: string): void;
}


type NameRule = 'subdomain' | 'service';

export function readMeta(ctx: Context, scope: 'namespaced' | 'cluster', rule: NameRule = 'subdomain'): ObjectMeta {
  const m = ctx.root.get('metadata');
  m.object();
  const nameReader = m.get('name');
  const name = nameReader.nonEmptyString();
  ctx.root.ref.name = name;
  let namespace: string | undefined;
  if (scope === 'namespaced') {
    // kubectl puts a manifest without a namespace into "default"; so do we.
    const nsReader = m.get('namespace');
    namespace = nsReader.optString() ?? 'default';
    ctx.root.ref.namespace = namespace;
    const nsProblem = checkLabelName(namespace);
    if (nsProblem) nsReader.report(nsProblem);
  }
  const nameProblem = rule === 'service' ? checkServiceName(name) : checkSubdomain(name);
  if (nameProblem) nameReader.report(nameProblem);

  // Keys in one fixed order whatever the source: the store compares objects by their JSON.
  const meta: ObjectMeta = { name, ...(namespace !== undefined ? { namespace } : {}), labels: {}, annotations: {} };
  const uid = m.recover(() => m.get('uid').optString(), undefined);
  if (uid !== undefined) meta.uid = uid;
  const resourceVersion = m.recover(() => m.get('resourceVersion').optString(), undefined);
  if (resourceVersion !== undefined) meta.resourceVersion = resourceVersion;
  const generation = m.recover(() => m.get('generation').optInteger(0, Number.MAX_SAFE_INTEGER), undefined);
  if (generation !== undefined) meta.generation = generation;
  const created = m.recover(() => readTime(m.get('creationTimestamp'), true), undefined);
  if (created !== undefined) meta.creationTimestamp = created;

  meta.labels = readLabels(m.get('labels'));
  const annotations = m.get('annotations');
  for (const [key, r] of annotations.recover(() => annotations.entries(), [])) {
    r.recover(() => {
      const keyProblem = checkLabelKey(key);
      if (keyProblem) r.report(keyProblem.replace('label key', 'annotation key'));
      meta.annotations[key] = r.string();
    }, undefined);
  }
  return meta;
}

/**
 * A map of labels (metadata.labels, a selector's matchLabels), each bad key
 * or value reported at its own field (the object is rejected then); a map
 * that is not one is reported and read as empty.
 */
function readLabels(r: FieldReader): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, v] of r.recover(() => r.entries(), [])) {
    v.recover(() => {
      const keyProblem = checkLabelKey(key);
      if (keyProblem) v.report(keyProblem);
      const value = v.string();
      const valueProblem = checkLabelValue(value);
      if (valueProblem) v.report(valueProblem);
      labels[key] = value;
    }, undefined);
  }
  return labels;
}

/**
 * RFC 3339 text, or a Date as @kubernetes/client-node's typed objects carry.
 * `seconds` drops the milliseconds a Date adds, as metav1.Time has none.
 */
export function readTime(r: FieldReader, seconds: boolean): string | undefined {
  if (r.absent) return undefined;
  if (r.value instanceof Date) {
    if (Number.isNaN(r.value.getTime())) r.fail('is not a valid time');
    const iso = r.value.toISOString();
    return seconds ? iso.replace(/\.\d{3}Z$/, 'Z') : iso;
  }
  const text = r.string();
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(text) || Number.isNaN(Date.parse(text))) {
    r.fail(`${show(text)} is not an RFC 3339 time`);
  }
  return text;
}


const SELECTOR_OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/**
 * A LabelSelector, structurally checked (keys, values, operators and their
 * value counts as the API server does). Absent → undefined. Unknown keys are
 * rejected: a typo such as `matchLabel` would otherwise select everything.
 */
export function readSelector(r: FieldReader): LabelSelector | undefined {
  if (r.absent) return undefined;
  r.object();
  r.onlyKeys(['matchLabels', 'matchExpressions']);
  const matchLabels = readLabels(r.get('matchLabels'));
  const matchExpressions: LabelSelectorRequirement[] = r.get('matchExpressions').items((e) => {
    e.object();
    e.onlyKeys(['key', 'operator', 'values']);
    const keyReader = e.get('key');
    const key = keyReader.recover(() => keyReader.nonEmptyString(), '');
    const keyProblem = key === '' ? undefined : checkLabelKey(key);
    if (keyProblem) keyReader.report(keyProblem);
    const operatorReader = e.get('operator');
    const operator = operatorReader.recover(() => operatorReader.oneOf(SELECTOR_OPERATORS), undefined);
    const valuesReader = e.get('values');
    const values = valuesReader.items((v) => {
      const value = v.string();
      const problem = checkLabelValue(value);
      if (problem) v.report(problem);
      return value;
    });
    if ((operator === 'In' || operator === 'NotIn') && values.length === 0) {
      valuesReader.report(`must have at least one value for operator ${operator}`);
    }
    if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0) {
      valuesReader.report(`must be empty for operator ${operator}`);
    }
    return { key, operator: operator ?? 'In', values };
  });
  return { matchLabels, matchExpressions };
}


export function readConditions(r: FieldReader): Condition[] {
  return r.items((item) => {
    item.object();
    const condition: Condition = {
      type: item.get('type').nonEmptyString(),
      status: item.get('status').oneOf(['True', 'False', 'Unknown'] as const),
      reason: item.get('reason').optString() ?? '',
      message: item.get('message').optString() ?? '',
    };
    const since = readTime(item.get('lastTransitionTime'), true);
    if (since !== undefined) condition.lastTransitionTime = since;
    const observed = item.get('observedGeneration').optInteger(0, Number.MAX_SAFE_INTEGER);
    if (observed !== undefined) condition.observedGeneration = observed;
    return condition;
  });
}
