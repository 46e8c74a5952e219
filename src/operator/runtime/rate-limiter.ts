/**
 * Requeue rate limiters for the operator work queue, mirroring client-go's
 * `util/workqueue/default_rate_limiters.go` semantics (peers.md §2d): a per-item exponential
 * backoff, a shared token bucket, and their max as the default controller limiter.
 * All delays are in milliseconds.
 */

/** Decides how long a key waits before it is re-added after a failure. */
export interface RateLimiter {
  /** Delay in ms before `key` may be processed again; counts one more failure / reserves capacity. */
  when(key: string): number;
  /** Drop the failure history of `key` (call after a successful reconcile). */
  forget(key: string): void;
  /** Failures recorded for `key` since the last forget (0 for limiters without per-key state). */
  retries(key: string): number;
}

/**
 * Per-key exponential backoff: the n-th failure (n = 0, 1, ...) of a key waits `baseMs · 2^n`,
 * capped at `maxMs`. Defaults 5 ms .. 1 000 000 ms (1000 s), as client-go.
 * @throws RangeError when baseMs <= 0 or maxMs < baseMs.
 */
export class ItemExponentialRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();

  constructor(
    readonly baseMs = 5,
    readonly maxMs = 1_000_000,
  ) {
    if (!(baseMs > 0) || !(maxMs >= baseMs)) {
      throw new RangeError(`ItemExponentialRateLimiter: need 0 < baseMs <= maxMs, got baseMs=${baseMs} maxMs=${maxMs}`);
    }
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // 2^n overflows to Infinity for large n; min() keeps the cap exact.
    return Math.min(this.baseMs * 2 ** n, this.maxMs);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/**
 * Shared token bucket (golang.org/x/time/rate `Reserve().Delay()` semantics): holds up to `burst`
 * tokens refilled at `qps` per second; each `when()` takes one token, going into debt when the
 * bucket is empty, and returns the ms until that token exists (0 while tokens remain).
 * Defaults 10 qps, burst 100 (client-go). Keys are ignored. `now` (ms) is injectable for tests.
 * @throws RangeError when qps <= 0 or burst < 1.
 */
export class BucketRateLimiter implements RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    readonly qps = 10,
    readonly burst = 100,
    private readonly now: () => number = Date.now,
  ) {
    if (!(qps > 0) || !(burst >= 1))
      throw new RangeError(`BucketRateLimiter: need qps > 0 and burst >= 1, got qps=${qps} burst=${burst}`);
    this.tokens = burst;
    this.last = now();
  }

  when(_key: string): number {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, t - this.last) * this.qps) / 1000);
    this.last = t;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.qps;
  }

  forget(_key: string): void {}

  retries(_key: string): number {
    return 0;
  }
}

/**
 * The maximum delay of several limiters. Every limiter is consulted on each `when()` (so a
 * bucket reserves its token even when another limiter dominates), as client-go's MaxOfRateLimiter.
 * @throws RangeError when no limiter is given.
 */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    if (limiters.length === 0) throw new RangeError('MaxOfRateLimiter: pass at least one limiter');
    this.limiters = limiters;
  }

  when(key: string): number {
    return Math.max(...this.limiters.map((l) => l.when(key)));
  }

  forget(key: string): void {
    for (const l of this.limiters) l.forget(key);
  }

  retries(key: string): number {
    return Math.max(...this.limiters.map((l) => l.retries(key)));
  }
}

/**
 * client-go's DefaultControllerRateLimiter: max(per-item 5 ms · 2^n capped at 1000 s,
 * token bucket 10 qps burst 100). `now` (ms) feeds the bucket (tests).
 */
export function defaultControllerRateLimiter(now: () => number = Date.now): RateLimiter {
  return new MaxOfRateLimiter(new ItemExponentialRateLimiter(5, 1_000_000), new BucketRateLimiter(10, 100, now));
}
