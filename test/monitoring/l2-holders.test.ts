/**
 * pharos_l2_addresses_without_holder against the Kubernetes API emulator
 * (src/lab/apiserver, in this process, an ephemeral port on 127.0.0.1): a
 * real ElectedL2Controller of node n1 — which no policy selects, so it only
 * watches, as every agent does — reads the cluster's Leases through a
 * KubeSource and writes its own node lease with a KubeWriter; the test plays
 * nodes n2 and n3 by renewing their node leases and writing the address
 * lease. The count follows the cluster: no lease (no-holder), held (0), the
 * holder's node lease expiring (holder-down), another node taking the lease
 * (0), every eligible node gone and the lease released (no-eligible-node),
 * and nothing at all while n1's own view of the API is stale. The gauge is
 * read from the exposition the agent serves (registerAgentMetrics).
 * The pure classifier: table cases at the end.
 */
import t from 'tap';
import { startApiServer } from '../../src/lab/apiserver/server.js';
import { KubeSource } from '../../src/sources/kube/source.js';
import { KubeWriter } from '../../src/sinks/kube/writer.js';
import { Store } from '../../src/store/store.js';
import { ElectedL2Controller } from '../../src/l2/elected-controller.js';
import { addressLeaseName, nodeLeaseName } from '../../src/l2/election-core.js';
import { createLogger } from '../../src/agent/log.js';
import { registerAgentMetrics } from '../../src/metrics/agent.js';
import { registry, renderMetrics } from '../../src/metrics/registry.js';
import { countAddressesWithoutHolder } from '../../src/l2/holders.js';
import { parseExposition } from '../support/prom.js';
import { waitFor } from '../support/wait.js';
import { kubeConfigFor } from '../kube/kube-support.js';
import { RecordingSink } from '../l2/recording-sink.js';
import { FakeClock } from '../l2/fake-clock.js';

const NAMESPACE = 'pharos-system';
const ADDRESS = '198.18.5.10';
/** Node leases of the played nodes last 1 s, renewed every 250 ms while they are alive. */
const PLAYED_LEASE_SECONDS = 1;

