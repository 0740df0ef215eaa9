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
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { withLab } from '../support/lab.js';
import { waitFor } from '../support/wait.js';
import { Bird } from './routers.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';
import { BGP_SERVICE, bgpPoolAndPolicy } from '../support/manifests.js';
import type { BgpPeerView } from '../../src/metrics/state-view.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const PIN_DIR = '/run/pharos/bpffs/phbws-lb';
const STALL_MS = 2_000;
const ROUTE = '203.0.113.128/32';

t.test('agent: a 2 s main-thread stall does not take BFD (300 ms x 3) or BGP down', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'phbws');
  const work = mkdtempSync(join(tmpdir(), 'phbws-'));
  t.teardown(() => { rmSync(work, { recursive: true, force: true }); removePins(PIN_DIR); });
  removePins(PIN_DIR);
  await lab.addNamespace('router', { forwarding: true });
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'router', ifname: 'lb0', addrs: ['198.18.0.1/30'] }, { ns: 'lb', ifname: 'eth0', addrs: ['198.18.0.2/30'] });
  await lab.attachXdpPass('router', 'lb0');
  // The defaults (MetalLB's, and pharos'): bird declares us down after 900 ms of silence.
  const bfd = { minRxMs: 300, minTxMs: 300, multiplier: 3 };
  const bird = new Bird({ lab, ns: 'router', asn: 64500, routerId: '198.18.0.1', neighbors: [{ address: '198.18.0.2', asn: 64512, local: '198.18.0.1', bfd }] });
  await bird.start();
  t.teardown(() => bird.stop());
  const dir = join(work, 'manifests');
  await lab.exec('lb', ['mkdir', '-p', dir]);
  writeFileSync(join(dir, 'all.yaml'), `${bgpPoolAndPolicy(['bfd: { receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3 }'])}---\n${BGP_SERVICE}`);
  const agent = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'lb-1', '--interfaces', 'eth0',
    '--state-dir', join(work, 'state'), '--pin-dir', PIN_DIR, '--http', '127.0.0.1:9643'], { env: { PHAROS_TEST_STALL_MS: String(STALL_MS) } });
  let log = '';
  agent.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  agent.stdout?.on('data', (d: Buffer) => { log += d.toString(); });
  t.teardown(() => { if (agent.exitCode === null) agent.kill('SIGKILL'); });
  const diag = (e: Error): never => { throw new Error(`${e.message}\nagent:\n${log.slice(-3000)}\nbird:\n${bird.log.slice(-2000)}`); };
  const peer = async (): Promise<BgpPeerView | undefined> => {
    const r = await lab.exec('lb', ['curl', '-sf', 'http://127.0.0.1:9643/v1/state'], { allowFail: true });
    return r.code === 0 ? (JSON.parse(r.stdout) as { bgp: { peers: BgpPeerView[] } }).bgp.peers[0] : undefined;
  };

  await waitFor('BGP Established and BFD Up in bird', 30_000, async () =>
    (await bird.established('198.18.0.2')) && /^up$/i.test((await bird.bfdState('198.18.0.2')) ?? ''), { everyMs: 200 }).catch(diag);
  const before = await waitFor('BFD Up at 300 ms in /v1/state', 10_000, async () => {
    const p = await peer();
    return p?.bfd?.state === 'Up' && p.bfd.txIntervalMs === 300 && p.state === 'Established' ? p : undefined;
  }).catch(diag);
  t.ok(await bird.route(ROUTE), 'our service route is in bird');

  // The stall: the agent's main thread busy-loops for STALL_MS from the signal on.
  agent.kill('SIGUSR2');
  await waitFor('the agent to log the stall', 5_000, async () => log.includes('test stall: blocking the main thread') || undefined, { everyMs: 20 }).catch(diag);
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
  t.ok(log.includes('test stall over'), 'the stall happened and ended');
  t.same(seen.map((s) => s.toLowerCase()), ['up'], `bird's BFD session stayed Up through the stall (seen: ${seen.join(' -> ')})`);
  t.same(bgpSeen, ['Established'], `bird kept the BGP session (seen: ${bgpSeen.join(' -> ')})`);
  t.ok(await bird.route(ROUTE), 'bird kept our route');
  const after = await peer();
  t.equal(after?.bfd?.state, 'Up', 'the agent\'s BFD session is Up');
  t.equal(after?.bfd?.transitions, before.bfd!.transitions, 'no BFD transition on the agent\'s side');
  t.equal(after?.bfd?.bgpDrops, 0, 'BFD dropped no BGP session');
  t.equal(after?.state, 'Established');
});
