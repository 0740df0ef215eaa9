/**
 * The tc build of the data path (bpf/lb-tc.bpf.c through bpf/lib/ctx.h)
 * with real packets, in a lab shaped like a kind node: plain veth pairs, no
 * XDP program on any peer, every host with its default checksum offload
 * (TCP/UDP leave the senders with partial checksums, TCP in 64 KiB GSO
 * skbs). Loaded as the agent loads it: the XDP build first (it pins the
 * maps), the tc build beside it on the same pins, attached by
 * attachIngress() as `--xdp-mode tc` (what `auto` picks on a veth).
 *
 *   cli (198.18.0.1, 2001:db8::1) ── eth0 ─ c0 [lb: tc ingress on c0, b0] b0 ─ eth0 be (198.18.1.2, 2001:db8:1::2)
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { privilegedUnavailable } from '../support/privileged.js';
import { httpGet, startEchoServer, udpQuery, withDatapathLab, type Lab } from '../support/lab.js';
import { waitFor } from '../support/wait.js';
import type { NativeAddon } from '../../src/native/libbpf.js';
import { attachIngress, loadDatapath, removePins, type LoadedDatapath } from '../../src/datapath/loader.js';
import { DatapathSync } from '../../src/datapath/sync.js';
import { readReasonCounters } from '../../src/datapath/stats.js';
import type { Backend, Frontend } from '../../src/model/types.js';

const PEER = fileURLToPath(new URL('./bulk-peer.mjs', import.meta.url));
const PIN_DIR = '/run/pharos/bpffs/phtc-lab';
const VIP4 = '198.51.100.10';
const VIP6 = '2001:db8:100::10';
const BE4 = '198.18.1.2';
const BE6 = '2001:db8:1::2';
const BULK_BYTES = 8 * 2 ** 20;

function fe(address: string, port: number, protocol: 'TCP' | 'UDP', backend: Backend): Frontend {
  return { service: `lab/${port}`, kind: 'LoadBalancer', address, port, protocol, backends: [backend], sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [] };
}
const be = (address: string, port: number): Backend => ({ address, port, weight: 1, state: 'active' });

/** sha256 of the pattern bulk-peer.mjs sends. */
function patternHash(bytes: number): string {
  const chunk = Buffer.alloc(1 << 16, 'pharos-bulk-');
  const h = createHash('sha256');
  for (let left = bytes; left > 0; left -= chunk.length) h.update(chunk.subarray(0, Math.min(left, chunk.length)));
  return h.digest('hex');
}

const skip = privilegedUnavailable();
let lab: Lab;
let addon: NativeAddon;
let xdpBuild: LoadedDatapath;
let tcBuild: LoadedDatapath;
let liveness: NodeJS.Timeout | undefined;

t.before(async () => {
  if (skip) return;
  ({ lab, addon } = await withDatapathLab(t, 'phtc', PIN_DIR));
  await lab.addNamespace('cli');
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addNamespace('be');
  await lab.addLink({ ns: 'cli', ifname: 'eth0', addrs: ['198.18.0.1/24', '2001:db8::1/64'] }, { ns: 'lb', ifname: 'c0', addrs: ['198.18.0.2/24', '2001:db8::2/64'] });
  await lab.addLink({ ns: 'lb', ifname: 'b0', addrs: ['198.18.1.1/24', '2001:db8:1::1/64'] }, { ns: 'be', ifname: 'eth0', addrs: [`${BE4}/24`, `${BE6}/64`] });
  // The service addresses are on-link for the client: its kernel asks ARP/NDP, answered by the tc build.
  await lab.exec('cli', ['sh', '-c', 'ip route add 198.51.100.0/24 dev eth0 && ip -6 route add 2001:db8:100::/64 dev eth0']);
  await lab.exec('be', ['sh', '-c', 'ip route add default via 198.18.1.1 && ip -6 route add default via 2001:db8:1::1']);
  // What the agent sets where it attaches (loader.ts enableAcceptLocal); a router's rp_filter.
  await lab.exec('lb', ['sysctl', '-q', '-w', 'net.ipv4.conf.all.accept_local=1', 'net.ipv4.conf.c0.accept_local=1', 'net.ipv4.conf.b0.accept_local=1',
    'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.c0.rp_filter=0', 'net.ipv4.conf.b0.rp_filter=0']);
  await startEchoServer(lab, 'be', { name: 'be', port: 8080 });
  await startEchoServer(lab, 'be', { name: 'be', port: 5353, udp: true });
  const bulk = lab.spawn('be', [process.execPath, PEER, 'serve', '5001', '5002']);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bulk-peer did not start')), 5000);
    bulk.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) { clearTimeout(timer); resolve(); } });
  });

  const load = { addon, pinDir: PIN_DIR, sizes: { conntrack: 65536, frontends: 64, backends: 64 } };
  xdpBuild = loadDatapath(load);
  tcBuild = loadDatapath({ ...load, hook: 'tc' });
  const sync = new DatapathSync(addon, xdpBuild.maps);
  sync.readState();
  sync.setNodeConfig({ snatV4: '198.18.1.1', snatV6: '2001:db8:1::1', portMin: 40000, portMax: 49999 });
  const res = sync.apply([
    fe(VIP4, 80, 'TCP', be(BE4, 8080)),
    fe(VIP6, 80, 'TCP', be(BE6, 8080)),
    fe(VIP4, 53, 'UDP', be(BE4, 5353)),
    fe(VIP4, 5001, 'TCP', be(BE4, 5001)),
    fe(VIP4, 5002, 'TCP', be(BE4, 5002)),
    fe(VIP6, 5002, 'TCP', be(BE6, 5002)),
  ]);
  if (res.errors.length) throw new Error(JSON.stringify(res.errors));
  const lbNs = lab.nsPath('lb');
  for (const ifname of ['c0', 'b0']) {
    const r = attachIngress({ xdp: xdpBuild, tc: tcBuild }, ifname, { netns: lbNs, mode: 'tc' });
    if (r.mode !== 'tc') throw new Error(`${ifname} attached as ${r.mode}`);
    xdpBuild.attachTcEgress(ifname, { netns: lbNs });
  }
  const c0 = addon.ifIndex('c0', lbNs);
  const c0Mac = await lab.mac('lb', 'c0');
  sync.setResponder(VIP4, c0, c0Mac);
  sync.setResponder(VIP6, c0, c0Mac);
  sync.touchLiveness();
  liveness = setInterval(() => sync.touchLiveness(), 500);
});

