/**
 * Service semantics with real TCP through the XDP load balancer (issue 8).
 *
 *   cli (198.18.0.1 + .10-.25, 2001:db8::1, ::3) ── eth0 ─ c0 [lb: XDP + tc on c0, c2, b1-b3] bN ─ eth0 (beN: 198.18.1N.2, 2001:db8:1N::2)
 *   cl2 (198.18.5.1, 2001:db8:5::1) ── eth0 ─ c2 (MTU 1280 on the LB side only: PMTU discovery must work through the LB)
 *
 * Backends answer HTTP with `<name> <client address>` (:8080) and run a line
 * echo for long-lived connections (:7000). The LB SNATs to its c0 address
 * except for Local-policy frontends, which keep the client's address: their
 * replies come back to the LB, which forwards them and whose tc egress on c0
 * makes them come from the VIP again.
 */
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { privilegedUnavailable } from '../support/privileged.js';
import { httpGet, withLab, type Lab } from '../support/lab.js';
import { addBackend, be4, be6 } from './backends.js';
import { loadAddon } from '../../src/native/libbpf.js';
import { loadDatapath, removePins, type LoadedDatapath } from '../../src/datapath/loader.js';
import { DatapathSync } from '../../src/datapath/sync.js';
import { readReasonCounters } from '../../src/datapath/stats.js';
import type { Backend, Frontend } from '../../src/model/types.js';
import { countBy, Holder, httpMany } from './lab-peer-client.js';

const PEER = fileURLToPath(new URL('./lab-peer.mjs', import.meta.url));
const PIN_DIR = '/run/pharos/bpffs/phs-lab';
const LB_IFACES = ['c0', 'c2', 'b1', 'b2', 'b3'];
/** MTU of the LB's side of the second client's link (PMTU test). */
const SMALL_MTU = 1280;
const BIG_RESPONSE = 1_000_000;
const NODE4 = '198.18.0.2';
const NODE6 = '2001:db8::2';
const vip = (f: 4 | 6, n: number): string => (f === 4 ? `198.51.100.${n}` : `2001:db8:100::${n}`);
const url = (f: 4 | 6, n: number, port = 80): string => (f === 4 ? `http://${vip(4, n)}:${port}/` : `http://[${vip(6, n)}]:${port}/`);
/** Extra client addresses, as distinct clients for affinity spreading. */
const MANY_CLIENTS = Array.from({ length: 16 }, (_, i) => `198.18.0.${10 + i}`);

function backends(f: 4 | 6, port: number, which = [1, 2, 3], extra: (i: number) => Partial<Backend> = () => ({})): Backend[] {
  return which.map((i) => ({ address: f === 4 ? be4(i) : be6(i), port, weight: 1, state: 'active' as const, ...extra(i) }));
}

function fe(address: string, port: number, bes: Backend[], extra: Partial<Frontend> = {}): Frontend {
  return { service: 'lab/svc', kind: 'LoadBalancer', address, port, protocol: 'TCP', backends: bes, sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [], ...extra };
}

interface Knobs { terminating?: number; weights?: Record<number, number> }

function desired(k: Knobs = {}): Frontend[] {
  const out: Frontend[] = [];
  for (const f of [4, 6] as const) {
    out.push(
      // Local policy: be1 stands for the node-local endpoint.
      fe(vip(f, 40), 80, backends(f, 8080, [1]), { localOnly: true }),
      fe(vip(f, 41), 80, [], { localOnly: true }),
      fe(vip(f, 42), 80, backends(f, 8080), { sourceRanges: f === 4 ? ['198.18.0.1/32'] : ['2001:db8::1/128'] }),
      fe(vip(f, 43), 80, backends(f, 8080), { sessionAffinity: true, sessionAffinityTimeoutSeconds: 10800 }),
      // NodePort on the node's own address.
      fe(f === 4 ? NODE4 : NODE6, 30080, backends(f, 8080), { kind: 'NodePort' }),
    );
  }
  out.push(
    fe(vip(4, 44), 7000, backends(4, 7000, [1, 2, 3], (i) => (i === k.terminating ? { state: 'terminating' } : {}))),
    fe(vip(4, 45), 80, backends(4, 8080, [1, 2, 3], (i) => ({ weight: k.weights?.[i] ?? 1 }))),
    fe(vip(4, 46), 80, backends(4, 8090, [1])),
    fe(vip(6, 46), 80, backends(6, 8090, [1])),
  );
  return out;
}

