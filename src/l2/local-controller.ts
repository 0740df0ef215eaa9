/**
 * The L2 controller of manifests mode (one node: it holds every address its
 * policies select, no leases), and what it shares with the Kubernetes-mode
 * controller (l2-elected.ts): the announcer, the per-address record, the
 * programmed filter and the logging that stays readable at 10,000 addresses.
 */
import type { NodeInterface, Service } from '../model/types.js';
import type { SnapshotOf } from '../store/store.js';
import { L2Announcer, type Announcement, type L2AnnouncerOptions, type L2Sink, type RefusedAddress } from './announcer.js';
import { L2_KINDS, L2CandidateCache, nodeLabels, type L2Candidate, type L2Kind } from './policy.js';
import type { L2View } from '../metrics/state-view.js';
import type { AgentController, ChangeSet } from '../store/controller.js';
import type { LogFields, Logger } from '../model/log.js';

export interface L2Counters {
  gratuitousSent: { ipv4: number; ipv6: number };
  l2Errors: number;
  leaseTransitions: number;
}

export interface L2Common {
  nodeName: string;
  interfaceNames: string[];
  sink: L2Sink;
  isOurService: (svc: Service) => boolean;
  /**
   * Whether the data path carries the service (every frontend written).
   * One that is not is neither announced nor, in Kubernetes mode, competed
   * for: a node must not draw traffic it cannot carry. Default: everything.
   * When the answer changes outside a store change, call the controller's
   * `programmedChanged()`.
   */
  isProgrammed?: (service: string) => boolean;
  /** How interfaces are read (default: sysfs of the agent's namespace); tests hand their own. */
  interfaceReader: (names: string[]) => NodeInterface[];
  /** Pacing of gratuitous ARP/NA and retries of refused responder entries (defaults: ANNOUNCER_DEFAULTS). */
  announcer?: Pick<L2AnnouncerOptions, 'framesPerSecond' | 'maxFramesPerTick' | 'maxTickMs' | 'refusedRetryMs' | 'clock'>;
  counters: L2Counters;
  log: Logger;
}

/** Up to this many addresses changing at once get a line each (operators grep for them); more get one summary line. */
export const PER_ADDRESS_LINES = 20;

/** One line per address for a few, one summary line (count, first few, the first one's fields) for many. */
export function logAddresses(log: Logger, level: 'info' | 'warn', msg: string, items: LogFields[]): void {
  if (items.length === 0) return;
  if (items.length <= PER_ADDRESS_LINES) {
    for (const fields of items) log[level](msg, fields);
    return;
  }
  const sample = items.slice(0, 5).map((f) => f.address).join(',');
  log[level](msg, { ...items[0], address: undefined, addresses: items.length, sample });
}

/** Refusals arrive a few hundred per announcer tick: gathered for a second, then logged as logAddresses does. */
class RefusalLog {
  private refused: LogFields[] = [];
  private cleared: LogFields[] = [];
  private timer?: NodeJS.Timeout;

  constructor(private readonly log: Logger) {}

  add(kind: 'refused' | 'cleared', fields: LogFields): void {
    (kind === 'refused' ? this.refused : this.cleared).push(fields);
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), 1000);
    this.timer.unref();
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    logAddresses(this.log, 'warn', 'responder entry refused: address not announced there (retried)', this.refused);
    logAddresses(this.log, 'info', 'responder entry written after a refusal: address announced', this.cleared);
    this.refused = [];
    this.cleared = [];
  }
}

export function makeAnnouncer(c: L2Common): L2Announcer {
  const refusals = new RefusalLog(c.log);
  return new L2Announcer(c.sink, {
    ...c.announcer,
    onSent: (family) => c.counters.gratuitousSent[family]++,
    onError: (err, address, iface, addresses) => {
      c.counters.l2Errors++;
      c.log.warn('L2 announcement failed', { address, interface: iface, error: err.message, ...(addresses ? { addresses } : {}) });
    },
    onRefused: (address, iface, err) => {
      c.counters.l2Errors++;
      refusals.add('refused', { address, interface: iface, error: err.message });
    },
    onRefusalCleared: (address, iface) => refusals.add('cleared', { address, interface: iface }),
  });
}

/** Keeps since/transitions per (service, address) this node announces, and logs changes. */
export class LocalRecord {
  /** `service|address` → when this node started announcing it. */
  readonly since = new Map<string, string>();
  readonly transitions = new Map<string, number>();
  private last?: Announcement[];
  /** Each pair announced now, with the pass that last saw it. */
  private readonly live = new Map<string, { pass: number }>();
  /** The pair each Announcement object seen last time stands for (the same object is the same pair). */
  private readonly pairs = new Map<Announcement, { live: { pass: number }; pass: number }>();
  private pass = 0;

  constructor(private readonly log: Logger, private readonly counters: L2Counters) {}

