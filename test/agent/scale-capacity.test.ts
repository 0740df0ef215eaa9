/**
 * Capacity and the event-loop guard at a few hundred services, as a user
 * runs them (issue 15): `pharos agent --manifests` with a frontend map too
 * small for everything, real ARP from a client kernel.
 *
 * - What does not fit is reported, not hidden: the service's datapath state
 *   and condition, `pharos status`, `pharos service list`, a metric that
 *   counts services (not passes); and it is not announced (no ARP answer).
 * - Room freed by deleting services goes to the refused ones at once: they
 *   are programmed, reported as such, and answered.
 * - An unrelated address keeps answering ARP through the start's tail, a
 *   burst of 300 new services and a scrape: not one probe lost, and the
 *   responder's liveness stamp stays fresh.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { withLab, type Lab } from '../support/lab.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';
import { parseExposition } from '../support/prom.js';
import type { AgentStateView } from '../../src/metrics/state-view.js';
import { l2PoolAndPolicy } from '../../src/lab/manifests.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const HTTP = '127.0.0.1:9647';
const PIN_DIR = '/run/pharos/bpffs/phq-lb';
/** Ids 1..319: the first 319 services fit, the rest do not. */
const FRONTEND_MAP_SIZE = 320;
const SERVICES = 400;

// 1,022 addresses (the /22 without its first and last), announced on eth0.
const HEADER = l2PoolAndPolicy('big', [['198.18.0.1', '198.18.3.254']]);

/** One LoadBalancer service with `n` endpoints (they need not answer: only ARP is exercised). */
function service(name: string, n: number, seed: number): string {
  const eps = Array.from({ length: n }, (_, j) => `  - addresses: [203.0.113.${((seed * 7 + j) % 250) + 1}]`).join('\n');
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: scale }
spec:
  type: LoadBalancer
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: scale, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints:
${eps}
`;
}

/** Services `from`..`to`-1, ten to a file, written atomically (the way a tool would). */
function writeServices(dir: string, prefix: string, from: number, to: number): string[] {
  const files: string[] = [];
  for (let f = from; f < to; f += 10) {
    const docs: string[] = [];
    for (let i = f; i < Math.min(to, f + 10); i++) docs.push(service(`${prefix}${String(i).padStart(4, '0')}`, 3 + (i % 3), i));
    const file = join(dir, `${prefix}${String(f).padStart(4, '0')}.yaml`);
    writeFileSync(`${file}.tmp`, docs.join('---\n'));
    renameSync(`${file}.tmp`, file);
    files.push(file);
  }
  return files;
}

async function state(lab: Lab, query: string): Promise<AgentStateView> {
  const r = await lab.exec('lb', ['curl', '-sf', '-m', '10', `http://${HTTP}/v1/state?${query}`]);
  return JSON.parse(r.stdout) as AgentStateView;
}

async function metric(lab: Lab, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const text = (await lab.exec('lb', ['curl', '-sf', '-m', '10', `http://${HTTP}/metrics`])).stdout;
  const samples = [...parseExposition(text).values()].flatMap((f) => f.samples);
  const sample = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return sample?.value;
}

/** Whether the client's kernel gets an ARP answer for `vip` (two tries). */
async function answers(lab: Lab, vip: string): Promise<boolean> {
  const r = await lab.exec('client', ['arping', '-c', '2', '-w', '1', '-i', 'eth0', vip], { allowFail: true });
  return r.code === 0;
}

/**
 * Asks for `vip` every 100 ms from the client (arping -D: `!` an answer, `.`
 * none) from now until `until` settles, in runs of 20 probes (2 s) so that
 * the probing ends with the work it watches instead of at a fixed count;
 * every run's probes are all accounted for. Resolves to the totals.
 */
function probeUntil(lab: Lab, vip: string, until: Promise<unknown>): Promise<{ sent: number; answered: number; lost: number }> {
  let done = false;
  void until.finally(() => { done = true; }).catch(() => undefined);
  return (async () => {
    const total = { sent: 0, answered: 0, lost: 0 };
    // Bounded: 90 s of probes at most, as the fixed-count probe was.
    for (let run = 0; run < 45 && (run === 0 || !done); run++) {
      const out = (await lab.exec('client', ['arping', '-D', '-i', 'eth0', '-c', '20', '-W', '0.1', vip], { allowFail: true, timeoutMs: 30_000 })).stdout;
      total.sent += 20;
      total.answered += (out.match(/!/g) ?? []).length;
      total.lost += (out.match(/\./g) ?? []).length;
    }
    return total;
  })();
}

async function addressOf(lab: Lab, key: string): Promise<string> {
  return waitFor(`an address for ${key}`, 30_000, async () => {
    const s = await state(lab, 'sections=services&limit=10000');
    return s.services.find((x) => x.key === key)?.ingress[0];
  });
}

