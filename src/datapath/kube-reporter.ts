/**
 * Kubernetes mode: a service this node cannot carry in full is reported on
 * the Service itself, as Cilium and MetalLB users look for it (`kubectl
 * describe svc`):
 *
 * - the condition `lb.pharos.io/DataPathProgrammed`, shared by every node:
 *   one entry per node with a problem (`node n1: FrontendMapFull: ...`),
 *   False while any entry is left, True once the last one is gone; each
 *   node adds and removes only its own entry, merged into the object it
 *   read (resourceVersion-checked, re-read on 409), so nodes and the IPAM
 *   leader never overwrite each other;
 * - a Warning event per node when a problem starts or changes reason.
 *
 * Written through the status writer's token bucket (`--k8s-qps`), one
 * service at a time, coalesced: a map filling up at 10,000 services is
 * reported at the budgeted rate, never as a burst. A service that was never
 * reported gets nothing written (no 10,000 "True" writes at start).
 */
import type { Condition } from '../model/types.js';
import type { Store } from '../store/store.js';
import type { KubeEvent } from '../sinks/kube/writer.js';

export const DATAPATH_CONDITION = 'lb.pharos.io/DataPathProgrammed';

export interface NodeProblem {
  /** A word: FrontendMapFull, BackendMapFull, TooManyBackends, ... */
  reason: string;
  message: string;
}

/** Kubernetes caps a condition message at 32,768 characters; each node's entry is kept short. */
const MAX_MESSAGE = 32_000;
const MAX_ENTRY = 240;
const SEPARATOR = ' | ';
const ENTRY = /^node (\S+): (\S+): (.*)$/s;

/** The nodes' entries of a DataPathProgrammed condition, by node. */
export function nodeEntries(c: Condition | undefined): Map<string, NodeProblem> {
  const out = new Map<string, NodeProblem>();
  if (!c || c.status !== 'False') return out;
  for (const part of c.message.split(SEPARATOR)) {
    const m = ENTRY.exec(part);
    if (m) out.set(m[1]!, { reason: m[2]!, message: m[3]! });
  }
  return out;
}

function entryText(node: string, p: NodeProblem): string {
  const reason = p.reason.replace(/\s+/g, '') || 'NotProgrammed';
  const message = p.message.replaceAll('|', '/').replace(/\s+/g, ' ').slice(0, MAX_ENTRY);
  return `node ${node}: ${reason}: ${message}`;
}

/**
 * The condition after `node` reports `problem` (undefined: it carries the
 * service in full). Undefined when there is nothing to write: no condition
 * and no problem. Pure.
 */
export function mergeNodeProblem(existing: Condition | undefined, node: string, problem: NodeProblem | undefined, now: string): Condition | undefined {
  const entries = nodeEntries(existing);
  if (problem) entries.set(node, { reason: problem.reason, message: problem.message });
  else entries.delete(node);
  if (!existing && entries.size === 0) return undefined;
  let next: Omit<Condition, 'lastTransitionTime'>;
  if (entries.size === 0) {
    next = { type: DATAPATH_CONDITION, status: 'True', reason: 'Programmed', message: 'in the data path on every node' };
  } else {
    const nodes = [...entries.keys()].sort();
    const reasons = new Set(nodes.map((n) => entries.get(n)!.reason));
    let message = '';
    for (const n of nodes) {
      const text = entryText(n, entries.get(n)!);
      if (message.length + SEPARATOR.length + text.length > MAX_MESSAGE) break;
      message = message ? `${message}${SEPARATOR}${text}` : text;
    }
    next = { type: DATAPATH_CONDITION, status: 'False', reason: reasons.size === 1 ? [...reasons][0]! : 'NotProgrammed', message };
  }
  const at = existing && existing.status === next.status && existing.lastTransitionTime ? existing.lastTransitionTime : now;
  return { ...next, lastTransitionTime: at };
}

function sameCondition(a: Condition | undefined, b: Condition | undefined): boolean {
  return a?.status === b?.status && a?.reason === b?.reason && a?.message === b?.message;
}

