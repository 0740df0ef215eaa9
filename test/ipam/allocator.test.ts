/**
 * Table-driven tests of the allocator's rules (issue 4), one row per rule:
 * pools, services in, expected ingress and condition reason/message out.
 */
import t, { type Test } from 'tap';
import { Ipam, reconcile, type AllocationState, type ServiceOutcome } from '../../src/ipam/allocator.js';
import { poolListRow, POOL_LIST_COLUMNS } from '../../src/cli/pool.js';
import { formatAge } from '../../src/cli/table.js';
import type { IPPool, Service } from '../../src/model/types.js';
import { pool, svc, withStatus } from './fixtures.js';

interface Want {
  ingress?: string[];
  reason?: string;
  status?: 'True' | 'False';
  message?: RegExp;
  kind?: ServiceOutcome['kind'];
}

interface Row {
  name: string;
  pools: IPPool[];
  services: Service[];
  want: Record<string, Want>;
  previous?: AllocationState;
  defaultClass?: boolean;
}

function check(t: Test, row: Row): void {
  const result = reconcile({ pools: row.pools, services: row.services, previous: row.previous }, { pharosIsDefaultClass: row.defaultClass ?? true });
  for (const [key, want] of Object.entries(row.want)) {
    const got = result.services.get(key.includes('/') ? key : `default/${key}`);
    if (!got) {
      t.fail(`${row.name}: no outcome for ${key}`);
      continue;
    }
    t.equal(got.kind, want.kind ?? 'managed', `${row.name}: ${key} kind`);
    if (got.kind === 'leave-alone') continue;
    if (want.ingress) t.same(got.ingress, want.ingress, `${row.name}: ${key} ingress`);
    if (got.kind !== 'managed') continue;
    if (want.reason) t.equal(got.condition.reason, want.reason, `${row.name}: ${key} reason (${got.condition.message})`);
    if (want.status) t.equal(got.condition.status, want.status, `${row.name}: ${key} status`);
    if (want.message) t.match(got.condition.message, want.message, `${row.name}: ${key} message`);
    t.equal(got.condition.type, 'lb.pharos.io/IPAMRequestSatisfied');
  }
}

const blue = pool({ name: 'blue-pool', created: '2024-01-01T00:00:00Z', blocks: ['20.0.10.0/24'], selector: { matchLabels: { color: 'blue' } } });
const red = pool({ name: 'red-pool', created: '2024-01-01T00:00:01Z', blocks: ['20.0.20.0/24'], selector: { matchLabels: { color: 'red' } } });
const cyanOrBlue = pool({
  name: 'cyan-pool',
  created: '2024-01-01T00:00:02Z',
  blocks: ['20.0.30.0/24'],
  selector: { matchExpressions: [{ key: 'color', operator: 'In', values: ['blue', 'cyan'] }] },
});
const empire = pool({ name: 'empire-pool', created: '2024-01-01T00:00:03Z', blocks: ['20.0.40.0/24', '2004::/64'], selector: { matchLabels: { org: 'empire' } } });
const open = pool({ name: 'open', blocks: ['192.0.2.0/29', '2001:db8::/64'] });

t.test('walkthroughs: blue, cyan-or-blue, dual-stack empire, red', async (t) => {
  const rows: Row[] = [
    {
      name: 'blue pool selected by color: blue',
      pools: [blue, red],
      services: [svc({ name: 'service-blue', labels: { color: 'blue' } }), svc({ name: 'service-red', labels: { color: 'red' } })],
      want: {
        'service-blue': { ingress: ['20.0.10.0'], reason: 'satisfied', status: 'True', message: /20\.0\.10\.0 \(pool blue-pool\)/ },
        'service-red': { ingress: ['20.0.20.0'], reason: 'satisfied' },
      },
    },
    {
      name: 'matchExpressions color In [blue, cyan]',
      pools: [cyanOrBlue],
      services: [
        svc({ name: 'cyan', labels: { color: 'cyan' } }),
        svc({ name: 'blue', labels: { color: 'blue' }, created: '2024-01-01T00:00:05Z' }),
        svc({ name: 'green', labels: { color: 'green' } }),
      ],
      want: {
        cyan: { ingress: ['20.0.30.0'] },
        blue: { ingress: ['20.0.30.1'] },
        green: { ingress: [], reason: 'no_pool', status: 'False', message: /spec\.serviceSelector/ },
      },
    },
    {
      name: 'dual-stack pool for org: empire',
      pools: [empire],
      services: [
        svc({ name: 'deathstar', labels: { org: 'empire' }, policy: 'RequireDualStack', families: ['IPv4', 'IPv6'] }),
        svc({ name: 'tie', labels: { org: 'empire' }, families: ['IPv6'] }),
        svc({ name: 'xwing', labels: { org: 'alliance' }, policy: 'PreferDualStack' }),
      ],
      want: {
        deathstar: { ingress: ['20.0.40.0', '2004::'], reason: 'satisfied' },
        tie: { ingress: ['2004::1'], reason: 'satisfied' },
        xwing: { ingress: [], reason: 'no_pool' },
      },
    },
    {
      name: 'the blue service does not take from the red pool, even when blue is full',
      pools: [pool({ name: 'tiny-blue', blocks: ['20.0.10.7/32'], selector: { matchLabels: { color: 'blue' } } }), red],
      services: [svc({ name: 'b1', labels: { color: 'blue' } }), svc({ name: 'b2', labels: { color: 'blue' }, created: '2024-01-02T00:00:00Z' })],
      want: { b1: { ingress: ['20.0.10.7'] }, b2: { ingress: [], reason: 'out_of_ips', message: /no free IPv4 address .*tiny-blue/ } },
    },
  ];
  for (const row of rows) check(t, row);
});

