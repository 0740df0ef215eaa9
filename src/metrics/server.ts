/**
 * The agent's HTTP endpoint: /metrics, /healthz, /readyz, /v1/state.
 * Read-only by design: every other method gets 405, so exposing it does not
 * expose a way to change the agent.
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { AgentStateView } from './state-view.js';

export interface HttpEndpointOptions {
  host: string;
  port: number;
  registry: Registry;
  state: () => AgentStateView;
  /** More read-only JSON documents by path (e.g. /v1/conntrack), given the query string. */
  documents?: Record<string, (query: URLSearchParams) => unknown>;
}

export class HttpEndpoint {
  private server?: Server;

  constructor(private readonly opts: HttpEndpointOptions) {}

  /** Resolves once listening; rejects with a clear message when the port is taken. */
  async start(): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      void this.handle(req.method ?? 'GET', req.url ?? '/').then(({ status, type, body }) => {
        res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...(status === 405 ? { allow: 'GET, HEAD' } : {}) });
        res.end(body);
      });
    });
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

  async handle(method: string, url: string): Promise<{ status: number; type: string; body: string }> {
    const [path = '/', queryText = ''] = url.split('?');
    if (method !== 'GET' && method !== 'HEAD') return { status: 405, type: 'text/plain', body: 'read-only endpoint\n' };
    switch (path) {
      case '/metrics':
        return { status: 200, type: this.opts.registry.contentType, body: await this.opts.registry.metrics() };
      case '/healthz':
        return { status: 200, type: 'text/plain', body: 'ok\n' };
      case '/readyz': {
        const state = this.opts.state();
        const lines = Object.entries(state.readiness).map(([k, v]) => `[${v.ok ? '+' : '-'}]${k} ${v.detail}`);
        return { status: state.ready ? 200 : 503, type: 'text/plain', body: `${lines.join('\n')}\n${state.ready ? 'ready' : 'not ready'}\n` };
      }
      case '/v1/state':
        return { status: 200, type: 'application/json', body: JSON.stringify(this.opts.state()) };
      default: {
        const doc = this.opts.documents?.[path];
        if (doc) return { status: 200, type: 'application/json', body: JSON.stringify(doc(new URLSearchParams(queryText))) };
        return { status: 404, type: 'text/plain', body: 'not found: try /metrics, /healthz, /readyz, /v1/state\n' };
      }
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
