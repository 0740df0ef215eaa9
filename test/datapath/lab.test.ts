/**
 * Real TCP and UDP through the XDP load balancer.
 *
 *   cli (198.18.0.1, 2001:db8::1) ── eth0 ─ c0 [lb: pharos XDP on c0, b1-b3] bN ─ eth0 (beN: 198.18.1N.2, 2001:db8:1N::2)
 *
 * The client reaches VIPs 198.51.100.10 / 2001:db8:100::10 on-link, so it
 * resolves them by ARP/NDP, answered by the XDP responder. Backends run an
 * HTTP server that names itself (:8080), a UDP echo (:5353) and a line echo
 * for long-lived connections (:7000). The LB SNATs to its c0 address.
 */
import t from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { httpGet, startEchoServer, udpQuery, withDatapathLab, type Lab } from '../support/lab.js';
import { addBackend, be4, be6 } from './backends.js';
import type { NativeAddon } from '../../src/native/libbpf.js';
import { loadDatapath, removePins, type LoadedDatapath } from '../../src/datapath/loader.js';
import { DatapathSync } from '../../src/datapath/sync.js';
import { readReasonCounters } from '../../src/datapath/stats.js';
import { encodeIfMac, u32Key } from '../../src/datapath/abi.js';
import type { Backend, Frontend } from '../../src/model/types.js';
import { countBy, Holder, httpMany } from './lab-peer-client.js';
import { sleep } from '../support/wait.js';

const PIN_DIR = '/run/pharos/bpffs/phd-lab';
const VIP4 = '198.51.100.10';
const VIP6 = '2001:db8:100::10';
const LB_IFACES = ['c0', 'b1', 'b2', 'b3'];
const BACKENDS = [1, 2, 3];

function backends(family: 4 | 6, port: number, which = BACKENDS, weight: Record<number, number> = {}): Backend[] {
  return which.map((i) => ({ address: family === 4 ? be4(i) : be6(i), port, weight: weight[i] ?? 1, state: 'active' as const }));
}

function fe(address: string, port: number, protocol: 'TCP' | 'UDP', bes: Backend[]): Frontend {
  return { service: 'lab/echo', kind: 'LoadBalancer', address, port, protocol, backends: bes, sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [] };
}

function desired(holdBackends = BACKENDS, holdWeights: Record<number, number> = {}): Frontend[] {
  return [
    fe(VIP4, 80, 'TCP', backends(4, 8080)),
    fe(VIP4, 53, 'UDP', backends(4, 5353)),
    fe(VIP4, 7000, 'TCP', backends(4, 7000, holdBackends, holdWeights)),
    fe(VIP6, 80, 'TCP', backends(6, 8080)),
    fe(VIP6, 53, 'UDP', backends(6, 5353)),
    // A backend on the LB node itself (its own address): DNAT only, tc egress reverses the reply.
    fe(VIP4, 8081, 'TCP', [{ address: '198.18.0.2', port: 8081, weight: 1, state: 'active' }]),
  ];
}

interface Agent { dp: LoadedDatapath; sync: DatapathSync; liveness: NodeJS.Timeout }

let lab: Lab;
let addon: NativeAddon;
let agent: Agent | undefined;
let c0Mac = '';

/** What `pharos agent` does at start: load (re-adopting pins), re-read the maps, attach, apply. */
function startAgent(): Agent {
  const dp = loadDatapath({ addon, pinDir: PIN_DIR, sizes: { conntrack: 65536, frontends: 64, backends: 256 } });
  const sync = new DatapathSync(addon, dp.maps);
  sync.readState();
  const lbNs = lab.nsPath('lb');
  for (const ifname of LB_IFACES) {
    dp.attachXdp(ifname, { netns: lbNs });
    dp.attachTcEgress(ifname, { netns: lbNs });
  }
  sync.setNodeConfig({ snatV4: '198.18.0.2', snatV6: '2001:db8::2', portMin: 40000, portMax: 49999 });
  sync.setLocalAddresses(['198.18.0.2', '2001:db8::2']); // the lbself backend listens on the LB node itself
  const c0 = addon.ifIndex('c0', lbNs);
  sync.setResponder(VIP4, c0, c0Mac);
  sync.setResponder(VIP6, c0, c0Mac);
  sync.touchLiveness();
  const liveness = setInterval(() => sync.touchLiveness(), 500);
  return { dp, sync, liveness };
}