t.test('scope: type and loadBalancerClass', async (t) => {
  const rows: Row[] = [
    {
      name: 'classes',
      pools: [open],
      services: [
        svc({ name: 'unset' }),
        svc({ name: 'l2', class: 'lb.pharos.io/l2' }),
        svc({ name: 'bgp', class: 'lb.pharos.io/bgp' }),
        svc({ name: 'foreign', class: 'example.com/lb', ingress: ['192.0.2.1'] }),
        svc({ name: 'clusterip', type: 'ClusterIP' }),
      ],
      want: {
        // Same creation time: namespace/name order decides.
        bgp: { ingress: ['192.0.2.0'] },
        l2: { ingress: ['192.0.2.1'], message: /assigned/ },
        unset: { ingress: ['192.0.2.2'] },
        foreign: { kind: 'leave-alone' },
        clusterip: { kind: 'leave-alone' },
      },
    },
    {
      name: 'pharos is not the default class',
      defaultClass: false,
      pools: [open],
      services: [svc({ name: 'unset' }), svc({ name: 'l2', class: 'lb.pharos.io/l2' })],
      want: { unset: { kind: 'leave-alone' }, l2: { ingress: ['192.0.2.0'] } },
    },
    {
      name: 'left scope with our condition: our addresses are handed back, foreign ones stay',
      pools: [open],
      services: [
        svc({
          name: 'was-ours',
          type: 'NodePort',
          ingress: ['192.0.2.4', '203.0.113.9'],
          conditions: [{ type: 'lb.pharos.io/IPAMRequestSatisfied', status: 'True', reason: 'satisfied', message: '' }],
        }),
      ],
      want: { 'was-ours': { kind: 'release', ingress: ['203.0.113.9'] } },
    },
  ];
  for (const row of rows) check(t, row);
});

t.test('families from ipFamilyPolicy / ipFamilies', async (t) => {
  const v4only = pool({ name: 'v4', blocks: ['192.0.2.0/30'] });
  check(t, {
    name: 'families',
    pools: [open],
    services: [
      svc({ name: 'single-v6', families: ['IPv6'] }),
      svc({ name: 'prefer', policy: 'PreferDualStack', families: ['IPv4', 'IPv6'] }),
      svc({ name: 'require-v6-first', policy: 'RequireDualStack', families: ['IPv6', 'IPv4'] }),
    ],
    want: {
      prefer: { ingress: ['192.0.2.0', '2001:db8::'] },
      'require-v6-first': { ingress: ['2001:db8::1', '192.0.2.1'] },
      'single-v6': { ingress: ['2001:db8::2'] },
    },
  });
  check(t, {
    name: 'only an IPv4 pool',
    pools: [v4only],
    services: [svc({ name: 'prefer', policy: 'PreferDualStack' }), svc({ name: 'require', policy: 'RequireDualStack' })],
    want: {
      prefer: { ingress: ['192.0.2.0'], reason: 'satisfied', message: /no IPv6: no enabled/ },
      require: { ingress: ['192.0.2.1'], reason: 'no_pool', status: 'False', message: /IPv6.*holding 192\.0\.2\.1/ },
    },
  });
});

