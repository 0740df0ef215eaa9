/**
 * BGP through the product: `pharos agent --manifests` with a BGPPeeringPolicy
 * advertises the address IPAM allocated to a real bird2 router; the route
 * follows the service (withdrawn when the service goes), and `pharos bgp
 * peers` / `routes` show the session and the route.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { startBgpAgentLab } from '../bgp/support/agent-lab.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { BGP_SERVICE, bgpPoolAndPolicy } from '../support/manifests.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const HTTP = '127.0.0.1:9643';

const POOL_AND_POLICY = bgpPoolAndPolicy([
  'advertisedPathAttributes:',
  '  - selectorType: Service',
  '    selector: { matchLabels: { bgp: "yes" } }',
  '    communities: { standard: ["64512:100"] }',
]);
const SERVICE = BGP_SERVICE;

t.test('the agent advertises its service addresses to a bird2 router', { skip: privilegedUnavailable() }, async (t) => {
  const { lab, bird, agent, manifestsDir, log, diag } = await startBgpAgentLab(t, { prefix: 'pha', manifests: `${POOL_AND_POLICY}---\n${SERVICE}` });

  await waitFor('Established', 30_000, async () => ((await bird.established('198.18.0.2')) ? true : undefined)).catch(diag);
  const route = await waitFor('the service route in bird', 15_000, () => bird.route('203.0.113.128/32'));
  t.equal(route.nextHop, '198.18.0.2', 'next hop is the LB node');
  t.same(route.asPath, [64512], 'eBGP: our AS prepended');
  t.same(route.communities, ['64512:100']);

  const pharos = async (args: string[]) => (await lab.exec('lb', [process.execPath, CLI, ...args, '--agent', `http://${HTTP}`])).stdout;
  t.match(await pharos(['bgp', 'peers']), /198\.18\.0\.1:179\s+64512\s+64500\s+Established/);
  t.match(await pharos(['bgp', 'routes']), /203\.0\.113\.128\/32\s+198\.18\.0\.2/);

  writeFileSync(join(manifestsDir, 'all.yaml'), POOL_AND_POLICY);
  await waitFor('the withdrawal', 15_000, async () => ((await bird.route('203.0.113.128/32')) ? undefined : true));
  t.pass('route withdrawn when the service went away');

  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  t.match(log(), /BGP stopped gracefully/);
});
