/**
 * Long-lived TCP connections under load, for "do established flows survive
 * this fault?": CONNECTIONS keep-alive HTTP/1.1 connections to HOST:PORT
 * (the lab's echo server), each sending one request every INTERVAL ms on
 * the same connection, never reconnecting. Runs DURATION ms (or until
 * SIGTERM), then prints one JSON line:
 *
 *   {"connections":N,"open":n,"stalled":n,"broken":[{"conn":i,"at":ms,"error":"ECONNRESET"}],
 *    "requests":n,"longestWaitMs":ms,"peers":["<client address the server saw>"]}
 *
 * A connection is broken when it errors or closes before the end; `open`
 * counts the others, `stalled` those of them whose request had waited more
 * than 3 s at the end (alive, but not answered). `longestWaitMs` is the longest
 * time any request waited for its answer (a fault's gap, bridged by TCP's
 * retransmissions when the flow survives).
 *
 *   node dist/lab/long-flows.js HOST PORT CONNECTIONS INTERVAL_MS DURATION_MS
 */
import net from 'node:net';

const [host, port, connections, interval, duration] = process.argv.slice(2) as [string, string, string, string, string];
const start = performance.now();
const since = (): number => Math.round(performance.now() - start);
const broken: { conn: number; at: number; error: string }[] = [];
const peers = new Set<string>();
let requests = 0;
let longestWaitMs = 0;
let ended = false;
const sockets: net.Socket[] = [];
/** Per connection: when its outstanding request was sent (undefined: none outstanding, or broken). */
const waiting: (number | undefined)[] = [];
const STALLED_MS = 3_000;

function flow(i: number): void {
  const socket = net.connect({ host, port: Number(port) });
  sockets.push(socket);
  socket.setNoDelay(true);
  let buf = '';
  let sentAt = 0;
  let dead = false;
  const fail = (error: string): void => {
    if (dead || ended) return;
    dead = true;
    waiting[i] = undefined;
    broken.push({ conn: i, at: since(), error });
    socket.destroy();
  };
  const send = (): void => {
    if (dead || ended) return;
    sentAt = performance.now();
    waiting[i] = sentAt;
    socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  };
  socket.on('connect', send);
  socket.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    // One answer: headers, then content-length bytes of `<name> <client address>`.
    for (;;) {
      const head = buf.indexOf('\r\n\r\n');
      if (head < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(buf.slice(0, head))?.[1] ?? NaN);
      if (!Number.isFinite(length)) return fail('unparsable answer');
      if (buf.length < head + 4 + length) return;
      const body = buf.slice(head + 4, head + 4 + length);
      buf = buf.slice(head + 4 + length);
      requests++;
      waiting[i] = undefined;
      longestWaitMs = Math.max(longestWaitMs, Math.round(performance.now() - sentAt));
      const peer = body.split(' ')[1];
      if (peer) peers.add(peer);
      setTimeout(send, Number(interval));
    }
  });
  socket.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
  socket.on('close', () => fail('closed'));
}

function finish(): void {
  if (ended) return;
  ended = true;
  const open = Number(connections) - broken.length;
  const now = performance.now();
  const stalled = waiting.filter((at) => at !== undefined && now - at > STALLED_MS).length;
  process.stdout.write(`${JSON.stringify({ connections: Number(connections), open, stalled, broken, requests, longestWaitMs, peers: [...peers] })}\n`);
  for (const s of sockets) s.destroy();
  setTimeout(() => process.exit(0), 50);
}

for (let i = 0; i < Number(connections); i++) flow(i);
setTimeout(finish, Number(duration));
process.on('SIGTERM', finish);
