import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BucketRateLimiter,
  ItemExponentialRateLimiter,
  MaxOfRateLimiter,
  defaultControllerRateLimiter,
} from '../../../src/operator/runtime/rate-limiter.js';

test('per-item exponential: 5 ms · 2^n per key, capped, reset by forget', () => {
  const l = new ItemExponentialRateLimiter(5, 1000);
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8].map(() => l.when('a')),
    [5, 10, 20, 40, 80, 160, 320, 640],
  );
  assert.equal(l.when('a'), 1000);
  assert.equal(l.when('a'), 1000);
  assert.equal(l.retries('a'), 10);
  assert.equal(l.when('b'), 5, 'keys back off independently');
  l.forget('a');
  assert.equal(l.retries('a'), 0);
  assert.equal(l.when('a'), 5);
  // Default cap is 1000 s, also after 2^n overflows.
  const d = new ItemExponentialRateLimiter();
  for (let i = 0; i < 2000; i++) d.when('k');
  assert.equal(d.when('k'), 1_000_000);
  assert.throws(() => new ItemExponentialRateLimiter(0), /0 < baseMs <= maxMs/);
});

test('token bucket: burst free, then 100 ms spacing at 10 qps; refills with the clock', () => {
  let t = 0;
  const b = new BucketRateLimiter(10, 100, () => t);
  for (let i = 0; i < 100; i++) assert.equal(b.when('x'), 0);
  assert.deepEqual([b.when('x'), b.when('y'), b.when('z')], [100, 200, 300]);
  t = 300; // the 3 owed tokens are repaid: bucket empty, next waits one token
  assert.equal(b.when('x'), 100);
  t = 10_300; // 10 s refill = 100 tokens, 1 owed → 99 available
  for (let i = 0; i < 99; i++) assert.equal(b.when('x'), 0);
  assert.equal(b.when('x'), 100);
  assert.equal(b.retries('x'), 0);
});

test('max-of and the default controller limiter: per-item backoff until the bucket dominates', () => {
  const t = 0;
  const d = defaultControllerRateLimiter(() => t);
  assert.deepEqual([d.when('a'), d.when('a'), d.when('a')], [5, 10, 20]);
  assert.equal(d.retries('a'), 3);
  d.forget('a');
  assert.equal(d.retries('a'), 0);
  // 97 more fresh keys use up the burst of 100 (3 already taken); then the bucket sets the delay.
  for (let i = 0; i < 97; i++) assert.equal(d.when(`k${i}`), 5);
  assert.equal(d.when('fresh'), 100);
  const m = new MaxOfRateLimiter(new ItemExponentialRateLimiter(50, 60), new BucketRateLimiter(1, 1, () => t));
  assert.equal(m.when('q'), 50);
  assert.equal(m.when('q'), 1000, 'the bucket is consulted (and reserves) even when it was not the max');
  assert.throws(() => new MaxOfRateLimiter(), /at least one/);
});
