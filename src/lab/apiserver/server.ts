/**
 * An in-memory Kubernetes API server over node:http(s), faithful enough for
 * the real @kubernetes/client-node informers and for kubectl (README.md next
 * to this file): a generic REST router, list/watch with resourceVersion, 410
 * Gone after compaction, optimistic concurrency, status subresources, the
 * patch formats and server-side apply, Table output, and fault-injection
 * hooks for tests. Storage is database.ts; discovery, admission, schema,
 * patches and tables live in their own modules.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { listKindFrom, serverSideApply } from './apply.js';
import { AdmissionError, admitService, canonicalJson, checkName, specPart } from './admission.js';
import { bundledCrdDir, readCrds } from './crds.js';
import { decodeKubernetesProtobuf } from './protobuf.js';
import { discoveryDocument, type Registry } from './discovery.js';
import { openApiV3Document } from './openapi.js';
import { Database, resourceId, type Json } from './database.js';
import { HttpError, statusBody, statusReasons } from './status.js';
import { WatchHub } from './watch.js';
import { applyJsonPatch, applyMergePatch, applyStrategicMerge, PatchError } from './patch.js';
import {
  apiVersionOf,
  ciliumResources,
  coreResources,
  crdResource,
  pharosResources,
  resourcesFromCrd,
  storedOnlyResources,
  type ResourceType,
} from './resources.js';
import { authorize, groupsOf, type RbacObjects } from './rbac.js';
import { pruneAndDefault, validateSchema } from './schema.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError } from './selectors.js';
import { toTable, wantsTable, type IncludeObject } from './tables.js';

export interface ApiServerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /**
   * Listen on this Unix socket instead of TCP: a test reaches the in-process emulator from
   * inside a lab network namespace through a relay there, with no route out of it (`url`
   * is then `http://unix:PATH`, for display only).
   */
  socketPath?: string;
  /** Serve an existing Database (a restart on the same port keeps the cluster state). */
  database?: Database;
  /** Register Cilium's CRDs (cilium.io/v2alpha1) as if installed. */
  cilium?: boolean;
  /**
   * CustomResourceDefinition objects installed at start. Default: the
   * bundled deploy/crds/ when present (built-in definitions otherwise).
   * `[]` starts with the built-in pharos resources only.
   */
  crds?: Json[];
  /** How often a watch that asked for bookmarks gets one. Default 1000 ms. */
  bookmarkIntervalMs?: number;
  /** Serve HTTPS with this key and certificate (PEM) instead of plain HTTP. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** 410 for a too-old watch as an ERROR event on a 200 stream (default, as the real server) or as HTTP 410. */
  goneAs?: 'event' | 'http';
  /**
   * Enforce RBAC (rbac.ts) for requests whose bearer token is listed here, mapped to its
   * user (e.g. `system:serviceaccount:pharos-system:pharos`), against the Roles,
   * ClusterRoles and bindings stored in the emulator: a request they do not allow gets
   * 403 Forbidden with upstream's message. Other requests (no token, another token:
   * kubectl, the tests) act as cluster-admin. Discovery is open to everyone, as the
   * default `system:discovery` binding makes it.
   */
  rbac?: { users: Record<string, string> };
}

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface RequestRecord {
  verb: Verb;
  /** `plural` or `plural/status`. */
  resource: string;
  code: number;
  /** performance.now() when the request arrived. */
  arrivedAt: number;
  /** The object's name, for requests on one object (and list/watch with a `metadata.name=` field selector, as RBAC sees them). */
  name?: string;
  /** The request's namespace; absent at the cluster scope. */
  namespace?: string;
  /** API group ('' for core). */
  group: string;
  /** The user of an RBAC-checked token (options.rbac), else absent. */
  user?: string;
}

interface Fault {
  verb: Verb | '*';
  resource?: string;
  code: number;
  remaining: number;
}

