/**
 * The L2 announcer: makes this node answer for the addresses it holds.
 * For each (address, interface) it programs the XDP responder and, once that
 * worked, sends gratuitous ARP / unsolicited NA, then every 1.1 s for 5 s.
 *
 * Why repeat: a single gratuitous frame can be lost, and switches/clients
 * that missed it keep a stale MAC for 35–50 s (LAB-FACTS). The 1.1 s spacing
 * avoids landing in the same 1 s rate-limit window of receivers that limit
 * ARP updates (MetalLB chose the same value for the same reason, metallb#172;
 * Linux ignores a second update within `neigh.*.locktime`, 1 s by default).
 *
 * Responder first: an address is announced on an interface only after its
 * responder entry there was written. One whose write failed (the map is
 * full: E2BIG) is refused — not held, never announced (an announcement that
 * nobody answers would draw the LAN's traffic into a hole) — reported
 * through `onRefused` and `refused()`, and tried again after any withdrawal
 * (a slot may have freed) and every `refusedRetryMs`. Each (address,
 * interface) pair stands alone: an address refused on one interface is still
 * held and announced on the others, where it is answered.
 *
 * Pacing: nothing is written or sent from `update`; one timer drives it all.
 * Each interface has a token bucket (`framesPerSecond`, a burst of 100 ms'
 * worth), and each turn of the event loop does at most `maxFramesPerTick`
 * frames and `maxTickMs` of work, then yields, so thousands of addresses can
 * never starve the liveness stamp or the API watches. First announcements
 * of newly held addresses go before repeats of older ones: when a node takes
 * over thousands of addresses at once, every client is told once before
 * anyone is told twice. Repeats keep their count and are never sent less
 * than 1.1 s apart; under load they come later, not sooner.
 *
 * The default rate, 1,000 frames/s per interface (500 IPv4 or 1,000 IPv6
 * addresses a second: a node taking over 2,000 IPv4 addresses has told the
 * LAN about every one of them within 4 s), is about what switches that punt
 * ARP to their CPU let through anyway: their control-plane policers are set
 * at a few hundred to ~1,000 packets/s (ArubaOS-Switch `station-arp` 512
 * pps, Dell S6100 400 pps each for ARP requests and replies), and frames
 * above that are dropped there. MetalLB (a goroutine per address) and
 * kube-vip (a timer per VIP) do not bound the rate at all; keepalived offers
 * a per-interface gap (`vrrp_garp_interval`), zero by default.
 */
import { announcementFrames } from './frames.js';
import { Fifo, TokenBucket, realClock, type Clock } from './pacing.js';

export interface L2Interface {
  name: string;
  ifindex: number;
  mac: string;
}

export interface Announcement {
  service: string;
  address: string;
  interfaces: L2Interface[];
}

/** Where the announcer's decisions go: the data path's responder map and a packet socket. */
export interface L2Sink {
  /** Throws when the entry cannot be written (e.g. E2BIG: the map is full). */
  addResponder(address: string, iface: L2Interface): void;
  removeResponder(address: string, iface: L2Interface): void;
  sendFrame(iface: L2Interface, frame: Buffer): void;
  /**
   * Several frames out of one interface in one call (a kept socket's
   * sendmmsg). Returns how many went out, in order: fewer than given when the
   * socket's buffer is full (the rest are tried again a little later). Used
   * instead of `sendFrame` when present.
   */
  sendFrames?(iface: L2Interface, frames: Buffer[]): number;
}

export const ANNOUNCER_DEFAULTS = {
  repeatIntervalMs: 1100,
  repeatForMs: 5000,
  framesPerSecond: 1000,
  maxFramesPerTick: 256,
  maxTickMs: 4,
  refusedRetryMs: 5000,
} as const;

