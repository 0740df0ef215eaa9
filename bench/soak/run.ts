/**
 * The soak run: builds the lab (lab.ts), starts the three agents, waits
 * until the router has the service routes, starts the load generator, then
 * injects each fault of the schedule in its own window and waits for the
 * lab to recover before closing the window. Shared by `npm run soak`
 * (bench/soak.ts, profile `full`) and the CI test (test/soak/soak.test.ts,
 * profile `ci`).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseExposition } from '../../src/lab/prom.js';
import { RSS_EDGE, checkTargets, markdownTable, rssEnds, schedule, soakReport, type FaultKind, type SoakProfile, type SoakReport, type TargetCheck, type WindowStats } from './core.js';
import { BACKENDS, NODES, SoakLab, until, type Json } from './lab.js';
import type { TeardownHost } from '../../src/lab/netns.js';
import { lbServiceObject } from '../../src/lab/manifests.js';

export interface SoakResult {
  report: SoakReport;
  /** conntrack-full: the fullest the conntrack map of each Kubernetes-mode node was seen. */
  conntrackPeak: Record<string, { entries: number; capacity: number }>;
  checks: TargetCheck[];
  markdown: string;
  windows: WindowStats[];
  notes: string[];
  load: Json;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function metric(text: string | undefined, name: string, labels: Record<string, string> = {}): number | undefined {
  if (!text) return undefined;
  const fam = parseExposition(text).get(name);
  const samples = fam?.samples.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? [];
  return samples.length ? samples.reduce((a, s) => a + s.value, 0) : undefined;
}

