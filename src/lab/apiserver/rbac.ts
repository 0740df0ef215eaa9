/**
 * RBAC authorization the way kube-apiserver's RBAC authorizer decides it
 * (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac): a request is allowed
 * when any rule reachable from a binding whose subjects name the user (or
 * one of its groups) matches its verb, API group, resource (with
 * subresource) and name. Reachable means:
 * - ClusterRoleBinding → ClusterRole: every namespace and the cluster scope;
 * - RoleBinding in namespace N → Role in N or a ClusterRole: requests in N only.
 *
 * Matching follows upstream: `*` matches any verb, group or resource,
 * `*\/status` any resource's status; `resourceNames` only ever match a
 * request that carries a name — `create`, and `list`/`watch` without a
 * `metadata.name=` field selector, carry none, so a rule with resourceNames
 * can never allow them. Used by the emulator (server.ts, `rbac` option) and
 * by the tests that check deploy/kubernetes/rbac.yaml.
 */
import type { Json } from './database.js';

export interface RequestAttributes {
  user: string;
  groups: readonly string[];
  verb: string;
  /** '' for the core group. */
  apiGroup: string;
  /** Plural, e.g. `services`. */
  resource: string;
  subresource?: string;
  /** Absent at the cluster scope. */
  namespace?: string;
  name?: string;
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** The RBAC objects the decision reads (Role, ClusterRole, RoleBinding, ClusterRoleBinding as stored). */
export interface RbacObjects {
  roles: Json[];
  clusterRoles: Json[];
  roleBindings: Json[];
  clusterRoleBindings: Json[];
}

export interface Decision {
  allowed: boolean;
  /** Which role allowed it (`ClusterRole pharos`, `Role pharos-system/pharos`). */
  by?: string;
  /** Upstream's wording when denied: `User "..." cannot list resource "services" in API group "" at the cluster scope`. */
  reason?: string;
}

const SA_PREFIX = 'system:serviceaccount:';

export function serviceAccountUser(namespace: string, name: string): string {
  return `${SA_PREFIX}${namespace}:${name}`;
}

/** The groups the API server gives a service account's token. */
export function groupsOf(user: string): string[] {
  const ns = user.startsWith(SA_PREFIX) ? user.slice(SA_PREFIX.length).split(':')[0] : undefined;
  return [...(ns ? ['system:serviceaccounts', `system:serviceaccounts:${ns}`] : []), 'system:authenticated'];
}

function subjectApplies(s: Json, user: string, groups: readonly string[], bindingNamespace: string | undefined): boolean {
  switch (s?.kind) {
    case 'User':
      return s.name === user;
    case 'Group':
      return groups.includes(s.name);
    case 'ServiceAccount': {
      // Upstream: the subject's namespace, else the binding's; none at all matches nobody.
      const ns = s.namespace || bindingNamespace;
      return !!ns && user === serviceAccountUser(ns, s.name);
    }
    default:
      return false;
  }
}

function has(list: readonly string[] | undefined, value: string): boolean {
  return !!list && (list.includes('*') || list.includes(value));
}

export function ruleAllows(rule: PolicyRule, a: Omit<RequestAttributes, 'user' | 'groups'>): boolean {
  if (!has(rule.verbs, a.verb) || !has(rule.apiGroups, a.apiGroup)) return false;
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resourceOk = (rule.resources ?? []).some((r) => r === '*' || r === combined || (!!a.subresource && r === `*/${a.subresource}`));
  if (!resourceOk) return false;
  if (!rule.resourceNames || rule.resourceNames.length === 0) return true;
  return !!a.name && rule.resourceNames.includes(a.name);
}

/** The rules that apply to `user` for requests in `namespace` (undefined: cluster scope), each with the role it came from. */
export function rulesFor(objects: RbacObjects, user: string, groups: readonly string[], namespace: string | undefined): Array<{ rule: PolicyRule; by: string }> {
  const out: Array<{ rule: PolicyRule; by: string }> = [];
  const clusterRole = (name: string) => objects.clusterRoles.find((r) => r.metadata?.name === name);
  for (const b of objects.clusterRoleBindings) {
    if (b.roleRef?.kind !== 'ClusterRole' || !(b.subjects ?? []).some((s: Json) => subjectApplies(s, user, groups, undefined))) continue;
    for (const rule of clusterRole(b.roleRef.name)?.rules ?? []) out.push({ rule, by: `ClusterRole ${b.roleRef.name}` });
  }
  if (namespace === undefined) return out;
  for (const b of objects.roleBindings) {
    if (b.metadata?.namespace !== namespace || !(b.subjects ?? []).some((s: Json) => subjectApplies(s, user, groups, namespace))) continue;
    if (b.roleRef?.kind === 'ClusterRole') {
      for (const rule of clusterRole(b.roleRef.name)?.rules ?? []) out.push({ rule, by: `ClusterRole ${b.roleRef.name} (RoleBinding ${namespace}/${b.metadata.name})` });
    } else if (b.roleRef?.kind === 'Role') {
      const role = objects.roles.find((r) => r.metadata?.namespace === namespace && r.metadata?.name === b.roleRef.name);
      for (const rule of role?.rules ?? []) out.push({ rule, by: `Role ${namespace}/${b.roleRef.name}` });
    }
  }
  return out;
}

export function authorize(objects: RbacObjects, a: RequestAttributes): Decision {
  const hit = rulesFor(objects, a.user, a.groups, a.namespace).find(({ rule }) => ruleAllows(rule, a));
  if (hit) return { allowed: true, by: hit.by };
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace === undefined ? 'at the cluster scope' : `in the namespace "${a.namespace}"`;
  return { allowed: false, reason: `User "${a.user}" cannot ${a.verb} resource "${combined}" in API group "${a.apiGroup}" ${scope}` };
}

/** The RBAC objects among parsed manifests (e.g. deploy/kubernetes/rbac.yaml). */
export function rbacObjectsOf(docs: Json[]): RbacObjects {
  const of = (kind: string) => docs.filter((d) => d?.kind === kind && d?.apiVersion === 'rbac.authorization.k8s.io/v1');
  return { roles: of('Role'), clusterRoles: of('ClusterRole'), roleBindings: of('RoleBinding'), clusterRoleBindings: of('ClusterRoleBinding') };
}
