/**
 * The Kubernetes API emulator as a child process (emulator-child.ts) in a
 * lab namespace, and the RPC to it over the child's stdin/stdout. The L2
 * lab (l2-lab.ts) and the soak lab (bench/soak/lab.ts) drive their API
 * this way.
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import readline from 'node:readline';
import { labProgram } from './netns.js';

/** The emulator's address on a lab's management network. */
export const API = '192.0.2.254';

export type Json = any;

/** RPC to the emulator child. */
export class Emulator {
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void }>();
  constructor(private readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      let msg: Json;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      const w = this.waiting.get(msg.id);
      if (!w) return;
      this.waiting.delete(msg.id);
      if (msg.error) w.reject(new Error(msg.error));
      else w.resolve(msg.result);
    });
  }

  call(op: string, ...args: Json[]): Promise<Json> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`emulator ${op}: no answer in 10 s`));
      }, 10_000);
      this.waiting.set(id, { resolve: (v) => { clearTimeout(timer); resolve(v); }, reject: (e) => { clearTimeout(timer); reject(e); } });
      this.child.stdin!.write(JSON.stringify({ id, op, args }) + '\n');
    });
  }

  put(resource: string, obj: Json): Promise<Json> {
    return this.call('put', resource, obj);
  }

  get(resource: string, ns: string | null, name: string): Promise<Json> {
    return this.call('get', resource, ns, name);
  }

  list(resource: string, ns?: string): Promise<Json[]> {
    return this.call('list', resource, ns ?? null);
  }

  delete(resource: string, ns: string | null, name: string): Promise<Json> {
    return this.call('delete', resource, ns, name);
  }

  /**
   * Starts emulator-child.ts on API:6443 in namespace `ns` (spawned here, not with lab.spawn: the
   * RPC needs the child's stdin), waits for its ready line and writes a token kubeconfig for it.
   * `wrap` goes before node (e.g. `env -u NODE_OPTIONS`).
   */
  static async start(ns: string, kubeconfig: string, wrap: string[] = []): Promise<{ api: Emulator; child: ChildProcess }> {
    const child = spawnChild('ip', ['netns', 'exec', ns, 'setpriv', '--pdeathsig', 'KILL', '--', ...wrap, process.execPath, labProgram('emulator-child'), API, '6443'],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('emulator not ready in 15 s')), 15_000);
      const rl = readline.createInterface({ input: child.stdout! });
      rl.once('line', () => {
        clearTimeout(timer);
        rl.close();
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`emulator exited ${code}`)));
    });
    writeFileSync(kubeconfig, [
      'apiVersion: v1', 'kind: Config',
      'clusters:', '- name: lab', '  cluster:', `    server: http://${API}:6443`,
      'users:', '- name: lab', '  user:', '    token: lab',
      'contexts:', '- name: lab', '  context:', '    cluster: lab', '    user: lab',
      'current-context: lab', '',
    ].join('\n'));
    return { api: new Emulator(child), child };
  }
}

