/**
 * bench/tools/tcpbench.c, the benches' TCP load: built on demand into
 * build/bench/tcpbench, and its connections-per-second loop run from a lab
 * namespace (connect, the server closes, the client reads EOF).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import type { Lab } from '../../src/lab/netns.js';

/** Builds bench/tools/tcpbench.c into build/bench/tcpbench when stale; its path. */
export function tcpbench(): string {
  const source = join(PROJECT_ROOT, 'bench', 'tools', 'tcpbench.c');
  const binary = join(PROJECT_ROOT, 'build', 'bench', 'tcpbench');
  if (!existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs) {
    mkdirSync(dirname(binary), { recursive: true });
    execFileSync('cc', ['-O2', '-Wall', '-pthread', '-o', binary, source], { stdio: 'inherit' });
  }
  return binary;
}

/** `tcpbench cps` from namespace `ns` to host:port for `seconds` with `threads` clients: connections per second and failed connects. */
export async function connectionsPerSecond(lab: Lab, ns: string, tool: string, host: string, port: number, seconds: number, threads: number): Promise<{ cps: number; failed: number }> {
  const r = await lab.exec(ns, [tool, 'cps', host, String(port), String(seconds), String(threads)], { timeoutMs: (seconds + 10) * 1000, allowFail: true });
  const [done, failed] = r.stdout.trim().split(/\s+/).map(Number);
  return { cps: (done ?? 0) / seconds, failed: failed ?? 0 };
}
