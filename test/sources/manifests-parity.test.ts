/**
 * Both sources, fed the same objects, produce the same model: the examples
 * (plus Cilium kinds) applied with kubectl to the API emulator and read by
 * the Kubernetes source, and the same files read by the manifests source.
 * Only what the API server owns (uid, resourceVersion, creationTimestamp,
 * generation, allocated cluster IPs and node ports) may differ.
 */
import t from 'tap';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startApiServer } from '../../src/lab/apiserver/server.js';
import { KubeSource } from '../../src/sources/kube/source.js';
import { ManifestsSource } from '../../src/sources/manifests/source.js';
import { Store, type Snapshot } from '../../src/store/store.js';
import type { ModelObject } from '../../src/model/types.js';
import { Kubectl, eventually, kubeConfigFor } from '../kube/kube-support.js';

const exampleDir = join(import.meta.dirname, '..', '..', 'deploy', 'examples');

const CILIUM = `apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata:
  name: cilium-pool
  labels: {origin: cilium}
spec:
  cidrs:
    - cidr: 198.18.200.0/24
  serviceSelector:
    matchLabels: {color: green}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumL2AnnouncementPolicy
metadata:
  name: cilium-l2
spec:
  interfaces: ['^eth[0-9]+']
  loadBalancerIPs: true
---
apiVersion: v1
kind: Node
metadata:
  name: worker-1
  labels: {kubernetes.io/hostname: worker-1, rack: r1}
status:
  addresses:
    - {type: InternalIP, address: 198.18.0.11}
`;

/** The model without the fields only an API server sets. */
function comparable(snapshot: Snapshot): Record<string, Record<string, unknown>> {
  const strip = (o: ModelObject) => {
    const { uid: _u, resourceVersion: _r, creationTimestamp: _c, generation: _g, firstSeen: _f, ...meta } = o.meta;
    if (o.kind !== 'Service') return { ...o, meta };
    // Cluster IPs and node ports are allocated by the API server; manifests mode has none.
    return { ...o, meta, clusterIPs: [], ports: o.ports.map(({ nodePort: _n, ...p }) => p) };
  };
  const kinds = {
    services: snapshot.services,
    endpointSlices: snapshot.endpointSlices,
    nodes: snapshot.nodes,
    pools: snapshot.pools,
    l2Policies: snapshot.l2Policies,
    bgpPolicies: snapshot.bgpPolicies,
    secrets: snapshot.secrets,
  };
  return Object.fromEntries(
    Object.entries(kinds).map(([k, m]) => [k, Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)).map(([key, o]) => [key, strip(o)]))]),
  );
}

t.test('kube source and manifests source give the same model for the same objects', async (t) => {
  const api = await startApiServer({ cilium: true });
  t.teardown(() => api.close());
  const kubectl = new Kubectl(api.url);
  t.teardown(() => kubectl.cleanup());
  const root = await mkdtemp(join(tmpdir(), 'pharos-parity-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'manifests');
  await (await import('node:fs/promises')).mkdir(dir);

  const files: string[] = [];
  for (const f of (await readdir(exampleDir)).filter((n) => n.endsWith('.yaml')).sort()) {
    await writeFile(join(dir, f), await readFile(join(exampleDir, f), 'utf8'));
    files.push(join(dir, f));
  }
  await writeFile(join(dir, 'zz-cilium.yaml'), CILIUM);
  files.push(join(dir, 'zz-cilium.yaml'));

  await kubectl.ok(['create', 'namespace', 'kube-system']).catch(() => undefined);
  // The emulator serves no apps/v1: Deployments (ignored by pharos anyway) stay out of the API.
  for (const f of files) {
    const docs = parseAllDocuments(await readFile(f, 'utf8')).map((d) => d.toJS() as { kind?: string } | null);
    // JSON, not re-emitted YAML: kubectl reads YAML 1.1, where an unquoted No is false.
    const items = docs.filter((d) => d && d.kind !== 'Deployment');
    // create, not apply: apply adds its last-applied annotation, which manifests do not carry.
    await kubectl.ok(['create', '--validate=false', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  }
  // Node status is a subresource: kubectl apply drops it, so set the addresses as a kubelet would.
  await kubectl.ok([
    'patch', 'node', 'worker-1', '--subresource=status', '--type=merge',
    '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: '198.18.0.11' }] } }),
  ]);

  const kubeStore = new Store();
  const kube = new KubeSource({ kc: kubeConfigFor(api.url), store: kubeStore, secrets: true, namespace: 'kube-system', cilium: true });
  const parseErrors: string[] = [];
  kube.on('parseError', (e) => parseErrors.push(e.message));
  t.teardown(() => kube.stop());
  await kube.start();
  await eventually(() => kubeStore.synced, 10_000, 'kube source synced');

  const fileStore = new Store();
  const manifests = new ManifestsSource({ directory: dir, stateDir: join(root, 'state'), store: fileStore, rescanIntervalMs: 60_000 });
  t.teardown(() => manifests.stop());
  const report = await manifests.start();
  t.same(report.errors, [], 'manifests: no errors');
  t.same(parseErrors, [], 'kube: no parse errors');

  const fromKube = comparable(kubeStore.snapshot());
  const fromFiles = comparable(fileStore.snapshot());
  t.ok(Object.keys(fromFiles.pools!).length >= 7, 'pools from both flavours');
  t.ok(Object.keys(fromFiles.services!).length >= 5);
  t.ok(Object.keys(fromFiles.secrets!).length === 1);
  for (const kind of Object.keys(fromFiles)) t.same(fromKube[kind], fromFiles[kind], `${kind}: same model`);
});
