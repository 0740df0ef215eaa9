/**
 * The L2 failover lab (Kubernetes-mode agents on one segment, the API
 * emulator on a management network), shared by the L2 tests
 * (test/l2/*.test.ts) and the benches (bench/failover.ts, bench/scale-kube.ts):
 *
 *   client ─┐                      ┌─ n1 (pharos agent, Kubernetes mode) ─┐
 *   backend ┼── br0 (sw) ──────────┼─ n2 (pharos agent)                   ├─ mgmt link ── br0 (mgmt): API emulator 192.0.2.254:6443
 *           │  198.51.100.0/24     └─ n3 ...                              ┘   192.0.2.0/24
 *           │  2001:db8:51::/64
 *
 * Each LB node reaches the emulator over its own management veth; the
 * emulator runs as a child process in the mgmt namespace and is driven over
 * stdin (emulator.ts). The client and the backend share the segment
 * with the LB nodes: the client's kernel resolves VIPs by ARP/NDP to the
 * holder, the holder's XDP program DNATs (+SNAT) to the backend and sends
 * the frame back out of the same interface.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, labProgram, type Lab, type TeardownHost } from './netns.js';
import { startEchoServer } from './echo.js';
import { API, Emulator } from './emulator.js';
import { PROJECT_ROOT } from '../datapath/bpf-build.js';
import { removePins } from '../datapath/loader.js';
import { addressLeaseName } from '../l2/election-core.js';
import { lbServiceObject } from './manifests.js';
import { buildCluster } from './topology.js';
import { longestGap } from './outage.js';
import { sleep, waitFor as pollFor } from './wait.js';

export const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
export { API, Emulator };
export const CLIENT = { v4: '198.51.100.1', v6: '2001:db8:51::1', seg2: '203.0.113.1' };
export const BACKEND = { v4: '198.51.100.100', v6: '2001:db8:51::100' };
export const POOL = { name: 'lab-pool', v4: ['198.51.100.200', '198.51.100.239'], v6: ['2001:db8:51::200', '2001:db8:51::239'] };
export const NAMESPACE = 'pharos-system';

export type Json = any;

/** Namespace prefix of the lab (`phe` by default; another one lets a second copy run beside a full test run). */
export const LAB_PREFIX = process.env.PHAROS_L2_LAB_PREFIX ?? 'phe';

export interface AgentHandle {
  node: string;
  ns: string;
  proc: ChildProcess;
  log: string[];
  exited: Promise<number | null>;
}

export class L2Lab {
  readonly work = mkdtempSync(join(tmpdir(), 'phe-l2-'));
  readonly kubeconfig = join(this.work, 'kubeconfig');
  api!: Emulator;
  readonly nodes: string[];
  readonly agents = new Map<string, AgentHandle>();
  private emulatorProc?: ChildProcess;

  private constructor(readonly lab: Lab, nodeCount: number) {
    this.nodes = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
  }

  pinDir(node: string): string {
    return `/run/pharos/bpffs/phe-${this.lab.prefix}-${node}`;
  }

  nodeAddr(node: string): { v4: string; v6: string; mgmt: string; seg2: string } {
    const i = this.nodes.indexOf(node) + 11;
    return { v4: `198.51.100.${i}`, v6: `2001:db8:51::${i}`, mgmt: `192.0.2.${i}`, seg2: `203.0.113.${i}` };
  }

  static create(t: TeardownHost, prefix: string, nodeCount: number): Promise<L2Lab> {
    return createLab(t, prefix, (lab) => new L2Lab(lab, nodeCount), (l2) => l2.build());
  }

