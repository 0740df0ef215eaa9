/**
 * BGP MD5 from a Secret in Kubernetes mode: `pharos agent --kubeconfig`
 * (under deploy/kubernetes/rbac.yaml, enforced by the emulator) peers with
 * a real bird2 configured with a TCP MD5 password; the BGPPeeringPolicy's
 * neighbor names the password by `authSecretRef`, a Secret in pharos'
 * namespace (pharos-system) with the key `password`.
 *
 * - Secret missing, or without the key: the neighbor is not configured, and
 *   `pharos status` shows a problem naming the policy, the neighbor and the
 *   Secret (namespace/name);
 * - Secret created: the session comes up (bird refuses any segment without
 *   the right MD5 signature, so Established proves the key was used);
 * - Secret changed: the agent restarts the session with the new key at once
 *   (a router still on the old key no longer gets a session), and a router
 *   with the new key does;
 * - Secret deleted: the neighbor is removed (no session without its
 *   password) and the problem is back;
 * - an RBAC without Secrets (the Role's rule removed): the agent runs on,
 *   and `pharos status` says Secrets of pharos-system cannot be read.
 */
import { Buffer } from 'node:buffer';
import t from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { Bird } from '../../src/lab/bgp/routers.js';
import { CLI, KubeAgentLab, PHAROS_NAMESPACE, type Json } from './agent-lab.js';
import { lbServiceObject } from '../../src/lab/manifests.js';

const PEER = '198.18.0.2';
const FIRST = 'first-Md5-key';
const SECOND = 'second-Md5-key';

