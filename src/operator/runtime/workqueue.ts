/**
 * A keyed work queue with client-go `util/workqueue` semantics (peers.md §2d):
 * - dedupe: a key waiting in the queue is not queued twice;
 * - per-key serialization: a key handed out by `get()` is "processing" until `done(key)`; adding it
 *   meanwhile only marks it dirty, and `done` re-queues it once, so one key never runs concurrently;
 * - delayed (`addAfter`) and rate-limited (`addRateLimited`) adds; several pending delays of one key
 *   keep the earliest.
 * `shutDown()` drops queued and delayed keys and makes every `get()` resolve `undefined`;
 * the level-triggered informers re-deliver state on the next start. Delay timers keep the process
 * alive (a pending requeue is work to do) until shutDown() clears them.
 */
import { realClock, type Clock, type TimerHandle } from '../../util/clock.js';
import { defaultControllerRateLimiter, type RateLimiter } from './rate-limiter.js';

/** Hooks for queue metrics (see OperatorMetrics.queueMetrics). */
export interface WorkQueueMetrics {
  /** A key was really enqueued (not deduped). */
  added(): void;
  /** The number of keys waiting to be handed out changed. */
  depth(n: number): void;
  /** A rate-limited requeue was requested. */
  retried(): void;
}

export interface WorkQueueOptions {
  /** Limiter for addRateLimited (default: defaultControllerRateLimiter()). */
  rateLimiter?: RateLimiter;
  metrics?: WorkQueueMetrics;
  /** Time source for addAfter's due times and timers (default: the real clock). */
  clock?: Clock;
}

/** See the file header. Keys are strings ('namespace/name'). */
export class WorkQueue<K extends string = string> {
  private readonly queue: K[] = [];
  /** Keys that need processing: queued ones, plus processing ones re-added meanwhile. */
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly waiters: Array<(key: K | undefined) => void> = [];
  /** Pending addAfter timers with their due time (ms since epoch). */
  private readonly delayed = new Map<K, { due: number; timer: TimerHandle }>();
  private readonly limiter: RateLimiter;
  private readonly metrics?: WorkQueueMetrics;
  private readonly clock: Clock;
  private stopping = false;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(opts: WorkQueueOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.limiter = opts.rateLimiter ?? defaultControllerRateLimiter(() => this.clock.now());
    this.metrics = opts.metrics;
  }

  /** Queue `key` now, unless already queued (dedupe) or processing (then re-queued at done). No-op after shutDown. */
  add(key: K): void {
    if (this.stopping || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.metrics?.added();
    this.push(key);
  }

  /** Queue `key` after `delayMs` ms (<= 0: now). An earlier pending delay for the key wins. */
  addAfter(key: K, delayMs: number): void {
    if (this.stopping) return;
    if (!(delayMs > 0)) {
      this.add(key);
      return;
    }
    const due = this.clock.now() + delayMs;
    const prev = this.delayed.get(key);
    if (prev && prev.due <= due) return;
    if (prev) this.clock.clearTimeout(prev.timer);
    const timer = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { due, timer });
  }

  /** Queue `key` after the rate limiter's delay (counts one more failure of the key). */
  addRateLimited(key: K): void {
    if (this.stopping) return;
    this.metrics?.retried();
    this.addAfter(key, this.limiter.when(key));
  }

  /** Reset the rate limiter's failure history of `key` (after a successful reconcile). */
  forget(key: K): void {
    this.limiter.forget(key);
  }

  /** Failures of `key` the rate limiter has seen since the last forget. */
  numRequeues(key: K): number {
    return this.limiter.retries(key);
  }

  /**
   * The next key, marked processing until `done(key)`; waits while the queue is empty.
   * Resolves `undefined` once shutDown() was called (also for callers already waiting).
   */
  get(): Promise<K | undefined> {
    if (this.stopping) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) return Promise.resolve(this.take(key));
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Finish processing `key`; re-queues it once if it was added while processing. */
  done(key: K): void {
    this.processing.delete(key);
    if (!this.stopping && this.dirty.has(key)) {
      this.metrics?.added();
      this.push(key);
    }
    this.notifyIdle();
  }

  /**
   * Resolves once no key is queued or processing (at once if so now, or after shutDown). Keys waiting
   * on an addAfter / addRateLimited delay do not count: they are queued when their timer fires.
   * The signal that every event handed to the queue so far has been reconciled.
   */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Keys waiting to be handed out (not counting processing or delayed ones). */
  len(): number {
    return this.queue.length;
  }

  /** Whether shutDown() was called. */
  get shuttingDown(): boolean {
    return this.stopping;
  }

  /** Stop: clear delayed timers, drop queued keys, resolve pending and future get() with undefined. Idempotent. */
  shutDown(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const { timer } of this.delayed.values()) this.clock.clearTimeout(timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.dirty.clear();
    this.metrics?.depth(0);
    for (const w of this.waiters.splice(0)) w(undefined);
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private isIdle(): boolean {
    return this.stopping || (this.queue.length === 0 && this.processing.size === 0);
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length > 0 && this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
  }

  private push(key: K): void {
    const w = this.waiters.shift();
    if (w) {
      w(this.take(key));
      return;
    }
    this.queue.push(key);
    this.metrics?.depth(this.queue.length);
  }

  private take(key: K): K {
    this.processing.add(key);
    this.dirty.delete(key);
    this.metrics?.depth(this.queue.length);
    return key;
  }
}
