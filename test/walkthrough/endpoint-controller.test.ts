/**
 * The lab's endpoint controller (pure part): which EndpointSlices the lab
 * writes for which Services, given the backends it started.
 */
import t from 'tap';
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