t.test('requested addresses: every spelling, precedence, and clear refusals', async (t) => {
  const rows: Row[] = [
    {
      name: 'spellings',
      pools: [open],
      services: [
        svc({ name: 'pharos', annotations: { 'lb.pharos.io/ips': '192.0.2.5' } }),
        svc({ name: 'spec', loadBalancerIP: '192.0.2.4' }),
        svc({ name: 'cilium', annotations: { 'lbipam.cilium.io/ips': '192.0.2.3' } }),
        svc({ name: 'cilium-old', annotations: { 'io.cilium/lb-ipam-ips': '192.0.2.2' } }),
        svc({ name: 'metallb', annotations: { 'metallb.io/loadBalancerIPs': '192.0.2.1' } }),
        svc({ name: 'metallb-old', annotations: { 'metallb.universe.tf/loadBalancerIPs': '192.0.2.6' } }),
        svc({ name: 'free', created: '2024-01-02T00:00:00Z' }),
      ],
      want: {
        pharos: { ingress: ['192.0.2.5'] },
        spec: { ingress: ['192.0.2.4'] },
        cilium: { ingress: ['192.0.2.3'] },
        'cilium-old': { ingress: ['192.0.2.2'] },
        metallb: { ingress: ['192.0.2.1'] },
        'metallb-old': { ingress: ['192.0.2.6'] },
        free: { ingress: ['192.0.2.0'] },
      },
    },
    {
      name: 'dual-stack request, and lb.pharos.io/ips wins over spec.loadBalancerIP',
      pools: [open],
      services: [
        svc({ name: 'both', policy: 'RequireDualStack', annotations: { 'lb.pharos.io/ips': '2001:db8::9, 192.0.2.7' } }),
        svc({ name: 'precedence', loadBalancerIP: '192.0.2.1', annotations: { 'lb.pharos.io/ips': '192.0.2.2' } }),
      ],
      want: { both: { ingress: ['192.0.2.7', '2001:db8::9'] }, precedence: { ingress: ['192.0.2.2'] } },
    },
    {
      name: 'refusals',
      pools: [open, red, pool({ name: 'off', blocks: ['198.51.100.0/24'], disabled: true }), pool({ name: 'edge', blocks: ['203.0.113.0/24'], allowFirstLastIPs: false })],
      services: [
        svc({ name: 'holder', annotations: { 'lb.pharos.io/ips': '192.0.2.3' } }),
        svc({ name: 'nowhere', annotations: { 'lb.pharos.io/ips': '10.9.9.9' }, created: '2024-01-02T00:00:00Z' }),
        svc({ name: 'not-red', annotations: { 'metallb.io/loadBalancerIPs': '20.0.20.5' }, created: '2024-01-02T00:00:00Z' }),
        svc({ name: 'taken', loadBalancerIP: '192.0.2.3', created: '2024-01-02T00:00:00Z' }),
        svc({ name: 'disabled', annotations: { 'lb.pharos.io/ips': '198.51.100.1' }, created: '2024-01-02T00:00:00Z' }),
        svc({ name: 'reserved', annotations: { 'lb.pharos.io/ips': '203.0.113.255' }, created: '2024-01-02T00:00:00Z' }),
      ],
      want: {
        holder: { ingress: ['192.0.2.3'] },
        nowhere: { ingress: [], reason: 'no_pool', message: /^metadata\.annotations\["lb\.pharos\.io\/ips"\]: 10\.9\.9\.9 is not in any pool/ },
        'not-red': { ingress: [], reason: 'pool_selector_mismatch', message: /metallb\.io\/loadBalancerIPs.*red-pool, whose spec\.serviceSelector/ },
        taken: { ingress: [], reason: 'already_allocated', message: /^spec\.loadBalancerIP: 192\.0\.2\.3 is already allocated to default\/holder/ },
        disabled: { ingress: [], reason: 'no_pool', message: /pool off, which is disabled/ },
        reserved: { ingress: [], reason: 'no_pool', message: /reserved by allowFirstLastIPs: No/ },
      },
    },
  ];
  for (const row of rows) check(t, row);
});

t.test('sharing keys: ports, spellings, namespaces', async (t) => {
  const rows: Row[] = [
    {
      name: 'same key, different ports share; the lowest shareable address is reused',
      pools: [open],
      services: [
        svc({ name: 'dns-udp', ports: [['UDP', 53]], annotations: { 'lb.pharos.io/sharing-key': 'dns' } }),
        svc({ name: 'dns-tcp', ports: [['TCP', 53]], annotations: { 'lbipam.cilium.io/sharing-key': 'dns' }, created: '2024-01-02T00:00:00Z' }),
        svc({ name: 'web', ports: [80], annotations: { 'metallb.io/allow-shared-ip': 'dns' }, created: '2024-01-03T00:00:00Z' }),
        svc({ name: 'web2', ports: [80], annotations: { 'metallb.universe.tf/allow-shared-ip': 'dns' }, created: '2024-01-04T00:00:00Z' }),
        svc({ name: 'nokey', ports: [443], created: '2024-01-05T00:00:00Z' }),
      ],
      want: {
        'dns-udp': { ingress: ['192.0.2.0'] },
        'dns-tcp': { ingress: ['192.0.2.0'] },
        web: { ingress: ['192.0.2.0'] },
        web2: { ingress: ['192.0.2.1'], reason: 'satisfied' },
        nokey: { ingress: ['192.0.2.2'] },
      },
    },
    {
      name: 'a requested shared address with clashing ports',
      pools: [open],
      services: [
        svc({ name: 'a', ports: [80], annotations: { 'lb.pharos.io/sharing-key': 'k', 'lb.pharos.io/ips': '192.0.2.5' } }),
        svc({ name: 'b', ports: [80, 443], annotations: { 'lb.pharos.io/sharing-key': 'k', 'lb.pharos.io/ips': '192.0.2.5' }, created: '2024-01-02T00:00:00Z' }),
        svc({ name: 'c', ports: [8080], annotations: { 'lb.pharos.io/ips': '192.0.2.5' }, created: '2024-01-03T00:00:00Z' }),
      ],
      want: {
        a: { ingress: ['192.0.2.5'] },
        b: { ingress: [], reason: 'conflicting_ports', message: /^metadata\.annotations\["lb\.pharos\.io\/sharing-key"\]: 192\.0\.2\.5 .*default\/a.*TCP\/80/ },
        c: { ingress: [], reason: 'already_allocated', message: /sharing needs the same/ },
      },
    },
    {
      name: 'cross-namespace sharing needs both to opt in',
      pools: [open],
      services: [
        svc({ name: 'a', namespace: 'one', ports: [80], annotations: { 'lb.pharos.io/sharing-key': 'k', 'lb.pharos.io/sharing-cross-namespace': '*' } }),
        svc({ name: 'b', namespace: 'two', ports: [81], annotations: { 'lb.pharos.io/sharing-key': 'k', 'lbipam.cilium.io/sharing-cross-namespace': 'one' }, created: '2024-01-02T00:00:00Z' }),
        svc({ name: 'c', namespace: 'three', ports: [82], annotations: { 'lb.pharos.io/sharing-key': 'k' }, created: '2024-01-03T00:00:00Z' }),
        svc({ name: 'd', namespace: 'three', ports: [83], annotations: { 'lb.pharos.io/sharing-key': 'k', 'lb.pharos.io/ips': '192.0.2.0' }, created: '2024-01-04T00:00:00Z' }),
      ],
      want: {
        'one/a': { ingress: ['192.0.2.0'] },
        'two/b': { ingress: ['192.0.2.0'] },
        'three/c': { ingress: ['192.0.2.1'] },
        'three/d': { ingress: [], reason: 'already_allocated', message: /another namespace.*sharing-cross-namespace/ },
      },
    },
  ];
  for (const row of rows) check(t, row);
});