/** Agent exit: close every handle; pins and the XDP attachment stay, so forwarding continues. */
function stopAgent(a: Agent): void {
  clearInterval(a.liveness);
  a.dp.close();
}





const skip = privilegedUnavailable();

t.before(async () => {
  if (skip) return;
  ({ lab, addon } = await withDatapathLab(t, 'phd', PIN_DIR));
  await lab.addNamespace('cli');
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'cli', ifname: 'eth0', addrs: ['198.18.0.1/24', '2001:db8::1/64'] }, { ns: 'lb', ifname: 'c0', addrs: ['198.18.0.2/24', '2001:db8::2/64'] });
  await lab.exec('cli', ['sh', '-c', `ip route add 198.51.100.0/24 dev eth0 && ip -6 route add 2001:db8:100::/64 dev eth0`]);
  for (const i of BACKENDS) await addBackend(lab, i, { udp: true, tcpEcho: true, xdpPeer: true });
  await lab.attachXdpPass('cli', 'eth0');
  // veth offloads the TCP/UDP checksum (CHECKSUM_PARTIAL: only the pseudo-header
  // sum is in the packet). An XDP redirect turns the skb into a raw frame and that
  // state is lost, so the receiver sees a bad checksum and drops it (seen: the
  // backend retransmits its SYN-ACK forever). Real NICs hand XDP complete
  // checksums; in the lab the senders compute them in software.
  await lab.exec('cli', ['ethtool', '-K', 'eth0', 'tx', 'off']);
  // The first packet of a flow whose backend neighbour is unknown is SNATed
  // to c0's address and handed to the kernel (XDP_PASS): the kernel must
  // accept a local source address on input to forward it.
  await lab.exec('lb', ['sysctl', '-qw', 'net.ipv4.conf.all.accept_local=1', 'net.ipv4.conf.c0.accept_local=1',
    ...LB_IFACES.slice(1).map((i) => `net.ipv4.conf.${i}.accept_local=1`), 'net.ipv4.conf.all.rp_filter=0']);
  await startEchoServer(lab, 'lb', { name: 'lbself', port: 8081 });
  c0Mac = (await lab.mac('lb', 'c0'));
  agent = startAgent();
  const r = agent.sync.apply(desired());
  if (r.errors.length) throw new Error(JSON.stringify(r.errors));
});

t.teardown(() => {
  if (agent) stopAgent(agent);
  removePins(PIN_DIR);
});

t.test('the client resolves the VIP by ARP and the IPv6 VIP by NDP through the XDP responder', { skip }, async (t) => {
  const before = readReasonCounters(agent!.dp.maps.stats);
  const arp = await lab.exec('cli', ['arping', '-c', '1', '-w', '2', '-i', 'eth0', VIP4], { allowFail: true });
  t.match(arp.stdout, new RegExp(c0Mac.replace(/:/g, ':'), 'i'), `ARP reply carries c0's MAC: ${arp.stdout.trim()}`);
  const nd = await lab.exec('cli', ['ndisc6', '-1', '-r1', '-w500', VIP6, 'eth0'], { allowFail: true });
  t.match(nd.stdout.toLowerCase(), c0Mac.toLowerCase(), `NA carries c0's MAC: ${nd.stdout.trim()}`);
  const after = readReasonCounters(agent!.dp.maps.stats);
  t.ok(after.arp_reply > before.arp_reply, 'answered by XDP (arp_reply counted)');
  t.ok(after.na_reply > before.na_reply, 'answered by XDP (na_reply counted)');
});

