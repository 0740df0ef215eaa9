/**
 * BFD through the agent: `pharos agent --manifests` with a BGPPeeringPolicy
 * whose neighbor has a `bfd` block, against bird2 with `bfd on`. What an
 * operator sees: the session Up in `/v1/state`, in `pharos bgp peers` and
 * in the metrics; then the router's BFD packets are dropped on the agent's
 * side (an nftables rule in the agent's namespace only), so the agent's
 * own detection fires: its BGP session goes down at once (Cease/BFD Down,
 * counted), the state says why, and once the packets flow again BFD and
 * BGP come back by themselves.
 */
import t from 'tap';
import { startBgpAgentLab } from './support/agent-lab.js';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { run } from '../support/lab.js';
import { waitFor } from '../support/wait.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { BGP_SERVICE, bgpPoolAndPolicy } from '../support/manifests.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const DROP_BFD = 'table inet phbfd_drop {\n chain input {\n  type filter hook input priority 0; policy accept;\n  udp dport 3784 drop;\n }\n}\n';

t.test('agent: BFD state in /v1/state, pharos bgp peers and metrics; its own detection drops BGP', { skip: privilegedUnavailable() }, async (t) => {
  const { lab, bird, log, diag, peer, metric } = await startBgpAgentLab(t, {
    prefix: 'phbfda', bfd: { minRxMs: 200, minTxMs: 200, multiplier: 3 },
    manifests: `${bgpPoolAndPolicy(['bfd: { receiveInterval: 200, transmitInterval: 200, detectMultiplier: 3 }'])}---\n${BGP_SERVICE}`,
  });

  await waitFor('BGP Established and BFD Up in bird', 30_000, async () =>
    (await bird.established('198.18.0.2')) && /^up$/i.test((await bird.bfdState('198.18.0.2')) ?? ''), { everyMs: 200 }).catch(diag);
  const up = await waitFor('BFD Up in /v1/state', 10_000, async () => {
    const p = await peer();
    return p?.bfd?.state === 'Up' && p.bfd.txIntervalMs === 200 ? p : undefined;
  }).catch(diag);
  t.equal(up.state, 'Established');
  t.equal(up.bfd!.detectionTimeMs, 600, 'detection time: bird multiplier 3 x 200 ms');
  t.ok(up.bfd!.localDiscriminator > 0 && up.bfd!.remoteDiscriminator > 0, 'both discriminators known');
  t.ok(await bird.route('203.0.113.128/32'), 'our service route is in bird');
  const table = await lab.exec('lb', [process.execPath, CLI, 'bgp', 'peers']);
  t.match(table.stdout, /\bBFD\b/, 'pharos bgp peers has a BFD column');
  t.match(table.stdout, /Up 200ms, detect 600ms/, `pharos bgp peers shows the session Up:\n${table.stdout}`);
  // /metrics may hand out a result computed moments ago (src/metrics/single-flight.ts): poll for the value.
  const metricBecomes = (name: string, ok: (v: number) => boolean): Promise<number> =>
    waitFor(`${name} to follow`, 10_000, async () => {
      const v = await metric(name);
      return ok(v) ? { v } : undefined;
    }).then((x) => x.v).catch(diag);
  t.equal(await metricBecomes('pharos_bfd_session_up', (v) => v === 1), 1, 'pharos_bfd_session_up 1');
  t.equal(await metricBecomes('pharos_bfd_detection_time_seconds', (v) => v === 0.6), 0.6);
  const transitionsBefore = await metric('pharos_bfd_session_transitions_total');
  t.ok(transitionsBefore >= 1, `transitions counted (${transitionsBefore})`);

  // bird's packets stop reaching the agent: the agent declares the session down itself.
  await lab.exec('lb', ['nft', '-f', '-'], { input: DROP_BFD });
  let dropped = true;
  t.teardown(async () => { if (dropped) await run(['ip', 'netns', 'exec', lab.ns('lb'), 'nft', 'delete', 'table', 'inet', 'phbfd_drop'], { allowFail: true }); });
  const down = await waitFor('BFD Down and BGP dropped in /v1/state', 5_000, async () => {
    const p = await peer();
    return p?.bfd?.state === 'Down' && p.state !== 'Established' ? p : undefined;
  }, { everyMs: 50 }).catch(diag);
  t.equal(down.bfd!.diagnostic, 'Control Detection Time Expired');
  t.ok(down.bfd!.bgpDrops >= 1, 'the BGP session was dropped because of BFD');
  t.match(down.lastError ?? '', /cease \/ BFD down: BFD session down \(Control Detection Time Expired\)/, `last error names BFD: ${down.lastError}`);
  t.equal(await metricBecomes('pharos_bfd_session_up', (v) => v === 0), 0, 'pharos_bfd_session_up 0');
  t.ok((await metricBecomes('pharos_bgp_bfd_down_total', (v) => v >= 1)) >= 1, 'pharos_bgp_bfd_down_total counted');
  t.ok((await metricBecomes('pharos_bfd_session_transitions_total', (v) => v > transitionsBefore)) > transitionsBefore, 'transition counted');
  t.match((await lab.exec('lb', [process.execPath, CLI, 'bgp', 'peers'])).stdout, /Down \(Control Detection Time Expired\)/);
  t.match(log(), /BFD session down: dropping the BGP session/, 'logged');

  await lab.exec('lb', ['nft', 'delete', 'table', 'inet', 'phbfd_drop']);
  dropped = false;
  await waitFor('BFD Up and BGP Established again', 30_000, async () => {
    const p = await peer();
    return p?.bfd?.state === 'Up' && p.state === 'Established' ? true : undefined;
  }).catch(diag);
  await waitFor('the route back in bird', 10_000, () => bird.route('203.0.113.128/32')).catch(diag);
  t.pass('BFD and BGP came back by themselves; the route is in bird again');
});