t.test('pools: disabled, allowFirstLastIPs, ranges, conflicts', async (t) => {
  const rows: Row[] = [
    {
      name: 'a disabled pool hands out nothing new but keeps what services hold',
      pools: [pool({ name: 'off', blocks: ['192.0.2.0/30'], disabled: true })],
      services: [svc({ name: 'kept', ingress: ['192.0.2.2'] }), svc({ name: 'new' })],
      want: { kept: { ingress: ['192.0.2.2'], reason: 'satisfied' }, new: { ingress: [], reason: 'no_pool' } },
    },
    {
      name: 'allowFirstLastIPs: No skips network and broadcast of a /30; /31 and ranges never reserve',
      pools: [
        pool({ name: 'a30', blocks: ['192.0.2.0/30'], allowFirstLastIPs: false, selector: { matchLabels: { p: 'a' } } }),
        pool({ name: 'b31', blocks: ['192.0.2.4/31'], allowFirstLastIPs: false, selector: { matchLabels: { p: 'b' } } }),
        pool({ name: 'range', blocks: [['192.0.2.8', '192.0.2.9']], allowFirstLastIPs: false, selector: { matchLabels: { p: 'c' } } }),
        pool({ name: 'lone', blocks: [['192.0.2.12', '']], selector: { matchLabels: { p: 'd' } } }),
      ],
      services: ['a', 'a', 'a', 'b', 'b', 'c', 'c', 'd'].map((p, i) => svc({ name: `s${i}`, labels: { p }, created: `2024-01-01T00:00:0${i}Z` })),
      want: {
        s0: { ingress: ['192.0.2.1'] },
        s1: { ingress: ['192.0.2.2'] },
        s2: { ingress: [], reason: 'out_of_ips' },
        s3: { ingress: ['192.0.2.4'] },
        s4: { ingress: ['192.0.2.5'] },
        s5: { ingress: ['192.0.2.8'] },
        s6: { ingress: ['192.0.2.9'] },
        s7: { ingress: ['192.0.2.12'] },
      },
    },
    {
      // Issue 17: a conflict decides who hands out, never that a live address moves.
      name: 'the newer of two overlapping pools conflicts: it hands out nothing and keeps what services hold',
      pools: [
        pool({ name: 'older', created: '2024-01-01T00:00:00Z', blocks: ['192.0.2.0/29'], selector: { matchLabels: { p: 'old' } } }),
        pool({ name: 'newer', created: '2024-01-02T00:00:00Z', blocks: ['192.0.2.4/30', '198.51.100.0/30'], selector: { matchLabels: { p: 'new' } } }),
      ],
      services: [
        svc({ name: 'o', labels: { p: 'old' } }),
        svc({ name: 'n', labels: { p: 'new' }, ingress: ['198.51.100.1'] }),
        svc({ name: 'n-fresh', labels: { p: 'new' } }),
      ],
      want: {
        o: { ingress: ['192.0.2.0'] },
        n: { ingress: ['198.51.100.1'], reason: 'satisfied', message: /assigned 198\.51\.100\.1 \(pool newer\)/ },
        'n-fresh': { ingress: [], reason: 'no_pool' },
      },
    },
  ];
  for (const row of rows) check(t, row);

  const result = reconcile({
    pools: [
      pool({ name: 'older', created: '2024-01-01T00:00:00Z', blocks: ['192.0.2.0/29'] }),
      pool({ name: 'newer', created: '2024-01-02T00:00:00Z', blocks: ['192.0.2.4/30'] }),
      pool({ name: 'self', created: '2024-01-03T00:00:00Z', blocks: ['198.51.100.0/24', ['198.51.100.7', '198.51.100.9']] }),
      pool({ name: 'same-time-b', created: '2024-01-04T00:00:00Z', blocks: ['203.0.113.0/30'] }),
      pool({ name: 'same-time-a', created: '2024-01-04T00:00:00Z', blocks: ['203.0.113.0/31'] }),
    ],
    services: [],
  });
  const cond = (name: string) => result.pools.get(name)!.conditions.find((c) => c.type === 'lb.pharos.io/PoolConflict')!;
  t.equal(cond('older').status, 'False');
  t.match(cond('newer'), { status: 'True', reason: 'overlap', message: /192\.0\.2\.4-192\.0\.2\.7 overlaps 192\.0\.2\.0-192\.0\.2\.7 of older pool older/ });
  t.match(cond('self'), { status: 'True', reason: 'self_overlap', message: /spec\.blocks\[0\].*overlaps spec\.blocks\[1\]/ });
  t.equal(cond('same-time-a').status, 'False', 'same creation time: the name decides');
  t.equal(cond('same-time-b').status, 'True');
  t.equal(result.pools.get('newer')!.available, '0');
});

