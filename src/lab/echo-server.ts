/**
 * The lab's backend: a tiny HTTP server (and optional UDP echo) that
 * answers with its name and the client address it saw, so a client can
 * tell which backend served it and whether the source was NATed. `pharos
 * lab`, `pharos demo`, the tests (startEchoServer in echo.ts) and the
 * benches all run this one program.
 *
 *   node dist/lab/echo-server.js --name be1 [--port 8080[,80,...]] [--udp-port 8081] [--host ::]
 *
 * HTTP answers `<name> <client address>` (no newline: tests compare the
 * body as it is; `?size=N` appends a newline and N bytes, for transfers
 * larger than a packet); UDP answers each datagram with
 * `<name> <client address> <payload, trimmed>`. `--port` takes a list: the
 * lab's backends answer on 80 and 8080, the ports the classic
 * walkthroughs' Services and Deployments use; it defaults to 8080 unless
 * only `--udp-port` is given. Prints one `listening` line once every socket
 * is bound; runs until killed.
 */
import { createServer, type RequestListener } from 'node:http';
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: 'backend' },
    port: { type: 'string' },
    'udp-port': { type: 'string' },
    host: { type: 'string', default: '::' },
  },
});
const name = values.name!;
const host = values.host!;
const portList = values.port ?? (values['udp-port'] ? '' : '8080');
const ports = portList ? portList.split(',').map((p) => Number(p.trim())) : [];
const udpPort = values['udp-port'] === undefined ? undefined : Number(values['udp-port']);
if ([...ports, ...(udpPort === undefined ? [] : [udpPort])].some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
  process.stderr.write(`echo-server: --port ${values.port ?? ''} --udp-port ${values['udp-port'] ?? ''}: ports are integers 1-65535, comma-separated\n`);
  process.exit(2);
}

// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
const plain = (addr: string | undefined): string => (addr ?? '?').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');

const handler: RequestListener = (req, res) => {
  const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size') ?? 0);
  const body = `${name} ${plain(req.socket.remoteAddress)}${size > 0 ? `\n${'x'.repeat(Math.min(size, 16 << 20))}` : ''}`;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

const bound: Promise<void>[] = ports.map((port) => new Promise((resolve) => {
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000;
  server.listen({ port, host, ipv6Only: false }, resolve);
}));

if (udpPort !== undefined) {
  const udp = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
  udp.on('message', (msg, rinfo) => {
    udp.send(`${name} ${plain(rinfo.address)} ${msg.toString().trim()}`, rinfo.port, rinfo.address);
  });
  bound.push(new Promise((resolve) => udp.bind(udpPort, host, resolve)));
}

await Promise.all(bound);
process.stdout.write(`listening ${name} ${[...ports, ...(udpPort === undefined ? [] : [`udp/${udpPort}`])].join(' ')}\n`);

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
