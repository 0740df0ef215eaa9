/**
 * A BgpSpeaker in its own process, so a test can run it inside a network
 * namespace (`ip netns exec NS node --import tsx speaker-child.ts OPTIONS`).
 *
 * argv[2]: JSON { routerId, restarting?, native?: boolean (TCP MD5 and eBGP TTL through
 *          the native addon), listenPort?: number }
 * stdin:   one JSON command per line: {id, cmd: 'apply', desired} | {id, cmd: 'status'}
 *          | {id, cmd: 'stop', graceful} | {id, cmd: 'exit'}
 *          With `nodeName` in the options the speaker is driven by a Store through
 *          BgpController instead: {cmd: 'store-apply', objects} | {cmd: 'store-sync'}
 *          | {cmd: 'bench-services', count, prefix} (generates `count` LoadBalancer
 *          services with addresses 198.18.x.y in one relist); these reply with `t0`,
 *          the wall-clock ms just before the store changed.
 * stdout:  one JSON reply per line: {id, ok, ...}; log lines go to stderr.
 */
import { createInterface } from 'node:readline';
import { BgpSpeaker, type DesiredBgp, type SpeakerOptions } from '../../bgp/speaker.js';
import { BgpController } from '../../bgp/controller.js';
import { Store } from '../../store/store.js';
import { serviceScope } from '../../model/scope.js';
import { ReconcileLoop } from '../../agent/reconcile-loop.js';
import type { ModelObject, Service } from '../../model/types.js';
import { modelService } from '../manifests.js';

interface ChildOptions {
  routerId: string;
  restarting?: boolean;
  native?: boolean;
  listenPort?: number;
  nodeName?: string;
}

function benchService(i: number): Service {
  return modelService({ name: `bench-${i}`, namespace: 'bench' }, {
    ports: [{ name: '', protocol: 'TCP', port: 80, targetPort: 80 }],
    status: { ingress: [{ ip: `198.18.${128 + (i >> 8)}.${i & 255}` }], conditions: [] },
  });
}

const opts = JSON.parse(process.argv[2] ?? '{}') as ChildOptions;
const speakerOptions: SpeakerOptions = {
  routerId: opts.routerId,
  restarting: opts.restarting ?? false,
  log: (level, msg, fields) => process.stderr.write(`${level} ${msg} ${fields ? JSON.stringify(fields) : ''}\n`),
};
if (opts.listenPort !== undefined) speakerOptions.listen = { port: opts.listenPort };
if (opts.native) {
  const { addon } = await import('../../native/libbpf.js');
  speakerOptions.sockets = addon();
}
const speaker = new BgpSpeaker(speakerOptions);
await speaker.listen();
const store = new Store();
if (opts.nodeName) {
  const loop = new ReconcileLoop({ store, requireSynced: true, onError: (_c, err) => process.stderr.write(`bgp reconcile failed: ${err.message}\n`) });
  loop.add(new BgpController(store, speaker, { nodeName: opts.nodeName, isOurService: serviceScope(true) }));
  loop.start();
}

function reply(obj: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let cmd: { id: number; cmd: string; desired?: DesiredBgp; graceful?: boolean; objects?: ModelObject[]; count?: number };
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
        case 'store-apply': {
          const t0 = Date.now();
          for (const o of cmd.objects ?? []) store.apply(o);
          reply({ id: cmd.id, ok: true, t0 });
          break;
        }
        case 'store-sync':
          store.markSynced();
          reply({ id: cmd.id, ok: true });
          break;
        case 'bench-services': {
          const services = Array.from({ length: cmd.count ?? 0 }, (_, i) => benchService(i));
          const t0 = Date.now();
          store.replaceAll('Service', services);
          reply({ id: cmd.id, ok: true, t0 });
          break;
        }
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
