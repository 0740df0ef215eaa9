/** PATCH requests: the JSON, merge and strategic-merge formats (patch.ts) and server-side apply (apply.ts). */
import { listKindFrom, serverSideApply } from './apply.js';
import { resourceId, type Database, type Json } from './database.js';
import { parseObjectBody } from './http-io.js';
import { applyJsonPatch, applyMergePatch, applyStrategicMerge, PatchError } from './patch.js';
import { apiVersionOf, type ResourceType } from './resources.js';
import type { Route } from './routing.js';
import { HttpError, statusReasons } from './status.js';
import { notFound, type Writes } from './writes.js';

/** The object a JSON, merge or strategic-merge patch makes of `current`; custom resources take no strategic merge, as upstream. */
export function patchBody(r: ResourceType, current: Json, contentType: string, text: Buffer): Json {
  const type = contentType.split(';')[0]!.trim();
  try {
    switch (type) {
      case 'application/json-patch+json':
        return applyJsonPatch(current, parseObjectBody(text, 'application/json'));
      case 'application/merge-patch+json':
        return applyMergePatch(current, parseObjectBody(text, 'application/json'));
      case 'application/strategic-merge-patch+json':
        if (r.custom) {
          throw new HttpError(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml');
        }
        return applyStrategicMerge(current, parseObjectBody(text, 'application/json'));
      default:
        throw new HttpError(
          415,
          'UnsupportedMediaType',
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json${r.custom ? '' : ', application/strategic-merge-patch+json'}, application/apply-patch+yaml`,
        );
    }
  } catch (e) {
    if (e instanceof PatchError) throw new HttpError(e.code, statusReasons[e.code] ?? 'Invalid', e.message);
    throw e;
  }
}

/** Server-side apply (see apply.ts): 201 when it creates, 200 otherwise. */
export function applyPatch(db: Database, writes: Writes, rt: Route, status: boolean, query: URLSearchParams, body: Buffer, dryRun: boolean): [number, Json] {
  const r = rt.resource;
  const manager = query.get('fieldManager');
  if (!manager) throw new HttpError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
  const applied = parseObjectBody(body, 'application/yaml');
  if (typeof applied !== 'object' || applied === null || Array.isArray(applied)) throw new HttpError(400, 'BadRequest', 'the applied configuration must be an object');
  if (applied.kind !== r.kind || applied.apiVersion !== apiVersionOf(r)) {
    throw new HttpError(400, 'BadRequest', `the applied configuration must have apiVersion ${apiVersionOf(r)} and kind ${r.kind}`);
  }
  if (applied.metadata?.name !== undefined && applied.metadata.name !== rt.name) {
    throw new HttpError(400, 'BadRequest', `the name of the object (${applied.metadata.name}) does not match the name on the URL (${rt.name})`);
  }
  const current = db.get(resourceId(r), rt.namespace, rt.name!);
  const listKind = listKindFrom(r.schema);
  if (!current) {
    if (status) throw notFound(r, rt.name!);
    const obj = serverSideApply(undefined, { ...applied, metadata: { ...applied.metadata, name: rt.name } }, manager, apiVersionOf(r), listKind);
    return [201, writes.create(r, obj, rt.namespace, dryRun)];
  }
  const merged = serverSideApply(current, applied, manager, apiVersionOf(r), listKind);
  merged.metadata.resourceVersion = applied.metadata?.resourceVersion ?? current.metadata.resourceVersion;
  return [200, writes.update(r, rt.namespace, rt.name!, merged, status, dryRun)];
}
