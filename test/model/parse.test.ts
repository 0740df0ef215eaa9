import t from 'tap';
import { parseObject, parseEndpointSlice, parseService, type ParseResult } from '../../src/model/parse.js';
import type { BgpPolicy, EndpointSlice, IPPool, L2Policy, Lease, ModelObject, Node, Secret, Service } from '../../src/model/types.js';

function ok<T extends ModelObject>(r: ParseResult): T {
  if (!r.ok) throw new Error('ignored' in r && r.ignored ? `ignored: ${r.reason}` : String(r.error));
  return r.object as T;
}

/** The error of a result that must have failed validation. */
function failure(r: ParseResult): { field: string; text: string } {
  if (r.ok) throw new Error(`expected a validation error, got ${JSON.stringify(r.object)}`);
  if (r.ignored) throw new Error(`expected a validation error, got ignored: ${r.reason}`);
  return { field: r.error.field, text: r.error.toString() };
}

const pool = (spec: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'lb.pharos.io/v1alpha1',
  kind: 'LoadBalancerIPPool',
  metadata: { name: 'blue', ...extra },
  spec,
});
const service = (spec: Record<string, unknown>, metadata: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'echo', namespace: 'demo', ...metadata },
  spec,
});
const neighbor = { peerAddress: '198.51.100.1/32', peerASN: 65000 };
const bgp = (spec: unknown, apiVersion = 'lb.pharos.io/v1alpha1', kind = 'BGPPeeringPolicy') => ({
  apiVersion,
  kind,
  metadata: { name: 'rack1' },
  spec,
});
const l2 = (spec: unknown) => ({ apiVersion: 'lb.pharos.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'l2' }, spec });

t.test('Service defaults follow the Kubernetes API', async (t) => {
  const s = ok<Service>(parseObject(service({ type: 'LoadBalancer', ports: [{ port: 80 }] })));
  t.same(s.meta, { name: 'echo', namespace: 'demo', labels: {}, annotations: {} });
  t.equal(s.type, 'LoadBalancer');
  t.same(s.ipFamilies, ['IPv4']);
  t.equal(s.ipFamilyPolicy, 'SingleStack');
  t.same(s.ports, [{ name: '', protocol: 'TCP', port: 80, targetPort: 80 }]);
  t.equal(s.externalTrafficPolicy, 'Cluster');
  t.equal(s.sessionAffinity, 'None');
  t.equal(s.sessionAffinityTimeoutSeconds, 10800);
  t.equal(s.allocateLoadBalancerNodePorts, true);
  t.same(s.status, { ingress: [], conditions: [] });
  t.equal(s.loadBalancerClass, undefined);

  const noNamespace = ok<Service>(parseObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: {} }));
  t.equal(noNamespace.meta.namespace, 'default', 'a manifest without namespace lands in default, as with kubectl');
  t.equal(noNamespace.type, 'ClusterIP');
});

t.test('Service families come from clusterIPs when ipFamilies is absent', async (t) => {
  const v6 = ok<Service>(parseObject(service({ clusterIP: '2001:db8::10', ports: [{ port: 80 }] })));
  t.same(v6.ipFamilies, ['IPv6']);
  t.same(v6.clusterIPs, ['2001:db8::10']);
  const dual = ok<Service>(parseObject(service({ clusterIPs: ['2001:db8::10', '198.18.0.10'], ports: [{ port: 80 }] })));
  t.same(dual.ipFamilies, ['IPv6', 'IPv4']);
  t.equal(dual.ipFamilyPolicy, 'RequireDualStack', 'two cluster IPs default the policy to RequireDualStack');
  const prefer = ok<Service>(parseObject(service({ type: 'LoadBalancer', ipFamilyPolicy: 'PreferDualStack', ports: [{ port: 80 }] })));
  t.same(prefer.ipFamilies, ['IPv4', 'IPv6']);
  const twoFamilies = ok<Service>(parseObject(service({ ipFamilies: ['IPv6', 'IPv4'], ports: [{ port: 80 }] })));
  t.equal(twoFamilies.ipFamilyPolicy, 'RequireDualStack');
  t.same(twoFamilies.ipFamilies, ['IPv6', 'IPv4']);
  const preferV6 = ok<Service>(parseObject(service({ type: 'LoadBalancer', ipFamilyPolicy: 'PreferDualStack', ipFamilies: ['IPv6'], ports: [{ port: 80 }] })));
  t.same(preferV6.ipFamilies, ['IPv6', 'IPv4'], 'no API server defaulted it: the other family appended, primary kept');
  const served = ok<Service>(
    parseObject(service({ type: 'LoadBalancer', ipFamilyPolicy: 'PreferDualStack', ipFamilies: ['IPv4'], clusterIPs: ['198.19.0.1'], ports: [{ port: 80 }] })),
  );
  t.same(served.ipFamilies, ['IPv4'], 'an API server chose one family (single-stack cluster): kept');
  const headless = ok<Service>(parseObject(service({ clusterIP: 'None' })));
  t.same(headless.clusterIPs, ['None']);
  t.same(headless.ipFamilies, ['IPv4']);
});

