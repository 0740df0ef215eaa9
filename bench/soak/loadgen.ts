/**
 * The soak's load generator, run inside the client namespace:
 *
 *   node --import tsx bench/soak/loadgen.ts run '<json LoadConfig>'
 *   node --import tsx bench/soak/loadgen.ts fill HOST PORT FLOWS
 *
 * `run`: HTTP workers, each on its own keep-alive connection (replaced by a
 * new one after `requestsPerConnection` requests), and UDP workers, each a
 * request/response stream on one socket, send until `maxRequests` requests
 * or `timeCapMs` (whichever first). Commands on stdin, one JSON per line:
 * {"cmd":"window","name":F} opens a window (closing the open one),
 * {"cmd":"close"} closes it, {"cmd":"stop"} stops. Each closed window is
 * printed as {"window":WindowStats}; at the end {"done":{...}}.
 *
 * `fill`: opens FLOWS UDP flows (one socket each, one datagram) to
 * HOST:PORT, 200 at a time, to fill a conntrack map; prints
 * {"sent":n,"answered":n}.
 */
import http from 'node:http';
import { createSocket, type Socket } from 'node:dgram';
import readline from 'node:readline';
import { WindowTracker, type Outcome } from './core.js';

export interface LoadConfig {
  http: string[];
  udp: { host: string; port: number }[];
  httpWorkers: number;
  udpWorkers: number;
  paceMs: number;
  requestsPerConnection: number;
  maxRequests: number;
  timeCapMs: number;
  /** Per request. */
  timeoutMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const out = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

async function run(cfg: LoadConfig): Promise<void> {
  const timeoutMs = cfg.timeoutMs ?? 3000;
  const httpNames = Array.from({ length: cfg.httpWorkers }, (_, i) => `http${i}`);
  const udpNames = Array.from({ length: cfg.udpWorkers }, (_, i) => `udp${i}`);
  const tracker = new WindowTracker([...httpNames, ...udpNames]);
  const started = performance.now();
  let sent = 0;
  let stopped = false;
  const totals = { requests: 0, ok: 0, failed: 0, resets: 0, connections: 0, perBackend: {} as Record<string, number>, perSource: {} as Record<string, number> };
  // Each HTTP worker's current connection: who answered it and how many requests it carried so far.
  const current: Record<string, { served?: string; requests: number }> = {};
  const keepGoing = (): boolean => !stopped && sent < cfg.maxRequests && performance.now() - started < cfg.timeCapMs;
  const note = (worker: string, t0: number, outcome: Outcome, detail = '', backend?: string): void => {
    totals.requests++;
    if (outcome === 'ok') totals.ok++;
    else totals.failed++;
    if (outcome === 'reset') totals.resets++;
    if (backend) {
      // Answers read "<backend> <source it saw>": the source is the SNAT address of the LB node that carried it.
      const [name, source] = backend.split(' ');
      totals.perBackend[name!] = (totals.perBackend[name!] ?? 0) + 1;
      if (source) totals.perSource[source] = (totals.perSource[source] ?? 0) + 1;
    }
    tracker.record(worker, t0, performance.now(), outcome, detail, backend);
  };

  const httpWorker = async (name: string, url: string): Promise<void> => {
    while (keepGoing()) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      totals.connections++;
      current[name] = { requests: 0 };
      for (let i = 0; i < cfg.requestsPerConnection && keepGoing(); i++) {
        sent++;
        const t0 = performance.now();
        const r = await new Promise<{ outcome: Outcome; detail: string; backend?: string }>((resolve) => {
          const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => { body += d; });
            res.on('end', () => {
              const ok = res.statusCode === 200 && /^be\d /.test(body);
              resolve(ok ? { outcome: 'ok', detail: '', backend: body.trim().split(' ').slice(0, 2).join(' ') } : { outcome: 'fail', detail: `status ${res.statusCode} ${body.slice(0, 40)}` });
            });
            res.on('error', (e: NodeJS.ErrnoException) => resolve({ outcome: e.code === 'ECONNRESET' ? 'reset' : 'fail', detail: e.code ?? e.message }));
          });
          req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
          req.on('error', (e: NodeJS.ErrnoException) => resolve({ outcome: e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'fail', detail: e.code ?? e.message }));
        });
        note(name, t0, r.outcome, r.detail, r.backend);
        current[name] = { ...(r.backend ? { served: r.backend } : {}), requests: i + 1 };
        if (r.outcome !== 'ok') break; // a broken connection: open a new one
        await sleep(cfg.paceMs);
      }
      agent.destroy();
    }
  };

  const udpWorker = async (name: string, host: string, port: number): Promise<void> => {
    const sock: Socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((r) => sock.bind(0, r));
    let seq = 0;
    let waiting: { seq: string; resolve: (body: string) => void } | undefined;
    sock.on('message', (msg) => {
      const text = msg.toString();
      if (waiting && text.trim().endsWith(` ${waiting.seq}`)) {
        const w = waiting;
        waiting = undefined;
        w.resolve(text);
      }
    });
    while (keepGoing()) {
      sent++;
      const t0 = performance.now();
      const id = `${name}-${++seq}`;
      const body = await new Promise<string | undefined>((resolve) => {
        const timer = setTimeout(() => { waiting = undefined; resolve(undefined); }, Math.min(timeoutMs, 1000));
        waiting = { seq: id, resolve: (b) => { clearTimeout(timer); resolve(b); } };
        sock.send(id, port, host);
      });
      if (body && /^be\d /.test(body)) note(name, t0, 'ok', '', body.trim().split(' ').slice(0, 2).join(' '));
      else note(name, t0, 'fail', body === undefined ? 'no answer in 1 s' : `bad answer ${body.slice(0, 40)}`);
      await sleep(cfg.paceMs);
    }
    sock.close();
  };

  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    let msg: { cmd: string; name?: string };
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    const now = performance.now();
    if (msg.cmd === 'window' && msg.name) tracker.open(msg.name, now);
    else if (msg.cmd === 'close') {
      const w = tracker.close(now);
      if (w) out({ window: w });
    } else if (msg.cmd === 'peek') out({ peek: current });
    else if (msg.cmd === 'stop') stopped = true;
  });

  const workers = [
    ...httpNames.map((n, i) => httpWorker(n, cfg.http[i % cfg.http.length]!)),
    ...udpNames.map((n, i) => udpWorker(n, cfg.udp[i % cfg.udp.length]!.host, cfg.udp[i % cfg.udp.length]!.port)),
  ];
  out({ started: true });
  await Promise.all(workers);
  const w = tracker.close(performance.now());
  if (w) out({ window: w });
  out({ done: { ...totals, elapsedMs: Math.round(performance.now() - started), capped: sent >= cfg.maxRequests ? 'requests' : stopped ? 'stopped' : 'time' } });
}

async function fill(host: string, port: number, flows: number): Promise<void> {
  let answered = 0;
  let sentCount = 0;
  for (let done = 0; done < flows; done += 200) {
    const batch = Math.min(200, flows - done);
    const socks: Socket[] = [];
    for (let i = 0; i < batch; i++) {
      const s = createSocket('udp4');
      s.on('message', () => { answered++; });
      s.on('error', () => undefined);
      await new Promise<void>((r) => s.bind(0, r));
      s.send(`fill-${done + i}`, port, host);
      sentCount++;
      socks.push(s);
    }
    await sleep(150);
    for (const s of socks) s.close();
  }
  out({ sent: sentCount, answered });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'run') {
  run(JSON.parse(args[0]!) as LoadConfig).then(() => process.exit(0), (e) => { process.stderr.write(`${(e as Error).stack}\n`); process.exit(1); });
} else if (mode === 'fill') {
  fill(args[0]!, Number(args[1]), Number(args[2])).then(() => process.exit(0), (e) => { process.stderr.write(`${(e as Error).stack}\n`); process.exit(1); });
} else {
  process.stderr.write('usage: loadgen.ts run JSON | fill HOST PORT FLOWS\n');
  process.exit(2);
}
