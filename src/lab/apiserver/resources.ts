/**
 * The resource types the emulator serves: enough of core v1, discovery,
 * coordination and the pharos (and optionally Cilium) CRDs for the agent,
 * the tests and kubectl. Each type says how it is addressed, what discovery
 * advertises, and how `kubectl get` renders it (printer columns, the same
 * JSONPath form a CRD's `additionalPrinterColumns` uses).
 *
 * Custom resources may also be registered at run time from a
 * CustomResourceDefinition object (`resourceFromCrd`), which is how
 * `kubectl apply -f deploy/crds/` works against the emulator.
 */

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  categories?: string[];
  /** Has a `/status` subresource (spec writes keep status, status writes keep the rest). */
  statusSubresource: boolean;
  /** Has a `/scale` subresource (autoscaling/v1 Scale over spec.replicas), for `kubectl scale`. */
  scaleSubresource?: boolean;
  /** Create drops `.status` (what the real API does for Services and CRs with a status subresource). */
  dropStatusOnCreate: boolean;
  /** Custom resource: strategic merge patch is refused with 415, as on a real API server. */
  custom: boolean;
  /**
   * Columns for server-side Table output; NAME comes first implicitly.
   * Absent: the built-in renderer for the kind, or NAME/AGE.
   */
  printerColumns?: PrinterColumn[];
  /** A CRD's openAPIV3Schema: writes are pruned, defaulted and validated against it. */
  schema?: unknown;
}

export function apiVersionOf(r: Pick<ResourceType, 'group' | 'version'>): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

/** `/api/v1` or `/apis/G/V`. */
export function groupVersionPath(r: Pick<ResourceType, 'group' | 'version'>): string {
  return r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
}

const verbsWithStatus = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function builtin(
  group: string,
  version: string,
  plural: string,
  kind: string,
  namespaced: boolean,
  shortNames: string[],
  opts: Partial<ResourceType> = {},
): ResourceType {
  return {
    group,
    version,
    plural,
    singular: kind.toLowerCase(),
    kind,
    namespaced,
    shortNames,
    statusSubresource: false,
    dropStatusOnCreate: false,
    custom: false,
    ...opts,
  };
}

const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/**
 * Pool columns, NAME DISABLED CONFLICTING IPS AVAILABLE AGE (as `kubectl get
 * ippools` shows for Cilium). The pharos ones mirror deploy/crds/loadbalancerippools.yaml,
 * which replaces them whenever it is found; Cilium's are Cilium's own.
 */
const pharosPoolColumns: PrinterColumn[] = [
  { name: 'Disabled', type: 'boolean', jsonPath: '.spec.disabled' },
  { name: 'Conflicting', type: 'string', jsonPath: '.status.conditions[?(@.type=="lb.pharos.io/PoolConflict")].status' },
  { name: 'IPs Available', type: 'string', jsonPath: '.status.available' },
  { name: 'Used', type: 'string', jsonPath: '.status.used', priority: 1 },
  { name: 'Total', type: 'string', jsonPath: '.status.total', priority: 1 },
  age,
];

const ciliumPoolColumns: PrinterColumn[] = [
  { name: 'Disabled', type: 'boolean', jsonPath: '.spec.disabled' },
  { name: 'Conflicting', type: 'string', jsonPath: '.status.conditions[?(@.type=="cilium.io/PoolConflict")].status' },
  { name: 'IPs Available', type: 'string', jsonPath: '.status.conditions[?(@.type=="cilium.io/IPsAvailable")].message' },
  age,
];

