/**
 * `pharos lab`: an emulated Kubernetes cluster made of network namespaces.
 *
 *   client ──┐                          ┌── n1 (pharos agent, Kubernetes mode) ──┐
 *   be1 ─────┼── br0 in <p>-sw ─────────┼── n2 ...                               ├── mgmt links ── br0 in <p>-mgmt
 *   be2 ─────┘   198.51.100.0/24        └── n3 ...                               ┘   forwarder 192.0.2.254:6443
 *                2001:db8:51::/64                                                     192.0.2.0/24
 *
 * The API emulator runs in the supervisor process on the host's 127.0.0.1
 * (where kubectl reaches it); agents reach it through a forwarder in the
 * mgmt namespace that relays 192.0.2.254:6443 to a Unix socket of the
 * supervisor (Unix sockets cross network namespaces; no host interface is
 * touched). Everything the lab made is recorded in a state file so
 * `pharos lab down` removes exactly that: namespaces by name, processes
 * by PID, pin directories and the state directory.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './netns.js';
import { buildCluster } from './topology.js';
import { removePins } from '../datapath/loader.js';
import type { LabBackend } from './endpoints.js';

export const DEFAULT_PREFIX = 'pharos-lab';
export const DEFAULT_STATE_DIR = '/run/pharos/lab';
export const API_ADDR = '192.0.2.254';
export const API_PORT = 6443;
export const AGENT_HTTP = '127.0.0.1:9643';
export const CLIENT = { v4: '198.51.100.129', v6: '2001:db8:51::129' };
/** Outside /sys: `ip netns exec` remounts /sys (LAB-FACTS). */
export const BPFFS = '/run/pharos/bpffs';

export interface LabNode {
  name: string;
  v4: string;
  v6: string;
  mgmt: string;
  pinDir: string;
}

export interface LabLayout {
  prefix: string;
  stateDir: string;
  nodes: LabNode[];
  /** `listen`: the ports each echo server answers on. */
  backends: (LabBackend & { listen: number[] })[];
}

/** The ports the lab's backends answer on: the classic walkthroughs' Services use 80 (no targetPort) and 8080. */
export const BACKEND_PORTS = [80, 8080];

/** Addresses stay above .128 so the walkthrough pools (e.g. 198.51.100.0/26) never hand out a host's address. */
export function labLayout(prefix: string, stateDir: string, nodeCount: number): LabLayout {
  const nodes = Array.from({ length: nodeCount }, (_, i) => {
    const name = `n${i + 1}`;
    return { name, v4: `198.51.100.${131 + i}`, v6: `2001:db8:51::${131 + i}`, mgmt: `192.0.2.${11 + i}`, pinDir: `${BPFFS}/${prefix}-${name}` };
  });
  const backends = ['be1', 'be2'].map((name, i) => ({ name, labels: { app: 'echo' }, v4: `198.51.100.${141 + i}`, v6: `2001:db8:51::${141 + i}`, port: 8080, listen: BACKEND_PORTS }));
  return { prefix, stateDir, nodes, backends };
}

export interface LabProcess {
  pid: number;
  /** A string its command line contains: `down` signals a recorded PID only while it still runs this (PIDs get reused). */
  marker: string;
}

export interface LabState {
  prefix: string;
  stateDir: string;
  nodeCount: number;
  /** Extra flags for every agent (`lab up --agent-arg`), e.g. lease timings. */
  agentArgs?: string[];
  /** Namespaces created so far, in creation order. */
  namespaces: string[];
  pinDirs: string[];
  supervisor?: LabProcess;
  /** Processes the supervisor runs, by role (`agent/n1`, `echo/be1`, `forwarder`). */
  children: Record<string, LabProcess>;
  kubeconfig?: string;
  apiUrl?: string;
  ready?: boolean;
  error?: string;
}

export function statePath(stateDir: string): string {
  return join(stateDir, 'state.json');
}

