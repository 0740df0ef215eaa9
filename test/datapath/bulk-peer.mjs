// Bulk TCP both ways for test/datapath/tc-lab.test.ts, run with plain `node`
// inside a network namespace (a sender with the default offloads: 64 KiB GSO
// skbs on the veth):
//
//   node bulk-peer.mjs serve UP_PORT DOWN_PORT     server: UP_PORT hashes what it receives and answers
//                                                  "BYTES SHA256\n" at the client's end; DOWN_PORT sends
//                                                  the first line's number of pattern bytes; prints "listening"
//   node bulk-peer.mjs up HOST PORT BYTES          client: sends BYTES pattern bytes, prints the server's line
//   node bulk-peer.mjs down HOST PORT BYTES        client: asks for BYTES, prints "BYTES SHA256" of what came
import net from 'node:net';
import { createHash } from 'node:crypto';

const [mode, ...args] = process.argv.slice(2);
const CHUNK = Buffer.alloc(1 << 16, 'pharos-bulk-');
const TIMEOUT_MS = 20_000;

function pattern(bytes, write, done) {
  let left = bytes;
  const next = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!write(CHUNK.subarray(0, n))) return;
    }
    done();
  };
  return next;
}

if (mode === 'serve') {
  const [upPort, downPort] = args.map(Number);
  net.createServer((sock) => {
    const hash = createHash('sha256');
    let count = 0;
    sock.on('data', (d) => { count += d.length; hash.update(d); });
    sock.on('end', () => sock.end(`${count} ${hash.digest('hex')}\n`));
    sock.on('error', () => sock.destroy());
  }).listen(upPort);
  net.createServer((sock) => {
    let line = '';
    sock.on('data', (d) => {
      if (line.includes('\n')) return;
      line += d.toString();
      if (!line.includes('\n')) return;
      const next = pattern(Number(line.trim()), (b) => sock.write(b), () => sock.end());
      sock.on('drain', next);
      next();
    });
    sock.on('error', () => sock.destroy());
  }).listen(downPort, () => console.log('listening'));
} else if (mode === 'up' || mode === 'down') {
  const [host, port, bytes] = [args[0], Number(args[1]), Number(args[2])];
  const timer = setTimeout(() => { console.log('timeout'); process.exit(1); }, TIMEOUT_MS);
  const sock = net.connect(port, host);
  const hash = createHash('sha256');
  let count = 0;
  let reply = '';
  sock.on('error', (e) => { console.log(`error ${e.message}`); process.exit(1); });
  sock.on('connect', () => {
    if (mode === 'down') {
      sock.write(`${bytes}\n`);
      return;
    }
    const next = pattern(bytes, (b) => sock.write(b), () => sock.end());
    sock.on('drain', next);
    next();
  });
  sock.on('data', (d) => {
    if (mode === 'up') reply += d.toString();
    else { count += d.length; hash.update(d); }
  });
  sock.on('end', () => {
    clearTimeout(timer);
    console.log(mode === 'up' ? reply.trim() : `${count} ${hash.digest('hex')}`);
  });
} else {
  console.log('1..0 # SKIP helper, run by test/datapath/tc-lab.test.ts');
}
