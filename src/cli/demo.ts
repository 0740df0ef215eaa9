/**
 * `pharos demo`: the main job on an embedded default. Builds a small lab of
 * network namespaces, hands pharos a manifests directory (a pool, an L2
 * policy, a LoadBalancer service with no address and its EndpointSlice),
 * starts the agent, and shows — step by step, each one checked — the
 * address pharos allocated, the client resolving it by ARP to the LB node,
 * requests answered by different backends through the XDP path, and the
 * agent's own view. Then removes everything it made (also on Ctrl-C),
 * unless --keep.
 *
 *   client ── br0 [sw] ── eth0 lb (pharos agent) eth1 ── br1 [sw] ── be1 / be2 / be3
 *   198.51.100.1/24       198.51.100.2/24  203.0.113.1/24        203.0.113.{2,6,10}/24
 *
 * The same cluster topology as `pharos lab` and the L2 tests (buildCluster
 * in src/lab/topology.ts): the client on the first segment, the backends
 * on the second, the LB node on both, so every answer passes through it.
 * The pool (198.51.100.200–198.51.100.207) sits on the client's segment, so
 * the client finds the VIP by ARP, answered by the data path's responder.
 */
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Lab, labProgram } from '../lab/netns.js';
import { waitFor } from '../lab/wait.js';
import { buildCluster } from '../lab/topology.js';
import { PROJECT_ROOT } from '../datapath/bpf-build.js';
import { removePins } from '../datapath/loader.js';

const PREFIX = 'pharos-demo';
/** The demo's processes run unwatched and stay up with --keep (no parent-death signal). */
const DEMO_PROCESS = { output: 'ignore', outliveParent: true } as const;
const AGENT_HTTP = '127.0.0.1:9643';
/** Outside /sys: `ip netns exec` remounts /sys, so /sys/fs/bpf is no bpffs inside it (LAB-FACTS). */
const PIN_DIR = `/run/pharos/bpffs/${PREFIX}-lb`;
const CLIENT = '198.51.100.1/24';
const LB = { lan: '198.51.100.2/24', backendSide: '203.0.113.1' };
const BACKENDS = ['203.0.113.2', '203.0.113.6', '203.0.113.10'].map((addr, i) => ({ name: `be${i + 1}`, addr }));

const MANIFESTS = `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata:
  name: demo-pool
spec:
  blocks:
    - start: 198.51.100.200
      stop: 198.51.100.207
---
apiVersion: lb.pharos.io/v1alpha1
kind: L2AnnouncementPolicy
metadata:
  name: demo-l2
spec:
  interfaces: ["^eth0$"]
  loadBalancerIPs: true
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
  labels: { app: echo }
spec:
  type: LoadBalancer
  selector: { app: echo }
  ports:
    - name: http
      port: 80
      targetPort: 8080
      protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: default
  labels: { kubernetes.io/service-name: echo }
addressType: IPv4
ports:
  - name: http
    port: 8080
    protocol: TCP
endpoints:
${BACKENDS.map((b) => `  - addresses: ["${b.addr}"]\n    conditions: { ready: true }\n    nodeName: ${b.name}`).join('\n')}
`;

class DemoStep {
  constructor(private readonly n: number, private readonly title: string) {}
  start(): void {
    process.stdout.write(`\n[${this.n}] ${this.title}\n`);
  }
}

