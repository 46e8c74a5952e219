/**
 * DynamicBatcher with a recording runner (no model): merging up to maxBatchSize images in FIFO order,
 * the queue delay, 429 with Retry-After, deadlines (a queued request leaves the queue and is never
 * run), client aborts, failures, and drain.
 *
 * Time is a ManualClock and every run ends only when the test calls `finish()`, so each test states
 * exactly when a batch starts (at which clock reading, after which run) instead of timing it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DynamicBatcher, type BatcherOptions } from '../../src/serve/batcher.js';
import { HttpError } from '../../src/service/errors.js';
import { ManualClock } from '../../src/util/clock.js';

interface Item {
  readonly id: string;
  readonly n: number;
}

/**
 * A batcher on a ManualClock whose runner records each batch's ids and stays in flight until
 * `finish()`; a run's result for an item is `id@batchIndex`.
 */
function make(o: Partial<BatcherOptions> = {}) {
  const clock = new ManualClock();
  const batches: string[][] = [];
  const depths: number[] = [];
  const runs: { images: number; requests: number; seconds: number; ok: boolean }[] = [];
  const inFlight: { resolve(): void; reject(e: Error): void }[] = [];
  const b = new DynamicBatcher<Item, string>(
    {
      maxBatchSize: 8,
      maxQueueDelayMs: 10,
      maxQueueSize: 100,
      requestTimeoutMs: 5000,
      concurrency: 1,
      clock,
      ...o,
    },
    (items) => {
      const index = batches.push(items.map((i) => i.id)) - 1;
      return new Promise((resolve, reject) =>
        inFlight.push({ resolve: () => resolve(items.map((i) => `${i.id}@${index}`)), reject }),
      );
    },
    {
      onQueueDepth: (d) => depths.push(d),
      onRun: (images, requests, seconds, ok) => runs.push({ images, requests, seconds, ok }),
    },
  );
  const submit = (id: string, n = 1, signal?: AbortSignal) => b.submit({ id, n }, n, signal);
  /** Ends the oldest run in flight: with its results, or failing with `err`. */
  const finish = (err?: Error) => {
    const run = inFlight.shift();
    assert.ok(run, 'no run in flight');
    if (err) run.reject(err);
    else run.resolve();
  };
  return { b, clock, batches, depths, runs, submit, finish };
}

