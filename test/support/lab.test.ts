import t from 'tap';
import { execFileSync } from 'node:child_process';
import { Lab, assertLabAddress, httpGet, startEchoServer, udpQuery, withLab } from './lab.js';
import { privilegedUnavailable } from './privileged.js';

const skip = privilegedUnavailable();

function netnsNames(): string[] {
  return execFileSync('ip', ['netns', 'list']).toString().split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
}

t.test('address guard accepts only the test ranges', async (t) => {
  for (const ok of ['198.18.0.1', '198.19.255.255/32', '198.18.0.0/15', '192.0.2.7/24', '198.51.100.1/25', '203.0.113.9',
    '2001:db8::1', '2001:db8:ffff::1/64', '2001:0db8:0:0:0:0:0:1/128', '2001:db8::/32', '2001:db8::198.18.0.1']) {
    t.doesNotThrow(() => assertLabAddress(ok), ok);
  }
  for (const bad of ['10.0.0.1', '192.168.1.1/24', '172.16.0.1', '8.8.8.8', '198.17.255.255', '198.20.0.0',
    '198.18.0.0/14', '192.0.2.0/23', '2001:db9::1', '2001:db8::/31', 'fe80::1', '::1', '127.0.0.1', '::',
    'not-an-ip', '198.18.0.256', '198.18.0.1/33', '2001:db8::1::2', '2001:db8::1/129', '198.18.0.1/x']) {
    t.throws(() => assertLabAddress(bad), bad);
  }
});

t.test('prefix and names', async (t) => {
  t.throws(() => new Lab('Bad-prefix'));
  t.throws(() => new Lab(''));
  const lab = new Lab('phltst');
  t.equal(lab.ns('a'), 'phltst-a');
  t.equal(lab.nsPath('a'), '/run/netns/phltst-a');
  await lab.teardown();
  await lab.teardown(); // idempotent
  await t.rejects(lab.addNamespace('x'), /torn down/);
});

