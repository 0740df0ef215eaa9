/**
 * The agent's HTTP endpoint (src/metrics/server.ts) is read-only and local
 * by default: it listens on loopback unless --http says otherwise, and every
 * method but GET/HEAD gets 405 on every path — also methods Node's parser
 * only knows by name, sent over a raw socket.
 */
import { connect } from 'node:net';
import t from 'tap';
import { Registry } from 'prom-client';
import { HttpEndpoint } from '../../src/metrics/server.js';
import { defaults, resolveConfig } from '../../src/agent/config.js';
import { splitHostPort } from '../../src/agent/agent.js';
import type { AgentStateView } from '../../src/metrics/state-view.js';

const PATHS = ['/metrics', '/healthz', '/readyz', '/v1/state', '/', '/nope', '/v1/state?x=1', '//metrics', '/metrics/../v1/state'];
const WRITE_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'PURGE', 'LINK', 'UNLINK', 'SEARCH', 'REPORT', 'MERGE', 'NOTIFY', 'SUBSCRIBE', 'QUERY'];

const state = (): AgentStateView => ({ ready: true, readiness: {} } as unknown as AgentStateView);

async function endpoint(t: { teardown(fn: () => unknown): void }, host: string): Promise<{ host: string; port: number; ep: HttpEndpoint }> {
  const ep = new HttpEndpoint({ host, port: 0, registry: new Registry(), state });
  const addr = await ep.start();
  t.teardown(() => ep.stop());
  return { ...addr, ep };
}

/** One raw HTTP/1.1 request; resolves with the status line and headers. */
function rawRequest(port: number, method: string, path: string, body = ''): Promise<{ status: number; head: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`${method} ${path}: no answer`)); }, 5000);
    sock.on('data', (d) => {
      data += d.toString();
      if (data.includes('\r\n\r\n')) {
        clearTimeout(timer);
        sock.destroy();
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), head: data.split('\r\n\r\n')[0]! });
      }
    });
    sock.on('error', reject);
    sock.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  });
}

t.test('the default --http is loopback, and it stays so unless configured', async (t) => {
  t.equal(defaults('n').http, '127.0.0.1:9643');
  const base = { env: {}, readFile: () => '', hostname: 'node-a' };
  t.equal(resolveConfig({ ...base, argv: ['--manifests', '/m'] }).http, '127.0.0.1:9643', 'no flag: loopback');
  t.equal(resolveConfig({ ...base, argv: ['--manifests', '/m'], env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' } }).http, '127.0.0.1:9643', 'in a pod: still loopback');
  t.equal(resolveConfig({ ...base, argv: ['--manifests', '/m', '--http', '0.0.0.0:9643'] }).http, '0.0.0.0:9643', 'elsewhere only when asked');
  const [host] = splitHostPort(defaults('n').http);
  const { host: bound, ep } = await endpoint(t, host);
  t.equal(bound, '127.0.0.1');
  const addr = (ep as unknown as { server: { address(): { address: string } } }).server.address();
  t.equal(addr.address, '127.0.0.1', 'the socket listens on 127.0.0.1 only');
});

t.test('every non-GET method gets 405 on every path, and nothing changes', async (t) => {
  const { port } = await endpoint(t, '127.0.0.1');
  for (const path of PATHS) {
    for (const method of WRITE_METHODS) {
      const r = await rawRequest(port, method, path, method === 'POST' || method === 'PUT' ? '{"x":1}' : '');
      t.equal(r.status, 405, `${method} ${path}`);
    }
  }
  t.equal((await rawRequest(port, 'GET', '/healthz')).status, 200, 'GET still works');
  t.equal((await rawRequest(port, 'HEAD', '/metrics')).status, 200, 'HEAD is a read');
});

t.test('a 405 names the allowed methods (RFC 9110 §15.5.6)', async (t) => {
  const { port } = await endpoint(t, '127.0.0.1');
  const r = await rawRequest(port, 'POST', '/metrics');
  t.match(r.head, /\r\nallow: GET, HEAD/i);
});

t.test('the handler itself refuses writes whatever the method string', async (t) => {
  const ep = new HttpEndpoint({ host: '127.0.0.1', port: 0, registry: new Registry(), state });
  for (const m of [...WRITE_METHODS, 'get', 'Get', 'GET ', '', 'CONNECT', 'x'.repeat(1000)]) {
    const r = await ep.handle(m, '/v1/state');
    t.equal(r.status, 405, JSON.stringify(m.slice(0, 20)));
  }
});