let lab: Lab;
let dp: LoadedDatapath | undefined;
let sync: DatapathSync;
let liveness: NodeJS.Timeout | undefined;


async function refused(target: string, localAddress?: string): Promise<boolean> {
  try {
    await httpGet(lab, 'cli', target, { timeoutMs: 1500, ...(localAddress ? { localAddress } : {}) });
    return false;
  } catch {
    return true;
  }
}



const skip = privilegedUnavailable();

t.before(async () => {
  if (skip) return;
  lab = await withLab(t, 'phs');
  const addon = loadAddon();
  removePins(PIN_DIR);
  await lab.addNamespace('cli');
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'cli', ifname: 'eth0', addrs: ['198.18.0.1/24', '2001:db8::1/64', ...MANY_CLIENTS.map((a) => `${a}/24`)] },
    { ns: 'lb', ifname: 'c0', addrs: [`${NODE4}/24`, `${NODE6}/64`] });
  // ::3 is deprecated (preferred_lft 0) so the kernel never picks it as a source on its own; tests bind to it.
  await lab.exec('cli', ['sh', '-c', 'ip -6 addr add 2001:db8::3/64 dev eth0 nodad preferred_lft 0 && ip route add 198.51.100.0/24 via 198.18.0.2 && ip -6 route add 2001:db8:100::/64 via 2001:db8::2']);
  for (const i of [1, 2, 3]) await addBackend(lab, i, { tcpEcho: true, xdpPeer: true });
  await lab.attachXdpPass('cli', 'eth0');
  await lab.exec('cli', ['ethtool', '-K', 'eth0', 'tx', 'off']);
  await lab.addNamespace('cl2');
  await lab.addLink({ ns: 'cl2', ifname: 'eth0', addrs: ['198.18.5.1/24', '2001:db8:5::1/64'] }, { ns: 'lb', ifname: 'c2', addrs: ['198.18.5.2/24', '2001:db8:5::2/64'], mtu: SMALL_MTU });
  await lab.exec('cl2', ['sh', '-c', 'ip route add 198.51.100.0/24 via 198.18.5.2 && ip -6 route add 2001:db8:100::/64 via 2001:db8:5::2 && ethtool -K eth0 tx off']);
  await lab.attachXdpPass('cl2', 'eth0');
  const big = lab.spawn('be1', [process.execPath, PEER, 'http-big', 'be1', '8090', String(BIG_RESPONSE)]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('http-big did not start')), 5000);
    big.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) { clearTimeout(timer); resolve(); } });
  });
  await lab.exec('lb', ['sysctl', '-qw', 'net.ipv4.conf.all.accept_local=1', ...LB_IFACES.map((i) => `net.ipv4.conf.${i}.accept_local=1`), 'net.ipv4.conf.all.rp_filter=0']);
  dp = loadDatapath({ addon, pinDir: PIN_DIR, sizes: { conntrack: 65536, frontends: 64, backends: 256 } });
  sync = new DatapathSync(addon, dp.maps);
  sync.readState();
  const lbNs = lab.nsPath('lb');
  for (const ifname of LB_IFACES) {
    dp.attachXdp(ifname, { netns: lbNs });
    dp.attachTcEgress(ifname, { netns: lbNs });
  }
  sync.setNodeConfig({ snatV4: NODE4, snatV6: NODE6, portMin: 40000, portMax: 49999 });
  sync.touchLiveness();
  liveness = setInterval(() => sync.touchLiveness(), 500);
  const r = sync.apply(desired());
  if (r.errors.length) throw new Error(JSON.stringify(r.errors));
});

