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
 * src/agent/reconcile-loop.ts runs them; src/bgp/controller.ts is a small
 * example of the shape.
 */
import type { Kind } from '../model/types.js';
import type { SnapshotOf } from './store.js';

/**
 * What changed since a controller's last pass: keys by kind, or `all` (the
 * first pass, a resync, or a relist) when the controller must look at
 * everything. Controllers that recompute from the whole snapshot ignore it.
 */
export interface ChangeSet {
  all: boolean;
  keys: ReadonlyMap<Kind, ReadonlySet<string>>;
}

/**
 * `K`: the kinds the controller reads. Its reconcile gets only that part of
 * the snapshot (SnapshotOf), so what it reacts to and what it reads cannot
 * drift apart.
 */
export interface AgentController<K extends Kind = Kind> {
  readonly name: string;
  /** Kinds whose changes call reconcile; 'all' for every change. */
  readonly kinds: ReadonlySet<K> | 'all';
  reconcile(snapshot: SnapshotOf<K>, changes: ChangeSet): Promise<void> | void;
  stop(): Promise<void> | void;
}

/** Accumulates the changes a controller has not seen yet. */
export class PendingChanges {
  private all = true;
  private keys = new Map<Kind, Set<string>>();

  add(kind: Kind, key: string): void {
    if (this.all) return;
    let set = this.keys.get(kind);
    if (!set) this.keys.set(kind, (set = new Set()));
    set.add(key);
    // Past this many keys a full pass is cheaper than tracking them.
    if (set.size > 100_000) this.everything();
  }

  everything(): void {
    this.all = true;
    this.keys.clear();
  }

  /** A pass with no new changes (the controller has work of its own left, e.g. retries). */
  poke(): void {
    this.poked = true;
  }

  private poked = false;

  get empty(): boolean {
    return !this.all && !this.poked && this.keys.size === 0;
  }

  /** The accumulated set, and start a new one. */
  take(): ChangeSet {
    const out: ChangeSet = { all: this.all, keys: this.keys };
    this.all = false;
    this.poked = false;
    this.keys = new Map();
    return out;
  }
}
