/**
 * The L2 announcement walkthrough, as a user follows it against `pharos
 * lab`: first Cilium's (the manifests of test/walkthrough/cilium/, as
 * Cilium's LB-IPAM and L2 pages show them, with the lab started with the
 * lease timings Cilium's walkthrough sets), then `kubectl apply`
 * deploy/examples/pool-l2-echo.yaml as written; find the announcing node
 * from its Lease, reach the services from the client namespace (ARP
 * answered by the holder), then stop the holder's agent and watch the
 * Lease (`kubectl get lease -w`) and the ARP answer move to the other
 * node, with the client-seen gap measured. Only kubectl, `pharos lab
 * up|agent stop|start` and `ip netns exec <client>` are used.
 */
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { WalkthroughLab, longestGap, sleep, waitFor } from './walkthrough-lab.js';

const PREFIX = 'phw-b';
const PROBE_MS = 20;
const CILIUM = join(PROJECT_ROOT, 'test', 'walkthrough', 'cilium');

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

t.test('L2 announcement walkthrough with kubectl, failover included', { skip: privilegedUnavailable() }, async (t) => {
  // Cilium's walkthrough: helm --set l2announcements.leaseDuration=3s,leaseRenewDeadline=1s,leaseRetryPeriod=200ms.
  const lab = await WalkthroughLab.up(t, PREFIX, 2, ['--l2-lease-duration', '3s', '--l2-lease-renew-deadline', '1s', '--l2-lease-retry-period', '200ms']);
  let LEASE = '';
  const leaseHolder = async (lease: string): Promise<string> => (await lab.kubectl(['-n', 'kube-system', 'get', 'lease', lease, '-o', 'jsonpath={.spec.holderIdentity}'], { allowFail: true })).trim();
  const holder = (): Promise<string> => leaseHolder(LEASE);

  // The nodes' MACs, as the client sees them: node addresses from kubectl, MACs from the client's ARP.
  const macOf = new Map<string, string>();
  for (const node of ['n1', 'n2']) {
    const addr = (await lab.kubectl(['get', 'node', node, '-o', 'jsonpath={.status.addresses[0].address}'])).trim();
    const mac = await waitFor(`the client to resolve ${node} (${addr})`, 10_000, () => lab.arpAnswer(addr));
    macOf.set(node, mac);
  }

  // Cilium's walkthrough, applied first so that only its own policy and pool can serve service-blue.
  let blueVip = '';
  let blueLease = '';
  const blueMoves: string[] = [];
  await t.test('Cilium\'s manifests as written: pool, L2 policy, Deployment rolled out, service-blue on port 80', async (t) => {
    const crds = await lab.kubectl(['get', 'crd', 'ciliumloadbalancerippools.cilium.io', 'ciliuml2announcementpolicies.cilium.io', '-o', 'name']);
    t.equal(crds.trim().split('\n').length, 2, 'kubectl get crd: Cilium\'s CRDs are installed');
    // As the walkthrough writes it: no --validate=false.
    const out = await lab.kubectl(['apply', '-f', CILIUM]);
    t.match(out, /ciliumloadbalancerippool\.cilium\.io\/blue-pool created/, 'the Cilium CRDs are installed in the lab');
    t.match(out, /ciliuml2announcementpolicy\.cilium\.io\/policy1 created/);
    t.match(out, /deployment\.apps\/nginx created/);
    t.match(out, /service\/service-blue created/);
    const rollout = await lab.kubectl(['rollout', 'status', 'deployment/nginx', '--timeout=60s']);
    t.match(rollout, /deployment "nginx" successfully rolled out/, 'kubectl rollout status finishes');
    const deploy = (await lab.kubectl(['get', 'deployment', 'nginx', '--no-headers'])).trim().split(/\s+/);
    t.same(deploy.slice(0, 4), ['nginx', '3/3', '3', '3'], 'kubectl get deployment: READY 3/3, UP-TO-DATE 3, AVAILABLE 3');
    const pods = (await lab.kubectl(['get', 'pods', '-l', 'app=nginx', '--no-headers'])).trim().split('\n').map((l) => l.trim().split(/\s+/));
    t.equal(pods.length, 3, 'three pods');
    t.ok(pods.every((c) => c[1] === '1/1' && c[2] === 'Running'), 'each 1/1 Running');
    blueVip = await waitFor('an EXTERNAL-IP for service-blue', 30_000, async () => {
      const c = (await lab.kubectl(['get', 'svc', 'service-blue', '--no-headers'])).trim().split(/\s+/);
      return /^198\.51\.100\./.test(c[3] ?? '') ? c[3] : undefined;
    });
    t.ok(ipv4ToInt(blueVip) >= ipv4ToInt('198.51.100.96') && ipv4ToInt(blueVip) <= ipv4ToInt('198.51.100.111'), `service-blue ${blueVip} from blue-pool (198.51.100.96/28)`);
    const pool = await waitFor('blue-pool to count the allocation', 15_000, async () => {
      const c = (await lab.kubectl(['get', 'ciliumloadbalancerippools', 'blue-pool', '--no-headers'])).trim().split(/\s+/);
      return c[3] === '15' ? c : undefined;
    });
    t.same(pool.slice(0, 4), ['blue-pool', 'false', 'False', '15'], 'kubectl get ciliumloadbalancerippools: DISABLED false, CONFLICTING False, IPS AVAILABLE 15');
    blueLease = await waitFor(`the lease of ${blueVip}`, 30_000, () => lab.l2LeaseName(blueVip, 'default', 'service-blue'));
    const blueHolder = await waitFor(`a holder of ${blueLease}`, 30_000, async () => (await leaseHolder(blueLease)) || undefined);
    blueMoves.push(blueHolder);
    const seconds = (await lab.kubectl(['-n', 'kube-system', 'get', 'lease', blueLease, '-o', 'jsonpath={.spec.leaseDurationSeconds}'])).trim();
    t.equal(seconds, '3', 'lab up --l2-lease-duration 3s reached the agents: the lease says 3 s');
    const slice = await lab.kubectl(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=service-blue', '-o', 'jsonpath={.items[0].ports[0].port} {.items[0].endpoints[*].targetRef.name}']);
    t.match(slice.trim(), /^80 nginx-\S+ nginx-\S+$/, `the Service's endpoints are the Deployment's pods, on port 80 (no targetPort): ${slice.trim()}`);
    const body = await waitFor(`an answer from http://${blueVip}/`, 20_000, async () => {
      const r = await lab.clientExec(['curl', '-sS', '--max-time', '1', `http://${blueVip}/`]);
      return r.code === 0 ? r.stdout : undefined;
    });
    t.match(body, /^be[12] /, `curl http://${blueVip}/ (port 80) answered by a backend playing an nginx pod: ${body.trim()}`);
    t.equal(await lab.arpAnswer(blueVip), macOf.get(blueHolder), `arping ${blueVip} → ${blueHolder}'s MAC`);
    // kubectl scale: the pods and the Service's endpoints follow, and the rollout finishes again.
    const endpoints = async (): Promise<string> => (await lab.kubectl(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=service-blue', '-o', 'jsonpath={.items[0].endpoints[*].addresses[0]}'])).trim();
    await lab.kubectl(['scale', 'deployment/nginx', '--replicas=1']);
    t.match(await lab.kubectl(['rollout', 'status', 'deployment/nginx', '--timeout=30s']), /successfully rolled out/);
    t.equal(await waitFor('one endpoint', 10_000, async () => ((await endpoints()).split(' ').length === 1 ? endpoints() : undefined)), '198.51.100.141', 'scaled to 1: one pod, one endpoint');
    await lab.kubectl(['scale', 'deployment/nginx', '--replicas=3']);
    t.match(await lab.kubectl(['rollout', 'status', 'deployment/nginx', '--timeout=30s']), /successfully rolled out/);
    await waitFor('two endpoints again', 10_000, async () => ((await endpoints()).split(' ').length === 2 ? true : undefined));
    t.equal((await lab.kubectl(['get', 'pods', '-l', 'app=nginx', '-o', 'name'])).trim().split('\n').length, 3, 'scaled back to 3 pods');
  });

  let vip = '';
  let first = '';
  await t.test('apply the walkthrough manifests; the service gets an address and a lease holder', async (t) => {
    const out = await lab.kubectl(['apply', '--validate=false', '-f', join(PROJECT_ROOT, 'deploy', 'examples', 'pool-l2-echo.yaml')]);
    t.match(out, /l2announcementpolicy\.lb\.pharos\.io\/announce-all created/);
    t.match(out, /service\/echo created/);
    t.match(await lab.kubectl(['rollout', 'status', 'deployment/echo', '--timeout=60s']), /successfully rolled out/, 'kubectl rollout status deployment/echo finishes');
    vip = await waitFor('an EXTERNAL-IP for echo', 30_000, async () => {
      const c = (await lab.kubectl(['get', 'svc', 'echo', '--no-headers'])).trim().split(/\s+/);
      return /^198\.51\.100\./.test(c[3] ?? '') ? c[3] : undefined;
    });
    LEASE = await waitFor(`the lease of ${vip}`, 30_000, () => lab.l2LeaseName(vip, 'default', 'echo'));
    first = await waitFor(`the lease ${LEASE}`, 30_000, async () => (await holder()) || undefined);
    t.ok(['n1', 'n2'].includes(first), `kubectl -n kube-system get lease ${LEASE}: holder ${first}`);
    const leases = await lab.kubectl(['-n', 'kube-system', 'get', 'lease', LEASE]);
    t.match(leases, /^NAME\s+HOLDER\s+AGE/, 'Lease table columns');
    t.comment(`echo: ${vip}, announced by ${first}`);
  });

  await t.test('the client reaches the service; the ARP answer comes from the holder', async (t) => {
    const body = await waitFor(`an answer from http://${vip}/`, 20_000, async () => {
      const r = await lab.clientExec(['curl', '-sS', '--max-time', '1', `http://${vip}/`]);
      return r.code === 0 ? r.stdout : undefined;
    });
    t.match(body, /^be[12] /, `curl http://${vip}/ answered by an echo backend: ${body.trim()}`);
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const r = await lab.clientExec(['curl', '-sS', '--max-time', '2', `http://${vip}/`]);
      if (r.code === 0) seen.add(r.stdout.split(' ')[0]!);
    }
    t.same([...seen].sort(), ['be1', 'be2'], 'both backends of the lab EndpointSlice answer');
    t.equal(await lab.arpAnswer(vip), macOf.get(first), `arping ${vip} → ${first}'s MAC`);
    t.equal(await lab.clientNeighbour(vip), macOf.get(first), 'the client\'s neighbour entry points at the holder');
  });

  const failover = async (t: Test, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> => {
    const from = await holder();
    const to = from === 'n1' ? 'n2' : 'n1';
    const leaseWatch = lab.watch(['-n', 'kube-system', 'get', 'lease', LEASE, '-w']);
    const prober = lab.startProber(`http://${vip}/`, PROBE_MS);
    await sleep(1000);
    const stoppedAt = Date.now();
    const stop = await lab.lab(['agent', 'stop', from, '--signal', signal]);
    t.equal(stop.code, 0, `pharos lab agent stop ${from} --signal ${signal}: ${stop.stdout.trim()}`);
    await waitFor(`the lease to move to ${to}`, 30_000, async () => ((await holder()) === to ? true : undefined), 50);
    const leaseMovedMs = Date.now() - stoppedAt;
    await waitFor(`the ARP answer to move to ${to}`, 20_000, async () => ((await lab.arpAnswer(vip)) === macOf.get(to) ? true : undefined), 50);
    const arpMovedMs = Date.now() - stoppedAt;
    await waitFor(`the client's neighbour entry to move to ${to}`, 20_000, async () => ((await lab.clientNeighbour(vip)) === macOf.get(to) ? true : undefined), 50);
    await sleep(1500);
    const end = Date.now() - 500;
    const times = await prober.stop();
    leaseWatch.stop();
    const gap = longestGap(times, stoppedAt - 500, end, PROBE_MS);
    // Rows are `NAME HOLDER AGE`; a released lease has an empty HOLDER (two columns).
    const watched = leaseWatch.lines.map((l) => l.text.trim().split(/\s+/)).filter((c) => c[0] === LEASE).map((c) => (c.length >= 3 ? c[1]! : '(none)'));
    t.comment(`kubectl get lease -w holders: ${watched.join(' → ')}`);
    t.ok(watched.includes(from) && watched[watched.length - 1] === to, `the lease watch shows ${from} then ${to}`);
    t.comment(`${signal} ${from}: lease moved to ${to} after ${leaseMovedMs} ms (as kubectl saw it), ARP answer after ${arpMovedMs} ms; longest client-seen gap ${gap} ms (${times.length} answered requests, one every ${PROBE_MS} ms)`);
    t.ok(times.some((x) => x > stoppedAt + gap), 'requests are answered again after the failover');
    t.ok(gap < (signal === 'SIGKILL' ? 10_000 : 8_000), `client-seen gap ${gap} ms within bounds`);
    const body = await lab.clientExec(['curl', '-sS', '--max-time', '2', `http://${vip}/`]);
    t.match(body.stdout, /^be[12] /, `after the move, curl answered through ${to}`);
    // Cilium's service-blue: held by the stopped node, it moves too; held by the other, it stays.
    const blueFrom = blueMoves[blueMoves.length - 1]!;
    const blueTo = blueFrom === from ? to : blueFrom;
    await waitFor(`service-blue's lease to be held by ${blueTo}`, 30_000, async () => ((await leaseHolder(blueLease)) === blueTo ? true : undefined), 50);
    await waitFor(`the ARP answer for ${blueVip} from ${blueTo}`, 20_000, async () => ((await lab.arpAnswer(blueVip)) === macOf.get(blueTo) ? true : undefined), 50);
    const blueBody = await waitFor(`an answer from http://${blueVip}/`, 20_000, async () => {
      const r = await lab.clientExec(['curl', '-sS', '--max-time', '1', `http://${blueVip}/`]);
      return r.code === 0 ? r.stdout : undefined;
    });
    t.match(blueBody, /^be[12] /, `service-blue ${blueFrom === from ? `moved ${from} → ${to}` : `stayed on ${blueTo}`} and answers`);
    blueMoves.push(blueTo);
  };

  await t.test('stop the holder\'s agent (SIGTERM): the lease and the ARP answer move', async (t) => {
    await failover(t, 'SIGTERM');
  });

  await t.test('restart it; kill the new holder (SIGKILL): they move back', async (t) => {
    const stopped = ['n1', 'n2'].find((n) => n !== (first === 'n1' ? 'n2' : 'n1'))!;
    const startedAt = Date.now();
    const start = await lab.lab(['agent', 'start', stopped]);
    t.equal(start.code, 0, `pharos lab agent start ${stopped}: ${start.stdout.trim()} (${Date.now() - startedAt} ms)`);
    await failover(t, 'SIGKILL');
    t.equal(await holder(), first, `${first} holds the lease again`);
    t.comment(`service-blue's holders: ${blueMoves.join(' → ')}`);
    t.ok(new Set(blueMoves).size > 1, 'Cilium\'s service-blue failed over to the other node');
  });
});