  private async build(): Promise<void> {
    const { lab } = this;
    for (const n of this.nodes) removePins(this.pinDir(n));
    // A second segment (br1), for moving announcements between interfaces.
    await buildCluster(lab, {
      api: `${API}/24`,
      secondSegment: true,
      hosts: [
        { name: 'client', lan: [`${CLIENT.v4}/24`, `${CLIENT.v6}/64`], seg2: [`${CLIENT.seg2}/24`] },
        { name: 'backend', lan: [`${BACKEND.v4}/24`, `${BACKEND.v6}/64`] },
      ],
      nodes: this.nodes.map((n) => {
        const a = this.nodeAddr(n);
        return { name: n, lan: [`${a.v4}/24`, `${a.v6}/64`], seg2: [`${a.seg2}/24`], mgmt: `${a.mgmt}/24` };
      }),
    });
    await startEchoServer(lab, 'backend', { name: 'backend', port: 8080 });

    const { api, child } = await Emulator.start(lab.ns('mgmt'), this.kubeconfig);
    this.emulatorProc = child;
    this.api = api;
    for (const n of this.nodes) await this.api.put('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: n, labels: { 'kubernetes.io/hostname': n, role: 'lb' } } });
  }

  /** The base objects: the pool and one L2 policy on eth0. */
  async basePolicy(extra: Json = {}): Promise<void> {
    await this.api.put('loadbalancerippools', {
      apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: POOL.name },
      spec: { blocks: [{ start: POOL.v4[0], stop: POOL.v4[1] }, { start: POOL.v6[0], stop: POOL.v6[1] }] },
    });
    await this.api.put('l2announcementpolicies', {
      apiVersion: 'lb.pharos.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'lab-l2' },
      spec: { interfaces: ['^eth0$'], loadBalancerIPs: true, serviceSelector: { matchLabels: { announce: 'yes' } }, ...extra },
    });
  }

