import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue, type WorkQueueMetrics } from '../../../src/operator/runtime/workqueue.js';
import { ItemExponentialRateLimiter } from '../../../src/operator/runtime/rate-limiter.js';
import { ManualClock } from '../../../src/util/clock.js';
import { isPending } from './helpers.js';

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
  const waiting = q.get();
  // A waiter is resolved synchronously by the add/done that hands it a key, so "still pending" is exact.
  assert.equal(await isPending(waiting), true, 'k is not handed out while still processing');
  q.done('k');
  assert.equal(await waiting, 'k');
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
  assert.equal(await isPending(p), true, 'nothing to hand out yet');
  q.add('b');
  assert.equal(await p, 'b');
  q.shutDown();
});

test('addAfter delays and keeps the earliest pending delay', async () => {
  const clock = new ManualClock();
  const q = new WorkQueue({ clock });
  q.addAfter('x', 200);
  q.addAfter('x', 30); // earlier wins: the 200 ms timer is cleared
  q.addAfter('x', 500); // later is ignored
  assert.equal(clock.pending(), 1, 'one timer for x');
  assert.equal(clock.nextDue()! - clock.now(), 30);
  clock.advance(29);
  assert.equal(q.len(), 0, 'not due at 29 ms');
  clock.advance(1);
  assert.equal(q.len(), 1, 'queued at 30 ms');
  assert.equal(await q.get(), 'x');
  q.done('x');
  clock.advance(1000);
  assert.equal(q.len(), 0, 'the superseded 200 ms timer was cleared');
  assert.equal(clock.pending(), 0);
  q.shutDown();
});

test('addRateLimited uses the limiter (5, 10, 20 ms); forget resets numRequeues', async () => {
  const { m, sink } = countingMetrics();
  const clock = new ManualClock();
  const q = new WorkQueue({ rateLimiter: new ItemExponentialRateLimiter(5, 1000), metrics: sink, clock });
  for (const delay of [5, 10, 20]) {
    q.addRateLimited('r');
    assert.equal(clock.nextDue()! - clock.now(), delay);
    clock.advance(delay - 1);
    assert.equal(q.len(), 0, `not before ${delay} ms`);
    clock.advance(1);
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
  const clock = new ManualClock();
  const q = new WorkQueue({ clock });
  const w1 = q.get(),
    w2 = q.get();
  q.addAfter('late', 60_000); // would keep the process alive if not cleared/unref'd
  q.shutDown();
  assert.equal(clock.pending(), 0, 'the delay timer was cleared');
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
