/**
 * The agent's one reconcile loop: store changes are sorted to the
 * controllers that read their kind (a Lease renewal several times a second
 * must not re-sync the data path), accumulated per controller, and played
 * in passes debounced by a few milliseconds, one pass at a time, every
 * controller in order. A controller that fails is logged and looked at
 * again, whole, on the next pass. Tests drive single controllers through
 * this same loop.
 */
import type { Store, StoreChange } from '../store/store.js';
import { timeReconcile } from '../metrics/registry.js';
import { PendingChanges, type AgentController } from '../store/controller.js';

export interface ReconcileLoopOptions {
  store: Store;
  /** Act only on a fully listed world (Kubernetes mode: a half-listed one would release addresses and frontends). */
  requireSynced: boolean;
  /** Debounce of a pass after a change, ms. */
  debounceMs?: number;
  /** Called just before a controller's turn in a pass (the agent nudges L2 when programmed states moved). */
  beforeTurn?: (c: AgentController) => void;
  onError: (c: AgentController, err: Error) => void;
}

export class ReconcileLoop {
  readonly controllers: AgentController[] = [];
  private readonly pending = new Map<AgentController, PendingChanges>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  private started = false;

  constructor(private readonly opts: ReconcileLoopOptions) {}

  /**
   * Adds a controller; its first pass looks at everything. No pass is
   * scheduled here: the agent adds its controllers before its source has
   * loaded, and a pass over an empty store would have the IPAM start from
   * nothing instead of its saved allocations. The first pass comes with the
   * first change or the caller's `schedule(0)`.
   */
  add(c: AgentController): void {
    this.controllers.push(c);
    this.pendingFor(c);
  }

  /** Follows the store's changes and the end of its first listing (the first pass is the caller's `schedule(0)` or the next change). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.opts.store.on('change', (changes: StoreChange[]) => this.onStoreChange(changes));
    this.opts.store.on('synced', () => {
      for (const c of this.controllers) this.pendingFor(c).everything();
      this.schedule();
    });
  }

  /** A full pass of one controller (it asked, or its inputs changed in a way change keys do not say). */
  markDirty(c: AgentController): void {
    this.pendingFor(c).everything();
    this.schedule();
  }

  /** A pass of one controller with no new changes (it has work of its own left, e.g. retries). */
  poke(c: AgentController): void {
    this.pendingFor(c).poke();
    this.schedule();
  }

  schedule(delay = this.opts.debounceMs ?? 2): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.pass().finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      });
    }, delay);
  }

  /** One pass of every controller whose inputs changed (all of them on the first pass). */
  async pass(): Promise<void> {
    const store = this.opts.store;
    if (this.opts.requireSynced && !store.synced) return;
    for (const c of this.controllers) {
      this.opts.beforeTurn?.(c);
      const pending = this.pendingFor(c);
      if (pending.empty) continue;
      const changes = pending.take();
      await timeReconcile(c.name, () => c.reconcile(store.snapshot(), changes)).catch((err: unknown) => {
        this.opts.onError(c, err as Error);
        this.pendingFor(c).everything();
      });
    }
  }

  /** No more passes; waits for one in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private pendingFor(c: AgentController): PendingChanges {
    let p = this.pending.get(c);
    if (!p) this.pending.set(c, (p = new PendingChanges()));
    return p;
  }

  private onStoreChange(changes: StoreChange[]): void {
    let any = false;
    for (const c of this.controllers) {
      for (const ch of changes) {
        if (c.kinds !== 'all' && !c.kinds.has(ch.kind)) continue;
        this.pendingFor(c).add(ch.kind, ch.key);
        any = true;
      }
    }
    if (any) this.schedule();
  }
}
