/**
 * A cursor over untrusted JSON that knows its own field path, so every
 * validation failure names the exact field (`spec.blocks[2].cidr`) without
 * each parser threading strings around by hand.
 *
 * Every bad field of an object is reported, not only the first (issue 17):
 * `fail` throws a `ParseError` to abandon the field being read, and the
 * boundaries `recover` and `items` record it and let reading go on with the
 * next field or item; `report` records a problem without abandoning
 * anything (an unknown key, a value of the right type that breaks a rule).
 * All readers of one object share one list of problems; src/model/parse.ts
 * rejects the object if the list is not empty and returns the problems as
 * one value.
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
 *
 * The error parse.ts returns for an object is its first bad field (`field`,
 * `message`), with every other bad field of the same object in `more`, in
 * the order they were read; `toString` names them all.
 */
export class ParseError {
  readonly kind: string;
  readonly name: string;
  readonly namespace: string | undefined;
  /** Dotted path with indexes, `''` when the whole object is wrong. */
  readonly field: string;
  readonly message: string;
  /** The object's other bad fields (each without `more` of its own); empty when this is the only one. */
  readonly more: readonly ParseError[];

  constructor(ref: ObjectRef, field: string, message: string, more: readonly ParseError[] = []) {
    this.kind = ref.kind;
    this.name = ref.name;
    this.namespace = ref.namespace;
    this.field = field;
    this.message = message;
    this.more = more;
  }

  /** This error and those in `more`: every bad field of the object. */
  get all(): ParseError[] {
    return [this, ...this.more];
  }

  /**
   * `LoadBalancerIPPool "blue": spec.blocks[2].cidr: "10.0.0/24" is not a CIDR`, and with
   * more than one bad field: `...; spec.disabled: must be true or false, got "yes"`.
   */
  toString(): string {
    const who = this.namespace ? `${this.namespace}/${this.name}` : this.name;
    return `${this.kind} "${who}": ${this.all.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join('; ')}`;
  }

  /** Plain data for logs, reports and JSON output (`more` only when there is more than one). */
  toJSON(): { kind: string; name: string; namespace?: string; field: string; message: string; more?: { field: string; message: string }[] } {
    return {
      kind: this.kind,
      name: this.name,
      ...(this.namespace ? { namespace: this.namespace } : {}),
      field: this.field,
      message: this.message,
      ...(this.more.length ? { more: this.more.map((e) => ({ field: e.field, message: e.message })) } : {}),
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

/** The problems of one object, shared by all its readers: each field and message once, at most `LIMIT` listed. */
export class Problems {
  /** Enough to fix a file in one pass; a hostile object with a million bad items costs no more. */
  static readonly LIMIT = 50;
  readonly list: ParseError[] = [];
  /** Problems past LIMIT, counted only. */
  dropped = 0;
  private readonly seen = new Set<string>();

  add(err: ParseError): void {
    const key = `${err.field}\u0000${err.message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.list.length < Problems.LIMIT) this.list.push(err);
    else this.dropped++;
  }

  /** The object's error: the first problem carrying the others (and a count of any not listed). */
  error(): ParseError {
    const first = this.list[0]!;
    const rest = this.dropped ? [...this.list.slice(1), new ParseError(first, '', `and ${this.dropped} more problems not listed`)] : this.list.slice(1);
    return new ParseError(first, first.field, first.message, rest);
  }
}

export class FieldReader {
  constructor(
    /** Shared and mutable: parsers fill in the name once metadata is read, so earlier readers report it too. */
    readonly ref: ObjectRef,
    readonly path: string,
    readonly value: unknown,
    /** Shared by every reader of the object: what `report`, `recover` and `items` recorded. */
    readonly problems: Problems = new Problems(),
  ) {}

  static root(ref: ObjectRef, value: unknown): FieldReader {
    return new FieldReader(ref, '', value);
  }

  private child(path: string, value: unknown): FieldReader {
    return new FieldReader(this.ref, path, value, this.problems);
  }

  /** Records a problem with this field and goes on: the object will be rejected, the next field still read. */
  report(message: string): void {
    this.problems.add(new ParseError(this.ref, this.path, message));
  }

  /**
   * Runs `read`; if a field it reads fails, records why and returns
   * `fallback`, so one bad field does not hide the next. The object is
   * rejected all the same: `fallback` only lets reading go on.
   */
  recover<T>(read: () => T, fallback: T): T {
    try {
      return read();
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      // Once per field and message: a field read by two rules (a label, and the label a kind needs) is reported once.
      this.problems.add(err);
      return fallback;
    }
  }

  /** `read` of every item of a list (absent = empty); an item that fails is recorded and left out, and so is a non-list. */
  items<T>(read: (item: FieldReader) => T): T[] {
    const out: T[] = [];
    for (const item of this.recover(() => this.list(), [])) {
      item.recover(() => {
        out.push(read(item));
      }, undefined);
    }
    return out;
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
    return this.child(path, obj ? obj[key] : undefined);
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
    return this.value.map((v, i) => this.child(`${this.path}[${i}]`, v));
  }

  /** Keys of an object (absent = none). */
  entries(): [string, FieldReader][] {
    if (this.absent) return [];
    return Object.keys(this.object()).map((k) => [k, this.get(k)]);
  }

  /** Reports every key outside `allowed` — catches typos such as `serviceSelecter` in our own kinds. */
  onlyKeys(allowed: readonly string[]): void {
    if (this.absent) return;
    for (const key of Object.keys(this.object())) {
      if (!allowed.includes(key)) {
        this.get(key).report(`unknown field (expected one of: ${allowed.join(', ')})`);
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
