/**
 * Direct server return, L2 dispatch, end to end (IPv4 and IPv6): `pharos agent` in
 * manifests mode with `--forwarding-mode dsr` (attached as `--xdp-mode auto`
 * picks on a veth), real TCP and UDP from a client to two backends on the
 * LB's segment that hold the VIP on their loopback (arp_ignore=1,
 * arp_announce=2, as IPVS-DR and Katran document).
 *
 *   cli 198.18.0.1,  2001:db8::1  ─┐
 *   lb  198.18.0.2,  2001:db8::2  ─┤ br0 (namespace sw)   VIPs 198.51.100.10 and
 *   b1  198.18.0.11, 2001:db8::11 ─┤                      2001:db8:100::10 on lo of b1, b2
 *   b2  198.18.0.12, 2001:db8::12 ─┘
 *
 * What it proves: each backend sees the client's own address as the peer
 * (no SNAT), connections spread over both backends (Maglev), the replies
 * bypass the LB (its interface receives about what the client sent, not the
 * replies as well, and pharos counts the flows as DSR dispatches with no
 * conntrack entry and no reverse NAT), and a backend answers UDP from the VIP.
 */
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { httpGet, startEchoServer, udpQuery, withLab, type Lab } from '../support/lab.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';
import { lbServiceYaml } from '../../src/lab/manifests.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const HTTP = '127.0.0.1:9643';
const PIN_DIR = '/run/pharos/bpffs/phdsr-lb';
const VIP = '198.51.100.10';
const VIP6 = '2001:db8:100::10';
const CLIENT = '198.18.0.1';
const CLIENT6 = '2001:db8::1';
const BACKENDS = { b1: '198.18.0.11', b2: '198.18.0.12' } as const;
const BACKENDS6 = { b1: '2001:db8::11', b2: '2001:db8::12' } as const;
const REQUESTS = 24;
const FAR_VIP = '198.51.100.11';
/** Routed through 198.18.0.254 on the LB (a gateway that need not exist: only the route matters). */
const FAR_BACKEND = '192.0.2.10';

const MANIFESTS = `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: front }
spec:
  blocks: [{ start: ${VIP}, stop: ${VIP} }, { start: ${VIP6}, stop: ${VIP6} }, { start: ${FAR_VIP}, stop: ${FAR_VIP} }]
---
apiVersion: lb.pharos.io/v1alpha1
kind: L2AnnouncementPolicy
metadata: { name: l2 }
spec: { interfaces: [eth0], loadBalancerIPs: true }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  # DSR keeps the destination port: the backends serve the service ports themselves.
  ports: [{ name: http, port: 80, targetPort: 80, protocol: TCP }, { name: dns, port: 53, targetPort: 53, protocol: UDP }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 80, protocol: TCP }, { name: dns, port: 53, protocol: UDP }]
endpoints:
${Object.values(BACKENDS).map((a) => `  - addresses: [${a}]\n    conditions: { ready: true }`).join('\n')}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-2, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv6
ports: [{ name: http, port: 80, protocol: TCP }, { name: dns, port: 53, protocol: UDP }]
endpoints:
${Object.values(BACKENDS6).map((a) => `  - addresses: ["${a}"]\n    conditions: { ready: true }`).join('\n')}
---
# L2 dispatch asked for a backend behind a router (FAR_BACKEND): reported, never served from this node.
${lbServiceYaml({ name: 'far', namespace: 'default', targetPort: 80, endpoints: [FAR_BACKEND], annotations: { 'lb.pharos.io/ips': FAR_VIP, 'lb.pharos.io/dsr-dispatch': 'l2' } })}`;

async function linkStats(lab: Lab, ns: string): Promise<{ rx: number; tx: number }> {
  const [link] = JSON.parse(await lab.output(ns, ['ip', '-j', '-s', 'link', 'show', 'eth0'])) as Array<{ stats64: { rx: { packets: number }; tx: { packets: number } } }>;
  return { rx: link!.stats64.rx.packets, tx: link!.stats64.tx.packets };
}

/** How long the agent hands out the same /metrics document (metrics/server.ts), and a little more. */
const METRICS_REUSE_MS = 1100;

function sumOf(text: string, pattern: RegExp): number {
  let sum = 0;
  for (const line of text.split('\n')) if (pattern.test(line)) sum += Number(line.split(' ').pop());
  return sum;
}

async function metric(lab: Lab, pattern: RegExp): Promise<number> {
  return sumOf(await lab.output('lb', ['curl', '-sf', `http://${HTTP}/metrics`]), pattern);
}

/**
 * A /metrics document once `pattern` sums to at least `want` (the agent
 * reuses a document for up to a second, so a scrape right after the traffic
 * can be the one from before it), else the last one after `timeoutMs`.
 */
