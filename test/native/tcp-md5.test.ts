/**
 * TCP MD5 signatures (RFC 2385, for BGP) through setTcpMd5 on real sockets:
 * a Node net.Server's listening fd and a client fd from tcpSocket(), adopted
 * by net.Socket. On loopback only. A wrong key drops the SYN silently, so a
 * failed connect shows up as a timeout.
 */
import t from 'tap';
import net from 'node:net';
import { closeSync, openSync } from 'node:fs';
import { addon } from '../../src/native/libbpf.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { bpfErrorOf } from './bpf-error.js';

const skip = privilegedUnavailable();
const REFUSED_AFTER_MS = 1000;

async function keyedServer(t: { teardown: (fn: () => void) => void }, host: string): Promise<{ port: number; fd: number }> {
  const server = net.createServer((socket) => socket.end('hello'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  t.teardown(() => server.close());
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  return { port: (server.address() as net.AddressInfo).port, fd };
}

/** Connects with `key` (none when null); resolves 'hello' on success, 'timeout' or the error otherwise. */
async function attempt(port: number, host: string, family: 'ipv4' | 'ipv6', peer: string, key: string | null): Promise<string> {
  const fd = addon().tcpSocket(family);
  if (key !== null) addon().setTcpMd5(fd, peer, key);
  const socket = new net.Socket({ fd, readable: true, writable: true });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('timeout');
    }, REFUSED_AFTER_MS);
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(`error ${err.message}`);
    });
    let received = '';
    socket.on('data', (d) => (received += d.toString()));
    socket.once('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    });
    socket.connect(port, host);
  });
}

t.test('IPv4: matching keys connect; a wrong or missing key does not', { skip }, async (t) => {
  const server = await keyedServer(t, '127.0.0.1');
  addon().setTcpMd5(server.fd, '127.0.0.1', 'phn-secret');
  t.equal(await attempt(server.port, '127.0.0.1', 'ipv4', '127.0.0.1', 'phn-secret'), 'hello', 'same key');
  t.equal(await attempt(server.port, '127.0.0.1', 'ipv4', '127.0.0.1', 'phn-wrong'), 'timeout', 'wrong key: SYN dropped');
  t.equal(await attempt(server.port, '127.0.0.1', 'ipv4', '127.0.0.1', null), 'timeout', 'no key: SYN dropped');

  addon().setTcpMd5(server.fd, '127.0.0.1', '');
  t.equal(await attempt(server.port, '127.0.0.1', 'ipv4', '127.0.0.1', null), 'hello', 'key removed: plain TCP again');
  addon().setTcpMd5(server.fd, '127.0.0.1', '');
  t.pass('removing an absent key is fine');
});

t.test('IPv6 peer, and an IPv4 peer on a dual-stack socket', { skip }, async (t) => {
  const v6 = await keyedServer(t, '::1');
  addon().setTcpMd5(v6.fd, '::1', 'k6');
  t.equal(await attempt(v6.port, '::1', 'ipv6', '::1', 'k6'), 'hello', 'IPv6 with matching keys');
  t.equal(await attempt(v6.port, '::1', 'ipv6', '::1', 'nope'), 'timeout', 'IPv6 with a wrong key');

  // A v6 socket bound to a v4-mapped address serves IPv4 clients; their key is keyed ::ffff:127.0.0.1.
  const mapped = await keyedServer(t, '::ffff:127.0.0.1');
  addon().setTcpMd5(mapped.fd, '127.0.0.1', 'k4');
  t.equal(await attempt(mapped.port, '127.0.0.1', 'ipv4', '127.0.0.1', 'k4'), 'hello', 'IPv4 client, dual-stack listener');
  t.equal(await attempt(mapped.port, '127.0.0.1', 'ipv4', '127.0.0.1', 'k5'), 'timeout', 'and a wrong key fails');
});

t.test('bad input to setTcpMd5 and tcpSocket', { skip }, async (t) => {
  const fd = addon().tcpSocket('ipv4');
  t.teardown(() => closeSync(fd));
  let e = bpfErrorOf(() => addon().setTcpMd5(fd, '127.0.0.1', 'x'.repeat(81)));
  t.equal(e.code, 'EINVAL');
  t.match(e.message, 'key is 81 bytes, at most 80');
  addon().setTcpMd5(fd, '127.0.0.1', 'x'.repeat(80));
  t.pass('an 80-byte key is accepted');
  e = bpfErrorOf(() => addon().setTcpMd5(fd, 'not-an-address', 'k'));
  t.match(e.message, 'not an IPv4 or IPv6 address');
  e = bpfErrorOf(() => addon().setTcpMd5(fd, '2001:db8::1', 'k'));
  t.match(e.message, 'an IPv6 peer needs an IPv6 socket');
  const file = openSync('/dev/null', 'r');
  t.teardown(() => closeSync(file));
  e = bpfErrorOf(() => addon().setTcpMd5(file, '127.0.0.1', 'k'));
  t.equal(e.code, 'ENOTSOCK');
  t.match(e.message, `setTcpMd5 on fd ${file} for 127.0.0.1`);
  e = bpfErrorOf(() => addon().tcpSocket('ipx' as 'ipv4'));
  t.match(e.message, "family must be 'ipv4' or 'ipv6'");
});