export const coreResources: ResourceType[] = [
  builtin('', 'v1', 'namespaces', 'Namespace', false, ['ns'], { statusSubresource: true }),
  builtin('', 'v1', 'nodes', 'Node', false, ['no'], { statusSubresource: true }),
  builtin('', 'v1', 'secrets', 'Secret', true, []),
  builtin('', 'v1', 'configmaps', 'ConfigMap', true, ['cm']),
  builtin('', 'v1', 'services', 'Service', true, ['svc'], {
    statusSubresource: true,
    dropStatusOnCreate: true,
    categories: ['all'],
  }),
  builtin('discovery.k8s.io', 'v1', 'endpointslices', 'EndpointSlice', true, []),
  builtin('coordination.k8s.io', 'v1', 'leases', 'Lease', true, [], {
    printerColumns: [{ name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity' }, age],
  }),
];

/**
 * Kinds that are only stored, so complete manifests (a walkthrough's
 * Deployment, the agent's RBAC and DaemonSet) apply without errors. Nothing
 * acts on them: there is no scheduler or controller behind the emulator.
 */
export const storedOnlyResources: ResourceType[] = [
  builtin('', 'v1', 'serviceaccounts', 'ServiceAccount', true, ['sa']),
  builtin('', 'v1', 'pods', 'Pod', true, ['po'], { statusSubresource: true, categories: ['all'] }),
  builtin('', 'v1', 'endpoints', 'Endpoints', true, ['ep']),
  builtin('', 'v1', 'events', 'Event', true, ['ev']),
  builtin('', 'v1', 'resourcequotas', 'ResourceQuota', true, ['quota'], { statusSubresource: true }),
  builtin('apps', 'v1', 'deployments', 'Deployment', true, ['deploy'], { statusSubresource: true, scaleSubresource: true, categories: ['all'] }),
  builtin('apps', 'v1', 'daemonsets', 'DaemonSet', true, ['ds'], { statusSubresource: true, categories: ['all'] }),
  builtin('apps', 'v1', 'statefulsets', 'StatefulSet', true, ['sts'], { statusSubresource: true, scaleSubresource: true, categories: ['all'] }),
  builtin('apps', 'v1', 'replicasets', 'ReplicaSet', true, ['rs'], { statusSubresource: true, scaleSubresource: true, categories: ['all'] }),
  builtin('rbac.authorization.k8s.io', 'v1', 'roles', 'Role', true, []),
  builtin('rbac.authorization.k8s.io', 'v1', 'rolebindings', 'RoleBinding', true, []),
  builtin('rbac.authorization.k8s.io', 'v1', 'clusterroles', 'ClusterRole', false, []),
  builtin('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', 'ClusterRoleBinding', false, []),
];

function customResource(
  group: string,
  version: string,
  plural: string,
  kind: string,
  shortNames: string[],
  printerColumns?: PrinterColumn[],
  schema?: unknown,
): ResourceType {
  return builtin(group, version, plural, kind, false, shortNames, {
    statusSubresource: true,
    dropStatusOnCreate: true,
    custom: true,
    printerColumns,
    ...(schema ? { schema } : {}),
  });
}

/** Pools of both flavours default `spec.disabled` to false, as their CRDs do (the DISABLED column prints it). */
const poolSchema = {
  type: 'object',
  'x-kubernetes-preserve-unknown-fields': true,
  properties: {
    spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, properties: { disabled: { type: 'boolean', default: false } } },
  },
};

/**
 * The pharos CRDs as built-ins, so the emulator is useful before any CRD is
 * applied. A CRD applied later for the same group/plural replaces them
 * (its printer columns and short names win).
 */
export const pharosResources: ResourceType[] = [
  customResource('lb.pharos.io', 'v1alpha1', 'loadbalancerippools', 'LoadBalancerIPPool', ['ippools', 'ippool', 'lbippool'], pharosPoolColumns, poolSchema),
  customResource('lb.pharos.io', 'v1alpha1', 'l2announcementpolicies', 'L2AnnouncementPolicy', ['l2policy', 'l2policies', 'l2announcement']),
  customResource('lb.pharos.io', 'v1alpha1', 'bgppeeringpolicies', 'BGPPeeringPolicy', ['bgppolicy', 'bgppolicies']),
];

/** Cilium's CRDs, registered only when asked for (the agent probes discovery for them). */
export const ciliumResources: ResourceType[] = [
  customResource('cilium.io', 'v2alpha1', 'ciliumloadbalancerippools', 'CiliumLoadBalancerIPPool', ['ciliumippools'], ciliumPoolColumns, poolSchema),
  customResource('cilium.io', 'v2alpha1', 'ciliuml2announcementpolicies', 'CiliumL2AnnouncementPolicy', ['ciliuml2policy']),
  customResource('cilium.io', 'v2alpha1', 'ciliumbgppeeringpolicies', 'CiliumBGPPeeringPolicy', ['ciliumbgppolicy']),
];

export const crdResource: ResourceType = builtin(
  'apiextensions.k8s.io',
  'v1',
  'customresourcedefinitions',
  'CustomResourceDefinition',
  false,
  ['crd', 'crds'],
  { statusSubresource: true },
);

/**
 * A CustomResourceDefinition for a built-in custom resource (its names,
 * scope, printer columns, status subresource and schema; a schema-less
 * one keeps unknown fields), so a cluster that should have it installed —
 * `pharos lab` with Cilium's — lists it in `kubectl get crd`.
 */
export function crdObjectOf(r: ResourceType): object {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${r.plural}.${r.group}` },
    spec: {
      group: r.group,
      names: { plural: r.plural, singular: r.singular, kind: r.kind, listKind: `${r.kind}List`, shortNames: r.shortNames, ...(r.categories ? { categories: r.categories } : {}) },
      scope: r.namespaced ? 'Namespaced' : 'Cluster',
      versions: [{
        name: r.version,
        served: true,
        storage: true,
        schema: { openAPIV3Schema: r.schema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        ...(r.statusSubresource ? { subresources: { status: {} } } : {}),
        ...(r.printerColumns ? { additionalPrinterColumns: r.printerColumns } : {}),
      }],
    },
  };
}

/** The discovery entry for one resource (and its `/status`), as in an APIResourceList. */
export function discoveryEntries(r: ResourceType): object[] {
  const main = {
    name: r.plural,
    singularName: r.singular,
    namespaced: r.namespaced,
    kind: r.kind,
    verbs: verbsWithStatus,
    ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
    ...(r.categories ? { categories: r.categories } : {}),
  };
  const out: object[] = [main];
  if (r.statusSubresource) out.push({ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] });
  // kubectl scale finds the Scale kind here (its group and version are not the parent's).
  if (r.scaleSubresource) out.push({ name: `${r.plural}/scale`, singularName: '', namespaced: r.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
  return out;
}

/**
 * One ResourceType per served version of a CustomResourceDefinition.
 * Throws with a readable message when the CRD lacks what the emulator needs.
 */
export function resourcesFromCrd(crd: any): ResourceType[] {
  const spec = crd?.spec;
  const names = spec?.names;
  if (!spec?.group || !names?.plural || !names?.kind || !Array.isArray(spec.versions)) {
    throw new Error('CustomResourceDefinition needs spec.group, spec.names.plural, spec.names.kind and spec.versions');
  }
  const out: ResourceType[] = [];
  for (const v of spec.versions) {
    if (v?.served === false || typeof v?.name !== 'string') continue;
    const columns: PrinterColumn[] | undefined = Array.isArray(v.additionalPrinterColumns)
      ? v.additionalPrinterColumns.map((c: any) => ({
          name: String(c.name),
          type: c.type ?? 'string',
          jsonPath: String(c.jsonPath),
          description: c.description,
          priority: c.priority,
        }))
      : undefined;
    const hasAge = columns?.some((c) => c.jsonPath === '.metadata.creationTimestamp');
    out.push({
      group: spec.group,
      version: v.name,
      plural: names.plural,
      singular: names.singular ?? names.kind.toLowerCase(),
      kind: names.kind,
      namespaced: spec.scope !== 'Cluster',
      shortNames: Array.isArray(names.shortNames) ? names.shortNames : [],
      categories: Array.isArray(names.categories) ? names.categories : undefined,
      statusSubresource: !!v.subresources?.status,
      dropStatusOnCreate: !!v.subresources?.status,
      custom: true,
      // The API server appends AGE to CRD columns unless the CRD lists it.
      printerColumns: columns ? (hasAge ? columns : [...columns, age]) : undefined,
      schema: v.schema?.openAPIV3Schema,
    });
  }
  return out;
}
