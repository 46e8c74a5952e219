/**
 * The dynamic batcher (Triton's `dynamic_batching`, docs/user_guide/batcher.md): requests of any number
 * of images wait in one FIFO queue and are merged into a single model run of up to `maxBatchSize`
 * images. A batch starts when the queue holds `maxBatchSize` images, when its oldest request has waited
 * `maxQueueDelayMs`, or at once while draining; at most `concurrency` runs (one per session) are in
 * flight, and requests that arrive meanwhile keep filling the next batch.
 *
 * Backpressure: past `maxQueueSize` waiting requests, new ones are refused with 429 and a Retry-After
 * estimated from recent run times. Deadlines: a request that is not answered within
 * `requestTimeoutMs` gets 504; if it had not started running it leaves the queue (its images are never
 * computed), otherwise its share of the run is discarded.
 */
import { HttpError } from '../service/errors.js';
import { realClock, type Clock, type TimerHandle } from '../util/clock.js';

/**
 * The default clock: the real timers, with `now()` read from the monotonic performance clock (still ms
 * since the epoch) so queue waits and run times do not jump when the wall clock is adjusted.
 */
const monotonicClock: Clock = { ...realClock, now: () => performance.timeOrigin + performance.now() };

export interface BatcherOptions {
  /** Most images in one run. */
  readonly maxBatchSize: number;
  /** Longest the oldest request waits for a fuller batch, in ms (0 = run whatever is queued). */
  readonly maxQueueDelayMs: number;
  /** Most requests waiting (not yet running). */
  readonly maxQueueSize: number;
  /** Deadline of each request from submission, in ms. */
  readonly requestTimeoutMs: number;
  /** Runs in flight at once (= sessions in the pool). */
  readonly concurrency: number;
  /** Time source for queue waits, run times and timers (default: the real timers on a monotonic now). */
  readonly clock?: Clock;
}

/** Observers for metrics. */
export interface BatcherHooks {
  /** Requests waiting changed. */
  onQueueDepth?(depth: number): void;
  /** A run finished: images and requests in it, wall seconds, whether it succeeded. */
  onRun?(images: number, requests: number, seconds: number, ok: boolean): void;
}

/** Runs one merged batch; must return one result per item, in order. */
export type BatchRunner<T, R> = (items: readonly T[]) => Promise<readonly R[]>;

interface Pending<T, R> {
  readonly item: T;
  readonly size: number;
  state: 'queued' | 'running' | 'done';
  readonly enqueuedAt: number;
  timer: TimerHandle | null;
  resolve(r: R): void;
  reject(e: Error): void;
}

/** See the file header. */
export class DynamicBatcher<T, R> {
  private readonly queue: Pending<T, R>[] = [];
  private queuedImages = 0;
  private inFlight = 0;
  private timer: TimerHandle | null = null;
  private draining = false;
  private drained: (() => void) | null = null;
  private drainPromise: Promise<void> | null = null;
  /** Exponential moving average of run seconds (for Retry-After). */
  private runSeconds = 0;
  private readonly clock: Clock;

