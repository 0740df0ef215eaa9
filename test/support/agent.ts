/**
 * `pharos agent --manifests` in a lab namespace, as the single-node agent
 * tests run it: a work directory (manifests/, state/) removed after the
 * test, the pin directory removed before and after, the manifests written,
 * the agent's stdout and stderr kept for failure messages, the process
 * killed at teardown. Readiness is the test's to wait for (some tests
 * watch the start itself).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lab, TeardownHost } from '../../src/lab/netns.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';

export const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');

export interface ManifestsAgentOptions {
  /** The agent's pin directory (under /run/pharos/bpffs, unique per test file). */
  pinDir: string;
  /** Comma-separated --interfaces. */
  interfaces: string;
  /** The manifests directory's files: name → content. */
  manifests: Record<string, string>;
  /** --http (default 127.0.0.1:9643). */
  http?: string;
  /** More agent flags. */
  args?: string[];
  /** More environment for the agent. */
  env?: Record<string, string>;
  /** Its namespace (default `lb`). */
  ns?: string;
}

export interface ManifestsAgent {
  proc: ChildProcess;
  /** The manifests directory: write, rewrite or remove files to change what the agent reads. */
  dir: string;
  /** Everything the agent has written so far. */
  log(): string;
  /** Rethrows with the tail of the agent's output. */
  diag(e: Error): never;
}

export function startManifestsAgent(t: TeardownHost, lab: Lab, o: ManifestsAgentOptions): ManifestsAgent {
  const work = mkdtempSync(join(tmpdir(), 'pharos-agent-'));
  t.teardown(() => { rmSync(work, { recursive: true, force: true }); removePins(o.pinDir); });
  removePins(o.pinDir);
  const dir = join(work, 'manifests');
  mkdirSync(dir);
  for (const [name, text] of Object.entries(o.manifests)) writeFileSync(join(dir, name), text);
  const proc = lab.spawn(o.ns ?? 'lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'lb-1', '--interfaces', o.interfaces,
    '--state-dir', join(work, 'state'), '--pin-dir', o.pinDir, '--http', o.http ?? '127.0.0.1:9643', ...(o.args ?? [])], o.env ? { env: o.env } : undefined);
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  proc.stdout?.on('data', (d: Buffer) => { log += d.toString(); });
  t.teardown(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); });
  return {
    proc, dir,
    log: () => log,
    diag: (e: Error): never => { throw new Error(`${e.message}\nagent log:\n${log.slice(-6000)}`); },
  };
}
