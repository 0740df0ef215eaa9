/**
 * Runs the XDP fuzzer against the real pharos program loaded in the fixture
 * world (src/lab/fixture-env.ts: frontends with backends, SNAT,
 * responder entries for the VIPs, static neighbours): sets the world up,
 * starts bench/fuzz/xdp-worker.ts inside its namespace with the program's
 * fd, keeps the responder's liveness stamp fresh while it runs, and returns
 * the worker's failures and summary.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../src/lab/netns.js';
import { ADDR, baseFrontends, FixtureEnv } from '../../src/lab/fixture-env.js';
import type { Frontend } from '../../src/model/types.js';
import type { FuzzFailure, FuzzSummary, WorkerArgs } from './xdp-worker.js';
import type { Ingress } from './xdp-frames.js';

const WORKER = fileURLToPath(new URL('./xdp-worker.ts', import.meta.url));
export const REGRESSIONS_FILE = fileURLToPath(new URL('./regressions/xdp.json', import.meta.url));

export interface Regression {
  name: string;
  hex: string;
  ingress: Ingress;
  /** How the fuzzer made the frame. */
  found: string;
  /** Set while the bug is open (what is wrong, who owns it): the test pins the wrong outcome until it is fixed. */
  open?: string;
}

/**
 * Open data-path bugs the fuzzer found and reported (see the rows with
 * `open` in regressions/xdp.json): frames showing only these are counted
 * apart, so a run keeps hunting for new problems. Remove a line when fixed.
 */
export const KNOWN_ISSUES: readonly string[] = [
];

export function loadRegressions(): Regression[] {
  return JSON.parse(readFileSync(REGRESSIONS_FILE, 'utf8')) as Regression[];
}

/** The fixture frontends plus one whose backend has no route at all (192.0.2.0/24 is not routed in the fixture namespace). */
export function fuzzFrontends(): Frontend[] {
  const base = baseFrontends();
  const tcp80 = base.find((f) => f.address === ADDR.vip4 && f.port === 80)!;
  return [...base, { ...tcp80, service: 'fx/unrouted', address: UNROUTED_VIP, backends: [{ address: '192.0.2.50', port: 8080, weight: 1, state: 'active' }] }];
}

export const UNROUTED_VIP = '198.51.100.19';

export interface FuzzRunOptions {
  seed: number;
  frames: number;
  pinDir: string;
  nsName?: string;
  flushEvery?: number;
  exactCountersEvery?: number;
  maxFailures?: number;
  regressions?: Regression[];
  /** Run every frame through the tc egress program too (default true). */
  tcEgress?: boolean;
  /** Default KNOWN_ISSUES; [] to see them as failures. */
  knownIssues?: readonly string[];
  /** Hard cap on the worker's run time. */
  timeoutMs: number;
  onFailure?: (f: FuzzFailure) => void;
  onProgress?: (p: { frames: number; seconds: number }) => void;
}

export interface RegressionResult { name: string; verdict: number; problems: string[] }

export interface FuzzRunResult { summary: FuzzSummary; failures: FuzzFailure[]; regressions: RegressionResult[] }

export async function runXdpFuzz(lab: Lab, opts: FuzzRunOptions): Promise<FuzzRunResult> {
  const nsName = opts.nsName ?? 'xdp';
  const env = await FixtureEnv.create(lab, opts.pinDir, { nsName });
  const liveness = setInterval(() => env.sync.touchLiveness(), 250);
  try {
    const frontends = fuzzFrontends();
    env.apply(frontends);
    const args: WorkerArgs = {
      seed: opts.seed >>> 0,
      frames: opts.frames,
      pinDir: opts.pinDir,
      ifindex: env.ifindex,
      world: { frontends, local: [ADDR.local4], responder: { fx0: [ADDR.vip4, ADDR.vip6], fb0: [] } },
      flushEvery: opts.flushEvery ?? 20_000,
      exactCountersEvery: opts.exactCountersEvery ?? 8,
      maxFailures: opts.maxFailures ?? 50,
      knownIssues: [...(opts.knownIssues ?? KNOWN_ISSUES)],
      tcEgress: opts.tcEgress ?? true,
      regressions: (opts.regressions ?? []).map(({ name, hex, ingress }) => ({ name, hex, ingress })),
    };
    // PHAROS_FUZZ_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the worker.
    const nodeArgs = (process.env.PHAROS_FUZZ_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const child = spawn('ip', ['netns', 'exec', lab.ns(nsName), process.execPath, ...nodeArgs, '--import', 'tsx', WORKER, JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'pipe', env.dp.xdp.fd, env.dp.tcEgress.fd],
    });
    const failures: FuzzFailure[] = [];
    const regressions: RegressionResult[] = [];
    let summary: FuzzSummary | undefined;
    let stderr = '';
    let buffered = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const msg = JSON.parse(line) as { failure?: FuzzFailure; summary?: FuzzSummary; regression?: RegressionResult; progress?: { frames: number; seconds: number } };
        if (msg.progress) opts.onProgress?.(msg.progress);
        if (msg.regression) regressions.push(msg.regression);
        if (msg.failure) { failures.push(msg.failure); opts.onFailure?.(msg.failure); }
        if (msg.summary) summary = msg.summary;
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    if (!summary) throw new Error(`fuzz worker exited ${code} without a summary (seed ${opts.seed}):\n${stderr.slice(-4000)}`);
    return { summary, failures, regressions };
  } finally {
    clearInterval(liveness);
    env.close();
  }
}

/** One failure as a regression row (for bench/fuzz/regressions/xdp.json). */
export function asRegression(f: FuzzFailure, seed: number): Regression {
  return { name: `seed ${seed} frame ${f.index}: ${f.problems[0] ?? ''}`.slice(0, 160), hex: f.hex, ingress: f.ingress, found: f.how };
}