t.teardown(() => {
  if (liveness) clearInterval(liveness);
  dp?.close();
  removePins(PIN_DIR);
});

for (const f of [4, 6] as const) {
  const client = f === 4 ? '198.18.0.1' : '2001:db8::1';
  t.test(`v${f} Local policy: the backend sees the client's own address, replies come from the VIP`, { skip }, async (t) => {
    const before = readReasonCounters(dp!.maps.stats);
    const { bodies, failures } = await httpMany(lab, 'cli', url(f, 40), 20, 4);
    t.same(failures, [], 'every request answered (the client accepts replies only from the VIP)');
    t.same([...new Set(bodies)], [`be1 ${client}`], 'only the local backend, client address preserved');
    const after = readReasonCounters(dp!.maps.stats);
    t.ok(after.tc_rev_nat - before.tc_rev_nat >= 20n * 3n, `replies rewritten on the way out (${after.tc_rev_nat - before.tc_rev_nat})`);
  });

  t.test(`v${f} Local policy without a local endpoint: refused, counted no_backend`, { skip }, async (t) => {
    const before = readReasonCounters(dp!.maps.stats);
    t.ok(await refused(url(f, 41)), 'no answer');
    t.ok(readReasonCounters(dp!.maps.stats).no_backend > before.no_backend, 'dropped as no_backend');
  });

  t.test(`v${f} source ranges: a client inside works, one outside is refused and counted`, { skip }, async (t) => {
    const inside = await httpGet(lab, 'cli', url(f, 42), { localAddress: client });
    t.match(inside, /^be[123] /, `inside: ${inside}`);
    const before = readReasonCounters(dp!.maps.stats);
    t.ok(await refused(url(f, 42), f === 4 ? '198.18.0.10' : '2001:db8::3'), 'outside refused');
    t.ok(readReasonCounters(dp!.maps.stats).source_range > before.source_range, 'counted source_range');
  });

  t.test(`v${f} affinity: 100 connections from one client all reach one backend`, { skip }, async (t) => {
    const { bodies, failures } = await httpMany(lab, 'cli', url(f, 43), 100, 8);
    t.same(failures, []);
    t.equal(bodies.length, 100);
    t.equal(new Set(bodies.map((b) => b.split(' ')[0])).size, 1, `one backend: ${JSON.stringify(countBy(bodies.map((b) => b.split(' ')[0]!)))}`);
  });

  t.test(`v${f} NodePort on the node address reaches the backends`, { skip }, async (t) => {
    const { bodies, failures } = await httpMany(lab, 'cli', f === 4 ? `http://${NODE4}:30080/` : `http://[${NODE6}]:30080/`, 30, 6);
    t.same(failures, []);
    t.ok(new Set(bodies.map((b) => b.split(' ')[0])).size >= 2, 'spread over backends');
  });
}

t.test('ping to the IPv4 and IPv6 service addresses is answered by XDP (the LB node does not own them)', { skip }, async (t) => {
  const before = readReasonCounters(dp!.maps.stats);
  for (const target of [vip(4, 43), vip(6, 43)]) {
    const r = await lab.exec('cli', ['ping', '-c', '3', '-i', '0.2', '-W', '1', target], { allowFail: true, timeoutMs: 8000 });
    t.match(r.stdout, /3 received/, `${target}: ${r.stdout.split('\n').find((l) => l.includes('received')) ?? r.stderr}`);
  }
  t.equal(Number(readReasonCounters(dp!.maps.stats).icmp_echo_reply - before.icmp_echo_reply), 6, 'six echo replies from XDP');
  const other = await lab.exec('cli', ['ping', '-c', '1', '-W', '1', '198.51.100.99'], { allowFail: true, timeoutMs: 5000 });
  t.match(other.stdout, /0 received/, 'an address that is no service is not answered');
});

