/**
 * `node dist/lab/apiserver/main.js [--port N] [--host H] [--cilium] [--crds DIR] [--kubeconfig FILE]`
 *
 * Runs the emulator in the foreground for manual kubectl use; writes a
 * kubeconfig pointing at it when asked. Stops on SIGINT/SIGTERM.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startApiServer } from './server.js';

export function kubeconfigFor(url: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: pharos-lab',
    '  cluster:',
    `    server: ${url}`,
    'users:',
    '- name: pharos-lab',
    '  user:',
    '    token: pharos-lab',
    'contexts:',
    '- name: pharos-lab',
    '  context:',
    '    cluster: pharos-lab',
    '    user: pharos-lab',
    'current-context: pharos-lab',
    '',
  ].join('\n');
}

/** Every CustomResourceDefinition in the *.yaml/*.yml/*.json files of `dir`. */
export function readCrds(dir: string): object[] {
  const out: object[] = [];
  for (const f of readdirSync(dir).sort()) {
    if (!/\.(ya?ml|json)$/.test(f)) continue;
    for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      const o = doc.toJS();
      if (o?.kind === 'CustomResourceDefinition') out.push(o);
    }
  }
  return out;
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const port = Number(arg('--port') ?? 0);
  const crdDir = arg('--crds');
  const api = await startApiServer({
    port,
    host: arg('--host') ?? '127.0.0.1',
    cilium: argv.includes('--cilium'),
    crds: crdDir ? readCrds(crdDir) : [],
  });
  const kubeconfig = arg('--kubeconfig');
  if (kubeconfig) writeFileSync(kubeconfig, kubeconfigFor(api.url));
  process.stdout.write(`pharos API emulator listening on ${api.url}\n`);
  process.stdout.write(`  kubectl --server ${api.url} get svc -A\n`);
  process.stdout.write(`  kubectl --server ${api.url} apply --validate=false -f FILE\n`);
  const stop = () => void api.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  });
}