t.test('conflicts clear when the overlap goes; pool edits keep covered addresses', async (t) => {
  const ipam = new Ipam({ pharosIsDefaultClass: true });
  const older = pool({ name: 'older', created: '2024-01-01T00:00:00Z', blocks: ['192.0.2.0/30'], selector: { matchLabels: { p: 'old' } } });
  const newer = pool({ name: 'newer', created: '2024-01-02T00:00:00Z', blocks: ['192.0.2.0/29'], selector: { matchLabels: { p: 'new' } } });
  ipam.loadAll([older, newer], [svc({ name: 'n', labels: { p: 'new' } }), svc({ name: 'o', labels: { p: 'old' } }), svc({ name: 'o2', labels: { p: 'old' }, created: '2024-01-02T00:00:00Z' })]);
  t.equal(ipam.poolStatus('newer')!.conflicting, true);
  t.same((ipam.outcome('default/o') as { ingress: string[] }).ingress, ['192.0.2.0']);
  t.same((ipam.outcome('default/o2') as { ingress: string[] }).ingress, ['192.0.2.1']);
  const changes = ipam.upsertPool(pool({ name: 'newer', created: '2024-01-02T00:00:00Z', blocks: ['192.0.2.8/29'], selector: { matchLabels: { p: 'new' } } }));
  t.equal(ipam.poolStatus('newer')!.conflicting, false, 'overlap gone, conflict cleared');
  t.same((ipam.outcome('default/n') as { ingress: string[] }).ingress, ['192.0.2.8']);
  t.same([...changes.services], ['default/n'], 'only the service that gained an address changed');
  // Shrink the older pool: o2 (.1) is no longer covered and moves; o (.0) stays.
  ipam.upsertPool(pool({ name: 'older', created: '2024-01-01T00:00:00Z', blocks: ['192.0.2.0/32', '198.51.100.0/30'], selector: { matchLabels: { p: 'old' } } }));
  t.same((ipam.outcome('default/o') as { ingress: string[] }).ingress, ['192.0.2.0'], 'covered: kept');
  t.same((ipam.outcome('default/o2') as { ingress: string[] }).ingress, ['198.51.100.0'], 'uncovered: moved');
  ipam.deletePool('newer');
  t.same((ipam.outcome('default/n') as ServiceOutcome & { kind: 'managed' }).condition.reason, 'no_pool');
});

t.test('issue 17: a pool added, edited or re-created over a serving one moves no live address, whatever its creationTimestamp', async (t) => {
  const ingress = (ipam: Ipam, name: string) => (ipam.outcome(`default/${name}`) as ServiceOutcome & { kind: 'managed' }).ingress;
  const pools = new Map<string, IPPool>();
  const ipam = new Ipam({ pharosIsDefaultClass: true });
  const serving = pool({ name: 'serving', created: '2024-06-01T00:00:00Z', blocks: ['192.0.2.0/27'], selector: { matchLabels: { app: 'web' } } });
  ipam.loadAll([serving], [svc({ name: 'web-a', labels: { app: 'web' } }), svc({ name: 'web-b', labels: { app: 'web' }, created: '2024-01-02T00:00:00Z' })]);
  pools.set('serving', serving);
  t.same([ingress(ipam, 'web-a'), ingress(ipam, 'web-b')], [['192.0.2.0'], ['192.0.2.1']]);
  const agree = (what: string) => {
    const full = reconcile({ pools: pools.values(), services: [svc({ name: 'web-a', labels: { app: 'web' } }), svc({ name: 'web-b', labels: { app: 'web' }, created: '2024-01-02T00:00:00Z' })], previous: ipam.exportState() });
    t.same(full.state, ipam.exportState(), `${what}: the full reconcile agrees`);
  };

  // Older by creationTimestamp, overlapping, selecting other services: Cilium's rule makes
  // the serving pool the conflicting one; it hands out nothing more, but web-a and web-b stay.
  const intruder = pool({ name: 'intruder', created: '2020-01-01T00:00:00Z', blocks: ['192.0.2.0/26'], selector: { matchLabels: { app: 'other' } } });
  pools.set('intruder', intruder);
  ipam.upsertPool(intruder);
  t.equal(ipam.poolStatus('serving')!.conflicting, true, 'the serving pool is the newer one: conflicting');
  t.same([ingress(ipam, 'web-a'), ingress(ipam, 'web-b')], [['192.0.2.0'], ['192.0.2.1']], 'web-a and web-b keep .0 and .1');
  t.match((ipam.outcome('default/web-a') as ServiceOutcome & { kind: 'managed' }).condition, { reason: 'satisfied', message: 'assigned 192.0.2.0 (pool serving)' });
  t.equal(ipam.poolStatus('intruder')!.families.IPv4.used, '2', 'the kept addresses are not free in the pool that covers them');
  agree('older pool added');
  ipam.upsertService(svc({ name: 'other', labels: { app: 'other' } }));
  t.same(ingress(ipam, 'other'), ['192.0.2.2'], 'the winning pool hands out around the kept addresses');
  ipam.upsertService(svc({ name: 'web-c', labels: { app: 'web' }, created: '2024-01-03T00:00:00Z' }));
  t.same(ingress(ipam, 'web-c'), [], 'a conflicting pool hands out nothing new');
  ipam.deleteService('default/other');
  ipam.deleteService('default/web-c');

  // Deleted and re-created with the old timestamp, then with a new one: still nothing moves.
  pools.delete('intruder');
  ipam.deletePool('intruder');
  t.equal(ipam.poolStatus('serving')!.conflicting, false, 'the conflict clears');
  for (const created of ['2020-01-01T00:00:00Z', '2030-01-01T00:00:00Z']) {
    const again = pool({ name: 'intruder', created, blocks: ['192.0.2.0/26'], selector: { matchLabels: { app: 'other' } } });
    pools.set('intruder', again);
    ipam.upsertPool(again);
    t.same([ingress(ipam, 'web-a'), ingress(ipam, 'web-b')], [['192.0.2.0'], ['192.0.2.1']], `re-created at ${created}: nothing moved`);
    agree(`re-created at ${created}`);
  }

  // The serving pool edited to reserve its first address: .0 is no longer its to keep, but the
  // older intruder covers it — only if it selects web-a. It does not: web-a moves, as it must.
  const reserved = pool({ name: 'serving', created: '2024-06-01T00:00:00Z', blocks: ['192.0.2.0/27'], selector: { matchLabels: { app: 'web' } }, allowFirstLastIPs: false });
  pools.set('serving', reserved);
  ipam.upsertPool(reserved);
  t.not(ingress(ipam, 'web-a')[0], '192.0.2.0', 'no pool that selects web-a covers .0 any more');
  t.same(ingress(ipam, 'web-b'), ['192.0.2.1']);
});