t.test('affinity spreads over many clients (16 client addresses)', { skip }, async (t) => {
  const seen: string[] = [];
  for (const a of MANY_CLIENTS) seen.push((await httpGet(lab, 'cli', url(4, 43), { localAddress: a })).split(' ')[0]!);
  t.ok(new Set(seen).size >= 2, `backends used: ${JSON.stringify(countBy(seen))}`);
  const again: string[] = [];
  for (const a of MANY_CLIENTS) again.push((await httpGet(lab, 'cli', url(4, 43), { localAddress: a })).split(' ')[0]!);
  t.same(again, seen, 'each client kept its backend');
});

t.test('terminating backend keeps its connections but takes no new ones', { skip }, async (t) => {
  const h = await Holder.open(lab, 'cli', 30, vip(4, 44), 7000);
  let h2: Holder | undefined;
  try {
    const start = await h.status();
    t.ok(start.every((c) => c.open), '30 connections up');
    const onBe1 = start.filter((c) => c.backend === 'be1').length;
    t.ok(onBe1 > 0, `${onBe1} on be1`);
    sync.apply(desired({ terminating: 1 }));
    await sleep(1000);
    const mid = await h.status();
    t.same(mid.filter((c) => !c.open || c.errors.length).map((c) => c.errors), [], 'no connection broken');
    t.ok(mid.filter((c) => c.backend === 'be1').every((c, i) => c.acked > start.filter((s) => s.backend === 'be1')[i]!.acked), 'be1 connections still exchange data');
    h2 = await Holder.open(lab, 'cli', 30, vip(4, 44), 7000);
    const fresh = await h2.status();
    t.equal(fresh.filter((c) => c.backend === 'be1').length, 0, `no new connection on be1: ${JSON.stringify(countBy(fresh.map((c) => c.backend)))}`);
  } finally {
    h.close();
    h2?.close();
    sync.apply(desired());
  }
});

t.test('weights skew Maglev: weight 4:1:1 sends about 2/3 of 300 connections to be1', { skip }, async (t) => {
  sync.apply(desired({ weights: { 1: 4 } }));
  try {
    const { bodies, failures } = await httpMany(lab, 'cli', url(4, 45), 300, 8);
    t.same(failures, []);
    const counts = countBy(bodies.map((b) => b.split(' ')[0]!));
    // Expected 200 ± 8 (binomial σ); Maglev's own imbalance is small at M = 16381.
    t.ok((counts.be1 ?? 0) >= 160 && (counts.be1 ?? 0) <= 240, `be1 ${counts.be1} of 300: ${JSON.stringify(counts)}`);
  } finally {
    sync.apply(desired());
  }
});

// Last: the backend's PMTU cache toward the SNAT address stays lowered afterwards.
t.test('PMTU: a 1 MB HTTP response through a 1280-byte-MTU link completes (ICMP too-big from XDP to the backend), v4 and v6', { skip }, async (t) => {
  for (const f of [4, 6] as const) {
    const before = readReasonCounters(dp!.maps.stats);
    const r = await lab.exec('cl2', ['curl', '-sS', '-g', '--fail', '--noproxy', '*', '--max-time', '10', '-o', '/dev/null', '-w', '%{size_download}', url(f, 46)], { allowFail: true, timeoutMs: 15_000 });
    t.equal(r.stdout.trim(), String(BIG_RESPONSE), `v${f}: whole body received ${r.stderr.trim()}`);
    const after = readReasonCounters(dp!.maps.stats);
    t.ok(after.icmp_too_big > before.icmp_too_big, `v${f}: the backend was told the MTU (${after.icmp_too_big - before.icmp_too_big} ICMP too-big)`);
  }
});