t.test('authSecretRef: the MD5 password of a BGP neighbor comes from a Secret in pharos-system', { skip: privilegedUnavailable() }, async (t) => {
  const k = await KubeAgentLab.create(t, 'phrs');
  const { lab, api } = k;
  await lab.addNamespace('router', { forwarding: true });
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'router', ifname: 'lb0', addrs: ['198.18.0.1/30'] }, { ns: 'lb', ifname: 'eth0', addrs: [`${PEER}/30`] });
  const router = (password: string) => new Bird({ lab, ns: 'router', asn: 64500, routerId: '198.18.0.1', neighbors: [{ address: PEER, asn: 64512, local: '198.18.0.1', password }] });
  let bird = router(FIRST);
  await bird.start();
  t.teardown(() => bird.stop());

  api.objects.put('nodes', { metadata: { name: 'lb-1' }, status: { addresses: [{ type: 'InternalIP', address: PEER }] } });
  api.objects.put('loadbalancerippools', { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'bgp-pool' }, spec: { blocks: [{ cidr: '203.0.113.128/28' }] } });
  api.objects.put('bgppeeringpolicies', {
    apiVersion: 'lb.pharos.io/v1alpha1', kind: 'BGPPeeringPolicy', metadata: { name: 'to-router' },
    spec: { virtualRouters: [{ localASN: 64512, serviceSelector: { matchLabels: { bgp: 'yes' } }, neighbors: [{ peerAddress: '198.18.0.1/32', peerASN: 64500, authSecretRef: 'bgp-md5', connectRetryTimeSeconds: 1, holdTimeSeconds: 9, keepAliveTimeSeconds: 3 }] }] },
  });
  api.objects.put('services', lbServiceObject({ name: 'api', namespace: 'prod', labels: { bgp: 'yes' } }));
  // The same name in another namespace must not be used: the agent reads pharos-system only.
  const secret = (namespace: string, data: Record<string, string>) => api.objects.put('secrets', {
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bgp-md5', namespace }, data: Object.fromEntries(Object.entries(data).map(([key, v]) => [key, Buffer.from(v).toString('base64')])),
  });
  secret('default', { password: FIRST });

  const agent = await k.startAgent('lb', { node: 'lb-1', iface: 'eth0' });
  t.teardown(() => agent.stop());
  const withLog = (e: Error): never => { throw new Error(`${e.message}\nagent log:\n${agent.log().slice(-5000)}\nbird log:\n${bird.log.slice(-2000)}`); };
  const problem = async (): Promise<string | undefined> => ((await agent.state()).problems as Json[]).find((p) => p.source === 'bgp')?.message;
  const established = () => bird.established(PEER);

  // 1. No Secret in pharos-system: a problem naming policy, neighbor and Secret; no neighbor configured.
  const missing = await waitFor('the missing-Secret problem', 15_000, problem).catch(withLog);
  t.equal(missing, 'BGPPeeringPolicy to-router: neighbor 198.18.0.1: authSecretRef: Secret pharos-system/bgp-md5 not found; neighbor not configured', 'problem in /v1/state');
  const status = (await lab.exec('lb', [process.execPath, CLI, 'status', '--agent', 'http://127.0.0.1:9643'], { allowFail: true })).stdout;
  t.match(status, /BGPPeeringPolicy to-router[\s\S]*Secret pharos-system\/bgp-md5 not found/, '`pharos status` shows it');
  t.same((await agent.state()).bgp.peers, [], 'no peer without its password (the Secret of another namespace is not used)');

  // 2. The Secret without the key.
  secret(PHAROS_NAMESPACE, { pass: FIRST });
  t.match(await waitFor('the missing-key problem', 15_000, async () => ((await problem()) ?? '').includes('has no key') && problem()).catch(withLog),
    /authSecretRef: Secret pharos-system\/bgp-md5 has no key "password"; neighbor not configured/);

  // 3. The right Secret: Established with the MD5 key, the service's route at the router.
  secret(PHAROS_NAMESPACE, { password: FIRST });
  await waitFor('Established with the key from the Secret', 30_000, established).catch(withLog);
  t.pass('Established with the password from Secret pharos-system/bgp-md5');
  t.equal(await problem(), undefined, 'problem cleared');
  await waitFor('the service route at the router', 15_000, () => bird.route('203.0.113.128/32')).catch(withLog);
  t.pass('route advertised');

  // 4. The Secret changes: the session restarts with the new key; the router on the old key gets none.
  secret(PHAROS_NAMESPACE, { password: SECOND });
  await waitFor('the session torn down by the re-key', 15_000, async () => !(await established())).catch(withLog);
  await waitFor('the restart logged', 5_000, async () => /BGP neighbor changed, restarting the session/.test(agent.log())).catch(withLog);
  await new Promise((r) => setTimeout(r, 4000));
  t.notOk(await established(), 'a router still on the old key gets no session (the new key is in use)');
  await bird.stop();
  bird = router(SECOND);
  await bird.start();
  await waitFor('Established with the changed key', 30_000, established).catch(withLog);
  t.pass('re-keyed: Established with the new password');

  // 5. The Secret deleted: the neighbor goes (never a session without its password), the problem is back.
  api.objects.delete('secrets', PHAROS_NAMESPACE, 'bgp-md5');
  await waitFor('the session removed', 15_000, async () => !(await established())).catch(withLog);
  t.match(await waitFor('the problem back', 15_000, problem).catch(withLog), /Secret pharos-system\/bgp-md5 not found/);
  t.same(k.agentRequests().filter((r) => r.code === 403).map((r) => `${r.verb} ${r.resource} ${r.namespace ?? ''}`), [], 'nothing refused by the RBAC on the way');
  t.ok(k.agentRequests().every((r) => r.resource !== 'secrets' || r.namespace === PHAROS_NAMESPACE), 'Secrets read in pharos-system only');

  // 6. The Role without Secrets (as a cluster whose RBAC was trimmed): the agent starts, and says why BGP cannot authenticate.
  await agent.stop();
  const role = api.objects.get('roles', PHAROS_NAMESPACE, 'pharos');
  api.objects.put('roles', { ...role, rules: role.rules.filter((r: Json) => !r.resources.includes('secrets')) });
  secret(PHAROS_NAMESPACE, { password: SECOND });
  const again = await k.startAgent('lb', { node: 'lb-1', iface: 'eth0' });
  t.teardown(() => again.stop());
  const problems = (await again.state()).problems as Json[];
  t.match(problems.find((p) => p.source === 'kubernetes'), { object: 'Secret pharos-system/*', message: /Secrets in pharos-system cannot be read \(403\)/ }, 'the refused Secrets are a problem in pharos status');
  t.match(problems.find((p) => p.source === 'bgp')?.message, /Secret pharos-system\/bgp-md5 not found/, 'and the neighbor stays unconfigured');
  t.ok(k.agentRequests().some((r) => r.resource === 'secrets' && r.code === 403), 'refused by the emulator\'s RBAC');
});
