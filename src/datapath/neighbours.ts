/**
 * Keeps the kernel's neighbour table resolved for every backend's next hop,
 * so the XDP fast path (bpf_fib_lookup) finds a MAC from the first packet.
 *
 * Why: on a FIB miss for the neighbour (BPF_FIB_LKUP_RET_NO_NEIGH) the
 * data path can only hand the packet to the kernel, and a packet already
 * SNATed to the node's own address is then a "martian" (a local source
 * arriving from outside) and is dropped. A `managed` neighbour entry
 * (kernel ≥ 5.16, NTF_MANAGED — the same mechanism Cilium uses) makes the
 * kernel resolve the address at once and keep it REACHABLE by itself.
 *
 * How: incremental and batched, through rtnetlink in the native addon (no
 * process per backend). `sync(all)` (a start, a resync) diffs every wanted
 * backend against what the primer already knows; `change(added, removed)`
 * (one edit) looks only at the backends it names, so an edit at 80,000
 * backends costs its own few, not a walk of all of them. Only new backends
 * are looked up (one routeNextHops call for all of them, up to 10,000 per
 * call) and only next hops that gained their first user or lost their last
 * one are written (one neighboursSet call). Long loops yield to the event
 * loop. Next hops are reference-counted: backends behind one router share
 * its entry, and an address is wanted while any backend (address, port)
 * uses it. One batch runs at a time; calls that arrive meanwhile coalesce
 * into one follow-up. Nothing rejects: failures go to onError and are tried
 * again after `retryMs`, at the next call after that.
 */
import { isIP } from 'node:net';
import { addon, type NativeAddon, type NeighbourRequest, type RouteNextHop } from '../native/libbpf.js';

/** The two rtnetlink calls the primer makes: the addon's, or a test's. */
export type NeighbourNetlink = Pick<NativeAddon, 'routeNextHops' | 'neighboursSet'>;

export interface NeighbourPrimerOptions {
  /** Network namespace to act in (a path such as /run/netns/NAME); default: this process's. */
  netns?: string;
  /** Default: the native addon, loaded at the first batch. */
  netlink?: NeighbourNetlink;
  /** Wait before looking up again a backend without a route, or writing again a refused entry. */
  retryMs?: number;
  /** Milliseconds clock (tests). */
  now?: () => number;
  /** After a batch that changed which backends are reached through a gateway (offLink()). */
  onOffLinkChange?: () => void;
}

/** Routes appear and neighbours come back; a periodic sync picks them up this long after a failure. */
const DEFAULT_RETRY_MS = 30_000;
/**
 * Backends handled between two yields to the event loop: a first sync of
 * 50,000 backends would otherwise hold the JS thread for ~300 ms in one piece.
 */
const SLICE = 2000;
/**
 * Entries per addon call. Arguments and results of one call cross on the JS
 * thread in one piece (~1 ms per 1,000 entries), so a first sync of 50,000
 * backends goes as several calls, one after the other.
 */
const MAX_PER_CALL = 10_000;
/** Failures reported one by one per batch; the rest in one summary (a missing route can hit 50,000 backends). */
const REPORTED_PER_BATCH = 5;
/**
 * Managed entries count against the neighbour table's gc_thresh3 (1024 by
 * default, for all namespaces together); past it the kernel refuses new
 * ones with ENOBUFS (seen: 3,000 on-link next hops, 1,023 written).
 */
const TABLE_FULL_HINT = 'the kernel neighbour table is full: raise net.ipv4.neigh.default.gc_thresh3 / net.ipv6.neigh.default.gc_thresh3 above the number of next hops';

interface NextHop {
  /** Its key in `hops` (address%ifindex). */
  key: string;
  address: string;
  ifindex: number;
  dev: string;
  /** Backends whose route goes through this hop. */
  users: Set<string>;
  /** The kernel holds a managed entry for it. */
  primed: boolean;
  /** After a refused write: not before this time again. */
  retryAt: number;
}

/** Failures of one batch, reported when it ends: a few one by one, the rest counted. */
class BatchFailures {
  private readonly failures: Array<[string, string]> = [];

  add(backend: string, message: string): void {
    this.failures.push([backend, message]);
  }