export async function runSoak(t: TeardownHost, opts: {
  prefix: string; profile: SoakProfile; only?: FaultKind[]; log?: (msg: string) => void;
  /** Extra agent flags per node, e.g. { n1: ['--bgp-shutdown', 'withdraw'] }. */
  agentArgs?: Record<string, string[]>;
}): Promise<SoakResult> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`));
  const { profile } = opts;
  const s = await SoakLab.create(t, opts.prefix, profile);
  s.agentArgs = opts.agentArgs ?? {};
  log(`lab ${opts.prefix} built`);
  for (const n of ['n1', 'n2', 'm1']) await s.startAgent(n);
  log('agents ready');

  const initial = await until('addresses for both services', 60_000, async () => {
    const a = await s.addresses();
    return a.kube.length === 1 && a.m1.length === 1 ? a : undefined;
  });
  const kubeVip = initial.kube[0]!;
  const m1Vip = initial.m1[0]!;
  log(`service addresses: soak ${kubeVip} (Kubernetes mode, n1+n2), m1web ${m1Vip} (manifests mode, m1)`);
  const bothUplinks = [SoakLab.nodeUplink('n1'), SoakLab.nodeUplink('n2')].sort();
  const routed = async (): Promise<boolean> =>
    JSON.stringify(await s.nexthops(kubeVip)) === JSON.stringify(bothUplinks) && (await s.nexthops(m1Vip)).includes(SoakLab.nodeUplink('m1'));
  await until('the router to route both services (ECMP over n1 and n2)', 60_000, routed).catch((e: Error) => {
    throw new Error(`${e.message}\nbird:\n${s.bird.log.slice(-3000)}\nn1:\n${s.agents.get('n1')!.log.slice(-20).join('\n')}`);
  });
  for (const url of [`http://${kubeVip}/`, `http://${m1Vip}/`]) {
    await until(`an answer from ${url}`, 30_000, async () => (await s.lab.exec('cli', ['curl', '-sf', '--max-time', '2', url], { allowFail: true })).code === 0);
  }

  const load = await s.startLoad({
    http: [`http://${kubeVip}/`, `http://${kubeVip}/`, `http://${kubeVip}/`, `http://${m1Vip}/`],
    udp: [{ host: kubeVip, port: 53 }],
    httpWorkers: profile.httpWorkers, udpWorkers: profile.udpWorkers, paceMs: profile.paceMs,
    requestsPerConnection: profile.requestsPerConnection, maxRequests: profile.maxRequests, timeCapMs: profile.timeCapMs,
  });
  load.open('warmup');
  await sleep(3000);
  const warm = await load.close();
  log(`warmup: ${JSON.stringify(warm)}`);
  if (warm.requests === 0 || warm.failed > 0) throw new Error(`the lab does not serve cleanly before any fault: ${JSON.stringify(warm)}`);
  // RSS of n2's agent, sampled every second; start and end are medians of the first and last samples (GC noise).
  const rssSamples: number[] = [];
  const rssTimer = setInterval(() => { const v = s.rss('n2'); if (v > 0) rssSamples.push(v); }, 1000);
  rssSamples.push(s.rss('n2'));

  const notes: string[] = [];
  let conntrackPeak: Record<string, { entries: number; capacity: number }> = {};
  const changed: Record<string, boolean> = {};
  const sameAddresses = async (): Promise<boolean> => {
    const a = await s.addresses();
    return JSON.stringify(a) === JSON.stringify(initial);
  };
  const routerBack = (what: string): Promise<boolean> => until(`${what}: routes back over n1 and n2`, 60_000, routed);
  const bgpUp = (nodes: string[]): Promise<unknown> => until(`BGP Established with ${nodes.join(', ')}`, 60_000, async () => {
    for (const n of nodes) if (!(await s.bird.established(n))) return false;
    return true;
  });
  /**
   * Proof that both Kubernetes-mode agents talk to the API again: a new
   * service (no endpoints) must show in both agents' state, with an address
   * from IPAM; then it is deleted. Returns the time it took.
   */
  let probes = 0;
  const apiProbe = async (): Promise<number> => {
    const name = `probe-${++probes}`;
    const t0 = Date.now();
    await s.api.put('services', lbServiceObject({ name, ports: [{ name: 'http', port: 8000 + probes, targetPort: 8080, protocol: 'TCP' }] }));
    await until(`${name} seen by n1 and n2`, 60_000, async () => {
      const svc = await s.api.get('services', 'default', name);
      if (!svc?.status?.loadBalancer?.ingress?.length) return false;
      for (const n of ['n1', 'n2']) if (!((await s.httpGet(n, '/v1/state')) ?? '').includes(`default/${name}`)) return false;
      return true;
    });
    const ms = Date.now() - t0;
    await s.api.delete('services', 'default', name);
    return ms;
  };
  const backendsIn = async (node: string): Promise<string> => (await s.httpGet(node, '/v1/state')) ?? '';

  const faults: Record<FaultKind, () => Promise<void>> = {
    'agent-sigkill': async () => {
      await s.stopAgent('n1', 'SIGKILL');
      await sleep(1000);
      const t0 = Date.now();
      await s.startAgent('n1');
      await bgpUp(['n1']);
      await routerBack('agent-sigkill');
      notes.push(`agent-sigkill: n1's agent SIGKILLed, away 1 s, ready again ${Date.now() - t0} ms after its start; bird kept n1's routes (graceful restart) meanwhile`);
    },
    'agent-restart': async () => {
      const t0 = Date.now();
      await s.stopAgent('n1', 'SIGTERM');
      await s.startAgent('n1');
      await bgpUp(['n1']);
      await routerBack('agent-restart');
      notes.push(`agent-restart: n1's agent SIGTERM + start, ${Date.now() - t0} ms until ready`);
    },
    'api-outage': async () => {
      const watches = await s.api.call('openWatches');
      await s.apiLink(false);
      await sleep(profile.apiOutageMs / 2);
      if (!(await sameAddresses())) changed['api-outage'] = true;
      const ready = await Promise.all(['n1', 'n2'].map(async (n) => (await s.httpGet(n, '/readyz')) !== undefined));
      await sleep(profile.apiOutageMs / 2);
      await s.apiLink(true);
      const ms = await apiProbe();
      notes.push(`api-outage: API unreachable ${profile.apiOutageMs / 1000} s (mgmt bridge down: no answer, no RST; ${watches} watches open before); /readyz during it: n1 ${ready[0] ? 200 : 'not ready'}, n2 ${ready[1] ? 200 : 'not ready'}; a service created after it was allocated and seen by both agents in ${ms} ms`);
    },
    'watch-drop': async () => {
      const watches = await s.api.call('openWatches');
      await s.api.call('closeAllWatches');
      const t0 = Date.now();
      await until('the agents to watch again', 30_000, async () => (await s.api.call('openWatches')) >= watches);
      const reopened = Date.now() - t0;
      const ms = await apiProbe();
      notes.push(`watch-drop: ${watches} watch streams closed by the emulator, as many open again after ${reopened} ms; a service created then was allocated and seen by both agents in ${ms} ms`);
    },
    'bgp-peer-restart': async () => {
      const t0 = Date.now();
      await s.bird.restart();
      await bgpUp(['n1', 'n2', 'm1']);
      await routerBack('bgp-peer-restart');
      notes.push(`bgp-peer-restart: bird graceful restart (kernel routes persist, bird -R), sessions Established again after ${Date.now() - t0} ms`);
    },
    'backend-add': async () => {
      await s.putSlice({ be1: 'ready', be2: 'ready', be3: 'ready' });
      await until('be3 programmed on n1 and n2', 30_000, async () => (await backendsIn('n1')).includes(BACKENDS[2]!.addr) && (await backendsIn('n2')).includes(BACKENDS[2]!.addr));
      // Existing flows stay where they are: wait until every keep-alive connection was replaced once, so be3 gets its share.
      await sleep(profile.requestsPerConnection * profile.paceMs * 1.5);
    },
    'backend-drain': async () => {
      // Drain only while a connection through n1/n2 is on be3 with most of its requests ahead: what the
      // drain must keep serving. Without one (the hash can put none there) the check below has nothing to see.
      const m1Source = NODES.find((n) => n.name === 'm1')!.snat;
      await until('a young connection on be3 through n1/n2', 30_000, async () => Object.values(await load.peek())
        .some((c) => c.served?.startsWith('be3 ') && !c.served.endsWith(` ${m1Source}`) && c.requests <= profile.requestsPerConnection / 2) || undefined, 100);
      await s.putSlice({ be1: 'ready', be2: 'ready', be3: 'terminating' });
      await until('be3 terminating on n1 and n2', 30_000, async () => /terminating/.test(await backendsIn('n1')) && /terminating/.test(await backendsIn('n2')));
      await sleep(3000);
    },
    'backend-remove': async () => {
      await s.putSlice({ be1: 'ready', be2: 'ready' });
      await until('be3 gone from n1 and n2', 30_000, async () => !(await backendsIn('n1')).includes(BACKENDS[2]!.addr) && !(await backendsIn('n2')).includes(BACKENDS[2]!.addr));
    },
    'pool-edit': async () => {
      await s.putPool(['203.0.113.32/28', '203.0.113.0/28']);
      await sleep(2000);
      if (!(await sameAddresses())) changed['pool-edit'] = true;
      await s.putPool(['203.0.113.0/28']);
      await sleep(1000);
    },
    'bad-manifest': async () => {
      const before = await s.httpGet('m1', '/v1/state');
      const bad = join(s.manifests, 'zz-bad.yaml');
      writeFileSync(bad, 'apiVersion: v1\nkind: Service\nmetadata: { name: m1web, namespace: default\nspec: [this is: not, valid\n');
      const problems = await until('m1 to report the malformed manifest', 30_000, async () => {
        const v = metric(await s.httpGet('m1', '/metrics'), 'pharos_config_problems', { source: 'manifests' });
        return v !== undefined && v > 0 ? v : undefined;
      });
      await sleep(2000);
      const during = await s.httpGet('m1', '/v1/state');
      const svc = (x: string | undefined): string => JSON.stringify((JSON.parse(x ?? '{}') as Json).services ?? (JSON.parse(x ?? '{}') as Json).frontends ?? null);
      rmSync(bad);
      await until('m1 to clear the problem', 30_000, async () => metric(await s.httpGet('m1', '/metrics'), 'pharos_config_problems', { source: 'manifests' }) === 0);
      notes.push(`bad-manifest: malformed zz-bad.yaml in m1's directory: pharos_config_problems=${problems}, m1's services/frontends ${svc(before) === svc(during) ? 'unchanged' : 'CHANGED'} while it was there`);
      if (svc(before) !== svc(during) || !svc(before).includes('m1web')) changed['bad-manifest'] = true;
    },
    'conntrack-full': async () => {
      // The agent caches map sizes for 5 s: sample while the flows are opened and keep the largest.
      const most: Record<string, { entries: number; capacity: number }> = {};
      let filling = true;
      const sampler = (async () => {
        for (let i = 0; i < 600 && filling; i++) {
          for (const n of ['n1', 'n2']) {
            const text = await s.httpGet(n, '/metrics');
            const entries = metric(text, 'pharos_bpf_map_entries', { map: 'ph_ct' }) ?? 0;
            const capacity = metric(text, 'pharos_bpf_map_capacity', { map: 'ph_ct' }) ?? 0;
            if (!most[n] || entries > most[n]!.entries) most[n] = { entries, capacity };
          }
          await sleep(500);
        }
      })();
      const r = await s.fill(kubeVip, 53, profile.fillerFlows);
      await sleep(5500);
      filling = false;
      await sampler;
      conntrackPeak = most;
      notes.push(`conntrack-full: ${r.sent} extra UDP flows (${r.answered} answered) to the service through n1 and n2, --conntrack-size ${profile.conntrackSize}; conntrack map (ph_ct, LRU) at its fullest: ${Object.entries(most).map(([n, m]) => `${n} ${m.entries} of ${m.capacity}`).join(', ')}`);
    },
  };

  for (const fault of schedule(opts.only)) {
    if (!load.running) throw new Error(`the load generator stopped early: ${JSON.stringify(load.done)} ${load.stderr}`);
    log(`fault ${fault}`);
    load.open(fault);
    try {
      await faults[fault]();
    } catch (err) {
      notes.push(`${fault}: recovery not seen: ${(err as Error).message.split('\n')[0]}`);
      log(`fault ${fault}: ${(err as Error).message}`);
    }
    await sleep(profile.settleMs);
    const w = await load.close();
    if (!(await sameAddresses())) changed[fault] = true;
    log(`  ${JSON.stringify(w)}`);
    await sleep(profile.gapBetweenMs);
  }
  rssSamples.push(s.rss('n2'));
  clearInterval(rssTimer);
  const { start: rssStart, end: rssEnd } = rssEnds(rssSamples);
  const final = await load.stop();
  log(`load: ${JSON.stringify(final)}`);
  const windows = load.windows.filter((w: WindowStats) => w.name !== 'warmup') as WindowStats[];
  const report = soakReport(windows, changed, rssStart, rssEnd);
  const checks = checkTargets(report);
  notes.push(`load: ${final.requests} requests (${final.ok} answered) over ${Math.round(final.elapsedMs / 1000)} s on ${final.connections} HTTP connections + ${profile.udpWorkers} UDP streams; per backend ${JSON.stringify(final.perBackend)}, per LB node (SNAT source the backends saw: n1 198.18.10.1, n2 .2, m1 .3) ${JSON.stringify(final.perSource)}`);
  notes.push(`RSS is the agent on n2, which runs through every fault (n1's agent is restarted twice), sampled every second (${rssSamples.length} samples, ${RSS_EDGE} at each end give the medians; highest ${Math.round(Math.max(...rssSamples) / 104857.6) / 10} MB); n1 at the end: ${Math.round(s.rss('n1') / 1048576)} MB, m1: ${Math.round(s.rss('m1') / 1048576)} MB`);
  for (const w of windows) if (w.samples.length) notes.push(`${w.name} failures (first ${w.samples.length}): ${w.samples.join('; ')}`);
  return { report, checks, markdown: markdownTable(report, checks, notes), windows, notes, load: final, conntrackPeak };
}
