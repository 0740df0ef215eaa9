/**
 * setTtl on real sockets: a client two hops from a server (one router
 * namespace between) connects only when its TTL lets the SYN cross the
 * router (else the router's Time Exceeded fails the connect). IPv4, IPv6, and an IPv4 peer of an IPv6 (dual-stack) socket.
 *
 *   phgt-cli (198.18.0.1, 2001:db8::1) ── phgt-rtr ── phgt-srv (198.18.1.2, 2001:db8:1::2)
 */
import t from 'tap';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { addon } from '../../src/native/libbpf.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { startEchoServer, withLab, type Lab } from '../support/lab.js';
import { bpfErrorOf } from './bpf-error.js';

const skip = privilegedUnavailable();
const CHILD = fileURLToPath(new URL('./support/ttl-connect.ts', import.meta.url));
const PORT = 8080;

async function connectWithTtl(lab: Lab, family: 'ipv4' | 'ipv6', ttl: number, host: string): Promise<string> {
  const res = await lab.exec('cli', [process.execPath, '--import', 'tsx', CHILD, family, String(ttl), host, String(PORT), '1500'], { timeoutMs: 15_000 });
  return res.stdout.trim();
}

t.test('a TTL of 1 stops at the router, 2 crosses it (IPv4, IPv6, IPv4-mapped)', { skip }, async (t) => {
  const lab = await withLab(t, 'phgt');
  await lab.addNamespace('cli');
  await lab.addNamespace('rtr', { forwarding: true });
  await lab.addNamespace('srv');
  await lab.addLink({ ns: 'cli', ifname: 'eth0', addrs: ['198.18.0.1/24', '2001:db8::1/64'] }, { ns: 'rtr', ifname: 'c0', addrs: ['198.18.0.2/24', '2001:db8::2/64'] });
  await lab.addLink({ ns: 'rtr', ifname: 's0', addrs: ['198.18.1.1/24', '2001:db8:1::1/64'] }, { ns: 'srv', ifname: 'eth0', addrs: ['198.18.1.2/24', '2001:db8:1::2/64'] });
  await lab.exec('cli', ['sh', '-c', 'ip route add default via 198.18.0.2 && ip -6 route add default via 2001:db8::2']);
  await lab.exec('srv', ['sh', '-c', 'ip route add default via 198.18.1.1 && ip -6 route add default via 2001:db8:1::1']);
  await startEchoServer(lab, 'srv', { name: 'srv', port: PORT });

  // The router answers an expiring SYN with ICMP Time Exceeded: connect fails with EHOSTUNREACH.
  t.match(await connectWithTtl(lab, 'ipv4', 1, '198.18.1.2'), /^error connect EHOSTUNREACH/, 'IPv4, TTL 1: the SYN expires at the router');
  t.equal(await connectWithTtl(lab, 'ipv4', 2, '198.18.1.2'), 'connected', 'IPv4, TTL 2: connected');
  t.match(await connectWithTtl(lab, 'ipv6', 1, '2001:db8:1::2'), /^error connect EHOSTUNREACH/, 'IPv6, hop limit 1: expires at the router');
  t.equal(await connectWithTtl(lab, 'ipv6', 2, '2001:db8:1::2'), 'connected', 'IPv6, hop limit 2: connected');
  t.match(await connectWithTtl(lab, 'ipv6', 1, '::ffff:198.18.1.2'), /^error connect EHOSTUNREACH/, 'IPv4 peer of an IPv6 socket, TTL 1: expires at the router');
  t.equal(await connectWithTtl(lab, 'ipv6', 2, '::ffff:198.18.1.2'), 'connected', 'IPv4 peer of an IPv6 socket, TTL 2: connected');
  t.equal(await connectWithTtl(lab, 'ipv4', 1, '198.18.0.2'), 'error connect ECONNREFUSED 198.18.0.2:8080',
    'TTL 1 still reaches a directly connected host (refused: nothing listens there)');
});

t.test('bad input to setTtl', { skip }, async (t) => {
  const fd = addon().tcpSocket('ipv4');
  t.teardown(() => closeSync(fd));
  for (const ttl of [0, 256, 1.5, -1]) {
    t.equal(bpfErrorOf(() => addon().setTtl(fd, ttl)).code, 'EINVAL', `ttl ${ttl} refused`);
  }
  addon().setTtl(fd, 255);
  t.pass('255 accepted');
  const file = openSync('/dev/null', 'r');
  t.teardown(() => closeSync(file));
  const e = bpfErrorOf(() => addon().setTtl(file, 2));
  t.equal(e.code, 'ENOTSOCK');
  t.match(e.message, `setTtl(2) on fd ${file}`);
});
