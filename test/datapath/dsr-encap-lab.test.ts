/**
 * Direct server return, encapsulated dispatch, end to end (IPv4 and IPv6,
 * TCP and UDP): the backend is behind a router, so the LB sends it the
 * client's packets in IPIP / IP6IP6; on the backend host `pharos agent
 * --role backend` (same manifests) attaches the decapsulation program,
 * puts the VIPs on lo (ARP-silent) and programs them; the server there
 * answers the client straight through the router.
 *
 *   cli 198.18.0.1 ─ rtr ─ lb  198.18.1.2  (pharos, --forwarding-mode dsr; the router routes the VIPs to it)
 *   2001:db8::1       └─── be  198.18.2.2  (pharos --role backend; echo servers on the VIPs)
 *                          routes: VIPs 198.51.100.70 / 2001:db8:100::70 via lb
 *
 * What it proves: the backend sees the client's own address (v4, v6, TCP,
 * UDP), the packets crossed in IPIP / IP6IP6 and were decapsulated by
 * pharos (counters on both ends), replies never touch the LB (its
 * interface receives what the client sent, not the replies), no flow
 * state was made on the LB, a 4 MiB TCP upload (full-size segments, GSO
 * on veth: the tc build's adjust_room shrinks the segments for the outer
 * header) arrives whole over both families, a 1500-byte datagram makes
 * the client's kernel learn path MTU 1480 / 1460 from the LB's ICMP answer,
 * and the backend agent reports itself ready with the program attached.
 */
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { httpGet, startEchoServer, udpQuery, withLab, type Lab } from '../support/lab.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';
import { DECAP_STAT_REASONS } from '../../src/datapath/decap.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const HTTP = '127.0.0.1:9643';
const PINS = { lb: '/run/pharos/bpffs/phdse-lb', be: '/run/pharos/bpffs/phdse-be' };
const VIP = '198.51.100.70';
const VIP6 = '2001:db8:100::70';
const CLIENT = { v4: '198.18.0.1', v6: '2001:db8::1' };
const BACKEND = { v4: '198.18.2.2', v6: '2001:db8:2::2' };
const REQUESTS = 20;
/** A TCP upload of BULK_BYTES: full-size segments (1500-byte packets, GSO on veth) must fit once encapsulated. */
const BULK_PORT = 9000;
const BULK_BYTES = 4 * 1024 * 1024;
/** Counts what a connection sends and answers the count when it ends. */
const BULK_SERVER = `require('net').createServer((s) => { let n = 0; s.on('data', (d) => { n += d.length; }); s.on('end', () => s.end(String(n))); }).listen(${BULK_PORT}, '::');`;
const BULK_CLIENT = `const s = require('net').connect(${BULK_PORT}, process.argv[1], () => { s.end(Buffer.alloc(${BULK_BYTES}, 7)); }); let out = ''; s.on('data', (d) => { out += d; }); s.on('end', () => { console.log(out); }); setTimeout(() => { console.log('timeout'); process.exit(1); }, 20000).unref();`;

const MANIFESTS = `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: front }
spec:
  blocks: [{ start: ${VIP}, stop: ${VIP} }, { start: ${VIP6}, stop: ${VIP6} }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default, annotations: { lb.pharos.io/ips: "${VIP},${VIP6}" } }
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  ports: [{ name: http, port: 80, targetPort: 80, protocol: TCP }, { name: dns, port: 53, targetPort: 53, protocol: UDP }, { name: bulk, port: ${BULK_PORT}, targetPort: ${BULK_PORT}, protocol: TCP }]
${(['v4', 'v6'] as const).map((f) => `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-${f}, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: ${f === 'v4' ? 'IPv4' : 'IPv6'}
ports: [{ name: http, port: 80, protocol: TCP }, { name: dns, port: 53, protocol: UDP }, { name: bulk, port: ${BULK_PORT}, protocol: TCP }]
endpoints:
  - addresses: ["${BACKEND[f]}"]
    conditions: { ready: true }
`).join('')}`;

