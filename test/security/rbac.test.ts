/**
 * RBAC least privilege, measured on a running agent: `pharos agent` in
 * Kubernetes mode (test/kube/agent-lab.ts) runs against the API emulator,
 * which enforces deploy/kubernetes/rbac.yaml for the agent's service account
 * (a missing grant is a 403 there, as in a cluster) and records every
 * request as (verb, group, resource, namespace, name). The scenario makes
 * the agent do everything it does in a cluster: informers of every kind
 * (pharos' and Cilium's CRDs), the IPAM leader Lease, Service and pool
 * status (a 409 on each, so the re-read runs too), a Warning event (a
 * service with more backends than a Maglev table holds), the L2 election (node and service
 * Leases), a BGP session to bird2 whose MD5 password comes from a Secret,
 * and a clean stop (the Leases handed over, the node Lease deleted).
 *
 * Then, with rbac.yaml evaluated the way the apiserver's RBAC authorizer
 * does (src/lab/apiserver/rbac.ts: ClusterRole vs Role scope, resourceNames):
 * every request the agent sent is allowed, and every (verb, group, resource)
 * granted was used by some request in the scope it is granted for.
 */
import { Buffer } from 'node:buffer';
import t from 'tap';
import { authorize, groupsOf, rbacObjectsOf, ruleAllows, type PolicyRule, type RbacObjects } from '../../src/lab/apiserver/rbac.js';
import type { RequestRecord } from '../../src/lab/apiserver/server.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { Bird } from '../../src/lab/bgp/routers.js';
import { AGENT_USER, deployDocuments, KubeAgentLab, PHAROS_NAMESPACE, type Json } from '../kube/agent-lab.js';
import { addressLeaseName } from '../../src/l2/election-core.js';
import { lbServiceObject } from '../../src/lab/manifests.js';

const PASSWORD = 'rbac-md5-Key';

function rbacFromFile(): RbacObjects {
  return rbacObjectsOf(deployDocuments());
}

function attributesOf(r: RequestRecord) {
  const [resource, subresource] = r.resource.split('/') as [string, string | undefined];
  return {
    user: AGENT_USER, groups: groupsOf(AGENT_USER), verb: r.verb, apiGroup: r.group, resource,
    ...(subresource ? { subresource } : {}), ...(r.namespace !== undefined ? { namespace: r.namespace } : {}), ...(r.name ? { name: r.name } : {}),
  };
}

const describe = (r: RequestRecord): string =>
  `${r.verb} ${r.group ? `${r.group}/` : ''}${r.resource}${r.namespace !== undefined ? ` in ${r.namespace}` : ' (cluster scope)'}${r.name ? ` "${r.name}"` : ''}`;

/** One grant: a verb on a resource of a group, in the scope of its binding (a namespace, or every namespace and the cluster). */
interface Grant { by: string; scope: string | 'cluster'; rule: PolicyRule; label: string }

/** The grants of the agent's service account, one per verb × group × resource (× resourceName) of every bound rule. */
function grantsOf(objects: RbacObjects): Grant[] {
  const out: Grant[] = [];
  const forSa = (b: Json, ns?: string) => (b.subjects ?? []).some((s: Json) => s.kind === 'ServiceAccount' && `system:serviceaccount:${s.namespace ?? ns}:${s.name}` === AGENT_USER);
  const expand = (rules: PolicyRule[], by: string, scope: string) => {
    for (const rule of rules) {
      for (const g of rule.apiGroups ?? []) for (const res of rule.resources ?? []) for (const v of rule.verbs) {
        for (const name of rule.resourceNames?.length ? rule.resourceNames : [undefined]) {
          out.push({
            by, scope, rule: { apiGroups: [g], resources: [res], verbs: [v], ...(name ? { resourceNames: [name] } : {}) },
            label: `${v} ${g ? `${g}/` : ''}${res}${name ? ` "${name}"` : ''} (${by})`,
          });
        }
      }
    }
  };
  for (const b of objects.clusterRoleBindings.filter((x) => forSa(x))) {
    expand(objects.clusterRoles.find((r) => r.metadata.name === b.roleRef.name)?.rules ?? [], `ClusterRole ${b.roleRef.name}`, 'cluster');
  }
  for (const b of objects.roleBindings.filter((x) => forSa(x, x.metadata.namespace))) {
    const ns = b.metadata.namespace;
    const role = b.roleRef.kind === 'Role' ? objects.roles.find((r) => r.metadata.namespace === ns && r.metadata.name === b.roleRef.name) : objects.clusterRoles.find((r) => r.metadata.name === b.roleRef.name);
    expand(role?.rules ?? [], `${b.roleRef.kind} ${ns}/${b.roleRef.name}`, ns);
  }
  return out;
}

