/**
 * v1 Node: labels, addresses and unschedulable, for node selectors, BGP
 * router IDs and drain.
 */
import { type Context, readMeta } from './common.js';
import type { Node, NodeAddress } from '../types.js';

export function parseNodeObject(ctx: Context): Node {
  const meta = readMeta(ctx, 'cluster');
  const addresses: NodeAddress[] = ctx.root
    .get('status')
    .get('addresses')
    .list()
    .map((r) => ({ type: r.get('type').nonEmptyString(), address: r.get('address').nonEmptyString() }));
  // Read for the drain hand-off only (src/model/drain.ts), leniently: a malformed field there must not lose the Node.
  const spec = ctx.root.get('spec').value as { unschedulable?: unknown; taints?: unknown } | null | undefined;
  const unschedulable = spec?.unschedulable === true;
  const taintKeys = Array.isArray(spec?.taints)
    ? spec.taints.map((t: unknown) => (t as { key?: unknown } | null)?.key).filter((k): k is string => typeof k === 'string')
    : [];
  return { kind: 'Node', meta, addresses, ...(unschedulable ? { unschedulable } : {}), ...(taintKeys.length ? { taintKeys } : {}) };
}
