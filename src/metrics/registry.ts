/**
 * One prom-client registry for the whole agent. Each module that counts
 * owns its metrics and registers them here (`registry`); values that live in
 * BPF maps are read when Prometheus scrapes, never polled. Families with
 * tens of thousands of series (the data path's per-frontend and per-backend
 * counters) are rendered as text by their owner (`addTextRenderer`) and
 * appended to prom-client's output (`renderMetrics`).
 */
import client, { type Registry } from 'prom-client';

export const registry = new client.Registry();
registry.setDefaultLabels({});
client.collectDefaultMetrics({ register: registry, prefix: 'pharos_' });

/** A counter registered here, with its label names typed. */
function counter<L extends string>(name: string, help: string, labelNames: readonly L[]): client.Counter<L> {
  return new client.Counter({ name, help, labelNames, registers: [registry] });
}

/** A gauge registered here, with its label names typed. */
function gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): client.Gauge<L> {
  return new client.Gauge({ name, help, labelNames, registers: [registry] });
}

export const reconcileDuration = new client.Histogram({
  name: 'pharos_reconcile_duration_seconds',
  help: 'Time a controller takes to reconcile its desired state with its sink',
  labelNames: ['controller'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
});

export const reconcileErrors = counter('pharos_reconcile_errors_total', 'Reconciliations that failed, by controller', ['controller']);

export const configProblems = gauge('pharos_config_problems', 'Objects currently rejected by validation (the last good version stays in force)', ['source']);

export const manifestsRefused = counter('pharos_manifests_refused_total', 'Manifest files refused unread (file_too_large, total_too_large, too_many_files); counted once per file and size', ['reason']);

export const k8sApiWrites = counter('pharos_k8s_api_writes_total', 'Writes to the Kubernetes API, by resource and verb', ['resource', 'verb']);

export const xdpAttached = gauge('pharos_xdp_attached', 'XDP program attached, by interface and mode (native or generic; --xdp-mode auto chooses per interface, the log and pharos status say why)', ['interface', 'mode']);

export const datapathAttached = gauge('pharos_datapath_attached', 'The data path is in place on the interface (1): the pharos XDP program attached in the mode chosen, and its tc egress program; 0 while it is not (the node is then not ready and draws no traffic)', ['interface']);

export const datapathReattach = counter('pharos_datapath_reattach_total', 'Programs (xdp, tc_egress) the agent found gone from an interface and attached again', ['interface', 'program']);

export const datapathPinRepairs = counter('pharos_datapath_pin_repairs_total', 'Pinned maps found gone from the pin directory and pinned again', ['map']);

/** Times `fn` into pharos_reconcile_duration_seconds and counts its failure. */
export async function timeReconcile<T>(controller: string, fn: () => Promise<T> | T): Promise<T> {
  const end = reconcileDuration.startTimer({ controller });
  try {
    return await fn();
  } catch (err) {
    reconcileErrors.inc({ controller });
    throw err;
  } finally {
    end();
  }
}

/** Renders whole families as exposition text, in Buffer chunks (see exposition.ts). */
export type TextRenderer = () => Promise<Buffer[]>;

const textRenderers = new WeakMap<Registry, Set<TextRenderer>>();

/** Appends a renderer's families to `reg`'s output; returns the function that removes it. */
export function addTextRenderer(reg: Registry, render: TextRenderer): () => void {
  let set = textRenderers.get(reg);
  if (!set) textRenderers.set(reg, (set = new Set()));
  set.add(render);
  return () => set.delete(render);
}

/** The whole /metrics document of `reg` as chunks: prom-client's families, then the text renderers'. */
export async function renderMetrics(reg: Registry): Promise<Buffer[]> {
  const renderers = [...(textRenderers.get(reg) ?? [])];
  const [own, ...rendered] = await Promise.all([reg.metrics(), ...renderers.map((r) => r())]);
  // prom-client separates families with a blank line and ends with one newline; so do we.
  const blankLine = Buffer.from('\n');
  return [Buffer.from(own), ...rendered.flatMap((chunks) => (chunks.length ? [blankLine, ...chunks] : []))];
}

export { client };
