/**
 * The agent's HTTP endpoint: /metrics, /healthz, /readyz, /v1/state.
 * Read-only by design: every other method gets 405, so exposing it does not
 * expose a way to change the agent.
 *
 * The expensive routes (/metrics, /v1/state, /readyz and the extra documents)
 * cannot pile up work on the agent's event loop: each has at most one
 * computation in progress; a request for the same document shares it, or
 * gets the last one while it is younger than the time it took to compute
 * (and, for /metrics, younger than `metricsReuseMs`); a request for another
 * document (another query) waits its turn. At most `queueLimit` requests
 * wait per route, sharing or queued; past it they get 503 with
 * Retry-After: 1 at once. So one Prometheus server, or two, or a burst of CLI
 * calls cost at most one computation at a time and keep it busy at most
 * half the time; a document that is cheap is never served stale.
 * Bodies of 1 KiB and more are gzipped when the client accepts it
 * (Prometheus does), in the libuv thread pool, once per computed document.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createGzip, constants as zlibConstants } from 'node:zlib';
import type { Registry } from 'prom-client';
import { renderMetrics } from './registry.js';
import { BUSY, SingleFlight } from './single-flight.js';
import { StateQueryError, type AgentStateView } from './state-view.js';

export interface HttpEndpointOptions {
  host: string;
  port: number;
  registry: Registry;
  /** GET /v1/state with its query (sections, limit, continue). */
  state: (query: URLSearchParams) => AgentStateView;
  /** What /readyz reports; default: taken from state(), which is the whole document. */
  readiness?: () => Pick<AgentStateView, 'ready' | 'readiness'>;
  /** More read-only JSON documents by path (e.g. /v1/conntrack), given the query string. */
  documents?: Record<string, (query: URLSearchParams) => unknown>;
  /** Bounds on the expensive routes. */
  limits?: {
    /** Requests that may wait per route (sharing the one in progress or queued); default 8. */
    queueLimit?: number;
    /** A /metrics document is served again for this long (default 1000 ms; longer if it took longer to compute). */
    metricsReuseMs?: number;
  };
}

export interface Reply {
  status: number;
  type: string;
  /** The body in chunks (a /metrics document is ~18 MB at 10,000 services: never copied into one Buffer). */
  body: Buffer[];
  headers?: Record<string, string>;
}

/** Smaller bodies are sent as they are: compressing them saves nothing worth a thread-pool round trip. */
const GZIP_MIN_BYTES = 1024;

/**
 * Whether an Accept-Encoding header accepts gzip (RFC 9110 §12.5.3): listed
 * as `gzip` (or `x-gzip`, or matched by `*`) with a q-value above 0.
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let star: boolean | undefined;
  for (const part of header.split(',')) {
    const [coding = '', ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q\s*=\s*([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    const accepted = q === undefined || Number(q) > 0;
    if (coding.trim() === 'gzip' || coding.trim() === 'x-gzip') return accepted;
    if (coding.trim() === '*') star = accepted;
  }
  return star ?? false;
}

function bodyBytes(body: readonly Buffer[]): number {
  let n = 0;
  for (const chunk of body) n += chunk.length;
  return n;
}

/**
 * Compressed in the libuv thread pool, chunk by chunk. Level 1: on this
 * text it keeps most of level 6's ratio (2.4 vs 2.2 MB for 18 MB) at under
 * half its CPU time.
 */
function gzipChunks(body: readonly Buffer[]): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const z = createGzip({ level: zlibConstants.Z_BEST_SPEED });
    const out: Buffer[] = [];
    z.on('data', (chunk: Buffer) => out.push(chunk));
    z.on('end', () => resolve(out));
    z.on('error', reject);
    for (const chunk of body) z.write(chunk);
    z.end();
  });
}

function textReply(status: number, body: string, headers?: Record<string, string>): Reply {
  return { status, type: 'text/plain', body: [Buffer.from(body)], ...(headers ? { headers } : {}) };
}

export class HttpEndpoint {
  private server?: Server;
  private readonly gates = new Map<string, SingleFlight<Reply>>();
  /** Gzipped bodies, computed once per reply that a gzip-accepting client asked for. */
  private readonly gzipped = new WeakMap<Reply, Promise<Buffer[]>>();

  constructor(private readonly opts: HttpEndpointOptions) {}

