/**
 * `npm run bench:bgp`: how fast an assigned address reaches a real router.
 *
 * bird2 runs in namespace phbb-r1; the pharos speaker runs in phbb-spk in a
 * child process driven the way the agent drives it (Store → BgpController →
 * desiredBgp → BgpSpeaker, sockets from the native addon), over an eBGP session.
 *
 *  - assign_to_route_ms_median: 100 times, one LoadBalancer service gets an
 *    address in the store; the time until the /32 is in bird's table, read
 *    from bird's own route timestamp (`timeformat route iso long ms`), so
 *    polling adds nothing. Median (p90 and max are printed and stored too).
 *  - advertise_10k_ms: 10,000 services appear in one relist; the time until
 *    all 10,000 routes are in bird's table (the newest route timestamp).
 *
 * Writes bench/results/bgp.json:
 *   {"assign_to_route_ms_median": n, "advertise_10k_ms": n, "router": "bird2", ...}
 * Targets: median ≤ 50 ms; 10,000 prefixes in ≤ 2,000 ms. Needs root.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../src/lab/netns.js';
import { Bird } from '../src/lab/bgp/routers.js';
import { SpeakerProcess } from '../src/lab/bgp/speaker-process.js';
import type { ModelObject } from '../src/model/types.js';
import { writeBenchChart } from './lib/bench-charts.js';
import { modelService } from '../src/lab/manifests.js';

const ROUTER_ASN = 65000;
const SPEAKER_ASN = 65001;
const SAMPLES = 100;
const BULK = 10_000;
const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results', 'bgp.json');

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** bird prints local time ("2026-11-22 09:10:11.123"); so does Date without a zone. */
function birdTime(text: string): number {
  return new Date(text.replace(' ', 'T')).getTime();
}

const ROUTE_LINE = /^(\S+\/\d+)\s+unicast\s+\[\S+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]/gm;

async function routeTime(bird: Bird, prefix: string, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    const r = await bird.birdc(['show', 'route', 'table', 'master4', prefix]);
    for (const m of r.stdout.matchAll(ROUTE_LINE)) if (m[1] === prefix) return birdTime(m[2]!);
    if (Date.now() > deadline) break;
    await sleep(2);
  }
  throw new Error(`${prefix} not in bird's table within ${timeoutMs} ms`);
}

function service(i: number, ip: string): ModelObject {
  return modelService({ name: `assign-${i}`, namespace: 'bench' }, {
    ports: [{ name: '', protocol: 'TCP', port: 80, targetPort: 80 }],
    status: { ingress: [{ ip }], conditions: [] },
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:bgp needs root (network namespaces)');
  await Lab.cleanup('phbb');
  const lab = new Lab('phbb');
  let bird: Bird | undefined;
  let speaker: SpeakerProcess | undefined;
  try {
    await lab.addNamespace('spk');
    await lab.addNamespace('r1', { forwarding: true });
    await lab.addLink({ ns: 'spk', ifname: 's1', addrs: ['198.51.100.1/29'] }, { ns: 'r1', ifname: 'e0', addrs: ['198.51.100.2/29'] });
    bird = new Bird({
      lab, ns: lab.ns('r1'), asn: ROUTER_ASN, routerId: '198.51.100.2',
      neighbors: [{ address: '198.51.100.1', asn: SPEAKER_ASN, local: '198.51.100.2' }],
    }, 'timeformat route iso long ms;');
    await bird.start();
    speaker = new SpeakerProcess(lab.ns('spk'), { routerId: '198.51.100.1', nodeName: 'bench-node', native: true });
    await speaker.storeApply([{
      kind: 'BGPPeeringPolicy', flavor: 'pharos',
      meta: { name: 'bench', labels: {}, annotations: {} },
      virtualRouters: [{
        localASN: SPEAKER_ASN, exportPodCIDR: false, serviceAdvertisements: ['LoadBalancerIP'],
        neighbors: [{
          peerAddress: '198.51.100.2', peerASN: ROUTER_ASN, peerPort: 179, eBGPMultihopTTL: 1,
          connectRetryTimeSeconds: 1, holdTimeSeconds: 9, keepAliveTimeSeconds: 3,
          gracefulRestart: { enabled: false, restartTimeSeconds: 120 },
          families: [{ afi: 'ipv4', safi: 'unicast' }], advertisedPathAttributes: [],
        }],
      }],
    }]);
    await speaker.storeSync();
    for (let i = 0; i < 300 && !(await bird.established('198.51.100.1')); i++) await sleep(50);
    if (!(await bird.established('198.51.100.1'))) throw new Error(`session did not come up\n${speaker.stderr}\n${bird.log}`);

    const latencies: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const prefix = `198.18.0.${i + 1}/32`;
      const t0 = await speaker.storeApply([service(i, `198.18.0.${i + 1}`)]);
      latencies.push(Math.max(0, (await routeTime(bird, prefix)) - t0));
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const median = percentile(sorted, 50);
    console.log(`assign → route in bird: median ${median} ms, p90 ${percentile(sorted, 90)} ms, max ${sorted.at(-1)} ms`);

    // The relist replaces the 100 assign-* services with 10,000 bench-* ones.
    const t0 = await speaker.benchServices(BULK);
    const deadline = Date.now() + 60_000;
    let count = 0;
    while (Date.now() < deadline) {
      const r = await bird.birdc(['show', 'route', 'table', 'master4', 'where', 'source', '=', 'RTS_BGP', 'count']);
      count = Number(/(\d+) of \d+ routes/.exec(r.stdout)?.[1] ?? 0);
      if (count === BULK) break;
      await sleep(20);
    }
    if (count !== BULK) throw new Error(`bird has ${count} routes, expected ${BULK}`);
    const table = await bird.birdc(['show', 'route', 'table', 'master4']);
    let newest = 0;
    for (const m of table.stdout.matchAll(ROUTE_LINE)) newest = Math.max(newest, birdTime(m[2]!));
    const bulkMs = newest - t0;
    console.log(`${BULK} prefixes in bird's table after ${bulkMs} ms`);
    const status = await speaker.status();

    const result = {
      assign_to_route_ms_median: median,
      advertise_10k_ms: bulkMs,
      router: 'bird2',
      assign_to_route_ms_p90: percentile(sorted, 90),
      assign_to_route_ms_max: sorted.at(-1),
      samples: SAMPLES,
      prefixes: BULK,
      updates_sent: status.totals.updatesSent,
      targets: { assign_to_route_ms_median: 50, advertise_10k_ms: 2000 },
    };
    mkdirSync(dirname(RESULTS), { recursive: true });
    writeFileSync(RESULTS, `${JSON.stringify(result, null, 2)}\n`);
    writeBenchChart('bgp', dirname(RESULTS));
    console.log(JSON.stringify(result));
  } finally {
    await speaker?.kill();
    await bird?.stop();
    await lab.teardown();
  }
}

await main();
