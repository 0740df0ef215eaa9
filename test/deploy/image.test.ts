/**
 * The image (deploy/image/build.sh), started the way a kubelet starts the
 * DaemonSet's container, serves a LoadBalancer service to a lab client.
 *
 * Everything about the container comes from deploy/kubernetes/daemonset.yaml
 * (parsed, not copied) and from the image's own config: the command line
 * (image entrypoint + the manifest's args, $(VAR) expanded), the env
 * (downward API fields filled with the lab node's values), only the
 * capabilities the manifest adds, its volume mounts (hostPath volumes mapped
 * to lab paths), a read-only root if it says so, host network = the lab
 * node's namespace. As runc does for an unprivileged container: new mount,
 * PID, IPC and cgroup namespaces, the UTS namespace shared (hostNetwork),
 * /proc/sys and /sys read-only, a writable overlay over the image unless the
 * root is read-only. The agent finds its API server the in-cluster way
 * (KUBERNETES_SERVICE_HOST/PORT and the service account's token and CA
 * mounted at /var/run/secrets/kubernetes.io/serviceaccount): the manifest
 * gives no manifests directory, so Kubernetes mode it is, against the API
 * emulator over HTTPS with the RBAC objects of deploy/kubernetes/.
 *
 * /proc/sys is read-only, as runc mounts it in every unprivileged
 * container: the agent sets net.ipv4.conf.<if>.accept_local through the
 * host's /proc/sys/net that the manifest mounts at /host/proc/sys/net
 * (--proc-sys-net, Cilium's way); before that it exited with EROFS.
 *
 * Not done here: pulling from a registry (the image is read from the OCI
 * layout), seccomp and AppArmor profiles (none is set in the manifest),
 * resource limits, and a capability the sandbox itself lacks
 * (CAP_SYS_RESOURCE): it is reported, not granted.
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { httpGet, run, startEchoServer, withLab, type Lab } from '../support/lab.js';
import { lbServiceYaml } from '../support/manifests.js';

type Json = Record<string, any>;

const HERE = fileURLToPath(new URL('.', import.meta.url));
const MANIFEST_DIR = join(PROJECT_ROOT, 'deploy', 'kubernetes');
const CACHE = '/var/cache/pharos-image';
const OUT = join(CACHE, 'test');
const NODE_NAME = 'phimg-node';
const ADDR = { client: '198.51.100.1', node: '198.51.100.2', api: '198.51.100.3', backends: ['198.51.100.10', '198.51.100.11'], vip: '198.51.100.200' };
const API_PORT = 6443;
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TOKEN = 'phimg-service-account-token';
const TOOLS = ['capsh', 'nsenter', 'unshare', 'setpriv', 'openssl', 'curl', 'tar', 'mount'];

// ---------------------------------------------------------------------------
// What the manifest and the image say

interface DaemonSetFacts {
  namespace: string;
  serviceAccount: string;
  hostNetwork: boolean;
  graceSeconds: number;
  container: Json;
  volumes: Json[];
  image: string;
}

function readDaemonSet(): DaemonSetFacts {
  const docs = parseAllDocuments(readFileSync(join(MANIFEST_DIR, 'daemonset.yaml'), 'utf8')).map((d) => d.toJS() as Json);
  const ds = docs.find((d) => d?.kind === 'DaemonSet');
  if (!ds) throw new Error('no DaemonSet in deploy/kubernetes/daemonset.yaml');
  const pod = ds.spec.template.spec as Json;
  const container = (pod.containers as Json[])[0]!;
  return {
    namespace: ds.metadata.namespace ?? 'default',
    serviceAccount: pod.serviceAccountName ?? 'default',
    hostNetwork: pod.hostNetwork === true,
    graceSeconds: pod.terminationGracePeriodSeconds ?? 30,
    container,
    volumes: pod.volumes ?? [],
    image: container.image as string,
  };
}

interface ImageFacts {
  manifestDigest: string;
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string;
  layers: string[];
  compressedBytes: number;
}

function blobPath(layout: string, digest: string): string {
  const [alg, hex] = digest.split(':') as [string, string];
  return join(layout, 'blobs', alg, hex);
}

/** The image `name` in an OCI layout: its config and layer blobs, as a runtime would resolve them. */
function readImage(layout: string, name: string): ImageFacts {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as Json;
  const entry = (index.manifests as Json[]).find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name);
  if (!entry) throw new Error(`${layout} holds no image named ${name}: ${JSON.stringify(index.manifests.map((m: Json) => m.annotations))}`);
  const manifest = JSON.parse(readFileSync(blobPath(layout, entry.digest), 'utf8')) as Json;
  const config = (JSON.parse(readFileSync(blobPath(layout, manifest.config.digest), 'utf8')) as Json).config ?? {};
  const layers = (manifest.layers as Json[]).map((l) => l.digest as string);
  return {
    manifestDigest: entry.digest,
    entrypoint: config.Entrypoint ?? [],
    cmd: config.Cmd ?? [],
    env: config.Env ?? [],
    workingDir: config.WorkingDir || '/',
    layers,
    compressedBytes: (manifest.layers as Json[]).reduce((n, l) => n + (l.size as number), 0),
  };
}