t.test('namespaces, veth, bridge, exec, echo servers, teardown', { skip }, async (t) => {
  const prefix = 'phl1';
  const lab = await withLab(t, prefix);
  await lab.addNamespace('a');
  await lab.addNamespace('r', { forwarding: true });
  await lab.addNamespace('b');
  await lab.addNamespace('c');
  t.same(netnsNames().filter((n) => n.startsWith(`${prefix}-`)).sort(), ['phl1-a', 'phl1-b', 'phl1-c', 'phl1-r']);

  // a —veth— r (router) —veth— br0 in b, c attached to the bridge too.
  await lab.addLink({ ns: 'a', ifname: 'eth0', addrs: ['198.18.1.2/24', '2001:db8:1::2/64'], mac: '02:00:00:00:01:02', mtu: 1400 },
    { ns: 'r', ifname: 'to-a', addrs: ['198.18.1.1/24', '2001:db8:1::1/64'] });
  await lab.addBridge('b', 'br0', { addrs: ['198.18.2.2/24', '2001:db8:2::2/64'] });
  await lab.addLink({ ns: 'r', ifname: 'to-b', addrs: ['198.18.2.1/24', '2001:db8:2::1/64'] }, { ns: 'b', ifname: 'up0' });
  await lab.attachToBridge('b', 'up0', 'br0');
  await lab.addLink({ ns: 'c', ifname: 'eth0', addrs: ['198.18.2.3/24'] }, { ns: 'b', ifname: 'c0' });
  await lab.attachToBridge('b', 'c0', 'br0');
  await lab.exec('a', ['ip', 'route', 'add', 'default', 'via', '198.18.1.1']);
  await lab.exec('a', ['ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:1::1']);
  await lab.exec('b', ['ip', 'route', 'add', 'default', 'via', '198.18.2.1']);
  await lab.exec('b', ['ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:2::1']);

  t.equal(await lab.mac('a', 'eth0'), '02:00:00:00:01:02');
  t.ok((await lab.ifIndex('a', 'eth0')) > 1);
  const mtu = await lab.exec('a', ['cat', '/sys/class/net/eth0/mtu']);
  t.equal(mtu.stdout.trim(), '1400');
  const fwd = await lab.exec('r', ['sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding']);
  t.same(fwd.stdout.trim().split('\n'), ['1', '1']);
  const noFwd = await lab.exec('a', ['sysctl', '-n', 'net.ipv4.ip_forward']);
  t.equal(noFwd.stdout.trim(), '0');

  await lab.exec('a', ['ping', '-c1', '-W2', '198.18.2.2']);
  await lab.exec('a', ['ping', '-6', '-c1', '-W2', '2001:db8:2::2']);
  await lab.exec('c', ['ping', '-c1', '-W2', '198.18.2.2']);

  await lab.attachXdpPass('a', 'eth0');
  await lab.attachXdpPass('a', 'eth0'); // replaces: idempotent
  const link = JSON.parse((await lab.exec('a', ['ip', '-j', 'link', 'show', 'dev', 'eth0'])).stdout) as Array<{ xdp?: { mode: number; prog?: { name: string } } }>;
  t.equal(link[0]?.xdp?.mode, 1, 'XDP_PASS attached in native (driver) mode');
  t.equal(link[0]?.xdp?.prog?.name, 'xdp_pass');
  await lab.exec('a', ['ping', '-c1', '-W2', '198.18.2.2']);

  const failed = await lab.exec('a', ['sh', '-c', 'echo oops >&2; exit 3'], { allowFail: true });
  t.equal(failed.code, 3);
  t.equal(failed.stderr.trim(), 'oops');
  await t.rejects(lab.exec('a', ['sh', '-c', 'echo boom >&2; exit 1']), /boom/);
  await t.rejects(lab.exec('a', ['sleep', '5'], { timeoutMs: 200 }), /timed out/);
  const echoed = await lab.exec('a', ['cat'], { input: 'hello' });
  t.equal(echoed.stdout, 'hello');

  await t.rejects(lab.addLink({ ns: 'a', ifname: 'x', addrs: ['10.0.0.1/24'] }, { ns: 'b', ifname: 'y' }), /outside the test ranges/);
  await t.rejects(lab.addLink({ ns: 'a', ifname: 'x'.repeat(16) }, { ns: 'b', ifname: 'y' }), /15/);

  await startEchoServer(lab, 'b', { name: 'web-b', port: 8080 });
  t.equal(await httpGet(lab, 'a', 'http://198.18.2.2:8080/'), 'web-b 198.18.1.2');
  t.equal(await httpGet(lab, 'a', 'http://[2001:db8:2::2]:8080/'), 'web-b 2001:db8:1::2');
  await startEchoServer(lab, 'b', { name: 'dns-b', port: 5353, udp: true });
  t.equal(await udpQuery(lab, 'a', '198.18.2.2', 5353, 'ping'), 'dns-b 198.18.1.2 ping');
  t.equal(await udpQuery(lab, 'a', '2001:db8:2::2', 5353, 'ping6'), 'dns-b 2001:db8:1::2 ping6');
  await t.rejects(httpGet(lab, 'a', 'http://198.18.2.2:8081/', { timeoutMs: 1000 }));

  const sleeper = lab.spawn('c', ['sleep', '300']);
  await new Promise((r) => sleeper.once('spawn', r));
  const pid = sleeper.pid!;
  const nsOfSleeper = execFileSync('ip', ['netns', 'identify', String(pid)]).toString().trim();
  t.equal(nsOfSleeper, 'phl1-c', 'spawned process runs in the namespace (PID is the command itself)');

  await lab.teardown();
  t.same(netnsNames().filter((n) => n.startsWith(`${prefix}-`)), [], 'namespaces gone');
  let alive = true;
  try { process.kill(pid, 0); } catch { alive = false; }
  t.notOk(alive, 'spawned process killed');
});

t.test('cleanup removes leftovers of exactly its prefix', { skip }, async (t) => {
  execFileSync('ip', ['netns', 'add', 'phl2-leftover']);
  execFileSync('ip', ['netns', 'add', 'phl22-other']);
  t.teardown(() => {
    for (const n of ['phl2-leftover', 'phl22-other']) {
      try { execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' }); } catch { /* gone */ }
    }
  });
  const lab = await withLab(t, 'phl2');
  const names = netnsNames();
  t.notOk(names.includes('phl2-leftover'), 'leftover removed');
  t.ok(names.includes('phl22-other'), 'other prefix untouched');
  await lab.addNamespace('x');
});

t.test('namespaces are removed when the test process dies of SIGTERM', { skip }, async (t) => {
  // A child process builds a lab and is killed mid-test: its signal handler must clean up.
  const script = `
    import { Lab } from ${JSON.stringify(new URL('./lab.ts', import.meta.url).pathname)};
    const lab = new Lab('phl3');
    await lab.addNamespace('a');
    lab.spawn('a', ['sleep', '300']);
    console.log('ready');
    setInterval(() => {}, 1000);
  `;
  const { spawn } = await import('node:child_process');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(`${tmpdir()}/phl3-`);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(`${dir}/child.mts`, script);
  const child = spawn(process.execPath, ['--import', 'tsx', `${dir}/child.mts`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const exited = new Promise((r) => child.once('exit', (_c, s) => r(s)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child lab not ready in 15 s')), 15_000);
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); resolve(); } });
  });
  t.ok(netnsNames().includes('phl3-a'));
  child.kill('SIGTERM');
  const sig = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
  t.equal(sig, 'SIGTERM', 'child still dies of the signal');
  t.notOk(netnsNames().includes('phl3-a'), 'namespace removed by the signal handler');
  await Lab.cleanup('phl3');
});
