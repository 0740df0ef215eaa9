/**
 * `npm run bench:ipam`: the LB IPAM at scale.
 *
 * 10,000 LoadBalancer services over 20 pools (10 IPv4 /20s, 10 IPv6 /64s;
 * single-stack v4 and v6, PreferDualStack, some requested addresses and some
 * sharing keys). Measures one full reconcile from nothing (median of 5), then
 * churns 10% of the services one change at a time through the incremental
 * path (half deleted, half created, each followed by the status echo a real
 * API server would send), and the process's peak RSS.
 *
 * Writes bench/results/ipam.json:
 *   {"services": 10000, "pools": 20, "full_reconcile_ms": n, "single_change_ms": n, "peak_rss_mb": n}
 * single_change_ms is the mean over the churn; percentiles are printed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Ipam, reconcile, type ServiceOutcome } from '../src/ipam/allocator.js';
import type { IPFamily, IPFamilyPolicy, IPPool, Service } from '../src/model/types.js';
import { modelService } from '../src/lab/manifests.js';
import { writeBenchChart } from './lib/bench-charts.js';

const SERVICES = 10_000;
const POOLS = 20;
const GROUPS = 10;

function makePool(i: number): IPPool {
  const v6 = i >= POOLS / 2;
  const group = i % GROUPS;
  return {
    kind: 'LoadBalancerIPPool',
    meta: { name: `pool-${i}`, creationTimestamp: `2024-01-01T00:00:${String(i).padStart(2, '0')}Z`, labels: {}, annotations: {} },
    flavor: 'pharos',
    blocks: [v6 ? { cidr: `2001:db8:${group.toString(16)}::/64` } : { cidr: `198.18.${group * 16}.0/20` }],
    serviceSelector: { matchLabels: {}, matchExpressions: [{ key: 'tenant', operator: 'In', values: [`t${group}`] }] },
    disabled: false,
    allowFirstLastIPs: i % 2 === 0,
  };
}

function makeService(n: number): Service {
  const group = n % GROUPS;
  const kind = n % 10;
  const families: IPFamily[] = kind < 6 ? ['IPv4'] : kind < 8 ? ['IPv6'] : ['IPv4', 'IPv6'];
  const policy: IPFamilyPolicy = kind < 8 ? 'SingleStack' : 'PreferDualStack';
  const annotations: Record<string, string> = {};
  // A few ask for a specific address high in their tenant's block, a few share.
  if (n % 97 === 0) annotations['lb.pharos.io/ips'] = `198.18.${group * 16 + 15}.${(n / 97) % 250}`;
  if (n % 53 === 0) annotations['lb.pharos.io/sharing-key'] = `share-${group}`;
  return modelService({
    name: `svc-${n}`,
    namespace: `ns-${n % 50}`,
    creationTimestamp: new Date(Date.UTC(2024, 0, 1) + n * 1000).toISOString().replace('.000Z', 'Z'),
    labels: { tenant: `t${group}`, app: `app-${n}` },
    annotations,
  }, {
    ipFamilies: families,
    ipFamilyPolicy: policy,
    ports: [{ name: 'p', protocol: 'TCP', port: 1000 + (n % 1000), targetPort: 8080 }],
  });
}

function echo(s: Service, o: ServiceOutcome | undefined): Service {
  if (!o || o.kind !== 'managed') return s;
  return { ...s, status: { ingress: o.ingress.map((ip) => ({ ip })), conditions: [o.condition] } };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

function main(): void {
  const pools = Array.from({ length: POOLS }, (_, i) => makePool(i));
  const services = Array.from({ length: SERVICES }, (_, n) => makeService(n));

  const fullTimes: number[] = [];
  const fullCpu: number[] = [];
  for (let run = 0; run < 5; run++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    reconcile({ pools, services });
    fullTimes.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    fullCpu.push((c.user + c.system) / 1000);
  }
  fullTimes.sort((a, b) => a - b);

  const ipam = new Ipam({ pharosIsDefaultClass: true });
  ipam.loadAll(pools, services);
  const live = new Map(services.map((s) => [`${s.meta.namespace}/${s.meta.name}`, echo(s, ipam.outcome(`${s.meta.namespace}/${s.meta.name}`))]));
  for (const s of live.values()) ipam.upsertService(s);

  const churn = SERVICES / 10;
  const changeTimes: number[] = [];
  let next = SERVICES;
  for (let i = 0; i < churn; i++) {
    if (i % 2 === 0) {
      const victim = (i * 7919) % SERVICES;
      const key = `ns-${victim % 50}/svc-${victim}`;
      if (!live.has(key)) continue;
      const t0 = performance.now();
      ipam.deleteService(key);
      changeTimes.push(performance.now() - t0);
      live.delete(key);
    } else {
      const s = makeService(next++);
      const key = `${s.meta.namespace}/${s.meta.name}`;
      const t0 = performance.now();
      ipam.upsertService(s);
      changeTimes.push(performance.now() - t0);
      const echoed = echo(s, ipam.outcome(key));
      const t1 = performance.now();
      ipam.upsertService(echoed);
      changeTimes.push(performance.now() - t1);
      live.set(key, echoed);
    }
  }
  changeTimes.sort((a, b) => a - b);
  const mean = changeTimes.reduce((a, b) => a + b, 0) / changeTimes.length;
  const satisfied = [...ipam.allOutcomes().values()].filter((o) => o.kind === 'managed' && o.condition.reason === 'satisfied').length;

  const result = {
    services: SERVICES,
    pools: POOLS,
    full_reconcile_ms: round(fullTimes[2]!),
    single_change_ms: round(mean),
    peak_rss_mb: round(process.resourceUsage().maxRSS / 1024),
  };
  const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'ipam.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result)}\n`);
  writeBenchChart('ipam', dirname(out));
  console.log(JSON.stringify(result));
  console.log(
    `full reconcile wall ms (sorted): ${fullTimes.map((x) => x.toFixed(1)).join(', ')}; process CPU ms per run: ${fullCpu.map((x) => x.toFixed(0)).join(', ')}; ` +
      `${changeTimes.length} single changes: mean ${mean.toFixed(3)} ms, p50 ${percentile(changeTimes, 50).toFixed(3)}, ` +
      `p99 ${percentile(changeTimes, 99).toFixed(3)}, max ${changeTimes[changeTimes.length - 1]!.toFixed(3)} ms; ` +
      `${satisfied} services satisfied`,
  );
}

main();