t.test('Service fields carried over', async (t) => {
  const s = ok<Service>(
    parseObject(
      service(
        {
          type: 'LoadBalancer',
          loadBalancerClass: 'lb.pharos.io/l2',
          loadBalancerIP: '198.18.0.5',
          externalIPs: ['203.0.113.7'],
          externalTrafficPolicy: 'Local',
          sessionAffinity: 'ClientIP',
          sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
          allocateLoadBalancerNodePorts: false,
          ports: [
            { name: 'http', port: 80, targetPort: 'web', nodePort: 30080 },
            { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
          ],
        },
        { labels: { color: 'blue' }, annotations: { 'lb.pharos.io/ips': '198.18.0.5' }, uid: 'u1', resourceVersion: '42' },
      ),
    ),
  );
  t.equal(s.loadBalancerClass, 'lb.pharos.io/l2');
  t.equal(s.loadBalancerIP, '198.18.0.5');
  t.same(s.externalIPs, ['203.0.113.7']);
  t.equal(s.externalTrafficPolicy, 'Local');
  t.equal(s.sessionAffinityTimeoutSeconds, 60);
  t.equal(s.allocateLoadBalancerNodePorts, false);
  t.same(s.ports, [
    { name: 'http', protocol: 'TCP', port: 80, targetPort: 'web', nodePort: 30080 },
    { name: 'dns', protocol: 'UDP', port: 53, targetPort: 5353 },
  ]);
  t.same(s.meta.labels, { color: 'blue' });
  t.equal(s.meta.uid, 'u1');
  t.equal(s.meta.resourceVersion, '42');
});

t.test('Service status and source ranges', async (t) => {
  const s = ok<Service>(
    parseObject({
      ...service(
        { type: 'LoadBalancer', ports: [{ port: 80 }] },
        { annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': '192.0.2.0/24, 2001:db8::/32' } },
      ),
      status: {
        loadBalancer: { ingress: [{ ip: '198.18.0.5' }, { hostname: 'lb.example' }] },
        conditions: [{ type: 'lb.pharos.io/IPAMRequestSatisfied', status: 'True', reason: 'satisfied', message: '', lastTransitionTime: '2026-01-02T03:04:05Z' }],
      },
    }),
  );
  t.same(s.status.ingress, [{ ip: '198.18.0.5' }], 'hostname-only ingress skipped');
  t.equal(s.status.conditions[0]?.reason, 'satisfied');
  t.same(s.loadBalancerSourceRanges, ['192.0.2.0/24', '2001:db8::/32']);
  const fieldWins = ok<Service>(
    parseObject(
      service(
        { type: 'LoadBalancer', ports: [{ port: 80 }], loadBalancerSourceRanges: ['198.51.100.0/24'] },
        { annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': '192.0.2.0/24' } },
      ),
    ),
  );
  t.same(fieldWins.loadBalancerSourceRanges, ['198.51.100.0/24']);
});

t.test('lb.pharos.io/forwarding-mode: dsr or snat; absent leaves it to the agent', async (t) => {
  const dsr = ok<Service>(parseObject(service({ type: 'LoadBalancer', ports: [{ port: 80 }] }, { annotations: { 'lb.pharos.io/forwarding-mode': 'dsr' } })));
  t.equal(dsr.forwardingMode, 'dsr');
  const snat = ok<Service>(parseObject(service({ type: 'LoadBalancer', ports: [{ port: 80 }] }, { annotations: { 'lb.pharos.io/forwarding-mode': 'snat' } })));
  t.equal(snat.forwardingMode, 'snat');
  t.equal(ok<Service>(parseObject(service({ type: 'LoadBalancer', ports: [{ port: 80 }] }))).forwardingMode, undefined);
});

t.test('lb.pharos.io/dsr-dispatch: l2, ipip or auto; absent is auto', async (t) => {
  for (const d of ['l2', 'ipip', 'auto'] as const) {
    t.equal(ok<Service>(parseObject(service({ type: 'LoadBalancer', ports: [{ port: 80 }] }, { annotations: { 'lb.pharos.io/dsr-dispatch': d } }))).dsrDispatch, d);
  }
  t.equal(ok<Service>(parseObject(service({ type: 'LoadBalancer', ports: [{ port: 80 }] }))).dsrDispatch, undefined);
});

t.test('lb.pharos.io/removed-backend: rebalance or reset; anything else names the annotation', async (t) => {
  const svc = (v?: string): unknown => service({ type: 'LoadBalancer', ports: [{ port: 80 }] }, v === undefined ? {} : { annotations: { 'lb.pharos.io/removed-backend': v } });
  t.equal(ok<Service>(parseObject(svc('reset'))).removedBackendPolicy, 'reset');
  t.equal(ok<Service>(parseObject(svc('rebalance'))).removedBackendPolicy, 'rebalance');
  t.equal(ok<Service>(parseObject(svc())).removedBackendPolicy, undefined);
  const bad = parseObject(svc('drop'));
  t.equal(bad.ok, false);
  if (!bad.ok && !bad.ignored) t.same([bad.error.field, bad.error.message], ['metadata.annotations["lb.pharos.io/removed-backend"]', '"drop" is not one of rebalance, reset']);
});

t.test('Date objects from the client library become RFC 3339 text', async (t) => {
  const s = ok<Service>(parseObject(service({}, { creationTimestamp: new Date('2026-01-02T03:04:05.678Z') })));
  t.equal(s.meta.creationTimestamp, '2026-01-02T03:04:05Z');
  const lease = ok<Lease>(
    parseObject({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'pharos-node-a', namespace: 'kube-system' },
      spec: { holderIdentity: 'a', leaseDurationSeconds: 1, renewTime: new Date('2026-01-02T03:04:05.678Z'), acquireTime: '2026-01-02T03:04:05.000000Z', leaseTransitions: 3 },
    }),
  );
  t.same(lease, {
    kind: 'Lease',
    meta: { name: 'pharos-node-a', namespace: 'kube-system', labels: {}, annotations: {} },
    holderIdentity: 'a',
    leaseDurationSeconds: 1,
    acquireTime: '2026-01-02T03:04:05.000000Z',
    renewTime: '2026-01-02T03:04:05.678Z',
    leaseTransitions: 3,
  });
});

t.test('Service validation names the field', async (t) => {
  const cases: [string, unknown, string, RegExp?][] = [
    ['name not DNS-1035', service({}, { name: '1echo' }), 'metadata.name'],
    ['namespace invalid', service({}, { namespace: 'Demo' }), 'metadata.namespace'],
    ['label value number', service({}, { labels: { tier: 1 } }), 'metadata.labels.tier', /must be a string/],
    ['label key invalid', service({}, { labels: { 'a/b/c': 'x' } }), 'metadata.labels["a/b/c"]'],
    ['label value invalid', service({}, { labels: { tier: '-front' } }), 'metadata.labels.tier'],
    ['annotation not string', service({}, { annotations: { 'lb.pharos.io/ips': true } }), 'metadata.annotations["lb.pharos.io/ips"]'],
    ['bad type', service({ type: 'Loadbalancer' }), 'spec.type', /not one of ClusterIP, NodePort, LoadBalancer, ExternalName/],
    ['port out of range', service({ ports: [{ port: 70000 }] }), 'spec.ports[0].port', /out of range 1..65535/],
    ['port missing', service({ ports: [{ name: 'a' }] }), 'spec.ports[0].port', /required/],
    ['port as string', service({ ports: [{ port: '80' }] }), 'spec.ports[0].port', /must be an integer/],
    ['bad protocol', service({ ports: [{ port: 80, protocol: 'tcp' }] }), 'spec.ports[0].protocol'],
    ['unnamed second port', service({ ports: [{ name: 'a', port: 80 }, { port: 81 }] }), 'spec.ports[1].name', /more than one port/],
    ['duplicate port', service({ ports: [{ name: 'a', port: 80 }, { name: 'b', port: 80 }] }), 'spec.ports[1]', /duplicate/],
    ['duplicate port name', service({ ports: [{ name: 'a', port: 80 }, { name: 'a', port: 81 }] }), 'spec.ports[1].name'],
    ['bad target name', service({ ports: [{ port: 80, targetPort: 'Web_Port' }] }), 'spec.ports[0].targetPort'],
    ['target port 0', service({ ports: [{ port: 80, targetPort: 0 }] }), 'spec.ports[0].targetPort'],
    ['LB without ports', service({ type: 'LoadBalancer' }), 'spec.ports', /required for type LoadBalancer/],
    ['bad external IP', service({ externalIPs: ['198.18.0.1', '198.18.0.300'] }), 'spec.externalIPs[1]', /not an IP address/],
    ['external IP with zone', service({ externalIPs: ['fe80::1%eth0'] }), 'spec.externalIPs[0]'],
    ['external IPs not a list', service({ externalIPs: '198.18.0.1' }), 'spec.externalIPs', /must be a list/],
    ['bad loadBalancerIP', service({ loadBalancerIP: '198.18.0.0/24' }), 'spec.loadBalancerIP'],
    ['bad source range', service({ loadBalancerSourceRanges: ['192.0.2.0/33'] }), 'spec.loadBalancerSourceRanges[0]', /not a CIDR/],
    [
      'bad source range annotation',
      service({}, { annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': '192.0.2.0/24,nope' } }),
      'metadata.annotations["service.beta.kubernetes.io/load-balancer-source-ranges"]',
    ],
    ['bad forwarding mode', service({}, { annotations: { 'lb.pharos.io/forwarding-mode': 'direct' } }), 'metadata.annotations["lb.pharos.io/forwarding-mode"]', /snat, dsr/],
    ['bad DSR dispatch', service({}, { annotations: { 'lb.pharos.io/dsr-dispatch': 'gue' } }), 'metadata.annotations["lb.pharos.io/dsr-dispatch"]', /l2, ipip, auto/],
    ['bad traffic policy', service({ externalTrafficPolicy: 'Global' }), 'spec.externalTrafficPolicy'],
    ['bad affinity', service({ sessionAffinity: 'Cookie' }), 'spec.sessionAffinity'],
    ['affinity timeout too long', service({ sessionAffinityConfig: { clientIP: { timeoutSeconds: 86401 } } }), 'spec.sessionAffinityConfig.clientIP.timeoutSeconds'],
    ['bad family', service({ ipFamilies: ['IPv5'] }), 'spec.ipFamilies[0]'],
    ['family twice', service({ ipFamilies: ['IPv4', 'IPv4'], ipFamilyPolicy: 'RequireDualStack' }), 'spec.ipFamilies'],
    ['single stack with two families', service({ ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'SingleStack' }), 'spec.ipFamilyPolicy'],
    ['bad policy', service({ ipFamilyPolicy: 'DualStack' }), 'spec.ipFamilyPolicy'],
    ['cluster IP family mismatch', service({ clusterIP: '2001:db8::1', ipFamilies: ['IPv4'] }), 'spec.clusterIP', /IPv6 but ipFamilies\[0\] is IPv4/],
    ['clusterIP differs from clusterIPs', service({ clusterIP: '198.18.0.1', clusterIPs: ['198.18.0.2'] }), 'spec.clusterIP'],
    ['class on ClusterIP', service({ loadBalancerClass: 'lb.pharos.io/l2' }), 'spec.loadBalancerClass'],
    ['allocate not bool', service({ allocateLoadBalancerNodePorts: 'yes' }), 'spec.allocateLoadBalancerNodePorts'],
    ['spec not object', service([] as unknown as Record<string, unknown>), 'spec', /must be an object, got a list/],
    ['bad status ingress', { ...service({}), status: { loadBalancer: { ingress: [{ ip: 'x' }] } } }, 'status.loadBalancer.ingress[0].ip'],
    ['bad creationTimestamp', service({}, { creationTimestamp: 'yesterday' }), 'metadata.creationTimestamp'],
  ];
  for (const [what, raw, field, pattern] of cases) {
    const f = failure(parseObject(raw));
    t.equal(f.field, field, what);
    if (pattern) t.match(f.text, pattern, what);
  }
  t.equal(failure(parseObject(service({}, { name: '1echo' }))).text, 'Service "demo/1echo": metadata.name: "1echo" is not a valid Service name (lowercase letters, digits and "-", starting with a letter)');
});

t.test('EndpointSlice conditions default as the API documents', async (t) => {
  const slice = ok<EndpointSlice>(
    parseObject({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'echo-abc', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'echo' }, annotations: { 'lb.pharos.io/weight': '3' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }, { name: 'any' }],
      endpoints: [
        { addresses: ['198.18.1.1'], nodeName: 'n1', zone: 'z1' },
        { addresses: ['198.18.1.2'], conditions: { ready: false } },
        { addresses: ['198.18.1.3'], conditions: { ready: false, serving: true, terminating: true } },
        { addresses: ['198.18.1.4'], conditions: { ready: null, serving: null, terminating: null } },
      ],
    }),
  );
  t.equal(slice.serviceName, 'echo');
  t.same(slice.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }], 'nil port entry skipped');
  t.same(
    slice.endpoints.map((e) => [e.ready, e.serving, e.terminating, e.weight]),
    [
      [true, true, false, 3],
      [false, false, false, 3],
      [false, true, true, 3],
      [true, true, false, 3],
    ],
  );
  t.equal(slice.endpoints[0]?.nodeName, 'n1');
  t.equal(slice.endpoints[0]?.zone, 'z1');
  const r = parseObject({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'x', namespace: 'demo' }, addressType: 'IPv4', endpoints: [] });
  t.equal(r.ok, false);
  t.equal(!r.ok && r.ignored, true, 'a slice without a service-name label is ignored, not an error');
  t.equal(parseEndpointSlice({ metadata: { name: 'x', namespace: 'demo' } }).ok, false);
});