/** Unpacks the layers in order into a directory kept by manifest digest (the cache's only one). */
async function unpackRootfs(layout: string, image: ImageFacts): Promise<string> {
  const dir = join(OUT, `rootfs-${image.manifestDigest.slice('sha256:'.length, 'sha256:'.length + 16)}`);
  if (existsSync(join(dir, 'usr'))) return dir;
  for (const old of readdirSync(OUT).filter((f) => f.startsWith('rootfs-'))) rmSync(join(OUT, old), { recursive: true, force: true });
  const tmp = `${dir}.tmp`;
  mkdirSync(tmp, { recursive: true });
  for (const layer of image.layers) await run(['tar', '-xzf', blobPath(layout, layer), '-C', tmp, '--numeric-owner'], { timeoutMs: 120_000 });
  // Only added files in these layers; a whiteout would need a runtime's handling.
  const whiteouts = (await run(['find', tmp, '-name', '.wh.*'])).stdout.trim();
  if (whiteouts) throw new Error(`the image has whiteouts this test does not apply: ${whiteouts}`);
  renameSync(tmp, dir);
  return dir;
}

// ---------------------------------------------------------------------------
// The kubelet's rules

/** `$(VAR)` from the variables defined so far; `$$` escapes; an unknown reference stays as it is (Kubernetes' expansion). */
function expandKubeVars(text: string, vars: Map<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    return vars.get(name!) ?? m;
  });
}

/** The container's environment: the image's, the service links the kubelet adds, then the manifest's in order. */
function containerEnv(container: Json, image: ImageFacts, fields: Record<string, string>, serviceEnv: Record<string, string>): Map<string, string> {
  const env = new Map<string, string>();
  for (const kv of image.env) {
    const i = kv.indexOf('=');
    env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const [k, v] of Object.entries(serviceEnv)) env.set(k, v);
  for (const e of (container.env ?? []) as Json[]) {
    if (e.valueFrom) {
      const path = e.valueFrom.fieldRef?.fieldPath as string | undefined;
      if (!path || !(path in fields)) throw new Error(`env ${e.name}: valueFrom ${JSON.stringify(e.valueFrom)} has no lab value`);
      env.set(e.name, fields[path]!);
    } else {
      env.set(e.name, expandKubeVars(String(e.value ?? ''), env));
    }
  }
  return env;
}

/** command replaces the image's entrypoint (and drops its cmd); args replace its cmd. */
function containerArgv(container: Json, image: ImageFacts, env: Map<string, string>): string[] {
  const command = container.command as string[] | undefined;
  const args = container.args as string[] | undefined;
  const argv = command ? [...command, ...(args ?? [])] : [...image.entrypoint, ...(args ?? image.cmd)];
  return argv.map((a) => expandKubeVars(a, env));
}

