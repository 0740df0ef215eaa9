/**
 * `npm run bench:cps`: TCP connections per second through a load balancer
 * in a kind-shaped lab — the figure LoxiLB publishes (45k CPS against
 * IPVS's 24k on a Xeon) — for pharos SNAT, pharos DSR (L2 dispatch),
 * kernel iptables DNAT + MASQUERADE (kube-proxy's shape), and the client
 * talking to the backend directly (no LB: the ceiling of this machine).
 *
 *   client 198.18.0.1 ─┐
 *   lb     198.18.0.2 ─┼─ br0 (namespace sw)     VIP 198.19.0.10:5002, routed via lb
 *   backend 198.18.0.3 ┘                          (DSR: the backend holds it on lo, ARP-silent)
 *
 * One segment, one-armed LB, plain veth, no XDP programs on peers, default
 * offloads; pharos at tc ingress + egress of the LB's eth0 (what
 * `--xdp-mode auto` picks on veth), loaded directly (no agent) as in
 * bench/attach.ts. Each mode has its own namespaces (a Lab per mode), all
 * built before measuring; modes take turns run by run, so load from others
 * on the machine hits them alike. A connection: connect, the server closes,
 * the client reads EOF (bench/tools/tcpbench.c).
 *
 * Writes bench/results/cps.json, cps.md and cps.svg (a tmp dir when a BENCH_ knob is
 * set). Knobs: BENCH_RUNS (5), BENCH_CPS_S (3), BENCH_MODES (comma list).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addon, type NativeAddon } from '../src/native/libbpf.js';
import { loadDatapath, removePins, type LoadedDatapath } from '../src/datapath/loader.js';
import { DatapathSync } from '../src/datapath/sync.js';
import { readReasonCounters, type ReasonCounters } from '../src/datapath/stats.js';
import type { Frontend } from '../src/model/types.js';
import { Lab } from '../src/lab/netns.js';
import { buildCluster } from '../src/lab/topology.js';
import { writeBenchChart } from './lib/bench-charts.js';
import { median, movedCounters } from './lib/stats.js';
import { connectionsPerSecond, tcpbench } from './lib/tcpbench.js';

export const CPS_MODES = ['direct', 'pharos-snat', 'pharos-dsr', 'iptables'] as const;
export type CpsMode = (typeof CPS_MODES)[number];

const CLIENT = '198.18.0.1';
const LB = '198.18.0.2';
const BACKEND = '198.18.0.3';
const VIP = '198.19.0.10';
const PORT = 5002;
const THREADS = 2;

function log(msg: string): void {
  process.stderr.write(`[bench:cps] ${msg}\n`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Rig {
  mode: CpsMode;
  lab: Lab;
  /** Where the client connects. */
  target: string;
  dp?: LoadedDatapath;
  liveness?: NodeJS.Timeout;
  counters0?: ReasonCounters;
}

function frontend(mode: CpsMode): Frontend {
  return {
    service: 'bench/cps', kind: 'LoadBalancer', address: VIP, port: PORT, protocol: 'TCP',
    backends: [{ address: BACKEND, port: PORT, weight: 1, state: 'active' }],
    sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [],
    ...(mode === 'pharos-dsr' ? { forwardingMode: 'dsr' as const } : {}),
  };
}

async function buildRig(native: NativeAddon, mode: CpsMode, tool: string): Promise<Rig> {
  const prefix = `phcps-${mode}`;
  await Lab.cleanup(prefix);
  const lab = new Lab(prefix);
  const rig: Rig = { mode, lab, target: mode === 'direct' ? BACKEND : VIP };
  await buildCluster(lab, {
    hosts: [{ name: 'client', lan: [`${CLIENT}/24`] }, { name: 'backend', lan: [`${BACKEND}/24`] }],
    nodes: [{ name: 'lb', lan: [`${LB}/24`] }],
  });
  await lab.exec('client', ['ip', 'route', 'add', `${VIP}/32`, 'via', LB]);
  // One-armed: traffic leaves by the interface it came in on; no ICMP redirects for it.
  await lab.exec('lb', ['sysctl', '-q', '-w', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0',
    'net.ipv4.conf.all.accept_local=1', 'net.ipv4.conf.eth0.accept_local=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0']);
  await lab.exec('lb', ['ping', '-c1', '-W1', '-q', BACKEND]);
  await lab.exec('client', ['ping', '-c1', '-W1', '-q', LB]);

  if (mode === 'pharos-dsr') {
    await lab.exec('backend', ['sysctl', '-q', '-w', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2', 'net.ipv4.conf.eth0.arp_ignore=1', 'net.ipv4.conf.eth0.arp_announce=2']);
    await lab.exec('backend', ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
  }
  if (mode === 'iptables') {
    await lab.exec('lb', ['iptables-legacy', '-t', 'nat', '-A', 'PREROUTING', '-d', VIP, '-p', 'tcp', '--dport', String(PORT), '-j', 'DNAT', '--to-destination', `${BACKEND}:${PORT}`]);
    await lab.exec('lb', ['iptables-legacy', '-t', 'nat', '-A', 'POSTROUTING', '-d', BACKEND, '-p', 'tcp', '--dport', String(PORT), '-j', 'MASQUERADE']);
  }
  if (mode === 'pharos-snat' || mode === 'pharos-dsr') {
    const pinDir = `/run/pharos/bpffs/${prefix}`;
    removePins(pinDir);
    const dp = loadDatapath({ addon: native, pinDir, hook: 'tc', sizes: { conntrack: 262144, frontends: 64, backends: 64 } });
    const sync = new DatapathSync(native, dp.maps);
    sync.readState();
    sync.setNodeConfig({ snatV4: LB, portMin: 1024, portMax: 65535 });
    const res = sync.apply([frontend(mode)]);
    if (res.errors.length) throw new Error(`pharos sync: ${JSON.stringify(res.errors)}`);
    const lbPath = lab.nsPath('lb');
    dp.attachTcIngress('eth0', { netns: lbPath });
    dp.attachTcEgress('eth0', { netns: lbPath });
    sync.touchLiveness();
    rig.dp = dp;
    rig.liveness = setInterval(() => sync.touchLiveness(), 500);
    rig.counters0 = readReasonCounters(dp.maps.stats);
  }

  const server = lab.spawn('backend', [tool, 'serve', '5001', String(PORT)]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('tcpbench serve did not start')), 5000);
    server.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) { clearTimeout(timer); resolve(); } });
  });
  return rig;
}

