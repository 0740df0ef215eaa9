/**
 * Sends one UDP datagram and prints the first reply (the lab's UDP client,
 * run inside a namespace by udpQuery in echo.ts). Exits 1 with a message
 * when no reply comes in time.
 *
 *   node dist/lab/udp-client.js HOST PORT PAYLOAD TIMEOUT_MS [LOCAL_ADDRESS]
 */
import { createSocket } from 'node:dgram';

const [host, port, payload, timeoutMs, local] = process.argv.slice(2) as [string, string, string, string, string | undefined];
const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
const timer = setTimeout(() => {
  process.stderr.write(`no UDP reply from ${host}:${port} within ${timeoutMs} ms\n`);
  process.exit(1);
}, Number(timeoutMs));
sock.on('message', (msg) => {
  clearTimeout(timer);
  process.stdout.write(msg.toString());
  sock.close();
});
const send = (): void => sock.send(payload, Number(port), host);
if (local) sock.bind(0, local, send);
else send();