  constructor(
    readonly options: BatcherOptions,
    private readonly run: BatchRunner<T, R>,
    private readonly hooks: BatcherHooks = {},
  ) {
    const { maxBatchSize, maxQueueDelayMs, maxQueueSize, requestTimeoutMs, concurrency } = options;
    for (const [k, v] of Object.entries({ maxBatchSize, maxQueueSize, requestTimeoutMs, concurrency })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`DynamicBatcher: ${k} must be a positive integer, got ${v}`);
    }
    if (!(maxQueueDelayMs >= 0)) throw new Error(`DynamicBatcher: maxQueueDelayMs must be ≥ 0, got ${maxQueueDelayMs}`);
    this.clock = options.clock ?? monotonicClock;
  }

  /** Requests waiting (not yet running). */
  get depth(): number {
    return this.queue.length;
  }

  /** Runs in flight. */
  get running(): number {
    return this.inFlight;
  }

  /**
   * Queues one request of `size` images and resolves with its result.
   * @param signal aborting it (the client went away) drops a still-queued request.
   * @throws (rejects with) HttpError 400 when size is outside [1, maxBatchSize]; 429 `queue_full` with
   *   Retry-After when the queue is full; 503 `draining` after {@link drain}; 504 `deadline_exceeded`
   *   past requestTimeoutMs; 499 `client_closed` when `signal` aborts while queued; 500 when the run fails.
   */
  submit(item: T, size: number, signal?: AbortSignal): Promise<R> {
    const { maxBatchSize, maxQueueSize, requestTimeoutMs } = this.options;
    if (!Number.isInteger(size) || size < 1 || size > maxBatchSize) {
      return Promise.reject(
        new HttpError(
          400,
          'bad_request',
          `batch: ${size} images in one request; the server runs at most ${maxBatchSize} (max batch size)`,
        ),
      );
    }
    if (this.draining)
      return Promise.reject(new HttpError(503, 'draining', 'the service is shutting down; retry on another replica'));
    if (this.queue.length >= maxQueueSize) {
      const s = this.retryAfterSeconds();
      return Promise.reject(
        new HttpError(
          429,
          'queue_full',
          `the queue holds ${this.queue.length} requests (the limit); retry after ${s} s`,
          { 'Retry-After': String(s) },
        ),
      );
    }
    if (signal?.aborted) return Promise.reject(clientClosed());
    return new Promise<R>((resolve, reject) => {
      const p: Pending<T, R> = {
        item,
        size,
        state: 'queued',
        enqueuedAt: this.clock.now(),
        timer: null,
        resolve,
        reject,
      };
      p.timer = this.clock.setTimeout(() => {
        if (p.state === 'queued') this.remove(p);
        this.settle(
          p,
          new HttpError(
            504,
            'deadline_exceeded',
            `no result within ${requestTimeoutMs} ms ` +
              `(${p.state === 'running' ? 'the run was too slow' : 'waited in the queue'}); ` +
              `retry later or with fewer images`,
          ),
        );
      }, requestTimeoutMs);
      signal?.addEventListener(
        'abort',
        () => {
          if (p.state !== 'queued') return;
          this.remove(p);
          this.settle(p, clientClosed());
        },
        { once: true },
      );
      this.queue.push(p);
      this.queuedImages += size;
      this.hooks.onQueueDepth?.(this.queue.length);
      this.pump();
    });
  }

  /**
   * Stops taking requests (503), runs everything queued without waiting for fuller batches, and
   * resolves when no request is queued or running.
   */
  drain(): Promise<void> {
    if (this.drainPromise) return this.drainPromise;
    this.draining = true;
    this.drainPromise = new Promise<void>((resolve) => {
      this.drained = resolve;
    });
    this.pump();
    this.checkDrained();
    return this.drainPromise;
  }

  /** Seconds a refused client should wait: the queued images' runs at the recent run time (≥ 1). */
  retryAfterSeconds(): number {
    const runs = Math.ceil(this.queuedImages / this.options.maxBatchSize) + this.inFlight;
    return Math.max(1, Math.ceil((runs * this.runSeconds) / this.options.concurrency));
  }

  private pump(): void {
    if (this.timer) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
    const { maxBatchSize, maxQueueDelayMs, concurrency } = this.options;
    while (this.inFlight < concurrency && this.queue.length > 0) {
      const waited = this.clock.now() - this.queue[0].enqueuedAt;
      if (!this.draining && this.queuedImages < maxBatchSize && waited < maxQueueDelayMs) {
        this.timer = this.clock.setTimeout(() => this.pump(), Math.max(0, maxQueueDelayMs - waited));
        return;
      }
      // FIFO: take requests in order while they fit (never reorder, so no request starves).
      const batch: Pending<T, R>[] = [];
      let images = 0;
      while (this.queue.length > 0 && images + this.queue[0].size <= maxBatchSize) {
        const p = this.queue.shift()!;
        p.state = 'running';
        images += p.size;
        batch.push(p);
      }
      this.queuedImages -= images;
      this.hooks.onQueueDepth?.(this.queue.length);
      void this.launch(batch, images);
    }
  }

  private async launch(batch: Pending<T, R>[], images: number): Promise<void> {
    this.inFlight++;
    const t0 = this.clock.now();
    let ok = false;
    try {
      const results = await this.run(batch.map((p) => p.item));
      if (results.length !== batch.length)
        throw new Error(`batch runner returned ${results.length} results for ${batch.length} requests`);
      batch.forEach((p, i) => this.settle(p, null, results[i]));
      ok = true;
    } catch (e) {
      const err =
        e instanceof HttpError
          ? e
          : new HttpError(500, 'internal', 'the model run failed; the server log has the details', {}, { cause: e });
      batch.forEach((p) => this.settle(p, err));
    } finally {
      const seconds = (this.clock.now() - t0) / 1000;
      this.runSeconds = this.runSeconds === 0 ? seconds : 0.8 * this.runSeconds + 0.2 * seconds;
      this.hooks.onRun?.(images, batch.length, seconds, ok);
      this.inFlight--;
      this.pump();
      this.checkDrained();
    }
  }

  private remove(p: Pending<T, R>): void {
    const i = this.queue.indexOf(p);
    if (i < 0) return;
    this.queue.splice(i, 1);
    this.queuedImages -= p.size;
    this.hooks.onQueueDepth?.(this.queue.length);
    this.checkDrained();
  }

  private settle(p: Pending<T, R>, err: Error | null, result?: R): void {
    if (p.state === 'done') return;
    p.state = 'done';
    if (p.timer) this.clock.clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(result as R);
  }

  private checkDrained(): void {
    if (this.draining && this.drained && this.queue.length === 0 && this.inFlight === 0) {
      const d = this.drained;
      this.drained = null;
      d();
    }
  }
}

const clientClosed = (): HttpError =>
  new HttpError(499, 'client_closed', 'the client closed the connection before a result');
