/**
 * A strict reader of the Prometheus text exposition format (0.0.4), used to
 * check /metrics: every sample line parses, belongs to a family announced by
 * # HELP / # TYPE, names follow the conventions (counters end in _total),
 * and no family is declared twice.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function parseLabels(text: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) throw new Error(`bad labels in: ${line}`);
    // One pass, so an escaped backslash before an `n` stays a backslash and an `n`.
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    pos = re.lastIndex;
  }
  return out;
}

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const familyOf = (sample: string): Family | undefined => {
    const direct = families.get(sample);
    if (direct) return direct;
    for (const suffix of ['_bucket', '_sum', '_count', '_total', '_created']) {
      if (sample.endsWith(suffix)) {
        const f = families.get(sample.slice(0, -suffix.length));
        if (f) return f;
      }
    }
    return undefined;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      const [, , name, ...help] = line.split(' ');
      if (!name || !NAME.test(name)) throw new Error(`bad HELP line: ${line}`);
      if (families.has(name)) throw new Error(`family ${name} declared twice`);
      families.set(name, { name, type: 'untyped', help: help.join(' '), samples: [] });
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      const f = families.get(name!);
      if (!f) throw new Error(`TYPE before HELP for ${name}`);
      if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type!)) throw new Error(`bad type: ${line}`);
      f.type = type!;
      if (type === 'counter' && !name!.endsWith('_total')) throw new Error(`counter ${name} should end in _total`);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : m[3] === 'NaN' ? NaN : Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`bad value: ${line}`);
    const f = familyOf(m[1]!);
    if (!f) throw new Error(`sample ${m[1]} without HELP/TYPE`);
    f.samples.push({ name: m[1]!, labels: m[2] ? parseLabels(m[2], line) : {}, value });
  }
  return families;
}
