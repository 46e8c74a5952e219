import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue, type WorkQueueMetrics } from '../../../src/operator/runtime/workqueue.js';
import { ItemExponentialRateLimiter } from '../../../src/operator/runtime/rate-limiter.js';
import { sleep } from './helpers.js';

function countingMetrics() {
  const m = { adds: 0, retries: 0, depths: [] as number[] };
  const sink: WorkQueueMetrics = { added: () => m.adds++, retried: () => m.retries++, depth: (n) => m.depths.push(n) };
  return { m, sink };
}

test('add dedupes queued keys and keeps FIFO order', async () => {
  const { m, sink } = countingMetrics();
  const q = new WorkQueue({ metrics: sink });
  q.add('ns/a');
  q.add('ns/b');
  q.add('ns/a');
  assert.equal(q.len(), 2);
  assert.equal(m.adds, 2);
  assert.equal(await q.get(), 'ns/a');
  assert.equal(await q.get(), 'ns/b');
  assert.equal(q.len(), 0);
  assert.deepEqual(m.depths, [1, 2, 1, 0]);
  q.shutDown();
});

test('per-key serialization: a key added while processing is held back and re-queued once at done', async () => {
  const q = new WorkQueue();
  q.add('k');
  const k = await q.get();
  assert.equal(k, 'k');
  q.add('k');
  q.add('k'); // dirty while processing: not handed to a second worker
  q.add('other');
  assert.equal(q.len(), 1);
  assert.equal(await q.get(), 'other');
  let second: string | undefined = 'pending';
  const waiting = q.get().then((v) => {
    second = v;
  });
  await sleep(10);
  assert.equal(second, 'pending', 'k is not handed out while still processing');
  q.done('k');
  await waiting;
  assert.equal(second, 'k');
  q.done('k');
  q.done('other');
  assert.equal(q.len(), 0, 'the dirty re-queue happened once');
  q.shutDown();
});

test('a key done without re-adding is not re-queued; get waits for a later add', async () => {
  const q = new WorkQueue();
  q.add('a');
  q.done((await q.get()) as string);
  assert.equal(q.len(), 0);
  const p = q.get();
  setTimeout(() => q.add('b'), 5);
  assert.equal(await p, 'b');
  q.shutDown();
});

test('addAfter delays and keeps the earliest pending delay', async () => {
  const q = new WorkQueue();
  const t0 = Date.now();
  q.addAfter('x', 200);
  q.addAfter('x', 30); // earlier wins
  q.addAfter('x', 500); // later is ignored
  assert.equal(q.len(), 0);
  assert.equal(await q.get(), 'x');
  const waited = Date.now() - t0;
  assert.ok(waited >= 25 && waited < 190, `waited ${waited} ms (the 200 ms add must not win)`);
  q.done('x');
  await sleep(250);
  assert.equal(q.len(), 0, 'the superseded 200 ms timer was cleared');
  q.shutDown();
});

test('addRateLimited uses the limiter (5, 10, 20 ms); forget resets numRequeues', async () => {
  const { m, sink } = countingMetrics();
  const q = new WorkQueue({ rateLimiter: new ItemExponentialRateLimiter(5, 1000), metrics: sink });
  for (let i = 0; i < 3; i++) {
    q.addRateLimited('r');
    assert.equal(await q.get(), 'r');
    q.done('r');
  }
  assert.equal(q.numRequeues('r'), 3);
  assert.equal(m.retries, 3);
  q.forget('r');
  assert.equal(q.numRequeues('r'), 0);
  q.shutDown();
});

test('shutDown resolves waiting and later get() with undefined, drops queued and delayed keys', async () => {
  const q = new WorkQueue();
  const w1 = q.get(),
    w2 = q.get();
  q.addAfter('late', 60_000); // would keep the process alive if not cleared/unref'd
  q.shutDown();
  assert.deepEqual(await Promise.all([w1, w2]), [undefined, undefined]);
  q.add('x');
  assert.equal(q.len(), 0);
  assert.equal(await q.get(), undefined);
  assert.equal(q.shuttingDown, true);
  // A key being processed at shutdown is not re-queued by done().
  const q2 = new WorkQueue();
  q2.add('p');
  await q2.get();
  q2.add('p');
  q2.shutDown();
  q2.done('p');
  assert.equal(q2.len(), 0);
});
