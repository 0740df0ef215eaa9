/**
 * The demo's and lab's backend: a tiny HTTP server (and optional UDP echo)
 * that answers with its name and the client address it saw, so a client
 * can tell which backend served it and whether the source was NATed.
 *
 *   node dist/lab/echo-server.js --name be1 --port 8080[,80,...] [--udp-port 8081] [--host ::]
 *
 * `--port` takes a list: the lab's backends answer on 80 and 8080, the
 * ports the classic walkthroughs' Services and Deployments use.
 */
import { createServer, type RequestListener } from 'node:http';
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: 'backend' },
    port: { type: 'string', default: '8080' },
    'udp-port': { type: 'string' },
    host: { type: 'string', default: '::' },
  },
});
const name = values.name!;
const ports = values.port!.split(',').map((p) => Number(p.trim()));
if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
  process.stderr.write(`echo-server: --port ${values.port}: ports are integers 1-65535, comma-separated\n`);
  process.exit(2);
}
const handler: RequestListener = (req, res) => {
  const client = req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '?';
  const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size') ?? 0);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`${name} ${client}\n${size > 0 ? 'x'.repeat(Math.min(size, 16 << 20)) + '\n' : ''}`);
};
for (const port of ports) {
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000;
  server.listen(port, values.host, () => process.stdout.write(`listening ${name} ${port}\n`));
}

if (values['udp-port']) {
  const udp = createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (msg, rinfo) => {
    udp.send(Buffer.from(`${name} ${rinfo.address.replace(/^::ffff:/, '')} ${msg.toString().trim()}\n`), rinfo.port, rinfo.address);
  });
  udp.bind(Number(values['udp-port']), values.host);
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
