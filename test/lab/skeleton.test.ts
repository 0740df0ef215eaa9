/**
 * The foundation chain end to end: build/bpf/lb.o compiled by the product,
 * loaded through the native addon, attached natively (XDP, plus tc egress)
 * to a veth, and real ARP/NDP, ping and TCP from one namespace reaching
 * another through it — with the data path's own counters moving.
 *
 *   cli  eth0 198.18.5.1, 2001:db8:5::1  ──veth──  eth0 198.18.5.2, 2001:db8:5::2  srv
 *                                                  [lb.o: XDP + tc egress]
 *                                                  VIPs 203.0.113.5, 2001:db8:ff::5 on lo
 *
 * The client reaches the VIPs on-link: the XDP responder answers ARP/NDP,
 * the kernel answers the ping, and TCP to VIP:80 is DNATed by XDP to the
 * local server on :8080 (the reply goes back through tc egress as VIP:80).
 */
import t from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { httpGet, startEchoServer, withDatapathLab, type Lab } from '../support/lab.js';
import type { NativeAddon } from '../../src/native/libbpf.js';
import { loadDatapath, removePins, type LoadedDatapath } from '../../src/datapath/loader.js';
import { DatapathSync, frontendKeyString } from '../../src/datapath/sync.js';
import { readReasonCounters, readTraffic, type ReasonCounters } from '../../src/datapath/stats.js';
import type { Frontend } from '../../src/model/types.js';

const skip = privilegedUnavailable();
const PIN_DIR = '/run/pharos/bpffs/phl-skeleton';
const CLI4 = '198.18.5.1';
const SRV4 = '198.18.5.2';
const CLI6 = '2001:db8:5::1';
const SRV6 = '2001:db8:5::2';
const VIP4 = '203.0.113.5';
const VIP6 = '2001:db8:ff::5';

function frontend(address: string, backend: string): Frontend {
  return {
    service: 'lab/skeleton', kind: 'LoadBalancer', address, port: 80, protocol: 'TCP',
    backends: [{ address: backend, port: 8080, weight: 1, state: 'active' }],
    sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [],
  };
}

let lab: Lab;
let addon: NativeAddon;
let dp: LoadedDatapath | undefined;
let sync: DatapathSync;
let liveness: NodeJS.Timeout | undefined;
let srvMac = '';

function delta(before: ReasonCounters, after: ReasonCounters): Partial<Record<keyof ReasonCounters, number>> {
  const out: Partial<Record<keyof ReasonCounters, number>> = {};
  for (const k of Object.keys(after) as Array<keyof ReasonCounters>) {
    const d = Number(after[k] - before[k]);
    if (d) out[k] = d;
  }
  return out;
}

function frontendTraffic(address: string): { packets: number; bytes: number } {
  const fe = sync.current().frontends.get(frontendKeyString({ address, port: 80, protocol: 'TCP' }));
  if (!fe) throw new Error(`frontend ${address}:80 not in the maps`);
  const tr = readTraffic(dp!.maps.frontendStats, [fe.id]).get(fe.id)!;
  return { packets: Number(tr.packets), bytes: Number(tr.bytes) };
}

t.before(async () => {
  if (skip) return;
  ({ lab, addon } = await withDatapathLab(t, 'phl5', PIN_DIR));
  await lab.addNamespace('cli');
  // An LB node forwards; with forwarding off bpf_fib_lookup answers FWD_DISABLED (LAB-FACTS).
  await lab.addNamespace('srv', { forwarding: true });
  await lab.addLink({ ns: 'cli', ifname: 'eth0', addrs: [`${CLI4}/24`, `${CLI6}/64`] }, { ns: 'srv', ifname: 'eth0', addrs: [`${SRV4}/24`, `${SRV6}/64`] });
  await lab.addAddrs('srv', 'lo', [`${VIP4}/32`, `${VIP6}/128`]);
  await lab.exec('cli', ['ip', 'route', 'add', `${VIP4}/32`, 'dev', 'eth0']);
  await lab.exec('cli', ['ip', '-6', 'route', 'add', `${VIP6}/128`, 'dev', 'eth0']);
  // ARP replies and NAs leave srv by XDP_TX: the receiving veth needs a native XDP program (LAB-FACTS).
  await lab.attachXdpPass('cli', 'eth0');
  // veth leaves TCP checksums partial, which XDP's incremental rewrite cannot complete (datapath lab test).
  await lab.exec('cli', ['ethtool', '-K', 'eth0', 'tx', 'off']);
  await startEchoServer(lab, 'srv', { name: 'srv', port: 8080 });
  srvMac = await lab.mac('srv', 'eth0');

  dp = loadDatapath({ addon, pinDir: PIN_DIR, sizes: { conntrack: 4096, frontends: 16, backends: 16 } });
  sync = new DatapathSync(addon, dp.maps);
  sync.readState();
  const netns = lab.nsPath('srv');
  const attached = dp.attachXdp('eth0', { netns });
  if (attached.mode !== 'native') throw new Error(`XDP attached in ${attached.mode} mode, expected native`);
  dp.attachTcEgress('eth0', { netns });
  sync.setNodeConfig({ snatV4: SRV4, snatV6: SRV6, portMin: 40000, portMax: 40999 });
  sync.setLocalAddresses([SRV4, SRV6]); // the backends are this namespace's own servers
  const ifindex = addon.ifIndex('eth0', netns);
  sync.setResponder(VIP4, ifindex, srvMac);
  sync.setResponder(VIP6, ifindex, srvMac);
  sync.touchLiveness();
  liveness = setInterval(() => sync.touchLiveness(), 500);
  const r = sync.apply([frontend(VIP4, SRV4), frontend(VIP6, SRV6)]);
  if (r.errors.length) throw new Error(`sync errors: ${JSON.stringify(r.errors)}`);
});