/** A container path resolved inside `root` (symlinks followed there, never on the host). */
function resolveInRoot(root: string, path: string): string {
  let todo = path.split('/').filter(Boolean);
  const done: string[] = [];
  for (let hops = 0; todo.length > 0;) {
    const part = todo.shift()!;
    if (part === '.') continue;
    if (part === '..') { done.pop(); continue; }
    let link: string | undefined;
    try {
      const p = join(root, ...done, part);
      if (lstatSync(p).isSymbolicLink()) link = readlinkSync(p);
    } catch { /* missing: created as a mount point */ }
    if (link === undefined) { done.push(part); continue; }
    if (++hops > 40) throw new Error(`too many symbolic links in ${path} under ${root}`);
    if (link.startsWith('/')) done.length = 0;
    todo = [...link.split('/').filter(Boolean), ...todo];
  }
  return `/${done.join('/')}`;
}

function capMask(names: string[], all: Map<string, number>): bigint {
  let m = 0n;
  for (const n of names) m |= 1n << BigInt(all.get(n)!);
  return m;
}

/** Every capability the kernel knows, by capsh's name. */
async function capabilityNames(): Promise<Map<string, number>> {
  const last = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
  const names = new Map<string, number>();
  for (let i = 0; i <= last; i++) {
    const out = (await run(['capsh', `--decode=${(1n << BigInt(i)).toString(16)}`])).stdout.trim();
    names.set(out.split('=')[1]!, i);
  }
  return names;
}

function statusMask(pid: number, field: string): bigint {
  const m = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return BigInt(`0x${m![1]}`);
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

// ---------------------------------------------------------------------------
// The API server

class ApiServer {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void }>();
  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as Json;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(msg.error)); else p.resolve(msg.result);
    });
  }

  call(op: string, ...args: unknown[]): Promise<Json> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin!.write(JSON.stringify({ id, op, args }) + '\n');
    });
  }
}

/** The emulator in the lab's `api` namespace (spawned here, not with lab.spawn: the RPC needs its stdin); killed by PID at teardown. */
async function startApiServer(t: { teardown(fn: () => unknown): void }, lab: Lab, work: string, user: string): Promise<ApiServer> {
  const child = spawn('ip', ['netns', 'exec', lab.ns('api'), 'setpriv', '--pdeathsig', 'KILL', '--', process.execPath, join(HERE, 'apiserver-child.mjs'),
    ADDR.api, String(API_PORT), join(work, 'tls.key'), join(work, 'tls.crt'), TOKEN, user], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  let errText = '';
  child.stderr!.on('data', (d: Buffer) => { errText = (errText + d.toString()).slice(-5000); });
  await new Promise<void>((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`API server not ready after 15 s: ${errText}`)), 15_000);
    rl.once('line', () => { clearTimeout(timer); rl.close(); resolve(); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`API server exited (${code}): ${errText}`)); });
  });
  return new ApiServer(child);
}

// ---------------------------------------------------------------------------

const KINDS_TO_PLURAL: Record<string, string> = {
  Namespace: 'namespaces', ServiceAccount: 'serviceaccounts', ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings', Role: 'roles', RoleBinding: 'rolebindings',
};

/** Why the test cannot run here (root, BPF, namespaces, the runtime's tools), or false; a failure under PHAROS_REQUIRE_PRIVILEGED=1. */
function unavailable(): string | false {
  const why = privilegedUnavailable();
  if (why) return why;
  const missing = TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0);
  if (!missing.length) return false;
  if (process.env.PHAROS_REQUIRE_PRIVILEGED === '1') throw new Error(`missing tools (PHAROS_REQUIRE_PRIVILEGED=1): ${missing.join(' ')}`);
  return `missing tools: ${missing.join(' ')}`;
}

