/**
 * NDP on real NICs (src/l2/ndp-groups.ts): the node joins the
 * solicited-node multicast group of each IPv6 address it answers, on the
 * interface it answers on (`ip maddr` shows it: what a NIC's multicast
 * filter and a snooping switch act on), a neighbour solicitation sent to
 * that group is answered, and the group is left when the address is
 * withdrawn. veth passes every frame, so the answer alone would prove
 * nothing: the membership is the check. The same agent shows two start-up
 * lines: the port picked for `--http 127.0.0.1:0`, and the warning for
 * SNAT ports below 1024.
 */
import t from 'tap';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { withLab } from '../support/lab.js';
import { startManifestsAgent } from '../support/agent.js';
import { l2PoolAndPolicy, lbServiceYaml } from '../support/manifests.js';
import { solicitedNodeGroup } from '../../src/l2/ndp-groups.js';

const PIN_DIR = '/run/pharos/bpffs/phn6-lb';
const VIP6 = '2001:db8:6::1:c8';

t.test('solicited-node groups: the low 24 bits, canonical', async (t) => {
  t.equal(solicitedNodeGroup('2001:db8:6::1:c8'), 'ff02::1:ff01:c8');
  t.equal(solicitedNodeGroup('2001:db8::abcd:ef12:3456'), 'ff02::1:ff12:3456');
  t.equal(solicitedNodeGroup('2001:db8::'), 'ff02::1:ff00:0');
});

t.test('the announcing node joins and leaves the group of its IPv6 VIP', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'phn6');
  await lab.addNamespace('client');
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'client', ifname: 'eth0', addrs: ['2001:db8:6::2/64'] }, { ns: 'lb', ifname: 'eth0', addrs: ['2001:db8:6::3/64'] });
  const agent = startManifestsAgent(t, lab, {
    pinDir: PIN_DIR, interfaces: 'eth0', http: '127.0.0.1:0', args: ['--snat-ports', '1000-2000', '--log-format', 'text'],
    manifests: {
      'pool.yaml': l2PoolAndPolicy('v6', [[VIP6, VIP6]]),
      'svc.yaml': lbServiceYaml({ name: 'web6', namespace: 'default', endpoints: ['2001:db8:7::10'] }).replace('type: LoadBalancer', 'type: LoadBalancer\n  ipFamilies: [IPv6]\n  ipFamilyPolicy: SingleStack'),
    },
  });
  const service = join(agent.dir, 'svc.yaml');

  const group = solicitedNodeGroup(VIP6);
  const maddr = async (): Promise<string> => (await lab.exec('lb', ['ip', '-6', 'maddr', 'show', 'dev', 'eth0'])).stdout;
  t.notMatch(await maddr(), group, 'not a member before the agent announces');
  await waitFor(`${group} joined on eth0`, 30_000, async () => ((await maddr()).includes(group) ? true : undefined))
    .catch(agent.diag);
  t.pass(`ip maddr shows inet6 ${group} on eth0`);
  // Start-up lines a user needs here: the port the kernel picked for --http :0, and the warnings.
  t.match(agent.log(), /msg="HTTP endpoint listening" .*address=127\.0\.0\.1:(?!0\b)\d+/, 'the port picked for --http 127.0.0.1:0 is logged');
  t.match(agent.log(), /--snat-ports reaches into the privileged ports/, 'SNAT ports below 1024 are warned about');
  // ndisc6 sends its solicitation to the solicited-node group of the target.
  const nd = await waitFor('an answer to the solicitation', 10_000, async () => {
    const r = await lab.exec('client', ['ndisc6', '-1', '-r1', '-w500', VIP6, 'eth0'], { allowFail: true });
    return r.code === 0 ? r.stdout : undefined;
  });
  t.match(nd, /Target link-layer address: ([0-9A-F]{2}:){5}[0-9A-F]{2}/i, 'the multicast NS is answered');

  unlinkSync(service);
  await waitFor(`${group} left on eth0`, 30_000, async () => (!(await maddr()).includes(group) ? true : undefined));
  t.pass('the group is left once the address is withdrawn');
});