function seed(k: KubeAgentLab): void {
  const put = (resource: string, obj: Json) => k.api.objects.put(resource, obj);
  put('nodes', { metadata: { name: 'lb-1', labels: { 'kubernetes.io/hostname': 'lb-1' } }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.2' }] } });
  put('loadbalancerippools', { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'blue' }, spec: { blocks: [{ cidr: '198.51.100.0/28' }], serviceSelector: { matchExpressions: [{ key: 'pool', operator: 'DoesNotExist' }] } } });
  put('ciliumloadbalancerippools', { apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumLoadBalancerIPPool', metadata: { name: 'green' }, spec: { blocks: [{ cidr: '203.0.113.0/28' }], serviceSelector: { matchLabels: { pool: 'cilium' } } } });
  put('l2announcementpolicies', { apiVersion: 'lb.pharos.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'l2' }, spec: { interfaces: ['^eth0$'], loadBalancerIPs: true } });
  put('bgppeeringpolicies', {
    apiVersion: 'lb.pharos.io/v1alpha1', kind: 'BGPPeeringPolicy', metadata: { name: 'to-router' },
    spec: { virtualRouters: [{ localASN: 64512, serviceSelector: { matchLabels: { bgp: 'yes' } }, neighbors: [{ peerAddress: '198.18.0.1/32', peerASN: 64500, authSecretRef: 'bgp-md5', connectRetryTimeSeconds: 1, holdTimeSeconds: 9, keepAliveTimeSeconds: 3 }] }] },
  });
  put('secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bgp-md5', namespace: PHAROS_NAMESPACE }, data: { password: Buffer.from(PASSWORD).toString('base64') } });
  // A Secret elsewhere: the agent must never ask for it (its Role is in pharos-system only).
  put('secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bgp-md5', namespace: 'kube-system' }, data: { password: Buffer.from('not-this-one').toString('base64') } });
  const svc = (name: string, labels: Record<string, string>) => put('services', lbServiceObject({ name, labels }));
  svc('echo', { bgp: 'yes' });
  svc('cil', { pool: 'cilium' });
  svc('many', {});
  const slice = (service: string, addresses: string[]) => put('endpointslices', {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${service}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4', endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })), ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });
  slice('echo', ['198.18.0.10']);
  // 300 backends, more than a Maglev table of 251 slots holds (the agent runs with --maglev-max-table-size 251):
  // this node cannot carry the service, so it writes a DataPathProgrammed entry and a Warning event.
  slice('many', Array.from({ length: 300 }, (_, i) => `198.18.${2 + (i >> 8)}.${i & 255}`));
}

let used: RequestRecord[] = [];
let stopped: { code: number | null; nodeLease: unknown; serviceLeaseHolder: unknown } = { code: null, nodeLease: null, serviceLeaseHolder: null };

t.before(async () => {
  if (privilegedUnavailable()) return;
  const k = await KubeAgentLab.create(t, 'phrb', { cilium: true });
  const { lab, api } = k;
  await lab.addNamespace('router', { forwarding: true });
  await lab.addNamespace('lb', { forwarding: true });
  await lab.addLink({ ns: 'router', ifname: 'lb0', addrs: ['198.18.0.1/30'] }, { ns: 'lb', ifname: 'eth0', addrs: ['198.18.0.2/30'] });
  const bird = new Bird({ lab, ns: 'router', asn: 64500, routerId: '198.18.0.1', neighbors: [{ address: '198.18.0.2', asn: 64512, local: '198.18.0.1', password: PASSWORD }] });
  await bird.start();
  t.teardown(() => bird.stop());
  seed(k);
  // One conflict on each status write, as a busy cluster gives: the re-read-and-retry path runs too.
  for (const resource of ['services', 'loadbalancerippools', 'ciliumloadbalancerippools']) api.failNext('patch', 409, { resource });

  const agent = await k.startAgent('lb', { node: 'lb-1', iface: 'eth0', args: ['--maglev-max-table-size', '251'] });
  t.teardown(() => agent.stop());
  const svc = (n: string): Json => api.objects.get('services', 'default', n);
  /** The L2 lease of echo's address (one lease per address). */
  const echoLease = (): string => addressLeaseName(svc('echo')?.status?.loadBalancer?.ingress?.[0]?.ip ?? '0.0.0.0');
  let missing: string[] = [];
  const fail = (e: Error): never => { throw new Error(`${e.message}; missing: ${missing.join(', ')}\nagent log:\n${agent.log().slice(-6000)}\nbird log:\n${bird.log.slice(-2000)}`); };
  await waitFor('every kind of write the agent makes', 45_000, async () => {
    const wanted: Record<string, boolean> = {
      'echo address': !!svc('echo')?.status?.loadBalancer?.ingress?.length,
      'cil address': !!svc('cil')?.status?.loadBalancer?.ingress?.length,
      'pool status': !!api.objects.get('loadbalancerippools', undefined, 'blue')?.status,
      'Cilium pool status': !!api.objects.get('ciliumloadbalancerippools', undefined, 'green')?.status,
      'event about many': api.objects.list('events', 'default').some((e: Json) => e.involvedObject?.name === 'many'),
      'address Lease': api.objects.get('leases', PHAROS_NAMESPACE, echoLease())?.spec?.holderIdentity === 'lb-1',
      'IPAM Lease': api.objects.get('leases', PHAROS_NAMESPACE, 'pharos-ipam')?.spec?.holderIdentity === 'lb-1',
      'BGP Established (MD5 from the Secret)': await bird.established('198.18.0.2'),
    };
    missing = Object.keys(wanted).filter((k) => !wanted[k]);
    return missing.length === 0;
  }).catch(fail);
  stopped = {
    code: await agent.stop(),
    nodeLease: api.objects.get('leases', PHAROS_NAMESPACE, 'pharos-node-lb-1'),
    serviceLeaseHolder: api.objects.get('leases', PHAROS_NAMESPACE, echoLease())?.spec?.holderIdentity,
  };
  used = k.agentRequests();
});

t.test('a clean stop hands the Leases over (the writes a stop makes are part of the run)', { skip: privilegedUnavailable() }, async (t) => {
  t.equal(stopped.code, 0, 'the agent stopped cleanly');
  t.equal(stopped.nodeLease, undefined, 'node Lease deleted');
  t.notOk(stopped.serviceLeaseHolder, 'service Lease released');
  t.comment(`${used.length} requests by the agent; forbidden: ${used.filter((r) => r.code === 403).length}`);
});

t.test('the run made every kind of request the agent makes in a cluster', { skip: privilegedUnavailable() }, async (t) => {
  const kinds = new Set(used.map((r) => `${r.verb} ${r.resource}`));
  for (const k of ['list services', 'watch services', 'get services', 'patch services/status', 'list endpointslices', 'list nodes', 'create events',
    'list loadbalancerippools', 'get loadbalancerippools', 'patch loadbalancerippools/status',
    'list ciliumloadbalancerippools', 'get ciliumloadbalancerippools', 'patch ciliumloadbalancerippools/status',
    'list l2announcementpolicies', 'list bgppeeringpolicies', 'list ciliuml2announcementpolicies', 'list ciliumbgppeeringpolicies', 'list customresourcedefinitions',
    'list leases', 'watch leases', 'get leases', 'create leases', 'update leases', 'delete leases', 'list secrets', 'watch secrets']) {
    t.ok(kinds.has(k), k);
  }
});

t.test('the emulator refused nothing the agent asked for (rbac.yaml enforced)', { skip: privilegedUnavailable() }, async (t) => {
  const forbidden = [...new Set(used.filter((r) => r.code === 403).map(describe))];
  t.same(forbidden, [], 'no 403');
});

t.test('every verb the agent uses is granted by rbac.yaml, in the namespace it uses it in', { skip: privilegedUnavailable() }, async (t) => {
  const objects = rbacFromFile();
  const seen = new Set<string>();
  for (const r of used) {
    const key = describe(r);
    if (seen.has(key)) continue;
    seen.add(key);
    const d = authorize(objects, attributesOf(r));
    t.ok(d.allowed, `${key}: ${d.allowed ? `by ${d.by}` : d.reason}`);
  }
});

t.test('every verb rbac.yaml grants is used by the agent, in the scope it is granted for', { skip: privilegedUnavailable() }, async (t) => {
  const grants = grantsOf(rbacFromFile());
  t.ok(grants.length > 10, `${grants.length} grants`);
  for (const g of grants) {
    const user = used.find((r) => (g.scope === 'cluster' || r.namespace === g.scope) && ruleAllows(g.rule, attributesOf(r)));
    t.ok(user, `${g.label}: ${user ? `used by ${describe(user)}` : 'granted but never used: drop it'}`);
  }
});

t.test('Leases and Secrets: pharos-system only, nothing of other components', async (t) => {
  const objects = rbacFromFile();
  const sa = { user: AGENT_USER, groups: groupsOf(AGENT_USER) };
  const denied = [
    { verb: 'get', apiGroup: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-system', name: 'kube-scheduler' },
    { verb: 'update', apiGroup: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-system', name: 'kube-controller-manager' },
    { verb: 'create', apiGroup: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-node-lease' },
    { verb: 'list', apiGroup: 'coordination.k8s.io', resource: 'leases' },
    { verb: 'list', apiGroup: '', resource: 'secrets' },
    { verb: 'list', apiGroup: '', resource: 'secrets', namespace: 'kube-system' },
    { verb: 'get', apiGroup: '', resource: 'secrets', namespace: 'default', name: 'db-password' },
    { verb: 'get', apiGroup: '', resource: 'secrets', namespace: PHAROS_NAMESPACE, name: 'bgp-md5' },
    { verb: 'create', apiGroup: '', resource: 'secrets', namespace: PHAROS_NAMESPACE },
    { verb: 'update', apiGroup: '', resource: 'services', namespace: 'default', name: 'echo' },
    { verb: 'delete', apiGroup: 'lb.pharos.io', resource: 'loadbalancerippools', name: 'blue' },
  ];
  for (const a of denied) t.notOk(authorize(objects, { ...sa, ...a }).allowed, `denied: ${a.verb} ${a.resource} ${a.namespace ?? '(cluster scope)'} ${a.name ?? ''}`);
  t.ok(authorize(objects, { ...sa, verb: 'watch', apiGroup: '', resource: 'secrets', namespace: PHAROS_NAMESPACE }).allowed, 'allowed: watch Secrets in pharos-system');
  t.ok(authorize(objects, { ...sa, verb: 'update', apiGroup: 'coordination.k8s.io', resource: 'leases', namespace: PHAROS_NAMESPACE, name: 'pharos-ipam' }).allowed, 'allowed: update its Leases');
  const clusterWide = grantsOf(objects).filter((g) => g.scope === 'cluster' && ['leases', 'secrets'].includes(g.rule.resources![0]!));
  t.same(clusterWide.map((g) => g.label), [], 'no Lease or Secret grant in a ClusterRole');
  t.ok(grantsOf(objects).every((g) => ![g.rule.verbs[0], g.rule.resources![0], g.rule.apiGroups![0]].includes('*')), 'no wildcards');
  const sa2 = deployDocuments().find((d) => d.kind === 'ServiceAccount');
  t.equal(sa2?.metadata?.namespace, PHAROS_NAMESPACE, 'the service account lives in pharos-system');
  t.equal(deployDocuments().find((d) => d.kind === 'DaemonSet')?.metadata?.namespace, PHAROS_NAMESPACE, 'so does the DaemonSet');
});