async function metricsOnce(lab: Lab, pattern: RegExp, want: number, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await lab.output('lb', ['curl', '-sf', `http://${HTTP}/metrics`]);
    if (sumOf(text, pattern) >= want || Date.now() > deadline) return text;
    await new Promise((r) => setTimeout(r, 250));
  }
}

t.test('DSR L2: client address kept, replies bypass the LB, flows spread by Maglev', { skip: privilegedUnavailable() }, async (t) => {
  const started = Date.now();
  const lab = await withLab(t, 'phdsr');
  const work = mkdtempSync(join(tmpdir(), 'phdsr-'));
  t.teardown(() => { rmSync(work, { recursive: true, force: true }); removePins(PIN_DIR); });
  await lab.addNamespace('sw');
  await lab.addBridge('sw', 'br0');
  const hosts: Array<[string, string, string]> = [['cli', CLIENT, CLIENT6], ['lb', '198.18.0.2', '2001:db8::2'], ['b1', BACKENDS.b1, BACKENDS6.b1], ['b2', BACKENDS.b2, BACKENDS6.b2]];
  for (const [ns, addr, addr6] of hosts) {
    await lab.addNamespace(ns, ns === 'lb' ? { forwarding: true } : {});
    await lab.addLink({ ns, ifname: 'eth0', addrs: [`${addr}/24`, `${addr6}/64`] }, { ns: 'sw', ifname: `p-${ns}` });
    await lab.attachToBridge('sw', `p-${ns}`, 'br0');
  }
  // The VIP is on-link for the client: its ARP request is answered by pharos on the LB.
  await lab.exec('cli', ['sh', '-c', 'ip route add 198.51.100.0/24 dev eth0 && ip -6 route add 2001:db8:100::/64 dev eth0']);
  await lab.exec('lb', ['ip', 'route', 'add', '192.0.2.0/24', 'via', '198.18.0.254']);
  for (const [ns] of Object.entries(BACKENDS)) {
    // The backend side of DSR without pharos: the VIP on lo, never answered for by ARP, never used as an ARP source.
    // IPv6 needs no sysctl: the kernel answers neighbour solicitations only for addresses of the interface asked on.
    await lab.exec(ns, ['sh', '-c', `ip addr add ${VIP}/32 dev lo && ip -6 addr add ${VIP6}/128 dev lo && sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2`]);
    await startEchoServer(lab, ns, { name: ns, port: 80 });
    // Bound to the VIP so the reply leaves from it (an unbound UDP socket would answer from eth0's address).
    await startEchoServer(lab, ns, { name: ns, port: 53, udp: true, host: VIP });
  }
  mkdirSync(join(work, 'manifests'));
  writeFileSync(join(work, 'manifests', 'app.yaml'), MANIFESTS);

  removePins(PIN_DIR);
  const agent = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', join(work, 'manifests'), '--node-name', 'lb-1', '--interfaces', 'eth0',
    '--state-dir', join(work, 'state'), '--pin-dir', PIN_DIR, '--http', HTTP, '--log-format', 'text', '--xdp-mode', 'auto', '--forwarding-mode', 'dsr']);
  let log = '';
  agent.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  agent.stdout?.on('data', (d: Buffer) => { log += d.toString(); });
  t.teardown(() => { if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL'); });
  await waitFor('agent ready', 30_000, async () => ((await lab.exec('lb', ['curl', '-sf', '-o', '/dev/null', `http://${HTTP}/readyz`], { allowFail: true })).code === 0 ? true : undefined))
    .catch((e: Error) => { throw new Error(`${e.message}\n${log}`); });
  await waitFor('the VIP to answer', 20_000, async () => {
    try { return await httpGet(lab, 'cli', `http://${VIP}/`, { timeoutMs: 2000 }); } catch { return undefined; }
  }).catch((e: Error) => { throw new Error(`${e.message}\n${log}`); });

  const lbBefore = await linkStats(lab, 'lb');
  const cliBefore = await linkStats(lab, 'cli');
  await new Promise((r) => setTimeout(r, METRICS_REUSE_MS)); // a fresh document, not one from before the setup traffic
  const ctBefore = await metric(lab, /^pharos_datapath_events_total\{event="(ct_create|rev_nat|tc_rev_nat)"\}/);
  const dsrBefore = await metric(lab, /^pharos_datapath_events_total\{event="dsr_l2"\}/);
  const answers: string[] = [];
  for (let i = 0; i < REQUESTS; i++) answers.push((await httpGet(lab, 'cli', `http://${VIP}/`, { timeoutMs: 3000 })).trim());
  const lbAfter = await linkStats(lab, 'lb');
  const cliAfter = await linkStats(lab, 'cli');

  const byBackend = new Map<string, number>();
  for (const a of answers) byBackend.set(a.split(' ')[0]!, (byBackend.get(a.split(' ')[0]!) ?? 0) + 1);
  t.ok(answers.every((a) => a.endsWith(` ${CLIENT}`)), `every backend saw the client's own address as the peer: ${[...new Set(answers)].join(', ')}`);
  t.same([...byBackend.keys()].sort(), ['b1', 'b2'], `spread by Maglev over both backends: ${JSON.stringify(Object.fromEntries(byBackend))}`);

  const sent = cliAfter.tx - cliBefore.tx;
  const received = cliAfter.rx - cliBefore.rx;
  const lbReceived = lbAfter.rx - lbBefore.rx;
  t.comment(`client sent ${sent} and received ${received} packets; the LB received ${lbReceived}`);
  t.ok(received >= REQUESTS * 3, `the client got its replies (${received} packets)`);
  // Through the LB both ways it would be about sent + received; a few broadcasts (the backends' ARP for the client) are allowed.
  t.ok(lbReceived <= sent + 8, `the LB saw the requests only (${lbReceived} received vs ${sent} sent by the client, ${received} replies)`);
  const DSR_L2 = /^pharos_datapath_events_total\{event="dsr_l2"\}/;
  // One document that already counts the traffic: the conntrack check below reads the same one, so it cannot pass on a stale copy.
  const after = await metricsOnce(lab, DSR_L2, dsrBefore + sent - 8);
  const dsr = sumOf(after, DSR_L2) - dsrBefore;
  t.ok(dsr >= sent - 8 && dsr <= lbReceived, `pharos dispatched the client's packets as DSR (${dsr})`);
  t.equal(sumOf(after, /^pharos_datapath_events_total\{event="(ct_create|rev_nat|tc_rev_nat)"\}/), ctBefore, 'no conntrack entry made, no reply reverse-NATed');

  const answers6: string[] = [];
  await waitFor('the IPv6 VIP to answer', 20_000, async () => {
    try { return await httpGet(lab, 'cli', `http://[${VIP6}]/`, { timeoutMs: 2000 }); } catch { return undefined; }
  });
  for (let i = 0; i < REQUESTS / 2; i++) answers6.push((await httpGet(lab, 'cli', `http://[${VIP6}]/`, { timeoutMs: 3000 })).trim());
  t.ok(answers6.every((a) => a.endsWith(` ${CLIENT6}`)), `IPv6: every backend saw the client's own address: ${[...new Set(answers6)].join(', ')}`);
  t.same([...new Set(answers6.map((a) => a.split(' ')[0]))].sort(), ['b1', 'b2'], 'IPv6: spread over both backends');
  await new Promise((r) => setTimeout(r, METRICS_REUSE_MS));
  t.equal(await metric(lab, /^pharos_datapath_events_total\{event="(ct_create|rev_nat|tc_rev_nat)"\}/), ctBefore, 'IPv6: no conntrack entry either');

  const udp = await udpQuery(lab, 'cli', VIP, 53, 'dsr-udp', { timeoutMs: 3000 });
  t.match(udp, new RegExp(`^b[12] ${CLIENT.replace(/\./g, '\\.')} dsr-udp`), `UDP answered from the VIP by a backend that saw the client: ${udp.trim()}`);

  // A backend L2 dispatch cannot reach: the service says so everywhere, and is never reported ready.
  const status = JSON.parse((await lab.exec('lb', [process.execPath, CLI, 'status', '-o', 'json', '--agent', `http://${HTTP}`], { allowFail: true })).stdout) as
    { notProgrammed: Array<{ service: string; reason: string; message: string }> };
  const far = status.notProgrammed.find((n) => n.service === 'default/far');
  t.match(far, { reason: 'DsrBackendNotOnLink', message: new RegExp(`default/far.*${FAR_BACKEND.replace(/\./g, '\\.')}.*198\\.18\\.0\\.254`) },
    `pharos status names the service, the backend and its gateway: ${JSON.stringify(far)}`);
  t.notOk(status.notProgrammed.some((n) => n.service === 'default/web'), 'the on-link service is not affected');
  t.equal(await metric(lab, /^pharos_datapath_services_not_programmed\{reason="DsrBackendNotOnLink"\}/), 1, 'counted by the not-programmed metric');
  const explain = (await lab.exec('lb', [process.execPath, CLI, 'explain', 'service', 'default/far', '--agent', `http://${HTTP}`], { allowFail: true })).stdout;
  t.match(explain, /NOT SERVED/, 'pharos explain: not served');
  t.match(explain, /a DSR backend is behind a router/, 'and what to do about it');
  t.match(explain, /DsrBackendNotOnLink/, `pharos explain gives the reason:\n${explain}`);
  t.match(explain, /condition lb\.pharos\.io\/DataPathProgrammed=False: DsrBackendNotOnLink/, 'the service condition says it');
  t.comment(`lab time ${Date.now() - started} ms`);
});
