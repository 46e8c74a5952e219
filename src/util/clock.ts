/**
 * One injectable clock for code that reads the time or sets timers, so tests drive time explicitly
 * instead of sleeping and comparing wall-clock durations. Production code defaults to `realClock`
 * (Date.now and the global timers); tests pass a `ManualClock` and call `advance(ms)`.
 */

/** An opaque timer handle from `Clock.setTimeout`, accepted by the same clock's `clearTimeout`. */
export type TimerHandle = { unref?(): unknown } | number | object;

export interface Clock {
  /** Milliseconds since the Unix epoch (Date.now's unit). */
  now(): number;
  /** Call `fn` once after `ms` milliseconds (<= 0: on the next timer turn). */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancel a timer from this clock's setTimeout; unknown or fired handles are ignored. */
  clearTimeout(handle: TimerHandle | undefined): void;
}

/** Date.now and the global setTimeout / clearTimeout, looked up at call time (so node:test mock timers apply). */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout | undefined),
};

interface ManualTimer {
  id: number;
  due: number;
  fn: () => void;
}

/**
 * A clock that only moves when told: `advance(ms)` runs the timers that fall due, in due order
 * (ties in the order they were set), each seeing `now()` equal to its due time. For tests and
 * simulations; never fires on its own.
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, ManualTimer>();
  private readonly watchers = new Set<() => void>();

  /** @param startMs the initial `now()` in ms since the epoch (default 2024-01-01T00:00:00Z). */
  constructor(startMs = Date.UTC(2024, 0, 1)) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { id, due: this.t + Math.max(0, ms), fn });
    for (const w of [...this.watchers]) w();
    return { id };
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle && typeof handle === 'object' && 'id' in handle) this.timers.delete((handle as { id: number }).id);
  }

  /** Timers set and not yet fired or cleared. */
  pending(): number {
    return this.timers.size;
  }

  /** Due time (ms since epoch) of the earliest pending timer, or undefined when none. */
  nextDue(): number | undefined {
    let best: number | undefined;
    for (const t of this.timers.values()) if (best === undefined || t.due < best) best = t.due;
    return best;
  }

  /**
   * Move time forward by `ms` (>= 0), firing every timer due on the way, synchronously and in due order.
   * Timers a callback sets that fall due within the window fire too.
   * @throws RangeError on a negative or non-finite `ms`.
   */
  advance(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError(`ManualClock.advance: bad ms ${ms}`);
    const end = this.t + ms;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const t of this.timers.values()) if (t.due <= end && (!next || t.due < next.due)) next = t;
      if (!next) break;
      this.timers.delete(next.id);
      this.t = Math.max(this.t, next.due);
      next.fn();
    }
    this.t = end;
  }

  /** Resolves once at least `n` timers are pending (checked now and whenever a timer is set). */
  whenPending(n = 1): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.timers.size < n) return;
        this.watchers.delete(check);
        resolve();
      };
      this.watchers.add(check);
      check();
    });
  }
}
