/**
 * Server-side `meta.k8s.io/v1 Table` output, which is what `kubectl get`
 * asks for (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) and
 * prints as is. Services get their built-in columns (as the real API's
 * printers), other kinds their printer columns (CRD style JSONPath), and
 * anything else NAME/AGE.
 */
import type { PrinterColumn, ResourceType } from './resources.js';
import { humanDuration } from '../../cli/table.js';

type Json = any;

function age(obj: Json, now: number): string {
  const created = Date.parse(obj?.metadata?.creationTimestamp ?? '');
  return Number.isNaN(created) ? '<unknown>' : humanDuration(now - created);
}

/**
 * The JSONPath subset printer columns use: `.a.b`, `[0]`, `[*]`, and
 * `[?(@.field=="value")]` filters. Returns every match (a filter may match several).
 */
export function jsonPathValues(obj: Json, path: string): Json[] {
  let current: Json[] = [obj];
  const re = /\.([A-Za-z0-9_$-]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.$-]+)\s*(==|!=)\s*["']?([^"'\]]*)["']?\)\]|\['([^']+)'\]/gy;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(path)) !== null) {
    consumed = re.lastIndex;
    const next: Json[] = [];
    for (const c of current) {
      if (c === undefined || c === null) continue;
      if (m[1] !== undefined || m[6] !== undefined) {
        const v = c[m[1] ?? m[6]!];
        if (v !== undefined) next.push(v);
      } else if (m[2] !== undefined) {
        if (!Array.isArray(c)) continue;
        if (m[2] === '*') next.push(...c);
        else if (c[Number(m[2])] !== undefined) next.push(c[Number(m[2])]);
      } else if (m[3] !== undefined) {
        if (!Array.isArray(c)) continue;
        for (const el of c) {
          const v = m[3].split('.').reduce((acc: Json, k) => (acc == null ? undefined : acc[k]), el);
          const equal = String(v) === m[5];
          if (v !== undefined && (m[4] === '==' ? equal : !equal)) next.push(el);
        }
      }
    }
    current = next;
    if (consumed === path.length) break;
  }
  return consumed === path.length || path === '' ? current : [];
}

function cell(obj: Json, col: PrinterColumn, now: number): Json {
  const values = jsonPathValues(obj, col.jsonPath);
  if (col.type === 'date') {
    const v = values[0];
    return typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? humanDuration(now - Date.parse(v)) : '<unknown>';
  }
  if (values.length === 0) return null;
  if (values.length === 1) {
    const v = values[0];
    if (col.type === 'string') return typeof v === 'object' ? JSON.stringify(v) : String(v);
    return v;
  }
  return values.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(',');
}

interface TableSpec {
  columns: { name: string; type: string; format?: string; description: string; priority: number }[];
  row: (obj: Json, now: number) => Json[];
}

