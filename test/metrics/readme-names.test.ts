/**
 * Every metric the README's Metrics section names is in /metrics, with the
 * agent's modules registered the way the agent registers them: renaming or
 * dropping a family (the data-path ones are rendered by hand now) fails here.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { registry, renderMetrics } from '../../src/metrics/registry.js';
import { registerAgentMetrics } from '../../src/metrics/agent.js';
import { registerDatapathMetrics } from '../../src/metrics/datapath.js';
import { registerSocketLbMetrics } from '../../src/metrics/socket-lb.js';
import { registerDecapMetrics } from '../../src/metrics/dsr-backend.js';
import { startEventLoopMonitor } from '../../src/metrics/event-loop.js';
import { registerBgpMetrics } from '../../src/bgp/metrics.js';
import { parseExposition } from '../support/prom.js';

/** Backticked `pharos_…` names in the README's "## Metrics" section; `pharos_x_*` stands for a prefix. */
function readmeMetricNames(): string[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('\n## Metrics');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...new Set([...section.matchAll(/`(pharos_[a-z0-9_]*\*?)`/g)].map((m) => m[1]!))];
}

t.test('every metric the README lists is served', async (t) => {
  const names = readmeMetricNames();
  t.ok(names.length >= 25, `${names.length} names in the README's Metrics section`);
  registerAgentMetrics({
    counters: { gratuitousSent: { ipv4: 0, ipv6: 0 } }, pools: () => [], unsatisfiedReasons: () => [], notProgrammedReasons: () => [],
    l2Counts: () => ({ held: 0, refused: 0, awaitingFirst: 0 }), mapMemory: () => [],
  });
  const datapath = registerDatapathMetrics({ labels: () => ({ version: 0, frontends: new Map(), backends: new Map() }), mapFull: () => ({}) });
  registerSocketLbMetrics(() => undefined);
  registerDecapMetrics(() => undefined);
  registerBgpMetrics(registry, () => undefined);
  const loop = startEventLoopMonitor();
  t.teardown(() => {
    loop.stop();
    datapath.close();
  });
  // prom-client's own event-loop lag gauges read "Nan" until their monitor has a sample.
  await new Promise((r) => setTimeout(r, 200));
  const families = [...parseExposition(Buffer.concat(await renderMetrics(registry)).toString()).keys()];
  for (const name of names) {
    if (name.endsWith('*')) t.ok(families.some((f) => f.startsWith(name.slice(0, -1))), `${name} present`);
    else t.ok(families.includes(name), `${name} present`);
  }
});