t.test('EndpointSlice validation names the field', async (t) => {
  const slice = (over: Record<string, unknown>, annotations: Record<string, unknown> = {}) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 's', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'echo' }, annotations },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['198.18.1.1'] }],
    ...over,
  });
  const cases: [string, unknown, string][] = [
    ['bad address type', slice({ addressType: 'IPv7' }), 'addressType'],
    ['v6 in v4 slice', slice({ endpoints: [{ addresses: ['198.18.1.1'] }, { addresses: ['2001:db8::1'] }] }), 'endpoints[1].addresses[0]'],
    ['not an address', slice({ endpoints: [{ addresses: ['backend-1'] }] }), 'endpoints[0].addresses[0]'],
    ['no addresses', slice({ endpoints: [{ addresses: [] }] }), 'endpoints[0].addresses'],
    ['ready not bool', slice({ endpoints: [{ addresses: ['198.18.1.1'], conditions: { ready: 'true' } }] }), 'endpoints[0].conditions.ready'],
    ['bad port', slice({ ports: [{ port: 0 }] }), 'ports[0].port'],
    ['bad weight', slice({}, { 'lb.pharos.io/weight': 'heavy' }), 'metadata.annotations["lb.pharos.io/weight"]'],
    ['weight too big', slice({}, { 'lb.pharos.io/weight': '70000' }), 'metadata.annotations["lb.pharos.io/weight"]'],
  ];
  for (const [what, raw, field] of cases) t.equal(failure(parseObject(raw)).field, field, what);
  const fqdn = ok<EndpointSlice>(parseObject(slice({ addressType: 'FQDN', endpoints: [{ addresses: ['backend.example'] }] })));
  t.same(fqdn.endpoints[0]?.addresses, ['backend.example']);
});

