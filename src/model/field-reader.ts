/**
 * A cursor over untrusted JSON that knows its own field path, so every
 * validation failure names the exact field (`spec.blocks[2].cidr`) without
 * each parser threading strings around by hand.
 *
 * Readers throw `ParseError`; src/model/parse.ts catches it at the object
 * boundary and returns it as a value.
 */

/** Which object a failure belongs to; filled in once metadata has been read. */
export interface ObjectRef {
  /** The kind as written in the manifest (`CiliumLoadBalancerIPPool`, not the model kind). */
  kind: string;
  name: string;
  namespace?: string;
}

/**
 * A validation failure, returned as a value (never thrown past parse.ts).
 * Not an Error subclass, so `name` can be the object's name as in the rest
 * of the model.
 */
export class ParseError {
  readonly kind: string;
  readonly name: string;
  readonly namespace: string | undefined;
  /** Dotted path with indexes, `''` when the whole object is wrong. */
  readonly field: string;
  readonly message: string;

  constructor(ref: ObjectRef, field: string, message: string) {
    this.kind = ref.kind;
    this.name = ref.name;
    this.namespace = ref.namespace;
    this.field = field;
    this.message = message;
  }

  /** `LoadBalancerIPPool "blue": spec.blocks[2].cidr: "10.0.0/24" is not a CIDR` */
  toString(): string {
    const who = this.namespace ? `${this.namespace}/${this.name}` : this.name;
    const where = this.field ? `${this.field}: ` : '';
    return `${this.kind} "${who}": ${where}${this.message}`;
  }

  /** Plain data for logs, reports and JSON output. */
  toJSON(): { kind: string; name: string; namespace?: string; field: string; message: string } {
    return {
      kind: this.kind,
      name: this.name,
      ...(this.namespace ? { namespace: this.namespace } : {}),
      field: this.field,
      message: this.message,
    };
  }
}

/** Renders a value for a message: strings quoted, short, never multi-line. */
export function show(value: unknown): string {
  let text: string;
  if (value === undefined) text = 'undefined';
  else if (typeof value === 'string') text = JSON.stringify(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

export class FieldReader {
  constructor(
    /** Shared and mutable: parsers fill in the name once metadata is read, so earlier readers report it too. */
    readonly ref: ObjectRef,
    readonly path: string,
    readonly value: unknown,
  ) {}

  static root(ref: ObjectRef, value: unknown): FieldReader {
    return new FieldReader(ref, '', value);
  }

  /** `null` and `undefined` both mean "not set", as in Kubernetes' JSON. */
  get absent(): boolean {
    return this.value === undefined || this.value === null;
  }

  fail(message: string): never {
    throw new ParseError(this.ref, this.path, message);
  }

  /** A child by key; the path uses `a.b` for identifier-like keys, `a["x/y"]` otherwise. */
  get(key: string): FieldReader {
    const obj = this.absent ? undefined : this.object();
    const segment = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? key : `[${JSON.stringify(key)}]`;
    const path = this.path === '' ? segment : segment.startsWith('[') ? `${this.path}${segment}` : `${this.path}.${segment}`;
    return new FieldReader(this.ref, path, obj ? obj[key] : undefined);
  }

  object(): Record<string, unknown> {
    if (typeof this.value !== 'object' || this.value === null || Array.isArray(this.value)) {
      this.fail(`must be an object, got ${typeName(this.value)}`);
    }
    return this.value as Record<string, unknown>;
  }

  /** Items of a list (absent = empty). */
  list(): FieldReader[] {
    if (this.absent) return [];
    if (!Array.isArray(this.value)) this.fail(`must be a list, got ${typeName(this.value)}`);
    return this.value.map((v, i) => new FieldReader(this.ref, `${this.path}[${i}]`, v));
  }

  /** Keys of an object (absent = none). */
  entries(): [string, FieldReader][] {
    if (this.absent) return [];
    return Object.keys(this.object()).map((k) => [k, this.get(k)]);
  }

  /** Rejects keys outside `allowed` — catches typos such as `serviceSelecter` in our own kinds. */
  onlyKeys(allowed: readonly string[]): void {
    if (this.absent) return;
    for (const key of Object.keys(this.object())) {
      if (!allowed.includes(key)) {
        this.get(key).fail(`unknown field (expected one of: ${allowed.join(', ')})`);
      }
    }
  }

  string(): string {
    if (typeof this.value !== 'string') this.fail(this.absent ? 'required' : `must be a string, got ${typeName(this.value)}`);
    return this.value;
  }

  /** A string, or undefined when absent or empty. */
  optString(): string | undefined {
    if (this.absent) return undefined;
    const s = this.string();
    return s === '' ? undefined : s;
  }

  nonEmptyString(): string {
    const s = this.string();
    if (s === '') this.fail('must not be empty');
    return s;
  }

  boolean(fallback: boolean): boolean {
    if (this.absent) return fallback;
    if (typeof this.value !== 'boolean') this.fail(`must be true or false, got ${show(this.value)}`);
    return this.value;
  }

  /** A boolean with no default: undefined when absent. */
  optBoolean(): boolean | undefined {
    if (this.absent) return undefined;
    return this.boolean(false);
  }

  integer(min: number, max: number, fallback?: number): number {
    if (this.absent) {
      if (fallback === undefined) this.fail('required');
      return fallback;
    }
    const v = this.value;
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(`must be an integer, got ${show(v)}`);
    if (v < min || v > max) this.fail(`${v} is out of range ${min}..${max}`);
    return v;
  }

  optInteger(min: number, max: number): number | undefined {
    return this.absent ? undefined : this.integer(min, max);
  }

  oneOf<T extends string>(allowed: readonly T[], fallback?: T): T {
    if (this.absent && fallback !== undefined) return fallback;
    const s = this.string();
    if (!(allowed as readonly string[]).includes(s)) {
      this.fail(`${show(s)} is not one of ${allowed.join(', ')}`);
    }
    return s as T;
  }

  /** A map of string to string (labels, annotations). */
  stringMap(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, r] of this.entries()) out[k] = r.string();
    return out;
  }
}
