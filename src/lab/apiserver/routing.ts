/** From a request's path and method to the resource, namespace, name and verb it addresses. */
import type { ResourceRegistry } from './registry.js';
import type { ResourceType } from './resources.js';
import { HttpError } from './status.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface Route {
  resource: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** `/api/v1/...` or `/apis/G/V/...`: a resource route, 'discovery' for the group-version itself, undefined when not served. */
export function route(path: string, registry: ResourceRegistry): Route | 'discovery' | undefined {
  const segs = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 2) {
    group = '';
    version = segs[1]!;
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs.length >= 3) {
    group = segs[1]!;
    version = segs[2]!;
    rest = segs.slice(3);
  } else return undefined;
  if (!registry.servesVersion(group, version)) return undefined;
  if (rest.length === 0) return 'discovery';
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const r = registry.lookup(group, version, rest[2]!);
    if (r?.namespaced) {
      if (rest.length > 5) return undefined;
      return { resource: r, namespace: rest[1], name: rest[3], subresource: rest[4] };
    }
  }
  const r = registry.lookup(group, version, rest[0]!);
  if (!r || rest.length > 3) return undefined;
  return { resource: r, name: rest[1], subresource: rest[2] };
}

export function verbOf(method: string, rt: Route, query: URLSearchParams): Verb {
  const watch = query.get('watch') === 'true' || query.get('watch') === '1';
  switch (method) {
    case 'GET':
      return watch ? 'watch' : rt.name === undefined ? 'list' : 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return rt.name === undefined ? 'deletecollection' : 'delete';
    default:
      throw new HttpError(405, 'MethodNotAllowed', `method ${method} is not supported`);
  }
}

/** `metadata.name=X` (or `==`) in a field selector: the name RBAC checks a list or watch against, as upstream's RequestInfo does. */
export function nameFromFieldSelector(selector: string | null): string | undefined {
  for (const term of (selector ?? '').split(',')) {
    const m = /^\s*metadata\.name\s*==?\s*([^\s,]+)\s*$/.exec(term);
    if (m) return m[1];
  }
  return undefined;
}
