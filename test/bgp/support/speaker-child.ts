/**
 * A BgpSpeaker in its own process, so a test can run it inside a network
 * namespace (`ip netns exec NS node --import tsx speaker-child.ts OPTIONS`).
 *
 * argv[2]: JSON { routerId, restarting?, md5?: boolean, listenPort?: number }
 * stdin:   one JSON command per line: {id, cmd: 'apply', desired} | {id, cmd: 'status'}
 *          | {id, cmd: 'stop', graceful} | {id, cmd: 'exit'}
 * stdout:  one JSON reply per line: {id, ok, ...}; log lines go to stderr.
 */
import { createInterface } from 'node:readline';
import { BgpSpeaker, type DesiredBgp, type SpeakerOptions } from '../../../src/bgp/speaker.js';

interface ChildOptions {
  routerId: string;
  restarting?: boolean;
  md5?: boolean;
  listenPort?: number;
}

const opts = JSON.parse(process.argv[2] ?? '{}') as ChildOptions;
const speakerOptions: SpeakerOptions = {
  routerId: opts.routerId,
  restarting: opts.restarting ?? false,
  log: (level, msg, fields) => process.stderr.write(`${level} ${msg} ${fields ? JSON.stringify(fields) : ''}\n`),
};
if (opts.listenPort !== undefined) speakerOptions.listen = { port: opts.listenPort };
if (opts.md5) {
  const { addon } = await import('../../../src/datapath/libbpf.js');
  const native = addon();
  speakerOptions.setTcpMd5 = (fd, peer, key) => native.setTcpMd5(fd, peer, key);
}
const speaker = new BgpSpeaker(speakerOptions);
await speaker.listen();

function reply(obj: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let cmd: { id: number; cmd: string; desired?: DesiredBgp; graceful?: boolean };
  try {
    cmd = JSON.parse(line);
  } catch {
    return;
  }
  void (async () => {
    try {
      switch (cmd.cmd) {
        case 'apply':
          speaker.apply(cmd.desired!);
          reply({ id: cmd.id, ok: true });
          break;
        case 'status':
          reply({ id: cmd.id, ok: true, peers: speaker.status(), advertised: speaker.advertised(), totals: speaker.totals() });
          break;
        case 'stop':
          await speaker.stop({ graceful: cmd.graceful ?? true });
          reply({ id: cmd.id, ok: true });
          break;
        case 'exit':
          reply({ id: cmd.id, ok: true });
          process.exit(0);
          break;
        default:
          reply({ id: cmd.id, ok: false, error: `unknown command ${cmd.cmd}` });
      }
    } catch (e) {
      reply({ id: cmd.id, ok: false, error: (e as Error).message });
    }
  })();
});
// The test going away ends us too.
rl.on('close', () => process.exit(0));
