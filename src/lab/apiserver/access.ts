/** Authorization of requests whose bearer token names a user (options.rbac), against the RBAC objects stored in the emulator. */
import type { IncomingMessage } from 'node:http';
import { resourceId, type Database } from './database.js';
import { authorize, groupsOf, type RbacObjects } from './rbac.js';
import type { Route, Verb } from './routing.js';
import { HttpError } from './status.js';

/** The user of the request's bearer token, when `users` lists it (other requests act as cluster-admin). */
export function userOf(req: IncomingMessage, users: Record<string, string> | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
  return m ? users?.[m[1]!] : undefined;
}

function rbacObjects(db: Database): RbacObjects {
  const list = (plural: string) => db.list(resourceId({ group: 'rbac.authorization.k8s.io', plural }));
  return { roles: list('roles'), clusterRoles: list('clusterroles'), roleBindings: list('rolebindings'), clusterRoleBindings: list('clusterrolebindings') };
}

/** 403 Forbidden with upstream's message unless the stored roles allow `user` this request. */
export function checkAccess(db: Database, user: string, verb: Verb, rt: Route, name: string | undefined): void {
  const r = rt.resource;
  const d = authorize(rbacObjects(db), {
    user, groups: groupsOf(user), verb, apiGroup: r.group, resource: r.plural,
    ...(rt.subresource ? { subresource: rt.subresource } : {}), ...(rt.namespace !== undefined ? { namespace: rt.namespace } : {}), ...(name ? { name } : {}),
  });
  if (d.allowed) return;
  const what = `${r.plural}${r.group ? `.${r.group}` : ''}${name ? ` "${name}"` : ''}`;
  throw new HttpError(403, 'Forbidden', `${what} is forbidden: ${d.reason}`, { ...(name ? { name } : {}), group: r.group, kind: r.plural });
}