t.teardown(() => {
  if (liveness) clearInterval(liveness);
  xdpBuild?.close();
  tcBuild?.close();
  if (!skip) removePins(PIN_DIR);
});

t.test('the tc build sits at tc ingress, no XDP program anywhere', { skip }, async (t) => {
  const lbNs = lab.nsPath('lb');
  for (const ifname of ['c0', 'b0']) {
    const ifindex = addon.ifIndex(ifname, lbNs);
    t.equal(addon.tcQuery(ifindex, 'ingress', { netns: lbNs }), tcBuild.xdp.id, `${ifname}: pharos_tc_ingress in the ingress slot`);
    t.equal(addon.xdpQuery(ifindex, lbNs).progId, 0, `${ifname}: no XDP`);
  }
  for (const ns of ['cli', 'be']) t.equal(addon.xdpQuery(addon.ifIndex('eth0', lab.nsPath(ns)), lab.nsPath(ns)).progId, 0, `${ns}: no helper XDP on the peer`);
});

t.test('ARP and NDP answered, HTTP over IPv4 and IPv6, UDP', { skip }, async (t) => {
  t.match(await waitFor('HTTP over IPv4', 10_000, () => httpGet(lab, 'cli', `http://${VIP4}/`)), /^be /);
  t.match(await waitFor('HTTP over IPv6', 10_000, () => httpGet(lab, 'cli', `http://[${VIP6}]/`)), /^be /);
  t.match(await udpQuery(lab, 'cli', VIP4, 53, 'ping'), /ping/);
  const c0Mac = await lab.mac('lb', 'c0');
  t.match((await lab.exec('cli', ['ip', 'neigh', 'show', VIP4])).stdout, c0Mac, 'the client kernel learned the VIP by ARP from the tc build');
  t.match((await lab.exec('cli', ['ip', '-6', 'neigh', 'show', VIP6])).stdout, c0Mac, 'and by NDP');
});

async function bulk(t: Test, host: string, what: string): Promise<void> {
  const want = `${BULK_BYTES} ${patternHash(BULK_BYTES)}`;
  if (!host.includes(':')) {
    const up = await lab.exec('cli', [process.execPath, PEER, 'up', host, '5001', String(BULK_BYTES)], { timeoutMs: 30_000, allowFail: true });
    t.equal(up.stdout.trim(), want, `${what}: 8 MiB client → backend, every byte (hash at the backend)`);
  }
  const down = await lab.exec('cli', [process.execPath, PEER, 'down', host, '5002', String(BULK_BYTES)], { timeoutMs: 30_000, allowFail: true });
  t.equal(down.stdout.trim(), want, `${what}: 8 MiB backend → client through reverse NAT`);
}

t.test('bulk TCP both ways, GSO skbs from senders with default offloads', { skip }, async (t) => {
  const before = readReasonCounters(xdpBuild.maps.stats);
  await bulk(t, VIP4, 'IPv4');
  await bulk(t, `${VIP6}`, 'IPv6');
  const after = readReasonCounters(xdpBuild.maps.stats);
  t.ok(after.fwd_redirect - before.fwd_redirect > 0n, 'forwarded by the program (redirect), not by the kernel');
  t.ok(after.rev_nat - before.rev_nat > 0n, 'replies reverse-NATed');
  t.equal(after.icmp_too_big - before.icmp_too_big, 0n, 'a GSO skb is not taken for an oversized packet');
});

t.test('checksums the tc build leaves are right when completed on egress', { skip }, async (t) => {
  // `tx off` on the LB's own interfaces: the kernel completes each partial
  // checksum in software from the field as the program left it, as a NIC
  // would; a wrong pseudo-header seed would be a wrong checksum on the wire
  // and the receiver would drop it.
  await lab.exec('lb', ['sh', '-c', 'ethtool -K b0 tx off >/dev/null && ethtool -K c0 tx off >/dev/null']);
  t.teardown(() => lab.exec('lb', ['sh', '-c', 'ethtool -K b0 tx on >/dev/null; ethtool -K c0 tx on >/dev/null'], { allowFail: true }));
  await bulk(t, VIP4, 'IPv4, tx off');
  await bulk(t, VIP6, 'IPv6, tx off');
  t.match(await httpGet(lab, 'cli', `http://${VIP4}/`), /^be /, 'new connections too');
});