t.test('stability: status is adopted before anything new; replays are deterministic', async (t) => {
  check(t, {
    name: 'adopt first',
    pools: [pool({ name: 'p', blocks: ['192.0.2.0/30'] })],
    services: [
      svc({ name: 'oldest-new', created: '2024-01-01T00:00:00Z' }),
      svc({ name: 'has-0', created: '2024-01-05T00:00:00Z', ingress: ['192.0.2.0'] }),
      svc({ name: 'has-upper', created: '2024-01-06T00:00:00Z', ingress: ['192.0.2.1'] }),
      svc({ name: 'stale', created: '2024-01-07T00:00:00Z', ingress: ['10.0.0.1'] }),
    ],
    want: {
      'oldest-new': { ingress: ['192.0.2.2'] },
      'has-0': { ingress: ['192.0.2.0'] },
      'has-upper': { ingress: ['192.0.2.1'] },
      stale: { ingress: ['192.0.2.3'], message: /assigned 192\.0\.2\.3/ },
    },
  });
  check(t, {
    name: 'the previous state beats a contested status claim',
    pools: [pool({ name: 'p', blocks: ['192.0.2.0/30'] })],
    previous: { version: 1, services: { 'default/holder': ['192.0.2.1'] } },
    services: [svc({ name: 'claimer', created: '2024-01-01T00:00:00Z', ingress: ['192.0.2.1'] }), svc({ name: 'holder', created: '2024-01-02T00:00:00Z' })],
    want: { holder: { ingress: ['192.0.2.1'] }, claimer: { ingress: ['192.0.2.0'] } },
  });
  const services = Array.from({ length: 12 }, (_, i) =>
    svc({ name: `s${i}`, created: `2024-01-0${1 + (i % 3)}T00:00:00Z`, policy: i % 4 === 0 ? 'PreferDualStack' : 'SingleStack', annotations: i % 5 === 0 ? { 'lb.pharos.io/sharing-key': 'k' } : {}, ports: [80 + i] }),
  );
  const pools = [open, pool({ name: 'second', blocks: ['198.51.100.0/30'], created: '2024-01-02T00:00:00Z' })];
  const once = reconcile({ pools, services });
  const reversed = reconcile({ pools: [...pools].reverse(), services: [...services].reverse() });
  t.same(reversed.state, once.state, 'input order does not matter');
  t.same([...reversed.services.entries()].sort(), [...once.services.entries()].sort());
});

