/**
 * `npm run bench:attach`: generic XDP against the tc build of the same data
 * path (bpf/lib/ctx.h) on veth, with real TCP, in a kind-shaped lab: plain
 * veth pairs, no XDP programs on the peers, default checksum offloads on
 * every host. This is where `--xdp-mode auto` has to choose on a virtual
 * device (bpf/README.md, "XDP or tc on veth").
 *
 *   cli ns [eth0] ──veth── [c0]  lb ns  [b0] ──veth── [eth0] be ns
 *   tcpbench clients      pharos on c0, b0     tcpbench serve
 *                         (SNAT to b0's address)
 *
 * Each mode gets its own three namespaces (same addresses; namespaces do
 * not see each other), all built before measuring, and the modes take
 * turns window by window, so load from others on the machine hits both.
 *
 * Per mode: TCP stream throughput (one connection, the kernel's GSO/TSO
 * as a pod gets them), connections per second (connect, server closes,
 * client reads EOF), ARP answer round trip from the client kernel's
 * arping, and once at the end the same TCP with the LB's egress computing
 * checksums in software (`tx off` on b0: what a NIC with checksum offload
 * does to a packet whose checksum is still partial).
 *
 * Writes bench/results/attach.json and bench/results/attach.md.
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
import { writeBenchChart } from './lib/bench-charts.js';
import { median, movedCounters } from './lib/stats.js';
import { connectionsPerSecond, tcpbench } from './lib/tcpbench.js';

const PREFIX = 'phatt';
const MODES = ['generic', 'tc'] as const;
type Mode = (typeof MODES)[number];

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const STREAM_S = Number(process.env.BENCH_STREAM_S ?? 3);
const CPS_S = Number(process.env.BENCH_CPS_S ?? 3);
const CPS_THREADS = 2;
const ARP_COUNT = 50;

const VIP = '198.19.0.10';
const STREAM_PORT = 80;
const CPS_PORT = 81;
const BE = '198.18.1.2';
const LB_IFACES = ['c0', 'b0'];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function log(msg: string): void {
  process.stderr.write(`[bench:attach] ${msg}\n`);
}

function frontends(): Frontend[] {
  const fe = (port: number, target: number): Frontend => ({
    service: `bench/tcp-${port}`, kind: 'LoadBalancer', address: VIP, port, protocol: 'TCP',
    backends: [{ address: BE, port: target, weight: 1, state: 'active' }],
    sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [],
  });
  return [fe(STREAM_PORT, 5001), fe(CPS_PORT, 5002)];
}

interface Chain {
  mode: Mode;
  cli: string;
  lb: string;
  be: string;
  dp: LoadedDatapath;
  liveness: NodeJS.Timeout;
  counters0: ReasonCounters;
}

async function buildChain(lab: Lab, native: NativeAddon, mode: Mode, tool: string): Promise<Chain> {
  const [cli, lb, be] = [`cli-${mode}`, `lb-${mode}`, `be-${mode}`];
  await lab.addNamespace(cli);
  await lab.addNamespace(lb, { forwarding: true });
  await lab.addNamespace(be);
  await lab.addLink({ ns: cli, ifname: 'eth0', addrs: ['198.18.0.1/24'] }, { ns: lb, ifname: 'c0', addrs: ['198.18.0.2/24'] });
  await lab.addLink({ ns: lb, ifname: 'b0', addrs: ['198.18.1.1/24'] }, { ns: be, ifname: 'eth0', addrs: [`${BE}/24`] });
  await lab.exec(cli, ['ip', 'route', 'add', '198.19.0.0/24', 'dev', 'eth0']); // the VIP is on-link: ARP answered by pharos
  await lab.exec(be, ['ip', 'route', 'add', 'default', 'via', '198.18.1.1']);
  // What the agent sets on the interfaces it attaches to (loader.ts enableAcceptLocal) and a router's rp_filter.
  await lab.exec(lb, ['sysctl', '-q', '-w', 'net.ipv4.conf.all.accept_local=1', 'net.ipv4.conf.c0.accept_local=1', 'net.ipv4.conf.b0.accept_local=1',
    'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.c0.rp_filter=0', 'net.ipv4.conf.b0.rp_filter=0']);
  await lab.exec(lb, ['ping', '-c1', '-W1', '-q', BE]);

  const pinDir = `/run/pharos/bpffs/${PREFIX}-attach-${mode}`;
  removePins(pinDir);
  // BENCH_GENERIC_OBJECT: a variant of the XDP build for the generic row (investigation).
  const objectPath = mode === 'generic' ? process.env.BENCH_GENERIC_OBJECT : undefined;
  const dp = loadDatapath({
    addon: native, pinDir, hook: mode === 'tc' ? 'tc' : 'xdp', ...(objectPath ? { objectPath } : {}),
    sizes: { conntrack: 262144, frontends: 64, backends: 64 },
  });
  const sync = new DatapathSync(native, dp.maps);
  sync.readState();
  sync.setNodeConfig({ snatV4: '198.18.1.1', portMin: 1024, portMax: 65535 });
  const res = sync.apply(frontends());
  if (res.errors.length) throw new Error(`pharos sync: ${JSON.stringify(res.errors)}`);
  const lbPath = lab.nsPath(lb);
  for (const ifname of LB_IFACES) {
    if (mode === 'tc') dp.attachTcIngress(ifname, { netns: lbPath });
    else dp.attachXdp(ifname, { netns: lbPath, mode: 'generic' });
    dp.attachTcEgress(ifname, { netns: lbPath });
  }
  sync.setResponder(VIP, native.ifIndex('c0', lbPath), await lab.mac(lb, 'c0'));
  sync.touchLiveness();
  const liveness = setInterval(() => sync.touchLiveness(), 500);

  const server = lab.spawn(be, [tool, 'serve', '5001', '5002']);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('tcpbench serve did not start')), 5000);
    server.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) { clearTimeout(timer); resolve(); } });
  });
  return { mode, cli, lb, be, dp, liveness, counters0: readReasonCounters(dp.maps.stats) };
}

async function streamGbps(lab: Lab, c: Chain, tool: string, seconds: number): Promise<number> {
  const r = await lab.exec(c.cli, [tool, 'stream', VIP, String(STREAM_PORT), String(seconds)], { timeoutMs: (seconds + 10) * 1000, allowFail: true });
  const bytes = Number(r.stdout.trim());
  return r.code === 0 && Number.isFinite(bytes) ? (bytes * 8) / seconds / 1e9 : 0;
}

function chainCps(lab: Lab, c: Chain, tool: string, seconds: number): Promise<{ cps: number; failed: number }> {
  return connectionsPerSecond(lab, c.cli, tool, VIP, CPS_PORT, seconds, CPS_THREADS);
}

/** The client kernel asks for the VIP ARP_COUNT times (arping, 10 ms apart): answers and their median round trip. */
async function arpAnswers(lab: Lab, c: Chain): Promise<{ answered: number; rttUsMedian: number }> {
  const r = await lab.exec(c.cli, ['arping', '-c', String(ARP_COUNT), '-W', '0.01', '-i', 'eth0', VIP], { timeoutMs: 30_000, allowFail: true });
  const rtts = [...r.stdout.matchAll(/time=([\d.]+) (usec|msec|sec)/g)].map((m) => Number(m[1]) * (m[2] === 'usec' ? 1 : m[2] === 'msec' ? 1000 : 1e6));
  return { answered: rtts.length, rttUsMedian: Math.round(median(rtts)) };
}

