/**
 * The emulator's storage: every object of every resource, one global integer
 * resourceVersion bumped on each write (as etcd's revision), and an event log
 * for watch replay. Compaction forgets the log up to the current revision, so
 * a watch from an older resourceVersion gets 410 Gone — exactly the case
 * informers must survive.
 *
 * A Database outlives the HTTP server that serves it: tests stop the server,
 * start a new one on the same port over the same Database, and the cluster
 * state is still there.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ResourceType } from './resources.js';

export type Json = any;

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredEvent {
  rv: number;
  type: EventType;
  /** `group/plural` of the resource. */
  resource: string;
  /** Previous state (absent for ADDED); a filtered watch needs it to turn MODIFIED into ADDED/DELETED. */
  old?: Json;
  object: Json;
}

export function resourceId(r: Pick<ResourceType, 'group' | 'plural'>): string {
  return `${r.group}/${r.plural}`;
}

function objectId(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

/** Keeps the log bounded in long lab runs; older watches get 410 and relist. */
const defaultMaxLogEvents = 20_000;

export class Database extends EventEmitter<{ event: [StoredEvent] }> {
  private rv = 1;
  /** Events with rv <= compactedRv are gone from the log. */
  private compactedRv = 1;
  private readonly log: StoredEvent[] = [];
  private readonly tables = new Map<string, Map<string, Json>>();

  constructor(private readonly maxLogEvents = defaultMaxLogEvents) {
    super();
    this.setMaxListeners(0);
  }

  get resourceVersion(): number {
    return this.rv;
  }

  get compactedResourceVersion(): number {
    return this.compactedRv;
  }

  private table(resource: string): Map<string, Json> {
    let t = this.tables.get(resource);
    if (!t) {
      t = new Map();
      this.tables.set(resource, t);
    }
    return t;
  }

  get(resource: string, namespace: string | undefined, name: string): Json | undefined {
    return this.tables.get(resource)?.get(objectId(namespace, name));
  }

  /** Objects of a resource, optionally of one namespace, sorted by namespace/name (stable pagination). */
  list(resource: string, namespace?: string): Json[] {
    const t = this.tables.get(resource);
    if (!t) return [];
    const keys = [...t.keys()].sort();
    const out: Json[] = [];
    for (const k of keys) {
      const o = t.get(k);
      if (namespace !== undefined && (o.metadata.namespace ?? '') !== namespace) continue;
      out.push(o);
    }
    return out;
  }

  /** Every namespaced object in `namespace`, across resources. */
  allInNamespace(namespace: string): { resource: string; object: Json }[] {
    const out: { resource: string; object: Json }[] = [];
    for (const [resource, t] of this.tables) {
      for (const o of t.values()) if (o.metadata.namespace === namespace) out.push({ resource, object: o });
    }
    return out;
  }

  /**
   * Store a new version of an object (create when absent). The caller has
   * done admission; the database stamps resourceVersion (and uid and
   * creationTimestamp on create) and logs the event.
   */
  put(resource: string, obj: Json): Json {
    const t = this.table(resource);
    const id = objectId(obj.metadata.namespace, obj.metadata.name);
    const old = t.get(id);
    const stored = structuredClone(obj);
    stored.metadata.resourceVersion = String(++this.rv);
    if (!old) {
      stored.metadata.uid ??= randomUUID();
      stored.metadata.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    }
    t.set(id, stored);
    this.record({ rv: this.rv, type: old ? 'MODIFIED' : 'ADDED', resource, old, object: stored });
    return stored;
  }

  delete(resource: string, namespace: string | undefined, name: string): Json | undefined {
    const t = this.tables.get(resource);
    const id = objectId(namespace, name);
    const old = t?.get(id);
    if (!t || !old) return undefined;
    t.delete(id);
    // A DELETED event carries a new resourceVersion (informers track it).
    const gone = structuredClone(old);
    gone.metadata.resourceVersion = String(++this.rv);
    this.record({ rv: this.rv, type: 'DELETED', resource, old, object: gone });
    return gone;
  }

  private record(ev: StoredEvent): void {
    this.log.push(ev);
    if (this.log.length > this.maxLogEvents) {
      const dropped = this.log.splice(0, this.log.length - this.maxLogEvents);
      this.compactedRv = dropped[dropped.length - 1]!.rv;
    }
    this.emit('event', ev);
  }

  /** Forget the event log up to now: any watch from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.log.length = 0;
    this.compactedRv = this.rv;
  }

  /**
   * Events of `resource` after `sinceRv`, or `undefined` when that part of
   * the log is compacted away (the caller answers 410 Gone).
   */
  eventsSince(resource: string, sinceRv: number): StoredEvent[] | undefined {
    if (sinceRv < this.compactedRv) return undefined;
    return this.log.filter((e) => e.rv > sinceRv && e.resource === resource);
  }
}
