/**
 * Issue 20: with DSR, established connections survive the loss of their LB
 * node, because no LB node keeps per-flow state — the node that takes the
 * address over picks the same backend (same Maglev table) for the next
 * packet of a flow it has never seen. Two LB nodes run the agent in
 * Kubernetes mode (leases), the client and the backend share their
 * segment; the backend holds the DSR address on lo (ARP-silent), as L2
 * dispatch needs. 20 keep-alive connections send a request every 50 ms
 * while the holder's announcing link goes down and the other node takes
 * the address: none may break or stall, and the backend must see the
 * client's own address. The same fault on a SNAT service breaks its
 * connections (the new node has no NAT entry for them): the contrast shows
 * the test can fail.
 */
import t from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { startLongFlows, type LongFlowsReport } from '../../src/lab/flows.js';
import { CLIENT, L2Lab, sleep, waitFor } from '../../src/lab/l2-lab.js';

const PORT = 8080;
const CONNECTIONS = 20;
const INTERVAL_MS = 50;
const RUN_MS = 14_000;
const FAULT_AFTER_MS = 4_000;

t.test('DSR connections survive an L2 takeover; SNAT ones do not', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await L2Lab.create(t, 'phdt', 2);
  await lab.basePolicy();
  // Both listen where the backend does (DSR delivers to the service's own port).
  await lab.service('dsr', { port: PORT, annotations: { 'lb.pharos.io/forwarding-mode': 'dsr' } });
  await lab.service('snat', { port: PORT });
  await lab.startAgent('n1');
  await lab.startAgent('n2');

  const vipOf = async (service: string): Promise<string> => waitFor(`an address for default/${service}`, 20_000, async () => (await lab.vips(service)).find((a) => !a.includes(':')));
  const dsrVip = await vipOf('dsr');
  const snatVip = await vipOf('snat');
  // The backend side of L2 dispatch: the service address on lo, never answered for by ARP.
  await lab.lab.exec('backend', ['sysctl', '-q', '-w', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2', 'net.ipv4.conf.eth0.arp_ignore=1', 'net.ipv4.conf.eth0.arp_announce=2']);
  await lab.lab.exec('backend', ['ip', 'addr', 'add', `${dsrVip}/32`, 'dev', 'lo']);

  for (const vip of [dsrVip, snatVip]) {
    await waitFor(`an answer from ${vip}`, 20_000, async () => {
      const r = await lab.lab.exec('client', ['curl', '-sS', '--max-time', '1', `http://${vip}:${PORT}/`], { allowFail: true });
      return r.code === 0 && r.stdout.startsWith('backend ') ? true : undefined;
    });
  }

  /** Long-lived flows to `vip` while its holder's link goes down; resolves with the flows' report, holders before and after. */
  const takeover = async (vip: string): Promise<{ report: LongFlowsReport; from: string; to: string }> => {
    const from = (await waitFor(`a holder of ${vip}`, 10_000, () => lab.holderOf(vip)))!;
    const to = from === 'n1' ? 'n2' : 'n1';
    const flows = startLongFlows(lab.lab, 'client', { host: vip, port: PORT, connections: CONNECTIONS, intervalMs: INTERVAL_MS, durationMs: RUN_MS });
    await sleep(FAULT_AFTER_MS);
    await lab.lab.exec(from, ['ip', 'link', 'set', 'eth0', 'down']);
    await waitFor(`${to} to take ${vip} over`, 8_000, async () => ((await lab.holderOf(vip)) === to ? true : undefined), 50);
    const report = await flows.report;
    await lab.lab.exec(from, ['ip', 'link', 'set', 'eth0', 'up']);
    return { report, from, to };
  };

  await t.test('DSR: every connection survives the takeover, and the backend sees the client', async (t) => {
    const { report, from, to } = await takeover(dsrVip);
    t.comment(`DSR ${from} -> ${to}: ${report.requests} answers, longest wait ${report.longestWaitMs} ms`);
    t.same(report.broken, [], 'no connection reset or closed');
    t.equal(report.open, CONNECTIONS, 'every connection still open');
    t.equal(report.stalled, 0, 'none left waiting');
    t.same(report.peers, [CLIENT.v4], "the backend saw the client's own address");
    t.ok(report.requests > CONNECTIONS * 50, 'traffic flowed before and after the fault');
  });

  await t.test('SNAT (the contrast): the same fault breaks established connections', async (t) => {
    const { report, from, to } = await takeover(snatVip);
    t.comment(`SNAT ${from} -> ${to}: ${report.broken.length} broken, ${report.stalled} stalled, ${report.requests} answers`);
    t.ok(report.broken.length + report.stalled > 0, 'connections through the lost node break or stall: the new node has no NAT entry for them');
    t.notSame(report.peers, [CLIENT.v4], 'the backend saw the LB node, not the client');
  });
});
