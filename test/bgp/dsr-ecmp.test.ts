/**
 * Issue 20: with DSR, established connections survive a BGP ECMP path
 * being withdrawn. Two LB nodes (the pharos data path, same hash seed and
 * Maglev table) advertise the VIP to a multipath bird2 router; the router
 * spreads 24 long-lived keep-alive connections over both. Then node b's
 * route is withdrawn (its speaker stops advertising): the router sends b's
 * flows to node a, which has never seen them — with DSR it picks the same
 * backend from the same table and the flows go on; with SNAT (the
 * contrast) the backend has the connection under b's address and a's new
 * NAT entry is a stranger to it, so b's flows break.
 *
 * The lab is src/lab/ecmp-lab.ts; the backends hold the VIP on lo
 * (ARP-silent) and answer the client through node a's kernel (their route
 * to the client network), which is not the path withdrawn.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { privilegedUnavailable } from '../support/privileged.js';
import { withLab, type Lab } from '../support/lab.js';
import { ADDON_PATH, loadAddon } from '../../src/native/libbpf.js';
import { removePins } from '../../src/datapath/loader.js';
import { readReasonCounters } from '../../src/datapath/stats.js';
import type { Frontend } from '../../src/model/types.js';
import { startLongFlows, type LongFlowsReport } from '../../src/lab/flows.js';
import { routerNextHops } from '../../src/lab/topology.js';
import { buildEcmpLab, ecmpBackend, ecmpNodes, ecmpPeer, startEcmpBgp, startEcmpDatapath, stopEcmpDatapath, type EcmpNode } from '../../src/lab/ecmp-lab.js';
import type { SpeakerProcess } from '../../src/lab/bgp/speaker-process.js';
import { sleep, waitFor } from '../support/wait.js';

const DSR_VIP = '203.0.113.110';
const SNAT_VIP = '203.0.113.111';
const PORT = 8080;
const HASH_SEED = 0x5eed1234;
const BACKENDS = [1, 2];
const CONNECTIONS = 24;
const RUN_MS = 12_000;
const WITHDRAW_AFTER_MS = 4_000;

function frontend(vip: string, dsr: boolean): Frontend {
  return {
    service: `lab/${dsr ? 'dsr' : 'snat'}`, kind: 'LoadBalancer', address: vip, port: PORT, protocol: 'TCP',
    backends: BACKENDS.map((i) => ({ address: ecmpBackend(i), port: PORT, weight: 1, state: 'active' as const })),
    sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [],
    ...(dsr ? { forwardingMode: 'dsr' as const } : {}),
  };
}

const NODES = ecmpNodes().map((n) => ({ ...n, speaker: undefined as SpeakerProcess | undefined }));
const pinDir = (n: EcmpNode): string => `/run/pharos/bpffs/phgd-${n.name}`;
const skip = privilegedUnavailable() || (!existsSync(ADDON_PATH) && 'native addon not built (npm run build:native)');

t.test('an ECMP path withdrawn: DSR flows move to the other node and go on; SNAT ones break', { skip }, async (t) => {
  const lab: Lab = await withLab(t, 'phgd');
  const addon = loadAddon();
  for (const n of NODES) removePins(pinDir(n));
  t.teardown(() => { for (const n of NODES) stopEcmpDatapath(n, pinDir(n)); });
  await buildEcmpLab(lab, NODES, BACKENDS);
  const [a, b] = NODES as [typeof NODES[0], typeof NODES[0]];
  for (const i of BACKENDS) {
    const be = `be${i}`;
    await lab.exec(be, ['sysctl', '-q', '-w', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2', 'net.ipv4.conf.eth0.arp_ignore=1', 'net.ipv4.conf.eth0.arp_announce=2']);
    await lab.exec(be, ['ip', 'addr', 'add', `${DSR_VIP}/32`, 'dev', 'lo']);
    await lab.exec(be, ['ip', 'route', 'add', '198.18.0.0/24', 'via', a.snat]);
  }
  for (const n of NODES) await startEcmpDatapath(lab, addon, n, { pinDir: pinDir(n), hashSeed: HASH_SEED, frontends: [frontend(DSR_VIP, true), frontend(SNAT_VIP, false)] });

  const { speakers } = await startEcmpBgp(lab, NODES, { teardown: (stop) => t.teardown(stop) });
  const advertise = async (n: typeof NODES[0], vips: string[]): Promise<void> => {
    const peer = ecmpPeer(n, vips[0] ?? DSR_VIP, { holdTimeSeconds: 9 });
    await n.speaker!.apply({ peers: [{ ...peer, routes: vips.map((v) => ({ prefix: `${v}/32`, communities: [], largeCommunities: [] })) }] });
  };
  for (const [i, n] of NODES.entries()) n.speaker = speakers[i];
  const both = NODES.map((n) => n.uplink).sort();

  /** Long-lived flows to `vip`; node b stops advertising it mid-run. */
  const withdrawDuring = async (vip: string): Promise<{ report: LongFlowsReport; viaB: bigint }> => {
    for (const n of NODES) await advertise(n, [vip]);
    await waitFor(`${vip} routed over both nodes`, 20_000, async () => (JSON.stringify(await routerNextHops(lab, vip)) === JSON.stringify(both) ? true : undefined), { everyMs: 100 });
    const countB = (): bigint => { const c = readReasonCounters(b.dp!.maps.stats); return c.dsr_l2 + c.ct_create + c.ct_hit; };
    const flows = startLongFlows(lab, 'cli', { host: vip, port: PORT, connections: CONNECTIONS, intervalMs: 50, durationMs: RUN_MS });
    const bBefore = countB();
    await sleep(WITHDRAW_AFTER_MS);
    const viaB = countB() - bBefore;
    await advertise(b, []);
    await waitFor(`${vip} routed over node a alone`, 10_000, async () => (JSON.stringify(await routerNextHops(lab, vip)) === JSON.stringify([a.uplink]) ? true : undefined), { everyMs: 50 });
    return { report: await flows.report, viaB };
  };

  await t.test('DSR: the flows node b carried go on through node a', async (t) => {
    const { report, viaB } = await withdrawDuring(DSR_VIP);
    t.comment(`DSR: node b carried ${viaB} packets before the withdrawal; ${report.requests} answers, longest wait ${report.longestWaitMs} ms`);
    t.ok(viaB > 0n, 'node b carried some of the flows before its path went');
    t.same(report.broken, [], 'no connection reset or closed');
    t.equal(report.stalled, 0, 'none left waiting');
    t.equal(report.open, CONNECTIONS);
    t.same(report.peers, ['198.18.0.1'], "the backends saw the client's own address");
  });

  await t.test('SNAT (the contrast): the flows node b carried break', async (t) => {
    const { report, viaB } = await withdrawDuring(SNAT_VIP);
    t.comment(`SNAT: node b carried ${viaB} packets before; ${report.broken.length} broken, ${report.stalled} stalled`);
    t.ok(viaB > 0n, 'node b carried some of the flows');
    t.ok(report.broken.length + report.stalled > 0, "b's flows through node a are strangers to the backends");
    t.ok(report.broken.length + report.stalled < CONNECTIONS, "node a's own flows go on");
  });
});