t.test('the gauge follows the cluster\'s leases, as a node no policy selects sees them', async (t) => {
  const api = await startApiServer();
  t.teardown(() => api.close());
  const put = (resource: string, obj: object): void => void api.objects.put(resource, obj);
  put('nodes', { metadata: { name: 'n1' } });
  for (const n of ['n2', 'n3']) put('nodes', { metadata: { name: n, labels: { l2: 'yes' } } });
  put('l2announcementpolicies', { metadata: { name: 'l2' }, spec: { loadBalancerIPs: true, nodeSelector: { matchLabels: { l2: 'yes' } } } });
  put('services', {
    metadata: { name: 'web', namespace: 'default' },
    spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
    status: { loadBalancer: { ingress: [{ ip: ADDRESS }] } },
  });

  // n2 and n3: node leases renewed while alive (a new resourceVersion each time is what the election sees).
  const alive = new Set(['n2', 'n3']);
  const renew = (): void => {
    for (const n of alive) {
      put('leases', { metadata: { name: nodeLeaseName(n), namespace: NAMESPACE }, spec: { holderIdentity: n, leaseDurationSeconds: PLAYED_LEASE_SECONDS, renewTime: new Date().toISOString() } });
    }
  };
  renew();
  const renewTimer = setInterval(renew, 250);
  t.teardown(() => clearInterval(renewTimer));
  const holdAddress = (holder: string): void => put('leases', {
    metadata: { name: addressLeaseName(ADDRESS), namespace: NAMESPACE },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: new Date().toISOString() },
  });

  const kc = kubeConfigFor(api.url);
  const store = new Store();
  const source = new KubeSource({ kc, store, namespace: NAMESPACE, tuning: { initialBackoffMs: 50, maxBackoffMs: 200 } });
  const writer = new KubeWriter({ kc, namespace: NAMESPACE, timeoutMs: 500 });
  const log = createLogger({ level: 'warn', format: 'text', write: () => undefined });
  const ctl = new ElectedL2Controller({
    nodeName: 'n1', interfaceNames: ['eth0'], sink: new RecordingSink(new FakeClock()), isOurService: () => true,
    interfaceReader: () => [{ name: 'eth0', ifindex: 2, mac: '02:00:00:00:00:01', up: true, addresses: ['198.18.5.1'] }],
    counters: { gratuitousSent: { ipv4: 0, ipv6: 0 }, l2Errors: 0, leaseTransitions: 0 }, log,
    namespace: NAMESPACE, writer, nodeWriter: writer, nodeLeaseMs: 1000, nodeRenewMs: 200, serviceLeaseMs: 15_000, retryMs: 500,
    store, datapathReady: () => true, onNodeRenewed: () => undefined,
  });
  store.on('change', () => ctl.reconcile(store.snapshot()));
  registerAgentMetrics({
    counters: { gratuitousSent: { ipv4: 0, ipv6: 0 } }, pools: () => [], unsatisfiedReasons: () => [], notProgrammedReasons: () => [],
    l2Counts: () => ({ held: 0, refused: 0, awaitingFirst: 0 }), mapMemory: () => [],
    l2AddressesWithoutHolder: () => ctl.addressesWithoutHolder(),
  });
  await source.start();
  ctl.start();
  ctl.reconcile(store.snapshot());
  t.teardown(async () => {
    await ctl.stop();
    await source.stop();
  });

  /** The gauge's samples as served on /metrics: reason → value ('' when the family has none). */
  const served = async (): Promise<string> => {
    const family = parseExposition(Buffer.concat(await renderMetrics(registry)).toString()).get('pharos_l2_addresses_without_holder');
    return (family?.samples ?? []).map((s) => `${s.labels.reason}=${s.value}`).sort().join(' ');
  };
  const expect = async (what: string, want: string, withinMs = 5000): Promise<void> => {
    let last = '';
    await waitFor(what, withinMs, async () => ((last = await served()) === want ? true : undefined), { everyMs: 50 })
      .catch((e: Error) => { throw new Error(`${e.message}: last served "${last}"`); });
    t.pass(`${what}: ${want || '(absent)'}`);
  };

  await expect('no lease yet, n2 and n3 could take it', 'holder-down=0 no-eligible-node=0 no-holder=1');
  holdAddress('n2');
  await expect('n2 holds it', 'holder-down=0 no-eligible-node=0 no-holder=0');
  alive.delete('n2');
  // n2's node lease runs out (1 s) and nobody has taken the address yet.
  await expect('n2\'s node lease expired', 'holder-down=1 no-eligible-node=0 no-holder=0');
  holdAddress('n3');
  await expect('n3 took it', 'holder-down=0 no-eligible-node=0 no-holder=0');
  t.equal(ctl.election.leaseView(addressLeaseName(ADDRESS))?.holder, 'n3', 'n1 never competed: no policy selects it');
  alive.delete('n3');
  await expect('n3 gone too', 'holder-down=1 no-eligible-node=0 no-holder=0');
  holdAddress('');
  await expect('released, and no live node the policy selects', 'holder-down=0 no-eligible-node=1 no-holder=0');
  // n1 cannot reach the API: its view goes stale within half a node lease and it reports nothing.
  api.pause();
  await expect('n1\'s view of the API is stale', '');
  api.resume();
  await expect('the API back', 'holder-down=0 no-eligible-node=1 no-holder=0');
});

t.test('the classifier: one count per address, whatever number of services share it', async (t) => {
  const live = new Set(['a', 'b', 'c']);
  const holders: Record<string, string> = { '198.18.0.1': 'a', '198.18.0.2': 'dead', '198.18.0.3': '', '198.18.0.5': 'c' };
  const eligible: Record<string, string[]> = { '198.18.0.3': ['c'], '198.18.0.4': ['c'], '198.18.0.6': ['dead'], '198.18.0.7': ['b'] };
  const count = (draining: string[]): ReturnType<typeof countAddressesWithoutHolder> => countAddressesWithoutHolder({
    addresses: ['198.18.0.1', '198.18.0.2', '198.18.0.2', '198.18.0.3', '198.18.0.4', '198.18.0.5', '198.18.0.6', '198.18.0.7'],
    holderOf: (a) => holders[a],
    isLive: (n) => live.has(n),
    eligibleOf: (a) => eligible[a],
    draining: new Set(draining),
  });
  t.same(count([]), { 'holder-down': 1, 'no-holder': 3, 'no-eligible-node': 1 }, '.2 shared by two services counts once; .6 only a dead node may take');
  // A draining holder still answers (.5); a draining node takes nothing free (.3, .4).
  t.same(count(['c']), { 'holder-down': 1, 'no-holder': 1, 'no-eligible-node': 3 });
});