/** Awaits a rejection and returns it as an HttpError. */
async function httpError(p: Promise<unknown>): Promise<HttpError> {
  const e = await p.then(
    () => assert.fail('expected a rejection'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof HttpError, `expected HttpError, got ${String(e)}`);
  return e;
}

test('concurrent requests are merged FIFO into runs of at most maxBatchSize images', async () => {
  const { clock, batches, runs, submit, finish } = make({ maxBatchSize: 8, maxQueueDelayMs: 30 });
  // 3 + 3 + 3 images: the first two fit one batch (6 ≤ 8), the third would make 9, so it waits.
  const first = [submit('a', 3), submit('b', 3)];
  const second = [submit('c', 3), submit('d', 2)];
  assert.deepEqual(batches, [['a', 'b']], 'the third request filled the queue past 8 images: a and b run at once');
  finish();
  assert.deepEqual(await Promise.all(first), ['a@0', 'b@0']);
  // c and d (5 images) are a partial batch now: they wait the queue delay, counted from c's arrival.
  clock.advance(29);
  assert.deepEqual(batches, [['a', 'b']]);
  clock.advance(1);
  assert.deepEqual(batches, [
    ['a', 'b'],
    ['c', 'd'],
  ]);
  finish();
  assert.deepEqual(await Promise.all(second), ['c@1', 'd@1']);
  assert.deepEqual(
    runs.map((r) => [r.images, r.requests, r.ok]),
    [
      [6, 2, true],
      [5, 2, true],
    ],
  );
});

test('a full batch starts without the clock moving; a partial one starts at maxQueueDelayMs, not before', async () => {
  const { clock, batches, submit, finish } = make({ maxBatchSize: 4, maxQueueDelayMs: 300 });
  const t0 = clock.now();
  const full = submit('full', 4);
  assert.deepEqual(batches, [['full']]);
  assert.equal(clock.now(), t0);
  finish();
  assert.equal(await full, 'full@0');

  const partial = submit('partial', 1);
  clock.advance(299);
  assert.deepEqual(batches, [['full']], 'at maxQueueDelayMs − 1 the partial batch still waits');
  clock.advance(1);
  assert.deepEqual(batches, [['full'], ['partial']], 'at maxQueueDelayMs it runs');
  finish();
  assert.equal(await partial, 'partial@1');

  // The delay counts from the oldest request: a later arrival does not restart it.
  const older = submit('older', 1);
  clock.advance(200);
  const newer = submit('newer', 1);
  clock.advance(99);
  assert.equal(batches.length, 2);
  clock.advance(1);
  assert.deepEqual(batches.at(-1), ['older', 'newer']);
  finish();
  assert.deepEqual(await Promise.all([older, newer]), ['older@2', 'newer@2']);
});

test('requests arriving during a run fill the next batch (concurrency 1)', async () => {
  const { batches, submit, finish } = make({ maxBatchSize: 8, maxQueueDelayMs: 0 });
  const first = submit('a');
  assert.deepEqual(batches, [['a']], 'a is running');
  const rest = [submit('b'), submit('c'), submit('d')];
  assert.deepEqual(batches, [['a']], 'the only session is busy: b, c and d wait');
  finish();
  assert.equal(await first, 'a@0');
  assert.deepEqual(batches, [['a'], ['b', 'c', 'd']]);
  finish();
  assert.deepEqual(await Promise.all(rest), ['b@1', 'c@1', 'd@1']);
});

test('queue full → 429 queue_full, Retry-After from the recent run time; the queued ones still finish', async () => {
  const { b, clock, runs, submit, finish } = make({ maxQueueSize: 2, maxQueueDelayMs: 0 });
  // One run of 2 s sets the run-time estimate.
  const warm = submit('warm');
  clock.advance(2000);
  finish();
  assert.equal(await warm, 'warm@0');
  assert.equal(runs[0].seconds, 2);

  const running = submit('r');
  const queued = [submit('q1'), submit('q2')];
  assert.equal(b.depth, 2);
  const e = await httpError(submit('q3'));
  assert.equal(e.status, 429);
  assert.equal(e.code, 'queue_full');
  // 2 queued images (one run of ≤ 8) + 1 run in flight, 2 s each, on 1 session → 4 s.
  assert.equal(e.headers['Retry-After'], '4');
  assert.match(e.message, /the queue holds 2 requests \(the limit\); retry after 4 s/);
  finish();
  assert.equal(await running, 'r@1');
  finish();
  assert.deepEqual(await Promise.all(queued), ['q1@2', 'q2@2']);
});

test('deadline while queued → 504 and the request is never run; while running → 504, result dropped', async () => {
  const { b, clock, batches, submit, finish } = make({ requestTimeoutMs: 80, maxQueueDelayMs: 0 });
  const running = httpError(submit('slow'));
  const queued = httpError(submit('waits')); // queued behind it; its deadline passes before the run ends
  clock.advance(79);
  assert.equal(b.depth, 1, 'at requestTimeoutMs − 1 the queued request is still waiting');
  clock.advance(1);
  assert.equal(b.depth, 0, 'at requestTimeoutMs it left the queue');
  const [e1, e2] = await Promise.all([running, queued]);
  assert.equal(e1.status, 504);
  assert.match(e1.message, /run was too slow/);
  assert.equal(e2.status, 504);
  assert.match(e2.message, /waited in the queue/);
  finish(); // the slow run ends after its deadline; nothing is left to run
  await b.drain();
  assert.deepEqual(batches, [['slow']], 'the timed-out queued request must not reach the runner');
});

test('a client abort drops a queued request (499) without running it', async () => {
  const { b, batches, submit, finish } = make({ maxQueueDelayMs: 0 });
  const running = submit('a');
  const ac = new AbortController();
  const gone = submit('b', 1, ac.signal);
  const kept = submit('c');
  ac.abort();
  assert.equal(b.depth, 1);
  assert.equal((await httpError(gone)).status, 499);
  finish();
  assert.equal(await running, 'a@0');
  finish();
  assert.equal(await kept, 'c@1');
  assert.deepEqual(batches, [['a'], ['c']]);
});

test('a failing run rejects each of its requests with 500, and the next run still works', async () => {
  const { runs, submit, finish } = make({ maxQueueDelayMs: 0 });
  const failing = httpError(submit('x'));
  finish(new Error('onnxruntime exploded'));
  const e = await failing;
  assert.equal(e.status, 500);
  assert.equal(e.code, 'internal');
  assert.match(String((e.cause as Error).message), /onnxruntime exploded/);
  const next = submit('y');
  finish();
  assert.equal(await next, 'y@1');
  assert.deepEqual(
    runs.map((r) => r.ok),
    [false, true],
  );
});

test('size outside [1, maxBatchSize] → 400 naming the limit', async () => {
  const { submit } = make({ maxBatchSize: 8 });
  const e = await httpError(submit('big', 9));
  assert.equal(e.status, 400);
  assert.match(e.message, /9 images .* at most 8/);
});

test('drain runs the queue without the clock moving, then refuses new work with 503', async () => {
  const { b, clock, batches, depths, submit, finish } = make({ maxQueueDelayMs: 10_000 });
  const t0 = clock.now();
  const queued = [submit('a'), submit('b')];
  assert.deepEqual(batches, [], 'a partial batch waits for a fuller one');
  const drained = b.drain();
  assert.deepEqual(batches, [['a', 'b']], 'drain started the partial batch at once');
  assert.equal(clock.now(), t0);
  finish();
  await drained;
  assert.deepEqual(await Promise.all(queued), ['a@0', 'b@0']);
  assert.equal((await httpError(submit('late'))).status, 503);
  assert.equal(depths.at(-1), 0);
  assert.equal(b.drain(), drained, 'idempotent');
});