t.test('Node, Secret', async (t) => {
  const node = ok<Node>(
    parseObject({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'worker-1', namespace: 'ignored', labels: { 'kubernetes.io/hostname': 'worker-1' } },
      status: { addresses: [{ type: 'InternalIP', address: '198.18.0.11' }, { type: 'Hostname', address: 'worker-1' }] },
    }),
  );
  t.equal(node.meta.namespace, undefined, 'cluster-scoped: namespace dropped');
  t.same(node.addresses, [
    { type: 'InternalIP', address: '198.18.0.11' },
    { type: 'Hostname', address: 'worker-1' },
  ]);
  const secret = ok<Secret>(
    parseObject({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'bgp-auth', namespace: 'kube-system' },
      data: { password: Buffer.from('s3cret').toString('base64') },
      stringData: { other: 'plain' },
    }),
  );
  t.same(secret.data, { password: 's3cret', other: 'plain' });
  const bad = failure(parseObject({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x' }, data: { password: 'not base64!' } }));
  t.equal(bad.field, 'data.password');
});

t.test('dispatch: unknown kinds ignored, missing apiVersion an error', async (t) => {
  const cm = parseObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } });
  t.ok(!cm.ok && cm.ignored && /not one pharos uses/.test(cm.reason));
  const wrongVersion = failure(parseObject({ apiVersion: 'lb.pharos.io/v1', kind: 'LoadBalancerIPPool', metadata: { name: 'x' } }));
  t.equal(wrongVersion.text, 'LoadBalancerIPPool "x": apiVersion: "lb.pharos.io/v1" is not served (use lb.pharos.io/v1alpha1)');
  const kindTypo = failure(parseObject({ apiVersion: 'lb.pharos.io/v1alpha1', kind: 'LoadBalancerIPPol', metadata: { name: 'x' } }));
  t.equal(kindTypo.field, 'kind', 'a typo in our own group is an error, not silently ignored');
  const ciliumOther = parseObject({ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'x' } });
  t.ok(!ciliumOther.ok && ciliumOther.ignored, 'other Cilium kinds are ignored');
  const ciliumOldVersion = parseObject({ apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumPodIPPool', metadata: { name: 'x' } });
  t.ok(!ciliumOldVersion.ok && ciliumOldVersion.ignored);
  const serviceV2 = failure(parseObject({ apiVersion: 'v2', kind: 'Service', metadata: { name: 'web' } }));
  t.equal(serviceV2.text, 'Service "web": apiVersion: "v2" is not served (use v1)', 'a known kind under a wrong apiVersion is an error, not dropped without a word');
  t.equal(failure(parseObject({ kind: 'Service', metadata: { name: 'x' } })).field, 'apiVersion');
  t.equal(failure(parseObject({ apiVersion: 'v1', metadata: { name: 'x' } })).field, 'kind');
  t.equal(failure(parseObject('hello')).field, '');
  t.equal(failure(parseObject({ apiVersion: 'v1', kind: 'Service' })).field, 'metadata', 'metadata required');
  t.equal(failure(parseObject({ apiVersion: 'v1', kind: 'Service', metadata: {} })).field, 'metadata.name');
  t.equal(parseService({ metadata: { name: 'x' }, spec: {} }).ok, true, 'per-kind entry needs no apiVersion');
});