/**
 * A client and an LB namespace on one segment (the VIPs are on it, as an L2
 * pool's are: the client ARPs for them directly), and a manifests directory
 * with the pool, the policy and the probe service (its file sorts first).
 */
async function scaleLab(t: Test, prefix: string, pinDir: string): Promise<{ lab: Lab; work: string; dir: string }> {
  const lab = await withLab(t, prefix);
  const work = mkdtempSync(join(tmpdir(), `${prefix}-`));
  t.teardown(() => { rmSync(work, { recursive: true, force: true }); removePins(pinDir); });
  removePins(pinDir);
  await lab.addNamespace('client');
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'client', ifname: 'eth0', addrs: ['198.51.100.1/24'] }, { ns: 'lb', ifname: 'eth0', addrs: ['198.51.100.2/24'] });
  await lab.exec('client', ['ip', 'route', 'add', '198.18.0.0/22', 'dev', 'eth0']);
  const dir = join(work, 'manifests');
  await lab.exec('lb', ['mkdir', '-p', dir]);
  writeFileSync(join(dir, '00-header.yaml'), HEADER);
  writeFileSync(join(dir, '01-probe.yaml'), service('probe', 3, 9999));
  return { lab, work, dir };
}

t.test('capacity at a few hundred services: refused is reported and not announced; room is reused; an unrelated VIP never goes quiet', { skip: privilegedUnavailable() }, async (t) => {
  const { lab, work, dir } = await scaleLab(t, 'phq', PIN_DIR);
  writeServices(dir, 's', 0, SERVICES);

  const agent = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'phq-lb', '--interfaces', 'eth0',
    '--state-dir', join(work, 'state'), '--pin-dir', PIN_DIR, '--http', HTTP, '--no-socket-lb', '--frontend-map-size', String(FRONTEND_MAP_SIZE)]);
  let log = '';
  agent.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  agent.stdout?.resume();
  t.teardown(() => { if (agent.exitCode === null) agent.kill('SIGKILL'); });
  const fits = FRONTEND_MAP_SIZE - 1;
  const refused = SERVICES + 1 - fits;

  const settled = await waitFor('the first pass programmed what fits', 60_000, async () => {
    const s = await state(lab, 'sections=pools').catch(() => undefined);
    return s && s.summary.frontendsProgrammed === fits && s.summary.servicesNotProgrammed === refused && s.summary.l2.announced === fits ? s : undefined;
  }).catch((e: Error) => { throw new Error(`${e.message}\nagent log:\n${log.slice(-4000)}`); });
  t.equal(settled.summary.services, SERVICES + 1);
  t.equal(settled.notProgrammed.length, refused);
  t.match(settled.notProgrammed[0], { reason: 'FrontendMapFull', frontends: 1, programmed: 0, message: /frontend map full \(319 frontends, --frontend-map-size\)/ });

  // Every way of looking at a refused service says so.
  const victim = settled.notProgrammed[0]!.service;
  const services = (await state(lab, 'sections=services&limit=10000')).services;
  const v = services.find((s) => s.key === victim)!;
  t.match(v.datapath, { programmed: false, frontends: 1, programmedFrontends: 0, reason: 'FrontendMapFull' });
  t.equal(services.filter((s) => s.datapath?.programmed === false).length, refused);
  t.equal(await metric(lab, 'pharos_datapath_services_not_programmed', { reason: 'FrontendMapFull' }), refused, 'the metric counts services');
  t.equal(await metric(lab, 'pharos_bpf_map_full_total', { map: 'ph_frontends' }), refused, 'each refused object counted once, not once per pass');
  const status = await lab.exec('lb', [process.execPath, CLI, 'status', '--agent', `http://${HTTP}`], { allowFail: true });
  t.match(status.stdout, new RegExp(`NOT IN THE DATA PATH: ${refused} services`));
  const list = await lab.exec('lb', [process.execPath, CLI, 'service', 'list', '--agent', `http://${HTTP}`]);
  t.equal((list.stdout.match(/NOT IN THE DATA PATH: frontend map full/g) ?? []).length, refused, 'service list shows each refused frontend');
  const victimVip = services.find((s) => s.key === victim)!.ingress[0]!;
  t.ok(victimVip, 'a refused service still has its address (IPAM is not the data path)');
  t.notOk(await answers(lab, victimVip), `${victimVip} of a refused service is not answered (not announced)`);
  const probeVip = await addressOf(lab, 'scale/probe');
  t.ok(await answers(lab, probeVip), `${probeVip} of a programmed service is answered`);

  // The probe VIP is asked every 100 ms from here until the burst went through; every question must get an answer.
  let workDone!: () => void;
  const probe = probeUntil(lab, probeVip, new Promise<void>((r) => { workDone = r; }));

  // Room: deleting 100 services lets the 82 refused ones in, at once and announced.
  for (let f = 0; f < 100; f += 10) unlinkSync(join(dir, `s${String(f).padStart(4, '0')}.yaml`));
  const after = await waitFor('the refused services took the freed room', 30_000, async () => {
    const s = await state(lab, 'sections=pools');
    return s.summary.servicesNotProgrammed === 0 && s.summary.l2.announced === SERVICES + 1 - 100 ? s : undefined;
  });
  t.equal(after.summary.frontendsProgrammed, SERVICES + 1 - 100);
  t.equal(await metric(lab, 'pharos_datapath_services_not_programmed', { reason: 'FrontendMapFull' }), undefined, 'no service refused any more');
  const v2 = (await state(lab, 'sections=services&limit=10000')).services.find((s) => s.key === victim)!;
  t.match(v2.datapath, { programmed: true, programmedFrontends: 1 });
  t.ok(await answers(lab, victimVip), `${victimVip} is answered now`);

  // An edit that adds a backend on the LB's own segment primes its neighbour entry (the edit's own backends,
  // not a walk of all of them), and the entry is released when the service goes.
  const managedNeighbour = async (address: string): Promise<boolean> => {
    const r = await lab.exec('lb', ['ip', '-j', '-d', 'neigh', 'show', 'dev', 'eth0']);
    const entry = (JSON.parse(r.stdout) as Array<{ dst: string; managed?: null }>).find((n) => n.dst === address);
    return entry !== undefined && 'managed' in entry;
  };
  const onLinkFile = join(dir, 'onlink.yaml');
  writeFileSync(`${onLinkFile}.tmp`, service('onlink', 1, 0).replace(/203\.0\.113\.\d+/, '198.51.100.77'));
  renameSync(`${onLinkFile}.tmp`, onLinkFile);
  await waitFor('a managed neighbour for the new on-link backend', 10_000, async () => (await managedNeighbour('198.51.100.77')) || undefined);
  t.pass('the backend added by an edit has a managed neighbour entry');
  unlinkSync(onLinkFile);
  await waitFor('the on-link backend\'s neighbour released', 10_000, async () => (await managedNeighbour('198.51.100.77')) ? undefined : true);
  t.pass('and it is released when the service is deleted');

  // A burst of 300 services (most will not fit: the load is the point), and a scrape in the middle of it.
  writeServices(dir, 'b', 0, 300);
  const scrape = metric(lab, 'pharos_l2_responder_liveness_age_seconds');
  await waitFor('the burst went through the data path', 60_000, async () => {
    const s = await state(lab, 'sections=pools');
    return s.summary.services === SERVICES + 1 - 100 + 300 && s.summary.frontendsProgrammed === fits ? true : undefined;
  });
  t.ok(((await scrape) ?? Infinity) < 1, 'the liveness stamp was fresh during the burst');

  workDone();
  const { sent, answered, lost } = await probe;
  t.equal(answered + lost, sent, `every probe accounted for (${sent})`);
  t.equal(lost, 0, `the unrelated VIP answered all ${answered} probes through the room change, the burst and the scrapes`);
  const maxDelay = await metric(lab, 'pharos_event_loop_delay_max_seconds');
  t.ok(maxDelay !== undefined && maxDelay < 1, `event loop never held for a second (worst of the last 10 s: ${maxDelay?.toFixed(3)} s)`);
});

