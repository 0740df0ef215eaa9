/**
 * What the announcer paces its work with: a clock it can be handed (tests
 * drive a fake one), a token bucket (the bounded frame rate per interface)
 * and a FIFO that takes from the front in O(1) and can look ahead without
 * taking (a batch that the socket only partly accepted stays queued).
 */

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Runs `fn` once after `delayMs`; the returned function cancels it. */
  setTimer(fn: () => void, delayMs: number): () => void;
}

/** performance.now and an unref'd setTimeout: pending announcements never keep the process alive. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, delayMs) => {
    const t = setTimeout(fn, delayMs);
    t.unref();
    return () => clearTimeout(t);
  },
};

/** `ratePerSecond` tokens a second, at most `capacity` saved up; starts full. */
export class TokenBucket {
  private tokens: number;
  private refilledAt: number;

  constructor(private readonly ratePerSecond: number, private readonly capacity: number, now: number) {
    if (!(ratePerSecond > 0) || !(capacity >= 1)) throw new Error(`token bucket: rate ${ratePerSecond}/s and capacity ${capacity} must be positive`);
    this.tokens = capacity;
    this.refilledAt = now;
  }

  available(now: number): number {
    if (now > this.refilledAt) {
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.refilledAt) * this.ratePerSecond) / 1000);
      this.refilledAt = now;
    }
    return this.tokens;
  }

  take(n: number): void {
    this.tokens -= n;
  }

  /** Milliseconds until `n` tokens are there (0 when they are). */
  waitFor(n: number, now: number): number {
    const missing = Math.min(n, this.capacity) - this.available(now);
    return missing <= 0 ? 0 : (missing * 1000) / this.ratePerSecond;
  }
}

export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** The i-th item from the front, without taking it. */
  peek(i = 0): T | undefined {
    return this.items[this.head + i];
  }

  /** Takes `n` items from the front. */
  drop(n: number): void {
    this.head = Math.min(this.items.length, this.head + n);
    // Compact once the taken part dominates, so memory follows what is queued.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  shift(): T | undefined {
    const item = this.peek();
    if (item !== undefined) this.drop(1);
    return item;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}
