/**
 * A real `pharos agent` in Kubernetes mode inside a lab network namespace,
 * against the test's in-process API emulator, with the RBAC of
 * deploy/kubernetes/ enforced for the agent's service account:
 *
 *   lab namespace <ns>:  agent ──HTTP──► 127.0.0.1:6443 (unix-relay.mjs) ──┐
 *   test process:        API emulator on a Unix socket ◄───────────────────┘
 *
 * The emulator listens on a Unix socket (no TCP port anywhere outside the
 * lab); a relay in the agent's namespace carries the agent's connections to
 * it. The agent's kubeconfig holds the service account's token, so every
 * request it makes is authorized by the Roles and bindings loaded from
 * deploy/kubernetes/*.yaml (a missing grant is a 403, as in a cluster),
 * and recorded (verb, group, resource, namespace, name, code).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { startApiServer, type ApiServer, type ApiServerOptions, type RequestRecord } from '../../src/lab/apiserver/server.js';
import { serviceAccountUser } from '../../src/lab/apiserver/rbac.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';
import { withLab, type Lab, type TeardownHost } from '../support/lab.js';
import { waitFor } from '../support/wait.js';

export const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
export const DEPLOY_DIR = join(PROJECT_ROOT, 'deploy', 'kubernetes');
/** The namespace deploy/kubernetes/ installs pharos into (and the agent's default). */
export const PHAROS_NAMESPACE = 'pharos-system';
export const AGENT_TOKEN = 'pharos-agent-token';
export const AGENT_USER = serviceAccountUser(PHAROS_NAMESPACE, 'pharos');
const API_PORT = 6443;
const HTTP = '127.0.0.1:9643';

export type Json = any;

/** Every document of deploy/kubernetes/*.yaml. */
export function deployDocuments(): Json[] {
  return readdirSync(DEPLOY_DIR).filter((f) => f.endsWith('.yaml')).sort()
    .flatMap((f) => parseAllDocuments(readFileSync(join(DEPLOY_DIR, f), 'utf8')).map((d) => d.toJS() as Json));
}

/** The emulator's plural for a kind (`L2AnnouncementPolicy` → `l2announcementpolicies`). */
export function pluralOf(kind: string): string {
  const k = kind.toLowerCase();
  return k.endsWith('y') ? `${k.slice(0, -1)}ies` : `${k}s`;
}

export interface RunningAgent {
  proc: ChildProcess;
  log: () => string;
  /** GET /v1/state from inside the namespace. */
  state(): Promise<Json>;
  /** SIGTERM and wait (bounded) for the exit. */
  stop(): Promise<number | null>;
}

export class KubeAgentLab {
  readonly requests: RequestRecord[] = [];
  /** Namespaces with a relay running (one per namespace; agents restarted there reuse it). */
  private readonly relays = new Set<string>();

  private constructor(readonly lab: Lab, readonly api: ApiServer, readonly work: string) {
    api.onRequest((r) => {
      if (this.requests.length < 200_000) this.requests.push(r);
    });
  }

  /** A lab (prefix `prefix`) and an emulator holding deploy/kubernetes/ (namespace, service account, RBAC). */
  static async create(t: TeardownHost, prefix: string, opts: Pick<ApiServerOptions, 'cilium'> = {}): Promise<KubeAgentLab> {
    const lab = await withLab(t, prefix);
    const work = mkdtempSync(join(tmpdir(), `${prefix}-`));
    const api = await startApiServer({ ...opts, socketPath: join(work, 'api.sock'), rbac: { users: { [AGENT_TOKEN]: AGENT_USER } } });
    t.teardown(async () => {
      await api.close();
      rmSync(work, { recursive: true, force: true });
    });
    for (const doc of deployDocuments()) api.objects.put(pluralOf(doc.kind), doc);
    return new KubeAgentLab(lab, api, work);
  }

  /** Requests of the agent's service account (the RBAC-checked ones). */
  agentRequests(): RequestRecord[] {
    return this.requests.filter((r) => r.user === AGENT_USER);
  }

  /**
   * Starts the relay and `pharos agent --kubeconfig` in `ns` (which must
   * have `iface`); resolves once /readyz answers 200.
   */
  async startAgent(ns: string, opts: { node: string; iface: string; args?: string[] }): Promise<RunningAgent> {
    const { lab, work } = this;
    if (!this.relays.has(ns)) {
      const relay = lab.spawn(ns, [process.execPath, join(import.meta.dirname, 'unix-relay.mjs'), '127.0.0.1', String(API_PORT), join(work, 'api.sock')]);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('relay not ready in 10 s')), 10_000);
        relay.stdout!.once('data', () => { clearTimeout(timer); resolve(); });
        relay.once('exit', (code) => { clearTimeout(timer); reject(new Error(`relay exited ${code}`)); });
      });
      this.relays.add(ns);
    }
    const kubeconfig = join(work, `kubeconfig-${ns}`);
    writeFileSync(kubeconfig, [
      'apiVersion: v1', 'kind: Config',
      'clusters:', '- name: lab', '  cluster:', `    server: http://127.0.0.1:${API_PORT}`,
      'users:', '- name: pharos', '  user:', `    token: ${AGENT_TOKEN}`,
      'contexts:', '- name: lab', '  context:', '    cluster: lab', '    user: pharos',
      'current-context: lab', '',
    ].join('\n'));
    const pinDir = `/run/pharos/bpffs/${lab.prefix}-${ns}`;
    removePins(pinDir);
    const proc = lab.spawn(ns, [process.execPath, CLI, 'agent', '--kubeconfig', kubeconfig, '--node-name', opts.node, '--interfaces', opts.iface,
      '--pin-dir', pinDir, '--state-dir', join(work, `state-${ns}`), '--http', HTTP, ...(opts.args ?? [])]);
    let log = '';
    const collect = (d: Buffer): void => { log = (log + d.toString()).slice(-200_000); };
    proc.stdout!.on('data', collect);
    proc.stderr!.on('data', collect);
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const agent: RunningAgent = {
      proc,
      log: () => log,
      state: async () => JSON.parse((await lab.exec(ns, ['curl', '-sf', '--max-time', '5', `http://${HTTP}/v1/state`])).stdout),
      stop: async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
        const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
        removePins(pinDir);
        return code;
      },
    };
    await waitFor('the agent ready (/readyz 200)', 60_000, async () => {
      if (proc.exitCode !== null) throw new Error(`agent exited ${proc.exitCode}`);
      const r = await lab.exec(ns, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${HTTP}/readyz`], { allowFail: true });
      return r.stdout === '200' ? true : undefined;
    }, { fatal: (e) => /agent exited/.test(e.message) }).catch((e: Error) => {
      throw new Error(`${e.message}\nagent log:\n${log.slice(-5000)}`);
    });
    return agent;
  }
}
