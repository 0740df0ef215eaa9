/**
 * The product as a user runs it: `pharos agent --manifests DIR` in an LB
 * namespace, real traffic from a client namespace, and every CLI command
 * against the running agent (tables, -o json/yaml, exit codes), then the
 * agent gone. Start-up errors are checked with their messages and codes.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { httpGet, startEchoServer, withLab, type Lab } from '../support/lab.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { removePins } from '../../src/datapath/loader.js';
import { addon } from '../../src/native/libbpf.js';
import { encodeFlow, MAP } from '../../src/datapath/abi.js';
import { parseExposition } from '../support/prom.js';
import { lbServiceYaml } from '../support/manifests.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const HTTP = '127.0.0.1:9643';
const PIN_DIR = '/run/pharos/bpffs/phc-lb';

const MANIFESTS = `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: blue-pool }
spec:
  blocks: [{ cidr: 198.51.100.64/29 }]
---
apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata: { name: overlapping }
spec:
  blocks: [{ start: 198.51.100.66, stop: 198.51.100.70 }]
---
apiVersion: lb.pharos.io/v1alpha1
kind: L2AnnouncementPolicy
metadata: { name: l2 }
spec: { loadBalancerIPs: true }
---
${lbServiceYaml({ name: 'web', namespace: 'shop', endpoints: ['203.0.113.2'] })}`;

/** `fn` over `items`, at most `width` at a time (CLI processes: a few per core, none starved past its timeout). */
async function fewAtATime<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

async function pharos(lab: Lab, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await lab.exec('lb', [process.execPath, CLI, ...args, '--agent', `http://${HTTP}`], { allowFail: true, timeoutMs: 15_000 });
  return r;
}