export interface L2AnnouncerOptions {
  /** Spacing of repeated gratuitous frames (at least; later under load). */
  repeatIntervalMs?: number;
  /** How long to keep repeating after the first announcement (sets the number of repeats). */
  repeatForMs?: number;
  /** Bound on gratuitous frames per second per interface (an IPv4 address takes 2, an IPv6 one 1). */
  framesPerSecond?: number;
  /** Bounds on one turn of the event loop: frames sent, and milliseconds of work (checked between batches). */
  maxFramesPerTick?: number;
  maxTickMs?: number;
  /** How often refused responder entries are tried again (they are also tried after any withdrawal). */
  refusedRetryMs?: number;
  clock?: Clock;
  onSent?: (family: 'ipv4' | 'ipv6') => void;
  /** A withdrawal or a send failed; for a failed batch `address` is its first address and `addresses` the batch size. */
  onError?: (err: Error, address: string, iface: string, addresses?: number) => void;
  /** The responder entry could not be written: the address is not held or announced there. Once per refusal (again if the error changes). */
  onRefused?: (address: string, iface: string, err: Error) => void;
  /** A refused entry was written after all: the address is held and announced there now. */
  onRefusalCleared?: (address: string, iface: string) => void;
}

export interface RefusedAddress {
  service: string;
  address: string;
  interface: string;
  error: string;
  /** Epoch ms of the first refusal. */
  since: number;
}

/** Wake at most this often for rate-bound work: each wake sends ~10 ms of frames in one batch, not one frame per wake. */
const PACE_MS = 10;
/** Frames per sink call: the time bound is checked between calls. */
const BATCH_FRAMES = 32;

type State = 'programming' | 'held' | 'refused' | 'withdrawn';

interface Entry {
  key: string;
  service: string;
  address: string;
  iface: L2Interface;
  lane: Lane;
  /** 2 for IPv4 (request and reply), 1 for IPv6. */
  frameCount: number;
  state: State;
  /** Epoch ms the responder entry was written (held) or first refused. */
  since: number;
  /** Announcements still to send, the first one included. */
  left: number;
  /** Earliest time of the next repeat. */
  dueAt: number;
  /** Bumped whenever the entry is queued anew or withdrawn: a queue slot carrying an older ticket is stale. */
  ticket: number;
  error?: Error;
  /** Built on the first round, kept for the repeats, dropped after the last (memory follows the addresses being announced). */
  frames?: Buffer[];
  /** The update() that last asked for it. */
  pass: number;
}

interface Slot {
  entry: Entry;
  ticket: number;
}

/** One interface's share of the pacing. */
interface Lane {
  bucket: TokenBucket;
  /** Held, not yet announced (or asked to announce again): served first. */
  first: Fifo<Slot>;
  /** Announced, repeats outstanding; ordered by dueAt (pushed at now + interval, now only grows). */
  repeats: Fifo<Slot>;
  /** The socket's buffer was full: leave it until then. */
  blockedUntil: number;
}

export class L2Announcer {
  private readonly entries = new Map<string, Entry>();
  /** The pairs each Announcement object of the last update stood for. */
  private readonly claims = new Map<Announcement, { entries: Entry[]; pass: number }>();
  private updatePass = 0;
  private readonly byAddress = new Map<string, Set<Entry>>();
  /** Refused entries, oldest attempt first (a failed retry moves to the back). */
  private readonly refusedEntries = new Map<string, Entry>();
  private readonly lanes = new Map<number, Lane>();
  private readonly toProgram = new Fifo<Slot>();
  private readonly toRetry = new Fifo<Slot>();
  private readonly clock: Clock;
  private readonly rounds: number;
  private readonly cfg: Required<Pick<L2AnnouncerOptions, 'repeatIntervalMs' | 'framesPerSecond' | 'maxFramesPerTick' | 'maxTickMs' | 'refusedRetryMs'>>;
  private nextRetryAt = 0;
  private laneTurn = 0;
  private cancelTimer?: () => void;
  private timerAt = Infinity;