t.test('bad input: a condition names the field and nothing else changes', async (t) => {
  const ips = (o: ServiceOutcome | undefined) => (o && o.kind !== 'leave-alone' ? o.ingress : undefined);
  const base = [svc({ name: 'a', ingress: ['192.0.2.1'] }), svc({ name: 'b', ingress: ['192.0.2.2'] })];
  const rows: [string, Service, RegExp][] = [
    ['unparsable lb.pharos.io/ips', svc({ name: 'a', ingress: ['192.0.2.1'], annotations: { 'lb.pharos.io/ips': '192.0.2.300' } }), /^metadata\.annotations\["lb\.pharos\.io\/ips"\]: "192\.0\.2\.300" is not an IP address.*; keeping 192\.0\.2\.1/],
    ['garbage loadBalancerIP', svc({ name: 'a', ingress: ['192.0.2.1'], loadBalancerIP: 'banana' }), /^spec\.loadBalancerIP: "banana" is not an IP address/],
    ['two IPv4 addresses', svc({ name: 'a', ingress: ['192.0.2.1'], annotations: { 'lbipam.cilium.io/ips': '192.0.2.1,192.0.2.3' } }), /lbipam\.cilium\.io\/ips.*two IPv4 addresses/],
    ['family the service does not want', svc({ name: 'a', ingress: ['192.0.2.1'], annotations: { 'lb.pharos.io/ips': '2001:db8::1' } }), /2001:db8::1 is IPv6 but the service is SingleStack IPv4/],
    ['bad cross-namespace list', svc({ name: 'a', ingress: ['192.0.2.1'], annotations: { 'lb.pharos.io/sharing-cross-namespace': 'Bad_NS' } }), /sharing-cross-namespace.*"Bad_NS" is not a namespace name/],
  ];
  const p = pool({ name: 'p', blocks: ['192.0.2.0/29'] });
  for (const [name, bad, message] of rows) {
    const result = reconcile({ pools: [p], services: [bad, base[1]!] });
    const a = result.services.get('default/a');
    t.match(a, { kind: 'managed', ingress: ['192.0.2.1'], condition: { status: 'False', reason: 'invalid_request', message } }, name);
    t.same(ips(result.services.get('default/b')), ['192.0.2.2'], `${name}: the other service is unaffected`);
  }

  const good = pool({ name: 'good', blocks: ['198.51.100.0/30'] });
  const badPools: [string, IPPool, RegExp][] = [
    ['malformed CIDR', pool({ name: 'bad', blocks: ['192.0.2.0/29', '192.0.2.64/33'] }), /spec\.blocks\[1\]\.cidr: "192\.0\.2\.64\/33" is not a CIDR: prefix length must be a number 0-32/],
    ['start after stop', pool({ name: 'bad', blocks: ['192.0.2.0/29', ['192.0.2.90', '192.0.2.80']] }), /spec\.blocks\[1\]\.stop: "192\.0\.2\.80" comes before start/],
    ['mixed families', pool({ name: 'bad', blocks: ['192.0.2.0/29', ['192.0.2.90', '2001:db8::1']] }), /spec\.blocks\[1\]\.stop: .* is IPv6 but start .* is IPv4/],
    ['garbage start', pool({ name: 'bad', blocks: ['192.0.2.0/29', ['x', '']] }), /spec\.blocks\[1\]\.start: "x" is not an IP address/],
    [
      'invalid selector operator',
      pool({ name: 'bad', blocks: ['192.0.2.0/29'], selector: { matchExpressions: [{ key: 'color', operator: 'Near' as never, values: ['blue'] }] } }),
      /spec\.serviceSelector\.matchExpressions\[0\]\.operator: "Near" is not a selector operator/,
    ],
  ];
  for (const [name, bad, message] of badPools) {
    const result = reconcile({ pools: [bad, good], services: [...base, svc({ name: 'c', created: '2024-02-01T00:00:00Z' })] });
    const invalid = result.pools.get('bad')!.conditions.find((c) => c.type === 'lb.pharos.io/InvalidSpec')!;
    t.match(invalid, { status: 'True', reason: 'invalid_spec', message }, name);
    t.same(ips(result.services.get('default/a')), ['192.0.2.1'], `${name}: a keeps its address in the valid block`);
    t.same(ips(result.services.get('default/b')), ['192.0.2.2'], `${name}: b too`);
    t.same(ips(result.services.get('default/c')), ['198.51.100.0'], `${name}: new services go to the valid pool`);
    t.equal(result.pools.get('good')!.conditions.find((c) => c.type === 'lb.pharos.io/InvalidSpec')!.status, 'False');
  }
});

t.test('an invalid request adopts the address its status shows once the holder goes, as the full reconcile does', async (t) => {
  const p0 = pool({ name: 'p0', blocks: ['192.0.2.16/31'] });
  const ipam = new Ipam({ pharosIsDefaultClass: true });
  ipam.loadAll([p0], [svc({ name: 'holder', annotations: { 'lb.pharos.io/ips': '192.0.2.17' } })]);
  const bad = svc({ name: 'bad', annotations: { 'lbipam.cilium.io/ips': '192.0.2.300' }, ingress: ['192.0.2.17'] });
  ipam.upsertService(bad);
  t.same((ipam.outcome('default/bad') as ServiceOutcome & { kind: 'managed' }).ingress, [], 'held by another: nothing');
  const before = ipam.exportState();
  ipam.deleteService('default/holder');
  t.same(ipam.exportState(), reconcile({ pools: [p0], services: [bad], previous: before }).state, 'incremental equals full');
  t.match(ipam.outcome('default/bad'), { ingress: ['192.0.2.17'], condition: { reason: 'invalid_request', message: /keeping 192\.0\.2\.17/ } });
});

t.test('pool status counts are exact for an IPv6 /64, and the pool list row renders', async (t) => {
  const p = pool({ name: 'dual', created: '2024-05-01T00:00:00Z', blocks: ['192.0.2.0/24', '2001:db8::/64'], allowFirstLastIPs: false });
  const result = reconcile({ pools: [p], services: [svc({ name: 'a', policy: 'RequireDualStack' })] });
  const status = result.pools.get('dual')!;
  t.same(status.families.IPv4, { total: '254', used: '1', available: '253' });
  t.same(status.families.IPv6, { total: String(2n ** 64n - 2n), used: '1', available: String(2n ** 64n - 3n) });
  t.equal(status.available, String(2n ** 64n - 3n + 253n));
  t.same(POOL_LIST_COLUMNS, ['NAME', 'DISABLED', 'CONFLICTING', 'IPS AVAILABLE', 'AGE']);
  t.same(poolListRow({ name: 'dual', ...status, createdAt: p.meta.creationTimestamp }, new Date('2024-05-03T04:00:00Z')), ['dual', 'false', 'False', String(2n ** 64n - 3n + 253n), '2d4h']);
  const now = new Date('2024-05-01T00:00:00Z');
  const ago = (s: number) => new Date(now.getTime() - s * 1000).toISOString();
  t.same(
    [5, 150, 600, 3 * 3600, 20 * 3600, 3 * 86400 + 3600, 45 * 86400, 800 * 86400].map((s) => formatAge(ago(s), now)),
    ['5s', '2m30s', '10m', '3h', '20h', '3d1h', '45d', '2y70d'],
  );
  t.equal(formatAge(undefined, now), '<unknown>');
});

