/**
 * Worker loops that drain a WorkQueue into a reconcile function, with controller-runtime's
 * result handling (peers.md §2d): success → forget the key's backoff; `{requeueAfterMs}` →
 * forget + timed requeue; throw → rate-limited requeue (5 ms · 2^n .. 1000 s, 10 qps bucket).
 * The queue's per-key serialization means one key is never reconciled by two workers at once.
 */
import { silentLogger, type RuntimeLogger } from './logger.js';
import type { OperatorMetrics, ReconcileResult } from './metrics.js';
import type { WorkQueue } from './workqueue.js';

/** What a reconcile may return: nothing, or a timed requeue in ms (level-triggered re-check). */
export type ReconcileOutcome = { requeueAfterMs?: number } | void;

/** Reconcile one 'namespace/name' key; `signal` aborts when the controller stops. Throw to retry with backoff. */
export type Reconciler = (key: string, signal: AbortSignal) => Promise<ReconcileOutcome>;

export interface ControllerOptions {
  /** Controller name: the `controller` metric label and log field. */
  name: string;
  /** The queue the informer handlers add keys to; stop() shuts it down. */
  queue: WorkQueue;
  reconcile: Reconciler;
  /** Concurrent workers (default 2; distinct keys only). */
  workers?: number;
  metrics?: OperatorMetrics;
  log?: RuntimeLogger;
}

/** A running controller. */
export interface RunningController {
  /** Shut the queue down, abort in-flight reconciles' signal, and wait for the workers to return. */
  stop(): Promise<void>;
}

/**
 * Start `workers` loops over `queue`.
 * @throws RangeError when workers is not a positive integer.
 */
export function runController(opts: ControllerOptions): RunningController {
  const { name, queue, reconcile, metrics } = opts;
  const workers = opts.workers ?? 2;
  const log = opts.log ?? silentLogger;
  if (!Number.isInteger(workers) || workers < 1)
    throw new RangeError(`runController(${name}): workers must be a positive integer, got ${workers}`);
  const abort = new AbortController();

  const processOne = async (key: string): Promise<void> => {
    const t0 = performance.now();
    let result: ReconcileResult = 'success';
    try {
      const out = await reconcile(key, abort.signal);
      queue.forget(key);
      const after = out?.requeueAfterMs;
      if (after !== undefined && after >= 0) {
        result = 'requeue';
        queue.addAfter(key, after);
      }
      log.debug({ controller: name, key, result, requeueAfterMs: after }, 'reconciled');
    } catch (err) {
      result = 'error';
      queue.addRateLimited(key); // no-op once stop() shut the queue down
      if (abort.signal.aborted) log.debug({ controller: name, key, err }, 'reconcile ended during stop');
      else
        log.error(
          { controller: name, key, err, retries: queue.numRequeues(key) },
          'reconcile failed; requeued with backoff',
        );
    } finally {
      queue.done(key);
      metrics?.observeReconcile(name, result, (performance.now() - t0) / 1000);
    }
  };

  const loop = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      await processOne(key);
    }
  };

  log.info({ controller: name, workers }, 'controller started');
  const running = Array.from({ length: workers }, () => loop());
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        queue.shutDown();
        abort.abort(new Error(`controller ${name} stopping`));
        await Promise.all(running);
        log.info({ controller: name }, 'controller stopped');
      })();
      return stopped;
    },
  };
}
