/**
 * `pharos lab up [--nodes 2|3] [--l2-lease-duration D --l2-lease-renew-deadline D --l2-lease-retry-period D] [--agent-arg FLAG ...]` / `pharos lab down` / `pharos lab status` /
 * `pharos lab agent stop|start NODE`: an emulated Kubernetes cluster of
 * network namespaces that real kubectl drives (see src/lab/cluster.ts).
 */
import { spawn } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../datapath/bpf-build.js';
import {
  BPFFS, CLIENT, DEFAULT_PREFIX, DEFAULT_STATE_DIR, buildNetwork, labLayout, nsName, processAlive, readState, stillOurs, teardownLab, writeState, type LabState,
} from '../lab/cluster.js';
import { leaseAgentArgs } from '../lab/lease-flags.js';
import { Lab } from '../lab/netns.js';
import { controlSocket, serve } from '../lab/supervisor.js';

const HELP = `Usage: pharos lab <up|down|status|agent> [flags]

  up [--nodes 2|3] [--agent-arg FLAG ...]
     [--l2-lease-duration D] [--l2-lease-renew-deadline D] [--l2-lease-retry-period D]
                            start the lab: an emulated API server (with the pharos and
                            Cilium CRDs), LB nodes running \`pharos agent\` in Kubernetes
                            mode, a client and two echo backends (labelled app=echo,
                            answering on 80 and 8080) on one L2 segment; a Deployment's
                            pods are played by the backends and it reports rolled out.
                            The lease flags take Cilium's l2announcements.* values
                            (3s, 1s, 200ms) and set every agent's --l2-lease-duration,
                            --l2-lease-renew, --l2-lease-retry; each --agent-arg goes to
                            every agent (e.g. --agent-arg=--l2-node-lease=2);
                            a failed start keeps its logs and says where
  down                      remove every namespace, process and file the lab made
  status                    show the lab's processes
  agent stop NODE [--signal SIGKILL]   stop one node's agent (failover drills)
  agent start NODE          start it again

Flags:
  --state-dir DIR   where the lab keeps its state, kubeconfig and logs (default ${DEFAULT_STATE_DIR})
  --prefix P        namespace prefix (default ${DEFAULT_PREFIX})`;

function controlCall(stateDir: string, method: string, path: string, timeoutMs = 90_000): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: controlSocket(stateDir), method, path, timeout: timeoutMs }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('the lab supervisor did not answer')));
    req.on('error', reject);
    req.end();
  });
}

function usageText(state: LabState): string {
  const client = nsName(state.prefix, 'client');
  const stateDirFlag = state.stateDir === DEFAULT_STATE_DIR ? '' : ` --state-dir ${state.stateDir}`;
  const nodes = Array.from({ length: state.nodeCount }, (_, i) => `n${i + 1}`);
  return `kubeconfig: ${state.kubeconfig}
API emulator: ${state.apiUrl} (with the pharos and Cilium CRDs)
nodes: ${nodes.join(', ')} (namespaces ${nodes.map((n) => nsName(state.prefix, n)).join(', ')}), each running \`pharos agent\`
client: ${client} (${CLIENT.v4}, ${CLIENT.v6}) on the nodes' segment 198.51.100.0/24
backends: ${nsName(state.prefix, 'be1')}, ${nsName(state.prefix, 'be2')} (echo servers on :80 and :8080, labelled app=echo: services selecting app=echo get their EndpointSlices;
  a Deployment's pods are played by them, so services selecting its pod labels get them too, and it reports rolled out)

  export KUBECONFIG=${state.kubeconfig}
  kubectl apply -f deploy/examples/pool-l2-echo.yaml
  kubectl rollout status deployment/echo
  kubectl get ippools
  kubectl get svc echo -w
  kubectl -n kube-system get lease            # HOLDER of pharos-l2announce-*: the announcing node
  ip netns exec ${client} curl http://<EXTERNAL-IP>/
  pharos lab agent stop <holder>${stateDirFlag}      # watch the lease and the ARP answer move
  pharos lab down${stateDirFlag}
logs: ${state.stateDir}/logs/`;
}

