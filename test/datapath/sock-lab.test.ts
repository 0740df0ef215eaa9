/**
 * Node-local access through the cgroup socket hooks (bpf/sock.bpf.c), with
 * real TCP and UDP sockets.
 *
 *   cli ── c0 lb (node: 198.18.0.2, 2001:db8::2 on c0) ── bN ─ eth0 (beN: 198.18.1N.2, 2001:db8:1N::2)
 *
 * The XDP object is loaded only for its maps (nothing is attached to an
 * interface): packets from the lb namespace's own sockets never meet XDP,
 * so a service address is reachable from there only if the socket hooks
 * translated the socket. The hooks are attached to a child cgroup this test
 * creates under the cgroup v2 mount and that holds only the clients it
 * starts (never the root: that would catch every process on the host); the
 * same clients started outside it are the control group.
 */
import t from 'tap';
import { mkdirSync, readFileSync, rmdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { privilegedUnavailable } from '../support/privileged.js';
import { run, withLab, type Lab } from '../support/lab.js';
import { addBackend, be4, be6 } from './backends.js';
import { loadAddon, type NativeAddon } from '../../src/native/libbpf.js';
import { loadDatapath, removePins, type LoadedDatapath } from '../../src/datapath/loader.js';
import { DatapathSync } from '../../src/datapath/sync.js';
import { findCgroup2Mount, loadSocketLb, removeSocketLbPins, detachSocketLb, SOCK_HOOKS, type LoadedSocketLb } from '../../src/datapath/socket-lb.js';
import { decodeSockRev } from '../../src/datapath/abi.js';
import type { Backend, Frontend, Protocol } from '../../src/model/types.js';

const PEER = fileURLToPath(new URL('./sock-peer.mjs', import.meta.url));
const PIN_DIR = '/run/pharos/bpffs/phksk-lab';
const NODE4 = '198.18.0.2';
const NODE6 = '2001:db8::2';
const LB = { 4: '198.51.100.10', 6: '2001:db8:100::10' } as const;
const EXT = { 4: '203.0.113.10', 6: '2001:db8:203::10' } as const;
const AFF = { 4: '198.51.100.11', 6: '2001:db8:100::11' } as const;
const EMPTY = { 4: '198.51.100.12', 6: '2001:db8:100::12' } as const;
const DRAIN = { 4: '198.51.100.13', 6: '2001:db8:100::13' } as const;
const NODE = { 4: NODE4, 6: NODE6 } as const;
const NODE_PORT = 30080;
const endpoint = (a: string, p: number): string => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);

function backends(f: 4 | 6, port: number, state: (i: number) => Backend['state'] = () => 'active'): Backend[] {
  return [1, 2, 3].map((i) => ({ address: f === 4 ? be4(i) : be6(i), port, weight: 1, state: state(i) }));
}

function fe(address: string, port: number, protocol: Protocol, bes: Backend[], extra: Partial<Frontend> = {}): Frontend {
  return { service: 'lab/svc', kind: 'LoadBalancer', address, port, protocol, backends: bes, sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [], ...extra };
}

function desired(): Frontend[] {
  return ([4, 6] as const).flatMap((f) => [
    fe(LB[f], 80, 'TCP', backends(f, 8080)),
    fe(EXT[f], 80, 'TCP', backends(f, 8080), { kind: 'ExternalIP' }),
    fe(NODE[f], NODE_PORT, 'TCP', backends(f, 8080), { kind: 'NodePort' }),
    fe(LB[f], 53, 'UDP', backends(f, 5353)),
    fe(AFF[f], 80, 'TCP', backends(f, 8080), { sessionAffinity: true, sessionAffinityTimeoutSeconds: 10800 }),
    fe(EMPTY[f], 80, 'TCP', []),
    fe(DRAIN[f], 80, 'TCP', backends(f, 8080, (i) => (i === 1 ? 'terminating' : 'active'))),
  ]);
}

interface PeerResult { bodies: string[]; peers: string[]; from: string[]; failures: string[] }

