// The line protocol of the API emulator children (test/l2/emulator-child.mjs,
// test/deploy/apiserver-child.mjs): the test writes one JSON request per line
// on stdin, {"id":1,"op":"put","args":[...]}, and reads {"id":1,"result":...}
// or {"id":1,"error":"..."} back on stdout. {"ready":URL} is printed once the
// server is bound; the end of stdin closes it and exits.
import readline from 'node:readline';

export function serveOps(api, ops) {
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
      const result = ops[msg.op](...(msg.args ?? []));
      process.stdout.write(JSON.stringify({ id: msg.id, result }) + '\n');
    } catch (e) {
      process.stdout.write(JSON.stringify({ id: msg?.id, error: String(e?.message ?? e) }) + '\n');
    }
  });
  process.stdin.on('end', () => void api.close().then(() => process.exit(0)));
  process.stdout.write(JSON.stringify({ ready: api.url }) + '\n');
}
