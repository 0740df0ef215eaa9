/** The `/scale` subresource (kubectl scale) of workloads that declare one. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resourceId, type Database, type Json } from './database.js';
import { parseObjectBody, readBody, sendJson } from './http-io.js';
import { applyJsonPatch, applyMergePatch } from './patch.js';
import type { Route, Verb } from './routing.js';
import { HttpError } from './status.js';
import { conflict, notFound, type Writes } from './writes.js';

/** The autoscaling/v1 Scale of a workload: spec.replicas (1 when unset), status.replicas and the selector as a string. */
function scaleOf(o: Json): Json {
  const m = o.metadata;
  const labels = Object.entries(o.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${String(v)}`).join(',');
  return {
    kind: 'Scale', apiVersion: 'autoscaling/v1',
    metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, creationTimestamp: m.creationTimestamp },
    spec: { replicas: o.spec?.replicas ?? 1 },
    status: { replicas: o.status?.replicas ?? 0, ...(labels ? { selector: labels } : {}) },
  };
}

/** Reads and writes the parent's spec.replicas; a write bumps its generation as a spec change does. */
export async function serveScale(db: Database, writes: Writes, rt: Route, verb: Verb, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const r = rt.resource;
  const current = db.get(resourceId(r), rt.namespace, rt.name!);
  if (!current) throw notFound(r, rt.name!);
  if (verb === 'get') return sendJson(res, 200, scaleOf(current));
  if (verb !== 'update' && verb !== 'patch') throw new HttpError(405, 'MethodNotAllowed', `${verb} is not supported on ${r.plural}/scale`);
  const text = await readBody(req);
  const contentType = String(req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim();
  let wanted: Json;
  try {
    if (verb === 'update') wanted = parseObjectBody(text, contentType);
    else if (contentType === 'application/json-patch+json') wanted = applyJsonPatch(scaleOf(current), JSON.parse(text.toString('utf8')));
    else if (contentType === 'application/merge-patch+json' || contentType === 'application/strategic-merge-patch+json') wanted = applyMergePatch(scaleOf(current), JSON.parse(text.toString('utf8')));
    else throw new HttpError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`);
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw new HttpError(400, 'BadRequest', (e as Error).message);
  }
  const replicas = wanted?.spec?.replicas;
  if (!Number.isInteger(replicas) || replicas < 0) throw new HttpError(422, 'Invalid', `Scale.autoscaling "${rt.name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`);
  const precondition = wanted?.metadata?.resourceVersion;
  if (verb === 'update' && precondition && precondition !== current.metadata.resourceVersion) throw conflict(r, rt.name!);
  const next = structuredClone(current);
  next.spec = { ...(next.spec ?? {}), replicas };
  const written = writes.update(r, rt.namespace, rt.name!, next, false, query.get('dryRun') === 'All');
  return sendJson(res, 200, scaleOf(written));
}