let lab: Lab;
let addon: NativeAddon;
let dp: LoadedDatapath | undefined;
let sock: LoadedSocketLb | undefined;
let cgroup = '';

/** Runs a command in the lb namespace; `inCgroup` moves the shell into the child cgroup before it execs. */
async function inLb(cmd: string[], opts: { inCgroup: boolean; timeoutMs?: number; ns?: string }): Promise<{ stdout: string; stderr: string; code: number }> {
  const enter = opts.inCgroup ? `echo $$ > ${cgroup}/cgroup.procs && ` : '';
  return run(['sh', '-c', `${enter}exec "$@"`, 'sh', 'ip', 'netns', 'exec', lab.ns(opts.ns ?? 'lb'), ...cmd], { allowFail: true, timeoutMs: opts.timeoutMs ?? 30_000 });
}

async function peer(mode: 'tcp' | 'udp' | 'udp-connected', host: string, port: number, n: number, inCgroup = true, ns = 'lb'): Promise<PeerResult> {
  const r = await inLb([process.execPath, PEER, mode, host, String(port), String(n)], { inCgroup, ns });
  if (r.code !== 0) throw new Error(`sock-peer ${mode} ${host}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as PeerResult;
}

const names = (bodies: string[]): string[] => bodies.map((b) => b.split(' ')[0]!);

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

function hookPrograms(): number[][] {
  return SOCK_HOOKS.map(({ hook }) => addon.cgroupQuery(cgroup, hook));
}

const skip = privilegedUnavailable() || (findCgroup2Mount() ? false : 'no cgroup v2 mount');

t.before(async () => {
  if (skip) return;
  addon = loadAddon();
  lab = await withLab(t, 'phksk');
  removeSocketLbPins(addon, PIN_DIR);
  removePins(PIN_DIR);
  cgroup = join(findCgroup2Mount()!, `phksk-${process.pid}`);
  mkdirSync(cgroup);
  await lab.addNamespace('lb', { forwarding: true });
  // The node's own addresses, on a link to a client namespace that plays no part (this kernel has no dummy interfaces).
  await lab.addNamespace('cli');
  await lab.addLink({ ns: 'lb', ifname: 'c0', addrs: [`${NODE4}/24`, `${NODE6}/64`] }, { ns: 'cli', ifname: 'eth0', addrs: ['198.18.0.1/24', '2001:db8::1/64'] });
  // cli stands for a pod: it reaches the backends through lb, but not the service addresses (nothing routes them).
  await lab.exec('cli', ['ip', 'route', 'add', '198.18.8.0/21', 'via', NODE4]);
  for (const i of [1, 2, 3]) await addBackend(lab, i, { udp: true });
  dp = loadDatapath({ addon, pinDir: PIN_DIR, sizes: { conntrack: 4096, frontends: 64, backends: 256 } });
  const sync = new DatapathSync(addon, dp.maps);
  sync.readState();
  const r = sync.apply(desired());
  if (r.errors.length) throw new Error(JSON.stringify(r.errors));
  // Only the lb namespace's sockets, as an agent running there would load it.
  sock = loadSocketLb({ addon, datapath: dp, netnsCookie: addon.netnsCookie(lab.nsPath('lb')) });
  sock.attach(cgroup);
});

t.teardown(async () => {
  if (skip) return;
  sock?.close();
  if (addon) removeSocketLbPins(addon, PIN_DIR);
  dp?.close();
  removePins(PIN_DIR);
  // The cgroup empties as its clients exit (all awaited); bounded wait for the kernel to notice.
  for (let i = 0; i < 50 && cgroup && existsSync(cgroup); i++) {
    try {
      rmdirSync(cgroup);
    } catch {
      await sleep(100);
    }
  }
});

for (const f of [4, 6] as const) {
  const targets = [['LoadBalancer IP', LB[f], 80], ['externalIP', EXT[f], 80], ['NodePort on the node address', NODE[f], NODE_PORT]] as const;

  for (const [what, address, port] of targets) {
    t.test(`v${f} ${what}: TCP from the node is balanced over the backends, getpeername shows the service`, { skip }, async (t) => {
      const res = await peer('tcp', address, port, 30);
      t.same(res.failures, [], 'every connection answered');
      t.equal(res.bodies.length, 30);
      const spread = countBy(names(res.bodies));
      t.ok(Object.keys(spread).length >= 2, `spread over backends: ${JSON.stringify(spread)}`);
      t.same([...new Set(res.peers)], [endpoint(address, port)], 'the socket\'s peer is the service address');
      // The backend saw the lb namespace's own address on its link: the connection went straight there.
      const direct = f === 4 ? /^be(\d) 198\.18\.1\1\.1$/ : /^be(\d) 2001:db8:1\1::1$/;
      t.same(res.bodies.filter((b) => !direct.test(b)), [], 'each backend saw the lb namespace\'s address on its own link');
    });
  }

  t.test(`v${f} curl from inside the LB namespace reaches the LoadBalancer IP and the externalIP`, { skip }, async (t) => {
    for (const address of [LB[f], EXT[f]]) {
      const url = f === 4 ? `http://${address}/` : `http://[${address}]/`;
      const r = await inLb(['curl', '-sS', '-g', '--fail', '--noproxy', '*', '--max-time', '3', url], { inCgroup: true });
      t.equal(r.code, 0, `${url}: ${r.stderr.trim()}`);
      t.match(r.stdout, /^be[123] /, `${url}: ${r.stdout}`);
    }
  });

  t.test(`v${f} UDP: replies arrive from the service address (recvmsg), balanced per socket`, { skip }, async (t) => {
    const res = await peer('udp', LB[f], 53, 20);
    t.same(res.failures, []);
    t.same([...new Set(res.from)], [endpoint(LB[f], 53)], 'every reply reported as coming from VIP:53');
    t.ok(new Set(names(res.bodies)).size >= 2, `spread: ${JSON.stringify(countBy(names(res.bodies)))}`);
    const conn = await peer('udp-connected', LB[f], 53, 5);
    t.same(conn.failures, []);
    t.same([...new Set(conn.from)], [endpoint(LB[f], 53)], 'connected UDP: replies from the VIP');
    t.same([...new Set(conn.peers)], [endpoint(LB[f], 53)], 'connected UDP: getpeername is the VIP');
    const rev = sock!.maps.reverse.entries().map(([k, v]) => decodeSockRev(k, v));
    t.ok(rev.some((e) => e.service === LB[f] && e.servicePort === 53 && e.backendPort === 5353), 'reverse entries recorded for the UDP sockets');
  });

  t.test(`v${f} session affinity: every connection of the namespace goes to one backend`, { skip }, async (t) => {
    const res = await peer('tcp', AFF[f], 80, 20);
    t.same(res.failures, []);
    t.equal(new Set(names(res.bodies)).size, 1, JSON.stringify(countBy(names(res.bodies))));
  });

  t.test(`v${f} a terminating backend takes no new connections`, { skip }, async (t) => {
    const res = await peer('tcp', DRAIN[f], 80, 30);
    t.same(res.failures, []);
    const spread = countBy(names(res.bodies));
    t.notOk(spread.be1, `be1 is terminating: ${JSON.stringify(spread)}`);
    t.ok(spread.be2 && spread.be3, 'the other two share the load');
  });

  t.test(`v${f} a frontend without backends refuses at once (ECONNREFUSED)`, { skip }, async (t) => {
    const before = sock!.counters().no_backend;
    const started = Date.now();
    const res = await peer('tcp', EMPTY[f], 80, 1);
    t.same(res.failures, ['ECONNREFUSED']);
    t.ok(Date.now() - started < 2000, 'no timeout');
    t.ok(sock!.counters().no_backend > before, 'counted no_backend');
  });

  t.test(`v${f} a process outside the child cgroup is not translated`, { skip }, async (t) => {
    const before = sock!.counters();
    const vip = await peer('tcp', LB[f], 80, 1, false);
    t.equal(vip.bodies.length, 0, 'the VIP is not reachable from the namespace without the hooks');
    t.match(vip.failures[0] ?? '', /ENETUNREACH|EHOSTUNREACH|timeout/);
    const np = await peer('tcp', NODE[f], NODE_PORT, 1, false);
    t.same(np.failures, ['ECONNREFUSED'], 'the NodePort on the node address is just a closed local port');
    const after = sock!.counters();
    t.equal(after.connect, before.connect, 'no connect translated');
  });
}

