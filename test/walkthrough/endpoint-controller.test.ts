/**
 * The lab's endpoint and deployment controllers (pure parts): which
 * EndpointSlices the lab writes for which Services, given the backends it
 * started; the pods it plays for a Deployment on those backends, the
 * status `kubectl rollout status` waits for, and the endpoints a Service
 * selecting those pods gets.
 */
import t from 'tap';
import { deploymentPods, deploymentStatus, podBackends, templateHash, wantedReplicas, POD_BACKEND_ANNOTATION, type DeploymentLike } from '../../src/lab/deployments.js';
import { desiredSlices, MANAGED_BY, selectorMatches, sliceUpToDate, type LabBackend, type ServiceLike } from '../../src/lab/endpoints.js';

const backends: LabBackend[] = [
  { name: 'be1', labels: { app: 'echo' }, v4: '198.51.100.141', v6: '2001:db8:51::141', port: 8080 },
  { name: 'be2', labels: { app: 'echo', tier: 'b' }, v4: '198.51.100.142', v6: '2001:db8:51::142', port: 8080 },
];

const svc = (name: string, spec: ServiceLike['spec'], namespace = 'default'): ServiceLike => ({ metadata: { name, namespace }, spec });

t.test('selectors: every key must match; no selector selects nothing', async (t) => {
  t.ok(selectorMatches({ app: 'echo' }, { app: 'echo', tier: 'b' }));
  t.notOk(selectorMatches({ app: 'echo', tier: 'b' }, { app: 'echo' }));
  t.notOk(selectorMatches({ app: 'web' }, { app: 'echo' }));
  t.notOk(selectorMatches(undefined, { app: 'echo' }), 'a service without selector is managed elsewhere');
  t.notOk(selectorMatches({}, { app: 'echo' }));
});