t.test('agent in manifests mode, driven through the CLI', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'phc');
  const work = mkdtempSync(join(tmpdir(), 'phc-'));
  t.teardown(() => { rmSync(work, { recursive: true, force: true }); removePins(PIN_DIR); });
  removePins(PIN_DIR);
  await lab.addNamespace('client');
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addNamespace('be');
  await lab.addLink({ ns: 'client', ifname: 'eth0', addrs: ['198.51.100.1/24'] }, { ns: 'lb', ifname: 'eth0', addrs: ['198.51.100.2/24'] });
  await lab.addLink({ ns: 'lb', ifname: 'be', addrs: ['203.0.113.1/30'] }, { ns: 'be', ifname: 'eth0', addrs: ['203.0.113.2/30'] });
  await lab.exec('be', ['ip', 'route', 'add', 'default', 'via', '203.0.113.1']);
  // Shaped like a kind node: plain veths, no XDP program on the peers, the hosts' default checksum offload.
  await startEchoServer(lab, 'be', { name: 'be', port: 8080 });
  const dir = join(work, 'manifests');
  await lab.exec('lb', ['mkdir', '-p', dir]);
  writeFileSync(join(dir, 'app.yaml'), MANIFESTS);

  const agent = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'lb-1', '--interfaces', 'eth0,be',
    '--state-dir', join(work, 'state'), '--pin-dir', PIN_DIR, '--http', HTTP, '--log-format', 'json']);
  let log = '';
  agent.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  agent.stdout?.resume();
  t.teardown(() => { if (agent.exitCode === null) agent.kill('SIGKILL'); });
  await waitFor('agent ready', 30_000, async () => ((await pharos(lab, ['status'])).code === 0 ? true : undefined)).catch((e: Error) => {
    throw new Error(`${e.message}\nagent log:\n${log}`);
  });

  t.test('status', async (t) => {
    const r = await pharos(lab, ['status']);
    t.equal(r.code, 0);
    t.match(r.stdout, /Ready:\s+yes/);
    t.match(r.stdout, /tc ingress on eth0 \(ifindex \d+, tc: virtual device \(veth or similar\): tc ingress/, '--xdp-mode auto: tc ingress on a veth, and why');
    t.match(r.stdout, /LoadBalancerIPPool overlapping spec\.blocks: conflicting: .*overlaps .* of older pool blue-pool/, 'a conflicting pool is a problem in pharos status');
    t.match(log, /pool conflicts with another.*overlapping/, 'and in the log');
    const metrics = (await lab.exec('lb', ['curl', '-sf', `http://${HTTP}/metrics`])).stdout;
    t.match(metrics, /^pharos_xdp_attached\{interface="eth0",mode="tc"\} 1$/m);
    const j = JSON.parse((await pharos(lab, ['status', '-o', 'json'])).stdout) as { ready: boolean; node: string };
    t.equal(j.ready, true);
    t.equal(j.node, 'lb-1');
  });

  const vip = await waitFor('an address for shop/web', 10_000, async () => {
    const s = JSON.parse((await pharos(lab, ['service', 'list', '-o', 'json'])).stdout) as { address: string }[];
    return s[0]?.address;
  });

  t.test('the allocated address serves real TCP through XDP', async (t) => {
    t.equal(vip, '198.51.100.64', 'lowest free address of the older pool (the newer, overlapping one conflicts)');
    const body = await waitFor('an answer', 10_000, () => httpGet(lab, 'client', `http://${vip}/`));
    t.match(body, /^be 203\.0\.113\.1/, 'answered by the backend, SNATed to the address of the interface towards it (as MASQUERADE)');
  });

  t.test('service list, pool list, l2 list, bgp, config view', async (t) => {
    const svc = await pharos(lab, ['service', 'list']);
    t.equal(svc.code, 0);
    t.match(svc.stdout, /^ID\s+FRONTEND\s+SERVICE\s+TYPE\s+BACKEND$/m);
    t.match(svc.stdout, /198\.51\.100\.64:80\/TCP\s+shop\/web\s+LoadBalancer\s+1 => 203\.0\.113\.2:8080 \(active\)/);
    const pools = await pharos(lab, ['pool', 'list']);
    t.match(pools.stdout, /^NAME\s+DISABLED\s+CONFLICTING\s+IPS AVAILABLE\s+AGE$/m);
    t.match(pools.stdout, /^blue-pool\s+false\s+False\s+7\s+\d+s$/m);
    t.match(pools.stdout, /^overlapping\s+false\s+True\s+0\s+\d+s$/m);
    const l2 = await pharos(lab, ['l2', 'list']);
    t.match(l2.stdout, /shop\/web\s+198\.51\.100\.64\s+eth0,be\s+lb-1/, "no interfaces in the policy: every interface with an address");
    const peers = await pharos(lab, ['bgp', 'peers', '-o', 'json']);
    t.same(JSON.parse(peers.stdout), []);
    const cfg = await pharos(lab, ['config', 'view', '-o', 'yaml']);
    t.match(cfg.stdout, /nodeName: lb-1/);
    t.match((await pharos(lab, ['config', 'view'])).stdout, /^pinDir\s+\/run\/pharos\/bpffs\/phc-lb$/m);
    const usage = await pharos(lab, ['service', 'frobnicate']);
    t.equal(usage.code, 2);
    t.match(usage.stderr, /usage: pharos service list/);
  });

  t.test("every command of the README's CLI section runs as written, with the columns it shows", async (t) => {
    const commands = readmeCliCommands();
    t.ok(commands.length >= 10, `the README's CLI block lists the commands (${commands.length} found)`);
    // Every command only reads: four at a time, checked in the README's order.
    const runs = await fewAtATime(commands, 4, async ({ words }) => {
      if (words[0] === 'demo' || words[0] === 'lab' || words[0] === 'convert') {
        // Commands that build labs or need files: they exist and say how to call them (the demo, lab and convert tests run them).
        return { help: await lab.exec('lb', [process.execPath, CLI, words[0], '--help'], { allowFail: true }) };
      }
      // -o json of each list is read by the other subtests; yaml here.
      const [r, yaml] = await Promise.all([pharos(lab, words), words.at(-1) === 'list' || words[0] === 'bgp' ? pharos(lab, [...words, '-o', 'yaml']) : undefined]);
      return { r, yaml };
    });
    for (const [i, { words, columns }] of commands.entries()) {
      const line = `pharos ${words.join(' ')}`;
      const { help, r, yaml } = runs[i]!;
      if (help) {
        t.equal(help.code, 0, `${line}: --help answers`);
        continue;
      }
      t.equal(r!.code, 0, `${line} exits 0${r!.code === 0 ? '' : `: ${r!.stderr.trim()}`}`);
      if (columns.length > 0) {
        const header = r!.stdout.split('\n').find((l) => l.startsWith(columns[0]!)) ?? '';
        t.same(header.trim().split(/\s{2,}/), columns, `${line}: the header the README shows`);
      }
      if (yaml) t.equal(yaml.code, 0, `${line} -o yaml`);
    }
  });

  t.test('explain service: a served service says where it comes from and who carries it; a lost one says what to check', async (t) => {
    const ok = await pharos(lab, ['explain', 'service', 'shop/web']);
    t.equal(ok.code, 0, ok.stderr);
    t.match(ok.stdout, /^shop\/web: LoadBalancer, 80\/TCP; as the agent on lb-1 \(manifests mode\) sees it: served$/m);
    t.match(ok.stdout, /198\.51\.100\.64 {2}from pool blue-pool/);
    t.match(ok.stdout, /L2 198\.51\.100\.64: answered by lb-1 \(this node\) on eth0,be/);
    t.match(ok.stdout, /198\.51\.100\.64:80\/TCP \(LoadBalancer\) {2}id \d+ {2}1 active of 1 backends\n {4}203\.0\.113\.2:8080 \(active\)/);
    t.match(ok.stdout, /Check next\n {2}nothing wrong seen from this node/);
    const json = JSON.parse((await pharos(lab, ['explain', 'service', 'shop/web', '-o', 'json'])).stdout) as { healthy: boolean; problems: string[] };
    t.same([json.healthy, json.problems], [true, []]);

    // A service asking for an address no pool covers.
    writeFileSync(join(dir, 'lost.yaml'), lbServiceYaml({ name: 'lost', namespace: 'shop', endpoints: ['203.0.113.2'] })
      .replace('metadata: { name: lost, namespace: shop }', "metadata: { name: lost, namespace: shop, annotations: { lb.pharos.io/ips: '192.0.2.99' } }"));
    const lost = await waitFor('the lost service known', 10_000, async () => {
      const r = await pharos(lab, ['explain', 'service', 'shop/lost']);
      return r.code === 0 && /IPAM problem/.test(r.stdout) ? r : undefined;
    });
    t.match(lost.stdout, /sees it: NOT SERVED$/m);
    t.match(lost.stdout, /asked for: lb\.pharos\.io\/ips: 192\.0\.2\.99/);
    t.match(lost.stdout, /IPAM problem: no_pool: .*192\.0\.2\.99/);
    t.match(lost.stdout, /no pool hands this service an address: pharos pool list/);
    rmSync(join(dir, 'lost.yaml'));

    const unknown = await pharos(lab, ['explain', 'service', 'shop/nothing']);
    t.equal(unknown.code, 1);
    t.match(unknown.stderr, /service shop\/nothing is not known to the agent on lb-1/);
    t.equal((await pharos(lab, ['explain', 'service', 'web'])).code, 2, 'not NAMESPACE/NAME: usage');
    t.equal((await lab.exec('lb', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${HTTP}/v1/state?service=..%2Fx`])).stdout, '400', 'a bad service query is refused');
  });

  t.test('bpf ct list shows the client flows with their backend and SNAT port', async (t) => {
    const table = await pharos(lab, ['bpf', 'ct', 'list']);
    t.equal(table.code, 0);
    t.match(table.stdout, /^PROTO\s+SOURCE\s+DESTINATION\s+BACKEND\s+SNAT\s+STATE\s+IDLE$/m);
    t.match(table.stdout, /TCP\s+198\.51\.100\.1:\d+\s+198\.51\.100\.64:80\s+203\.0\.113\.2:8080\s+203\.0\.113\.1:\d+\s+\w+\s+\d+s/);
    const json = JSON.parse((await pharos(lab, ['bpf', 'ct', 'list', '--filter', '198.51.100.64:80', '-o', 'json'])).stdout) as { entries: { backend: string }[] };
    t.ok(json.entries.length > 0 && json.entries.every((e) => e.backend === '203.0.113.2:8080'));
    const none = JSON.parse((await pharos(lab, ['bpf', 'ct', 'list', '--filter', 'no-such-flow', '-o', 'json'])).stdout) as { entries: unknown[] };
    t.same(none.entries, []);
    t.equal((await pharos(lab, ['bpf', 'ct'])).code, 2, 'usage error');
  });

  t.test('metrics are valid exposition with the pharos families', async (t) => {
    const text = (await lab.exec('lb', ['curl', '-sf', `http://${HTTP}/metrics`])).stdout;
    const families = parseExposition(text);
    for (const name of ['pharos_datapath_packets_total', 'pharos_datapath_drops_total', 'pharos_conntrack_entries', 'pharos_bpf_map_entries',
      'pharos_bpf_map_capacity', 'pharos_ipam_pool_addresses', 'pharos_ipam_conflicting_pools', 'pharos_ipam_services_unsatisfied',
      'pharos_l2_announced', 'pharos_reconcile_duration_seconds', 'pharos_process_resident_memory_bytes']) {
      t.ok(families.has(name), `${name} present`);
    }
    t.equal(families.get('pharos_ipam_conflicting_pools')?.samples[0]?.value, 1);
    const pkts = families.get('pharos_datapath_packets_total')?.samples.find((s) => s.labels.service === 'shop/web');
    t.ok(pkts && pkts.value > 0, 'packets counted for shop/web');
    const post = await lab.exec('lb', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', `http://${HTTP}/v1/state`]);
    t.equal(post.stdout, '405', 'no write endpoints');
  });

  t.test('/v1/conntrack pages: bounded per request, a cursor through the whole table', async (t) => {
    // 3,000 synthetic flows in the pinned table beside the real ones (the agent only reads it).
    const ct = addon().openPinnedMap(join(PIN_DIR, MAP.conntrack));
    const value = Buffer.alloc(ct.valueBufferSize);
    value.writeBigUInt64LE(process.hrtime.bigint(), 0);
    const flows = Array.from({ length: 3000 }, (_, i) => encodeFlow({ src: `198.18.${(i >> 8) & 255}.${i & 255}`, dst: '198.51.100.99', sport: 40000 + (i % 1000), dport: 80, proto: 6 }));
    for (const k of flows) ct.update(k, value);
    t.teardown(() => { for (const k of flows) ct.delete(k); ct.close(); });
    const get = async (q: string): Promise<{ code: number; body: string }> => {
      const r = await lab.exec('lb', ['curl', '-s', '-w', '\n%{http_code}', `http://${HTTP}/v1/conntrack?${q}`]);
      const at = r.stdout.lastIndexOf('\n');
      return { code: Number(r.stdout.slice(at + 1)), body: r.stdout.slice(0, at) };
    };
    const first = JSON.parse((await get('')).body) as { entries: unknown[]; truncated: boolean; continue?: string };
    t.ok(first.entries.length >= 1000 && first.entries.length <= 1064, `the default page is 1,000 entries (and the rest of a hash bucket), not the whole table: ${first.entries.length}`);
    t.ok(first.truncated && first.continue, 'with a cursor to go on');
    const seen = new Set<string>();
    let token: string | undefined;
    for (let i = 0; i < 20; i++) {
      const page = JSON.parse((await get(`limit=700${token ? `&continue=${token}` : ''}`)).body) as { entries: { source: string; destination: string }[]; continue?: string };
      t.ok(page.entries.length <= 764, 'a page holds its limit and at most the rest of a bucket');
      for (const e of page.entries) seen.add(`${e.source}>${e.destination}`);
      token = page.continue;
      if (!token) break;
    }
    t.notOk(token, 'the cursor reaches the end');
    t.ok(flows.every((_, i) => seen.has(`198.18.${(i >> 8) & 255}.${i & 255}:${40000 + (i % 1000)}>198.51.100.99:80`)), `every one of the 3,000 flows seen once through the pages (${seen.size} in all)`);
    t.equal((await get('limit=20000')).code, 400, 'a page past the hard maximum is refused');
    t.match((await get('limit=20000')).body, /limit: expected an integer from 1 to 10000/);
    t.equal((await get('continue=bogus')).code, 400, 'a cursor this agent did not give is refused');
    const cli = await pharos(lab, ['bpf', 'ct', 'list', '--filter', '198.51.100.99', '--limit', '2500', '-o', 'json']);
    t.equal((JSON.parse(cli.stdout) as { entries: unknown[] }).entries.length, 2500, 'the CLI pages to its --limit through the filter');
  });

  t.test('a broken manifest keeps the last good state and is reported', async (t) => {
    writeFileSync(join(dir, 'app.yaml'), MANIFESTS.replace('cidr: 198.51.100.64/29', 'cidr: 198.51.100.64/299'));
    const problems = await waitFor('the problem to be reported', 10_000, async () => {
      const s = JSON.parse((await lab.exec('lb', ['curl', '-sf', `http://${HTTP}/v1/state`])).stdout) as { problems: { source: string; message: string }[] };
      const manifests = s.problems.filter((p) => p.source !== 'ipam');
      return manifests.length ? manifests : undefined;
    });
    t.match(problems[0]!.message, /blue-pool.*spec\.blocks\[0\]\.cidr/);
    const body = await httpGet(lab, 'client', `http://${vip}/`);
    t.match(body, /^be /, 'still served');
    const svc = JSON.parse((await pharos(lab, ['service', 'list', '-o', 'json'])).stdout) as { address: string }[];
    t.equal(svc[0]?.address, vip, 'address unchanged');
  });

  t.test('agent restart keeps the address and the open connection', async (t) => {
    agent.kill('SIGTERM');
    await new Promise((r) => agent.once('exit', r));
    t.match(log, /"msg":"agent stopped; the data path keeps forwarding from pinned maps"/);
    const down = await pharos(lab, ['status']);
    t.equal(down.code, 3, 'exit code 3 when the agent is unreachable');
    t.match(down.stderr, /cannot reach the pharos agent at http:\/\/127\.0\.0\.1:9643/);
    t.match(await httpGet(lab, 'client', `http://${vip}/`), /^be /, 'traffic flows while the agent is away (pinned maps)');
    const again = lab.spawn('lb', [process.execPath, CLI, 'agent', '--manifests', dir, '--node-name', 'lb-1', '--interfaces', 'eth0,be',
      '--state-dir', join(work, 'state'), '--pin-dir', PIN_DIR, '--http', HTTP]);
    let log2 = '';
    again.stderr?.on('data', (d: Buffer) => { log2 += d.toString(); });
    again.stdout?.resume();
    t.teardown(() => { if (again.exitCode === null) again.kill('SIGKILL'); });
    await waitFor('restarted agent ready', 30_000, async () => ((await pharos(lab, ['status'])).code === 0 ? true : undefined)).catch((e: Error) => {
      throw new Error(`${e.message}\nagent log:\n${log2}`);
    });
    const svc = JSON.parse((await pharos(lab, ['service', 'list', '-o', 'json'])).stdout) as { address: string }[];
    t.equal(svc[0]?.address, vip, 'same address after restart');
    again.kill('SIGTERM');
    await new Promise((r) => again.once('exit', r));
  });
});

t.test('start-up errors name the problem and exit non-zero', { skip: privilegedUnavailable() }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'phc-err-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  /** `pharos ARGS` to its exit, with how long it took. */
  const cli = (args: string[]): Promise<{ status: number | null; stdout: string; stderr: string; ms: number }> => new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (status) => resolve({ status, stdout, stderr, ms: Date.now() - started }));
  });
  // Independent processes, each failing before it touches anything shared: a few at a time, checked in order.
  const cases: Array<[string[], number, RegExp, string?]> = [
    [['--bogus'], 2, /unknown flag --bogus/],
    [[], 2, /no source/],
    [['--manifests', join(dir, 'nope'), '--interfaces', 'lo'], 1, /--manifests .*nope: directory not found/],
    [['--manifests', dir, '--interfaces', 'doesnotexist0', '--state-dir', join(dir, 's'), '--pin-dir', '/run/pharos/bpffs/phc-err'], 1, /--interfaces: interface "doesnotexist0" does not exist/],
    [['--manifests', dir, '--config', join(dir, 'missing.yaml')], 2, /config file .*missing\.yaml: cannot read/],
    [['--kubeconfig', join(dir, 'no-kubeconfig'), '--interfaces', 'eth0'], 1, /no-kubeconfig/, 'an unreadable kubeconfig is named'],
    [['--manifests', dir, '--interfaces', ''], 2, /--interfaces: at least one interface is required/, 'no interface is a usage error'],
    [['--manifests', dir, '--interfaces', 'lo,lo'], 2, /--interfaces: "lo" is listed twice/],
    [['--manifests', dir, '--interfaces', 'lo', '--state-dir', '/proc/x/y', '--pin-dir', '/run/pharos/bpffs/phc-err'], 1, /--state-dir \/proc\/x\/y is on a kernel filesystem/],
    [['--manifests', dir, '--interfaces', 'lo', '--state-dir', join(dir, 's'), '--pin-dir', join(dir, 'pins')], 1, /--pin-dir .*pins is not on a BPF filesystem/],
  ];
  const [results, help, unknown] = await Promise.all([fewAtATime(cases, 3, ([args]) => cli(['agent', ...args])), cli(['agent', '--help']), cli(['frobnicate'])]);
  for (const [i, [args, status, message, what]] of cases.entries()) {
    const r = results[i]!;
    t.equal(r.status, status, what ?? `agent ${args.join(' ')}: exit ${status}`);
    t.match(r.stderr, message);
    if (args.includes('/proc/x/y')) t.ok(r.ms < 15_000, 'and says so at once (a recursive mkdir under /proc spins forever)');
  }
  t.notOk(existsSync(join(dir, 'pins')), 'nothing left behind');
  t.equal(help.status, 0);
  t.match(help.stdout, /--pin-dir/);
  t.equal(unknown.status, 2);
});