  report(to: (backend: string, message: string) => void): void {
    for (const [backend, message] of this.failures.slice(0, REPORTED_PER_BATCH)) to(backend, message);
    const rest = this.failures.length - REPORTED_PER_BATCH;
    if (rest > 0) to('', `${rest} more like these in this batch, the last: ${this.failures.at(-1)![1]}`);
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** `call` on consecutive parts of `items` (at most MAX_PER_CALL), then `apply` to each result, yielding now and then. */
async function callInParts<T, R>(items: readonly T[], call: (part: T[]) => Promise<R[]>, apply: (item: T, result: R) => void): Promise<void> {
  for (let from = 0; from < items.length; from += MAX_PER_CALL) {
    const part = items.slice(from, from + MAX_PER_CALL);
    const results = await call(part);
    for (let i = 0; i < part.length; i++) {
      if (i > 0 && i % SLICE === 0) await yieldToEventLoop();
      apply(part[i]!, results[i]!);
    }
  }
}

function withHint(error: string): string {
  return error.endsWith('(ENOBUFS)') ? `${error}; ${TABLE_FULL_HINT}` : error;
}

/**
 * What the primer knows of a backend: the next hop its route goes through;
 * a number — no usable route, look it up again from this time on; or null —
 * it needs no neighbour (a local address, or not an address at all). A
 * value, not an object per backend: there are 50,000 of them at scale.
 */
type BackendState = NextHop | number | null;

function hopKey(address: string, ifindex: number): string {
  return `${address}%${ifindex}`;
}

export class NeighbourPrimer {
  private readonly hops = new Map<string, NextHop>();
  private readonly backends = new Map<string, BackendState>();
  /** Hops whose entry may need a write: new, unused, or refused earlier. */
  private readonly unsettled = new Set<string>();
  /** Wanted addresses, with how many backends (address, port) use each. */
  private readonly wanted = new Map<string, number>();
  /** The next batch compares every wanted address with every known one (sync, or a batch that failed whole). */
  private wholeDiff = false;
  /** Addresses whose wanted count went to or from zero since the last batch took them. */
  private readonly dirty = new Set<string>();
  /** Backends without a usable route (state is a retry time), and the earliest of those times. */
  private readonly retrying = new Set<string>();
  private nextRetryAt = Infinity;
  private running: Promise<void> | undefined;
  private followUp: Promise<void> | undefined;
  /** After a whole batch failed (namespace, socket, addon): no batch before this time. */
  private pausedUntil = 0;
  private netlink: NeighbourNetlink | undefined;
  /** Backends whose route goes through a gateway, with it: L2 dispatch (DSR) cannot reach them. */
  private readonly offLinkGateways = new Map<string, string>();
  private offLinkChanged = false;
  private readonly onOffLinkChange: (() => void) | undefined;
  private readonly netns: string | undefined;
  private readonly retryMs: number;
  private readonly now: () => number;

  /** `onError(backend, message)`: backend is '' when a failure concerns no single backend. */
  constructor(
    private readonly onError: (backend: string, message: string) => void = () => undefined,
    options: NeighbourPrimerOptions = {},
  ) {
    this.netlink = options.netlink;
    this.netns = options.netns;
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.now = options.now ?? Date.now;
    this.onOffLinkChange = options.onOffLinkChange;
  }

  /** Backend address → the gateway its route goes through, for every backend that is not on a segment of this node. */
  offLink(): ReadonlyMap<string, string> {
    return this.offLinkGateways;
  }

  private setOffLink(backend: string, gateway: string | undefined): void {
    if (this.offLinkGateways.get(backend) === gateway) return;
    if (gateway === undefined) this.offLinkGateways.delete(backend);
    else this.offLinkGateways.set(backend, gateway);
    this.offLinkChanged = true;
  }

  /**
   * Make the set of primed backends equal to `backends` (addresses). Cheap
   * when little changed; resolves when a batch covering this set is done;
   * never rejects.
   */
  sync(backends: Iterable<string>): Promise<void> {
    this.wanted.clear();
    for (const b of backends) this.wanted.set(b, (this.wanted.get(b) ?? 0) + 1);
    this.wholeDiff = true;
    this.dirty.clear();
    return this.schedule();
  }

  /**
   * Backends added and removed since the last call (addresses, once per
   * backend: an address two backends share is counted twice). Costs the
   * backends named, not all of them; resolves like sync.
   */
  change(added: Iterable<string>, removed: Iterable<string>): Promise<void> {
    for (const b of added) {
      const n = this.wanted.get(b) ?? 0;
      this.wanted.set(b, n + 1);
      if (n === 0) this.dirty.add(b);
    }
    for (const b of removed) {
      const n = this.wanted.get(b) ?? 0;
      if (n > 1) {
        this.wanted.set(b, n - 1);
        continue;
      }
      this.wanted.delete(b);
      if (n === 1) this.dirty.add(b);
    }
    return this.schedule();
  }

  private schedule(): Promise<void> {
    if (this.running) {
      this.followUp ??= this.running.then(() => this.startBatch());
      return this.followUp;
    }
    return this.startBatch();
  }

  /** Next hops with a managed entry, as `address%dev`. */
  primed(): string[] {
    return [...this.hops.values()].filter((h) => h.primed).map((h) => `${h.address}%${h.dev}`);
  }

  private startBatch(): Promise<void> {
    this.followUp = undefined;
    // What this batch looks at: everything, or the addresses named since the last one.
    const scope = this.wholeDiff ? undefined : [...this.dirty];
    this.wholeDiff = false;
    this.dirty.clear();
    const batch: Promise<void> = this.runBatch(scope)
      .catch((err: unknown) => {
        // What this batch took is not done: the next one compares everything.
        this.wholeDiff = true;
        this.nextRetryAt = 0;
        this.pausedUntil = this.now() + this.retryMs;
        this.report('', `neighbour priming failed, next try in ${this.retryMs / 1000} s: ${err instanceof Error ? err.message : String(err)}`);
      })
      .finally(() => {
        if (this.running === batch) this.running = undefined;
      });
    this.running = batch;
    return batch;
  }

  /** `scope`: the addresses to look at (undefined: all of them). */
  private async runBatch(scope: readonly string[] | undefined): Promise<void> {
    const now = this.now();
    if (now < this.pausedUntil) {
      this.wholeDiff = true;
      return;
    }
    const failures = new BatchFailures();
    try {
      if (scope) {
        for (const b of scope) if (!this.wanted.has(b)) this.forget(b);
      } else {
        await this.forgetRemoved();
      }
      const lookups = await this.toLookUp(scope ?? this.wanted.keys(), now, failures);
      if (lookups.length === 0 && !this.hasNeighbourWork(now)) return;
      this.netlink ??= addon();
      const netlink = this.netlink;
      await callInParts(lookups, (part) => netlink.routeNextHops(part, this.netns),
        (backend, route) => this.settle(backend, route, now, failures));
      await this.writeNeighbours(netlink, now, failures);
    } finally {
      failures.report((backend, message) => this.report(backend, message));
      if (this.offLinkChanged) {
        this.offLinkChanged = false;
        try {
          this.onOffLinkChange?.();
        } catch (err) {
          this.report('', `off-link backend report failed: ${(err as Error).message}`);
        }
      }
    }
  }

  /** Drops every backend no longer wanted. */
  private async forgetRemoved(): Promise<void> {
    let seen = 0;
    // Only this batch changes `backends`; a Map iterator survives the deletes.
    for (const backend of this.backends.keys()) {
      if (++seen % SLICE === 0) await yieldToEventLoop();
      if (!this.wanted.has(backend)) this.forget(backend);
    }
  }

  /** Drops one backend; a hop left without users becomes unsettled. */
  private forget(backend: string): void {
    const state = this.backends.get(backend);
    this.backends.delete(backend);
    this.retrying.delete(backend);
    this.setOffLink(backend, undefined);
    if (state === null || state === undefined || typeof state === 'number') return;
    state.users.delete(backend);
    if (state.users.size === 0) this.unsettled.add(state.key);
  }

  /** Of `candidates`, the wanted backends never looked up; and every backend due for another try. */
  private async toLookUp(candidates: Iterable<string>, now: number, failures: BatchFailures): Promise<string[]> {
    const out: string[] = [];
    const chosen = new Set<string>();
    let seen = 0;
    if (now >= this.nextRetryAt) {
      // Due retries, whatever the scope (a whole diff would meet them anyway).
      this.nextRetryAt = Infinity;
      for (const backend of this.retrying) {
        if (++seen % SLICE === 0) await yieldToEventLoop();
        const state = this.backends.get(backend);
        if (typeof state !== 'number') continue;
        if (state <= now) {
          out.push(backend);
          chosen.add(backend);
        } else {
          this.nextRetryAt = Math.min(this.nextRetryAt, state);
        }
      }
    }
    for (const backend of candidates) {
      if (++seen % SLICE === 0) await yieldToEventLoop();
      if (!this.wanted.has(backend) || chosen.has(backend)) continue;
      const state = this.backends.get(backend);
      if (state === undefined) {
        // The addon refuses the whole call for one bad address: keep it out.
        if (isIP(backend) === 0 || backend.includes('%')) {
          this.backends.set(backend, null);
          failures.add(backend, `backend address '${backend}' is not an IPv4 or IPv6 address; not primed`);
          continue;
        }
        out.push(backend);
      }
    }
    return out;
  }

  /** Records where a backend's route goes; a unicast route through an interface needs its next hop primed. */
  private settle(backend: string, route: RouteNextHop, now: number, failures: BatchFailures): void {
    if (route.type === 'unicast' && route.ifindex !== undefined && route.dev !== 'lo') {
      const address = route.gateway ?? backend;
      const key = hopKey(address, route.ifindex);
      let hop = this.hops.get(key);
      if (!hop) {
        hop = { key, address, ifindex: route.ifindex, dev: route.dev ?? String(route.ifindex), users: new Set(), primed: false, retryAt: now };
        this.hops.set(key, hop);
        this.unsettled.add(key);
      }
      hop.users.add(backend);
      this.backends.set(backend, hop);
      this.retrying.delete(backend);
      this.setOffLink(backend, route.gateway);
      return;
    }
    if (route.type === 'unreachable' || route.error !== undefined) {
      if (!this.backends.has(backend)) {
        failures.add(backend, `no usable route to backend ${backend} (${route.error ?? route.type}); next hop not primed, next try in ${this.retryMs / 1000} s`);
      }
      this.backends.set(backend, now + this.retryMs);
      this.retrying.add(backend);
      this.nextRetryAt = Math.min(this.nextRetryAt, now + this.retryMs);
      return;
    }
    // Local (a backend on this node), broadcast, multicast: no neighbour to keep.
    this.setOffLink(backend, undefined);
    this.backends.set(backend, null);
    this.retrying.delete(backend);
  }

  private hasNeighbourWork(now: number): boolean {
    for (const key of this.unsettled) {
      const hop = this.hops.get(key);
      if (!hop || hop.users.size === 0 || hop.primed || hop.retryAt <= now) return true;
    }
    return false;
  }

  /** One neighboursSet call: manage hops that gained users, release those that lost all. */
  private async writeNeighbours(netlink: NeighbourNetlink, now: number, failures: BatchFailures): Promise<void> {
    const writes: Array<{ key: string; hop: NextHop; request: NeighbourRequest }> = [];
    for (const key of this.unsettled) {
      const hop = this.hops.get(key);
      if (!hop) {
        this.unsettled.delete(key);
      } else if (hop.users.size === 0 && !hop.primed) {
        this.hops.delete(key);
        this.unsettled.delete(key);
      } else if (hop.users.size === 0) {
        writes.push({ key, hop, request: { address: hop.address, ifindex: hop.ifindex, managed: false } });
      } else if (hop.primed) {
        this.unsettled.delete(key); // a user came back before the release
      } else if (hop.retryAt <= now) {
        writes.push({ key, hop, request: { address: hop.address, ifindex: hop.ifindex, managed: true } });
      }
    }
    await callInParts(writes, (part) => netlink.neighboursSet(part.map((w) => w.request), this.netns), ({ key, hop, request }, result) => {
      if (!request.managed) {
        this.hops.delete(key);
        this.unsettled.delete(key);
        if (result.error !== undefined) failures.add(hop.address, `cannot release the managed neighbour ${hop.address} on ${hop.dev}: ${result.error}`);
      } else if (result.error === undefined) {
        hop.primed = true;
        this.unsettled.delete(key);
      } else {
        hop.retryAt = now + this.retryMs;
        const [firstUser] = hop.users;
        failures.add(firstUser ?? hop.address, `cannot add a managed neighbour for ${hop.address} on ${hop.dev} (${hop.users.size} backends use it): ${withHint(result.error)}`);
      }
    });
  }

  private report(backend: string, message: string): void {
    try {
      this.onError(backend, message);
    } catch {
      // A throwing callback must not stop priming nor become an unhandled rejection.
    }
  }
}
