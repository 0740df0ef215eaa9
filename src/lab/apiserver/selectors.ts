/**
 * Label and field selectors in their query-string form (`labelSelector=`,
 * `fieldSelector=`), parsed once per request and matched per object.
 *
 * Label grammar (k8s.io/apimachinery/pkg/labels): comma-separated
 * requirements `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
 * Field selectors: `metadata.name` and `metadata.namespace` with `=`, `==`, `!=`.
 */

export type LabelRequirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists' };

export class SelectorError extends Error {
  override name = 'SelectorError';
}

/** Split on commas that are not inside parentheses. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

const keyPattern = /^([a-z0-9A-Z]([-a-z0-9A-Z_./]*[a-z0-9A-Z])?)$/;

function checkKey(key: string, whole: string): string {
  if (!keyPattern.test(key)) throw new SelectorError(`invalid label key "${key}" in selector "${whole}"`);
  return key;
}

export function parseLabelSelector(text: string | null | undefined): LabelRequirement[] {
  if (!text) return [];
  const out: LabelRequirement[] = [];
  for (const part of splitTopLevel(text)) {
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^(\S+)\s+(in|notin)\s*\((.*)\)$/))) {
      const values = m[3]!.split(',').map((v) => v.trim()).filter((v) => v !== '');
      out.push({ key: checkKey(m[1]!, text), op: m[2] as 'in' | 'notin', values });
    } else if ((m = part.match(/^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/))) {
      const op = m[2] === '!=' ? 'notin' : 'in';
      out.push({ key: checkKey(m[1]!, text), op, values: [m[3]!] });
    } else if ((m = part.match(/^!\s*(\S+)$/))) {
      out.push({ key: checkKey(m[1]!, text), op: 'notexists' });
    } else if ((m = part.match(/^(\S+)$/))) {
      out.push({ key: checkKey(m[1]!, text), op: 'exists' });
    } else {
      throw new SelectorError(`unable to parse requirement "${part}" in selector "${text}"`);
    }
  }
  return out;
}

export function matchesLabels(reqs: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const r of reqs) {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case 'exists':
        if (!has) return false;
        break;
      case 'notexists':
        if (has) return false;
        break;
      case 'in':
        if (!has || !r.values.includes(l[r.key]!)) return false;
        break;
      case 'notin':
        // `k!=v` and `k notin (v)` match objects without the label, as upstream.
        if (has && r.values.includes(l[r.key]!)) return false;
        break;
    }
  }
  return true;
}

export interface FieldRequirement {
  field: 'metadata.name' | 'metadata.namespace';
  negate: boolean;
  value: string;
}

export function parseFieldSelector(text: string | null | undefined): FieldRequirement[] {
  if (!text) return [];
  const out: FieldRequirement[] = [];
  for (const part of splitTopLevel(text)) {
    const m = part.match(/^([^!=\s]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new SelectorError(`invalid field selector "${part}"`);
    const field = m[1]!;
    if (field !== 'metadata.name' && field !== 'metadata.namespace') {
      throw new SelectorError(`field label not supported: ${field}`);
    }
    out.push({ field, negate: m[2] === '!=', value: m[3]!.trim() });
  }
  return out;
}

export function matchesFields(reqs: FieldRequirement[], meta: { name?: string; namespace?: string }): boolean {
  for (const r of reqs) {
    const actual = (r.field === 'metadata.name' ? meta.name : meta.namespace) ?? '';
    if ((actual === r.value) === r.negate) return false;
  }
  return true;
}
