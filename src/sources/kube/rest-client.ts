/**
 * Raw JSON access to the API server for the read side (lists, watches,
 * discovery), with the credentials and TLS settings of a KubeConfig.
 *
 * Why not the library's generated list calls and Watch: those deserialize
 * lists into classes (Dates, renamed fields) while watch events stay raw
 * JSON, and 1.4.0's Watch has no timeout at all, so a half-open connection
 * stalls an informer forever (see shared/K8S-CLIENT-FACTS.md). Here both
 * lists and watch events are the same raw JSON that src/model/parse.ts
 * reads, every request has a deadline, and a watch that goes silent is
 * ended so the informer re-watches.
 */
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';

export class KubeHttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export interface WatchHandle {
  abort(): void;
}

export interface WatchTimeouts {
  /** No response headers by then: give up (error). */
  headersMs: number;
  /** No byte (event or bookmark) for this long: end the stream cleanly so the caller re-watches. */
  idleMs: number;
}

type Query = Record<string, string | number | boolean | undefined>;

export class RestClient {
  constructor(private readonly kc: KubeConfig) {}

  private async open(path: string, query: Query, signal: AbortSignal): Promise<http.IncomingMessage> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster in the kubeconfig');
    const url = new URL(cluster.server.replace(/\/$/, '') + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const opts: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
    await this.kc.applyToHTTPSOptions(opts);
    const plain = url.protocol === 'http:';
    if (plain) delete opts.agent;
    return new Promise((resolve, reject) => {
      const req = (plain ? http : https).request(url, { ...opts, signal }, resolve);
      req.on('error', reject);
      req.end();
    });
  }

  /** GET and parse JSON; non-2xx becomes a KubeHttpError with the Status reason. */
  async getJson(path: string, query: Query = {}, timeoutMs = 30_000): Promise<any> {
    const signal = AbortSignal.timeout(timeoutMs);
    const res = await this.open(path, query, signal);
    const text = await readAll(res);
    if (res.statusCode! < 200 || res.statusCode! >= 300) throw errorFrom(res.statusCode!, text);
    try {
      return JSON.parse(text);
    } catch {
      throw new KubeHttpError(res.statusCode!, 'BadResponse', `GET ${path}: response is not JSON`);
    }
  }

  /**
   * Start a watch. `done(null)` when the stream ends (server close, idle
   * timeout, abort), `done(err)` on failure; called exactly once. The shape
   * matches what the library's ListWatch expects of its Watch.
   */
  watch(path: string, query: Query, onEvent: (type: string, obj: any) => void, done: (err: any) => void, timeouts: WatchTimeouts): WatchHandle {
    const controller = new AbortController();
    let finished = false;
    let idle: NodeJS.Timeout | undefined;
    const finish = (err: any) => {
      if (finished) return;
      finished = true;
      clearTimeout(idle);
      clearTimeout(headerTimer);
      controller.abort();
      done(err);
    };
    const headerTimer = setTimeout(() => finish(new KubeHttpError(504, 'Timeout', `watch ${path}: no response in ${timeouts.headersMs} ms`)), timeouts.headersMs);
    const touch = () => {
      clearTimeout(idle);
      // A silent stream may be half-open: end it; the caller re-watches from its last resourceVersion.
      idle = setTimeout(() => finish(null), timeouts.idleMs);
    };
    this.open(path, { ...query, watch: 'true' }, controller.signal).then(
      async (res) => {
        clearTimeout(headerTimer);
        if (res.statusCode !== 200) {
          finish(errorFrom(res.statusCode!, await readAll(res).catch(() => '')));
          return;
        }
        touch();
        res.on('data', touch);
        res.on('error', (e) => finish(finished ? null : e));
        const lines = createInterface({ input: res });
        // readline re-emits the response's errors (ECONNRESET when the server goes away); unhandled, they would crash the agent.
        lines.on('error', (e) => finish(finished ? null : e));
        lines.on('line', (line) => {
          if (finished || !line.trim()) return;
          let ev: any;
          try {
            ev = JSON.parse(line);
          } catch {
            return; // a torn line; the relist on the next error repairs state
          }
          onEvent(ev.type, ev.object);
        });
        lines.on('close', () => finish(null));
      },
      (err) => finish(controller.signal.aborted && finished ? null : err),
    );
    return { abort: () => finish(null) };
  }
}

function readAll(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function errorFrom(code: number, text: string): KubeHttpError {
  let reason = http.STATUS_CODES[code] ?? 'Error';
  let message = `HTTP ${code}`;
  try {
    const status = JSON.parse(text);
    if (typeof status?.reason === 'string') reason = status.reason;
    if (typeof status?.message === 'string') message = `HTTP ${code} ${reason}: ${status.message}`;
  } catch {
    // not a Status object
  }
  return new KubeHttpError(code, reason, message);
}
