// A TCP → Unix socket relay, run inside a lab network namespace: an agent there
// reaches the test's in-process API emulator (listening on a Unix socket) at
// HOST:PORT of its own namespace, with no route out of it.
// Usage: node unix-relay.mjs HOST PORT SOCKET   (prints "ready" once listening)
import net from 'node:net';

const [host, port, path] = process.argv.slice(2);
net.createServer((client) => {
  const upstream = net.connect(path);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
  client.pipe(upstream).pipe(client);
}).listen(Number(port), host, () => process.stdout.write('ready\n'));