t.test('attach records each interface\'s MAC, so frames for other hosts start no flow', { skip }, async (t) => {
  const c0 = addon.ifIndex('c0', lab.nsPath('lb'));
  t.same(agent!.dp.maps.ifMacs.lookup(u32Key(c0)), encodeIfMac(c0Mac), `ph_if_macs[c0] = ${c0Mac}`);
  t.equal(agent!.dp.maps.ifMacs.entries().length, LB_IFACES.length, 'one entry per attached interface');
});

t.test('first packet to a backend whose neighbour is unknown is neither lost nor misrouted', { skip }, async (t) => {
  await lab.exec('lb', ['ip', 'neigh', 'flush', 'all']);
  const before = readReasonCounters(agent!.dp.maps.stats);
  // 0.9 s is below TCP's 1 s SYN retransmit: the first SYN itself must get through.
  const body = await httpGet(lab, 'cli', `http://${VIP4}/`, { timeoutMs: 900 });
  t.match(body, /^be[123] 198\.18\.0\.2$/, `answered by a backend that saw the SNAT address: ${body}`);
  const after = readReasonCounters(agent!.dp.maps.stats);
  t.ok(after.no_neigh > before.no_neigh, 'went through the kernel once (no_neigh)');
  const again = await httpGet(lab, 'cli', `http://${VIP4}/`, { timeoutMs: 900 });
  t.match(again, /^be[123] /);
});

// Client ports are random, so each backend's count is binomial: with 900
// connections σ ≈ 14, and ±20% (±60) is > 4σ, a bound that does not flake
// (300 would give ±2.4σ: about one run in 20 would fail by chance).
t.test('900 HTTP connections over IPv4: all succeed, spread within ±20%', { skip }, async (t) => {
  const { bodies, failures } = await httpMany(lab, 'cli', `http://${VIP4}/`, 900, 8);
  t.same(failures, [], 'no failed request');
  t.equal(bodies.length, 900);
  const counts = countBy(bodies.map((b) => b.split(' ')[0]!));
  t.same(Object.keys(counts).sort(), ['be1', 'be2', 'be3'], `every backend served: ${JSON.stringify(counts)}`);
  for (const [name, n] of Object.entries(counts)) t.ok(n >= 240 && n <= 360, `${name}: ${n} of 900 (300 ± 20%)`);
  t.ok(bodies.every((b) => b.endsWith(' 198.18.0.2')), 'backends see the SNAT address');
});

t.test('HTTP over IPv6 and UDP over IPv4/IPv6 through the VIPs', { skip }, async (t) => {
  const { bodies, failures } = await httpMany(lab, 'cli', `http://[${VIP6}]/`, 60, 6);
  t.same(failures, []);
  t.equal(bodies.length, 60);
  t.ok(bodies.every((b) => /^be[123] 2001:db8::2$/.test(b)), 'IPv6 backends answer, SNAT to 2001:db8::2');
  t.ok(new Set(bodies.map((b) => b.split(' ')[0])).size === 3, 'IPv6 spread over all backends');
  for (const host of [VIP4, VIP6]) {
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const reply = await udpQuery(lab, 'cli', host, 53, `q${i}`);
      t.match(reply, new RegExp(`^be[123] ${host === VIP4 ? '198\\.18\\.0\\.2' : '2001:db8::2'} q${i}$`));
      seen.add(reply.split(' ')[0]!);
    }
    t.ok(seen.size >= 2, `UDP via ${host} spread over ${seen.size} backends`);
  }
});

t.test('a backend on the LB node itself: DNAT in XDP, reply reverse-NATed by tc egress', { skip }, async (t) => {
  const before = readReasonCounters(agent!.dp.maps.stats);
  const { bodies, failures } = await httpMany(lab, 'cli', `http://${VIP4}:8081/`, 20, 4);
  t.same(failures, []);
  t.ok(bodies.length === 20 && bodies.every((b) => b === 'lbself 198.18.0.1'), 'served locally, client address kept');
  const after = readReasonCounters(agent!.dp.maps.stats);
  t.ok(after.local_backend - before.local_backend >= 20n * 3n, `local_backend counted (${after.local_backend - before.local_backend})`);
  t.ok(after.tc_rev_nat - before.tc_rev_nat >= 20n * 3n, `replies rewritten by tc egress (${after.tc_rev_nat - before.tc_rev_nat})`);
});

