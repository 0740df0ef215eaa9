/**
 * Kubernetes LabelSelector semantics: matchLabels AND every matchExpression
 * (In, NotIn, Exists, DoesNotExist), as the API server documents them. An
 * empty selector (no labels, no expressions) matches everything; what an
 * ABSENT selector means is the caller's business (for pools: every service).
 *
 * `validateSelector` re-checks a selector the way the API server would and
 * names the offending field, for inputs that did not come through
 * src/model/parse.ts (tests, state files) and as a guard in controllers.
 */
import { checkLabelKey, checkLabelValue } from './syntax.js';
import type { FieldError, LabelSelector, LabelSelectorRequirement } from './types.js';

const OPERATORS: ReadonlySet<string> = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

/** Reads one label; undefined when the object does not have it. */
export type LabelLookup = (key: string) => string | undefined;

function requirementMatches(req: LabelSelectorRequirement, label: LabelLookup): boolean {
  const value = label(req.key);
  const has = value !== undefined;
  switch (req.operator) {
    case 'In':
      return has && req.values.includes(value);
    case 'NotIn':
      // Kubernetes: a missing key satisfies NotIn.
      return !has || !req.values.includes(value);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    default:
      // An unknown operator never matches: selecting nothing is the safe failure.
      return false;
  }
}

/**
 * Whether the labels `label` reads satisfy `selector`. A lookup rather than a
 * record, so callers can add pseudo-labels (a service's namespace and name)
 * without copying every object's labels.
 */
export function matchesSelectorWith(selector: LabelSelector, label: LabelLookup): boolean {
  for (const key in selector.matchLabels) {
    if (label(key) !== selector.matchLabels[key]) return false;
  }
  for (const req of selector.matchExpressions) {
    if (!requirementMatches(req, label)) return false;
  }
  return true;
}

/** Whether `labels` satisfy `selector`. */
export function matchesSelector(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  return matchesSelectorWith(selector, (key) => (Object.prototype.hasOwnProperty.call(labels, key) ? labels[key] : undefined));
}

/** Problems with `selector`, each naming its field under `field` (e.g. `spec.serviceSelector`). Empty when valid. */
export function validateSelector(selector: LabelSelector, field: string): FieldError[] {
  const errors: FieldError[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels)) {
    const labelField = `${field}.matchLabels[${JSON.stringify(key)}]`;
    const keyProblem = checkLabelKey(key);
    if (keyProblem) errors.push({ field: labelField, message: keyProblem });
    if (typeof value !== 'string') {
      errors.push({ field: labelField, message: `value must be a string, got ${typeof value}` });
      continue;
    }
    const valueProblem = checkLabelValue(value);
    if (valueProblem) errors.push({ field: labelField, message: valueProblem });
  }
  selector.matchExpressions.forEach((req, i) => {
    const at = `${field}.matchExpressions[${i}]`;
    const keyProblem = checkLabelKey(String(req.key));
    if (keyProblem) errors.push({ field: `${at}.key`, message: keyProblem });
    const operator = String(req.operator);
    if (!OPERATORS.has(operator)) {
      errors.push({ field: `${at}.operator`, message: `${JSON.stringify(operator)} is not a selector operator (In, NotIn, Exists, DoesNotExist)` });
      return;
    }
    const values = Array.isArray(req.values) ? req.values : [];
    if ((operator === 'In' || operator === 'NotIn') && values.length === 0) {
      errors.push({ field: `${at}.values`, message: `must have at least one value for operator ${operator}` });
    }
    if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0) {
      errors.push({ field: `${at}.values`, message: `must be empty for operator ${operator}` });
    }
    values.forEach((v, j) => {
      const problem = typeof v === 'string' ? checkLabelValue(v) : `must be a string, got ${typeof v}`;
      if (problem) errors.push({ field: `${at}.values[${j}]`, message: problem });
    });
  });
  return errors;
}