t.test('an IPv6 socket to an IPv4-mapped service address reaches an IPv4 backend (TCP; UDP without reply translation)', { skip }, async (t) => {
  const mapped = `::ffff:${LB[4]}`;
  const res = await peer('tcp', mapped, 80, 10);
  t.same(res.failures, []);
  t.same([...new Set(res.peers)], [endpoint(mapped, 80)]);
  t.ok(res.bodies.every((b) => /^be[123] /.test(b)));
  // UDP: sendmsg is translated (the kernel hands a mapped destination to the IPv4 path and its sendmsg4 hook),
  // but udpv6_recvmsg runs no recvmsg hook for an IPv4 datagram, so the reply shows the backend: a kernel limit.
  const udp = await peer('udp', mapped, 53, 5);
  t.same(udp.failures, [], 'datagrams balanced and answered');
  t.ok(udp.from.every((f) => /^\[::ffff:198\.18\.1[123]\.2\]:5353$/.test(f)), `replies from the backends' mapped addresses: ${udp.from.join(' ')}`);
});

t.test('another network namespace in the cgroup is left alone unless every namespace is balanced', { skip }, async (t) => {
  const own = await peer('tcp', LB[4], 80, 1, true, 'cli');
  t.equal(own.bodies.length, 0, `a socket of another namespace is not translated (${own.failures.join(',')})`);
  sock!.close();
  sock = loadSocketLb({ addon, datapath: dp!, netnsCookie: 0n });
  sock.attach(cgroup);
  const all = await peer('tcp', LB[4], 80, 10, true, 'cli');
  t.same(all.failures, [], 'with every namespace balanced, the pod-like client reaches the VIP');
  t.same(all.bodies.filter((b) => !/^be[123] 198\.18\.0\.1$/.test(b)), [], 'through lb, with its own address');
  t.same([...new Set(all.peers)], [endpoint(LB[4], 80)]);
});