/** What the reporter needs of KubeWriter. */
export interface DatapathReportWriter {
  patchServiceStatus(namespace: string, name: string, status: unknown, opts: { resourceVersion?: string; recompute?: (fresh: any) => unknown | null }): Promise<unknown>;
  createEvent(event: KubeEvent): Promise<void>;
}

export interface DatapathReporterOptions {
  writer: DatapathReportWriter;
  store: Store;
  node: string;
  log: { warn(msg: string, f?: Record<string, unknown>): void; debug(msg: string, f?: Record<string, unknown>): void };
  /** Writes in flight at once (each waits for its token anyway). Default 4. */
  concurrency?: number;
  now?: () => Date;
}

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export class KubeDatapathReporter {
  /** This node's problem per service, as the data path last said. */
  private readonly problems = new Map<string, NodeProblem>();
  /** Services whose entry may differ from what the API holds. */
  private readonly pending = new Set<string>();
  /** The reason last sent as an event, per service (one event per problem, not per pass). */
  private readonly evented = new Map<string, string>();
  private running = 0;
  private stopped = false;
  /** Writes done (for tests and the log). */
  written = 0;

  constructor(private readonly opts: DatapathReporterOptions) {}

  /** The data path's word on `service` for this node (undefined: carried in full, or gone). */
  set(service: string, problem: NodeProblem | undefined): void {
    const had = this.problems.get(service);
    if (problem) this.problems.set(service, problem);
    else this.problems.delete(service);
    if (!problem) this.evented.delete(service);
    // Nothing to take back and nothing to say: no work (every service reports once at start).
    if (!problem && !had && !this.entryOf(service)) return;
    this.pending.add(service);
    this.pump();
  }

  /** Services this node reports not programmed. */
  get reported(): number {
    return this.problems.size;
  }

  stop(): void {
    this.stopped = true;
    this.pending.clear();
  }

  private entryOf(service: string): NodeProblem | undefined {
    const svc = this.opts.store.get('Service', service);
    return nodeEntries(svc?.status.conditions.find((c) => c.type === DATAPATH_CONDITION)).get(this.opts.node);
  }

  private pump(): void {
    const limit = this.opts.concurrency ?? 4;
    while (!this.stopped && this.running < limit && this.pending.size > 0) {
      const service = this.pending.values().next().value!;
      this.pending.delete(service);
      this.running++;
      this.write(service)
        .catch((e: Error) => this.opts.log.warn('data-path condition not written', { service, error: e.message }))
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }

  private async write(service: string): Promise<void> {
    const svc = this.opts.store.get('Service', service);
    if (!svc) return;
    const [namespace, name] = service.split('/') as [string, string];
    const problem = this.problems.get(service);
    const now = rfc3339((this.opts.now ?? (() => new Date()))());
    const build = (conditions: Condition[]): { conditions: Condition[] } | null => {
      const existing = conditions.find((c) => c.type === DATAPATH_CONDITION);
      const next = mergeNodeProblem(existing, this.opts.node, problem, now);
      if (!next || sameCondition(existing, next)) return null;
      return { conditions: [...conditions.filter((c) => c.type !== DATAPATH_CONDITION), next] };
    };
    const body = build(svc.status.conditions);
    if (body) {
      await this.opts.writer.patchServiceStatus(namespace, name, body, {
        ...(svc.meta.resourceVersion ? { resourceVersion: svc.meta.resourceVersion } : {}),
        recompute: (fresh) => build(Array.isArray(fresh?.status?.conditions) ? (fresh.status.conditions as Condition[]).filter((c) => c && typeof c.type === 'string') : []),
      });
      this.written++;
    }
    if (problem && this.evented.get(service) !== problem.reason) {
      this.evented.set(service, problem.reason);
      await this.opts.writer.createEvent({
        namespace, name, kind: 'Service', uid: svc.meta.uid, type: 'Warning', reason: problem.reason,
        message: `node ${this.opts.node}: ${problem.message}`.slice(0, 1024), node: this.opts.node,
      }).catch((e: Error) => this.opts.log.debug('event not written', { service, error: e.message }));
    }
  }
}
