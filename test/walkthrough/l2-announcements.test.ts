/**
 * The L2 announcement walkthrough, as a user follows it against `pharos
 * lab`: `kubectl apply` deploy/examples/pool-l2-echo.yaml as written, find
 * the announcing node from its Lease, reach the service from the client
 * namespace (ARP answered by the holder), then stop the holder's agent and
 * watch the Lease (`kubectl get lease -w`) and the ARP answer move to the
 * other node, with the client-seen gap measured. Only kubectl, `pharos lab
 * agent stop|start` and `ip netns exec <client>` are used.
 */
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { WalkthroughLab, longestGap, sleep, waitFor } from './walkthrough-lab.js';

const PREFIX = 'phw-b';
const LEASE = 'pharos-l2announce-default-echo';
const PROBE_MS = 20;

t.test('L2 announcement walkthrough with kubectl, failover included', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await WalkthroughLab.up(t, PREFIX, 2);
  const holder = async (): Promise<string> => (await lab.kubectl(['-n', 'kube-system', 'get', 'lease', LEASE, '-o', 'jsonpath={.spec.holderIdentity}'], { allowFail: true })).trim();

  // The nodes' MACs, as the client sees them: node addresses from kubectl, MACs from the client's ARP.
  const macOf = new Map<string, string>();
  for (const node of ['n1', 'n2']) {
    const addr = (await lab.kubectl(['get', 'node', node, '-o', 'jsonpath={.status.addresses[0].address}'])).trim();
    const mac = await waitFor(`the client to resolve ${node} (${addr})`, 10_000, () => lab.arpAnswer(addr));
    macOf.set(node, mac);
  }

  let vip = '';
  let first = '';
  await t.test('apply the walkthrough manifests; the service gets an address and a lease holder', async (t) => {
    const out = await lab.kubectl(['apply', '--validate=false', '-f', join(PROJECT_ROOT, 'deploy', 'examples', 'pool-l2-echo.yaml')]);
    t.match(out, /l2announcementpolicy\.lb\.pharos\.io\/announce-all created/);
    t.match(out, /service\/echo created/);
    vip = await waitFor('an EXTERNAL-IP for echo', 30_000, async () => {
      const c = (await lab.kubectl(['get', 'svc', 'echo', '--no-headers'])).trim().split(/\s+/);
      return /^198\.51\.100\./.test(c[3] ?? '') ? c[3] : undefined;
    });
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
  };

  await t.test('stop the holder\'s agent (SIGTERM): the lease and the ARP answer move', async (t) => {
    await failover(t, 'SIGTERM');
  });

  await t.test('restart it; kill the new holder (SIGKILL): they move back', async (t) => {
    const stopped = ['n1', 'n2'].find((n) => n !== (first === 'n1' ? 'n2' : 'n1'))!;
    const start = await lab.lab(['agent', 'start', stopped]);
    t.equal(start.code, 0, `pharos lab agent start ${stopped}: ${start.stdout.trim()}`);
    await failover(t, 'SIGKILL');
    t.equal(await holder(), first, `${first} holds the lease again`);
  });
});