interface ModeResult {
  mode: Mode;
  stream_gbps: number[];
  cps: number[];
  cps_failed: number;
  arp: { answered: number; asked: number; rtt_us_median: number };
  egress_csum_completed: { stream_gbps: number; cps: number };
  counters: Record<string, number>;
}

const fmt = (xs: number[], digits: number): string => xs.map((x) => x.toFixed(digits)).join(', ');
const spread = (xs: number[], digits: number): string => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;

function markdown(results: ModeResult[], load: string): string {
  const out: string[] = ['# Generic XDP vs tc on veth (bench/attach.ts)', ''];
  out.push(`Kernel ${release()}, ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} vCPU). Load average (1 min) at start / end: ${load}.`);
  out.push(`Real TCP with SNAT through the same pharos data path on both LB interfaces, plain veth, no XDP on peers, default offloads. ${RUNS} interleaved runs per mode: stream ${STREAM_S} s (one connection), connections ${CPS_S} s (${CPS_THREADS} client threads; connect, server closes, client reads EOF).`, '');
  out.push('| mode | TCP stream Gbit/s (median) | runs | conn/s (median) | runs | ARP answered | ARP RTT µs (median) | TCP with checksums completed on egress |');
  out.push('|---|---:|---|---:|---|---:|---:|---|');
  for (const r of results) {
    const e = r.egress_csum_completed;
    out.push(`| ${r.mode} | ${median(r.stream_gbps).toFixed(2)} | ${fmt(r.stream_gbps, 2)} | ${Math.round(median(r.cps))} | ${fmt(r.cps, 0)} | ${r.arp.answered}/${r.arp.asked} | ${r.arp.rtt_us_median} | ${e.stream_gbps > 0 && e.cps > 0 ? 'works' : '**fails**'} (${e.stream_gbps.toFixed(2)} Gbit/s, ${Math.round(e.cps)} conn/s) |`);
  }
  out.push('', 'Spread (min–max): ' + results.map((r) => `${r.mode} stream ${spread(r.stream_gbps, 2)} Gbit/s, conn/s ${spread(r.cps, 0)}`).join('; ') + '.', '');
  out.push('## pharos counters over the whole run', '');
  for (const r of results) out.push(`- ${r.mode}: ${Object.entries(r.counters).map(([k, v]) => `${k}=${v}`).join(', ') || 'none'}${r.cps_failed ? `; client connection failures ${r.cps_failed}` : ''}`);
  out.push('');
  return out.join('\n');
}