export interface ApiServer {
  url: string;
  port: number;
  host: string;
  database: Database;
  /** Stop serving: ends watches and destroys every connection. The Database stays usable. */
  close(): Promise<void>;
  /** End every open watch stream cleanly (clients re-watch from their last resourceVersion). */
  closeAllWatches(): void;
  /** Send `ERROR 410 Expired` on every open watch and end it (clients relist). */
  expireAllWatches(): void;
  /** Forget the event log: later watches from an older resourceVersion get 410. */
  compact(): void;
  /** The next `count` requests of `verb` (optionally on `resource`, e.g. 'services') fail with `code`. */
  failNext(verb: Verb | '*', code: number, opts?: { resource?: string; count?: number }): void;
  /** Hold every new request and every watch event until resume(). */
  pause(): void;
  resume(): void;
  /** Deliver the next `n` events to no watcher (they stay in the log for replay). */
  dropEvents(n: number): void;
  /** Requests served so far, by `verb resource` (e.g. `patch services/status`). */
  requestCounts(): Record<string, number>;
  resetRequestCounts(): void;
  /** Called after each request (for rate measurements). */
  onRequest(cb: (r: RequestRecord) => void): void;
  /** Number of open watch streams. */
  openWatches(): number;
  /** Direct store access for tests and the lab (bypasses HTTP; still bumps RVs and notifies watches). */
  objects: {
    get(resource: string, namespace: string | undefined, name: string): Json | undefined;
    list(resource: string, namespace?: string): Json[];
    /** Create or replace, with admission (like a PUT that may create). `resource` is a plural, e.g. 'services'. */
    put(resource: string, obj: Json): Json;
    delete(resource: string, namespace: string | undefined, name: string): Json | undefined;
  };
}

function sendJson(res: ServerResponse, code: number, body: Json, extraHeaders: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...extraHeaders });
  res.end(text);
}

