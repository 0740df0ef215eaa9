/** Injected failures for tests: the next N requests of a verb (optionally on one resource) fail with a given code. */
import type { Verb } from './routing.js';

interface Fault {
  verb: Verb | '*';
  resource?: string;
  code: number;
  remaining: number;
}

export class FaultInjector {
  private readonly faults: Fault[] = [];

  failNext(verb: Verb | '*', code: number, opts: { resource?: string; count?: number } = {}): void {
    this.faults.push({ verb, code, resource: opts.resource, remaining: opts.count ?? 1 });
  }

  /** The code the request must fail with, consuming one use of the first fault that matches it. */
  take(verb: Verb, resource: string): number | undefined {
    const i = this.faults.findIndex((f) => (f.verb === '*' || f.verb === verb) && (f.resource === undefined || f.resource === resource));
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    if (--f.remaining <= 0) this.faults.splice(i, 1);
    return f.code;
  }
}
