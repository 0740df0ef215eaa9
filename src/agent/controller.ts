/**
 * What the agent asks of each controller (IPAM, data path, L2, BGP, ...):
 * the kinds of store objects it reads, `reconcile(snapshot)` (desired =
 * f(snapshot), then apply the difference to its own sink) and `stop()`.
 * The agent runs one reconcile loop and calls a controller only when a kind
 * it reads changed (lease renewals arrive several times a second and must
 * not re-sync the data path). A controller that needs time-driven work
 * (lease expiry, renewals) keeps its own timers and asks for a pass with
 * `requestReconcile`.
 *
 * Plugging in BGP is one object:
 *   { name: 'bgp', kinds: new Set(['Service', 'BGPPeeringPolicy', 'Node', 'Secret']),
 *     reconcile: () => bgpController.reconcile(), stop: () => speaker.stop() }
 */
import type { Kind } from '../model/types.js';
import type { Snapshot } from '../store/store.js';

export interface AgentController {
  readonly name: string;
  /** Kinds whose changes call reconcile; 'all' for every change. */
  readonly kinds: ReadonlySet<Kind> | 'all';
  reconcile(snapshot: Snapshot): Promise<void> | void;
  stop(): Promise<void> | void;
}