async function up(stateDir: string, prefix: string, nodeCount: number, agentArgs: string[]): Promise<number> {
  const existing = readState(stateDir);
  if (existing?.supervisor && stillOurs(existing.supervisor)) {
    console.log(`pharos lab is already up${existing.ready ? '' : ' (still starting)'} (supervisor pid ${existing.supervisor.pid})\n\n${usageText(existing)}`);
    return 0;
  }
  if (existing || (await Lab.list(prefix)).length > 0) {
    console.log('removing the remains of an earlier lab first');
    await teardownLab(stateDir, prefix);
  }
  if (!existsSync(BPFFS)) {
    console.error(`pharos lab: ${BPFFS} is not mounted: run \`npm run setup\` (deploy/setup.sh) first`);
    return 1;
  }
  const layout = labLayout(prefix, stateDir, nodeCount);
  const state: LabState = { prefix, stateDir, nodeCount, ...(agentArgs.length ? { agentArgs } : {}), namespaces: [], pinDirs: [], children: {} };
  writeState(state);
  try {
    console.log(`building the lab: ${nodeCount} nodes, a client and ${layout.backends.length} backends (namespaces ${prefix}-*)`);
    await buildNetwork(layout, state);
    mkdirSync(join(stateDir, 'logs'), { recursive: true });
    const logPath = join(stateDir, 'logs', 'supervisor.log');
    const fd = openSync(logPath, 'a');
    const sup = spawn(process.execPath, [join(PROJECT_ROOT, 'dist', 'cli', 'main.js'), 'lab', 'serve', '--state-dir', stateDir], { detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const supPid = sup.pid!;
    sup.unref();
    console.log(`starting the API emulator and ${nodeCount} agents (supervisor pid ${supPid}, log ${logPath})`);
    const deadline = Date.now() + 120_000;
    for (let i = 0; i < 1200 && Date.now() < deadline; i++) {
      const s = readState(stateDir);
      if (s?.ready) {
        console.log(`\npharos lab is up\n\n${usageText(s)}`);
        return 0;
      }
      if (s?.error || !processAlive(supPid)) throw new Error(`the lab supervisor failed: ${s?.error ?? 'exited'}\n${readFileSync(logPath, 'utf8').split('\n').slice(-15).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the lab was not ready in 120 s');
  } catch (err) {
    // The logs say why: keep them out of the state directory that goes away.
    const kept = keepLogs(stateDir);
    console.error(`pharos lab up: ${(err as Error).message}\nremoving what was made${kept ? `; the logs are kept in ${kept}` : ''}`);
    await teardownLab(stateDir, prefix);
    return 1;
  }
}

/** Copies `<stateDir>/logs` to a new directory under the temp dir; its path, or undefined without logs. */
function keepLogs(stateDir: string): string | undefined {
  const logs = join(stateDir, 'logs');
  if (!existsSync(logs)) return undefined;
  const dest = mkdtempSync(join(tmpdir(), 'pharos-lab-failed-'));
  cpSync(logs, dest, { recursive: true });
  return dest;
}

async function down(stateDir: string, prefix: string): Promise<number> {
  const state = readState(stateDir);
  const leftovers = await Lab.list(prefix);
  if (!state && leftovers.length === 0) {
    console.log('pharos lab is not up');
    return 0;
  }
  const report = await teardownLab(stateDir, state?.prefix ?? prefix);
  console.log(`stopped: ${report.killed.join(', ') || 'nothing running'}`);
  console.log(`removed namespaces: ${report.namespaces.join(', ') || 'none'}`);
  console.log(`removed ${stateDir}`);
  return 0;
}

async function status(stateDir: string): Promise<number> {
  const state = readState(stateDir);
  if (!state?.supervisor || !stillOurs(state.supervisor)) {
    console.log('pharos lab is not up');
    return 1;
  }
  console.log(`supervisor ${state.supervisor.pid}${state.ready ? ' (ready)' : ' (starting)'}`);
  for (const [role, p] of Object.entries(state.children)) console.log(`${role.padEnd(12)} pid ${p.pid}${stillOurs(p) ? '' : ' (gone)'}`);
  console.log(`\n${usageText(state)}`);
  return 0;
}

async function agent(stateDir: string, verb: string | undefined, node: string | undefined, signal: string): Promise<number> {
  if ((verb !== 'stop' && verb !== 'start') || !node) {
    console.error('usage: pharos lab agent stop|start NODE [--signal SIGTERM|SIGKILL]');
    return 2;
  }
  if (!readState(stateDir)?.ready) {
    console.error('pharos lab is not up');
    return 1;
  }
  const sig = signal.startsWith('SIG') ? signal : `SIG${signal}`;
  const r = await controlCall(stateDir, 'POST', `/agents/${encodeURIComponent(node)}/${verb}${verb === 'stop' ? `?signal=${sig}` : ''}`);
  if (r.status !== 200) {
    console.error(`pharos lab agent ${verb} ${node}: ${String(r.body.error)}`);
    return 1;
  }
  if (verb === 'stop') console.log(r.body.stopped ? `agent ${node} (pid ${String(r.body.stopped)}) stopped with ${sig}` : `agent ${node} was not running`);
  else console.log(`agent ${node} running (pid ${String(r.body.started)})`);
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      nodes: { type: 'string', default: '2' },
      'agent-arg': { type: 'string', multiple: true, default: [] },
      'l2-lease-duration': { type: 'string' },
      'l2-lease-renew-deadline': { type: 'string' },
      'l2-lease-retry-period': { type: 'string' },
      'state-dir': { type: 'string', default: process.env.PHAROS_LAB_STATE_DIR ?? DEFAULT_STATE_DIR },
      prefix: { type: 'string', default: process.env.PHAROS_LAB_PREFIX ?? DEFAULT_PREFIX },
      signal: { type: 'string', default: 'SIGTERM' },
      help: { type: 'boolean', default: false },
    },
  });
  const [cmd, ...rest] = positionals;
  if (values.help || !cmd) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  if (process.getuid?.() !== 0) {
    console.error('pharos lab: needs root (network namespaces, BPF)');
    return 1;
  }
  const stateDir = values['state-dir'];
  const prefix = values.prefix;
  switch (cmd) {
    case 'up': {
      const nodes = Number(values.nodes);
      if (![2, 3].includes(nodes)) {
        console.error('pharos lab up: --nodes is 2 or 3');
        return 2;
      }
      const lease = leaseAgentArgs({ duration: values['l2-lease-duration'], renew: values['l2-lease-renew-deadline'], retry: values['l2-lease-retry-period'] });
      if ('error' in lease) {
        console.error(`pharos lab up: ${lease.error}`);
        return 2;
      }
      // The lease flags first: an explicit --agent-arg of the same flag comes later and wins.
      return up(stateDir, prefix, nodes, [...lease.args, ...(values['agent-arg'] ?? [])]);
    }
    case 'down':
      return down(stateDir, prefix);
    case 'status':
      return status(stateDir);
    case 'agent':
      return agent(stateDir, rest[0], rest[1], values.signal);
    case 'serve':
      return serve(stateDir);
    default:
      console.error(`pharos lab: unknown subcommand "${cmd}"\n\n${HELP}`);
      return 2;
  }
}
