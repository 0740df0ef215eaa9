/**
 * BGP side of a node drain (issue 18 item 7) against a real bird2: the agent
 * runs in manifests mode with its own Node object among the manifests.
 * Labelled lb.pharos.io/drain, it re-advertises its service route with the
 * GRACEFUL_SHUTDOWN community (65535:0) and its AS prepended once more (a
 * path bird ranks below an equal one from another node), then withdraws it
 * after --bgp-drain-withdraw-delay while the session stays up; unlabelled,
 * it advertises the plain route again at once. /v1/state and the metric say
 * where the drain is.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBgpAgentLab } from './support/agent-lab.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { BGP_SERVICE, bgpPoolAndPolicy } from '../support/manifests.js';

const ROUTE = '203.0.113.128/32';
const node = (labels: string): string => `apiVersion: v1
kind: Node
metadata: { name: lb-1, labels: { ${labels} } }
`;
const manifests = (labels: string): string => `${bgpPoolAndPolicy()}---\n${BGP_SERVICE}---\n${node(labels)}`;

t.test('a draining node sends GRACEFUL_SHUTDOWN and a longer path, then withdraws; undrained it advertises again', { skip: privilegedUnavailable() }, async (t) => {
  const WITHDRAW_S = 4;
  const { lab, bird, manifestsDir, diag, metric } = await startBgpAgentLab(t, {
    prefix: 'phdrb', manifests: manifests('role: lb'), env: { PHAROS_BGP_DRAIN_WITHDRAW_DELAY: String(WITHDRAW_S) },
  });
  const write = (labels: string): void => writeFileSync(join(manifestsDir, 'all.yaml'), manifests(labels));
  const state = async (): Promise<{ summary: { drain?: { reason: string; bgp?: { phase: string } } } }> =>
    JSON.parse((await lab.exec('lb', ['curl', '-sf', 'http://127.0.0.1:9643/v1/state'])).stdout);

  const plain = await waitFor('our route in bird', 40_000, () => bird.route(ROUTE)).catch(diag);
  t.same(plain.asPath, [64512], 'before: one AS in the path');
  t.notOk(plain.communities.includes('65535:0'), 'before: no GRACEFUL_SHUTDOWN');

  write(`role: lb, lb.pharos.io/drain: "true"`);
  const labelledAt = Date.now();
  const shut = await waitFor('the route with GRACEFUL_SHUTDOWN', 10_000, async () => {
    const r = await bird.route(ROUTE);
    return r?.communities.includes('65535:0') ? r : undefined;
  }, { everyMs: 100 }).catch(diag);
  t.same(shut.asPath, [64512, 64512], 'draining: our AS prepended once more (a worse path)');
  const st = await state();
  t.equal(st.summary.drain?.reason, 'label', '/v1/state: draining, labelled');
  t.equal(st.summary.drain?.bgp?.phase, 'shutdown', '/v1/state: in the GRACEFUL_SHUTDOWN phase');
  t.equal(await metric('pharos_node_draining'), 1, 'pharos_node_draining');

  await waitFor('the route withdrawn after the delay', 20_000, async () => ((await bird.route(ROUTE)) ? undefined : true), { everyMs: 100 }).catch(diag);
  const after = (Date.now() - labelledAt) / 1000;
  t.comment(`withdrawn ${after.toFixed(1)} s after the label (delay ${WITHDRAW_S} s)`);
  t.ok(after >= WITHDRAW_S - 0.5, `not before the delay (${after.toFixed(1)} s)`);
  t.ok(await bird.established('198.18.0.2'), 'the session stays up');
  t.equal((await state()).summary.drain?.bgp?.phase, 'withdrawn');

  write('role: lb');
  const back = await waitFor('the plain route back', 10_000, async () => {
    const r = await bird.route(ROUTE);
    return r && !r.communities.includes('65535:0') ? r : undefined;
  }, { everyMs: 100 }).catch(diag);
  t.same(back.asPath, [64512], 'undrained: the usual path');
  t.equal((await state()).summary.drain, undefined, '/v1/state: not draining');
});