async function main(): Promise<void> {
  const started = Date.now();
  const loadStart = loadavg()[0]!.toFixed(1);
  const native = addon();
  const tool = tcpbench();
  await Lab.cleanup(PREFIX);
  const lab = new Lab(PREFIX);
  const chains: Chain[] = [];
  const results: ModeResult[] = [];
  try {
    const selected = process.env.BENCH_MODES ? MODES.filter((m) => process.env.BENCH_MODES!.split(',').includes(m)) : [...MODES];
    for (const mode of selected) {
      log(`mode ${mode}: building the chain`);
      chains.push(await buildChain(lab, native, mode, tool));
    }
    const arp = new Map<Mode, Awaited<ReturnType<typeof arpAnswers>>>();
    for (const c of chains) arp.set(c.mode, await arpAnswers(lab, c));
    const stream = new Map<Mode, number[]>(chains.map((c) => [c.mode, []]));
    const cps = new Map<Mode, number[]>(chains.map((c) => [c.mode, []]));
    const failed = new Map<Mode, number>(chains.map((c) => [c.mode, 0]));
    for (let i = 0; i < RUNS; i++) {
      for (let j = 0; j < chains.length; j++) {
        const c = chains[(i + j) % chains.length]!;
        stream.get(c.mode)!.push(await streamGbps(lab, c, tool, STREAM_S));
        await sleep(200);
      }
      for (let j = 0; j < chains.length; j++) {
        const c = chains[(i + j) % chains.length]!;
        const r = await chainCps(lab, c, tool, CPS_S);
        cps.get(c.mode)!.push(r.cps);
        failed.set(c.mode, failed.get(c.mode)! + r.failed);
        await sleep(200);
      }
      log(`run ${i + 1}/${RUNS}: ${chains.map((c) => `${c.mode} ${stream.get(c.mode)!.at(-1)!.toFixed(2)} Gbit/s ${Math.round(cps.get(c.mode)!.at(-1)!)} conn/s`).join(', ')}`);
    }
    for (const c of chains) {
      // A NIC (or skb_checksum_help) completes a partial checksum from what the
      // field holds: wrong there, wrong on the wire, and the backend drops it.
      await lab.exec(c.lb, ['ethtool', '-K', 'b0', 'tx', 'off']);
      const e = { stream_gbps: await streamGbps(lab, c, tool, 1), cps: (await chainCps(lab, c, tool, 1)).cps };
      await lab.exec(c.lb, ['ethtool', '-K', 'b0', 'tx', 'on']);
      const a = arp.get(c.mode)!;
      results.push({
        mode: c.mode, stream_gbps: stream.get(c.mode)!, cps: cps.get(c.mode)!, cps_failed: failed.get(c.mode)!,
        arp: { answered: a.answered, asked: ARP_COUNT, rtt_us_median: a.rttUsMedian },
        egress_csum_completed: e,
        counters: movedCounters(readReasonCounters(c.dp.maps.stats), c.counters0),
      });
      log(`${c.mode}: stream ${median(stream.get(c.mode)!).toFixed(2)} Gbit/s, ${Math.round(median(cps.get(c.mode)!))} conn/s, ARP ${a.answered}/${ARP_COUNT} (${a.rttUsMedian} µs), egress csum completed: ${e.stream_gbps.toFixed(2)} Gbit/s ${Math.round(e.cps)} conn/s`);
    }
  } finally {
    for (const c of chains) {
      clearInterval(c.liveness);
      try {
        c.dp.close();
      } catch (e) {
        log(`close ${c.mode}: ${(e as Error).message}`);
      }
      removePins(c.dp.pinDir);
    }
    await lab.teardown();
  }
  const load = `${loadStart} / ${loadavg()[0]!.toFixed(1)}`;
  const knobs = Object.keys(process.env).filter((k) => k.startsWith('BENCH_'));
  const dir = knobs.length ? join(tmpdir(), 'pharos-bench') : join(dirname(fileURLToPath(import.meta.url)), 'results');
  if (knobs.length) log(`${knobs.join(', ')} set: writing to ${dir}, not bench/results`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'attach.json'), JSON.stringify({ kernel: release(), load, runs: RUNS, results }, null, 2) + '\n');
  writeFileSync(join(dir, 'attach.md'), markdown(results, load));
  writeBenchChart('attach', dir);
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s; wrote ${join(dir, 'attach.md')}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
