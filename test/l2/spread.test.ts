/**
 * 200 announced services over 3 LB nodes in Kubernetes mode: leases are
 * spread within ±20% of even, and the API write rate in steady state is the
 * node leases' alone (≤ 5 per node per second, none per service: a service
 * lease is written only when it changes hands), measured by the emulator's
 * own request log.
 */
import t from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { L2Lab, NAMESPACE, sleep, waitFor, LAB_PREFIX } from './l2-lab.js';

export const SERVICES = 200;

t.test('200 services over 3 nodes: spread and API writes', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await L2Lab.create(t, LAB_PREFIX, 3);
  await lab.bulkPolicy();
  await Promise.all(lab.nodes.map((n) => lab.startAgent(n)));
  await lab.bulkServices(SERVICES);
  const holders = await waitFor('every service lease held', 90_000, async () => {
    const leases = (await lab.api.list('leases', NAMESPACE)).filter((l: any) => l.metadata.name.startsWith('pharos-l2announce-') && l.spec?.holderIdentity);
    return leases.length === SERVICES ? leases.map((l: any) => l.spec.holderIdentity as string) : undefined;
  }, 500);
  const counts: Record<string, number> = {};
  for (const h of holders) counts[h] = (counts[h] ?? 0) + 1;
  t.comment(`leases per node: ${JSON.stringify(counts)}`);
  const even = SERVICES / lab.nodes.length;
  for (const n of lab.nodes) t.ok(Math.abs((counts[n] ?? 0) - even) <= even * 0.2, `${n} holds ${counts[n] ?? 0} (even ${even.toFixed(1)}, ±20%)`);

  // Steady state: node leases renewed every 250 ms; service leases held by them, not written.
  await sleep(5000);
  const windowMs = 10_000;
  await sleep(windowMs);
  const writes: Record<string, number> = await lab.api.call('writesSince', windowMs);
  const total = Object.values(writes).reduce((a, b) => a + b, 0);
  const perSecond = total / (windowMs / 1000);
  const budget = 5 * lab.nodes.length;
  t.comment(`API writes: ${perSecond.toFixed(1)}/s over ${windowMs / 1000} s (budget ${budget}/s): ${JSON.stringify(writes)}`);
  t.ok(perSecond <= budget, `${perSecond.toFixed(1)} writes/s within ${budget}/s`);
  const metrics = await lab.metrics('n1');
  t.match(metrics, /pharos_k8s_api_writes_total\{resource="leases",verb="update"\} \d+/, 'the agent counts its writes');
  const byName: Record<string, number> = await lab.api.call('writesSince', windowMs, true);
  const serviceLeaseWrites = Object.entries(byName).filter(([k]) => k.includes('pharos-l2announce-')).reduce((a, [, v]) => a + v, 0);
  t.equal(serviceLeaseWrites, 0, `no service lease written in steady state: ${JSON.stringify(byName)}`);
  t.match(metrics, /pharos_l2_announced \d+/);
  const st = await lab.state('n2');
  t.equal(st.l2.length, SERVICES, '`pharos l2 list` shows every service, local or not');
});