t.teardown(() => {
  if (liveness) clearInterval(liveness);
  dp?.close();
  removePins(PIN_DIR);
});

t.test('lb.o is attached natively to the server interface', { skip }, async (t) => {
  const q = addon.xdpQuery(addon.ifIndex('eth0', lab.nsPath('srv')), lab.nsPath('srv'));
  t.equal(q.mode, 'native');
  t.equal(q.progId, dp!.xdp.id, 'the loaded pharos_xdp program is the one attached');
  t.ok(dp!.object.mapNames().includes('ph_stats'), 'object has the stats map');
});

t.test('ping over IPv4 and IPv6: neighbours answered by XDP, echo by the kernel', { skip }, async (t) => {
  const before = readReasonCounters(dp!.maps.stats);
  const ping4 = await lab.exec('cli', ['ping', '-c', '3', '-i', '0.2', '-W', '2', VIP4]);
  t.match(ping4.stdout, /3 received/);
  const ping6 = await lab.exec('cli', ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', VIP6]);
  t.match(ping6.stdout, /3 received/);
  const d = delta(before, readReasonCounters(dp!.maps.stats));
  t.ok((d.arp_reply ?? 0) >= 1, `ARP request for the VIP answered by XDP (arp_reply +${d.arp_reply ?? 0})`);
  t.ok((d.na_reply ?? 0) >= 1, `NS for the VIP answered by XDP (na_reply +${d.na_reply ?? 0})`);
  const neigh = await lab.exec('cli', ['ip', '-j', 'neigh', 'show', 'dev', 'eth0']);
  const entries = JSON.parse(neigh.stdout) as Array<{ dst: string; lladdr?: string }>;
  t.equal(entries.find((e) => e.dst === VIP4)?.lladdr, srvMac, 'client learned the VIP at the server MAC');
  t.equal(entries.find((e) => e.dst === VIP6)?.lladdr, srvMac, 'client learned the IPv6 VIP at the server MAC');
  t.notOk(d.malformed_l2 ?? d.malformed_l3 ?? d.malformed_l4, 'no packet counted malformed');
});

for (const [family, vip, client] of [['IPv4', VIP4, CLI4], ['IPv6', VIP6, CLI6]] as const) {
  t.test(`TCP over ${family} to VIP:80 reaches the server on :8080 through XDP, counters move`, { skip }, async (t) => {
    const before = readReasonCounters(dp!.maps.stats);
    const feBefore = frontendTraffic(vip);
    const url = family === 'IPv4' ? `http://${vip}/` : `http://[${vip}]/`;
    const rounds = 3;
    for (let i = 0; i < rounds; i++) {
      t.equal(await httpGet(lab, 'cli', url, { timeoutMs: 3000 }), `srv ${client}`, `request ${i + 1}: served, client address kept`);
    }
    const d = delta(before, readReasonCounters(dp!.maps.stats));
    const fe = frontendTraffic(vip);
    t.equal(d.ct_create, rounds, `one conntrack entry per connection (ct_create +${d.ct_create ?? 0})`);
    // Each connection: SYN, ACK, request, FIN, ACK at least.
    t.ok((d.local_backend ?? 0) >= rounds * 4, `client packets DNATed to the local backend (local_backend +${d.local_backend ?? 0})`);
    t.ok((d.tc_rev_nat ?? 0) >= rounds * 3, `replies rewritten back to VIP:80 by tc egress (tc_rev_nat +${d.tc_rev_nat ?? 0})`);
    t.ok(fe.packets - feBefore.packets >= rounds * 4, `frontend packets +${fe.packets - feBefore.packets}`);
    t.ok(fe.bytes - feBefore.bytes >= (fe.packets - feBefore.packets) * 40, `frontend bytes +${fe.bytes - feBefore.bytes}`);
  });
}

t.test('without the program, VIP:80 is not served (the XDP DNAT was doing it)', { skip }, async (t) => {
  const netns = lab.nsPath('srv');
  dp!.detach('eth0', { netns });
  t.equal(addon.xdpQuery(addon.ifIndex('eth0', netns), netns).mode, 'none');
  const before = readReasonCounters(dp!.maps.stats);
  // Nothing listens on :80; the kernel resets the connection.
  await t.rejects(httpGet(lab, 'cli', `http://${VIP4}/`, { timeoutMs: 2000 }));
  t.same(delta(before, readReasonCounters(dp!.maps.stats)), {}, 'no counter moves');
  t.equal(await httpGet(lab, 'cli', `http://${VIP4}:8080/`), `srv ${CLI4}`, 'the server itself is still reachable');
});
