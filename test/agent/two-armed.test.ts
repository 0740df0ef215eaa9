/**
 * A two-armed LB node, shaped like the places users put one: clients on
 * eth0, backends on be0, and the backends' network has no route back to
 * the clients' (no default route at all). SNAT must use the address of the
 * interface a packet leaves by, as MASQUERADE does, or every connection
 * times out. Plain veths, no XDP program on any peer, default checksum
 * offload (the agent's --xdp-mode auto picks generic XDP there).
 * Negative control: a node-wide `--snat-addresses` of the client-side
 * address (what pharos did before) gets no answer.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { httpGet, startEchoServer, withLab, type Lab, type TeardownHost } from '../support/lab.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';
import { l2PoolAndPolicy, lbServiceYaml } from '../support/manifests.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const HTTP = '127.0.0.1:9643';
const PIN_DIR = '/run/pharos/bpffs/pht-lb';
const VIP = '198.51.100.200';

const MANIFESTS = `${l2PoolAndPolicy('front', [[VIP, VIP]])}---
${lbServiceYaml({ name: 'web', namespace: 'default', endpoints: ['203.0.113.10', '203.0.113.11'] })}`;

async function startAgent(t: TeardownHost & { comment(m: string): void }, lab: Lab, work: string, extra: string[]): Promise<() => void> {
  removePins(PIN_DIR);
  const agent = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', join(work, 'manifests'), '--node-name', 'lb-1', '--interfaces', 'eth0,be0',
    '--state-dir', join(work, `state-${extra.length}`), '--pin-dir', PIN_DIR, '--http', HTTP, '--log-format', 'text', ...extra]);
  let log = '';
  agent.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  agent.stdout?.on('data', (d: Buffer) => { log += d.toString(); });
  const stop = (): void => { if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL'); };
  t.teardown(stop);
  await waitFor('agent ready', 30_000, async () => ((await lab.exec('lb', ['curl', '-sf', '-o', '/dev/null', `http://${HTTP}/readyz`], { allowFail: true })).code === 0 ? true : undefined))
    .catch((e: Error) => { throw new Error(`${e.message}\n${log}`); });
  t.comment(log.split('\n').find((l) => l.includes('node configured')) ?? '');
  return async () => {
    stop();
    await new Promise((r) => agent.once('exit', r)).catch(() => undefined);
  };
}

t.test('two-armed node: SNAT from the backend-side interface', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'pht');
  const work = mkdtempSync(join(tmpdir(), 'pht-'));
  t.teardown(() => { rmSync(work, { recursive: true, force: true }); removePins(PIN_DIR); });
  await lab.addNamespace('client');
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addNamespace('be');
  await lab.addLink({ ns: 'client', ifname: 'eth0', addrs: ['198.51.100.1/24'] }, { ns: 'lb', ifname: 'eth0', addrs: ['198.51.100.2/24'] });
  // Two backends on one host, behind the second arm; no route to 198.51.100.0/24 from there.
  await lab.addLink({ ns: 'lb', ifname: 'be0', addrs: ['203.0.113.1/24'] }, { ns: 'be', ifname: 'eth0', addrs: ['203.0.113.10/24', '203.0.113.11/24'] });
  await startEchoServer(lab, 'be', { name: 'be', port: 8080 });
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(work, 'manifests'));
  writeFileSync(join(work, 'manifests', 'app.yaml'), MANIFESTS);

  const stop = await startAgent(t, lab, work, []);
  const answers: string[] = [];
  await waitFor('the VIP to answer', 20_000, async () => {
    try { answers.push(await httpGet(lab, 'client', `http://${VIP}/`, { timeoutMs: 2000 })); return true; } catch { return undefined; }
  });
  for (let i = 0; i < 10; i++) answers.push(await httpGet(lab, 'client', `http://${VIP}/`, { timeoutMs: 3000 }));
  t.equal(answers.length, 11, 'every request answered');
  t.ok(answers.every((a) => / 203\.0\.113\.1$/.test(a.trim())), `the backends saw the be0 address as the source: ${[...new Set(answers.map((a) => a.trim()))].join(', ')}`);
  const listed = JSON.parse((await lab.exec('lb', [process.execPath, CLI, 'bpf', 'ct', 'list', '-o', 'json', '--agent', `http://${HTTP}`])).stdout) as { entries?: { snat: string }[] } | { snat: string }[];
  const ct = Array.isArray(listed) ? listed : listed.entries ?? [];
  t.ok(ct.length > 0 && ct.every((e) => e.snat.startsWith('203.0.113.1:')), `conntrack shows the be0 address: ${ct.slice(0, 2).map((e) => e.snat).join(', ')}`);
  await stop();

  // Negative control: one node-wide source on the client side, as before.
  await startAgent(t, lab, work, ['--snat-addresses', '198.51.100.2']);
  let failed = 0;
  for (let i = 0; i < 3; i++) {
    try { await httpGet(lab, 'client', `http://${VIP}/`, { timeoutMs: 1500 }); } catch { failed++; }
  }
  t.equal(failed, 3, 'with the client-side address as the source, the backends cannot answer');
});