  constructor(private readonly sink: L2Sink, private readonly opts: L2AnnouncerOptions = {}) {
    const d = ANNOUNCER_DEFAULTS;
    this.cfg = {
      repeatIntervalMs: opts.repeatIntervalMs ?? d.repeatIntervalMs,
      framesPerSecond: opts.framesPerSecond ?? d.framesPerSecond,
      maxFramesPerTick: opts.maxFramesPerTick ?? d.maxFramesPerTick,
      maxTickMs: opts.maxTickMs ?? d.maxTickMs,
      refusedRetryMs: opts.refusedRetryMs ?? d.refusedRetryMs,
    };
    for (const [k, v] of Object.entries(this.cfg)) if (!(v > 0)) throw new Error(`L2 announcer: ${k} must be positive, got ${v}`);
    if (this.cfg.maxFramesPerTick < 2) throw new Error('L2 announcer: maxFramesPerTick must be at least 2 (an IPv4 announcement is two frames)');
    this.rounds = 1 + Math.floor((opts.repeatForMs ?? d.repeatForMs) / this.cfg.repeatIntervalMs);
    this.clock = opts.clock ?? realClock;
  }

  /**
   * Makes the set of (address, interface) pairs equal to `desired`. Gone
   * ones are withdrawn here and now (the responder stops answering before
   * this returns); new ones are queued: their responder entries are written
   * and they are announced by the timer, a bounded amount per tick.
   * An Announcement object passed last time stands for the same pairs: only
   * new objects are looked at closely, so passing mostly the same objects
   * costs a reference lookup each.
   */
  update(desired: Announcement[]): void {
    const pass = ++this.updatePass;
    let changed = false;
    let claimed = 0;
    let objects = 0;
    for (const a of desired) {
      const known = this.claims.get(a);
      if (known?.pass === pass) continue;
      objects++;
      if (known && known.entries.every((e) => e.state !== 'withdrawn')) {
        known.pass = pass;
        for (const e of known.entries) {
          if (e.pass !== pass) claimed++;
          e.pass = pass;
          e.service = a.service;
        }
        continue;
      }
      const entries: Entry[] = [];
      for (const iface of a.interfaces) {
        const key = `${a.address}|${iface.ifindex}`;
        let e = this.entries.get(key);
        // A new MAC on the same interface index is a new responder value: withdraw and take again.
        if (e && e.iface.mac !== iface.mac) {
          if (e.pass === pass) claimed--;
          this.withdraw(e);
          e = undefined;
        }
        if (!e) {
          e = this.take(key, a.service, a.address, iface);
          changed = true;
        }
        if (e.pass !== pass) claimed++;
        e.pass = pass;
        e.service = a.service;
        e.iface = iface;
        entries.push(e);
      }
      this.claims.set(a, { entries, pass });
    }
    let freed = false;
    if (claimed < this.entries.size) {
      for (const e of this.entries.values()) {
        if (e.pass === pass) continue;
        if (this.withdraw(e)) freed = true;
        changed = true;
      }
    }
    if (this.claims.size > objects) for (const [a, c] of this.claims) if (c.pass !== pass) this.claims.delete(a);
    if (freed) this.retryRefused();
    if (changed) this.arm(0);
  }

  /** Announce every held address again, as a first announcement (e.g. after the interface came back up). */
  reannounce(): void {
    for (const e of this.entries.values()) {
      if (e.state !== 'held') continue;
      e.left = this.rounds;
      e.lane.first.push({ entry: e, ticket: ++e.ticket });
    }
    this.arm(0);
  }

  /** Pairs whose responder entry is written (announced, or about to be). */
  heldAddresses(): { service: string; address: string; interface: string; since: number }[] {
    const out: { service: string; address: string; interface: string; since: number }[] = [];
    for (const e of this.entries.values()) if (e.state === 'held') out.push({ service: e.service, address: e.address, interface: e.iface.name, since: e.since });
    return out;
  }

  /** Interfaces `address` is held on (answered there). */
  interfacesOf(address: string): string[] {
    const set = this.byAddress.get(address);
    if (!set) return [];
    const out: string[] = [];
    for (const e of set) if (e.state === 'held') out.push(e.iface.name);
    return out;
  }

