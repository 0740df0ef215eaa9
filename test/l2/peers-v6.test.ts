/**
 * L2 peer heartbeats on an IPv6-only segment (issue 18, the outage guard's
 * peer liveness): two namespaces joined by a veth with IPv6 addresses only
 * (no IPv4 subnet to broadcast on) each run one node's heartbeats; each must
 * hear the other's node name, claims and MAC over ff02::1, which proves the
 * beats crossed the link (a node drops its own). Where to send is checked
 * as a pure function too: IPv4 broadcast where there is a subnet, ff02::1
 * only on interfaces without one.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { NetworkInterfaceInfo } from 'node:os';
import { heartbeatTargets } from '../../src/l2/peers.js';
import { withLab } from '../support/lab.js';
import { privilegedUnavailable } from '../support/privileged.js';

const CHILD = fileURLToPath(new URL('./peer-heartbeat-child.ts', import.meta.url));

t.test('targets: IPv4 broadcast per subnet, ff02::1 only on interfaces without IPv4', async (t) => {
  const info = (family: 'IPv4' | 'IPv6', address: string, cidr: string): NetworkInterfaceInfo =>
    ({ family, address, cidr, netmask: '', mac: '02:00:00:00:00:01', internal: false, ...(family === 'IPv6' ? { scopeid: 0 } : {}) }) as NetworkInterfaceInfo;
  const all = {
    dual: [info('IPv4', '198.51.100.11', '198.51.100.11/24'), info('IPv6', '2001:db8:51::11', '2001:db8:51::11/64')],
    v6only: [info('IPv6', '2001:db8:66::1', '2001:db8:66::1/64')],
    p2p: [info('IPv4', '192.0.2.1', '192.0.2.1/32')],
  };
  t.same(heartbeatTargets(['dual', 'v6only', 'p2p', 'absent'], all), { v4: ['198.51.100.255'], v6: ['ff02::1%v6only'] });
  t.same(heartbeatTargets(['dual'], all), { v4: ['198.51.100.255'], v6: [] }, 'dual-stack: the IPv4 beats only');
});

t.test('two nodes on an IPv6-only segment hear each other', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'phdr6');
  await lab.addNamespace('a');
  await lab.addNamespace('b');
  await lab.addLink({ ns: 'a', ifname: 'eth0', addrs: ['2001:db8:66::1/64'] }, { ns: 'b', ifname: 'eth0', addrs: ['2001:db8:66::2/64'] });
  const macs = { a: await lab.mac('a', 'eth0'), b: await lab.mac('b', 'eth0') };
  const run = (node: 'a' | 'b'): Promise<{ peers: Record<string, { claims: string[]; macs: string[] }>; sent: number; errors: string[] }> =>
    new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', lab.ns(node), process.execPath, '--import', 'tsx', CHILD, node, '9644', 'eth0', '20000'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(out.trim().split('\n').pop()!));
        } catch {
          reject(new Error(`child ${node} exited ${code}: ${out}\n${err}`));
        }
      });
    });
  const [a, b] = await Promise.all([run('a'), run('b')]);
  t.same(a.errors, [], 'a: no send error');
  t.ok(a.sent > 0 && b.sent > 0, `both sent (${a.sent}, ${b.sent} datagrams)`);
  t.same(a.peers.b?.claims, ['2001:db8:66::b'], 'a heard b and its claim');
  t.same(b.peers.a?.claims, ['2001:db8:66::a'], 'b heard a and its claim');
  t.same(a.peers.b?.macs, [macs.b], 'with b\'s MAC (judged by claims, not as foreign)');
  t.notOk(a.peers.a, 'a node does not list itself');
});