t.test('the HTTP port already in use is a clear start-up error, and the data path is left as it was', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'php');
  const work = mkdtempSync(join(tmpdir(), 'php-'));
  const pinDir = '/run/pharos/bpffs/php-lb';
  t.teardown(() => { rmSync(work, { recursive: true, force: true }); removePins(pinDir); });
  await lab.addNamespace('lb');
  await lab.addNamespace('peer');
  await lab.addLink({ ns: 'lb', ifname: 'eth0', addrs: ['192.0.2.1/24'] }, { ns: 'peer', ifname: 'eth0', addrs: ['192.0.2.2/24'] });
  const holder = lab.spawn('lb', [process.execPath, '-e', "require('net').createServer().listen(9643, '127.0.0.1', () => console.log('listening'))"]);
  await waitFor('the port holder', 10_000, async () => ((await lab.exec('lb', ['ss', '-ltnH', 'sport = :9643'])).stdout.includes('9643') ? true : undefined));
  const r = await lab.exec('lb', [process.execPath, CLI, 'agent', '--manifests', work, '--interfaces', 'eth0', '--state-dir', join(work, 's'),
    '--pin-dir', pinDir, '--http', '127.0.0.1:9643'], { allowFail: true, timeoutMs: 30_000 });
  t.equal(r.code, 1);
  t.match(r.stderr, /--http 127\.0\.0\.1:9643: address already in use/);
  const link = JSON.parse((await lab.exec('lb', ['ip', '-j', 'link', 'show', 'eth0'])).stdout) as { xdp?: unknown }[];
  t.notOk(link[0]?.xdp, 'no XDP program was attached');
  holder.kill('SIGKILL');
});