  /** Pairs whose responder entry could not be written, with the error. */
  refused(): RefusedAddress[] {
    return [...this.refusedEntries.values()].map((e) => ({ service: e.service, address: e.address, interface: e.iface.name, error: e.error?.message ?? '', since: e.since }));
  }

  /** How far the work is: pairs held, still to be programmed, refused, and held but not yet announced once. */
  counts(): { held: number; programming: number; refused: number; awaitingFirst: number } {
    const c = { held: 0, programming: 0, refused: 0, awaitingFirst: 0 };
    for (const e of this.entries.values()) {
      if (e.state === 'held') {
        c.held++;
        if (e.left === this.rounds) c.awaitingFirst++;
      } else if (e.state === 'programming') c.programming++;
      else if (e.state === 'refused') c.refused++;
    }
    return c;
  }

  /** Withdraws every responder entry and stops the timer. */
  stop(): void {
    this.update([]);
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.timerAt = Infinity;
  }

  // ------------------------------------------------------------ entries

  private take(key: string, service: string, address: string, iface: L2Interface): Entry {
    const e: Entry = {
      key, service, address, iface, lane: this.laneOf(iface.ifindex), frameCount: address.includes(':') ? 1 : 2,
      state: 'programming', since: 0, left: 0, dueAt: 0, ticket: 0, pass: 0,
    };
    this.entries.set(key, e);
    let set = this.byAddress.get(address);
    if (!set) this.byAddress.set(address, (set = new Set()));
    set.add(e);
    this.toProgram.push({ entry: e, ticket: e.ticket });
    return e;
  }

  /** Returns true when a responder entry was removed (a slot freed). */
  private withdraw(e: Entry): boolean {
    const wasHeld = e.state === 'held';
    e.state = 'withdrawn';
    e.ticket++;
    delete e.frames;
    this.entries.delete(e.key);
    this.refusedEntries.delete(e.key);
    const set = this.byAddress.get(e.address);
    set?.delete(e);
    if (set?.size === 0) this.byAddress.delete(e.address);
    if (!wasHeld) return false;
    try {
      this.sink.removeResponder(e.address, e.iface);
    } catch (err) {
      this.opts.onError?.(err as Error, e.address, e.iface.name);
    }
    return true;
  }

  private laneOf(ifindex: number): Lane {
    let lane = this.lanes.get(ifindex);
    if (!lane) {
      const burst = Math.max(2, Math.round(this.cfg.framesPerSecond / 10));
      lane = { bucket: new TokenBucket(this.cfg.framesPerSecond, burst, this.clock.now()), first: new Fifo(), repeats: new Fifo(), blockedUntil: 0 };
      this.lanes.set(ifindex, lane);
    }
    return lane;
  }

  /** Queue every refused entry for another try (the pass stops at the first failure: they usually share a cause). */
  private retryRefused(): void {
    this.toRetry.clear();
    for (const e of this.refusedEntries.values()) this.toRetry.push({ entry: e, ticket: ++e.ticket });
    this.nextRetryAt = this.clock.now() + this.cfg.refusedRetryMs;
  }

  /** Writes the responder entry; on success the pair is held and queued for its first announcement. */
  private program(e: Entry): boolean {
    try {
      this.sink.addResponder(e.address, e.iface);
    } catch (err) {
      const error = err as Error;
      const changed = e.state !== 'refused' || e.error?.message !== error.message;
      if (e.state !== 'refused') e.since = Date.now();
      e.state = 'refused';
      e.error = error;
      this.refusedEntries.delete(e.key);
      this.refusedEntries.set(e.key, e);
      if (this.refusedEntries.size === 1) this.nextRetryAt = this.clock.now() + this.cfg.refusedRetryMs;
      if (changed) this.opts.onRefused?.(e.address, e.iface.name, error);
      return false;
    }
    const wasRefused = e.state === 'refused';
    e.state = 'held';
    e.since = Date.now();
    delete e.error;
    e.left = this.rounds;
    this.refusedEntries.delete(e.key);
    e.lane.first.push({ entry: e, ticket: ++e.ticket });
    if (wasRefused) this.opts.onRefusalCleared?.(e.address, e.iface.name);
    return true;
  }

