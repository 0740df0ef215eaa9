/**
 * A clock for the announcer's unit tests: time moves only when the test (or
 * a fake sink standing for a slow syscall) moves it, and timers run in time
 * order. Each timer callback is one turn of the event loop, so the test can
 * see what every turn did and how long it took on this clock.
 */
import type { Clock } from '../../src/l2/pacing.js';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

export interface Turn {
  start: number;
  end: number;
}

export class FakeClock implements Clock {
  private t = 0;
  private nextId = 1;
  private timers: Timer[] = [];
  /** Every timer callback that ran: when it started and ended on this clock. */
  readonly turns: Turn[] = [];
  /** Set by a turn while it runs. */
  current?: Turn;

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, delayMs: number): () => void {
    const timer = { id: this.nextId++, at: this.t + Math.max(0, delayMs), fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  /** Work that takes time inside a turn (a slow syscall). */
  spend(ms: number): void {
    this.t += ms;
  }

  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, running every timer due on the way, in order; bounded in turns. */
  advance(ms: number, maxTurns = 1_000_000): void {
    const end = this.t + ms;
    for (let turns = 0; turns < maxTurns; turns++) {
      let next: Timer | undefined;
      for (const timer of this.timers) if (timer.at <= end && (!next || timer.at < next.at || (timer.at === next.at && timer.id < next.id))) next = timer;
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      const turn = { start: this.t, end: this.t };
      this.current = turn;
      next.fn();
      turn.end = this.t;
      this.current = undefined;
      this.turns.push(turn);
    }
    this.t = Math.max(this.t, end);
  }
}