function show(text: string): void {
  for (const line of text.trimEnd().split('\n')) process.stdout.write(`    ${line}\n`);
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { keep: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } } });
  if (values.help) {
    console.log('Usage: pharos demo [--keep]\n\nBuilds a lab of network namespaces (pharos-demo-*), runs the agent in manifests mode,\nand shows a client reaching a load-balanced service through the XDP path.\n--keep leaves the lab running and prints how to explore it.');
    return 0;
  }
  if (process.getuid?.() !== 0) {
    console.error('pharos demo: needs root (network namespaces, BPF)');
    return 1;
  }
  const lab = new Lab(PREFIX);
  const work = mkdtempSync(join(tmpdir(), 'pharos-demo-'));
  const cli = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await lab.teardown();
    removePins(PIN_DIR);
    rmSync(work, { recursive: true, force: true });
  };
  const onSignal = (): void => {
    process.stdout.write('\ninterrupted: cleaning up\n');
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    let n = 0;
    const step = (title: string): void => new DemoStep(++n, title).start();

    step('Building the lab: client, LB node and three backends in network namespaces');
    await Lab.cleanup(PREFIX);
    // Shaped like a kind or containerlab node: plain veths, no XDP program on any peer (no xdpPeers), the hosts'
    // default checksum offload. The agent's --xdp-mode auto puts the data path at tc ingress on veth, which needs neither.
    await buildCluster(lab, {
      secondSegment: true,
      hosts: [{ name: 'client', lan: [CLIENT] }, ...BACKENDS.map((b) => ({ name: b.name, seg2: [`${b.addr}/24`] }))],
      nodes: [{ name: 'lb', lan: [LB.lan], seg2: [`${LB.backendSide}/24`] }],
    });
    for (const b of BACKENDS) {
      await lab.output(b.name, ['ip', 'route', 'add', 'default', 'via', LB.backendSide]);
      lab.spawn(b.name, [process.execPath, labProgram('echo-server'), '--name', b.name, '--port', '8080'], DEMO_PROCESS);
    }
    show(`namespaces: ${['client', 'lb', ...BACKENDS.map((b) => b.name), 'sw'].map((s) => lab.ns(s)).join(', ')}`);

    step('Writing the manifests pharos watches: a pool, an L2 policy, a LoadBalancer service without an address');
    const manifestsDir = join(work, 'manifests');
    const stateDir = join(work, 'state');
    rmSync(manifestsDir, { recursive: true, force: true });
    await import('node:fs').then((fs) => fs.mkdirSync(manifestsDir, { recursive: true }));
    writeFileSync(join(manifestsDir, 'demo.yaml'), MANIFESTS);
    show(`${manifestsDir}/demo.yaml: LoadBalancerIPPool demo-pool (198.51.100.200-198.51.100.207), L2AnnouncementPolicy demo-l2, Service default/echo, EndpointSlice default/echo-1`);

    step('Starting the agent on the LB node (manifests mode, data path on eth0 and the backend segment eth1)');
    const pinDir = PIN_DIR;
    removePins(pinDir); // a fresh demo starts from empty maps
    if (!existsSync('/run/pharos/bpffs')) throw new Error('/run/pharos/bpffs is not mounted: run `npm run setup` (deploy/setup.sh) first');
    const agentArgs = [cli, 'agent', '--manifests', manifestsDir, '--node-name', 'demo-lb', '--interfaces', 'eth0,eth1',
      '--state-dir', stateDir, '--pin-dir', pinDir, '--http', AGENT_HTTP, '--log-level', 'info'];
    const agentLog = join(work, 'agent.log');
    const agent = lab.spawn('lb', ['sh', '-c', `exec "$0" "$@" >>${agentLog} 2>&1`, process.execPath, ...agentArgs], DEMO_PROCESS);
    const pharos = (args: string[]) => lab.output('lb', [process.execPath, cli, ...args, '--agent', `http://${AGENT_HTTP}`]);
    await waitFor('the agent to be ready', 30_000, async () => {
      if (agent.exitCode !== null) throw new Error(`agent exited with ${agent.exitCode}; see its log:\n${await import('node:fs').then((fs) => fs.readFileSync(agentLog, 'utf8'))}`);
      const out = await lab.output('lb', ['curl', '-sf', `http://${AGENT_HTTP}/readyz`]).catch(() => undefined);
      return out?.includes('ready') ? true : undefined;
    });
    show(`agent ready (pid ${agent.pid}), log: ${agentLog}`);

    step('The pool, as `pharos pool list` shows it');
    show(await pharos(['pool', 'list']));

    step('The address pharos allocated to default/echo');
    const vip = await waitFor('an address for default/echo', 15_000, async () => {
      const state = JSON.parse(await lab.output('lb', ['curl', '-sf', `http://${AGENT_HTTP}/v1/state`])) as { services: { key: string; ingress: string[] }[] };
      return state.services.find((s) => s.key === 'default/echo')?.ingress[0];
    });
    show(`default/echo -> ${vip}`);

    step(`The client resolves ${vip} by ARP; the XDP responder on the LB node answers`);
    const lbMac = await lab.mac('lb', 'eth0');
    await lab.output('client', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    await waitFor('the ARP answer', 10_000, async () => {
      await lab.output('client', ['ping', '-c', '1', '-W', '1', vip]).catch(() => undefined);
      const neigh = JSON.parse(await lab.output('client', ['ip', '-j', 'neigh', 'show', vip, 'dev', 'eth0'])) as { lladdr?: string }[];
      return neigh[0]?.lladdr === lbMac ? true : undefined;
    });
    show(`${vip} is-at ${lbMac} (the LB node's eth0)`);

    step(`Requests from the client to http://${vip}/ go through the XDP load balancer`);
    const seen = new Map<string, number>();
    for (let i = 0; i < 12; i++) {
      const body = await lab.output('client', ['curl', '-s', '--max-time', '3', `http://${vip}/`]);
      const backend = body.split(' ')[0]!.trim();
      seen.set(backend, (seen.get(backend) ?? 0) + 1);
      if (i < 4) show(`GET / -> ${body.trim()}`);
    }
    show(`12 requests answered by: ${[...seen].map(([b, c]) => `${b} x${c}`).join(', ')}`);
    if (seen.size < 2) throw new Error(`expected several backends to answer, saw only ${[...seen.keys()].join(', ')}`);

    step('`pharos service list` on the LB node');
    show(await pharos(['service', 'list']));

    step('A few metrics from http://127.0.0.1:9643/metrics');
    const metrics = await lab.output('lb', ['curl', '-sf', `http://${AGENT_HTTP}/metrics`]);
    // Named families, not a prefix: the l2_ family alone has a dozen lines and would crowd out the packet counts.
    const shown = /^pharos_(datapath_packets_total|ipam_pool_addresses|conntrack_entries|l2_announced|l2_gratuitous_sent_total)\b/;
    show(metrics.split('\n').filter((l) => shown.test(l)).slice(0, 14).join('\n'));

    if (values.keep) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      cleaned = true; // leave everything in place
      console.log(`\nThe lab keeps running. Try:
  ip netns exec ${lab.ns('client')} curl http://${vip}/
  ip netns exec ${lab.ns('lb')} node ${cli} service list
  ip netns exec ${lab.ns('lb')} curl -s http://${AGENT_HTTP}/metrics | grep ^pharos_
  edit ${manifestsDir}/demo.yaml (the agent picks changes up within a second)
Remove it with: for ns in $(ip netns list | grep -o '^${PREFIX}-[a-z0-9]*'); do ip netns del $ns; done; kill ${agent.pid}`);
      lab.detach();
      return 0;
    }
    console.log('\ndemo complete: every step succeeded');
    return 0;
  } catch (err) {
    console.error(`\npharos demo: FAILED: ${(err as Error).message}`);
    if (values.keep) {
      console.error(`--keep: the lab is left as it is for inspection (namespaces ${PREFIX}-*, agent log in ${work})`);
      lab.detach();
    }
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!values.keep) await cleanup();
  }
}