t.test('a restart leaves no gap in ARP answers: clean (SIGTERM) and crashed (SIGKILL), agent started again at once', { skip: privilegedUnavailable() }, async (t) => {
  const pinDir = '/run/pharos/bpffs/phr-lb';
  const { lab, work, dir } = await scaleLab(t, 'phr', pinDir);
  writeServices(dir, 's', 0, 50);
  const start = () => {
    const a = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'phr-lb', '--interfaces', 'eth0',
      '--state-dir', join(work, 'state'), '--pin-dir', pinDir, '--http', HTTP, '--no-socket-lb']);
    a.stderr?.resume();
    a.stdout?.resume();
    t.teardown(() => { if (a.exitCode === null) a.kill('SIGKILL'); });
    return a;
  };
  let agent = start();
  const vip = await addressOf(lab, 'scale/probe');
  await waitFor('the probe VIP answered', 30_000, async () => ((await answers(lab, vip)) ? true : undefined));

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    // Probes every 100 ms from 1 s before the stop until 1 s after the restarted agent serves.
    const restarted = (async () => {
      await new Promise((r) => setTimeout(r, 1000));
      const exited = new Promise((r) => agent.once('exit', r));
      agent.kill(signal);
      await exited;
      agent = start();
      await waitFor('the restarted agent serves', 30_000, async () => ((await state(lab, 'sections=pools').catch(() => undefined))?.ready ? true : undefined));
      await new Promise((r) => setTimeout(r, 1000));
    })();
    const { sent, answered, lost } = await probeUntil(lab, vip, restarted);
    await restarted;
    t.equal(answered + lost, sent, `${signal}: every probe accounted for (${sent})`);
    t.equal(lost, 0, `${signal}: no ARP probe lost while the agent restarted`);
  }
});
