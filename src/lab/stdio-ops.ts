/**
 * The line protocol of the API emulator children (emulator-child.ts here,
 * test/deploy/apiserver-child.mjs): the parent writes one JSON request per
 * line on stdin, {"id":1,"op":"put","args":[...]}, and reads
 * {"id":1,"result":...} or {"id":1,"error":"..."} back on stdout.
 * {"ready":URL} is printed once the server is bound; the end of stdin
 * closes it and exits.
 */
import readline from 'node:readline';

// Each op takes the request's JSON arguments as they come.
export type Ops = Record<string, (...args: any[]) => unknown>;

export function serveOps(api: { url: string; close(): Promise<void> }, ops: Ops): void {
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    let msg: { id?: number; op?: string; args?: unknown[] } | undefined;
    try {
      msg = JSON.parse(line) as { id?: number; op?: string; args?: unknown[] };
      const op = ops[msg.op ?? ''];
      if (!op) throw new Error(`unknown op ${msg.op}`);
      const result = op(...(msg.args ?? []));
      process.stdout.write(JSON.stringify({ id: msg.id, result }) + '\n');
    } catch (e) {
      process.stdout.write(JSON.stringify({ id: msg?.id, error: String((e as Error)?.message ?? e) }) + '\n');
    }
  });
  process.stdin.on('end', () => void api.close().then(() => process.exit(0)));
  process.stdout.write(JSON.stringify({ ready: api.url }) + '\n');
}