async function linkStats(lab: Lab, ns: string): Promise<{ rx: number; tx: number }> {
  const [link] = JSON.parse(await lab.output(ns, ['ip', '-j', '-s', 'link', 'show', 'eth0'])) as Array<{ stats64: { rx: { packets: number }; tx: { packets: number } } }>;
  return { rx: link!.stats64.rx.packets, tx: link!.stats64.tx.packets };
}

function sumOf(text: string, pattern: RegExp): number {
  let sum = 0;
  for (const line of text.split('\n')) if (pattern.test(line)) sum += Number(line.split(' ').pop());
  return sum;
}

/** The backend agent's decapsulation counters (pharos_dsr_decap_total), from a /metrics document made after this call (the agent reuses one for up to a second). */
async function decapCounters(lab: Lab): Promise<Record<string, number>> {
  await new Promise((r) => setTimeout(r, 1100));
  const text = await lab.output('be', ['curl', '-sf', `http://${HTTP}/metrics`]);
  return Object.fromEntries(DECAP_STAT_REASONS.map((reason) => [reason, sumOf(text, new RegExp(`^pharos_dsr_decap_total\\{reason="${reason}"\\}`))]));
}

t.test('DSR encapsulated: a backend behind a router sees the client, replies bypass the LB', { skip: privilegedUnavailable() }, async (t) => {
  const started = Date.now();
  const lab = await withLab(t, 'phdse');
  const work = mkdtempSync(join(tmpdir(), 'phdse-'));
  t.teardown(() => { rmSync(work, { recursive: true, force: true }); removePins(PINS.lb); removePins(PINS.be); });
  await lab.addNamespace('rtr', { forwarding: true });
  const hosts: Array<[ns: string, net: number, host: number]> = [['cli', 0, 1], ['lb', 1, 2], ['be', 2, 2]];
  for (const [ns, net, host] of hosts) {
    await lab.addNamespace(ns, ns === 'lb' ? { forwarding: true } : {});
    await lab.addLink(
      { ns, ifname: 'eth0', addrs: [`198.18.${net}.${host}/24`, `2001:db8:${net === 0 ? '' : `${net}:`}:${host}/64`] },
      { ns: 'rtr', ifname: `eth${net}`, addrs: [`198.18.${net}.254/24`, `2001:db8:${net === 0 ? '' : `${net}:`}:fe/64`] },
    );
    await lab.exec(ns, ['sh', '-c', `ip route add default via 198.18.${net}.254 && ip -6 route add default via 2001:db8:${net === 0 ? '' : `${net}:`}:fe`]);
  }
  // The VIPs live behind the LB (as a BGP route to it would say).
  await lab.exec('rtr', ['sh', '-c', `ip route add ${VIP}/32 via 198.18.1.2 && ip -6 route add ${VIP6}/128 via 2001:db8:1::2`]);
  mkdirSync(join(work, 'manifests'));
  writeFileSync(join(work, 'manifests', 'app.yaml'), MANIFESTS);

  const agents: Record<string, string> = { lb: '', be: '' };
  const spawnAgent = (ns: 'lb' | 'be', extra: string[], manifests = 'manifests'): ChildProcess => {
    if (manifests === 'manifests') removePins(PINS[ns]);
    const child = lab.spawn(ns, [process.execPath, CLI, 'agent', '--manifests', join(work, manifests), '--node-name', ns, '--interfaces', 'eth0',
      '--state-dir', join(work, `state-${ns}`), '--pin-dir', PINS[ns], '--http', HTTP, '--log-format', 'text', ...extra]);
    child.stderr?.on('data', (d: Buffer) => { agents[ns] += d.toString(); });
    child.stdout?.on('data', (d: Buffer) => { agents[ns] += d.toString(); });
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
    return child;
  };
  const backendAgent = spawnAgent('be', ['--role', 'backend']);
  spawnAgent('lb', ['--xdp-mode', 'auto', '--forwarding-mode', 'dsr']);
  const logs = (): string => `\n--- lb\n${agents.lb}\n--- be\n${agents.be}`;
  await waitFor('the backend agent to put both VIPs on lo', 30_000, async () => {
    const lo = await lab.output('be', ['ip', '-j', 'addr', 'show', 'dev', 'lo']);
    return lo.includes(`"${VIP}"`) && lo.includes(`"${VIP6}"`) ? true : undefined;
  }).catch((e: Error) => { throw new Error(`${e.message}${logs()}`); });
  const beStatus = JSON.parse((await lab.exec('be', [process.execPath, CLI, 'status', '-o', 'json', '--agent', `http://${HTTP}`], { allowFail: true })).stdout || '{}') as
    { ready?: boolean; datapath?: { attachments?: Array<{ interface: string; mode: string }> } };
  t.equal(beStatus.ready, true, `pharos status on the backend: ready${beStatus.ready ? '' : `: ${JSON.stringify(beStatus)}${logs()}`}`);
  t.match(beStatus.datapath?.attachments, [{ interface: 'eth0', mode: 'tc' }], 'with the decapsulation program at tc ingress of eth0');
  const arp = await lab.output('be', ['sysctl', '-n', 'net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce']);
  t.same(arp.trim().split(/\s+/), ['1', '2'], 'the backend is ARP-silent for lo\'s VIPs (arp_ignore=1, arp_announce=2)');
  await startEchoServer(lab, 'be', { name: 'be', port: 80 });
  lab.spawn('be', [process.execPath, '-e', BULK_SERVER]);
  // Bound to each VIP so the reply leaves from it (an unbound UDP socket would answer from eth0's address).
  await startEchoServer(lab, 'be', { name: 'be', port: 53, udp: true, host: VIP });
  await startEchoServer(lab, 'be', { name: 'be', port: 53, udp: true, host: VIP6 });
  await waitFor('the VIP to answer through the LB', 30_000, async () => {
    try { return await httpGet(lab, 'cli', `http://${VIP}/`, { timeoutMs: 2000 }); } catch { return undefined; }
  }).catch((e: Error) => { throw new Error(`${e.message}${logs()}`); });

  const lbBefore = await linkStats(lab, 'lb');
  const cliBefore = await linkStats(lab, 'cli');
  const decapBefore = await decapCounters(lab);
  const answers: string[] = [];
  for (let i = 0; i < REQUESTS; i++) answers.push((await httpGet(lab, 'cli', `http://${VIP}/`, { timeoutMs: 3000 })).trim());
  for (let i = 0; i < REQUESTS; i++) answers.push((await httpGet(lab, 'cli', `http://[${VIP6}]/`, { timeoutMs: 3000 })).trim());
  const udp4 = (await udpQuery(lab, 'cli', VIP, 53, 'ipip-udp', { timeoutMs: 3000 })).trim();
  const udp6 = (await udpQuery(lab, 'cli', VIP6, 53, 'ip6ip6-udp', { timeoutMs: 3000 })).trim();
  const lbAfter = await linkStats(lab, 'lb');
  const cliAfter = await linkStats(lab, 'cli');
  const decapAfter = await decapCounters(lab);

  t.ok(answers.slice(0, REQUESTS).every((a) => a === `be ${CLIENT.v4}`), `TCP over IPIP: the backend saw the client's own address: ${[...new Set(answers.slice(0, REQUESTS))].join(', ')}`);
  t.ok(answers.slice(REQUESTS).every((a) => a === `be ${CLIENT.v6}`), `TCP over IP6IP6: the backend saw the client's own address: ${[...new Set(answers.slice(REQUESTS))].join(', ')}`);
  t.equal(udp4, `be ${CLIENT.v4} ipip-udp`, 'UDP over IPIP: answered from the VIP by the backend, which saw the client');
  t.equal(udp6, `be ${CLIENT.v6} ip6ip6-udp`, 'UDP over IP6IP6: the same');

  const sent = cliAfter.tx - cliBefore.tx;
  const received = cliAfter.rx - cliBefore.rx;
  const lbReceived = lbAfter.rx - lbBefore.rx;
  const lbSent = lbAfter.tx - lbBefore.tx;
  t.comment(`client sent ${sent} and received ${received} packets; the LB received ${lbReceived} and sent ${lbSent}`);
  t.ok(received >= REQUESTS * 2 * 3, `the client got its replies (${received} packets)`);
  // Through the LB both ways it would be about sent + received; a few neighbour messages are allowed.
  t.ok(lbReceived <= sent + 8, `the LB saw the requests only (${lbReceived} received vs ${sent} sent by the client, ${received} replies)`);
  const decapped = decapAfter.decap! - decapBefore.decap!;
  t.ok(decapped >= sent - 8 && decapped <= sent, `the backend's pharos decapsulated the client's packets, pharos_dsr_decap_total{reason="decap"} (${decapped} of ${sent})`);
  t.same(Object.entries(decapAfter).filter(([r, n]) => r !== 'decap' && n !== decapBefore[r]), [], 'and dropped or passed nothing else');

  // One /metrics document that already counts the traffic (the agent reuses a document for up to a second).
  const metrics = await waitFor('the LB metrics to count the encapsulated packets', 5000, async () => {
    const text = await lab.output('lb', ['curl', '-sf', `http://${HTTP}/metrics`]);
    return sumOf(text, /^pharos_datapath_events_total\{event="dsr_encap"\}/) >= sent - 8 ? text : undefined;
  });
  t.ok(sumOf(metrics, /^pharos_datapath_events_total\{event="dsr_encap"\}/) >= sent - 8, 'the LB counted them as encapsulated DSR dispatches');
  t.equal(sumOf(metrics, /^pharos_datapath_events_total\{event="(ct_create|rev_nat|tc_rev_nat|dsr_l2)"\}/), 0, 'no conntrack entry, no reverse NAT, no L2 dispatch');

  for (const vip of [VIP, VIP6]) {
    const got = (await lab.output('cli', [process.execPath, '-e', BULK_CLIENT, vip], { timeoutMs: 30_000 })).trim();
    t.equal(got, String(BULK_BYTES), `a ${BULK_BYTES}-byte TCP upload to ${vip} arrives whole through the ${vip.includes(':') ? 'IP6IP6' : 'IPIP'} path`);
  }

  // A datagram that fits the client's 1500-byte link but not with the outer header: the LB (tc build) answers
  // frag-needed / packet-too-big from the VIP, and the client's kernel lowers its path MTU to the VIP.
  for (const [vip, payload, want] of [[VIP, 1500 - 28, 1480], [VIP6, 1500 - 48, 1460]] as const) {
    await lab.exec('cli', [process.execPath, '-e', `const s = require('dgram').createSocket('${vip.includes(':') ? 'udp6' : 'udp4'}'); s.send(Buffer.alloc(${payload}, 1), 53, '${vip}', () => setTimeout(() => s.close(), 300));`]);
    const route = await waitFor(`the client's path MTU to ${vip}`, 5000, async () => {
      const r = await lab.output('cli', ['ip', ...(vip.includes(':') ? ['-6'] : []), 'route', 'get', vip]);
      return /mtu \d+/.test(r) ? r : undefined;
    }).catch(() => '');
    t.match(route, new RegExp(`mtu ${want}\\b`), `a ${payload + (vip.includes(':') ? 48 : 28)}-byte packet to ${vip}: the client learned path MTU ${want} (the link minus the outer header): ${route.trim()}`);
  }

  // A stopped backend agent leaves the program, its maps and the VIPs in place (traffic keeps flowing); the next
  // one, whose manifests no longer have the service, takes the VIPs it had put on lo away again.
  backendAgent.kill('SIGTERM');
  await new Promise<void>((resolve) => backendAgent.once('exit', () => resolve()));
  t.equal((await httpGet(lab, 'cli', `http://${VIP}/`, { timeoutMs: 3000 })).trim(), `be ${CLIENT.v4}`, 'served while the backend agent is stopped');
  mkdirSync(join(work, 'manifests-gone'));
  writeFileSync(join(work, 'manifests-gone', 'pool.yaml'), MANIFESTS.split('\n---\n')[0]!);
  spawnAgent('be', ['--role', 'backend'], 'manifests-gone');
  await waitFor('the restarted backend agent to take the VIPs off lo', 30_000, async () => {
    const lo = await lab.output('be', ['ip', '-j', 'addr', 'show', 'dev', 'lo']);
    return !lo.includes(`"${VIP}"`) && !lo.includes(`"${VIP6}"`) ? true : undefined;
  }).catch((e: Error) => { throw new Error(`${e.message}${logs()}`); });
  t.pass('a restart removes the VIPs of services no longer served here');
  t.comment(`lab time ${Date.now() - started} ms`);
});
