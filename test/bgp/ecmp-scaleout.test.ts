/**
 * ECMP scale-out: two LB nodes, each with the real pharos XDP data path and
 * a BgpSpeaker, advertise the same VIP to a bird2 router with multipath; the
 * router spreads client flows over both by an L4 hash.
 *
 * The lab is src/lab/ecmp-lab.ts (bench/failover-bgp.ts stands on it too):
 *
 *                                   ┌ up0 [phge-a: XDP, speaker] eth0 ┐
 *   phge-cli ── c0 [phge-rtr: bird] ┤                                 ├ br0 [phge-sw] ── be1, be2, be3
 *                                   └ up0 [phge-b: XDP, speaker] eth0 ┘
 *
 * Each node SNATs to its own eth0 address, so a backend's answer
 * (`beN <source>`) names the backend and the LB node that carried the flow.
 * Both nodes share the hash seed and the Maglev table, so a flow (same
 * 5-tuple) pinned through either node reaches the same backend.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { privilegedUnavailable } from '../support/privileged.js';
import { withLab, type Lab } from '../support/lab.js';
import { ADDON_PATH, loadAddon, type NativeAddon } from '../../src/native/libbpf.js';
import { removePins } from '../../src/datapath/loader.js';
import { readReasonCounters } from '../../src/datapath/stats.js';
import { SpeakerProcess } from '../../src/lab/bgp/speaker-process.js';
import { routerNextHops } from '../../src/lab/topology.js';
import { buildEcmpLab, ecmpFrontends, ecmpPeer, startEcmpBgp, ecmpNodes, startEcmpDatapath, stopEcmpDatapath, type EcmpNode } from '../../src/lab/ecmp-lab.js';
import { waitFor } from '../support/wait.js';

const PEER = fileURLToPath(new URL('../datapath/lab-peer.mjs', import.meta.url));
const VIP = '203.0.113.100';
const HASH_SEED = 0x5eed1234;
const BACKENDS = [1, 2, 3];
const CONNECTIONS = 240;

const NODES = ecmpNodes().map((n) => ({ ...n, speaker: undefined as SpeakerProcess | undefined }));
const pinDir = (n: EcmpNode): string => `/run/pharos/bpffs/phg-ecmp-${n.name}`;

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

const skip = privilegedUnavailable() || (!existsSync(ADDON_PATH) && 'native addon not built (npm run build:native)');

t.test('ECMP scale-out: two XDP LB nodes behind a multipath bird2 router', { skip }, async (t) => {
  const lab: Lab = await withLab(t, 'phge');
  const addon: NativeAddon = loadAddon();
  for (const n of NODES) removePins(pinDir(n));
  t.teardown(() => {
    for (const n of NODES) stopEcmpDatapath(n, pinDir(n));
  });
  await buildEcmpLab(lab, NODES, BACKENDS);
  // Data path on each node: same seed, same frontends, managed neighbours.
  for (const n of NODES) await startEcmpDatapath(lab, addon, n, { pinDir: pinDir(n), hashSeed: HASH_SEED, frontends: ecmpFrontends(VIP, BACKENDS) });

  // ---- BGP: bird2 with multipath into the kernel; one speaker per node
  const { bird, speakers } = await startEcmpBgp(lab, NODES, { teardown: (stop) => t.teardown(stop) });
  for (const [i, n] of NODES.entries()) {
    n.speaker = speakers[i];
    await n.speaker!.apply({ peers: [ecmpPeer(n, VIP, { holdTimeSeconds: 9 })] });
  }
  const kernelNexthops = (): Promise<string[]> => routerNextHops(lab, VIP);
  const both = NODES.map((n) => n.uplink).sort();
  await waitFor('the VIP routed over both LB nodes', 20_000, async () => JSON.stringify(await kernelNexthops()) === JSON.stringify(both), { everyMs: 100 })
    .catch((e) => { throw new Error(`${(e as Error).message}\n${bird.log.slice(-2000)}\n${NODES.map((n) => n.speaker!.stderr.slice(-1500)).join('\n')}`); });
  t.pass('bird installed a two-path route to the VIP from both speakers');

  const nodeOf = (body: string): string | undefined => NODES.find((n) => body.endsWith(` ${n.snat}`))?.name;

  await t.test(`${CONNECTIONS} HTTP connections: all complete, both LB nodes carry traffic`, async (t) => {
    const before = NODES.map((n) => readReasonCounters(n.dp!.maps.stats));
    const res = await lab.exec('cli', [process.execPath, PEER, 'http-many', `http://${VIP}/`, String(CONNECTIONS), '8'], { timeoutMs: 90_000 });
    const { bodies, failures } = JSON.parse(res.stdout) as { bodies: string[]; failures: string[] };
    t.same(failures, [], 'no connection failed');
    t.equal(bodies.length, CONNECTIONS, 'every connection got its answer');
    t.ok(bodies.every((b) => /^be[123] 198\.18\.10\.[12]$/.test(b)), 'answered by a backend, through one of the nodes');
    const perNode = countBy(bodies.map((b) => nodeOf(b) ?? '?'));
    const perBackend = countBy(bodies.map((b) => b.split(' ')[0]!));
    t.comment(`per node ${JSON.stringify(perNode)}, per backend ${JSON.stringify(perBackend)}`);
    // Binomial(240, 1/2): σ ≈ 7.7; 20% (48) is 9σ below the mean.
    for (const n of NODES) t.ok((perNode[n.name] ?? 0) >= CONNECTIONS * 0.2, `node ${n.name} carried ${perNode[n.name] ?? 0} connections`);
    t.same(Object.keys(perBackend).sort(), ['be1', 'be2', 'be3'], 'every backend served');
    for (const [i, n] of NODES.entries()) {
      const after = readReasonCounters(n.dp!.maps.stats);
      const created = after.ct_create - before[i]!.ct_create;
      t.ok(created >= BigInt(perNode[n.name] ?? 0), `node ${n.name}'s XDP created ${created} flows (≥ its ${perNode[n.name] ?? 0} connections)`);
      t.ok(after.fwd_redirect - before[i]!.fwd_redirect > 0n || after.fwd_tx - before[i]!.fwd_tx > 0n, `node ${n.name} forwarded in XDP`);
    }
  });

  await t.test('the same 5-tuple reaches the same backend through either LB node', async (t) => {
    // Pin the client's flows to one node at a time with a policy-routing table
    // in front of bird's multipath route, then replay the same source ports.
    await lab.exec('rtr', ['ip', 'rule', 'add', 'iif', 'c0', 'lookup', '100', 'pref', '100']);
    // curl may close first and leave the port in TIME_WAIT for 60 s: keep none in the client.
    await lab.exec('cli', ['sysctl', '-qw', 'net.ipv4.tcp_max_tw_buckets=0']);
    const ports = Array.from({ length: 24 }, (_, k) => 31000 + k * 7);
    const seen: Record<string, string[]> = {};
    for (const n of NODES) {
      await lab.exec('rtr', ['ip', 'route', 'replace', `${VIP}/32`, 'via', n.uplink, 'table', '100']);
      seen[n.name] = [];
      for (const port of ports) {
        // A port still closing on the client refuses bind: retry briefly.
        let body = '';
        for (let attempt = 0; attempt < 10 && !body; attempt++) {
          const r = await lab.exec('cli', ['curl', '-sS', '--fail', '--noproxy', '*', '--max-time', '3', '--local-port', String(port), `http://${VIP}/`], { allowFail: true, timeoutMs: 6000 });
          if (r.code === 0) body = r.stdout;
          else if (r.code !== 45) throw new Error(`curl from port ${port} via ${n.name}: exit ${r.code} ${r.stderr}`);
          else await new Promise((res) => setTimeout(res, 100));
        }
        t.equal(nodeOf(body), n.name, `port ${port} pinned through node ${n.name}`);
        seen[n.name]!.push(body.split(' ')[0]!);
      }
    }
    t.same(seen.a, seen.b, 'each flow reached the same backend through node a and through node b');
    t.ok(new Set(seen.a).size >= 2, `the pinned flows still spread over backends (${JSON.stringify(countBy(seen.a!))})`);
  });
});