t.test('the image runs as the DaemonSet says and serves a LoadBalancer service', { skip: unavailable() }, async (t) => {
  const ds = readDaemonSet();
  t.ok(ds.hostNetwork, 'the DaemonSet uses the host network (the lab node\'s namespace stands for it)');

  // Build, or reuse the build of the same inputs.
  const started = Date.now();
  const build = await run(['sh', join(PROJECT_ROOT, 'deploy', 'image', 'build.sh'), '--out', OUT, '--cache', CACHE], { timeoutMs: 400_000 });
  t.comment(`build.sh ${((Date.now() - started) / 1000).toFixed(1)} s: ${build.stderr.trim().split('\n').join('; ')}`);
  const layout = join(OUT, 'oci');
  const image = readImage(layout, ds.image);
  t.pass(`the OCI layout holds ${ds.image}, the DaemonSet's image`);
  const rootfs = await unpackRootfs(layout, image);
  const unpackedBytes = Number((await run(['du', '-sb', rootfs])).stdout.split('\t')[0]);
  t.comment(`image: ${(image.compressedBytes / 2 ** 20).toFixed(1)} MiB compressed, ${(unpackedBytes / 2 ** 20).toFixed(0)} MiB unpacked`);
  const compilers = ['usr/bin/clang', 'usr/bin/gcc', 'usr/bin/cc', 'usr/bin/ld', 'usr/bin/make'].filter((p) => existsSync(join(rootfs, p)));
  t.same(compilers, [], 'no compiler or linker in the image');

  // The lab: one L2 segment (a bridge) with a client, the node, two backends and the API server.
  const lab = await withLab(t, 'phimg');
  const work = mkdtempSync(join(tmpdir(), 'phimg-'));
  const pinDir = `/sys/fs/bpf/pharos/${NODE_NAME}`;
  const cgroupRoot = /^\S+ \S+ \S+ \S+ (\S+) .* - cgroup2 /m.exec(readFileSync('/proc/self/mountinfo', 'utf8'))?.[1];
  if (!cgroupRoot) throw new Error('no cgroup v2 mount on this host');
  const cgroup = join(cgroupRoot, 'phimg-pod');
  interface Container { pid: number; exited: Promise<void>; running(): boolean; log(): string }
  const containers: Container[] = [];
  // The containers first (SIGKILL to their PID 1 ends their namespaces and mounts), then what they used, each by its exact name.
  t.teardown(async () => {
    for (const c of containers) {
      try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
      await Promise.race([c.exited, new Promise((r) => setTimeout(r, 3000))]);
    }
    await run(['rmdir', cgroup], { allowFail: true });
    rmSync(pinDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  // Leftovers of a crashed run, by the same exact names.
  await run(['rmdir', cgroup], { allowFail: true });
  rmSync(pinDir, { recursive: true, force: true });
  mkdirSync(cgroup, { recursive: true });

  await lab.addNamespace('sw');
  await lab.addBridge('sw', 'br0');
  await lab.addNamespace('client');
  await lab.addNamespace('node', { forwarding: true });
  await lab.addNamespace('be');
  await lab.addNamespace('api');
  const hosts: [string, string, string[]][] = [
    ['client', 'p-client', [`${ADDR.client}/24`]],
    ['node', 'p-node', [`${ADDR.node}/24`]],
    ['be', 'p-be', ADDR.backends.map((a) => `${a}/24`)],
    ['api', 'p-api', [`${ADDR.api}/24`]],
  ];
  for (const [ns, port, addrs] of hosts) {
    await lab.addLink({ ns, ifname: 'eth0', addrs }, { ns: 'sw', ifname: port });
    await lab.attachToBridge('sw', port, 'br0');
  }
  await startEchoServer(lab, 'be', { name: 'be', port: 8080 });

  // The cluster: an API server with a self-signed certificate for its address (the CA the pod gets),
  // the RBAC objects of deploy/kubernetes/, the node, a pool, an L2 policy and one service.
  await run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=kubernetes', '-addext', `subjectAltName=IP:${ADDR.api}`, '-keyout', join(work, 'tls.key'), '-out', join(work, 'tls.crt')]);
  const api = await startApiServer(t, lab, work, `system:serviceaccount:${ds.namespace}:${ds.serviceAccount}`);
  for (const file of readdirSync(MANIFEST_DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(MANIFEST_DIR, file), 'utf8'))) {
      const obj = doc.toJS() as Json;
      if (obj && KINDS_TO_PLURAL[obj.kind]) await api.call('put', KINDS_TO_PLURAL[obj.kind], obj);
    }
  }
  await api.call('put', 'nodes', {
    apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_NAME, labels: { 'kubernetes.io/hostname': NODE_NAME } },
    status: { addresses: [{ type: 'InternalIP', address: ADDR.node }] },
  });
  await api.call('put', 'loadbalancerippools', {
    apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'lab' }, spec: { blocks: [{ start: ADDR.vip, stop: ADDR.vip }] },
  });
  await api.call('put', 'l2announcementpolicies', {
    apiVersion: 'lb.pharos.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'lab' }, spec: { interfaces: ['^eth0$'], loadBalancerIPs: true },
  });
  const [service, slice] = parseAllDocuments(lbServiceYaml({ name: 'web', namespace: 'default', endpoints: ADDR.backends })).map((d) => d.toJS() as Json);
  await api.call('put', 'services', service);
  await api.call('put', 'endpointslices', slice);

  // The pod's files, as the kubelet writes them.
  const pod = join(work, 'pod');
  for (const d of ['sa', 'etc', 'state', 'rw']) mkdirSync(join(pod, d), { recursive: true });
  writeFileSync(join(pod, 'sa', 'token'), TOKEN);
  writeFileSync(join(pod, 'sa', 'namespace'), ds.namespace);
  writeFileSync(join(pod, 'sa', 'ca.crt'), readFileSync(join(work, 'tls.crt')));
  writeFileSync(join(pod, 'etc', 'hosts'), `127.0.0.1\tlocalhost\n${ADDR.node}\t${NODE_NAME}\n`);
  writeFileSync(join(pod, 'etc', 'hostname'), `${NODE_NAME}\n`);
  writeFileSync(join(pod, 'etc', 'resolv.conf'), `nameserver ${ADDR.api}\nsearch ${ds.namespace}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`);
  writeFileSync(join(pod, 'termination-log'), '');

  // hostPath volumes, mapped into the lab: the host's bpffs itself (pins under the lab node's own name),
  // a state directory of the test's, and a cgroup that holds only the container (never the host's root).
  // /proc/sys/net, should the manifest mount it (Cilium's way to write sysctls from an unprivileged container), is the
  // host's as this process sees it: sysctl files answer for the network namespace of whoever opens them (the node's).
  const hostPaths: Record<string, string> = {
    '/sys/fs/bpf/pharos': '/sys/fs/bpf/pharos', '/var/lib/pharos': join(pod, 'state'), '/sys/fs/cgroup': cgroup, '/proc/sys/net': '/proc/sys/net',
  };
  const fields: Record<string, string> = {
    'status.hostIP': ADDR.node, 'status.podIP': ADDR.node, 'spec.nodeName': NODE_NAME,
    'metadata.namespace': ds.namespace, 'metadata.name': `pharos-${NODE_NAME}`,
  };
  const serviceEnv = {
    KUBERNETES_SERVICE_HOST: ADDR.api, KUBERNETES_SERVICE_PORT: String(API_PORT), KUBERNETES_SERVICE_PORT_HTTPS: String(API_PORT),
    KUBERNETES_PORT: `tcp://${ADDR.api}:${API_PORT}`, HOSTNAME: NODE_NAME,
  };
  const env = containerEnv(ds.container, image, fields, serviceEnv);
  const argv = containerArgv(ds.container, image, env);
  t.comment(`command line: ${argv.join(' ')}`);
  t.notOk(argv.some((a) => a.includes('$(')), 'every $(VAR) in the command line expanded');

  const sc = (ds.container.securityContext ?? {}) as Json;
  t.notOk(sc.privileged, 'the manifest asks for no privileged container');
  const capNames = await capabilityNames();
  const declared = ((sc.capabilities?.add ?? []) as string[]).map((c) => `cap_${c.toLowerCase()}`);
  const dropsAll = ((sc.capabilities?.drop ?? []) as string[]).includes('ALL');
  t.ok(dropsAll, 'the manifest drops ALL capabilities and adds what it needs');
  const ownBounding = statusMask(process.pid, 'CapBnd');
  const unavailable = declared.filter((c) => !(ownBounding & (1n << BigInt(capNames.get(c)!))));
  if (unavailable.length) t.comment(`not in this sandbox's bounding set, so not granted here: ${unavailable.join(', ')}`);
  const granted = declared.filter((c) => !unavailable.includes(c));
  const drop = [...capNames.keys()].filter((c) => !granted.includes(c) && (ownBounding & (1n << BigInt(capNames.get(c)!))));

  // The mount namespace, as runc builds it for an unprivileged container.
  const root = join(pod, 'rw', 'merged');
  // /dev, /proc and /sys are fresh mounts: nothing of the image's is followed there.
  const at = (p: string): string => root + (/^\/(dev|proc|sys)(\/|$)/.test(p) ? p : resolveInRoot(rootfs, p));
  const lines: string[] = [
    'set -eu',
    `mount -t tmpfs -o mode=0755 tmpfs ${q(join(pod, 'rw'))}`,
    `mkdir -p ${q(join(pod, 'rw', 'upper'))} ${q(join(pod, 'rw', 'work'))} ${q(root)}`,
    `mount -t overlay overlay -o ${q(`lowerdir=${rootfs},upperdir=${join(pod, 'rw', 'upper')},workdir=${join(pod, 'rw', 'work')}`)} ${q(root)}`,
    `mkdir -p ${q(at('/proc'))} ${q(at('/dev'))} ${q(at('/sys'))}`,
    `mount -t proc -o nosuid,nodev,noexec proc ${q(at('/proc'))}`,
    `mount --bind ${q(at('/proc/sys'))} ${q(at('/proc/sys'))}`,
    `mount -o remount,bind,ro,nosuid,nodev,noexec ${q(at('/proc/sys'))}`,
    ...['kcore', 'keys', 'timer_list'].map((f) => `[ ! -e ${q(at(`/proc/${f}`))} ] || mount --bind /dev/null ${q(at(`/proc/${f}`))}`),
    `mount -t tmpfs -o nosuid,mode=0755,size=65536k tmpfs ${q(at('/dev'))}`,
    ...['null', 'zero', 'full', 'random', 'urandom', 'tty'].map((d) => `touch ${q(at(`/dev/${d}`))} && mount --bind /dev/${d} ${q(at(`/dev/${d}`))}`),
    `mkdir -p ${q(at('/dev/pts'))} ${q(at('/dev/shm'))} ${q(at('/dev/mqueue'))}`,
    `mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts ${q(at('/dev/pts'))}`,
    `ln -s pts/ptmx ${q(at('/dev/ptmx'))}`,
    `mount -t tmpfs -o nosuid,nodev,noexec,size=65536k shm ${q(at('/dev/shm'))}`,
    `mount -t mqueue -o nosuid,nodev,noexec mqueue ${q(at('/dev/mqueue'))}`,
    `ln -s /proc/self/fd ${q(at('/dev/fd'))}`,
    ...['stdin', 'stdout', 'stderr'].map((s, i) => `ln -s /proc/self/fd/${i} ${q(at(`/dev/${s}`))}`),
    `mount -t sysfs -o ro,nosuid,nodev,noexec sysfs ${q(at('/sys'))}`,
    `mount -t cgroup2 -o ro,nosuid,nodev,noexec cgroup2 ${q(at('/sys/fs/cgroup'))}`,
  ];
  const bindFile = (host: string, target: string, ro: boolean): void => {
    lines.push(`mkdir -p "$(dirname ${q(at(target))})" && touch ${q(at(target))}`, `mount --bind ${q(host)} ${q(at(target))}`);
    if (ro) lines.push(`mount -o remount,bind,ro ${q(at(target))}`);
  };
  for (const vm of (ds.container.volumeMounts ?? []) as Json[]) {
    const volume = ds.volumes.find((v) => v.name === vm.name);
    const hostPath = volume?.hostPath?.path as string | undefined;
    if (!hostPath || !hostPaths[hostPath]) throw new Error(`volume ${vm.name}: only the hostPath volumes ${Object.keys(hostPaths).join(', ')} have lab paths`);
    // type DirectoryOrCreate: the kubelet makes the host directory when it is missing (a fresh node has no /sys/fs/bpf/pharos).
    if (volume?.hostPath?.type === 'DirectoryOrCreate') lines.push(`mkdir -p ${q(hostPaths[hostPath]!)}`);
    lines.push(`mkdir -p ${q(at(vm.mountPath))}`, `mount --rbind ${q(hostPaths[hostPath]!)} ${q(at(vm.mountPath))}`);
    if (vm.readOnly) lines.push(`mount -o remount,bind,ro ${q(at(vm.mountPath))}`);
    // HostToContainer: mounts made on the host later show up inside, not the other way.
    if (vm.mountPropagation === 'HostToContainer') lines.push(`mount --make-rslave ${q(at(vm.mountPath))}`);
  }
  lines.push(`mkdir -p ${q(at(SA_DIR))}`, `mount --bind ${q(join(pod, 'sa'))} ${q(at(SA_DIR))}`, `mount -o remount,bind,ro ${q(at(SA_DIR))}`);
  for (const f of ['hosts', 'hostname', 'resolv.conf']) bindFile(join(pod, 'etc', f), `/etc/${f}`, false);
  bindFile(join(pod, 'termination-log'), '/dev/termination-log', false);
  if (sc.readOnlyRootFilesystem) lines.push(`mount -o remount,ro ${q(root)}`);
  const exec = [
    `cd ${q(at(image.workingDir))}`,
    `exec env -i ${[...env].map(([k, v]) => q(`${k}=${v}`)).join(' ')} capsh --chroot=${q(root)} --drop=${drop.join(',')} --inh= --noamb --shell=${q(argv[0]!)} -- ${argv.slice(1).map(q).join(' ')}`,
  ];

  const launch = async (): Promise<Container> => {
    const script = [...lines, ...exec].join('\n');
    // Into the pod's cgroup first, then namespaces: the cgroup namespace's root is that cgroup.
    const outer = `echo 0 > ${q(join(cgroup, 'cgroup.procs'))} && exec nsenter --net=${q(lab.nsPath('node'))} -- unshare --mount --pid --ipc --cgroup --fork --kill-child=SIGKILL --propagation private -- sh -c ${q(script)}`;
    const runtime = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'sh', '-c', outer], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    let log = '';
    const collect = (d: Buffer): void => { log = (log + d.toString()).slice(-20_000); };
    runtime.stdout.on('data', collect);
    runtime.stderr.on('data', collect);
    const exited = new Promise<void>((r) => runtime.once('exit', () => r()));
    const running = (): boolean => runtime.exitCode === null && runtime.signalCode === null;
    // The container's first process (PID 1 inside): the child unshare forked.
    const pid = await waitFor('the container process', 10_000, async () => {
      if (!running()) throw new Error(`the runtime exited: ${log}`);
      const kids = readFileSync(`/proc/${runtime.pid}/task/${runtime.pid}/children`, 'utf8').trim();
      return kids ? Number(kids.split(' ')[0]) : undefined;
    }, { fatal: (e) => e.message.startsWith('the runtime exited'), everyMs: 50 });
    const c = { pid, exited, running, log: () => log };
    containers.push(c);
    return c;
  };

  // Ready as the kubelet's readinessProbe sees it: httpGet on the pod IP (the host's, with hostNetwork).
  const probe = ds.container.readinessProbe?.httpGet as Json;
  const readyUrl = `http://${ADDR.node}:${probe.port}${probe.path}`;
  /** undefined once ready, or what the container printed when it exited. */
  const ready = (c: Container): Promise<string | undefined> => waitFor('the agent ready', 60_000, async () => {
    if (!c.running()) return { exited: c.log() };
    return (await lab.exec('node', ['curl', '-sf', '-o', '/dev/null', '--max-time', '2', readyUrl], { allowFail: true })).code === 0 ? { exited: undefined } : undefined;
  }, { everyMs: 500 }).then((r) => r.exited, (e: Error) => { throw new Error(`${e.message}\n${c.log()}`); });

  const container = await launch();
  const exitLog = await ready(container);
  if (exitLog !== undefined) throw new Error(`the container exited before it was ready:\n${exitLog}`);
  t.pass(`ready at ${readyUrl}`);
  const agentPid = container.pid;

  const bounding = statusMask(agentPid, 'CapBnd');
  t.equal(bounding.toString(16), capMask(granted, capNames).toString(16), `bounding set: ${granted.join(', ')}`);
  t.equal(statusMask(agentPid, 'CapEff').toString(16), bounding.toString(16), 'effective = bounding (root in the container)');
  t.equal(statusMask(agentPid, 'CapInh') | statusMask(agentPid, 'CapAmb'), 0n, 'no inheritable or ambient capabilities');
  const mounts = readFileSync(`/proc/${agentPid}/mountinfo`, 'utf8');
  t.match(mounts, /^\S+ \S+ \S+ \/sys \/proc\/sys ro,/m, '/proc/sys is read-only in the container');
  t.match(mounts, /^\S+ \S+ \S+ \/pharos \/run\/pharos\/bpffs .* - bpf /m, 'only pharos\' directory of the host\'s bpffs is mounted (at /run/pharos/bpffs)');
  t.notMatch(mounts, /^\S+ \S+ \S+ \/ \/sys\/fs\/bpf .* - bpf /m, 'not the whole bpffs');
  t.match(mounts, /^\S+ \S+ \S+ \S+ \/run\/pharos\/cgroupv2 ro,.* - cgroup2 /m, 'the host cgroup mount is read-only');
  // Node-local access: the socket hooks are attached to the (lab's stand-in for the) host cgroup through that read-only mount.
  const hooks = (await run(['bpftool', '-j', 'cgroup', 'show', cgroup])).stdout;
  const attached = (JSON.parse(hooks || '[]') as Array<{ attach_type: string }>).map((h) => h.attach_type);
  t.ok(attached.some((a) => /^(cgroup_inet4_connect|connect4)$/.test(a)), `socket hooks attached through the read-only cgroup mount: ${attached.join(', ') || 'none'}`);
  t.ok(existsSync(pinDir), `maps pinned on the host's bpffs at ${pinDir}`);

  // IPAM through the API, then a real TCP connection from the client through the XDP path.
  const assigned = await waitFor('the service\'s address', 20_000, async () => {
    const svc = await api.call('get', 'services', 'default', 'web');
    return svc?.status?.loadBalancer?.ingress?.[0]?.ip as string | undefined;
  });
  t.equal(assigned, ADDR.vip, 'the agent assigned the pool\'s address and wrote it to the Service status');
  const answers: string[] = [];
  await waitFor('the VIP to answer', 20_000, async () => {
    try { answers.push(await httpGet(lab, 'client', `http://${ADDR.vip}/`, { timeoutMs: 2000 })); return true; } catch { return undefined; }
  });
  for (let i = 0; i < 5; i++) answers.push(await httpGet(lab, 'client', `http://${ADDR.vip}/`, { timeoutMs: 3000 }));
  t.equal(answers.length, 6, 'every request answered');
  t.ok(answers.every((a) => a.trim() === `be ${ADDR.node}`), `the backend saw the node's address (SNAT by the data path): ${[...new Set(answers.map((a) => a.trim()))].join(', ')}`);
  // The CLI in the image, as `kubectl exec` runs it: the container's env, namespaces, root and working directory.
  const cli = await run(['env', '-i', ...[...env].map(([k, v]) => `${k}=${v}`), 'nsenter', '-t', String(agentPid), '-m', '-p', '-i', '-n', '-C', '-r', '-w', '--', ...image.entrypoint,
    'service', 'list', '--agent', `http://${ADDR.node}:${probe.port}`], { allowFail: true });
  t.match(cli.stdout, ADDR.vip, `\`pharos service list\` in the container lists the service: ${cli.stdout.trim().split('\n').slice(0, 2).join(' | ')}${cli.stderr}`);
  const refused = await api.call('refused');
  if ((refused as unknown as Json[]).length) t.comment(`requests the RBAC refused: ${JSON.stringify(refused)}`);

  // Stop as the kubelet does: SIGTERM to PID 1, SIGKILL after the grace period.
  const stopAt = Date.now();
  process.kill(agentPid, 'SIGTERM');
  const stopped = await Promise.race([container.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ds.graceSeconds * 1000))]);
  t.ok(stopped, `the agent (PID 1 in its namespace) ended on SIGTERM within terminationGracePeriodSeconds (${ds.graceSeconds} s): ${Date.now() - stopAt} ms`);
});
