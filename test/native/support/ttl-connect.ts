/**
 * Child for ttl.test.ts, run inside a namespace: connects from a tcpSocket()
 * fd with setTtl(fd, ttl) applied; prints 'connected' once the handshake
 * completes, else 'timeout' / 'error <msg>'.
 *
 * argv: family ('ipv4'|'ipv6') ttl host port timeoutMs
 */
import net from 'node:net';
import { addon } from '../../../src/native/libbpf.js';

const [family, ttlText, host, portText, timeoutText] = process.argv.slice(2) as [string, string, string, string, string];
const fd = addon().tcpSocket(family as 'ipv4' | 'ipv6');
addon().setTtl(fd, Number(ttlText));
const socket = new net.Socket({ fd, readable: true, writable: true });
const done = (result: string): void => {
  process.stdout.write(`${result}\n`);
  socket.destroy();
  process.exit(0);
};
const timer = setTimeout(() => done('timeout'), Number(timeoutText));
socket.once('error', (e) => { clearTimeout(timer); done(`error ${e.message}`); });
socket.once('connect', () => { clearTimeout(timer); done('connected'); });
socket.connect(Number(portText), host);