  // ------------------------------------------------------------ the timer

  private arm(delayMs: number): void {
    const at = this.clock.now() + delayMs;
    if (this.cancelTimer && this.timerAt <= at) return;
    this.cancelTimer?.();
    this.timerAt = at;
    this.cancelTimer = this.clock.setTimer(() => this.tick(), delayMs);
  }

  /** One bounded turn: due retries, responder writes, then frames per interface within their buckets. */
  private tick(): void {
    this.cancelTimer = undefined;
    this.timerAt = Infinity;
    const start = this.clock.now();
    const deadline = start + this.cfg.maxTickMs;
    if (this.refusedEntries.size > 0 && this.toRetry.length === 0 && start >= this.nextRetryAt) this.retryRefused();
    // Responder writes first (an address is announced only once answered), leaving half the turn to sends when frames wait.
    this.programQueued(this.framesWaiting(start) ? start + this.cfg.maxTickMs / 2 : deadline);
    let framesLeft = this.cfg.maxFramesPerTick;
    const lanes = [...this.lanes.values()];
    // Interfaces take turns at going first, so one busy interface cannot keep another waiting.
    this.laneTurn = (this.laneTurn + 1) % Math.max(1, lanes.length);
    for (let i = 0; i < lanes.length && framesLeft > 0; i++) {
      const now = this.clock.now();
      if (now >= deadline) break;
      framesLeft -= this.sendFrom(lanes[(this.laneTurn + i) % lanes.length]!, now, framesLeft, deadline);
    }
    this.scheduleNext();
  }

  private programQueued(deadline: number): void {
    for (const queue of [this.toProgram, this.toRetry]) {
      const retrying = queue === this.toRetry;
      for (let slot = queue.shift(); slot; slot = queue.shift()) {
        const e = slot.entry;
        if (slot.ticket !== e.ticket || e.state === 'withdrawn' || e.state === 'held') continue;
        if (!this.program(e) && retrying) {
          queue.clear();
          break;
        }
        // Always make progress, then stop at the deadline.
        if (this.clock.now() >= deadline) return;
      }
    }
  }

  private framesWaiting(now: number): boolean {
    for (const lane of this.lanes.values()) {
      if (lane.first.length > 0) return true;
      const head = lane.repeats.peek();
      if (head && head.entry.dueAt <= now) return true;
    }
    return false;
  }

  /** Sends from one lane: first announcements, then due repeats. Returns frames sent. */
  private sendFrom(lane: Lane, now: number, framesLeft: number, deadline: number): number {
    if (lane.blockedUntil > now) return 0;
    let sent = 0;
    for (const queue of [lane.first, lane.repeats]) {
      const repeats = queue === lane.repeats;
      while (framesLeft - sent > 0) {
        const allowed = Math.min(framesLeft - sent, Math.floor(lane.bucket.available(now)), BATCH_FRAMES);
        const batch = this.gather(queue, repeats, now, allowed);
        if (batch.entries.length === 0) {
          queue.drop(batch.scanned);
          break;
        }
        const out = this.transmit(batch.entries, batch.frames, deadline);
        lane.bucket.take(out);
        sent += out;
        // Entries any of whose frames went out are announced; the rest stay at the front of the queue.
        let consumed = 0;
        let position = 0;
        for (let i = 0, offset = 0; i < batch.entries.length; offset += batch.entries[i]!.frameCount, i++) {
          if (offset >= out && out < batch.frames.length) break;
          this.announced(batch.entries[i]!, now);
          consumed++;
          position = batch.positions[i]! + 1;
        }
        queue.drop(consumed === batch.entries.length ? batch.scanned : consumed === 0 ? batch.positions[0]! : position);
        if (out < batch.frames.length) {
          lane.blockedUntil = now + PACE_MS;
          return sent;
        }
        if (this.clock.now() >= deadline) return sent;
      }
      // A first announcement that did not fit (tokens, tick bound) still goes before any repeat.
      if (!repeats && lane.first.length > 0) return sent;
    }
    return sent;
  }

