/**
 * Relays TCP connections to a Unix socket. `pharos lab` runs it in the mgmt
 * namespace so agents in node namespaces reach the API emulator, which
 * listens in the supervisor (host namespace) on 127.0.0.1 and on a Unix
 * socket — Unix sockets cross network namespaces.
 *
 *   node dist/lab/forwarder.js --listen 192.0.2.254:6443 --unix /run/pharos/lab/api.sock
 */
import { connect, createServer } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { listen: { type: 'string' }, unix: { type: 'string' } } });
if (!values.listen || !values.unix) {
  console.error('usage: forwarder --listen HOST:PORT --unix PATH');
  process.exit(2);
}
const at = values.listen.lastIndexOf(':');
const host = values.listen.slice(0, at);
const port = Number(values.listen.slice(at + 1));
const unixPath = values.unix;

const server = createServer((sock) => {
  const upstream = connect(unixPath);
  sock.pipe(upstream).pipe(sock);
  const end = (): void => {
    sock.destroy();
    upstream.destroy();
  };
  sock.on('error', end);
  upstream.on('error', end);
  sock.on('close', end);
  upstream.on('close', end);
});
server.listen(port, host, () => process.stdout.write(`forwarding ${host}:${port} -> ${unixPath}\n`));
const stop = (): void => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