t.test('LoadBalancerIPPool: blocks, defaults, Cilium flavours', async (t) => {
  const p = ok<IPPool>(
    parseObject(
      pool({
        blocks: [{ cidr: '198.18.0.0/24' }, { start: '198.18.1.10', stop: '198.18.1.20' }, { start: '2001:db8::5' }],
        serviceSelector: { matchLabels: { color: 'blue' } },
      }),
    ),
  );
  t.same(p.blocks, [{ cidr: '198.18.0.0/24' }, { start: '198.18.1.10', stop: '198.18.1.20' }, { start: '2001:db8::5', stop: '2001:db8::5' }]);
  t.equal(p.flavor, 'pharos');
  t.equal(p.disabled, false);
  t.equal(p.allowFirstLastIPs, true);
  t.same(p.serviceSelector, { matchLabels: { color: 'blue' }, matchExpressions: [] });
  t.equal(ok<IPPool>(parseObject(pool({ blocks: [{ cidr: '198.18.0.0/24' }] }))).serviceSelector, undefined);

  const old = ok<IPPool>(
    parseObject({
      apiVersion: 'cilium.io/v2alpha1',
      kind: 'CiliumLoadBalancerIPPool',
      metadata: { name: 'legacy' },
      spec: { cidrs: [{ cidr: '203.0.113.0/24' }], disabled: true, allowFirstLastIPs: 'No' },
    }),
  );
  t.same(old.blocks, [{ cidr: '203.0.113.0/24' }]);
  t.equal(old.flavor, 'cilium');
  t.equal(old.disabled, true);
  t.equal(old.allowFirstLastIPs, false);
  const v2 = ok<IPPool>(
    parseObject({ apiVersion: 'cilium.io/v2', kind: 'CiliumLoadBalancerIPPool', metadata: { name: 'v2' }, spec: { blocks: [{ cidr: '2001:db8:1::/64' }], futureField: 1 } }),
  );
  t.same(v2.blocks, [{ cidr: '2001:db8:1::/64' }], 'Cilium objects tolerate fields pharos does not know');
});