function readBody(req: IncomingMessage, limit = 8 << 20): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) reject(new HttpError(413, 'RequestEntityTooLarge', 'request body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseObjectBody(body: Buffer, contentType: string): Json {
  if (/protobuf/.test(contentType)) {
    try {
      return decodeKubernetesProtobuf(body);
    } catch (e) {
      throw new HttpError(415, 'UnsupportedMediaType', (e as Error).message);
    }
  }
  if (/cbor/.test(contentType)) {
    throw new HttpError(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml');
  }
  const yaml = /yaml/.test(contentType);
  try {
    return yaml ? parseYaml(body.toString('utf8')) : JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, 'BadRequest', `the request body is not valid ${yaml ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
}

interface Route {
  resource: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
}

const defaultNamespaces = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

/** `metadata.name=X` (or `==`) in a field selector: the name RBAC checks a list or watch against, as upstream's RequestInfo does. */
function nameFromFieldSelector(selector: string | null): string | undefined {
  for (const term of (selector ?? '').split(',')) {
    const m = /^\s*metadata\.name\s*==?\s*([^\s,]+)\s*$/.exec(term);
    if (m) return m[1];
  }
  return undefined;
}

export async function startApiServer(options: ApiServerOptions = {}): Promise<ApiServer> {
  const host = options.host ?? '127.0.0.1';
  const db = options.database ?? new Database();
  const bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
  const goneAs = options.goneAs ?? 'event';

  /** group → version → plural → type */
  const registry: Registry = new Map();
  const register = (r: ResourceType) => {
    const versions = registry.get(r.group) ?? new Map<string, Map<string, ResourceType>>();
    registry.set(r.group, versions);
    const plurals = versions.get(r.version) ?? new Map<string, ResourceType>();
    versions.set(r.version, plurals);
    plurals.set(r.plural, r);
  };
  const unregister = (r: Pick<ResourceType, 'group' | 'version' | 'plural'>) => {
    const versions = registry.get(r.group);
    versions?.get(r.version)?.delete(r.plural);
    if (versions?.get(r.version)?.size === 0) versions.delete(r.version);
    if (versions?.size === 0) registry.delete(r.group);
  };
  const lookup = (group: string, version: string, plural: string) => registry.get(group)?.get(version)?.get(plural);
  const byPlural = (plural: string): ResourceType | undefined => {
    for (const versions of registry.values()) for (const plurals of versions.values()) if (plurals.has(plural)) return plurals.get(plural);
    return undefined;
  };

  for (const r of [...coreResources, ...storedOnlyResources, crdResource, ...pharosResources, ...(options.cilium ? ciliumResources : [])]) register(r);

  // ------------------------------------------------------------ watches and hooks
  const watches = new WatchHub(db, { bookmarkIntervalMs, goneAs });
  let paused = false;
  const heldRequests: (() => void)[] = [];
  const faults: Fault[] = [];
  const counts: Record<string, number> = {};
  const requestListeners: ((r: RequestRecord) => void)[] = [];

  // ------------------------------------------------------------ writes (shared by HTTP and the programmatic API)
  function prepareCreate(r: ResourceType, obj: Json, namespace: string | undefined): Json {
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new HttpError(400, 'BadRequest', 'the body must be a JSON object');
    const o = structuredClone(obj);
    o.apiVersion = apiVersionOf(r);
    o.kind = r.kind;
    const meta = (o.metadata ??= {});
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${Math.random().toString(36).slice(2, 7)}`;
    if (r.namespaced) {
      if (meta.namespace && namespace && meta.namespace !== namespace) {
        throw new HttpError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = namespace ?? meta.namespace ?? 'default';
    } else delete meta.namespace;
    delete meta.resourceVersion;
    delete meta.uid;
    delete meta.creationTimestamp;
    delete meta.deletionTimestamp;
    meta.generation = 1;
    if (r.statusSubresource && r.dropStatusOnCreate) delete o.status;
    return o;
  }

  /** Prune, default and validate a custom resource against its CRD schema (422 with every cause). */
  function applySchema(r: ResourceType, o: Json): void {
    if (!r.schema) return;
    pruneAndDefault(o, r.schema, true);
    const issues = validateSchema(o, r.schema, '', true);
    if (issues.length === 0) return;
    const name = o.metadata?.name ?? '';
    throw new HttpError(
      422,
      'Invalid',
      `${r.kind}.${r.group} "${name}" is invalid: ${issues.map((i) => `${i.field}: ${i.message}`).join(', ')}`,
      { name, group: r.group, kind: r.kind, causes: issues.map((i) => ({ reason: 'FieldValueInvalid', message: i.message, field: i.field })) },
    );
  }

  function admit(r: ResourceType, o: Json, old: Json | undefined): void {
    applySchema(r, o);
    try {
      checkName(o.metadata.name);
      if (r.group === '' && r.plural === 'services') admitService(o, old, db);
      if (r.group === '' && r.plural === 'namespaces') o.status = { phase: 'Active' };
      if (r.group === '' && r.plural === 'secrets') o.type ??= 'Opaque';
      if (r === crdResource) {
        for (const t of resourcesFromCrd(o)) register(t);
        o.status = {
          conditions: [
            { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found' },
            { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted' },
          ],
          acceptedNames: o.spec.names,
          storedVersions: (o.spec.versions ?? []).filter((v: Json) => v.storage).map((v: Json) => v.name),
        };
      }
    } catch (e) {
      if (e instanceof AdmissionError || r === crdResource) {
        const field = e instanceof AdmissionError ? e.field : 'spec';
        throw new HttpError(422, 'Invalid', `${r.kind} "${o.metadata?.name ?? ''}" is invalid: ${field}: ${(e as Error).message}`, {
          name: o.metadata?.name,
          group: r.group,
          kind: r.kind,
          causes: [{ reason: 'FieldValueInvalid', message: (e as Error).message, field }],
        });
      }
      throw e;
    }
  }

  function create(r: ResourceType, body: Json, namespace: string | undefined, dryRun: boolean): Json {
    const o = prepareCreate(r, body, namespace);
    admit(r, o, undefined);
    if (db.get(resourceId(r), o.metadata.namespace, o.metadata.name)) {
      throw new HttpError(409, 'AlreadyExists', `${r.plural}${r.group ? '.' + r.group : ''} "${o.metadata.name}" already exists`, {
        name: o.metadata.name,
        group: r.group,
        kind: r.plural,
      });
    }
    return dryRun ? o : db.put(resourceId(r), o);
  }

  function notFound(r: ResourceType, name: string): HttpError {
    return new HttpError(404, 'NotFound', `${r.plural}${r.group ? '.' + r.group : ''} "${name}" not found`, { name, group: r.group, kind: r.plural });
  }

  function conflict(r: ResourceType, name: string): HttpError {
    return new HttpError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${r.plural}${r.group ? '.' + r.group : ''} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      { name, group: r.group, kind: r.plural },
    );
  }

  /** PUT semantics for the main resource or `/status`; `incoming` is the full desired object. */
  function update(r: ResourceType, namespace: string | undefined, name: string, incoming: Json, status: boolean, dryRun: boolean): Json {
    if (typeof incoming !== 'object' || incoming === null || Array.isArray(incoming)) throw new HttpError(400, 'BadRequest', 'the body must be a JSON object');
    const current = db.get(resourceId(r), namespace, name);
    if (!current) throw notFound(r, name);
    const meta = incoming.metadata ?? {};
    if (meta.name !== undefined && meta.name !== name) {
      throw new HttpError(400, 'BadRequest', `the name of the object (${meta.name}) does not match the name on the URL (${name})`);
    }
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '' && String(meta.resourceVersion) !== current.metadata.resourceVersion) {
      throw conflict(r, name);
    }
    let next: Json;
    if (status) {
      next = structuredClone(current);
      if (incoming.status === undefined) delete next.status;
      else next.status = structuredClone(incoming.status);
      applySchema(r, next);
    } else {
      next = structuredClone(incoming);
      next.apiVersion = apiVersionOf(r);
      next.kind = r.kind;
      next.metadata = {
        ...structuredClone(meta),
        name,
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        generation: current.metadata.generation ?? 1,
      };
      if (r.namespaced) next.metadata.namespace = current.metadata.namespace;
      else delete next.metadata.namespace;
      if (r.statusSubresource) {
        if (current.status === undefined) delete next.status;
        else next.status = structuredClone(current.status);
      }
      admit(r, next, current);
      if (specPart(next) !== specPart(current)) next.metadata.generation = (current.metadata.generation ?? 1) + 1;
    }
    if (canonicalJson({ ...next, metadata: { ...next.metadata, resourceVersion: current.metadata.resourceVersion } }) === canonicalJson(current)) {
      // A no-op write keeps the resourceVersion, as upstream does (no event either).
      return current;
    }
    return dryRun ? next : db.put(resourceId(r), next);
  }

  function remove(r: ResourceType, namespace: string | undefined, name: string, preconditions: Json, dryRun: boolean): Json {
    const current = db.get(resourceId(r), namespace, name);
    if (!current) throw notFound(r, name);
    if (preconditions?.resourceVersion && preconditions.resourceVersion !== current.metadata.resourceVersion) throw conflict(r, name);
    if (preconditions?.uid && preconditions.uid !== current.metadata.uid) throw conflict(r, name);
    if (dryRun) return current;
    if (r.group === '' && r.plural === 'namespaces') {
      for (const { resource, object } of db.allInNamespace(name)) db.delete(resource, object.metadata.namespace, object.metadata.name);
    }
    if (r === crdResource) {
      for (const t of resourcesFromCrd(current)) {
        for (const o of db.list(resourceId(t))) db.delete(resourceId(t), o.metadata.namespace, o.metadata.name);
        unregister(t);
        // A built-in definition of the same resource comes back (the emulator's defaults stay usable).
        const fallback = [...pharosResources, ...(options.cilium ? ciliumResources : [])].find((b) => b.group === t.group && b.plural === t.plural);
        if (fallback) register(fallback);
      }
    }
    return db.delete(resourceId(r), namespace, name);
  }

  for (const ns of defaultNamespaces) {
    if (!db.get('/namespaces', undefined, ns)) create(lookup('', 'v1', 'namespaces')!, { metadata: { name: ns } }, undefined, false);
  }
  const bundled = options.crds === undefined ? bundledCrdDir() : undefined;
  for (const crd of options.crds ?? (bundled ? readCrds(bundled) : [])) {
    const existing = db.get(resourceId(crdResource), undefined, crd?.metadata?.name);
    if (existing) for (const t of resourcesFromCrd(existing)) register(t);
    else create(crdResource, crd, undefined, false);
  }
  // CRDs already in a reused database.
  for (const crd of db.list(resourceId(crdResource))) for (const t of resourcesFromCrd(crd)) register(t);

  // ------------------------------------------------------------ routing
  function route(path: string): Route | 'discovery' | undefined {
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
    if (!registry.get(group)?.has(version)) return undefined;
    if (rest.length === 0) return 'discovery';
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const r = lookup(group, version, rest[2]!);
      if (r?.namespaced) {
        if (rest.length > 5) return undefined;
        return { resource: r, namespace: rest[1], name: rest[3], subresource: rest[4] };
      }
    }
    const r = lookup(group, version, rest[0]!);
    if (!r || rest.length > 3) return undefined;
    return { resource: r, name: rest[1], subresource: rest[2] };
  }

  function selectorsOf(query: URLSearchParams, name: string | undefined) {
    try {
      const labels = parseLabelSelector(query.get('labelSelector'));
      const fields = parseFieldSelector(query.get('fieldSelector'));
      return (o: Json) => matchesLabels(labels, o.metadata?.labels) && matchesFields(fields, o.metadata ?? {}) && (name === undefined || o.metadata?.name === name);
    } catch (e) {
      if (e instanceof SelectorError) throw new HttpError(400, 'BadRequest', e.message);
      throw e;
    }
  }

  function includeObjectOf(query: URLSearchParams): IncludeObject {
    const v = query.get('includeObject');
    return v === 'None' || v === 'Object' ? v : 'Metadata';
  }

  function listObjects(rt: Route, query: URLSearchParams, accept: string | undefined): Json {
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

  function startWatch(rt: Route, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
    const refused = watches.open(
      {
        resource: rt.resource,
        namespace: rt.namespace,
        accepts: selectorsOf(query, rt.name),
        table: wantsTable(req.headers.accept),
        include: includeObjectOf(query),
        resourceVersion: query.get('resourceVersion') ?? '',
        timeoutSeconds: Number(query.get('timeoutSeconds') ?? 0),
        bookmarks: query.get('allowWatchBookmarks') === 'true',
      },
      res,
    );
    if (refused) throw new HttpError(refused.code, statusReasons[refused.code]!, refused.message);
  }

  function patchBody(r: ResourceType, current: Json, contentType: string, text: Buffer): Json {
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
  function applyPatch(rt: Route, status: boolean, query: URLSearchParams, body: Buffer, dryRun: boolean): [number, Json] {
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
      return [201, create(r, obj, rt.namespace, dryRun)];
    }
    const merged = serverSideApply(current, applied, manager, apiVersionOf(r), listKind);
    merged.metadata.resourceVersion = applied.metadata?.resourceVersion ?? current.metadata.resourceVersion;
    return [200, update(r, rt.namespace, rt.name!, merged, status, dryRun)];
  }

  function verbOf(method: string, rt: Route, query: URLSearchParams): Verb {
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

  async function serveResource(rt: Route, verb: Verb, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const r = rt.resource;
    if (rt.subresource === 'scale' && r.scaleSubresource && rt.name !== undefined) return serveScale(rt, verb, req, res, query);
    if (rt.subresource !== undefined && (rt.subresource !== 'status' || !r.statusSubresource)) {
      throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${r.plural}/${rt.subresource})`);
    }
    const status = rt.subresource === 'status';
    const dryRun = query.get('dryRun') === 'All';
    const accept = req.headers.accept;
    const contentType = String(req.headers['content-type'] ?? 'application/json');
    switch (verb) {
      case 'list':
        return sendJson(res, 200, listObjects(rt, query, accept));
      case 'watch':
        return startWatch(rt, query, req, res);
      case 'get': {
        const o = db.get(resourceId(r), rt.namespace, rt.name!);
        if (!o) throw notFound(r, rt.name!);
        return sendJson(res, 200, wantsTable(accept) ? toTable(r, [o], includeObjectOf(query), { resourceVersion: o.metadata.resourceVersion }) : o);
      }
      case 'create': {
        if (rt.name !== undefined) throw new HttpError(405, 'MethodNotAllowed', 'POST to a named resource is not allowed');
        const body = parseObjectBody(await readBody(req), contentType);
        return sendJson(res, 201, create(r, body, rt.namespace, dryRun));
      }
      case 'update': {
        const body = parseObjectBody(await readBody(req), contentType);
        return sendJson(res, 200, update(r, rt.namespace, rt.name!, body, status, dryRun));
      }
      case 'patch': {
        const text = await readBody(req);
        if (contentType.split(';')[0]!.trim() === 'application/apply-patch+yaml') {
          const [code, obj] = applyPatch(rt, status, query, text, dryRun);
          return sendJson(res, code, obj);
        }
        const current = db.get(resourceId(r), rt.namespace, rt.name!);
        if (!current) throw notFound(r, rt.name!);
        const patched = patchBody(r, current, contentType, text);
        if (typeof patched !== 'object' || patched === null) throw new HttpError(422, 'Invalid', 'the patch produced something that is not an object');
        return sendJson(res, 200, update(r, rt.namespace, rt.name!, patched, status, dryRun));
      }
      case 'delete': {
        const text = await readBody(req);
        const opts = text.toString('utf8').trim() ? parseObjectBody(text, contentType) : {};
        return sendJson(res, 200, remove(r, rt.namespace, rt.name!, opts?.preconditions, dryRun));
      }
      case 'deletecollection': {
        await readBody(req);
        const accepts = selectorsOf(query, undefined);
        const items = db.list(resourceId(r), rt.namespace).filter(accepts);
        const gone = items.map((o) => remove(r, o.metadata.namespace, o.metadata.name, undefined, dryRun));
        return sendJson(res, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: { resourceVersion: String(db.resourceVersion) }, items: gone });
      }
    }
  }

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

  /** `/scale` (kubectl scale): reads and writes the parent's spec.replicas; a write bumps its generation as a spec change does. */
  async function serveScale(rt: Route, verb: Verb, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
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
    const written = update(r, rt.namespace, rt.name!, next, false, query.get('dryRun') === 'All');
    return sendJson(res, 200, scaleOf(written));
  }

  // ------------------------------------------------------------ authorization (options.rbac)
  function userOf(req: IncomingMessage): string | undefined {
    const m = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
    return m ? options.rbac?.users[m[1]!] : undefined;
  }

  function rbacObjects(): RbacObjects {
    const list = (plural: string) => db.list(resourceId({ group: 'rbac.authorization.k8s.io', plural }));
    return { roles: list('roles'), clusterRoles: list('clusterroles'), roleBindings: list('rolebindings'), clusterRoleBindings: list('clusterrolebindings') };
  }

  function checkAccess(user: string, verb: Verb, rt: Route, name: string | undefined): void {
    const r = rt.resource;
    const d = authorize(rbacObjects(), {
      user, groups: groupsOf(user), verb, apiGroup: r.group, resource: r.plural,
      ...(rt.subresource ? { subresource: rt.subresource } : {}), ...(rt.namespace !== undefined ? { namespace: rt.namespace } : {}), ...(name ? { name } : {}),
    });
    if (d.allowed) return;
    const what = `${r.plural}${r.group ? `.${r.group}` : ''}${name ? ` "${name}"` : ''}`;
    throw new HttpError(403, 'Forbidden', `${what} is forbidden: ${d.reason}`, { ...(name ? { name } : {}), group: r.group, kind: r.plural });
  }

  function takeFault(verb: Verb, resource: string): Fault | undefined {
    const i = faults.findIndex((f) => (f.verb === '*' || f.verb === verb) && (f.resource === undefined || f.resource === resource));
    if (i < 0) return undefined;
    const f = faults[i]!;
    if (--f.remaining <= 0) faults.splice(i, 1);
    return f;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, port: number, arrivedAt: number): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    let record: RequestRecord | undefined;
    try {
      if (path.startsWith('/openapi') || path.startsWith('/swagger')) {
        // Only what kubectl's server-side field validation asks for (openapi.ts); no v2, no schemas.
        const openapi = method === 'GET' ? openApiV3Document(path, registry) : undefined;
        if (openapi) return sendJson(res, 200, openapi);
        throw new HttpError(404, 'NotFound', 'the pharos emulator serves only the OpenAPI v3 operations kubectl validation needs');
      }
      if (path === '/healthz' || path === '/livez' || path === '/readyz') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok');
        return;
      }
      const doc = method === 'GET' ? discoveryDocument(path, registry, `${host}:${port}`) : undefined;
      if (doc) return sendJson(res, 200, doc);
      const rt = route(path);
      if (rt === undefined || rt === 'discovery') throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
      const verb = verbOf(method, rt, url.searchParams);
      const name = rt.name ?? (verb === 'list' || verb === 'watch' ? nameFromFieldSelector(url.searchParams.get('fieldSelector')) : undefined);
      const user = userOf(req);
      record = {
        verb, resource: rt.subresource ? `${rt.resource.plural}/${rt.subresource}` : rt.resource.plural, code: 200, arrivedAt, group: rt.resource.group,
        ...(name ? { name } : {}), ...(rt.namespace !== undefined ? { namespace: rt.namespace } : {}), ...(user ? { user } : {}),
      };
      if (user) checkAccess(user, verb, rt, name);
      const fault = takeFault(verb, rt.resource.plural);
      if (fault) {
        throw new HttpError(fault.code, statusReasons[fault.code] ?? 'InternalError', `injected failure (${verb} ${record.resource})`);
      }
      await serveResource(rt, verb, req, res, url.searchParams);
    } catch (e) {
      const err =
        e instanceof HttpError
          ? e
          : new HttpError(500, 'InternalError', `Internal error occurred: ${(e as Error)?.message ?? String(e)}`);
      if (record) record.code = err.code;
      if (res.headersSent) res.end();
      else sendJson(res, err.code, statusBody(err.code, err.reason, err.message, err.details), err.code === 429 ? { 'Retry-After': '1' } : {});
    } finally {
      if (record) {
        const key = `${record.verb} ${record.resource}`;
        counts[key] = (counts[key] ?? 0) + 1;
        for (const cb of requestListeners) cb(record);
      }
    }
  }

  // ------------------------------------------------------------ HTTP server
  const sockets = new Set<Socket>();
  const listener: RequestListener = (req, res) => {
    const arrivedAt = performance.now();
    const run = () => void handle(req, res, options.socketPath ? 0 : (server.address() as { port: number }).port, arrivedAt);
    if (paused) heldRequests.push(run);
    else run();
  };
  const server: Server = options.tls ? createTlsServer({ key: options.tls.key, cert: options.tls.cert }, listener) : createServer(listener);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // Watches are long-lived; node's default request timeouts must not cut them.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const listening = () => {
      server.off('error', reject);
      resolve();
    };
    if (options.socketPath) server.listen(options.socketPath, listening);
    else server.listen(options.port ?? 0, host, listening);
  });
  const port = options.socketPath ? 0 : (server.address() as { port: number }).port;

  const plural = (name: string): ResourceType => {
    const r = byPlural(name);
    if (!r) throw new Error(`unknown resource "${name}"`);
    return r;
  };

  return {
    url: options.socketPath ? `http://unix:${options.socketPath}` : `${options.tls ? 'https' : 'http'}://${host}:${port}`,
    port,
    host,
    database: db,
    async close() {
      watches.detach();
      watches.closeAll();
      for (const run of heldRequests.splice(0)) run();
      paused = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    closeAllWatches() {
      watches.closeAll();
    },
    expireAllWatches() {
      watches.expireAll();
    },
    compact() {
      db.compact();
    },
    failNext(verb, code, opts = {}) {
      faults.push({ verb, code, resource: opts.resource, remaining: opts.count ?? 1 });
    },
    pause() {
      paused = true;
      watches.pause();
    },
    resume() {
      paused = false;
      watches.resume();
      for (const run of heldRequests.splice(0)) run();
    },
    dropEvents(n) {
      watches.dropEvents(n);
    },
    requestCounts: () => ({ ...counts }),
    resetRequestCounts() {
      for (const k of Object.keys(counts)) delete counts[k];
    },
    onRequest(cb) {
      requestListeners.push(cb);
    },
    openWatches: () => watches.size,
    objects: {
      get: (name, namespace, objName) => db.get(resourceId(plural(name)), namespace, objName),
      list: (name, namespace) => db.list(resourceId(plural(name)), namespace),
      put(name, obj) {
        const r = plural(name);
        const ns = r.namespaced ? (obj?.metadata?.namespace ?? 'default') : undefined;
        const current = db.get(resourceId(r), ns, obj?.metadata?.name);
        const { resourceVersion: _rv, ...meta } = obj.metadata;
        const written = current ? update(r, ns, obj.metadata.name, { ...obj, metadata: meta }, false, false) : create(r, obj, ns, false);
        return obj.status !== undefined && r.statusSubresource ? update(r, ns, obj.metadata.name, { status: obj.status }, true, false) : written;
      },
      delete: (name, namespace, objName) => {
        const r = plural(name);
        return db.get(resourceId(r), namespace, objName) ? remove(r, namespace, objName, undefined, false) : undefined;
      },
    },
  };
}
