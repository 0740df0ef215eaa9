/**
 * One list+watch of one resource, kept alive no matter what the API server
 * does. The library's ListWatch does the cache bookkeeping (add/update/delete
 * diffing on relist, resourceVersion tracking, relist on 410 Gone); around
 * it this adds what 1.4.0 lacks (shared/K8S-CLIENT-FACTS.md):
 * - restart after `error` (a failed list or watch stops ListWatch for good),
 *   with exponential back-off and a `stopping` guard;
 * - deadlines on lists and watch headers, and an idle timeout that ends a
 *   silent watch (bookmarks are requested, so a healthy watch is never silent
 *   for long) — 1.4.0 would otherwise hang on a half-open connection;
 * - raw JSON everywhere, stamped with apiVersion/kind (list items lack them).
 */
import { EventEmitter } from 'node:events';
import { ListWatch, type KubernetesObject, type Watch } from '@kubernetes/client-node';
import type { RestClient } from './rest-client.js';

export interface InformerTuning {
  /** First back-off after a failure; doubles up to maxBackoffMs. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  listTimeoutMs: number;
  watchHeadersTimeoutMs: number;
  /** A watch with no byte for this long is ended and re-opened. */
  watchIdleTimeoutMs: number;
  /** Server-side watch timeout, randomised ±25% so informers do not reconnect in lockstep. */
  watchTimeoutSeconds: number;
}

export const defaultTuning: InformerTuning = {
  initialBackoffMs: 500,
  maxBackoffMs: 30_000,
  listTimeoutMs: 30_000,
  watchHeadersTimeoutMs: 15_000,
  watchIdleTimeoutMs: 90_000,
  watchTimeoutSeconds: 300,
};

export interface InformerSpec {
  /** Collection path, e.g. `/api/v1/services` or `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases`. */
  path: string;
  apiVersion: string;
  kind: string;
  labelSelector?: string;
  fieldSelector?: string;
}

type Raw = KubernetesObject & Record<string, any>;

export interface InformerEvents {
  add: [Raw];
  update: [Raw];
  delete: [Raw];
  /** A full list has been applied (first time and after every relist). */
  listed: [];
  /** A list or watch failed; the informer retries after `retryInMs`. */
  failure: [Error, number];
}

export class KubeInformer extends EventEmitter<InformerEvents> {
  private readonly lw: ListWatch<Raw>;
  private readonly tuning: InformerTuning;
  private stopping = true;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private listedPending = false;
  /** Consecutive watches that ended at once without an event. */
  private quietEnds = 0;
  /** Counters for metrics: lists, watches opened, failures, events. */
  readonly stats = { lists: 0, watches: 0, failures: 0, events: 0 };

  constructor(
    private readonly rest: RestClient,
    readonly spec: InformerSpec,
    tuning: Partial<InformerTuning> = {},
  ) {
    super();
    this.tuning = { ...defaultTuning, ...tuning };
    const stamp = (o: Raw): Raw => (o && typeof o === 'object' ? { ...o, apiVersion: spec.apiVersion, kind: spec.kind } : o);
    const watchAdapter = {
      watch: (path: string, query: Record<string, any>, cb: (type: string, obj: any, raw?: any) => void, done: (err: any) => void) => {
        this.stats.watches++;
        if (this.listedPending) {
          this.listedPending = false;
          this.emit('listed');
        }
        const jitter = 0.75 + Math.random() * 0.5;
        const openedAt = performance.now();
        let events = 0;
        // A stream that ends at once with nothing in it (a broken proxy, a server closing every
        // watch) would make ListWatch re-watch in a tight loop — 1.4.0 has no back-off there
        // (K8S-CLIENT-FACTS: three watches in 0.3 s). Such ends are delayed, doubling.
        const endedQuietly = (err: any) => {
          if (err || this.stopping || events > 0 || performance.now() - openedAt >= 1000) {
            this.quietEnds = 0;
            done(err);
            return;
          }
          const delay = Math.min(this.tuning.maxBackoffMs, this.tuning.initialBackoffMs * 2 ** this.quietEnds++);
          clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => done(null), delay);
        };
        return this.rest.watch(
          path,
          { ...query, allowWatchBookmarks: 'true', timeoutSeconds: Math.max(1, Math.round(this.tuning.watchTimeoutSeconds * jitter)) },
          (type, obj) => {
            events++;
            this.stats.events++;
            this.failures = 0;
            cb(type, type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED' ? stamp(obj) : obj);
          },
          endedQuietly,
          { headersMs: this.tuning.watchHeadersTimeoutMs, idleMs: this.tuning.watchIdleTimeoutMs },
        );
      },
    };
    const listFn = async () => {
      this.stats.lists++;
      const list = await this.rest.getJson(
        spec.path,
        { labelSelector: spec.labelSelector, fieldSelector: spec.fieldSelector },
        this.tuning.listTimeoutMs,
      );
      if (!Array.isArray(list?.items)) throw new Error(`list ${spec.path}: no items in the response`);
      list.items = list.items.map(stamp);
      this.failures = 0;
      this.listedPending = true;
      return list;
    };
    this.lw = new ListWatch<Raw>(spec.path, watchAdapter as unknown as Watch, listFn as any, false, spec.labelSelector, spec.fieldSelector);
    this.lw.on('add', (o) => this.emit('add', o));
    this.lw.on('update', (o) => this.emit('update', o));
    this.lw.on('delete', (o) => this.emit('delete', o));
    this.lw.on('error', (err: any) => this.onError(err));
  }

  start(): void {
    if (!this.stopping) return;
    this.stopping = false;
    void this.lw.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    await this.lw.stop();
  }

  /** The objects the informer currently holds. */
  list(): readonly Raw[] {
    return this.lw.list();
  }

  private onError(err: any): void {
    if (this.stopping) return;
    this.stats.failures++;
    const delay = Math.min(this.tuning.maxBackoffMs, this.tuning.initialBackoffMs * 2 ** this.failures);
    this.failures++;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.stopping) void this.lw.start();
    }, delay);
    this.emit('failure', err instanceof Error ? err : new Error(String(err?.message ?? err)), delay);
  }
}
