/**
 * BGP through the product: `pharos agent --manifests` with a BGPPeeringPolicy
 * advertises the address IPAM allocated to a real bird2 router; the route
 * follows the service (withdrawn when the service goes), and `pharos bgp
 * peers` / `routes` show the session and the route.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { withLab } from '../support/lab.js';
import { Bird } from '../../src/lab/bgp/routers.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';
import { BGP_SERVICE, bgpPoolAndPolicy } from '../support/manifests.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const HTTP = '127.0.0.1:9643';
const PIN_DIR = '/run/pharos/bpffs/pha-lb';

const POOL_AND_POLICY = bgpPoolAndPolicy([
  'advertisedPathAttributes:',
  '  - selectorType: Service',
  '    selector: { matchLabels: { bgp: "yes" } }',
  '    communities: { standard: ["64512:100"] }',
]);
const SERVICE = BGP_SERVICE;

t.test('the agent advertises its service addresses to a bird2 router', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'pha');
  const work = mkdtempSync(join(tmpdir(), 'pha-'));
  t.teardown(() => { rmSync(work, { recursive: true, force: true }); removePins(PIN_DIR); });
  removePins(PIN_DIR);
  await lab.addNamespace('router', { forwarding: true });
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'router', ifname: 'lb0', addrs: ['198.18.0.1/30'] }, { ns: 'lb', ifname: 'eth0', addrs: ['198.18.0.2/30'] });
  const bird = new Bird({ lab, ns: 'router', asn: 64500, routerId: '198.18.0.1', neighbors: [{ address: '198.18.0.2', asn: 64512, local: '198.18.0.1' }] });
  await bird.start();
  t.teardown(() => bird.stop());

  const dir = join(work, 'manifests');
  await lab.exec('lb', ['mkdir', '-p', dir]);
  writeFileSync(join(dir, 'policy.yaml'), POOL_AND_POLICY);
  writeFileSync(join(dir, 'service.yaml'), SERVICE);
  const agent = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'lb-1', '--interfaces', 'eth0',
    '--state-dir', join(work, 'state'), '--pin-dir', PIN_DIR, '--http', HTTP]);
  let log = '';
  agent.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  agent.stdout?.resume();
  t.teardown(() => { if (agent.exitCode === null) agent.kill('SIGKILL'); });

  await waitFor('Established', 30_000, async () => ((await bird.established('198.18.0.2')) ? true : undefined)).catch((e: Error) => {
    throw new Error(`${e.message}\nagent log:\n${log}\nbird log:\n${bird.log}`);
  });
  const route = await waitFor('the service route in bird', 15_000, () => bird.route('203.0.113.128/32'));
  t.equal(route.nextHop, '198.18.0.2', 'next hop is the LB node');
  t.same(route.asPath, [64512], 'eBGP: our AS prepended');
  t.same(route.communities, ['64512:100']);

  const pharos = async (args: string[]) => (await lab.exec('lb', [process.execPath, CLI, ...args, '--agent', `http://${HTTP}`])).stdout;
  t.match(await pharos(['bgp', 'peers']), /198\.18\.0\.1:179\s+64512\s+64500\s+Established/);
  t.match(await pharos(['bgp', 'routes']), /203\.0\.113\.128\/32\s+198\.18\.0\.2/);

  rmSync(join(dir, 'service.yaml'));
  await waitFor('the withdrawal', 15_000, async () => ((await bird.route('203.0.113.128/32')) ? undefined : true));
  t.pass('route withdrawn when the service went away');

  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  t.match(log, /BGP stopped gracefully/);
});