async function closeRig(rig: Rig): Promise<void> {
  clearInterval(rig.liveness);
  if (rig.dp) {
    try {
      rig.dp.close();
    } catch (e) {
      log(`close ${rig.mode}: ${(e as Error).message}`);
    }
    removePins(rig.dp.pinDir);
  }
  await rig.lab.teardown();
}

export interface CpsResult {
  mode: CpsMode;
  cps: number[];
  failed: number;
  /** pharos modes: the data path's reason counters over the run (dsr_l2 shows the DSR path ran). */
  counters?: Record<string, number>;
}

/** Builds every mode's lab, runs `runs` interleaved rounds of `seconds` each, tears everything down. */
export async function runCps(opts: { modes: readonly CpsMode[]; runs: number; seconds: number }): Promise<CpsResult[]> {
  const native = addon();
  const tool = tcpbench();
  const rigs: Rig[] = [];
  try {
    for (const mode of opts.modes) {
      log(`${mode}: building its lab`);
      rigs.push(await buildRig(native, mode, tool));
    }
    const cps = new Map<CpsMode, number[]>(rigs.map((r) => [r.mode, []]));
    const failed = new Map<CpsMode, number>(rigs.map((r) => [r.mode, 0]));
    for (let i = 0; i < opts.runs; i++) {
      for (let j = 0; j < rigs.length; j++) {
        const rig = rigs[(i + j) % rigs.length]!;
        const r = await connectionsPerSecond(rig.lab, 'client', tool, rig.target, PORT, opts.seconds, THREADS);
        cps.get(rig.mode)!.push(r.cps);
        failed.set(rig.mode, failed.get(rig.mode)! + r.failed);
        await sleep(200);
      }
      log(`run ${i + 1}/${opts.runs}: ${rigs.map((r) => `${r.mode} ${Math.round(cps.get(r.mode)!.at(-1)!)}`).join(', ')} conn/s`);
    }
    return rigs.map((rig) => ({
      mode: rig.mode, cps: cps.get(rig.mode)!, failed: failed.get(rig.mode)!,
      ...(rig.dp && rig.counters0 ? { counters: movedCounters(readReasonCounters(rig.dp.maps.stats), rig.counters0) } : {}),
    }));
  } finally {
    for (const rig of rigs) await closeRig(rig);
  }
}

export function cpsMarkdown(results: readonly CpsResult[], meta: { load: string; runs: number; seconds: number }): string {
  const out = ['# TCP connections per second through the LB (bench/cps.ts)', ''];
  out.push(`Kernel ${release()}, ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} vCPU). Load average (1 min) at start / end: ${meta.load}.`);
  out.push(`One segment, one-armed LB, plain veth, default offloads; ${meta.runs} interleaved runs of ${meta.seconds} s per mode, ${THREADS} client threads (connect, server closes, client reads EOF).`, '');
  const direct = median(results.find((r) => r.mode === 'direct')?.cps ?? []);
  out.push('| mode | conn/s (median) | of direct | runs | failed connects |', '|---|---:|---:|---|---:|');
  for (const r of results) {
    const m = median(r.cps);
    out.push(`| ${r.mode} | ${Math.round(m)} | ${Number.isFinite(direct) && direct > 0 ? `${(m / direct).toFixed(2)}x` : '—'} | ${r.cps.map((x) => Math.round(x)).join(', ')} | ${r.failed} |`);
  }
  out.push('', '## pharos counters over the whole run', '');
  for (const r of results) if (r.counters) out.push(`- ${r.mode}: ${Object.entries(r.counters).map(([k, v]) => `${k}=${v}`).join(', ') || 'none'}`);
  out.push('');
  return out.join('\n');
}

async function main(): Promise<void> {
  const loadStart = loadavg()[0]!.toFixed(1);
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  const seconds = Number(process.env.BENCH_CPS_S ?? 3);
  const modes = process.env.BENCH_MODES ? CPS_MODES.filter((m) => process.env.BENCH_MODES!.split(',').includes(m)) : [...CPS_MODES];
  const results = await runCps({ modes, runs, seconds });
  const load = `${loadStart} / ${loadavg()[0]!.toFixed(1)}`;
  const knobs = Object.keys(process.env).filter((k) => k.startsWith('BENCH_'));
  const dir = knobs.length ? join(tmpdir(), 'pharos-bench') : join(dirname(fileURLToPath(import.meta.url)), 'results');
  if (knobs.length) log(`${knobs.join(', ')} set: writing to ${dir}, not bench/results`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'cps.json'), JSON.stringify({ kernel: release(), load, runs, seconds, results }, null, 2) + '\n');
  writeFileSync(join(dir, 'cps.md'), cpsMarkdown(results, { load, runs, seconds }));
  writeBenchChart('cps', dir);
  for (const r of results) log(`${r.mode}: ${Math.round(median(r.cps))} conn/s (median), ${r.failed} failed`);
  log(`wrote ${join(dir, 'cps.md')}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
