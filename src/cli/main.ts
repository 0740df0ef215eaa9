#!/usr/bin/env node
/**
 * `pharos` entry point: dispatches to one module per command (src/cli/<command>.ts).
 * Commands are loaded lazily so `pharos --help` stays fast and a command's
 * dependencies (the native addon, the Kubernetes client) load only when used.
 */
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { realpathSync } from 'node:fs';

export interface CommandSpec {
  name: string;
  summary: string;
  /** Module under src/cli/ exporting `run(argv): Promise<number>`; absent = not implemented yet. */
  module?: string;
}

export const COMMANDS: CommandSpec[] = [
  { name: 'agent', summary: 'run the agent (Kubernetes in-cluster, --kubeconfig, or --manifests DIR)', module: 'agent' },
  { name: 'status', summary: 'show the agent\'s health, data path and sources', module: 'status' },
  { name: 'service', summary: 'service list: frontends and their backends', module: 'service' },
  { name: 'pool', summary: 'pool list: LB IP pools, conflicts and free addresses', module: 'pool' },
  { name: 'l2', summary: 'l2 list: addresses announced on the local segment and their holders', module: 'l2' },
  { name: 'bgp', summary: 'bgp peers | bgp routes: BGP sessions and advertised routes', module: 'bgp' },
  { name: 'bpf', summary: 'bpf ct list: connection tracking entries in the data path', module: 'bpf' },
  { name: 'explain', summary: 'explain service NS/NAME: its addresses and why, who announces them, the data path, problems, what to check', module: 'explain' },
  { name: 'config', summary: 'config view: the agent\'s effective configuration', module: 'config' },
  { name: 'convert', summary: 'convert Cilium and MetalLB manifests into pharos manifests', module: 'convert' },
  { name: 'demo', summary: 'run a self-contained lab: a client reaches a load-balanced service through XDP', module: 'demo' },
  { name: 'lab', summary: 'lab up | lab down: an emulated Kubernetes cluster of network namespaces', module: 'lab' },
];

export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}${c.module ? '' : ' (not implemented yet)'}`);
  return [
    'pharos: LoadBalancer services for bare-metal Linux and Kubernetes',
    '',
    'Usage: pharos <command> [flags]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `pharos <command> --help` for the flags of one command.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  if (name === '--version') {
    console.log('pharos 0.1.0');
    return 0;
  }
  const spec = COMMANDS.find((c) => c.name === name);
  if (!spec) {
    console.error(`pharos: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  if (!spec.module) {
    console.error(`pharos: "${name}" is not implemented yet`);
    return 3;
  }
  const mod = (await import(`./${spec.module}.js`)) as { run(argv: string[]): Promise<number> };
  return mod.run(rest);
}

// Run as a program (also through a link such as /usr/local/bin/pharos), not when imported by a test.
if (process.argv[1] && realpathSync(resolve(process.argv[1])) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      console.error(`pharos: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
