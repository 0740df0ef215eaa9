/**
 * BFD through a stall of the agent's main thread. A start or restart at
 * 10,000 services blocks the agent's event loop for 0.5-1 s (bench/scale,
 * pharos_event_loop_delay_max_seconds), longer than BFD's default detection
 * time (300 ms x 3). The agent (started with PHAROS_TEST_STALL_MS, see
 * src/cli/agent.ts) is made to busy-loop its main thread for 2 s while BFD
 * with bird2 is Up: bird's session must stay Up, BGP Established and our
 * route in bird, and the agent must count no BFD transition — BFD runs off
 * the main thread (src/bgp/bfd-service.ts).
 */
import t from 'tap';
import { startBgpAgentLab } from './support/agent-lab.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { BGP_SERVICE, bgpPoolAndPolicy } from '../support/manifests.js';

const STALL_MS = 2_000;
const ROUTE = '203.0.113.128/32';

t.test('agent: a 2 s main-thread stall does not take BFD (300 ms x 3) or BGP down', { skip: privilegedUnavailable() }, async (t) => {
  // The defaults (MetalLB's, and pharos'): bird declares us down after 900 ms of silence.
  const { bird, agent, log, diag, peer } = await startBgpAgentLab(t, {
    prefix: 'phbws', bfd: { minRxMs: 300, minTxMs: 300, multiplier: 3 }, env: { PHAROS_TEST_STALL_MS: String(STALL_MS) },
    manifests: `${bgpPoolAndPolicy(['bfd: { receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3 }'])}---\n${BGP_SERVICE}`,
  });

  await waitFor('BGP Established and BFD Up in bird', 30_000, async () =>
    (await bird.established('198.18.0.2')) && /^up$/i.test((await bird.bfdState('198.18.0.2')) ?? ''), { everyMs: 200 }).catch(diag);
  const before = await waitFor('BFD Up at 300 ms in /v1/state', 10_000, async () => {
    const p = await peer();
    return p?.bfd?.state === 'Up' && p.bfd.txIntervalMs === 300 && p.state === 'Established' ? p : undefined;
  }).catch(diag);
  t.ok(await bird.route(ROUTE), 'our service route is in bird');

  // The stall: the agent's main thread busy-loops for STALL_MS from the signal on.
  agent.kill('SIGUSR2');
  await waitFor('the agent to log the stall', 5_000, async () => log().includes('test stall: blocking the main thread') || undefined, { everyMs: 20 }).catch(diag);
  // Through the stall and a while after it (a flap would show as Down/Init, then BGP reconnecting).
  const seen: string[] = [];
  const bgpSeen: string[] = [];
  const end = Date.now() + STALL_MS + 1_500;
  while (Date.now() < end) {
    const state = (await bird.bfdState('198.18.0.2')) ?? 'none';
    if (seen.at(-1) !== state) seen.push(state);
    const bgp = (await bird.established('198.18.0.2')) ? 'Established' : 'not established';
    if (bgpSeen.at(-1) !== bgp) bgpSeen.push(bgp);
    await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(log().includes('test stall over'), 'the stall happened and ended');
  t.same(seen.map((s) => s.toLowerCase()), ['up'], `bird's BFD session stayed Up through the stall (seen: ${seen.join(' -> ')})`);
  t.same(bgpSeen, ['Established'], `bird kept the BGP session (seen: ${bgpSeen.join(' -> ')})`);
  t.ok(await bird.route(ROUTE), 'bird kept our route');
  const after = await peer();
  t.equal(after?.bfd?.state, 'Up', 'the agent\'s BFD session is Up');
  t.equal(after?.bfd?.transitions, before.bfd!.transitions, 'no BFD transition on the agent\'s side');
  t.equal(after?.bfd?.bgpDrops, 0, 'BFD dropped no BGP session');
  t.equal(after?.state, 'Established');
});
