/** The read paths: selectors, paged lists (continue tokens, Table output) and what a watch request asks for. */
import type { IncomingMessage } from 'node:http';
import { resourceId, type Database, type Json } from './database.js';
import { apiVersionOf } from './resources.js';
import type { Route } from './routing.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError } from './selectors.js';
import { HttpError } from './status.js';
import { toTable, wantsTable, type IncludeObject } from './tables.js';
import type { WatchRequest } from './watch.js';

/** The label and field selectors of a request (and, for a watch on one object, its name) as one predicate. */
export function selectorsOf(query: URLSearchParams, name: string | undefined): (o: Json) => boolean {
  try {
    const labels = parseLabelSelector(query.get('labelSelector'));
    const fields = parseFieldSelector(query.get('fieldSelector'));
    return (o: Json) => matchesLabels(labels, o.metadata?.labels) && matchesFields(fields, o.metadata ?? {}) && (name === undefined || o.metadata?.name === name);
  } catch (e) {
    if (e instanceof SelectorError) throw new HttpError(400, 'BadRequest', e.message);
    throw e;
  }
}

export function includeObjectOf(query: URLSearchParams): IncludeObject {
  const v = query.get('includeObject');
  return v === 'None' || v === 'Object' ? v : 'Metadata';
}

export function getObject(db: Database, rt: Route, query: URLSearchParams, accept: string | undefined): Json | undefined {
  const o = db.get(resourceId(rt.resource), rt.namespace, rt.name!);
  if (!o) return undefined;
  return wantsTable(accept) ? toTable(rt.resource, [o], includeObjectOf(query), { resourceVersion: o.metadata.resourceVersion }) : o;
}

/** A list, paged by `limit` and `continue` (a token that names the list's resourceVersion: 410 once compacted). */
export function listObjects(db: Database, rt: Route, query: URLSearchParams, accept: string | undefined): Json {
  const r = rt.resource;
  const accepts = selectorsOf(query, undefined);
  let items = db.list(resourceId(r), rt.namespace).filter(accepts);
  let rv = db.resourceVersion;
  const limit = Number(query.get('limit') ?? 0);
  const token = query.get('continue');
  let start = 0;
  if (token) {
    let parsed: { rv: number; after: string };
    try {
      parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    } catch {
      throw new HttpError(400, 'BadRequest', 'invalid continue token');
    }
    if (parsed.rv < db.compactedResourceVersion || parsed.rv > db.resourceVersion) {
      throw new HttpError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
    }
    rv = parsed.rv;
    const keyOf = (o: Json) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    start = items.findIndex((o) => keyOf(o) > parsed.after);
    if (start < 0) start = items.length;
  }
  const listMeta: Json = { resourceVersion: String(rv) };
  if (limit > 0 && items.length - start > limit) {
    const page = items.slice(start, start + limit);
    const last = page[page.length - 1];
    listMeta.continue = Buffer.from(JSON.stringify({ rv, after: `${last.metadata.namespace ?? ''}/${last.metadata.name}` })).toString('base64url');
    listMeta.remainingItemCount = items.length - start - limit;
    items = page;
  } else items = items.slice(start);
  if (wantsTable(accept)) return toTable(r, items, includeObjectOf(query), listMeta);
  return { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: listMeta, items };
}

export function watchRequestOf(rt: Route, query: URLSearchParams, req: IncomingMessage): WatchRequest {
  return {
    resource: rt.resource,
    namespace: rt.namespace,
    accepts: selectorsOf(query, rt.name),
    table: wantsTable(req.headers.accept),
    include: includeObjectOf(query),
    resourceVersion: query.get('resourceVersion') ?? '',
    timeoutSeconds: Number(query.get('timeoutSeconds') ?? 0),
    bookmarks: query.get('allowWatchBookmarks') === 'true',
  };
}