t.test('LoadBalancerIPPool validation names the field', async (t) => {
  const cases: [string, unknown, string, string?][] = [
    ['bad cidr', pool({ blocks: [{ cidr: '198.18.0.0/24' }, { cidr: '198.18.1.0/24' }, { cidr: '10.0.0/24' }] }), 'spec.blocks[2].cidr', 'LoadBalancerIPPool "blue": spec.blocks[2].cidr: "10.0.0/24" is not a CIDR'],
    ['prefix too long', pool({ blocks: [{ cidr: '198.18.0.0/33' }] }), 'spec.blocks[0].cidr'],
    ['v6 prefix too long', pool({ blocks: [{ cidr: '2001:db8::/129' }] }), 'spec.blocks[0].cidr'],
    ['leading zero prefix', pool({ blocks: [{ cidr: '198.18.0.0/024' }] }), 'spec.blocks[0].cidr'],
    ['cidr and start', pool({ blocks: [{ cidr: '198.18.0.0/24', start: '198.18.0.1' }] }), 'spec.blocks[0]'],
    ['stop without start', pool({ blocks: [{ stop: '198.18.0.9' }] }), 'spec.blocks[0].start'],
    ['empty block', pool({ blocks: [{}] }), 'spec.blocks[0]'],
    ['bad start', pool({ blocks: [{ start: '198.18.0.256' }] }), 'spec.blocks[0].start'],
    ['bad stop', pool({ blocks: [{ start: '198.18.0.1', stop: 'x' }] }), 'spec.blocks[0].stop'],
    ['mixed families', pool({ blocks: [{ start: '198.18.0.1', stop: '2001:db8::1' }] }), 'spec.blocks[0].stop', 'LoadBalancerIPPool "blue": spec.blocks[0].stop: "2001:db8::1" is IPv6 but start "198.18.0.1" is IPv4'],
    ['start after stop', pool({ blocks: [{ start: '198.18.0.9', stop: '198.18.0.1' }] }), 'spec.blocks[0].stop'],
    ['v6 start after stop', pool({ blocks: [{ start: '2001:db8::9', stop: '2001:db8::1' }] }), 'spec.blocks[0].stop'],
    ['no blocks', pool({ blocks: [] }), 'spec.blocks'],
    ['no spec', pool(undefined), 'spec'],
    ['typo', pool({ blocks: [{ cidr: '198.18.0.0/24' }], serviceSelecter: {} }), 'spec.serviceSelecter'],
    ['typo in block', pool({ blocks: [{ cidr: '198.18.0.0/24', stopp: 'x' }] }), 'spec.blocks[0].stopp'],
    ['disabled string', pool({ blocks: [{ cidr: '198.18.0.0/24' }], disabled: 'true' }), 'spec.disabled'],
    ['allowFirstLastIPs bool', pool({ blocks: [{ cidr: '198.18.0.0/24' }], allowFirstLastIPs: true }), 'spec.allowFirstLastIPs'],
    ['selector typo', pool({ blocks: [{ cidr: '198.18.0.0/24' }], serviceSelector: { matchLabel: { a: 'b' } } }), 'spec.serviceSelector.matchLabel'],
    ['selector bad operator', pool({ blocks: [{ cidr: '198.18.0.0/24' }], serviceSelector: { matchExpressions: [{ key: 'color', operator: 'in', values: ['blue'] }] } }), 'spec.serviceSelector.matchExpressions[0].operator'],
    ['In without values', pool({ blocks: [{ cidr: '198.18.0.0/24' }], serviceSelector: { matchExpressions: [{ key: 'color', operator: 'In' }] } }), 'spec.serviceSelector.matchExpressions[0].values'],
    ['Exists with values', pool({ blocks: [{ cidr: '198.18.0.0/24' }], serviceSelector: { matchExpressions: [{ key: 'color', operator: 'Exists', values: ['x'] }] } }), 'spec.serviceSelector.matchExpressions[0].values'],
    ['bad expression key', pool({ blocks: [{ cidr: '198.18.0.0/24' }], serviceSelector: { matchExpressions: [{ key: 'a b', operator: 'Exists' }] } }), 'spec.serviceSelector.matchExpressions[0].key'],
    ['bad expression value', pool({ blocks: [{ cidr: '198.18.0.0/24' }], serviceSelector: { matchExpressions: [{ key: 'a', operator: 'In', values: ['ok', 'not ok'] }] } }), 'spec.serviceSelector.matchExpressions[0].values[1]'],
    ['matchLabels value number', pool({ blocks: [{ cidr: '198.18.0.0/24' }], serviceSelector: { matchLabels: { replicas: 3 } } }), 'spec.serviceSelector.matchLabels.replicas'],
    ['bad name', pool({ blocks: [{ cidr: '198.18.0.0/24' }] }, { name: 'Blue_Pool' }), 'metadata.name'],
    ['cilium cidrs bad', { apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumLoadBalancerIPPool', metadata: { name: 'c' }, spec: { cidrs: [{ cidr: 'x' }] } }, 'spec.cidrs[0].cidr'],
  ];
  for (const [what, raw, field, text] of cases) {
    const f = failure(parseObject(raw));
    t.equal(f.field, field, what);
    if (text) t.equal(f.text, text, what);
  }
  const cilium = failure(parseObject({ apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumLoadBalancerIPPool', metadata: { name: 'c' }, spec: { blocks: [{ cidr: 'x' }] } }));
  t.equal(cilium.text, 'CiliumLoadBalancerIPPool "c": spec.blocks[0].cidr: "x" is not a CIDR', 'errors use the kind as written');
});

t.test('L2AnnouncementPolicy', async (t) => {
  const p = ok<L2Policy>(
    parseObject(
      l2({
        serviceSelector: { matchLabels: { color: 'blue' } },
        nodeSelector: { matchExpressions: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'DoesNotExist' }] },
        interfaces: ['^eth[0-9]+', 'bond0'],
      }),
    ),
  );
  t.same(p.interfaces, ['^eth[0-9]+', 'bond0']);
  t.equal(p.loadBalancerIPs, true, 'pharos default: announce LB IPs');
  t.equal(p.externalIPs, false);
  t.same(p.nodeSelector?.matchExpressions, [{ key: 'node-role.kubernetes.io/control-plane', operator: 'DoesNotExist', values: [] }]);
  const cilium = parseObject({ apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumL2AnnouncementPolicy', metadata: { name: 'c' }, spec: { externalIPs: true } });
  t.ok(cilium.ok);
  if (cilium.ok) {
    const policy = cilium.object as L2Policy;
    t.equal(policy.flavor, 'cilium');
    t.equal(policy.loadBalancerIPs, false, 'Cilium default: false');
    t.equal(policy.externalIPs, true);
  }
  const nothing = parseObject({ apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumL2AnnouncementPolicy', metadata: { name: 'c' }, spec: {} });
  t.ok(nothing.ok && nothing.warnings.some((w) => /announces nothing/.test(w)), 'a policy announcing nothing is warned about');

  t.equal(failure(parseObject(l2({ interfaces: ['eth[0-9'] }))).field, 'spec.interfaces[0]');
  t.match(failure(parseObject(l2({ interfaces: ['ok', '(unclosed'] }))).text, /spec.interfaces\[1\]: "\(unclosed" is not a valid regular expression/);
  t.equal(failure(parseObject(l2({ interfaces: 'eth0' }))).field, 'spec.interfaces');
  t.equal(failure(parseObject(l2({ loadBalancerIPs: 'yes' }))).field, 'spec.loadBalancerIPs');
  t.equal(failure(parseObject(l2({ nodeSelector: { matchLabels: { 'kubernetes.io/': 'x' } } }))).field, 'spec.nodeSelector.matchLabels["kubernetes.io/"]');
  t.equal(failure(parseObject(l2({ interface: ['eth0'] }))).field, 'spec.interface');
});

t.test('BGPPeeringPolicy defaults follow Cilium', async (t) => {
  const p = ok<BgpPolicy>(parseObject(bgp({ virtualRouters: [{ localASN: 64512, neighbors: [neighbor] }] })));
  const vr = p.virtualRouters[0]!;
  t.equal(vr.exportPodCIDR, false);
  t.same(vr.serviceAdvertisements, ['LoadBalancerIP']);
  t.equal(vr.serviceSelector, undefined);
  t.same(vr.neighbors[0], {
    peerAddress: '198.51.100.1/32',
    peerASN: 65000,
    peerPort: 179,
    eBGPMultihopTTL: 1,
    connectRetryTimeSeconds: 120,
    holdTimeSeconds: 90,
    keepAliveTimeSeconds: 30,
    gracefulRestart: { enabled: false, restartTimeSeconds: 120 },
    families: [
      { afi: 'ipv4', safi: 'unicast' },
      { afi: 'ipv6', safi: 'unicast' },
    ],
    advertisedPathAttributes: [],
  });
});

t.test('BGPPeeringPolicy: every field carried', async (t) => {
  const p = ok<BgpPolicy>(
    parseObject(
      bgp({
        nodeSelector: { matchLabels: { rack: 'r1' } },
        virtualRouters: [
          {
            localASN: 4200000001,
            exportPodCIDR: true,
            serviceSelector: { matchExpressions: [{ key: 'bgp', operator: 'NotIn', values: ['off'] }] },
            serviceAdvertisements: ['LoadBalancerIP', 'ExternalIP'],
            neighbors: [
              {
                peerAddress: '2001:db8::1',
                peerASN: 65001,
                peerPort: 1179,
                eBGPMultihopTTL: 4,
                connectRetryTimeSeconds: 5,
                holdTimeSeconds: 9,
                keepAliveTimeSeconds: 3,
                gracefulRestart: { enabled: true, restartTimeSeconds: 30 },
                families: [{ afi: 'ipv6', safi: 'unicast' }],
                advertisedPathAttributes: [
                  {
                    selectorType: 'LoadBalancerIPPool',
                    selector: { matchLabels: { color: 'blue' } },
                    communities: { standard: ['65000:100', '4294967295'], wellKnown: ['no-export'], large: ['4200000001:1:2'] },
                    localPreference: 200,
                  },
                ],
                password: 'md5-secret',
                sourceAddress: '2001:db8::2',
              },
              { peerAddress: '198.51.100.2', peerASN: 65002, authSecretRef: 'bgp-auth' },
            ],
          },
        ],
      }),
    ),
  );
  const vr = p.virtualRouters[0]!;
  t.equal(vr.localASN, 4200000001);
  t.equal(vr.exportPodCIDR, true);
  t.same(vr.serviceAdvertisements, ['LoadBalancerIP', 'ExternalIP']);
  const n = vr.neighbors[0]!;
  t.equal(n.peerPort, 1179);
  t.same(n.gracefulRestart, { enabled: true, restartTimeSeconds: 30 });
  t.same(n.families, [{ afi: 'ipv6', safi: 'unicast' }]);
  t.same(n.advertisedPathAttributes, [
    {
      selectorType: 'LoadBalancerIPPool',
      selector: { matchLabels: { color: 'blue' }, matchExpressions: [] },
      communities: { standard: ['65000:100', '4294967295', 'no-export'], large: ['4200000001:1:2'] },
      localPreference: 200,
    },
  ]);
  t.equal(n.password, 'md5-secret');
  t.equal(n.sourceAddress, '2001:db8::2');
  t.equal(vr.neighbors[1]!.authSecretRef, 'bgp-auth');
  t.equal(vr.neighbors[1]!.password, undefined);
});

t.test('CiliumBGPPeeringPolicy accepted as is, unsupported parts warned', async (t) => {
  const r = parseObject(
    bgp(
      {
        nodeSelector: { matchLabels: { 'kubernetes.io/os': 'linux' } },
        virtualRouters: [
          {
            localASN: 64512,
            podIPPoolSelector: { matchLabels: { a: 'b' } },
            serviceAdvertisements: ['LoadBalancerIP', 'ClusterIP'],
            neighbors: [
              {
                ...neighbor,
                advertisedPathAttributes: [
                  { selectorType: 'CiliumLoadBalancerIPPool', communities: { standard: ['64512:1'] } },
                  { selectorType: 'CiliumPodIPPool' },
                ],
              },
            ],
          },
        ],
      },
      'cilium.io/v2alpha1',
      'CiliumBGPPeeringPolicy',
    ),
  );
  t.ok(r.ok);
  if (!r.ok) return;
  const p = r.object as BgpPolicy;
  t.equal(p.flavor, 'cilium');
  t.same(p.virtualRouters[0]!.serviceAdvertisements, ['LoadBalancerIP']);
  t.same(
    p.virtualRouters[0]!.neighbors[0]!.advertisedPathAttributes.map((a) => a.selectorType),
    ['CiliumLoadBalancerIPPool'],
  );
  t.equal(r.warnings.length, 3, r.warnings.join('; '));
  const inline = ok<BgpPolicy>(
    parseObject(bgp({ virtualRouters: [{ localASN: 1, neighbors: [{ ...neighbor, password: 'x' }] }] }, 'cilium.io/v2alpha1', 'CiliumBGPPeeringPolicy')),
  );
  t.equal(inline.virtualRouters[0]!.neighbors[0]!.password, undefined, 'inline password is a pharos extension only');
});

t.test('BGPPeeringPolicy validation names the field', async (t) => {
  const vr = (over: Record<string, unknown>, n: Record<string, unknown> = {}) => bgp({ virtualRouters: [{ localASN: 64512, neighbors: [{ ...neighbor, ...n }], ...over }] });
  const cases: [string, unknown, string][] = [
    ['no routers', bgp({ virtualRouters: [] }), 'spec.virtualRouters'],
    ['no spec', bgp(null), 'spec'],
    ['ASN 0', vr({ localASN: 0 }), 'spec.virtualRouters[0].localASN'],
    ['ASN too big', vr({ localASN: 4294967296 }), 'spec.virtualRouters[0].localASN'],
    ['ASN string', vr({ localASN: '64512' }), 'spec.virtualRouters[0].localASN'],
    ['duplicate routers', bgp({ virtualRouters: [{ localASN: 1, neighbors: [neighbor] }, { localASN: 1, neighbors: [neighbor] }] }), 'spec.virtualRouters[1].localASN'],
    ['no neighbors', vr({ neighbors: [] }), 'spec.virtualRouters[0].neighbors'],
    ['duplicate neighbor', vr({ neighbors: [neighbor, { ...neighbor, peerAddress: '198.51.100.1' }] }), 'spec.virtualRouters[0].neighbors[1].peerAddress'],
    ['bad advertisement', vr({ serviceAdvertisements: ['PodIP'] }), 'spec.virtualRouters[0].serviceAdvertisements[0]'],
    ['peer not address', vr({}, { peerAddress: 'router1' }), 'spec.virtualRouters[0].neighbors[0].peerAddress'],
    ['peer a network', vr({}, { peerAddress: '198.51.100.0/24' }), 'spec.virtualRouters[0].neighbors[0].peerAddress'],
    ['peer ASN missing', vr({}, { peerASN: undefined }), 'spec.virtualRouters[0].neighbors[0].peerASN'],
    ['peer port 0', vr({}, { peerPort: 0 }), 'spec.virtualRouters[0].neighbors[0].peerPort'],
    ['ttl 256', vr({}, { eBGPMultihopTTL: 256 }), 'spec.virtualRouters[0].neighbors[0].eBGPMultihopTTL'],
    ['hold 2', vr({}, { holdTimeSeconds: 2 }), 'spec.virtualRouters[0].neighbors[0].holdTimeSeconds'],
    ['keepalive > hold', vr({}, { holdTimeSeconds: 9, keepAliveTimeSeconds: 10 }), 'spec.virtualRouters[0].neighbors[0].keepAliveTimeSeconds'],
    ['restart 4096', vr({}, { gracefulRestart: { enabled: true, restartTimeSeconds: 4096 } }), 'spec.virtualRouters[0].neighbors[0].gracefulRestart.restartTimeSeconds'],
    ['gr enabled string', vr({}, { gracefulRestart: { enabled: 'yes' } }), 'spec.virtualRouters[0].neighbors[0].gracefulRestart.enabled'],
    ['bad afi', vr({}, { families: [{ afi: 'l2vpn', safi: 'evpn' }] }), 'spec.virtualRouters[0].neighbors[0].families[0].afi'],
    ['bad safi', vr({}, { families: [{ afi: 'ipv4', safi: 'multicast' }] }), 'spec.virtualRouters[0].neighbors[0].families[0].safi'],
    ['family twice', vr({}, { families: [{ afi: 'ipv4', safi: 'unicast' }, { afi: 'ipv4', safi: 'unicast' }] }), 'spec.virtualRouters[0].neighbors[0].families[1]'],
    ['bad selectorType', vr({}, { advertisedPathAttributes: [{ selectorType: 'CiliumLoadBalancerIPPool' }] }), 'spec.virtualRouters[0].neighbors[0].advertisedPathAttributes[0].selectorType'],
    ['bad community', vr({}, { advertisedPathAttributes: [{ selectorType: 'Service', communities: { standard: ['65536:1'] } }] }), 'spec.virtualRouters[0].neighbors[0].advertisedPathAttributes[0].communities.standard[0]'],
    ['bad well-known', vr({}, { advertisedPathAttributes: [{ selectorType: 'Service', communities: { wellKnown: ['no-exports'] } }] }), 'spec.virtualRouters[0].neighbors[0].advertisedPathAttributes[0].communities.wellKnown[0]'],
    ['bad large', vr({}, { advertisedPathAttributes: [{ selectorType: 'Service', communities: { large: ['1:2'] } }] }), 'spec.virtualRouters[0].neighbors[0].advertisedPathAttributes[0].communities.large[0]'],
    ['large too big', vr({}, { advertisedPathAttributes: [{ selectorType: 'Service', communities: { large: ['1:2:4294967296'] } }] }), 'spec.virtualRouters[0].neighbors[0].advertisedPathAttributes[0].communities.large[0]'],
    ['local pref negative', vr({}, { advertisedPathAttributes: [{ selectorType: 'Service', localPreference: -1 }] }), 'spec.virtualRouters[0].neighbors[0].advertisedPathAttributes[0].localPreference'],
    ['password and secret', vr({}, { password: 'a', authSecretRef: 'b' }), 'spec.virtualRouters[0].neighbors[0].password'],
    ['password too long', vr({}, { password: 'x'.repeat(81) }), 'spec.virtualRouters[0].neighbors[0].password'],
    ['bad secret name', vr({}, { authSecretRef: 'Bad Name' }), 'spec.virtualRouters[0].neighbors[0].authSecretRef'],
    ['source family', vr({}, { sourceAddress: '2001:db8::2' }), 'spec.virtualRouters[0].neighbors[0].sourceAddress'],
    ['source not address', vr({}, { sourceAddress: 'eth0' }), 'spec.virtualRouters[0].neighbors[0].sourceAddress'],
    ['neighbor typo', vr({}, { peerAsn: 1 }), 'spec.virtualRouters[0].neighbors[0].peerAsn'],
    ['router typo', vr({ neighbours: [] }), 'spec.virtualRouters[0].neighbours'],
  ];
  for (const [what, raw, field] of cases) t.equal(failure(parseObject(raw)).field, field, what);
});
