/**
 * ns/packet of the pharos XDP program through BPF_PROG_TEST_RUN, for the
 * established-flow and the all-new-flows paths, with the conntrack LRU
 * shared (one LRU list) and per-CPU (BPF_F_NO_COMMON_LRU).
 *
 * The harness (bench/bpf/harness.bpf.c) restores the 64-byte UDP frame
 * before each run and tail-calls the program; its own cost (tail call to an
 * empty program) is measured and subtracted. Runs in the fixture namespace
 * (src/lab/fixture-env.ts) so bpf_fib_lookup resolves real neighbours.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BPF_BUILD_DIR, BPF_SOURCE_DIR, PROJECT_ROOT, clangArgs } from '../src/datapath/bpf-build.js';
import { loadAddon, type BpfObject, type NativeAddon } from '../src/native/libbpf.js';
import { u32Key } from '../src/datapath/abi.js';
import { ADDR, FixtureEnv, MAC } from '../src/lab/fixture-env.js';
import { pkt } from '../src/lab/packet.js';
import type { Lab } from '../src/lab/netns.js';

const HARNESS_SRC = join(PROJECT_ROOT, 'bench', 'bpf', 'harness.bpf.c');
const BPF_F_NO_COMMON_LRU = 2;

export interface TestRunNumbers {
  lru: 'shared' | 'per-cpu';
  nsNewFlow: number;
  nsEstablished: number;
  harnessNs: number;
}

function compile(source: string, out: string, defines: string[] = []): string {
  mkdirSync(BPF_BUILD_DIR, { recursive: true });
  const args = clangArgs(source, out);
  execFileSync('clang', [...defines, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return out;
}

/**
 * The benchmark frontend: UDP 198.51.100.30:53 with 64 backends. Many
 * backends because SNAT ports are per backend: with 3 backends an all-new
 * stream would own all 3 × 64,512 ports long before the conntrack LRU
 * (262,144) recycles them, and measure only the exhaustion path.
 */
export const BENCH_VIP = '198.51.100.30';
export const BENCH_BACKENDS = Array.from({ length: 64 }, (_, i) => `198.18.4.${i + 1}`);

export async function addBenchFrontend(lab: Lab, nsName: string, env: FixtureEnv): Promise<void> {
  await lab.exec(nsName, ['sh', '-c', ['ip route add 198.18.4.0/24 dev fb0',
    ...BENCH_BACKENDS.map((a, i) => `ip neigh add ${a} lladdr 02:00:00:00:04:${(i + 1).toString(16).padStart(2, '0')} dev fb0 nud permanent`)].join(' && ')]);
  env.sync.setNodeConfig({ snatV4: ADDR.snat4, snatV6: ADDR.snat6, portMin: 1024, portMax: 65535 });
  env.apply([...env.desired, {
    service: 'bench/udp', kind: 'LoadBalancer', address: BENCH_VIP, port: 53, protocol: 'UDP',
    backends: BENCH_BACKENDS.map((address) => ({ address, port: 5353, weight: 1, state: 'active' as const })),
    sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [],
  }]);
}

export function benchFrame(): Buffer {
  // 64 bytes: Ethernet 14 + IPv4 20 + UDP 8 + 22 payload.
  return pkt().eth({ src: MAC.client, dst: MAC.fx0 }).ipv4({ src: ADDR.client4, dst: BENCH_VIP }).udp({ sport: 10000, dport: 53 }).payload(Buffer.alloc(22, 0x61)).build();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

class Harness {
  private constructor(readonly obj: BpfObject) {}

  static open(addon: NativeAddon, object: string, frame: Buffer, newFlow: boolean): Harness {
    const obj = addon.openObject(object);
    obj.setRodata('tmpl', frame);
    obj.setRodata('new_flow', u32Key(newFlow ? 1 : 0));
    obj.load();
    return new Harness(obj);
  }

  target(fd: number): void {
    this.obj.map('bench_target').update(u32Key(0), u32Key(fd));
  }

  get fd(): number {
    return this.obj.program('bench_harness').fd;
  }

  passFd(): number {
    return this.obj.program('bench_pass').fd;
  }
}

/** Median over `rounds` of the kernel's per-run average with `repeat` runs. */
function nsPerRun(env: FixtureEnv, progFd: number, frame: Buffer, repeat: number, rounds: number): number {
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(frame.length, 4);
  ctx.writeUInt32LE(env.ifindex.fx0, 12);
  const xs: number[] = [];
  for (let i = 0; i < rounds; i++) xs.push(env.addon.testRun(progFd, { data: frame, ctxIn: ctx, netns: env.nsPath, repeat }).duration);
  return median(xs);
}

export async function measureTestRun(lab: Lab, opts: { repeat?: number; rounds?: number; log?: (m: string) => void } = {}): Promise<TestRunNumbers[]> {
  const repeat = opts.repeat ?? 1_000_000;
  const rounds = opts.rounds ?? 5;
  const addon = loadAddon();
  const harnessObj = compile(HARNESS_SRC, join(BPF_BUILD_DIR, 'bench_harness.o'));
  const frame = benchFrame();
  const out: TestRunNumbers[] = [];
  for (const lru of ['shared', 'per-cpu'] as const) {
    const object = compile(join(BPF_SOURCE_DIR, 'lb.bpf.c'), join(BPF_BUILD_DIR, `bench_lb_${lru}.o`),
      lru === 'per-cpu' ? [`-DPH_CT_MAP_FLAGS=${BPF_F_NO_COMMON_LRU}`] : []);
    const nsName = `tr-${lru === 'shared' ? 's' : 'p'}`;
    const env = await FixtureEnv.create(lab, `/run/pharos/bpffs/phd-bench-${lru}`, { nsName, objectPath: object, conntrack: 262144 });
    try {
      await addBenchFrontend(lab, nsName, env);
      const est = Harness.open(addon, harnessObj, frame, false);
      const fresh = Harness.open(addon, harnessObj, frame, true);
      try {
        est.target(est.passFd());
        const harnessNs = nsPerRun(env, est.fd, frame, repeat, rounds);
        est.target(env.dp.xdp.fd);
        nsPerRun(env, est.fd, frame, 1, 1); // create the flow
        const established = nsPerRun(env, est.fd, frame, repeat, rounds) - harnessNs;
        fresh.target(env.dp.xdp.fd);
        const newFlow = nsPerRun(env, fresh.fd, frame, repeat, rounds) - harnessNs;
        const c = env.counters();
        if (c.snat_exhausted > 0n || c.ct_insert_fail > 0n) opts.log?.(`warning: ${c.snat_exhausted} SNAT exhausted, ${c.ct_insert_fail} insert failures during the new-flow run`);
        const row = { lru, nsNewFlow: Math.round(newFlow * 10) / 10, nsEstablished: Math.round(established * 10) / 10, harnessNs };
        opts.log?.(`test-run, ${lru} LRU: new flow ${row.nsNewFlow} ns/pkt, established ${row.nsEstablished} ns/pkt (harness ${harnessNs} ns subtracted)`);
        out.push(row);
      } finally {
        est.obj.close();
        fresh.obj.close();
      }
    } finally {
      env.close();
    }
  }
  return out;
}
