/**
 * Whether a node is being drained for maintenance, from its Node object
 * (issue 18 item 7): labelled `lb.pharos.io/drain` (any value, even empty
 * or "false": the label's presence is the signal, as with kubectl's own
 * node labels), or cordoned (`spec.unschedulable: true`, what `kubectl
 * cordon` and `kubectl drain` set, or its taint
 * `node.kubernetes.io/unschedulable`). A draining node hands its L2
 * addresses to other nodes before it stops answering and sends its BGP
 * routes with GRACEFUL_SHUTDOWN before withdrawing them.
 */
import type { Node } from './types.js';

export const DRAIN_LABEL = 'lb.pharos.io/drain';
export const UNSCHEDULABLE_TAINT = 'node.kubernetes.io/unschedulable';

export type DrainReason = 'label' | 'cordoned';

/** Why `node` is draining, or undefined when it is not (or is unknown). */
export function drainReason(node: Node | undefined): DrainReason | undefined {
  if (!node) return undefined;
  if (node.meta.labels && DRAIN_LABEL in node.meta.labels) return 'label';
  if (node.unschedulable || node.taintKeys?.includes(UNSCHEDULABLE_TAINT)) return 'cordoned';
  return undefined;
}

export function describeDrain(reason: DrainReason): string {
  return reason === 'label' ? `labelled ${DRAIN_LABEL}` : 'cordoned (spec.unschedulable / node.kubernetes.io/unschedulable)';
}
