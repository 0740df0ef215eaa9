// Clients for test/datapath/sock-lab.test.ts, run with plain `node` inside
// a network namespace (and, for the balanced runs, inside the test's child
// cgroup). Each prints one JSON line.
//
//   node sock-peer.mjs tcp HOST PORT N         N fresh HTTP connections, one after another:
//                                              {bodies, peers, failures}; peers = getpeername of each socket
//   node sock-peer.mjs udp HOST PORT N         N fresh unconnected UDP sockets, one datagram each:
//                                              {bodies, from, failures}; from = source the reply arrived from (recvmsg)
//   node sock-peer.mjs udp-connected HOST PORT N   the same with connect() first: {bodies, from, peers, failures}
import http from 'node:http';
import dgram from 'node:dgram';

const [mode, host, portText, nText] = process.argv.slice(2);
const port = Number(portText);
const n = Math.min(Number(nText) || 1, 1000);
const TIMEOUT_MS = 2000;
const endpoint = (a, p) => (a?.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);

function tcpOnce() {
  return new Promise((resolve) => {
    let peer = '';
    const req = http.get({ host, port, path: '/', agent: false, timeout: TIMEOUT_MS }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ body, peer }));
    });
    req.on('socket', (s) => s.on('connect', () => { peer = endpoint(s.remoteAddress, s.remotePort); }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ error: err.code ?? err.message }));
  });
}

function udpOnce(connected) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    let peer = '';
    const timer = setTimeout(() => { sock.close(); resolve({ error: 'timeout' }); }, TIMEOUT_MS);
    sock.on('error', (err) => { clearTimeout(timer); sock.close(); resolve({ error: err.code ?? err.message }); });
    sock.on('message', (msg, rinfo) => {
      clearTimeout(timer);
      sock.close();
      resolve({ body: msg.toString(), from: endpoint(rinfo.address, rinfo.port), peer });
    });
    if (connected) {
      sock.connect(port, host, () => {
        const r = sock.remoteAddress();
        peer = endpoint(r.address, r.port);
        sock.send('ping');
      });
    } else {
      sock.send('ping', port, host);
    }
  });
}

const out = { bodies: [], peers: [], from: [], failures: [] };
for (let i = 0; i < n; i++) {
  const r = mode === 'tcp' ? await tcpOnce() : mode === 'udp' ? await udpOnce(false) : mode === 'udp-connected' ? await udpOnce(true) : { error: `unknown mode ${mode}` };
  if (r.error) out.failures.push(r.error);
  else {
    out.bodies.push(r.body);
    if (r.peer) out.peers.push(r.peer);
    if (r.from) out.from.push(r.from);
  }
}
console.log(JSON.stringify(out));