/**
 * The commands in the README's CLI block (` ```` ` after "## CLI"): the words
 * after `pharos` up to the description (two or more spaces), `a | b` as two
 * commands; and the column names when the description is a table header
 * (capitalised words separated by two spaces).
 */
function readmeCliCommands(): Array<{ words: string[]; columns: string[] }> {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## CLI\n'));
  const block = section.slice(section.indexOf('```\n') + 4, section.indexOf('\n```', section.indexOf('```\n') + 4));
  const out: Array<{ words: string[]; columns: string[] }> = [];
  for (const line of block.split('\n')) {
    const m = /^pharos (\S.*?)(?:\s{2,}(.*))?$/.exec(line);
    if (!m) continue;
    const description = m[2] ?? '';
    const header = /^([A-Z][A-Z ]*?(?: {2,}[A-Z][A-Z ]*?)+)(?:\s{3,}|\s*\(|$)/.exec(description);
    const columns = header ? header[1]!.trim().split(/\s{2,}/) : [];
    // Placeholders: NS/NAME is the test's service; FILE... and [--flags] are left out.
    const words = m[1]!.split(' ').filter((w) => !w.startsWith('[') && !w.endsWith('...')).map((w) => (/^[A-Z]+\/[A-Z]+$/.test(w) ? 'shop/web' : w));
    const alternatives = words.join(' ').split(' | ');
    if (alternatives.length === 2) {
      const [first, second] = alternatives as [string, string];
      const stem = first.split(' ').slice(0, -1);
      out.push({ words: first.split(' '), columns: [] }, { words: [...stem, second], columns: [] });
    } else if (words.at(-1)?.includes('|')) {
      out.push({ words: [words[0]!], columns: [] });
    } else {
      out.push({ words, columns });
    }
  }
  return out;
}
