/** One request on a resource, by verb: the read paths (reads.ts), the write paths (writes.ts), patches and subresources. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resourceId, type Database } from './database.js';
import { parseObjectBody, readBody, sendJson } from './http-io.js';
import { applyPatch, patchBody } from './patch-request.js';
import { getObject, listObjects, selectorsOf, watchRequestOf } from './reads.js';
import { apiVersionOf } from './resources.js';
import type { Route, Verb } from './routing.js';
import { serveScale } from './scale.js';
import { HttpError, statusReasons } from './status.js';
import type { WatchHub } from './watch.js';
import { notFound, type Writes } from './writes.js';

export interface ResourceContext {
  db: Database;
  writes: Writes;
  watches: WatchHub;
}

export async function serveResource(ctx: ResourceContext, rt: Route, verb: Verb, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const { db, writes } = ctx;
  const r = rt.resource;
  if (rt.subresource === 'scale' && r.scaleSubresource && rt.name !== undefined) return serveScale(db, writes, rt, verb, req, res, query);
  if (rt.subresource !== undefined && (rt.subresource !== 'status' || !r.statusSubresource)) {
    throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${r.plural}/${rt.subresource})`);
  }
  const status = rt.subresource === 'status';
  const dryRun = query.get('dryRun') === 'All';
  const accept = req.headers.accept;
  const contentType = String(req.headers['content-type'] ?? 'application/json');
  switch (verb) {
    case 'list':
      return sendJson(res, 200, listObjects(db, rt, query, accept));
    case 'watch': {
      const refused = ctx.watches.open(watchRequestOf(rt, query, req), res);
      if (refused) throw new HttpError(refused.code, statusReasons[refused.code]!, refused.message);
      return;
    }
    case 'get': {
      const o = getObject(db, rt, query, accept);
      if (!o) throw notFound(r, rt.name!);
      return sendJson(res, 200, o);
    }
    case 'create': {
      if (rt.name !== undefined) throw new HttpError(405, 'MethodNotAllowed', 'POST to a named resource is not allowed');
      const body = parseObjectBody(await readBody(req), contentType);
      return sendJson(res, 201, writes.create(r, body, rt.namespace, dryRun));
    }
    case 'update': {
      const body = parseObjectBody(await readBody(req), contentType);
      return sendJson(res, 200, writes.update(r, rt.namespace, rt.name!, body, status, dryRun));
    }
    case 'patch': {
      const text = await readBody(req);
      if (contentType.split(';')[0]!.trim() === 'application/apply-patch+yaml') {
        const [code, obj] = applyPatch(db, writes, rt, status, query, text, dryRun);
        return sendJson(res, code, obj);
      }
      const current = db.get(resourceId(r), rt.namespace, rt.name!);
      if (!current) throw notFound(r, rt.name!);
      const patched = patchBody(r, current, contentType, text);
      if (typeof patched !== 'object' || patched === null) throw new HttpError(422, 'Invalid', 'the patch produced something that is not an object');
      return sendJson(res, 200, writes.update(r, rt.namespace, rt.name!, patched, status, dryRun));
    }
    case 'delete': {
      const text = await readBody(req);
      const opts = text.toString('utf8').trim() ? parseObjectBody(text, contentType) : {};
      return sendJson(res, 200, writes.remove(r, rt.namespace, rt.name!, opts?.preconditions, dryRun));
    }
    case 'deletecollection': {
      await readBody(req);
      const accepts = selectorsOf(query, undefined);
      const items = db.list(resourceId(r), rt.namespace).filter(accepts);
      const gone = items.map((o) => writes.remove(r, o.metadata.namespace, o.metadata.name, undefined, dryRun));
      return sendJson(res, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: { resourceVersion: String(db.resourceVersion) }, items: gone });
    }
  }
}