export function readState(stateDir: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(stateDir), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

/** Atomic replace, so a concurrent reader never sees half a file. */
export function writeState(state: LabState): void {
  mkdirSync(state.stateDir, { recursive: true });
  const tmp = `${statePath(state.stateDir)}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2));
  renameSync(tmp, statePath(state.stateDir));
}

/** Alive and not a zombie (PID 1 here does not reap orphans, so a dead supervisor can linger as Z). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** The PID still runs the process we recorded (not a reused PID). */
export function stillOurs(p: LabProcess): boolean {
  return processAlive(p.pid) && cmdlineOf(p.pid).includes(p.marker);
}

export function nsName(prefix: string, short: string): string {
  return `${prefix}-${short}`;
}

/**
 * Creates the namespaces and links of the lab. Every namespace is recorded
 * in `state` (and the state file) as soon as it exists, so a failure half
 * way leaves nothing `down` does not know about; what is built outlives
 * this process (the supervisor and `down` own it).
 */
export async function buildNetwork(layout: LabLayout, state: LabState): Promise<void> {
  const lab = new Lab(layout.prefix);
  const record = (short: string): void => {
    state.namespaces.push(lab.ns(short));
    writeState(state);
  };
  try {
    for (const node of layout.nodes) {
      removePins(node.pinDir);
      state.pinDirs.push(node.pinDir);
    }
    await buildCluster(lab, {
      api: `${API_ADDR}/24`,
      hosts: [
        { name: 'client', lan: [`${CLIENT.v4}/24`, `${CLIENT.v6}/64`] },
        ...layout.backends.map((b) => ({ name: b.name, lan: [`${b.v4!}/24`, `${b.v6!}/64`] })),
      ],
      nodes: layout.nodes.map((n) => ({ name: n.name, lan: [`${n.v4}/24`, `${n.v6}/64`], mgmt: `${n.mgmt}/24` })),
    }, record);
    writeState(state);
  } finally {
    // Also on failure: the state file lists what was made and `lab down` removes it.
    lab.detach();
  }
}

export interface TeardownReport {
  killed: string[];
  namespaces: string[];
}

async function waitGone(pids: number[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 1000 && Date.now() < deadline && pids.some(processAlive); i++) await new Promise((r) => setTimeout(r, 50));
}

/**
 * Removes what the state file lists: the supervisor (SIGTERM, it stops its
 * children), then any recorded process still running its recorded command
 * line (SIGKILL), the namespaces by exact name, the pin directories, the
 * state directory.
 */
export async function teardownLab(stateDir: string, prefix: string): Promise<TeardownReport> {
  const state = readState(stateDir);
  const report: TeardownReport = { killed: [], namespaces: [] };
  if (state?.supervisor && stillOurs(state.supervisor)) {
    process.kill(state.supervisor.pid, 'SIGTERM');
    report.killed.push(`supervisor (${state.supervisor.pid})`);
    await waitGone([state.supervisor.pid], 15_000);
  }
  const latest = readState(stateDir) ?? state;
  const rest = Object.entries(latest?.children ?? {}).filter(([, p]) => stillOurs(p));
  for (const [role, p] of rest) {
    try {
      process.kill(p.pid, 'SIGKILL');
      report.killed.push(`${role} (${p.pid})`);
    } catch { /* gone meanwhile */ }
  }
  await waitGone(rest.map(([, p]) => p.pid), 5000);
  if (state?.supervisor && stillOurs(state.supervisor)) process.kill(state.supervisor.pid, 'SIGKILL');
  const names = new Set([...(latest?.namespaces ?? []), ...(await Lab.list(prefix))]);
  for (const ns of names) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      report.namespaces.push(ns);
    } catch { /* not there */ }
  }
  for (const dir of latest?.pinDirs ?? []) {
    removePins(dir);
    rmSync(dir, { recursive: true, force: true });
  }
  if (existsSync(stateDir)) rmSync(stateDir, { recursive: true, force: true });
  return report;
}
