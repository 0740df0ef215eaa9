// Lab helpers for test/datapath/lab.test.ts, run with plain `node` inside a
// network namespace:
//
//   node lab-peer.mjs tcp-echo NAME PORT          server: greets "NAME\n", answers each line with "NAME <line>\n"
//   node lab-peer.mjs hold HOST PORT N            client: N long-lived connections, pinged every 100 ms;
//                                                 prints "ready" then, on SIGUSR1, one JSON status line
//   node lab-peer.mjs http-many URL N PARALLEL    client: N fresh HTTP connections, prints JSON {bodies, failures}
//   node lab-peer.mjs http-big NAME PORT BYTES    server: answers every request with BYTES bytes ('x'), prints "listening"
//
// Run without arguments (as the test runner does with every file here) it reports a TAP skip.
import net from 'node:net';
import http from 'node:http';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'tcp-echo') {
  const [name, port] = args;
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.write(`${name}\n`);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        sock.write(`${name} ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
    sock.on('error', () => sock.destroy());
  });
  server.listen({ port: Number(port), host: '::', ipv6Only: false }, () => console.log('listening'));
} else if (mode === 'hold') {
  const [host, port, n] = args;
  const conns = [];
  let seq = 0;
  const PING_TIMEOUT_MS = 2000;
  for (let k = 0; k < Number(n); k++) {
    const c = { backend: '', open: false, errors: [], buf: '', pending: new Map(), acked: 0 };
    conns.push(c);
    const sock = net.connect({ host, port: Number(port) });
    c.sock = sock;
    sock.setNoDelay(true);
    sock.on('connect', () => { c.open = true; });
    sock.on('data', (d) => {
      c.buf += d.toString();
      let i;
      while ((i = c.buf.indexOf('\n')) >= 0) {
        const line = c.buf.slice(0, i);
        c.buf = c.buf.slice(i + 1);
        if (!c.backend) { c.backend = line; continue; }
        const m = /^(\S+) ping (\d+)$/.exec(line);
        if (!m || m[1] !== c.backend) { c.errors.push(`unexpected reply ${JSON.stringify(line)}`); continue; }
        c.pending.delete(Number(m[2]));
        c.acked++;
      }
    });
    sock.on('error', (e) => c.errors.push(e.code ?? e.message));
    sock.on('close', () => { if (c.open) c.errors.push('closed'); c.open = false; });
  }
  const timer = setInterval(() => {
    seq++;
    const now = Date.now();
    for (const c of conns) {
      for (const [s, at] of c.pending) {
        if (now - at > PING_TIMEOUT_MS) { c.errors.push(`ping ${s} unanswered`); c.pending.delete(s); }
      }
      if (c.open && c.backend) { c.pending.set(seq, now); c.sock.write(`ping ${seq}\n`); }
    }
  }, 100);
  const readyCheck = setInterval(() => {
    if (conns.every((c) => c.backend)) { clearInterval(readyCheck); console.log('ready'); }
  }, 20);
  process.on('SIGUSR1', () => {
    console.log(JSON.stringify(conns.map((c) => ({ backend: c.backend, open: c.open, acked: c.acked, errors: c.errors }))));
  });
  process.on('SIGTERM', () => { clearInterval(timer); for (const c of conns) c.sock.destroy(); process.exit(0); });
} else if (mode === 'http-many') {
  const [url, n, parallel] = args;
  const bodies = [];
  const failures = [];
  let next = 0;
  const one = () => new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 4000 }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => { bodies.push(body); resolve(); });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { failures.push(e.code ?? e.message); resolve(); });
  });
  const worker = async () => { while (next < Number(n)) { next++; await one(); } };
  await Promise.all(Array.from({ length: Number(parallel) }, worker));
  console.log(JSON.stringify({ bodies, failures }));
} else if (mode === 'http-big') {
  const [, port, bytes] = args;
  const body = Buffer.alloc(Number(bytes), 'x');
  http.createServer((req, res) => { res.setHeader('content-length', body.length); res.end(body); })
    .listen({ port: Number(port), host: '::', ipv6Only: false }, () => console.log('listening'));
} else if (mode === undefined) {
  console.log('1..0 # SKIP lab helper for lab.test.ts and services-lab.test.ts, not a test');
} else {
  console.error('usage: lab-peer.mjs tcp-echo NAME PORT | hold HOST PORT N | http-many URL N PARALLEL | http-big NAME PORT BYTES');
  process.exit(2);
}
