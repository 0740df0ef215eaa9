/**
 * The HTTP endpoint under load, through a real server on 127.0.0.1 and real
 * requests: gzip when the client accepts it, one computation shared by
 * concurrent scrapes, a bounded queue past which requests get 503 with
 * Retry-After (a scrape at 10,000 services end to end: datapath-maps.test.ts).
 */
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { Registry, Counter } from 'prom-client';
import { HttpEndpoint, acceptsGzip, type HttpEndpointOptions } from '../../src/metrics/server.js';
import { addTextRenderer } from '../../src/metrics/registry.js';
import type { AgentStateView } from '../../src/metrics/state-view.js';
import { parseExposition } from '../support/prom.js';

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: no answer`)));
    req.on('error', reject);
    req.end();
  });
}

const readyState = { ready: true, readiness: { datapath: { ok: true, detail: 'attached' } } } as unknown as AgentStateView;

async function serve(t: { teardown(fn: () => unknown): void }, opts: Partial<HttpEndpointOptions>): Promise<number> {
  const ep = new HttpEndpoint({ host: '127.0.0.1', port: 0, registry: new Registry(), state: () => readyState, ...opts });
  const { port } = await ep.start();
  t.teardown(() => ep.stop());
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('Accept-Encoding: gzip listed with q > 0, or matched by *', async (t) => {
  t.ok(acceptsGzip('gzip'));
  t.ok(acceptsGzip('identity, gzip;q=0.5'));
  t.ok(acceptsGzip('GZIP'));
  t.ok(acceptsGzip('x-gzip'));
  t.ok(acceptsGzip('br, *'));
  t.notOk(acceptsGzip(undefined));
  t.notOk(acceptsGzip(''));
  t.notOk(acceptsGzip('br, deflate'));
  t.notOk(acceptsGzip('gzip;q=0'));
  t.notOk(acceptsGzip('gzip; q=0.000, *'), 'an explicit gzip;q=0 wins over *');
  t.notOk(acceptsGzip('*;q=0'));
});

t.test('/metrics is gzipped for a client that accepts it, and equal to the plain text', async (t) => {
  const registry = new Registry();
  new Counter({ name: 'x_requests_total', help: 'x', labelNames: ['k'], registers: [registry] }).inc({ k: 'a' }, 3);
  addTextRenderer(registry, async () => [Buffer.from('# HELP y_total y\n# TYPE y_total counter\n' + Array.from({ length: 2000 }, (_, i) => `y_total{i="${i}"} ${i}\n`).join(''))]);
  const port = await serve(t, { registry, limits: { metricsReuseMs: 0 } });
  const plain = await get(port, '/metrics');
  t.equal(plain.status, 200);
  t.equal(plain.headers['content-encoding'], undefined);
  t.equal(plain.headers['vary'], 'accept-encoding');
  t.equal(Number(plain.headers['content-length']), plain.body.length);
  const zipped = await get(port, '/metrics', { 'accept-encoding': 'gzip' });
  t.equal(zipped.headers['content-encoding'], 'gzip');
  t.equal(Number(zipped.headers['content-length']), zipped.body.length);
  t.ok(zipped.body.length < plain.body.length / 3, `${zipped.body.length} compressed bytes for ${plain.body.length}`);
  t.equal(gunzipSync(zipped.body).toString(), plain.body.toString(), 'same document');
  const families = parseExposition(plain.body.toString());
  t.equal(families.get('y_total')!.samples.length, 2000, 'the text renderer\'s families follow prom-client\'s');
  t.equal(families.get('x_requests_total')!.samples[0]!.value, 3);
  t.equal((await get(port, '/metrics', { 'accept-encoding': 'gzip;q=0' })).headers['content-encoding'], undefined, 'q=0 refuses gzip');
  const small = await get(port, '/healthz', { 'accept-encoding': 'gzip' });
  t.equal(small.headers['content-encoding'], undefined, 'small bodies go as they are');
  t.equal(small.body.toString(), 'ok\n');
  const head = await get(port, '/metrics', { 'accept-encoding': 'gzip' }, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.body.length, 0, 'HEAD: no body');
});

t.test('concurrent scrapes share one computation; a scrape within metricsReuseMs gets the same document', async (t) => {
  const registry = new Registry();
  let computations = 0;
  addTextRenderer(registry, async () => {
    computations++;
    await sleep(150);
    return [Buffer.from(`# HELP z_total z\n# TYPE z_total counter\nz_total ${computations}\n${'# padding\n'.repeat(200)}`)];
  });
  const port = await serve(t, { registry, limits: { metricsReuseMs: 500, queueLimit: 8 } });
  const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => get(port, '/metrics', i % 2 ? { 'accept-encoding': 'gzip' } : {})));
  t.equal(computations, 1, 'six concurrent scrapes, one computation');
  t.ok(replies.every((r) => r.status === 200));
  const texts = replies.map((r) => (r.headers['content-encoding'] === 'gzip' ? gunzipSync(r.body) : r.body).toString());
  t.ok(texts.every((x) => x === texts[0]), 'one document for all, compressed or not');
  await get(port, '/metrics');
  t.equal(computations, 1, 'within metricsReuseMs: reused');
  await sleep(550);
  t.match((await get(port, '/metrics')).body.toString(), /^z_total 2$/m, 'past it: computed again');
});

