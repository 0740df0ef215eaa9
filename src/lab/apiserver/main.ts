/**
 * `node dist/lab/apiserver/main.js [--port N] [--host H] [--cilium] [--crds DIR] [--kubeconfig FILE]`
 * (`--crds` defaults to the bundled deploy/crds/).
 *
 * Runs the emulator in the foreground for manual kubectl use; writes a
 * kubeconfig pointing at it when asked. Stops on SIGINT/SIGTERM.
 */
import { writeFileSync } from 'node:fs';
import { readCrds } from './crds.js';
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
    ...(crdDir ? { crds: readCrds(crdDir) } : {}),
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