t.test('restart: a second load swaps the programs into the pinned links without a gap', { skip }, async (t) => {
  const oldIds = hookPrograms();
  t.ok(oldIds.every((ids) => ids.length === 1), `one program per hook: ${JSON.stringify(oldIds)}`);
  sock!.close();
  sock = loadSocketLb({ addon, datapath: dp!, netnsCookie: addon.netnsCookie(lab.nsPath('lb')) });
  const a = sock.attach(cgroup);
  t.ok(a.hooks.every((h) => h.replaced), 'every link re-used');
  const newIds = hookPrograms();
  t.ok(newIds.every((ids, i) => ids.length === 1 && ids[0] !== oldIds[i]![0]), `new programs, still one per hook: ${JSON.stringify(newIds)}`);
  const res = await peer('tcp', LB[4], 80, 10);
  t.same(res.failures, []);
});

t.test('turned off: nothing stays attached and the VIP is unreachable again', { skip }, async (t) => {
  t.equal(detachSocketLb(addon, PIN_DIR), SOCK_HOOKS.length, 'every link detached');
  t.same(hookPrograms(), SOCK_HOOKS.map(() => []), 'no program on any hook of the cgroup');
  const res = await peer('tcp', LB[4], 80, 1);
  t.equal(res.bodies.length, 0, `in the cgroup, no longer translated: ${res.failures.join(',')}`);
  t.equal(detachSocketLb(addon, PIN_DIR), 0, 'idempotent');
  t.notOk(readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').trim(), 'the child cgroup is empty (only our finished clients were in it)');
});