t.test('past the queue limit, requests get 503 with Retry-After at once; the rest are served', async (t) => {
  const registry = new Registry();
  let computations = 0;
  addTextRenderer(registry, async () => {
    computations++;
    await sleep(300);
    return [Buffer.from('# HELP q_total q\n# TYPE q_total counter\nq_total 1\n')];
  });
  const port = await serve(t, { registry, limits: { metricsReuseMs: 0, queueLimit: 3 } });
  const started = performance.now();
  const replies = await Promise.all(Array.from({ length: 8 }, () => get(port, '/metrics').then((r) => ({ ...r, ms: performance.now() - started }))));
  const busy = replies.filter((r) => r.status === 503);
  t.equal(replies.filter((r) => r.status === 200).length, 4, 'one computing, three sharing it');
  t.equal(busy.length, 4, 'the others refused');
  t.ok(busy.every((r) => r.headers['retry-after'] === '1'), 'with Retry-After: 1');
  t.ok(busy.every((r) => r.ms < 250), `refused at once (${Math.max(...busy.map((r) => r.ms)).toFixed(0)} ms), not after the computation`);
  t.equal(computations, 1);
});

t.test('JSON documents: same query shares, another query waits its turn; /v1/state bursts are one computation', async (t) => {
  let stateCalls = 0;
  const docCalls: string[] = [];
  const port = await serve(t, {
    state: () => {
      stateCalls++;
      const until = performance.now() + 40; // an expensive state document: reused for as long as it took
      while (performance.now() < until);
      return readyState;
    },
    documents: {
      '/v1/conntrack': (q) => {
        docCalls.push(q.toString());
        const until = performance.now() + 50; // a synchronous document that takes a while
        while (performance.now() < until);
        return { limit: q.get('limit') };
      },
    },
    limits: { queueLimit: 4 },
  });
  const states = await Promise.all(Array.from({ length: 5 }, () => get(port, '/v1/state')));
  t.ok(states.every((r) => r.status === 200 && JSON.parse(r.body.toString()).ready === true));
  t.ok(stateCalls <= 2, `five concurrent /v1/state, ${stateCalls} computation(s)`);
  const docs = await Promise.all(['limit=1', 'limit=1', 'limit=2', 'limit=3'].map((q) => get(port, `/v1/conntrack?${q}`)));
  t.same(docs.map((r) => JSON.parse(r.body.toString()).limit), ['1', '1', '2', '3'], 'each got its own document');
  t.ok(docCalls.filter((q) => q === 'limit=1').length <= 2, 'the same query shares when it can');
  t.same([...new Set(docCalls)].sort(), ['limit=1', 'limit=2', 'limit=3']);
});

t.test('a computation that throws is a 500 naming the error, and the next request computes again', async (t) => {
  let fail = true;
  const port = await serve(t, {
    state: () => {
      if (fail) throw new Error('state exploded');
      return readyState;
    },
  });
  const r = await get(port, '/v1/state');
  t.equal(r.status, 500);
  t.match(r.body.toString(), /state exploded/);
  fail = false;
  t.equal((await get(port, '/v1/state')).status, 200);
  t.equal((await get(port, '/readyz')).status, 200);
});
