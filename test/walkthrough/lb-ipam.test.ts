/**
 * The LB-IPAM walkthrough, as a user follows it against `pharos lab`, only
 * through kubectl: apply a pool and see it with `kubectl get ippools`,
 * create a LoadBalancer service and watch it get an EXTERNAL-IP with
 * `kubectl get svc -w`, then the blue/red pools of deploy/examples pick
 * addresses by service label. The addresses come from the agents (the
 * pharos-ipam lease holder), not from the lab.
 */
import t from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from '../../src/lab/cluster.js';
import { CLI, WalkthroughLab, run, sleep, waitFor } from './walkthrough-lab.js';

const PREFIX = 'phw-a';

const POOL = `apiVersion: lb.pharos.io/v1alpha1
kind: LoadBalancerIPPool
metadata:
  name: lab-pool
spec:
  blocks:
    - cidr: 198.51.100.64/28
  serviceSelector:
    matchLabels:
      pool: lab
`;

const SERVICE = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  labels:
    pool: lab
spec:
  type: LoadBalancer
  selector:
    app: echo
  ports:
    - name: http
      port: 80
      targetPort: 8080
`;

function columns(line: string): string[] {
  return line.trim().split(/\s{2,}|\s+/);
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

t.test('LB-IPAM walkthrough with kubectl', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await WalkthroughLab.up(t, PREFIX, 2);

  await t.test('kubectl apply a pool; kubectl get ippools shows its columns', async (t) => {
    t.match(await lab.kubectl(['apply', '--validate=false', '-f', '-'], { input: POOL }), /loadbalancerippool\.lb\.pharos\.io\/lab-pool created/);
    // The columns come from the pool's status, which the IPAM leader writes just after the create: wait for it.
    const out = await waitFor('the pool status in kubectl get ippools', 20_000, async () => {
      const text = await lab.kubectl(['get', 'ippools']);
      return columns(text.trim().split('\n')[1] ?? '').length >= 5 ? text : undefined;
    });
    const [header, row] = out.trim().split('\n');
    t.same(columns(header!), ['NAME', 'DISABLED', 'CONFLICTING', 'IPS', 'AVAILABLE', 'AGE'], 'the CRD printer columns');
    t.same(columns(row!).slice(0, 4), ['lab-pool', 'false', 'False', '16'], 'lab-pool: enabled, no conflict, 16 addresses');
  });

  await t.test('a LoadBalancer service gets an EXTERNAL-IP from the pool, seen through kubectl get svc -w', async (t) => {
    const w = lab.watch(['get', 'svc', '-w']);
    await sleep(1000); // the watch is open before the service exists, so it sees <pending> first
    t.match(await lab.kubectl(['apply', '--validate=false', '-f', '-'], { input: SERVICE }), /service\/web created/);
    const assigned = await waitFor('web to get an EXTERNAL-IP in the watch', 30_000, async () => {
      const row = w.lines.map((l) => columns(l.text)).find((c) => c[0] === 'web' && /^198\.51\.100\./.test(c[3] ?? ''));
      return row?.[3];
    });
    w.stop();
    const webLines = w.lines.map((l) => columns(l.text)).filter((c) => c[0] === 'web');
    t.comment(`kubectl get svc -w:\n${w.lines.map((l) => l.text).join('\n')}`);
    t.equal(webLines[0]?.[1], 'LoadBalancer', 'TYPE column');
    t.match(webLines[0]?.[2] ?? '', /^198\.19\./, 'a ClusterIP was allocated');
    t.ok(ipv4ToInt(assigned) >= ipv4ToInt('198.51.100.64') && ipv4ToInt(assigned) <= ipv4ToInt('198.51.100.79'), `${assigned} is in 198.51.100.64/28`);
    t.equal((await lab.kubectl(['get', 'svc', 'web', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'])).trim(), assigned, 'the same address in status');
    const row = await waitFor('the pool to count the allocation', 15_000, async () => {
      const c = columns((await lab.kubectl(['get', 'ippools', 'lab-pool', '--no-headers'])).trim());
      return c[3] === '15' ? c : undefined;
    });
    t.equal(row[3], '15', 'IPS AVAILABLE dropped to 15');
  });

  await t.test('pharos pool list on every node, the IPAM leader and the follower alike, counts the allocation', async (t) => {
    for (const node of ['n1', 'n2']) {
      const pool = await waitFor(`${node} to count the allocation`, 15_000, async () => {
        const r = await run('ip', ['netns', 'exec', `${PREFIX}-${node}`, process.execPath, CLI, 'pool', 'list', '-o', 'json'], { timeoutMs: 10_000 });
        const p = (JSON.parse(r.stdout || '[]') as Array<{ name: string; used: string; available: string }>).find((x) => x.name === 'lab-pool');
        return p?.used === '1' ? p : undefined;
      });
      t.same({ used: pool.used, available: pool.available }, { used: '1', available: '15' }, `${node}: 1 used, 15 available`);
    }
  });

  await t.test('blue and red pools pick services by label (deploy/examples/blue-red-pools.yaml)', async (t) => {
    const out = await lab.kubectl(['apply', '--validate=false', '-f', join(PROJECT_ROOT, 'deploy', 'examples', 'blue-red-pools.yaml')]);
    t.match(out, /service\/service-blue created/);
    t.match(out, /service\/service-red created/);
    const ip = (svc: string) => waitFor(`${svc} to get an address`, 30_000, async () =>
      (await lab.kubectl(['get', 'svc', svc, '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'])).trim() || undefined);
    const blue = await ip('service-blue');
    const red = await ip('service-red');
    t.comment(`service-blue ${blue}, service-red ${red}`);
    // color=blue matches the blue pool (203.0.113.0/28) and the cyan pool (203.0.113.16/28, color in (blue, cyan)).
    t.ok(ipv4ToInt(blue) >= ipv4ToInt('203.0.113.0') && ipv4ToInt(blue) <= ipv4ToInt('203.0.113.31'), `service-blue ${blue} from blue or cyan`);
    // The red pool is the range 203.0.113.100–119.
    t.ok(ipv4ToInt(red) >= ipv4ToInt('203.0.113.100') && ipv4ToInt(red) <= ipv4ToInt('203.0.113.119'), `service-red ${red} from red`);
    const pools = (await lab.kubectl(['get', 'ippools', '--no-headers'])).trim().split('\n').map((l) => columns(l)[0]).sort();
    t.same(pools, ['blue', 'cyan', 'lab-pool', 'red'], 'kubectl get ippools lists the four pools');

    // Relabel red → blue: the address moves to a blue/cyan pool.
    await lab.kubectl(['label', 'svc', 'service-red', 'color=blue', '--overwrite']);
    const moved = await waitFor('service-red to move to a blue pool', 30_000, async () => {
      const a = (await lab.kubectl(['get', 'svc', 'service-red', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'])).trim();
      return a && ipv4ToInt(a) <= ipv4ToInt('203.0.113.31') ? a : undefined;
    });
    t.pass(`kubectl label color=blue moved service-red ${red} → ${moved}`);
    t.equal((await lab.kubectl(['get', 'svc', 'web', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'])).trim().startsWith('198.51.100.'), true, 'web keeps its lab-pool address');
  });

  await t.test('the lab writes EndpointSlices for services selecting its backends, and removes them with the service', async (t) => {
    const slices = await lab.kubectl(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=web', '-o', 'jsonpath={range .items[*]}{.addressType} {.endpoints[*].addresses[0]} {.ports[0].port}{"\\n"}{end}']);
    t.equal(slices.trim(), 'IPv4 198.51.100.141 198.51.100.142 8080', 'web (selector app=echo): both backends, target port 8080');
    t.equal((await lab.kubectl(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=service-blue', '-o', 'name'])).trim(), '', 'service-blue selects no lab backend: no slice');
    await lab.kubectl(['delete', 'svc', 'web']);
    await waitFor('the slice of web to go', 10_000, async () =>
      ((await lab.kubectl(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=web', '-o', 'name'])).trim() === '' ? true : undefined));
    t.pass('kubectl delete svc web removed its EndpointSlice');
  });

  await t.test('lab up again says it is up; lab down removes every namespace, process, pin and file; down again is a no-op', async (t) => {
    const again = await lab.lab(['up', '--nodes', '2']);
    t.equal(again.code, 0);
    t.match(again.stdout, /already up/, 'a second `lab up` says so');
    const state = JSON.parse(readFileSync(join(lab.stateDir, 'state.json'), 'utf8')) as { supervisor: { pid: number }; children: Record<string, { pid: number }>; namespaces: string[]; pinDirs: string[] };
    const pids = [state.supervisor.pid, ...Object.values(state.children).map((c) => c.pid)];
    t.equal(Object.keys(state.children).filter((r) => r.startsWith('agent/')).length, 2, 'two agents recorded');
    const down = await lab.lab(['down']);
    t.equal(down.code, 0, down.stdout.trim());
    const left = (await run('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(`${PREFIX}-`));
    t.same(left, [], 'no namespace of the lab is left');
    t.same(pids.filter((pid) => processAlive(pid)), [], 'no process of the lab runs');
    t.notOk(existsSync(lab.stateDir), 'state directory removed');
    t.same(state.pinDirs.filter((d) => existsSync(d)), [], 'pin directories removed');
    const twice = await lab.lab(['down']);
    t.equal(twice.code, 0);
    t.match(twice.stdout, /not up/, 'a second `lab down` says the lab is not up');
  });
});
