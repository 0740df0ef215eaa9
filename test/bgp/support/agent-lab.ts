/**
 * The lab the agent-level BGP tests share: a router namespace running bird2
 * (AS 64500, 198.18.0.1/30) and an LB namespace (198.18.0.2/30) running
 * `pharos agent --manifests` on its eth0 with the test's manifests. The
 * agent's output is kept for failure messages; its /v1/state peer and its
 * metrics are one call away. Namespaces, pins and the work directory go
 * with the test.
 */
import type { Test } from 'tap';
import type { ChildProcess } from 'node:child_process';
import { withLab, type Lab } from '../../support/lab.js';
import { parseExposition } from '../../support/prom.js';
import { Bird } from '../../../src/lab/bgp/routers.js';
import { startManifestsAgent } from '../../support/agent.js';
import type { BgpPeerView } from '../../../src/metrics/state-view.js';

const HTTP = '127.0.0.1:9643';

export interface BgpAgentLabOptions {
  /** Namespace prefix (unique per test file); the pins go to /run/pharos/bpffs/<prefix>-lb. */
  prefix: string;
  /** The agent's manifests, as one YAML stream. */
  manifests: string;
  /** bird's BFD timers for the agent, when the test wants BFD. */
  bfd?: { minRxMs: number; minTxMs: number; multiplier: number };
  /** More bird configuration (e.g. static routes to export). */
  birdConfig?: string;
  /** Extra environment for the agent. */
  env?: Record<string, string>;
}

export interface BgpAgentLab {
  lab: Lab;
  bird: Bird;
  agent: ChildProcess;
  /** The agent's manifests directory (rewrite its all.yaml to change what the agent reads). */
  manifestsDir: string;
  /** Everything the agent has written so far. */
  log(): string;
  /** Rethrows with the tails of the agent's and bird's logs. */
  diag(e: Error): never;
  /** The agent's one BGP peer as /v1/state shows it (undefined while the agent does not answer). */
  peer(): Promise<BgpPeerView | undefined>;
  /** The sum of a metric's samples (0 when absent or unanswered). */
  metric(name: string): Promise<number>;
}

export async function startBgpAgentLab(t: Test, o: BgpAgentLabOptions): Promise<BgpAgentLab> {
  const lab = await withLab(t, o.prefix);
  await lab.addNamespace('router', { forwarding: true });
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'router', ifname: 'lb0', addrs: ['198.18.0.1/30'] }, { ns: 'lb', ifname: 'eth0', addrs: ['198.18.0.2/30'] });
  const neighbor = { address: '198.18.0.2', asn: 64512, local: '198.18.0.1', ...(o.bfd ? { bfd: o.bfd } : {}) };
  const bird = new Bird({ lab, ns: 'router', asn: 64500, routerId: '198.18.0.1', neighbors: [neighbor] }, o.birdConfig);
  await bird.start();
  t.teardown(() => bird.stop());
  const agent = startManifestsAgent(t, lab, {
    pinDir: `/run/pharos/bpffs/${o.prefix}-lb`, interfaces: 'eth0', http: HTTP, manifests: { 'all.yaml': o.manifests }, ...(o.env ? { env: o.env } : {}),
  });
  const log = agent.log;
  return {
    lab, bird, agent: agent.proc, manifestsDir: agent.dir,
    log,
    diag: (e: Error): never => { throw new Error(`${e.message}\nagent:\n${log().slice(-3000)}\nbird:\n${bird.log.slice(-2000)}`); },
    peer: async () => {
      const r = await lab.exec('lb', ['curl', '-sf', `http://${HTTP}/v1/state`], { allowFail: true });
      return r.code === 0 ? (JSON.parse(r.stdout) as { bgp: { peers: BgpPeerView[] } }).bgp.peers[0] : undefined;
    },
    metric: async (name: string) => {
      const r = await lab.exec('lb', ['curl', '-sf', `http://${HTTP}/metrics`], { allowFail: true });
      return parseExposition(r.stdout || '').get(name)?.samples.reduce((a, s) => a + s.value, 0) ?? 0;
    },
  };
}
