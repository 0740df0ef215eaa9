/**
 * The data path checks itself (issue 18 item 5), in one lab: a bird2
 * router (also the client) in front of an LB node running `pharos agent
 * --manifests` on eth0 (towards the router) and be0 (towards a backend),
 * one service advertised over BGP and announced on eth0.
 *
 * 1. Its XDP program detached under it (`ip link set dev eth0 xdpgeneric
 *    off`), its tc egress filter deleted and a map's pin removed: the agent
 *    attaches (and pins) them again within a few seconds, counts it, and
 *    TCP through the VIP works again.
 * 2. Another XDP program attached in its place (natively, which also makes
 *    the agent's generic attach impossible): the agent does not replace it;
 *    it withdraws its route at bird (the session stays up), stops announcing
 *    on L2, and /readyz, /v1/state and `pharos status` say why. Once the
 *    other program is removed it attaches again and advertises again.
 */
import t from 'tap';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { httpGet, startEchoServer, withLab, xdpPassObject, type Lab } from '../support/lab.js';
import { Bird } from '../../src/lab/bgp/routers.js';
import { parseExposition } from '../support/prom.js';
import { CLI, startManifestsAgent } from '../support/agent.js';
import { bgpPoolAndPolicy, l2Policy, lbServiceYaml } from '../support/manifests.js';
import type { AgentStateView } from '../../src/metrics/state-view.js';

const HTTP = '127.0.0.1:9643';
const PIN_DIR = '/run/pharos/bpffs/phdc-lb';

const MANIFESTS = `${bgpPoolAndPolicy()}---
${l2Policy()}---
${lbServiceYaml({ name: 'api', namespace: 'prod', labels: { bgp: 'yes' }, endpoints: ['198.51.100.10'] })}`;

/** The XDP program on an interface as `ip -j link` shows it (mode 1 native, 2 generic). */
async function xdpOn(lab: Lab, ifname: string): Promise<{ id: number; mode: number } | undefined> {
  const out = JSON.parse((await lab.exec('lb', ['ip', '-j', 'link', 'show', 'dev', ifname])).stdout) as Array<{ xdp?: { mode: number; prog?: { id: number } } }>;
  const x = out[0]?.xdp;
  return x?.prog ? { id: x.prog.id, mode: x.mode } : undefined;
}

async function tcEgressId(lab: Lab, ifname: string): Promise<number> {
  const out = (await lab.exec('lb', ['tc', '-j', 'filter', 'show', 'dev', ifname, 'egress'])).stdout.trim();
  const filters = (out ? JSON.parse(out) : []) as Array<{ options?: { prog?: { id: number } } }>;
  return filters.find((f) => f.options?.prog)?.options?.prog?.id ?? 0;
}

