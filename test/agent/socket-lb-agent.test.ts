/**
 * The agent's node-local access (--socket-lb): a real agent in manifests
 * mode, its socket hooks on a child cgroup this test creates (never the
 * root), clients started in that cgroup inside the agent's namespace.
 *
 *   cli ── eth0 [lb: agent, XDP on eth0] b1, b2 ── be1, be2 (HTTP :8080)
 *
 * Lifecycle: a clean stop takes the hooks off; a killed agent leaves them
 * (pinned links, node-local access keeps working) and the next agent swaps
 * its programs in; an agent started with --no-socket-lb, or inside an
 * `ip netns` namespace without --socket-lb-cgroup, removes the leftovers.
 */
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { privilegedUnavailable } from '../support/privileged.js';
import { run, startEchoServer, withLab, type Lab } from '../support/lab.js';
import { waitFor } from '../support/wait.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { loadAddon, type NativeAddon } from '../../src/native/libbpf.js';
import { removePins } from '../../src/datapath/loader.js';
import { findCgroup2Mount, removeSocketLbPins, SOCK_HOOKS } from '../../src/datapath/socket-lb.js';
import { lbServiceYaml } from '../support/manifests.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const PEER = fileURLToPath(new URL('../datapath/sock-peer.mjs', import.meta.url));
const PIN_DIR = '/run/pharos/bpffs/phksa-lb';
const HTTP = '127.0.0.1:9643';
const MANIFESTS = `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: pool }
spec: { blocks: [{ cidr: 198.51.100.64/29 }] }
---
${lbServiceYaml({ name: 'web', namespace: 'shop', endpoints: ['198.18.11.2', '198.18.12.2'] })}`;

/** Whether `dir` is already a cgroup2 mount point (a crashed earlier run). */
function findCgroup2MountAt(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir && l.includes(' - cgroup2 '));
}

interface State { frontends: { address: string; port: number }[]; datapath: { socketLb?: { cgroup: string; hooks: string[]; counters: Record<string, number> } } }

/*
 * `ip netns exec` remounts /sys, so the agent in the lb namespace does not
 * see /sys/fs/cgroup/*: the test mounts cgroup v2 again outside /sys (as
 * the bpffs is, see LAB-FACTS) and names the child cgroup through it.
 */
const CG_MOUNT = '/run/pharos/phksa-cgroup2';

const skip = privilegedUnavailable() || (findCgroup2Mount() ? false : 'no cgroup v2 mount');

