// Tiny lab servers and a UDP client, run with plain `node` inside a network
// namespace by test/support/lab.ts (no tsx needed, starts in ~50 ms).
//
//   node echo-server.mjs http NAME PORT HOST     → body "NAME CLIENTADDR"
//   node echo-server.mjs udp NAME PORT HOST      → reply "NAME CLIENTADDR PAYLOAD"
//   node echo-server.mjs udp-client HOST PORT PAYLOAD TIMEOUT_MS [LOCALADDR]
//
// Servers print "listening" once bound and run until killed.
import http from 'node:http';
import dgram from 'node:dgram';

const [mode, ...args] = process.argv.slice(2);

// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
const plain = (addr) => (addr ?? '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');

if (mode === 'http') {
  const [name, port, host] = args;
  const server = http.createServer((req, res) => {
    const body = `${name} ${plain(req.socket.remoteAddress)}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  });
  server.listen({ port: Number(port), host, ipv6Only: false }, () => console.log('listening'));
} else if (mode === 'udp') {
  const [name, port, host] = args;
  const sock = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
  sock.on('message', (msg, rinfo) => {
    sock.send(`${name} ${plain(rinfo.address)} ${msg.toString()}`, rinfo.port, rinfo.address);
  });
  sock.bind(Number(port), host, () => console.log('listening'));
} else if (mode === 'udp-client') {
  const [host, port, payload, timeoutMs, local] = args;
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const timer = setTimeout(() => {
    console.error(`no UDP reply from ${host}:${port} within ${timeoutMs} ms`);
    process.exit(1);
  }, Number(timeoutMs));
  sock.on('message', (msg) => {
    clearTimeout(timer);
    process.stdout.write(msg.toString());
    sock.close();
  });
  const send = () => sock.send(payload, Number(port), host);
  if (local) sock.bind(0, local, send);
  else send();
} else {
  console.error(`usage: echo-server.mjs http|udp NAME PORT HOST | udp-client HOST PORT PAYLOAD TIMEOUT_MS [LOCALADDR]`);
  process.exit(2);
}
