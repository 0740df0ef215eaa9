/**
 * Prometheus text exposition format (0.0.4), written by hand for the
 * families with too many series for prom-client's per-series objects (the
 * data path's per-frontend and per-backend counters): escaping, family
 * headers, sample values, and a writer that puts the text straight into
 * Buffer chunks — label sets pre-encoded once as bytes are copied in, and
 * integer values written digit by digit, so rendering 220,000 samples makes
 * no string per sample and leaves no garbage but the chunks themselves.
 *
 * Format: https://prometheus.io/docs/instrumenting/exposition_formats/ —
 * HELP text escapes `\` and newline; label values also escape `"`.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'untyped';

const HELP_SPECIAL = /[\\\n]/;
const LABEL_SPECIAL = /[\\\n"]/;

export function escapeHelp(text: string): string {
  return HELP_SPECIAL.test(text) ? text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n') : text;
}

export function escapeLabelValue(value: string): string {
  return LABEL_SPECIAL.test(value) ? value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"') : value;
}

/** `{a="x",b="y"}` for the given pairs in order; '' for none. Names must already be valid label names. */
export function labelSet(pairs: ReadonlyArray<readonly [string, string]>): string {
  if (pairs.length === 0) return '';
  return `{${pairs.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',')}}`;
}

/** A sample value as Prometheus reads it (Go ParseFloat): integers in full, +Inf, -Inf, NaN. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** The `# HELP` and `# TYPE` lines that open a family. */
export function familyHeader(name: string, help: string, type: MetricType): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
}

/**
 * Many strings encoded once into one Buffer, found by index: the label sets
 * of a label table, rendered when the table changes and copied into every
 * scrape's output as bytes.
 */
export class EncodedStrings {
  readonly bytes: Buffer;
  /** Byte offset of string i is starts[i], its end starts[i + 1]. */
  readonly starts: Uint32Array;

  constructor(strings: readonly string[]) {
    this.starts = new Uint32Array(strings.length + 1);
    const joined = strings.join('');
    const ascii = Buffer.byteLength(joined) === joined.length;
    let total = 0;
    for (let i = 0; i < strings.length; i++) {
      this.starts[i] = total;
      total += ascii ? strings[i]!.length : Buffer.byteLength(strings[i]!);
    }
    this.starts[strings.length] = total;
    // ASCII (addresses, Kubernetes names): one write of the joined text instead of one per string.
    this.bytes = ascii ? Buffer.from(joined, 'latin1') : Buffer.concat(strings.map((s) => Buffer.from(s)));
  }

  get length(): number {
    return this.starts.length - 1;
  }

  /** Bytes of the longest string. */
  maxBytes(): number {
    let max = 0;
    for (let i = 0; i < this.length; i++) max = Math.max(max, this.starts[i + 1]! - this.starts[i]!);
    return max;
  }
}

/** Longest text formatValue() makes of a double ("-1.2345678901234567e-308"). */
const MAX_VALUE_CHARS = 24;
const MAX_UINT32 = 2 ** 32 - 1;
const POWERS_OF_TEN = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
const NEWLINE = 0x0a;
const SPACE = 0x20;
const ZERO = 0x30;

/**
 * Exposition text into Buffer chunks of about `chunkBytes` (no line is split
 * across chunks). `sample()` is the hot path: name bytes, a pre-encoded label
 * set, a value.
 */
export class ExpositionWriter {
  private readonly chunks: Buffer[] = [];
  private buf: Buffer;
  private pos = 0;

  constructor(private readonly chunkBytes = 1 << 20) {
    this.buf = Buffer.allocUnsafe(chunkBytes);
  }

  /** Any text (headers, small families). */
  text(s: string): void {
    this.reserve(Buffer.byteLength(s));
    this.pos += this.buf.write(s, this.pos);
  }

  /** `<name><labels[index]> <value>\n`; `name` is the family name as bytes. */
  sample(name: Uint8Array, labels: EncodedStrings, index: number, value: number): void {
    const from = labels.starts[index]!;
    const to = labels.starts[index + 1]!;
    this.reserve(name.length + (to - from) + MAX_VALUE_CHARS + 2);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < name.length; i++) buf[p++] = name[i]!;
    const src = labels.bytes;
    for (let i = from; i < to; i++) buf[p++] = src[i]!;
    buf[p++] = SPACE;
    this.pos = p;
    this.value(value);
    this.buf[this.pos++] = NEWLINE;
  }

  /** The chunks written so far; the writer is not used afterwards. */
  finish(): Buffer[] {
    if (this.pos > 0) this.chunks.push(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return this.chunks;
  }

  /** Bytes written so far. */
  get size(): number {
    let n = this.pos;
    for (const c of this.chunks) n += c.length;
    return n;
  }

  private value(v: number): void {
    if (!(v >= 0 && v <= MAX_UINT32)) {
      this.pos += this.buf.write(formatValue(v), this.pos);
      return;
    }
    // Counters are integers; below 2^32 their digits come from integer arithmetic.
    if (v !== Math.floor(v)) {
      this.pos += this.buf.write(formatValue(v), this.pos);
      return;
    }
    let digits = 1;
    while (digits < 10 && v >= POWERS_OF_TEN[digits]!) digits++;
    const buf = this.buf;
    let p = this.pos + digits;
    this.pos = p;
    let rest = v >>> 0;
    do {
      const q = (rest / 10) >>> 0;
      buf[--p] = ZERO + rest - q * 10;
      rest = q;
    } while (rest > 0);
  }

  private reserve(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    if (this.pos > 0) this.chunks.push(this.buf.subarray(0, this.pos));
    this.buf = Buffer.allocUnsafe(Math.max(this.chunkBytes, bytes));
    this.pos = 0;
  }
}