function servicePorts(svc: Json): string {
  const ports: Json[] = svc?.spec?.ports ?? [];
  if (ports.length === 0) return '<none>';
  return ports
    .map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`)
    .join(',');
}

function serviceExternalIp(svc: Json): string {
  const external: string[] = svc?.spec?.externalIPs ?? [];
  const type = svc?.spec?.type ?? 'ClusterIP';
  if (type === 'ExternalName') return svc.spec.externalName ?? '<none>';
  if (type === 'LoadBalancer') {
    const ingress: string[] = (svc?.status?.loadBalancer?.ingress ?? []).map((i: Json) => i.ip ?? i.hostname).filter(Boolean);
    const all = [...ingress, ...external];
    return all.length ? all.join(',') : '<pending>';
  }
  return external.length ? external.join(',') : '<none>';
}

function serviceSelector(svc: Json): string {
  const sel: Record<string, string> = svc?.spec?.selector ?? {};
  const parts = Object.entries(sel).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(',') : '<none>';
}

const serviceTable: TableSpec = {
  columns: [
    { name: 'Name', type: 'string', format: 'name', description: 'Name of the service', priority: 0 },
    { name: 'Type', type: 'string', description: 'The type of the service', priority: 0 },
    { name: 'Cluster-IP', type: 'string', description: 'The cluster IP of the service', priority: 0 },
    { name: 'External-IP', type: 'string', description: 'The external IPs of the service', priority: 0 },
    { name: 'Port(s)', type: 'string', description: 'The ports of the service', priority: 0 },
    { name: 'Age', type: 'string', description: 'Age of the service', priority: 0 },
    { name: 'Selector', type: 'string', description: 'The selector of the service', priority: 1 },
  ],
  row: (svc, now) => [
    svc.metadata.name,
    svc?.spec?.type ?? 'ClusterIP',
    svc?.spec?.clusterIP || '<none>',
    serviceExternalIp(svc),
    servicePorts(svc),
    age(svc, now),
    serviceSelector(svc),
  ],
};

const col = (name: string, description: string, priority = 0) => ({ name, type: 'string', description, priority });

function nodeStatus(node: Json): string {
  const ready = (node?.status?.conditions ?? []).find((c: Json) => c.type === 'Ready');
  const status = !ready ? 'Unknown' : ready.status === 'True' ? 'Ready' : 'NotReady';
  return node?.spec?.unschedulable ? `${status},SchedulingDisabled` : status;
}

function nodeRoles(node: Json): string {
  const roles = Object.keys(node?.metadata?.labels ?? {})
    .filter((l) => l.startsWith('node-role.kubernetes.io/'))
    .map((l) => l.slice('node-role.kubernetes.io/'.length))
    .filter(Boolean);
  return roles.length ? roles.sort().join(',') : '<none>';
}

function nodeAddress(node: Json, type: string): string {
  return (node?.status?.addresses ?? []).find((a: Json) => a.type === type)?.address ?? '<none>';
}

/** The columns of the real API server's printers for the built-in kinds the lab shows. */
const builtinTables: Record<string, TableSpec> = {
  '/nodes': {
    columns: [col('Name', 'Name'), col('Status', 'Status'), col('Roles', 'Roles'), col('Age', 'Age'), col('Version', 'Kubelet version'), col('Internal-IP', 'Internal IP', 1), col('External-IP', 'External IP', 1)],
    row: (n, now) => [n.metadata.name, nodeStatus(n), nodeRoles(n), age(n, now), n?.status?.nodeInfo?.kubeletVersion ?? '', nodeAddress(n, 'InternalIP'), nodeAddress(n, 'ExternalIP')],
  },
  '/namespaces': {
    columns: [col('Name', 'Name'), col('Status', 'Phase'), col('Age', 'Age')],
    row: (n, now) => [n.metadata.name, n?.status?.phase ?? 'Active', age(n, now)],
  },
  '/secrets': {
    columns: [col('Name', 'Name'), col('Type', 'Type'), { ...col('Data', 'Number of keys'), type: 'integer' }, col('Age', 'Age')],
    row: (o, now) => [o.metadata.name, o.type ?? 'Opaque', Object.keys(o.data ?? {}).length, age(o, now)],
  },
  '/configmaps': {
    columns: [col('Name', 'Name'), { ...col('Data', 'Number of keys'), type: 'integer' }, col('Age', 'Age')],
    row: (o, now) => [o.metadata.name, Object.keys({ ...(o.data ?? {}), ...(o.binaryData ?? {}) }).length, age(o, now)],
  },
  '/pods': {
    columns: [col('Name', 'Name'), col('Ready', 'Ready containers'), col('Status', 'Phase or reason'), { ...col('Restarts', 'Container restarts'), type: 'integer' }, col('Age', 'Age'),
      col('IP', 'Pod IP', 1), col('Node', 'Node', 1)],
    row: (o, now) => {
      const containers = (o?.spec?.containers ?? []).length;
      const ready = (o?.status?.conditions ?? []).some((c: Json) => c.type === 'Ready' && c.status === 'True');
      const statuses: Json[] = o?.status?.containerStatuses ?? [];
      const readyCount = statuses.length ? statuses.filter((c) => c.ready).length : ready ? containers : 0;
      return [o.metadata.name, `${readyCount}/${containers}`, o?.status?.phase ?? 'Pending', statuses.reduce((n, c) => n + (c.restartCount ?? 0), 0), age(o, now),
        o?.status?.podIP ?? '<none>', o?.spec?.nodeName ?? '<none>'];
    },
  },
  'apps/deployments': {
    columns: [col('Name', 'Name'), col('Ready', 'Ready replicas'), { ...col('Up-to-date', 'Updated replicas'), type: 'integer' }, { ...col('Available', 'Available replicas'), type: 'integer' }, col('Age', 'Age')],
    row: (o, now) => [o.metadata.name, `${o?.status?.readyReplicas ?? 0}/${o?.spec?.replicas ?? 1}`, o?.status?.updatedReplicas ?? 0, o?.status?.availableReplicas ?? 0, age(o, now)],
  },
  'discovery.k8s.io/endpointslices': {
    columns: [col('Name', 'Name'), col('AddressType', 'Address type'), col('Ports', 'Ports'), col('Endpoints', 'Endpoint addresses'), col('Age', 'Age')],
    row: (o, now) => {
      const ports: Json[] = o.ports ?? [];
      const addrs: string[] = (o.endpoints ?? []).flatMap((e: Json) => e.addresses ?? []);
      return [
        o.metadata.name,
        o.addressType ?? '',
        ports.length ? ports.map((p) => p.port ?? '<unset>').join(',') : '<unset>',
        addrs.length === 0 ? '<unset>' : addrs.length > 3 ? `${addrs.slice(0, 3).join(',')} + ${addrs.length - 3} more...` : addrs.join(','),
        age(o, now),
      ];
    },
  },
};

function columnsTable(columns: PrinterColumn[]): TableSpec {
  return {
    columns: [
      { name: 'Name', type: 'string', format: 'name', description: 'Name of the object', priority: 0 },
      ...columns.map((c) => ({
        name: c.name,
        type: c.type === 'date' ? 'string' : c.type,
        ...(c.type === 'date' ? { format: 'date' } : {}),
        description: c.description ?? c.name,
        priority: c.priority ?? 0,
      })),
    ],
    row: (obj, now) => [obj.metadata.name, ...columns.map((c) => cell(obj, c, now))],
  };
}

const nameAgeTable = columnsTable([{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }]);

function tableSpec(r: ResourceType): TableSpec {
  if (r.group === '' && r.plural === 'services') return serviceTable;
  const builtin = builtinTables[`${r.group}/${r.plural}`];
  if (builtin && !r.custom) return builtin;
  return r.printerColumns ? columnsTable(r.printerColumns) : nameAgeTable;
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

function rowObject(obj: Json, include: IncludeObject): Json {
  if (include === 'None') return undefined;
  if (include === 'Object') return obj;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
}

export function toTable(r: ResourceType, objects: Json[], include: IncludeObject, listMeta: Json): Json {
  const spec = tableSpec(r);
  const now = Date.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: spec.columns,
    rows: objects.map((o) => ({ cells: spec.row(o, now), object: rowObject(o, include) })),
  };
}

/** Does the Accept header ask for a server-side Table? */
export function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept);
}