  /** Resolves once listening; rejects with a clear message when the port is taken. */
  async start(): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => void this.respond(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new Error(err.code === 'EADDRINUSE'
          ? `--http ${this.opts.host}:${this.opts.port}: address already in use (another agent running?)`
          : `--http ${this.opts.host}:${this.opts.port}: ${err.message}`));
      });
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : this.opts.port;
    return { host: this.opts.host, port };
  }

  private async respond(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    let reply: Reply;
    try {
      reply = await this.handle(method, req.url ?? '/');
    } catch (err) {
      reply = textReply(500, `internal error: ${(err as Error).message}\n`);
    }
    let body = reply.body;
    const headers: Record<string, string | number> = {
      'content-type': reply.type,
      'cache-control': 'no-store',
      ...(reply.status === 405 ? { allow: 'GET, HEAD' } : {}),
      ...reply.headers,
    };
    if (bodyBytes(body) >= GZIP_MIN_BYTES) {
      headers.vary = 'accept-encoding';
      if (method !== 'HEAD' && acceptsGzip(req.headers['accept-encoding'])) {
        try {
          body = await this.gzipOf(reply);
          headers['content-encoding'] = 'gzip';
        } catch {
          // Sent uncompressed: a client that accepts gzip also accepts identity.
        }
      }
    }
    headers['content-length'] = bodyBytes(body);
    res.writeHead(reply.status, headers);
    if (method === 'HEAD') {
      res.end();
      return;
    }
    for (const chunk of body) res.write(chunk);
    res.end();
  }

  private gzipOf(reply: Reply): Promise<Buffer[]> {
    let z = this.gzipped.get(reply);
    if (!z) {
      z = gzipChunks(reply.body);
      this.gzipped.set(reply, z);
    }
    return z;
  }

  /** The reply for one request; expensive routes go through their gate. */
  async handle(method: string, url: string): Promise<Reply> {
    const [path = '/', queryText = ''] = url.split('?');
    if (method !== 'GET' && method !== 'HEAD') return textReply(405, 'read-only endpoint\n');
    switch (path) {
      case '/metrics':
        return this.gated(path, '', this.opts.limits?.metricsReuseMs ?? 1000, async () => ({
          status: 200, type: this.opts.registry.contentType, body: await renderMetrics(this.opts.registry),
        }));
      case '/healthz':
        return textReply(200, 'ok\n');
      case '/readyz':
        return this.gated(path, '', 0, () => {
          const { ready, readiness } = this.opts.readiness ? this.opts.readiness() : this.opts.state(new URLSearchParams('sections=pools'));
          const lines = Object.entries(readiness).map(([k, v]) => `[${v.ok ? '+' : '-'}]${k} ${v.detail}`);
          return textReply(ready ? 200 : 503, `${lines.join('\n')}\n${ready ? 'ready' : 'not ready'}\n`);
        });
      case '/v1/state':
        return this.gated(path, queryText, 0, () => {
          try {
            return jsonReply(this.opts.state(new URLSearchParams(queryText)));
          } catch (err) {
            if (err instanceof StateQueryError) return textReply(400, `${err.message}\n`);
            throw err;
          }
        });
      default: {
        const doc = this.opts.documents?.[path];
        if (doc) {
          return this.gated(path, queryText, 0, () => {
            try {
              return jsonReply(doc(new URLSearchParams(queryText)));
            } catch (err) {
              if (err instanceof StateQueryError) return textReply(400, `${err.message}\n`);
              throw err;
            }
          });
        }
        return textReply(404, 'not found: try /metrics, /healthz, /readyz, /v1/state\n');
      }
    }
  }

  private async gated(path: string, key: string, reuseMs: number, compute: () => Promise<Reply> | Reply): Promise<Reply> {
    let gate = this.gates.get(path);
    if (!gate) {
      gate = new SingleFlight<Reply>({ reuseMs, reuseForComputeTime: true, queueLimit: this.opts.limits?.queueLimit ?? 8 });
      this.gates.set(path, gate);
    }
    const reply = await gate.run(key, compute);
    if (reply === BUSY) return textReply(503, `busy: ${path} is being computed for other requests; retry shortly\n`, { 'retry-after': '1' });
    return reply;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function jsonReply(value: unknown): Reply {
  return { status: 200, type: 'application/json', body: [Buffer.from(JSON.stringify(value))] };
}
