/**
 * The monitoring lab: the BGP agent lab (bird2 with BFD in `router`, one
 * `pharos agent --manifests` in `lb`) with one LoadBalancer service that is
 * both announced by L2 (ARP on eth0) and advertised by BGP, and an HTTP
 * backend in the router namespace (the same link, so the agent's data path
 * forwards on eth0 only). The router's kernel routes the service's pool
 * on-link, so a client request there ARPs for the address (pharos's XDP
 * responder answers) and goes through the data path to the backend and back:
 * every family the dashboard and the rules read has samples.
 *
 * Three faults make the families that only count trouble show something: the
 * frontend map holds 16 entries and 17 services need one
 * (FrontendMapFull: pharos_bpf_map_full_total,
 * pharos_datapath_services_not_programmed), and a third service asks for
 * an address outside every pool (pharos_ipam_services_unsatisfied), and a
 * manifest file is past --manifests-max-file-bytes
 * (pharos_manifests_refused_total).
 */
import type { Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBgpAgentLab, type BgpAgentLab } from '../bgp/support/agent-lab.js';
import { httpGet, startEchoServer } from '../support/lab.js';
import { waitFor } from '../support/wait.js';
import type { AgentStateView } from '../../src/metrics/state-view.js';
import { bgpPolicy } from '../support/manifests.js';

export const MON_VIP_POOL = '203.0.113.128/27';
/** The agent's HTTP endpoint inside the `lb` namespace. */
export const AGENT_HTTP = '127.0.0.1:9643';

/** The frontend map's size (the smallest the agent takes) and one service more than it holds, besides shop/web. */
const FRONTEND_MAP_SIZE = 16;
const FILLERS = Array.from({ length: FRONTEND_MAP_SIZE }, (_, i) => `---
apiVersion: v1
kind: Service
metadata: { name: s${String(i + 1).padStart(2, '0')}, namespace: zfill }
spec:
  type: LoadBalancer
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: TCP }]
`).join('');

/** Past it a manifest file is refused unread (our all.yaml is ~6 KiB). */
const MAX_FILE_BYTES = 65536;

const MANIFESTS = `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: mon-pool }
spec:
  blocks: [{ cidr: ${MON_VIP_POOL} }]
---
apiVersion: lb.pharos.io/v1alpha1
kind: L2AnnouncementPolicy
metadata: { name: l2 }
spec: { loadBalancerIPs: true, interfaces: ["^eth0$"] }
---
${bgpPolicy(['bfd: { receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3 }'])}---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop, labels: { bgp: "yes" } }
spec:
  type: LoadBalancer
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: TCP }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: shop, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
  - addresses: [198.18.0.1]
    conditions: { ready: true }
${FILLERS}---
apiVersion: v1
kind: Service
metadata: { name: outside, namespace: shop, annotations: { lb.pharos.io/ips: 192.0.2.77 } }
spec:
  type: LoadBalancer
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: TCP }]
`;

export interface MonitoringLab extends BgpAgentLab {
  vip: string;
  /** Sends `n` HTTP requests from the router namespace to the service; returns how many were answered. */
  traffic(n: number): Promise<number>;
  metricsText(): Promise<string>;
}

export async function startMonitoringLab(t: Test, prefix: string): Promise<MonitoringLab> {
  const base = await startBgpAgentLab(t, {
    prefix, manifests: MANIFESTS, bfd: { minRxMs: 300, minTxMs: 300, multiplier: 3 }, env: { PHAROS_FRONTEND_MAP_SIZE: String(FRONTEND_MAP_SIZE), PHAROS_MANIFESTS_MAX_FILE_BYTES: String(MAX_FILE_BYTES) },
  });
  writeFileSync(join(base.manifestsDir, 'zz-too-large.yaml'), `# padding past --manifests-max-file-bytes\n${'#'.repeat(MAX_FILE_BYTES)}\n`);
  const { lab, bird, diag } = base;
  await startEchoServer(lab, 'router', { name: 'be', port: 8080, host: '198.18.0.1' });
  await lab.exec('router', ['ip', 'route', 'add', MON_VIP_POOL, 'dev', 'lb0']);
  const vip = await waitFor('an address for shop/web', 30_000, async () => {
    const r = await lab.exec('lb', ['curl', '-sf', `http://${AGENT_HTTP}/v1/state`], { allowFail: true });
    if (r.code !== 0) return undefined;
    return (JSON.parse(r.stdout) as AgentStateView).services.find((s) => s.key === 'shop/web')?.ingress[0];
  }).catch(diag);
  await waitFor('BGP Established and BFD Up in bird', 30_000, async () =>
    (await bird.established('198.18.0.2')) && /^up$/i.test((await bird.bfdState('198.18.0.2')) ?? ''), { everyMs: 200 }).catch(diag);
  const traffic = async (n: number): Promise<number> => {
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const body = await httpGet(lab, 'router', `http://${vip}/`, { timeoutMs: 2000 }).catch(() => '');
      if (body.startsWith('be ')) ok++;
    }
    return ok;
  };
  await waitFor('the service answers through the data path', 20_000, async () => ((await traffic(1)) === 1 ? true : undefined)).catch(diag);
  const metricsText = async (): Promise<string> => (await lab.exec('lb', ['curl', '-sf', `http://${AGENT_HTTP}/metrics`])).stdout;
  return { ...base, vip, traffic, metricsText };
}
