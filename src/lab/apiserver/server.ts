/**
 * An in-memory Kubernetes API server over node:http(s), faithful enough for
 * the real @kubernetes/client-node informers and for kubectl (README.md next
 * to this file): a generic REST router, list/watch with resourceVersion, 410
 * Gone after compaction, optimistic concurrency, status subresources, the
 * patch formats and server-side apply, Table output, and fault-injection
 * hooks for tests. This file wires them and serves HTTP; the parts live
 * beside it: registry.ts (served types), routing.ts (path and verb),
 * access.ts (RBAC), reads.ts (get, list, watch requests), writes.ts
 * (create, update, delete), patch-request.ts and scale.ts, http-io.ts
 * (bodies), faults.ts (injected failures); storage is database.ts.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import { checkAccess, userOf } from './access.js';
import { bundledCrdDir, readCrds } from './crds.js';
import { Database, resourceId, type Json } from './database.js';
import { discoveryDocument } from './discovery.js';
import { FaultInjector } from './faults.js';
import { sendJson } from './http-io.js';
import { openApiV3Document } from './openapi.js';
import { ResourceRegistry } from './registry.js';
import { serveResource } from './resource-requests.js';
import { ciliumResources, coreResources, crdResource, pharosResources, resourcesFromCrd, storedOnlyResources, type ResourceType } from './resources.js';
import { nameFromFieldSelector, route, verbOf, type Verb } from './routing.js';
import { HttpError, statusBody, statusReasons } from './status.js';
import { WatchHub } from './watch.js';
import { Writes } from './writes.js';

export type { Verb } from './routing.js';

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

const defaultNamespaces = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

export async function startApiServer(options: ApiServerOptions = {}): Promise<ApiServer> {
  const host = options.host ?? '127.0.0.1';
  const db = options.database ?? new Database();
  const bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
  const goneAs = options.goneAs ?? 'event';

  const registry = new ResourceRegistry();
  const builtins = [...pharosResources, ...(options.cilium ? ciliumResources : [])];
  for (const r of [...coreResources, ...storedOnlyResources, crdResource, ...builtins]) registry.register(r);
  const writes = new Writes(db, registry, builtins);

  // ------------------------------------------------------------ watches and test hooks
  const watches = new WatchHub(db, { bookmarkIntervalMs, goneAs });
  let paused = false;
  const heldRequests: (() => void)[] = [];
  const faults = new FaultInjector();
  const counts: Record<string, number> = {};
  const requestListeners: ((r: RequestRecord) => void)[] = [];

  // ------------------------------------------------------------ initial objects
  for (const ns of defaultNamespaces) {
    if (!db.get('/namespaces', undefined, ns)) writes.create(registry.lookup('', 'v1', 'namespaces')!, { metadata: { name: ns } }, undefined, false);
  }
  const bundled = options.crds === undefined ? bundledCrdDir() : undefined;
  for (const crd of options.crds ?? (bundled ? readCrds(bundled) : [])) {
    const existing = db.get(resourceId(crdResource), undefined, crd?.metadata?.name);
    if (existing) for (const t of resourcesFromCrd(existing)) registry.register(t);
    else writes.create(crdResource, crd, undefined, false);
  }
  // CRDs already in a reused database.
  for (const crd of db.list(resourceId(crdResource))) for (const t of resourcesFromCrd(crd)) registry.register(t);

  // ------------------------------------------------------------ one request
  async function handle(req: IncomingMessage, res: ServerResponse, port: number, arrivedAt: number): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    let record: RequestRecord | undefined;
    try {
      if (path.startsWith('/openapi') || path.startsWith('/swagger')) {
        // Only what kubectl's server-side field validation asks for (openapi.ts); no v2, no schemas.
        const openapi = method === 'GET' ? openApiV3Document(path, registry.map) : undefined;
        if (openapi) return sendJson(res, 200, openapi);
        throw new HttpError(404, 'NotFound', 'the pharos emulator serves only the OpenAPI v3 operations kubectl validation needs');
      }
      if (path === '/healthz' || path === '/livez' || path === '/readyz') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok');
        return;
      }
      const doc = method === 'GET' ? discoveryDocument(path, registry.map, `${host}:${port}`) : undefined;
      if (doc) return sendJson(res, 200, doc);
      const rt = route(path, registry);
      if (rt === undefined || rt === 'discovery') throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
      const verb = verbOf(method, rt, url.searchParams);
      const name = rt.name ?? (verb === 'list' || verb === 'watch' ? nameFromFieldSelector(url.searchParams.get('fieldSelector')) : undefined);
      const user = userOf(req, options.rbac?.users);
      record = {
        verb, resource: rt.subresource ? `${rt.resource.plural}/${rt.subresource}` : rt.resource.plural, code: 200, arrivedAt, group: rt.resource.group,
        ...(name ? { name } : {}), ...(rt.namespace !== undefined ? { namespace: rt.namespace } : {}), ...(user ? { user } : {}),
      };
      if (user) checkAccess(db, user, verb, rt, name);
      const injected = faults.take(verb, rt.resource.plural);
      if (injected !== undefined) {
        throw new HttpError(injected, statusReasons[injected] ?? 'InternalError', `injected failure (${verb} ${record.resource})`);
      }
      await serveResource({ db, writes, watches }, rt, verb, req, res, url.searchParams);
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
    const r = registry.byPlural(name);
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
      faults.failNext(verb, code, opts);
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
        const written = current ? writes.update(r, ns, obj.metadata.name, { ...obj, metadata: meta }, false, false) : writes.create(r, obj, ns, false);
        return obj.status !== undefined && r.statusSubresource ? writes.update(r, ns, obj.metadata.name, { status: obj.status }, true, false) : written;
      },
      delete: (name, namespace, objName) => {
        const r = plural(name);
        return db.get(resourceId(r), namespace, objName) ? writes.remove(r, namespace, objName, undefined, false) : undefined;
      },
    },
  };
}
