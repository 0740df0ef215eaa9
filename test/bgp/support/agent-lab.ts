/**
 * The lab the agent-level BGP tests share: a router namespace running bird2
 * (AS 64500, 198.18.0.1/30) and an LB namespace (198.18.0.2/30) running
 * `pharos agent --manifests` on its eth0 with the test's manifests. The
 * agent's output is kept for failure messages; its /v1/state peer and its
 * metrics are one call away. Namespaces, pins and the work directory go
 * with the test.
 */
import type { Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { withLab, type Lab } from '../../support/lab.js';
import { parseExposition } from '../../support/prom.js';
import { Bird } from '../../../src/lab/bgp/routers.js';
import { PROJECT_ROOT } from '../../../src/datapath/bpf-build.js';
import { removePins } from '../../../src/datapath/loader.js';
import type { BgpPeerView } from '../../../src/metrics/state-view.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
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
  const pinDir = `/run/pharos/bpffs/${o.prefix}-lb`;
  const lab = await withLab(t, o.prefix);
  const work = mkdtempSync(join(tmpdir(), `${o.prefix}-`));
  t.teardown(() => { rmSync(work, { recursive: true, force: true }); removePins(pinDir); });
  removePins(pinDir);
  await lab.addNamespace('router', { forwarding: true });
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'router', ifname: 'lb0', addrs: ['198.18.0.1/30'] }, { ns: 'lb', ifname: 'eth0', addrs: ['198.18.0.2/30'] });
  const neighbor = { address: '198.18.0.2', asn: 64512, local: '198.18.0.1', ...(o.bfd ? { bfd: o.bfd } : {}) };
  const bird = new Bird({ lab, ns: 'router', asn: 64500, routerId: '198.18.0.1', neighbors: [neighbor] }, o.birdConfig);
  await bird.start();
  t.teardown(() => bird.stop());
  const dir = join(work, 'manifests');
  await lab.exec('lb', ['mkdir', '-p', dir]);
  writeFileSync(join(dir, 'all.yaml'), o.manifests);
  const agent = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'lb-1', '--interfaces', 'eth0',
    '--state-dir', join(work, 'state'), '--pin-dir', pinDir, '--http', HTTP], o.env ? { env: o.env } : undefined);
  let log = '';
  agent.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  agent.stdout?.on('data', (d: Buffer) => { log += d.toString(); });
  t.teardown(() => { if (agent.exitCode === null) agent.kill('SIGKILL'); });
  return {
    lab, bird, agent, manifestsDir: dir,
    log: () => log,
    diag: (e: Error): never => { throw new Error(`${e.message}\nagent:\n${log.slice(-3000)}\nbird:\n${bird.log.slice(-2000)}`); },
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