t.test('one slice per family with the matching backends; named target ports resolve to the backend port', async (t) => {
  const out = desiredSlices([
    svc('echo', { selector: { app: 'echo' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] }),
    svc('b-only', { selector: { tier: 'b' }, ipFamilies: ['IPv4', 'IPv6'], ports: [{ port: 80, targetPort: 9090, protocol: 'UDP' }] }, 'team'),
    svc('other', { selector: { app: 'web' }, ports: [{ port: 80 }] }),
    svc('external', { ports: [{ port: 443 }] }),
  ], backends);
  t.same(out.map((s) => `${s.metadata.namespace}/${s.metadata.name}`), ['default/echo-lab-v4', 'team/b-only-lab-v4', 'team/b-only-lab-v6']);
  const [echo, b4, b6] = out;
  t.same(echo!.endpoints.map((e) => e.addresses[0]), ['198.51.100.141', '198.51.100.142']);
  t.same(echo!.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
  t.equal(echo!.metadata.labels['kubernetes.io/service-name'], 'echo');
  t.equal(echo!.metadata.labels[MANAGED_BY.key], MANAGED_BY.value);
  t.same(b4!.endpoints.map((e) => e.addresses[0]), ['198.51.100.142']);
  t.same(b4!.ports, [{ name: '', port: 9090, protocol: 'UDP' }], 'a numeric targetPort is taken as written');
  t.equal(b6!.addressType, 'IPv6');
  t.same(b6!.endpoints.map((e) => e.addresses[0]), ['2001:db8:51::142']);
});

t.test('an unchanged stored slice needs no write; any difference does', async (t) => {
  const [want] = desiredSlices([svc('echo', { selector: { app: 'echo' }, ports: [{ port: 80, targetPort: 8080 }] })], backends);
  const stored = JSON.parse(JSON.stringify({ ...want, metadata: { ...want!.metadata, resourceVersion: '7', uid: 'x' } }));
  t.ok(sliceUpToDate(stored, want!));
  t.notOk(sliceUpToDate(undefined, want!));
  t.notOk(sliceUpToDate({ ...stored, endpoints: stored.endpoints.slice(1) }, want!));
  t.notOk(sliceUpToDate({ ...stored, ports: [{ name: '', port: 8081, protocol: 'TCP' }] }, want!));
});

const nginx = (replicas: number | undefined, generation = 1, namespace = 'default'): DeploymentLike => ({
  metadata: { name: 'nginx', namespace, generation, uid: 'u1' },
  spec: {
    ...(replicas === undefined ? {} : { replicas }),
    template: { metadata: { labels: { app: 'nginx' } }, spec: { containers: [{ name: 'nginx', ports: [{ name: 'web', containerPort: 80 }] }] } },
  },
});

t.test('a Deployment\'s pods: spec.replicas of them (1 when unset), round robin over the backends, named as a ReplicaSet names them', async (t) => {
  t.equal(wantedReplicas(nginx(undefined)), 1);
  t.equal(wantedReplicas(nginx(0)), 0);
  const pods = deploymentPods([nginx(3)], backends);
  t.equal(pods.length, 3);
  t.same(pods.map((p) => p.metadata.annotations[POD_BACKEND_ANNOTATION]), ['be1', 'be2', 'be1']);
  const hash = templateHash(nginx(3));
  t.match(hash, /^[a-z0-9]{10}$/);
  for (const p of pods) {
    t.match(p.metadata.name, new RegExp(`^nginx-${hash}-[a-z0-9]{5}$`));
    t.same(p.metadata.labels, { app: 'nginx', 'pod-template-hash': hash }, 'the template labels and pod-template-hash');
    t.equal(p.metadata.namespace, 'default');
    t.equal(p.status.phase, 'Running');
  }
  t.equal(new Set(pods.map((p) => p.metadata.name)).size, 3, 'distinct names');
  t.same(deploymentPods([nginx(3)], backends).map((p) => p.metadata.name), pods.map((p) => p.metadata.name), 'the same names on every reconcile');
  t.not(templateHash({ ...nginx(3), spec: { ...nginx(3).spec, template: { metadata: { labels: { app: 'other' } } } } }), hash, 'a new template, a new hash');
  t.same(deploymentPods([nginx(3)], []), [], 'no backends, no pods');
});

t.test('status as the deployment controller writes it once the pods are up; zero counts left out', async (t) => {
  const now = new Date('2026-12-07T10:00:00.123Z');
  const s = deploymentStatus(nginx(3, 4), 3, now);
  t.same({ ...s, conditions: undefined }, { observedGeneration: 4, replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3, conditions: undefined });
  t.same(s.conditions!.map((c) => [c.type, c.status, c.reason]), [['Available', 'True', 'MinimumReplicasAvailable'], ['Progressing', 'True', 'NewReplicaSetAvailable']]);
  t.equal(s.conditions![0]!.lastTransitionTime, '2026-12-07T10:00:00Z');
  const later = deploymentStatus({ ...nginx(3, 4), status: s }, 3, new Date('2026-12-07T11:00:00Z'));
  t.same(later, s, 'unchanged: the condition times are kept, so no write is due');
  const short = deploymentStatus(nginx(3), 1, now);
  t.equal(short.readyReplicas, 1);
  t.equal(short.unavailableReplicas, 2);
  t.same(short.conditions!.map((c) => [c.type, c.status]), [['Available', 'False'], ['Progressing', 'True']], 'not rolled out while pods are missing');
  const zero = deploymentStatus(nginx(0), 0, now);
  t.notOk('replicas' in zero || 'readyReplicas' in zero || 'availableReplicas' in zero, 'zero counts omitted');
  t.equal(zero.conditions![0]!.status, 'True', 'zero replicas is available');
});

t.test('a Service selecting the pods gets them as endpoints: its namespace only, one per address, ports resolved as a cluster does', async (t) => {
  const pods = podBackends(deploymentPods([nginx(3), nginx(1, 1, 'team')], backends), backends);
  const svc = (name: string, ports: { name?: string; port: number; targetPort?: number | string }[], namespace = 'default') => ({
    metadata: { name, namespace }, spec: { selector: { app: 'nginx' }, ports },
  });
  const out = desiredSlices([
    svc('service-blue', [{ port: 80 }]),
    svc('named', [{ name: 'http', port: 8080, targetPort: 'web' }]),
    svc('unnamed-target', [{ port: 8080, targetPort: 'nope' }]),
    svc('team-svc', [{ port: 80, targetPort: 8080 }], 'team'),
    svc('elsewhere', [{ port: 80 }], 'other'),
  ], [...pods, ...backends]);
  const byName = new Map(out.map((s) => [s.metadata.name, s]));
  const blue = byName.get('service-blue-lab-v4')!;
  t.same(blue.endpoints.map((e) => e.addresses[0]), ['198.51.100.141', '198.51.100.142'], 'three pods on two backends: two endpoints');
  t.match(blue.endpoints[0]!.targetRef!.name, /^nginx-/);
  t.same(blue.ports, [{ name: '', port: 80, protocol: 'TCP' }], 'no targetPort: the port itself (80)');
  t.equal(byName.get('named-lab-v4')!.ports[0]!.port, 80, 'a named targetPort resolves through the container ports');
  t.equal(byName.get('unnamed-target-lab-v4')!.ports[0]!.port, 8080, 'an unknown name falls back to the backend\'s port');
  t.same(byName.get('team-svc-lab-v4')!.endpoints.map((e) => e.addresses[0]), ['198.51.100.141'], 'team\'s Service gets team\'s one pod');
  t.notOk(byName.has('elsewhere-lab-v4'), 'a Service in a namespace without such pods gets nothing');
});