t.test('a service whose sharing partner changes key loses the address to the earlier one', async (t) => {
  const p = pool({ name: 'p', blocks: ['192.0.2.0/30'] });
  const a = svc({ name: 'a', created: '2024-01-01T00:00:00Z', ports: [80], annotations: { 'lb.pharos.io/sharing-key': 'k' } });
  const b = svc({ name: 'b', created: '2024-01-02T00:00:00Z', ports: [81], annotations: { 'lb.pharos.io/sharing-key': 'k' } });
  const ipam = new Ipam({ pharosIsDefaultClass: true });
  ipam.loadAll([p], [a, b]);
  t.same(ipam.exportState().services, { 'default/a': ['192.0.2.0'], 'default/b': ['192.0.2.0'] });
  const before = ipam.exportState();
  const a2 = withStatus(svc({ name: 'a', created: '2024-01-01T00:00:00Z', ports: [80], annotations: { 'lb.pharos.io/sharing-key': 'other' } }), ['192.0.2.0'], null);
  const changes = ipam.upsertService(a2);
  t.same(ipam.exportState().services, { 'default/a': ['192.0.2.0'], 'default/b': ['192.0.2.1'] }, 'a keeps it, b moves');
  t.same([...changes.services], ['default/b'], 'a\'s outcome is unchanged; only b is reported');
  const full = reconcile({ pools: [p], services: [a2, b], previous: before });
  t.same(full.state, ipam.exportState(), 'same as the full reconcile');
  // The freed sharing index follows the new key: a third service with key "other" joins a.
  ipam.upsertService(svc({ name: 'c', created: '2024-01-03T00:00:00Z', ports: [82], annotations: { 'lb.pharos.io/sharing-key': 'other' } }));
  t.same(ipam.exportState().services['default/c'], ['192.0.2.0']);
});

t.test('a pool that selects the service by label wins over a catch-all pool', async (t) => {
  const catchAll = pool({ name: 'default-pool', created: '2024-01-01T00:00:00Z', blocks: ['198.51.100.0/26'] });
  const empireLater = pool({ name: 'empire', created: '2024-02-01T00:00:00Z', blocks: ['198.51.100.64/26', '2001:db8:e::/64'], selector: { matchLabels: { org: 'empire' } } });
  const result = reconcile({
    pools: [catchAll, empireLater],
    services: [
      svc({ name: 'deathstar', labels: { org: 'empire' }, policy: 'PreferDualStack', families: ['IPv4', 'IPv6'] }),
      svc({ name: 'xwing', labels: { org: 'rebels' } }),
    ],
  });
  const deathstar = result.services.get('default/deathstar');
  t.same(deathstar?.kind === 'managed' ? deathstar.ingress : [], ['198.51.100.64', '2001:db8:e::'], 'both families from the selecting pool');
  const xwing = result.services.get('default/xwing');
  t.same(xwing?.kind === 'managed' ? xwing.ingress : [], ['198.51.100.0'], 'others still use the catch-all pool');
});

t.test('special-purpose addresses are never handed out, whatever the pool covers', async (t) => {
  const got = (blocks: (string | [string, string])[], families: ('IPv4' | 'IPv6')[] = ['IPv4']): ServiceOutcome => reconcile({
    pools: [pool({ name: 'p', blocks })],
    services: [svc({ name: 's', families, ...(families.length > 1 ? { policy: 'RequireDualStack' as const } : {}) })],
  }).services.get('default/s')!;
  t.same((got(['0.0.0.0/0']) as { ingress: string[] }).ingress, ['1.0.0.0'], '0.0.0.0/0: not 0.0.0.0 (nor anything in 0.0.0.0/8)');
  t.same((got(['::/0'], ['IPv6']) as { ingress: string[] }).ingress, ['::2'], '::/0: neither :: nor ::1');
  for (const [blocks, family] of [[['127.0.0.0/30'], 'IPv4'], [['169.254.1.0/30'], 'IPv4'], [['224.0.0.0/30'], 'IPv4'], [[['255.255.255.255', '255.255.255.255']], 'IPv4'],
    [['fe80::/126'], 'IPv6'], [['ff02::/126'], 'IPv6'], [['::1/128'], 'IPv6']] as const) {
    const o = got(blocks as never, [family]) as ServiceOutcome & { kind: 'managed' };
    t.same(o.ingress, [], `${JSON.stringify(blocks)}: nothing to hand out`);
  }
  const status = reconcile({ pools: [pool({ name: 'lo', blocks: ['127.0.0.0/8', '198.51.100.0/30'] })], services: [] }).pools.get('lo')!;
  t.equal(status.families.IPv4.total, '4', 'counts leave them out too (the /30 alone)');
});