t.test('backend set changes keep established connections; removing a backend moves only its flows', { skip }, async (t) => {
  const h = await Holder.open(lab, 'cli', 30, VIP4, 7000);
  try {
    const start = await h.status();
    t.ok(start.every((c) => c.open && c.errors.length === 0), 'all 30 connections up');
    // Weight change: many Maglev slots move; established flows must not.
    t.equal(agent!.sync.apply(desired(BACKENDS, { 1: 3 })).tablesPublished, 1);
    await sleep(800);
    const mid = await h.status();
    t.same(mid.filter((c) => !c.open || c.errors.length).map((c) => c.errors), [], 'no connection broken by the weight change');
    t.same(mid.map((c) => c.backend), start.map((c) => c.backend), 'every connection still on its backend');

    // Remove be3 from the frontend: only its connections are affected.
    agent!.sync.apply(desired([1, 2]));
    await sleep(2500);
    const end = await h.status();
    const onGone = end.filter((c) => c.backend === 'be3');
    const onKept = end.filter((c) => c.backend !== 'be3');
    t.ok(onGone.length > 0, `${onGone.length} connections were on be3`);
    t.same(onKept.filter((c) => !c.open || c.errors.length).map((c) => c.errors), [], 'connections on be1/be2 untouched');
    t.ok(onKept.every((c, i) => c.acked > mid.filter((m) => m.backend !== 'be3')[i]!.acked), 'and still exchanging data');
    t.ok(onGone.every((c) => c.errors.length > 0 || !c.open), 'be3 connections were moved (reset by the new backend)');
    const { bodies } = await httpMany(lab, 'cli', `http://${VIP4}/`, 30, 6);
    t.ok(bodies.length === 30, 'new connections all served');
  } finally {
    h.close();
    agent!.sync.apply(desired());
  }
});

t.test('agent restart (re-load from pins, re-attach) in the middle of 50 open connections breaks none', { skip }, async (t) => {
  const h = await Holder.open(lab, 'cli', 50, VIP4, 7000);
  try {
    await sleep(300);
    const before = await h.status();
    t.ok(before.every((c) => c.open && c.errors.length === 0), '50 connections up');
    const lbNs = lab.nsPath('lb');
    const oldProg = addon.xdpQuery(addon.ifIndex('c0', lbNs), lbNs).progId;

    stopAgent(agent!);
    agent = undefined;
    await sleep(300); // forwarding continues with no agent at all
    // ... and so do new flows: the tail-call slots (first packet of a flow) outlive the agent's fds.
    const { bodies: whileDown } = await httpMany(lab, 'cli', `http://${VIP4}/`, 10, 5);
    t.equal(whileDown.length, 10, 'new connections served while no agent holds the data path open');
    agent = startAgent();
    t.ok(agent.dp.adopted, 'pinned maps re-adopted');
    const { services: _services, ...r } = agent.sync.apply(desired());
    t.same(r, { frontendsWritten: 0, frontendsRemoved: 0, backendsAdded: 0, backendsRemoved: 0, tablesPublished: 0, backendAddressesAdded: [], backendAddressesRemoved: [], errors: [] }, 'view rebuilt from the maps: nothing to rewrite (tables kept)');
    const newProg = addon.xdpQuery(addon.ifIndex('c0', lbNs), lbNs).progId;
    t.not(newProg, oldProg, `new program attached (${oldProg} → ${newProg})`);

    await sleep(1000);
    const after = await h.status();
    t.same(after.filter((c) => !c.open || c.errors.length).map((c) => c.errors), [], 'no connection broken');
    t.same(after.map((c) => c.backend), before.map((c) => c.backend), 'same backends');
    t.ok(after.every((c, i) => c.acked >= before[i]!.acked + 8), 'data kept flowing through the restart');
  } finally {
    h.close();
  }
});