t.test('agent: node-local access through socket hooks on a child cgroup', { skip }, async (t) => {
  const lab: Lab = await withLab(t, 'phksa');
  const addon: NativeAddon = loadAddon();
  const work = mkdtempSync(join(tmpdir(), 'phksa-'));
  mkdirSync(CG_MOUNT, { recursive: true });
  if (!findCgroup2MountAt(CG_MOUNT)) await run(['mount', '-t', 'cgroup2', 'none', CG_MOUNT]);
  const cgroup = join(CG_MOUNT, `phksa-${process.pid}`);
  removeSocketLbPins(addon, PIN_DIR);
  removePins(PIN_DIR);
  mkdirSync(cgroup);
  const agents: ChildProcess[] = [];
  t.teardown(async () => {
    for (const a of agents) if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
    await sleep(200);
    removeSocketLbPins(addon, PIN_DIR);
    removePins(PIN_DIR);
    rmSync(work, { recursive: true, force: true });
    for (let i = 0; i < 50 && existsSync(cgroup); i++) {
      try {
        rmdirSync(cgroup);
      } catch {
        await sleep(100);
      }
    }
    await run(['umount', CG_MOUNT], { allowFail: true });
    try {
      rmdirSync(CG_MOUNT);
    } catch {
      // still mounted (umount failed): leave the directory
    }
  });

  await lab.addNamespace('cli');
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'cli', ifname: 'eth0', addrs: ['198.18.0.1/24'] }, { ns: 'lb', ifname: 'eth0', addrs: ['198.18.0.2/24'] });
  for (const i of [1, 2]) {
    await lab.addNamespace(`be${i}`);
    await lab.addLink({ ns: 'lb', ifname: `b${i}`, addrs: [`198.18.1${i}.1/24`] }, { ns: `be${i}`, ifname: 'eth0', addrs: [`198.18.1${i}.2/24`] });
    await lab.exec(`be${i}`, ['ip', 'route', 'add', 'default', 'via', `198.18.1${i}.1`]);
    await startEchoServer(lab, `be${i}`, { name: `be${i}`, port: 8080 });
  }
  const dir = join(work, 'manifests');
  mkdirSync(dir);
  writeFileSync(join(dir, 'app.yaml'), MANIFESTS);

  let log = '';
  const startAgent = (extra: string[]): ChildProcess => {
    const a = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'lb-1', '--interfaces', 'eth0',
      '--state-dir', join(work, 'state'), '--pin-dir', PIN_DIR, '--http', HTTP, '--log-format', 'text', ...extra]);
    a.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
    a.stdout?.on('data', (d: Buffer) => { log += d.toString(); });
    agents.push(a);
    return a;
  };
  const state = async (): Promise<State> => {
    const r = await lab.exec('lb', ['curl', '-sS', '--fail', '--max-time', '2', `http://${HTTP}/v1/state`], { timeoutMs: 5000 });
    return JSON.parse(r.stdout) as State;
  };
  const ready = async (what: string): Promise<State> => waitFor(what, 30_000, async () => {
    const s = await state();
    return s.frontends.some((f) => f.address.startsWith('198.51.100.')) ? s : undefined;
  }).catch((e: Error) => { throw new Error(`${e.message}\nagent log:\n${log}`); });
  const stop = async (a: ChildProcess, signal: NodeJS.Signals): Promise<void> => {
    const exited = new Promise<void>((resolve) => a.once('exit', () => resolve()));
    a.kill(signal);
    await Promise.race([exited, sleep(15_000)]);
    // The HTTP port is free again once the process is gone.
    await sleep(100);
  };
  const inCgroup = async (vip: string, n: number): Promise<{ bodies: string[]; peers: string[]; failures: string[] }> => {
    const r = await run(['sh', '-c', `echo $$ > ${cgroup}/cgroup.procs && exec "$@"`, 'sh', 'ip', 'netns', 'exec', lab.ns('lb'),
      process.execPath, PEER, 'tcp', vip, '80', String(n)], { allowFail: true, timeoutMs: 30_000 });
    return JSON.parse(r.stdout) as { bodies: string[]; peers: string[]; failures: string[] };
  };
  const attached = (): number[][] => SOCK_HOOKS.map(({ hook }) => addon.cgroupQuery(cgroup, hook));
  const none = SOCK_HOOKS.map(() => []);

  const a1 = startAgent(['--socket-lb-cgroup', cgroup]);
  const s1 = await ready('agent 1 serving');
  const vip = s1.frontends.find((f) => f.address.startsWith('198.51.100.'))!.address;

  await t.test('the agent attaches the hooks and reports them', async (t) => {
    t.equal(s1.datapath.socketLb?.cgroup, cgroup);
    t.same(s1.datapath.socketLb?.hooks, SOCK_HOOKS.map((h) => h.hook));
    t.ok(attached().every((ids) => ids.length === 1), 'one program per hook on the child cgroup');
    const status = await lab.exec('lb', [process.execPath, CLI, 'status', '--agent', `http://${HTTP}`], { allowFail: true });
    t.match(status.stdout, new RegExp(`socket LB on cgroup ${cgroup} \\(8 hooks`));
  });

  await t.test('a client in the cgroup, in the agent\'s namespace, reaches the LoadBalancer IP on both backends', async (t) => {
    const r = await inCgroup(vip, 20);
    t.same(r.failures, []);
    t.same([...new Set(r.bodies.map((b) => b.split(' ')[0]))].sort(), ['be1', 'be2']);
    t.same([...new Set(r.peers)], [`${vip}:80`]);
    t.ok(((await state()).datapath.socketLb?.counters.connect ?? 0) >= 20, 'connects counted in /v1/state');
    const metrics = (await lab.exec('lb', ['curl', '-sS', '--fail', '--max-time', '2', `http://${HTTP}/metrics`])).stdout;
    const m = /^pharos_socket_lb_total\{event="connect"\} (\d+)$/m.exec(metrics);
    t.ok(m && Number(m[1]) >= 20, `pharos_socket_lb_total{event="connect"}: ${m?.[1]}`);
  });

  await t.test('killed: the pinned links stay and keep balancing; the next agent swaps its programs in', async (t) => {
    const before = attached();
    await stop(a1, 'SIGKILL');
    t.same(attached(), before, 'still attached after the crash');
    t.same((await inCgroup(vip, 5)).failures, [], 'node-local access still works with no agent');
    const a2 = startAgent(['--socket-lb-cgroup', cgroup]);
    await ready('agent 2 serving');
    const after = attached();
    t.ok(after.every((ids, i) => ids.length === 1 && ids[0] !== before[i]![0]), `replaced in place: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    t.same((await inCgroup(vip, 5)).failures, []);
    await stop(a2, 'SIGTERM');
    t.same(attached(), none, 'a clean stop takes every hook off');
    t.equal((await inCgroup(vip, 1)).bodies.length, 0, 'the VIP is no longer reachable from the node namespace');
  });

  await t.test('--no-socket-lb, or the default cgroup inside an ip netns namespace, removes what a killed agent left', async (t) => {
    for (const extra of [['--no-socket-lb'], []]) {
      const a = startAgent(['--socket-lb-cgroup', cgroup]);
      await ready('agent serving');
      await stop(a, 'SIGKILL');
      t.ok(attached().every((ids) => ids.length === 1), 'left attached by the killed agent');
      const b = startAgent(extra);
      const s = await ready(`agent ${extra.join(' ') || 'with defaults'} serving`);
      t.same(attached(), none, `${extra.join(' ') || 'defaults in a netns'}: nothing attached`);
      t.equal(s.datapath.socketLb, undefined, 'not reported');
      if (!extra.length) t.match(log, /socket LB not attached: it runs in network namespace \\?"phksa-lb\\?" \(ip netns\)/);
      await stop(b, 'SIGTERM');
    }
  });

  await t.test('an explicit cgroup that cannot be used fails the start with a clear error', async (t) => {
    const missing = join(CG_MOUNT, 'phksa-missing');
    const r = await lab.exec('lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'lb-1', '--interfaces', 'eth0',
      '--state-dir', join(work, 'state'), '--pin-dir', PIN_DIR, '--http', HTTP, '--socket-lb-cgroup', missing], { allowFail: true, timeoutMs: 30_000 });
    t.not(r.code, 0, 'exits non-zero');
    t.match(r.stderr, new RegExp(`--socket-lb-cgroup ${missing}: .*opening cgroup ${missing}: No such file or directory \\(ENOENT\\).*--no-socket-lb`));
    t.same(attached(), none, 'nothing attached to the real child cgroup');
  });
});