  /** Looks ahead in `queue` (skipping stale slots) for live entries that fit in `allowed` frames. */
  private gather(queue: Fifo<Slot>, repeats: boolean, now: number, allowed: number): { entries: Entry[]; positions: number[]; frames: Buffer[]; scanned: number } {
    const entries: Entry[] = [];
    const positions: number[] = [];
    const frames: Buffer[] = [];
    let scanned = 0;
    for (let slot = queue.peek(scanned); slot; slot = queue.peek(scanned)) {
      const e = slot.entry;
      if (slot.ticket !== e.ticket || e.state !== 'held') {
        scanned++;
        continue;
      }
      if (repeats && e.dueAt > now) break;
      if (frames.length + e.frameCount > allowed) break;
      let built: Buffer[];
      try {
        built = e.frames ??= announcementFrames(e.iface.mac, e.address);
      } catch (err) {
        // Cannot be announced at all (a malformed MAC or address): report once and let it be.
        this.opts.onError?.(err as Error, e.address, e.iface.name);
        e.ticket++;
        e.left = 0;
        scanned++;
        continue;
      }
      entries.push(e);
      positions.push(scanned);
      frames.push(...built);
      scanned++;
    }
    return { entries, positions, frames, scanned };
  }

  /** Hands frames to the sink; returns how many count as sent (a failed call counts: its entries' repeats are the retry). */
  private transmit(entries: Entry[], frames: Buffer[], deadline: number): number {
    const iface = entries[0]!.iface;
    if (this.sink.sendFrames) {
      try {
        return Math.max(0, Math.min(frames.length, this.sink.sendFrames(iface, frames)));
      } catch (err) {
        this.opts.onError?.(err as Error, entries[0]!.address, iface.name, entries.length);
        return frames.length;
      }
    }
    // One frame at a time: the deadline is checked after each address.
    let out = 0;
    for (const e of entries) {
      try {
        for (let i = 0; i < e.frameCount; i++) this.sink.sendFrame(e.iface, frames[out + i]!);
      } catch (err) {
        this.opts.onError?.(err as Error, e.address, e.iface.name);
      }
      out += e.frameCount;
      if (this.clock.now() >= deadline) break;
    }
    return out;
  }

  private announced(e: Entry, now: number): void {
    this.opts.onSent?.(e.frameCount === 1 ? 'ipv6' : 'ipv4');
    e.left--;
    if (e.left <= 0) {
      delete e.frames;
      return;
    }
    e.dueAt = now + this.cfg.repeatIntervalMs;
    e.lane.repeats.push({ entry: e, ticket: ++e.ticket });
  }

  private scheduleNext(): void {
    const now = this.clock.now();
    let delay = Infinity;
    if (this.toProgram.length > 0 || this.toRetry.length > 0) delay = 0;
    for (const lane of this.lanes.values()) {
      const blocked = Math.max(0, lane.blockedUntil - now);
      const head = lane.first.peek() ?? lane.repeats.peek();
      if (!head) continue;
      const due = lane.first.length > 0 ? 0 : Math.max(0, head.entry.dueAt - now);
      delay = Math.min(delay, Math.max(blocked, due, lane.bucket.waitFor(head.entry.frameCount, now)));
    }
    if (this.refusedEntries.size > 0) delay = Math.min(delay, Math.max(0, this.nextRetryAt - now));
    if (delay === Infinity) return;
    // Work left by the tick's bounds: yield one turn. Waiting for tokens or a due time: batch PACE_MS at least.
    this.arm(delay === 0 ? 0 : Math.max(delay, PACE_MS));
  }
}