t.test('the agent finds its programs gone and attaches them again; with another program there it stops drawing traffic', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'phdc');
  await lab.addNamespace('router', { forwarding: true });
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addNamespace('be');
  await lab.addLink({ ns: 'router', ifname: 'lb0', addrs: ['198.18.0.1/30'] }, { ns: 'lb', ifname: 'eth0', addrs: ['198.18.0.2/30'] });
  await lab.addLink({ ns: 'lb', ifname: 'be0', addrs: ['198.51.100.1/24'] }, { ns: 'be', ifname: 'eth0', addrs: ['198.51.100.10/24'] });
  // The router is the client too: the pool is routed to the LB node (bird here installs nothing in the kernel).
  await lab.exec('router', ['ip', 'route', 'add', '203.0.113.128/28', 'via', '198.18.0.2']);
  await startEchoServer(lab, 'be', { name: 'be', port: 8080 });
  const bird = new Bird({ lab, ns: 'router', asn: 64500, routerId: '198.18.0.1', neighbors: [{ address: '198.18.0.2', asn: 64512, local: '198.18.0.1' }] });
  await bird.start();
  t.teardown(() => bird.stop());

  // XDP taken away under the agent: generic XDP, as `--xdp-mode generic` puts it on a veth (auto puts the
  // tc build at tc ingress there; that slot's watch is in test/datapath/attach-check.test.ts).
  const agent = startManifestsAgent(t, lab, { pinDir: PIN_DIR, interfaces: 'eth0,be0', manifests: { 'app.yaml': MANIFESTS }, http: HTTP, args: ['--log-format', 'text', '--xdp-mode', 'generic'] });
  const withLog = agent.diag;

  const curl = async (path: string): Promise<{ code: number; body: string }> => {
    const r = await lab.exec('lb', ['curl', '-s', '-m', '3', '-w', '\n%{http_code}', `http://${HTTP}${path}`], { allowFail: true });
    const i = r.stdout.lastIndexOf('\n');
    return { code: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
  };
  const state = async (): Promise<AgentStateView> => JSON.parse((await curl('/v1/state?sections=l2')).body) as AgentStateView;
  const metric = async (name: string, labels: Record<string, string>): Promise<number> => {
    const fam = parseExposition((await curl('/metrics')).body).get(name);
    const s = fam?.samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
    return s?.value ?? 0;
  };
  /** The value once it reaches `want` (a /metrics document is reused for up to a second), else the last one seen. */
  const metricReaches = async (name: string, labels: Record<string, string>, want: number): Promise<number> => {
    let last = NaN;
    for (let i = 0; i < 25 && last !== want; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 200));
      last = await metric(name, labels);
    }
    return last;
  };

  await waitFor('agent ready', 30_000, async () => (await curl('/readyz')).code === 200).catch(withLog);
  await waitFor('BGP established', 20_000, () => bird.established('198.18.0.2')).catch(withLog);
  const vip = (await waitFor('an address for prod/api', 10_000, async () => {
    const s = JSON.parse((await curl('/v1/state?sections=services')).body) as AgentStateView;
    return s.services.find((x) => x.key === 'prod/api')?.ingress[0];
  }));
  await waitFor('the route at bird', 10_000, () => bird.route(`${vip}/32`)).catch(withLog);
  const get = (timeoutMs = 2000): Promise<string> => httpGet(lab, 'router', `http://${vip}/`, { timeoutMs });
  await waitFor('TCP through the VIP', 10_000, async () => { try { return await get(); } catch { return undefined; } }).catch(withLog);
  const ours = await xdpOn(lab, 'eth0');
  t.ok(ours, `the agent's XDP program on eth0: ${JSON.stringify(ours)}`);
  const ourTc = await tcEgressId(lab, 'be0');
  t.ok(ourTc > 0, `and its tc egress program on be0 (id ${ourTc})`);

  // ---- 1. detached under the agent: attached again, counted, traffic back.
  const detachedAt = Date.now();
  await lab.exec('lb', ['ip', 'link', 'set', 'dev', 'eth0', 'xdpgeneric', 'off']);
  t.equal(await xdpOn(lab, 'eth0'), undefined, 'XDP detached from eth0');
  const back = await waitFor('the XDP program back on eth0', 10_000, async () => xdpOn(lab, 'eth0'), { everyMs: 50 }).catch(withLog);
  const reattachMs = Date.now() - detachedAt;
  t.same(back, ours, 'the same program, in the same mode');
  await waitFor('TCP through the VIP again', 10_000, async () => { try { return await get(); } catch { return undefined; } }, { everyMs: 100 }).catch(withLog);
  const servedMs = Date.now() - detachedAt;
  t.comment(`recovery: XDP attached again ${reattachMs} ms after the detach, a new connection through the VIP answered after ${servedMs} ms`);
  let answered = 0;
  for (let i = 0; i < 5; i++) answered += (await get(3000)).startsWith('be ') ? 1 : 0;
  t.equal(answered, 5, 'new TCP connections through the VIP all answered');
  t.equal(await metricReaches('pharos_datapath_reattach_total', { interface: 'eth0', program: 'xdp' }, 1), 1, 'pharos_datapath_reattach_total{interface="eth0",program="xdp"} 1');
  t.match(agent.log(), /XDP program was gone: attached again.*interface=eth0.*found="nothing attached"/, 'logged naming the interface and what it found');
  t.ok(await bird.route(`${vip}/32`), 'repaired within one check: the route was never withdrawn');

  // The tc egress filter deleted and a pin removed, at once: both put back by the next check.
  await lab.exec('lb', ['tc', 'filter', 'del', 'dev', 'be0', 'egress', 'pref', '1', 'handle', '1', 'bpf']);
  t.equal(await tcEgressId(lab, 'be0'), 0, 'tc egress filter deleted from be0');
  const ctPin = join(PIN_DIR, 'ph_ct');
  rmSync(ctPin);
  await waitFor('the tc egress program back on be0', 10_000, async () => (await tcEgressId(lab, 'be0')) === ourTc, { everyMs: 100 }).catch(withLog);
  t.equal(await metricReaches('pharos_datapath_reattach_total', { interface: 'be0', program: 'tc_egress' }, 1), 1, 'counted for be0, tc_egress');
  await waitFor('the conntrack map pinned again', 5_000, async () => existsSync(ctPin)).catch(withLog);
  t.equal(await metricReaches('pharos_datapath_pin_repairs_total', { map: 'ph_ct' }, 1), 1, 'pharos_datapath_pin_repairs_total{map="ph_ct"} 1');

  // ---- 2. another program in its place: not replaced; BGP withdrawn, L2 stopped, not ready, and why.
  const pass = await xdpPassObject();
  let foreign: { id: number; mode: number } | undefined;
  for (let i = 0; i < 5 && !foreign; i++) {
    // Two steps (native and generic cannot be attached together): the agent may attach again in between; then again.
    await lab.exec('lb', ['sh', '-c', `ip link set dev eth0 xdpgeneric off; ip link set dev eth0 xdpdrv obj ${pass} sec xdp`], { allowFail: true });
    const now = await xdpOn(lab, 'eth0');
    if (now && now.id !== ours!.id) foreign = now;
  }
  t.ok(foreign && foreign.mode === 1, `another program attached natively on eth0: ${JSON.stringify(foreign)}`);
  const foreignAt = Date.now();
  await waitFor('the route withdrawn at bird', 10_000, async () => ((await bird.route(`${vip}/32`)) ? undefined : true), { everyMs: 100 }).catch(withLog);
  t.comment(`route withdrawn ${Date.now() - foreignAt} ms after the other program was attached`);
  t.ok(await bird.established('198.18.0.2'), 'the BGP session stays up: only the routes go');
  const ready = await curl('/readyz');
  t.equal(ready.code, 503, '/readyz 503');
  t.match(ready.body, new RegExp(`\\[-\\]datapath .*eth0: another XDP program \\(id ${foreign!.id}, native\\)`), `/readyz says why: ${ready.body.split('\n')[1] ?? ''}`);
  const broken = await state();
  t.equal(broken.ready, false);
  t.equal(broken.datapath.health?.whole, false, '/v1/state: data path not whole');
  t.match(broken.datapath.health?.interfaces.find((i) => i.interface === 'eth0')?.problem, /does not replace a program it did not attach/);
  t.equal(broken.summary.l2.announced, 0, 'no address announced on L2');
  const status = await lab.exec('lb', [process.execPath, CLI, 'status', '--agent', `http://${HTTP}`], { allowFail: true });
  t.equal(status.code, 1, '`pharos status` exits 1 (not ready)');
  t.match(status.stdout, /NO {2}datapath: broken since/);
  t.match(status.stdout, /XDP on eth0 .* NOT IN PLACE: eth0: another XDP program/);
  t.equal(await metricReaches('pharos_datapath_attached', { interface: 'eth0' }, 0), 0, 'pharos_datapath_attached{interface="eth0"} 0');
  t.equal((await xdpOn(lab, 'eth0'))?.id, foreign!.id, 'the other program is left in place');

  await lab.exec('lb', ['ip', 'link', 'set', 'dev', 'eth0', 'xdpdrv', 'off']);
  const freedAt = Date.now();
  await waitFor('the route advertised again', 10_000, () => bird.route(`${vip}/32`), { everyMs: 100 }).catch(withLog);
  t.comment(`route advertised again ${Date.now() - freedAt} ms after the other program was removed`);
  t.same(await xdpOn(lab, 'eth0'), ours, 'the agent attached its own program again');
  t.equal((await curl('/readyz')).code, 200, 'ready again');
  await waitFor('TCP through the VIP again', 10_000, async () => { try { return await get(); } catch { return undefined; } }, { everyMs: 100 }).catch(withLog);
  const whole = await state();
  t.equal(whole.datapath.health?.whole, true);
  t.ok(whole.summary.l2.announced > 0, 'announced on L2 again');
  t.equal(await metricReaches('pharos_datapath_attached', { interface: 'eth0' }, 1), 1, 'pharos_datapath_attached{interface="eth0"} 1 again');
  t.equal(await metricReaches('pharos_datapath_reattach_total', { interface: 'eth0', program: 'xdp' }, 2), 2, 'counted again');
  t.match(agent.log(), /data path broken: not ready/);
  t.match(agent.log(), /data path whole again/);

  agent.proc.kill('SIGTERM');
  await new Promise((r) => agent.proc.once('exit', r));
});