  /** `announcements` is the whole set (objects treated as immutable); the same array as last time is known to be unchanged. */
  track(announcements: Announcement[]): void {
    if (announcements === this.last) return;
    this.last = announcements;
    const pass = ++this.pass;
    const now = new Date().toISOString();
    const started: LogFields[] = [];
    let seen = 0;
    let objects = 0;
    for (const a of announcements) {
      let pair = this.pairs.get(a);
      if (!pair) {
        const key = `${a.service}|${a.address}`;
        let live = this.live.get(key);
        if (!live) {
          this.live.set(key, (live = { pass: 0 }));
          this.since.set(key, now);
          this.transitions.set(key, (this.transitions.get(key) ?? 0) + 1);
          this.counters.leaseTransitions++;
          started.push({ service: a.service, address: a.address, interfaces: a.interfaces.map((i) => i.name).join(',') });
        }
        this.pairs.set(a, (pair = { live, pass: 0 }));
      }
      if (pair.pass !== pass) objects++;
      pair.pass = pass;
      if (pair.live.pass !== pass) seen++;
      pair.live.pass = pass;
    }
    const stopped: LogFields[] = [];
    if (this.live.size > seen) {
      for (const [key, live] of this.live) {
        if (live.pass === pass) continue;
        this.live.delete(key);
        this.since.delete(key);
        const [service, address] = key.split('|');
        stopped.push({ service, address });
      }
    }
    if (this.pairs.size > objects) for (const [a, pair] of this.pairs) if (pair.pass !== pass) this.pairs.delete(a);
    logAddresses(this.log, 'info', 'announcing address', started);
    logAddresses(this.log, 'info', 'stopped announcing address', stopped);
  }
}

/** Each candidate's announcements, made once per candidate object (the caches keep unchanged candidates the same objects). */
const announcementsOf = new WeakMap<L2Candidate, Announcement[]>();

export function toAnnouncements(candidates: L2Candidate[]): Announcement[] {
  const out: Announcement[] = [];
  for (const c of candidates) {
    let list = announcementsOf.get(c);
    if (!list) announcementsOf.set(c, (list = c.addresses.map((address) => ({ service: c.service, address, interfaces: c.interfaces }))));
    for (const a of list) out.push(a);
  }
  return out;
}

/**
 * The candidates the data path carries. Returns `previous` itself when the
 * result is the same list, so callers skip their work by comparing references.
 */
export function programmedOnly(candidates: L2Candidate[], isProgrammed: ((service: string) => boolean) | undefined, previous: L2Candidate[] | undefined): L2Candidate[] {
  const out = isProgrammed ? candidates.filter((c) => isProgrammed(c.service)) : candidates;
  if (out === previous) return previous;
  if (previous && previous.length === out.length && out.every((c, i) => c === previous[i])) return previous;
  return out;
}

/** Manifests mode: one node, always the holder. */
export class LocalL2Controller implements AgentController<L2Kind> {
  readonly name = 'l2';
  readonly kinds = L2_KINDS;
  private readonly announcer: L2Announcer;
  private readonly record: LocalRecord;
  private readonly cache = new L2CandidateCache();
  private chosen?: L2Candidate[];
  /** The cache's last answer, and whether the data path's programmed set changed since it was filtered. */
  private candidates?: L2Candidate[];
  private programmedMoved = true;
  private announcements: Announcement[] = [];
  private lastSnapshot?: SnapshotOf<L2Kind>;

  constructor(private readonly c: L2Common) {
    this.announcer = makeAnnouncer(c);
    this.record = new LocalRecord(c.log, c.counters);
  }

  /** `changes` (what changed since the last pass) lets the caches look at those services only. */
  reconcile(snap: SnapshotOf<L2Kind>, changes?: ChangeSet): void {
    this.lastSnapshot = snap;
    const candidates = this.cache.compute(snap, {
      nodeName: this.c.nodeName,
      nodeLabels: nodeLabels(snap.nodes.get(this.c.nodeName), this.c.nodeName),
      interfaces: this.c.interfaceReader(this.c.interfaceNames),
      isOurService: this.c.isOurService,
    }, changes);
    // The same candidates and the same programmed set: the same answer (an edit of a backend costs no walk of 10,000 services).
    if (candidates === this.candidates && !this.programmedMoved) return;
    this.candidates = candidates;
    this.programmedMoved = false;
    const chosen = programmedOnly(candidates, this.c.isProgrammed, this.chosen);
    if (chosen === this.chosen) return;
    this.chosen = chosen;
    this.announcements = toAnnouncements(chosen);
    this.record.track(this.announcements);
    this.announcer.update(this.announcements);
  }

  /** The data path's programmed set changed: announce what it now carries, withdraw what it no longer does. */
  programmedChanged(): void {
    this.programmedMoved = true;
    if (this.lastSnapshot) this.reconcile(this.lastSnapshot);
  }

  /** Addresses whose responder entry could not be written (not announced there). */
  refused(): RefusedAddress[] {
    return this.announcer.refused();
  }

  /** (address, interface) pairs answered, still to be written, refused, and answered but not yet announced once (for metrics). */
  announcementCounts(): ReturnType<L2Announcer['counts']> {
    return this.announcer.counts();
  }

  rows(_snap?: SnapshotOf<L2Kind>): L2View[] {
    return [...this.record.since.entries()].map(([key, since]) => {
      const [service, address] = key.split('|') as [string, string];
      return {
        service, address, since, local: true, holder: this.c.nodeName,
        interfaces: this.announcer.interfacesOf(address),
        transitions: this.record.transitions.get(key) ?? 0,
      };
    });
  }

  stop(): void {
    // Manifests mode keeps answering through a restart until the liveness stamp goes stale.
  }
}