  /** A /24 pool and a policy for many services (no traffic is sent to them). */
  async bulkPolicy(): Promise<void> {
    await this.api.put('loadbalancerippools', {
      apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'bulk-pool' },
      spec: { blocks: [{ cidr: '198.18.0.0/24' }] },
    });
    await this.api.put('l2announcementpolicies', {
      apiVersion: 'lb.pharos.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'bulk-l2' },
      spec: { interfaces: ['^eth0$'], loadBalancerIPs: true },
    });
  }

  async bulkServices(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.service(`svc${String(i).padStart(3, '0')}`, { endpoints: false });
  }

  async service(name: string, opts: { dual?: boolean; labels?: Record<string, string>; annotations?: Record<string, string>; port?: number; endpoints?: boolean } = {}): Promise<void> {
    await this.api.put('services', lbServiceObject({
      name, labels: { announce: 'yes', ...opts.labels }, annotations: opts.annotations, dual: opts.dual,
      ports: [{ name: 'http', port: opts.port ?? 80, targetPort: 8080, protocol: 'TCP' }],
    }));
    if (opts.endpoints === false) return;
    for (const [family, addr] of [['IPv4', BACKEND.v4], ...(opts.dual ? [['IPv6', BACKEND.v6]] : [])] as [string, string][]) {
      await this.api.put('endpointslices', {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
        metadata: { name: `${name}-${family.toLowerCase()}`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
        addressType: family, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        endpoints: [{ addresses: [addr], conditions: { ready: true } }],
      });
    }
  }

  /** Starts (or restarts) the agent of `node`; resolves when /readyz says ready. */
  async startAgent(node: string, extra: string[] = [], readyMs = Number(process.env.PHAROS_L2_AGENT_READY_MS ?? 40_000)): Promise<AgentHandle> {
    const ns = this.lab.ns(node);
    // Fresh maps on every start: these tests are about leases, not hitless restarts, and a BPF
    // object rebuilt in between (a changed map definition) could not re-adopt the old pins.
    removePins(this.pinDir(node));
    const proc = this.lab.spawn(node, [process.execPath, CLI, 'agent', '--kubeconfig', this.kubeconfig, '--node-name', node, '--interfaces', 'eth0,eth1',
      '--pin-dir', this.pinDir(node), '--state-dir', join(this.work, `state-${node}`), '--http', '127.0.0.1:9643', '--log-format', 'text', ...extra]);
    const log: string[] = [];
    const collect = (d: Buffer): void => {
      for (const line of d.toString().split('\n')) if (line) log.push(line);
      if (log.length > 5000) log.splice(0, 2500);
    };
    proc.stderr?.on('data', collect);
    proc.stdout?.on('data', collect);
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const handle: AgentHandle = { node, ns, proc, log, exited };
    this.agents.set(node, handle);
    await waitFor(`agent ${node} ready`, readyMs, async () => {
      if (proc.exitCode !== null) throw new Error(`agent ${node} exited ${proc.exitCode}:\n${log.slice(-20).join('\n')}`);
      const r = await this.lab.exec(node, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:9643/readyz'], { allowFail: true });
      return r.stdout === '200' ? true : undefined;
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n${log.slice(-30).join('\n')}`);
    });
    return handle;
  }

  async state(node: string): Promise<Json> {
    const r = await this.lab.exec(node, ['curl', '-sf', 'http://127.0.0.1:9643/v1/state']);
    return JSON.parse(r.stdout);
  }

  async metrics(node: string): Promise<string> {
    return (await this.lab.exec(node, ['curl', '-sf', 'http://127.0.0.1:9643/metrics'])).stdout;
  }

  async kill(node: string, signal: NodeJS.Signals): Promise<void> {
    const a = this.agents.get(node);
    if (!a || a.proc.exitCode !== null || a.proc.signalCode !== null) return;
    a.proc.kill(signal);
    await Promise.race([a.exited, sleep(10_000)]);
  }

  /** Holder of an address's lease (one per address, shared by the services that carry it), as the API has it. */
  async holderOf(address: string): Promise<string | undefined> {
    const l = await this.api.get('leases', NAMESPACE, addressLeaseName(address));
    return l?.spec?.holderIdentity || undefined;
  }

  /** Holder of a service's (first) IPv4 address, as the API has it. */
  async holder(service: string): Promise<string | undefined> {
    const v4 = (await this.vips(service)).find((a) => !a.includes(':'));
    return v4 ? this.holderOf(v4) : undefined;
  }

  /**
   * The MACs that answer ARP for `address` on the client's eth0: `count`
   * requests 200 ms apart (Habets arping, raw output: one MAC per reply),
   * sorted and deduplicated.
   */
  async arpingMacs(address: string, count = 3): Promise<string[]> {
    const r = await this.lab.exec('client', ['arping', '-r', '-i', 'eth0', '-S', CLIENT.v4, '-c', String(count), '-W', '0.2', '-w', String(Math.ceil(count * 0.2) + 2), address], { allowFail: true });
    return [...new Set(r.stdout.split('\n').map((l) => l.trim().toLowerCase()).filter((l) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(l)))].sort();
  }

  async vips(service: string): Promise<string[]> {
    const s = await this.api.get('services', 'default', service);
    return (s?.status?.loadBalancer?.ingress ?? []).map((i: Json) => i.ip);
  }

  async neighbourMac(ns: string, ip: string, dev = 'eth0'): Promise<string | undefined> {
    const r = await this.lab.exec(ns, ['ip', '-j', 'neigh', 'show', ip, 'dev', dev], { allowFail: true });
    try {
      const e = (JSON.parse(r.stdout || '[]') as { lladdr?: string; state?: string[] }[])[0];
      return e?.state?.includes('FAILED') || e?.state?.includes('INCOMPLETE') ? undefined : e?.lladdr;
    } catch {
      return undefined;
    }
  }

  /** Starts the 10 ms prober in the client; `stop()` returns the send times (ms) of answered requests. */
  startProber(url: string, opts: { intervalMs?: number; timeoutMs?: number; durationMs?: number } = {}): { stop: () => Promise<number[]>; started: number; lines: string[] } {
    const proc = this.lab.spawn('client', [process.execPath, labProgram('prober'), url, String(opts.intervalMs ?? 10), String(opts.timeoutMs ?? 300), String(opts.durationMs ?? 60_000)]);
    const times: number[] = [];
    const all: string[] = [];
    let buf = '';
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        all.push(l);
        if (/^\d+ backend/.test(l)) times.push(Number(l.split(' ')[0]));
      }
    });
    const started = performance.now();
    return {
      started,
      lines: all,
      stop: async () => {
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([done, sleep(2000)]);
        return times;
      },
    };
  }

  async teardown(): Promise<void> {
    for (const a of this.agents.values()) if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill('SIGKILL');
    this.emulatorProc?.stdin?.end();
    if (this.emulatorProc && this.emulatorProc.exitCode === null) this.emulatorProc.kill('SIGKILL');
    await this.lab.teardown();
    for (const n of this.nodes) removePins(this.pinDir(n));
    rmSync(this.work, { recursive: true, force: true });
  }
}

export { longestGap };

export { sleep };

/** waitFor of wait.ts, polling every `everyMs`; an agent that exited ends the wait at once. */
export function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>, everyMs = 100): Promise<Exclude<T, false>> {
  return pollFor(what, ms, probe, { everyMs, fatal: (err) => err.message.includes('exited') });
}

