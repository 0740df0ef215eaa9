/**
 * Watch streams: one JSON event per line on a chunked 200 response, fed
 * from the Database's event log (replay from a resourceVersion) and its live
 * events, filtered per watch. Also the test hooks that act on streams:
 * close or expire them all, stall them (pause), lose events (drop).
 */
import type { ServerResponse } from 'node:http';
import { resourceId, type Database, type Json, type StoredEvent } from './database.js';
import { apiVersionOf, type ResourceType } from './resources.js';
import { statusBody } from './status.js';
import { toTable, type IncludeObject } from './tables.js';

export interface WatchRequest {
  resource: ResourceType;
  namespace?: string;
  /** Label, field and name selectors. */
  accepts: (obj: Json) => boolean;
  /** Events carry one-row Tables (kubectl get -w). */
  table: boolean;
  include: IncludeObject;
  /** The raw query parameter: '' or '0' = current state as ADDED events, N = replay after N. */
  resourceVersion: string;
  timeoutSeconds: number;
  bookmarks: boolean;
}

interface Stream {
  resource: ResourceType;
  accepts: (obj: Json) => boolean;
  send: (type: string, obj: Json) => void;
  end: (expired: boolean) => void;
  flush: () => void;
}

export class WatchHub {
  private readonly streams = new Set<Stream>();
  private paused = false;
  private eventsToDrop = 0;
  private readonly onEvent = (ev: StoredEvent) => {
    if (this.eventsToDrop > 0) {
      this.eventsToDrop--;
      return;
    }
    for (const s of this.streams) deliver(s, ev);
  };

  constructor(
    private readonly db: Database,
    private readonly opts: { bookmarkIntervalMs: number; goneAs: 'event' | 'http' },
  ) {
    db.on('event', this.onEvent);
  }

  get size(): number {
    return this.streams.size;
  }

  /**
   * Start a stream on `res`. Returns an error instead when the request is
   * refused before any byte is written (bad resourceVersion, or 410 as HTTP).
   */
  open(w: WatchRequest, res: ServerResponse): { code: 400 | 410; message: string } | undefined {
    const { db } = this;
    let since: number | undefined;
    if (w.resourceVersion !== '' && w.resourceVersion !== '0') {
      since = Number(w.resourceVersion);
      if (!Number.isInteger(since) || since < 0) return { code: 400, message: `invalid resourceVersion "${w.resourceVersion}"` };
    }
    // A resourceVersion from the future means the client saw another incarnation of this
    // emulator (restarted without its Database): 410 makes it relist instead of waiting forever.
    const fromFuture = since !== undefined && since > db.resourceVersion;
    const backlog = since === undefined || fromFuture ? undefined : db.eventsSince(resourceId(w.resource), since);
    const tooOld = since !== undefined && backlog === undefined;
    const goneMessage = fromFuture
      ? `resource version ${since} is newer than the server's (${db.resourceVersion}): the server restarted`
      : `too old resource version: ${since} (${db.compactedResourceVersion})`;
    if (tooOld && this.opts.goneAs === 'http') return { code: 410, message: goneMessage };

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    let ended = false;
    let timeout: NodeJS.Timeout | undefined;
    let bookmark: NodeJS.Timeout | undefined;
    const pending: string[] = [];
    const finish = () => {
      ended = true;
      clearTimeout(timeout);
      clearTimeout(bookmark);
      this.streams.delete(stream);
    };
    const write = (line: string) => {
      if (ended) return;
      if (this.paused) pending.push(line);
      else res.write(line);
    };
    const r = w.resource;
    const stream: Stream = {
      resource: r,
      accepts: (o) => (w.namespace === undefined || o.metadata?.namespace === w.namespace) && w.accepts(o),
      send: (type, obj) => {
        const object = w.table && type !== 'BOOKMARK' && type !== 'ERROR' ? toTable(r, [obj], w.include, { resourceVersion: obj.metadata.resourceVersion }) : obj;
        write(JSON.stringify({ type, object }) + '\n');
      },
      end: (expired) => {
        if (ended) return;
        if (expired) stream.send('ERROR', statusBody(410, 'Expired', goneMessage));
        for (const line of pending.splice(0)) res.write(line);
        finish();
        res.end();
      },
      flush: () => {
        for (const line of pending.splice(0)) res.write(line);
      },
    };
    res.on('close', finish);
    if (tooOld) {
      stream.end(true);
      return undefined;
    }
    if (since === undefined) {
      for (const o of db.list(resourceId(r), w.namespace)) if (stream.accepts(o)) stream.send('ADDED', o);
    } else {
      for (const ev of backlog!) deliver(stream, ev);
    }
    this.streams.add(stream);
    if (w.timeoutSeconds > 0) timeout = setTimeout(() => stream.end(false), w.timeoutSeconds * 1000);
    if (w.bookmarks) {
      const tick = () => {
        // Only a stream that is up to date may promise "nothing before this RV is missing".
        if (!this.paused && pending.length === 0) {
          stream.send('BOOKMARK', { kind: r.kind, apiVersion: apiVersionOf(r), metadata: { resourceVersion: String(db.resourceVersion) } });
        }
        bookmark = setTimeout(tick, this.opts.bookmarkIntervalMs);
      };
      bookmark = setTimeout(tick, this.opts.bookmarkIntervalMs);
    }
    return undefined;
  }

  /** End every stream cleanly (clients re-watch from their last resourceVersion). */
  closeAll(): void {
    for (const s of [...this.streams]) s.end(false);
  }

  /** ERROR 410 on every stream, then end it (clients relist). */
  expireAll(): void {
    for (const s of [...this.streams]) s.end(true);
  }

  /** Hold events (in order) until resume(). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const s of this.streams) s.flush();
  }

  /** The next `n` events reach no stream (they stay in the log for replay). */
  dropEvents(n: number): void {
    this.eventsToDrop += n;
  }

  /** Stop listening to the Database (server shutdown; the Database may be served again). */
  detach(): void {
    this.db.off('event', this.onEvent);
  }
}

/** Turn a stored event into what a filtered stream must see (objects entering or leaving its selector included). */
function deliver(s: Stream, ev: StoredEvent): void {
  if (resourceId(s.resource) !== ev.resource) return;
  const nowIn = s.accepts(ev.object);
  const wasIn = ev.old !== undefined && s.accepts(ev.old);
  if (ev.type === 'DELETED') {
    if (wasIn) s.send('DELETED', ev.object);
  } else if (nowIn && wasIn) s.send('MODIFIED', ev.object);
  else if (nowIn) s.send('ADDED', ev.object);
  else if (wasIn) s.send('DELETED', ev.object);
}
