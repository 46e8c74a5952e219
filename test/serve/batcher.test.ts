/**
 * DynamicBatcher with a recording runner (no model): merging up to maxBatchSize images in FIFO order,
 * the queue delay, 429 with Retry-After, deadlines (a queued request leaves the queue and is never
 * run), client aborts, failures, and drain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { DynamicBatcher, type BatcherOptions } from '../../src/serve/batcher.js';
import { HttpError } from '../../src/service/errors.js';

interface Item {
  readonly id: string;
  readonly n: number;
}

/** A batcher whose runner records each batch's ids and takes `runMs`; result = id + batch index. */
function make(o: Partial<BatcherOptions> = {}, runMs = 20) {
  const batches: string[][] = [];
  const depths: number[] = [];
  const runs: { images: number; requests: number; ok: boolean }[] = [];
  let fail = false;
  const b = new DynamicBatcher<Item, string>(
    { maxBatchSize: 8, maxQueueDelayMs: 10, maxQueueSize: 100, requestTimeoutMs: 5000, concurrency: 1, ...o },
    async (items) => {
      batches.push(items.map((i) => i.id));
      await sleep(runMs);
      if (fail) throw new Error('onnxruntime exploded');
      return items.map((i) => `${i.id}@${batches.length - 1}`);
    },
    { onQueueDepth: (d) => depths.push(d), onRun: (images, requests, _s, ok) => runs.push({ images, requests, ok }) },
  );
  const submit = (id: string, n = 1, signal?: AbortSignal) => b.submit({ id, n }, n, signal);
  return { b, batches, depths, runs, submit, setFail: (v: boolean) => (fail = v) };
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
  const { batches, runs, submit } = make({ maxBatchSize: 8, maxQueueDelayMs: 30 });
  // 3 + 3 + 3 images: the first two fit one batch (6 ≤ 8), the third would make 9, so it waits.
  const results = await Promise.all([submit('a', 3), submit('b', 3), submit('c', 3), submit('d', 2)]);
  assert.deepEqual(batches, [
    ['a', 'b'],
    ['c', 'd'],
  ]);
  assert.deepEqual(results, ['a@0', 'b@0', 'c@1', 'd@1']);
  assert.deepEqual(
    runs.map((r) => [r.images, r.requests, r.ok]),
    [
      [6, 2, true],
      [5, 2, true],
    ],
  );
});

test('a full batch starts at once; a partial one waits maxQueueDelayMs', async () => {
  const { submit } = make({ maxBatchSize: 4, maxQueueDelayMs: 300 }, 1);
  let t = performance.now();
  await submit('full', 4);
  assert.ok(performance.now() - t < 150, `full batch took ${performance.now() - t} ms`);
  t = performance.now();
  await submit('partial', 1);
  const waited = performance.now() - t;
  assert.ok(waited >= 290 && waited < 1000, `partial batch waited ${waited} ms`);
});

test('requests arriving during a run fill the next batch (concurrency 1)', async () => {
  const { batches, submit } = make({ maxBatchSize: 8, maxQueueDelayMs: 0 }, 60);
  const first = submit('a');
  await sleep(10); // a is running now
  await Promise.all([first, submit('b'), submit('c'), submit('d')]);
  assert.deepEqual(batches, [['a'], ['b', 'c', 'd']]);
});

test('queue full → 429 queue_full with an integer Retry-After ≥ 1; the queued ones still finish', async () => {
  const { b, submit } = make({ maxQueueSize: 2, maxQueueDelayMs: 0 }, 100);
  const running = submit('r');
  await sleep(10);
  const queued = [submit('q1'), submit('q2')];
  assert.equal(b.depth, 2);
  const e = await httpError(submit('q3'));
  assert.equal(e.status, 429);
  assert.equal(e.code, 'queue_full');
  assert.match(e.headers['Retry-After'], /^[1-9]\d*$/);
  assert.deepEqual(await Promise.all([running, ...queued]), ['r@0', 'q1@1', 'q2@1']);
});

test('deadline while queued → 504 and the request is never run; while running → 504, result dropped', async () => {
  const { b, batches, submit } = make({ requestTimeoutMs: 80, maxQueueDelayMs: 0 }, 150);
  const running = submit('slow'); // runs 150 ms > 80 ms deadline
  await sleep(10);
  const queued = submit('waits'); // queued behind it; its deadline passes before the run ends
  const [e1, e2] = await Promise.all([httpError(running), httpError(queued)]);
  assert.equal(e1.status, 504);
  assert.match(e1.message, /run was too slow/);
  assert.equal(e2.status, 504);
  assert.match(e2.message, /waited in the queue/);
  assert.equal(b.depth, 0);
  await sleep(200);
  assert.deepEqual(batches, [['slow']], 'the timed-out queued request must not reach the runner');
});

test('a client abort drops a queued request (499) without running it', async () => {
  const { batches, submit } = make({ maxQueueDelayMs: 0 }, 60);
  const running = submit('a');
  await sleep(10);
  const ac = new AbortController();
  const gone = submit('b', 1, ac.signal);
  const kept = submit('c');
  ac.abort();
  assert.equal((await httpError(gone)).status, 499);
  assert.deepEqual(await Promise.all([running, kept]), ['a@0', 'c@1']);
  assert.deepEqual(batches, [['a'], ['c']]);
});

test('a failing run rejects each of its requests with 500, and the next run still works', async () => {
  const { runs, submit, setFail } = make({ maxQueueDelayMs: 0 });
  setFail(true);
  const e = await httpError(submit('x'));
  assert.equal(e.status, 500);
  assert.equal(e.code, 'internal');
  setFail(false);
  assert.equal(await submit('y'), 'y@1');
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

test('drain runs the queue without waiting for the delay, then refuses new work with 503', async () => {
  const { b, batches, depths, submit } = make({ maxQueueDelayMs: 10_000 }, 5);
  const queued = [submit('a'), submit('b')];
  await sleep(20);
  assert.deepEqual(batches, [], 'still waiting for a fuller batch');
  const t = performance.now();
  await b.drain();
  assert.ok(performance.now() - t < 500);
  assert.deepEqual(await Promise.all(queued), ['a@0', 'b@0']);
  assert.equal((await httpError(submit('late'))).status, 503);
  assert.equal(depths.at(-1), 0);
  await b.drain(); // idempotent
});
