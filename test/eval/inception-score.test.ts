import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inceptionScore } from '../../src/eval/inception-score.js';

/** Logits that put (nearly) all mass on class c of K: `big` on c, 0 elsewhere. */
const confident = (c: number, K: number, big: number): number[] =>
  Array.from({ length: K }, (_, j) => (j === c ? big : 0));

test('uniform predictions give IS = 1 exactly', () => {
  const r = inceptionScore(new Float32Array(20 * 10).fill(3.7), 20, 10, 10);
  assert.equal(r.splits.length, 10);
  for (const s of r.splits) assert.ok(Math.abs(s - 1) < 1e-12, `${s}`);
  assert.ok(Math.abs(r.mean - 1) < 1e-12);
  assert.ok(r.std < 1e-12);
});

test('confident predictions balanced over K classes give IS = K', () => {
  const K = 5;
  const n = 100; // 4 splits of 25 samples, 5 per class
  for (const big of [50, 1000]) {
    // big = 1000: the other classes' probabilities underflow to exactly 0 (their 0·log 0 terms count as 0).
    const logits = new Float32Array(Array.from({ length: n }, (_, i) => confident(i % K, K, big)).flat());
    const r = inceptionScore(logits, n, K, 4);
    for (const s of r.splits) assert.ok(Math.abs(s - K) < 1e-6, `${s}`);
    assert.ok(Math.abs(r.mean - K) < 1e-6);
    assert.ok(r.std < 1e-9);
  }
});

test('hand-computed two-class case, and numpy-style std (ddof 0) over splits', () => {
  // Split 1: p = (3/4, 1/4) and (1/4, 3/4); p(y) = (1/2, 1/2);
  //   KL = 3/4·ln(3/2) + 1/4·ln(1/2) for both, IS = (3/2)^{3/4}·(1/2)^{1/4} ≈ 1.1066.
  // Split 2: two uniform predictions, IS = 1.
  const l3 = Math.log(3);
  const logits = new Float64Array([l3, 0, 0, l3, 0, 0, 2, 2]);
  const a = 1.5 ** 0.75 * 0.5 ** 0.25;
  const r = inceptionScore(logits, 4, 2, 2);
  assert.ok(Math.abs(r.splits[0] - a) < 1e-14, `${r.splits[0]} vs ${a}`);
  assert.ok(Math.abs(r.splits[1] - 1) < 1e-14);
  assert.ok(Math.abs(r.mean - (a + 1) / 2) < 1e-14);
  assert.ok(Math.abs(r.std - (a - 1) / 2) < 1e-14); // population std of two values: half their distance
  const one = inceptionScore(logits.subarray(0, 4), 2, 2, 1);
  assert.ok(Math.abs(one.mean - a) < 1e-14);
  assert.equal(one.std, 0);
});

test('splits are consecutive parts with boundaries ⌊i·n/splits⌋', () => {
  // n = 7, 3 splits → samples [0,2), [2,4), [4,7): uniform (IS 1), two classes (IS 2), one class (IS 1).
  const K = 3;
  const rows = [
    [0, 0, 0],
    [0, 0, 0],
    confident(0, K, 800),
    confident(1, K, 800),
    confident(2, K, 800),
    confident(2, K, 800),
    confident(2, K, 800),
  ];
  const r = inceptionScore(new Float32Array(rows.flat()), 7, K, 3);
  const want = [1, 2, 1];
  r.splits.forEach((s, i) => assert.ok(Math.abs(s - want[i]) < 1e-12, `split ${i}: ${s}`));
});

test('inceptionScore errors', () => {
  assert.throws(() => inceptionScore(new Float32Array(9 * 2), 9, 2, 10), {
    name: 'UsageError',
    message: 'Inception Score: 9 samples cannot fill 10 splits; use at least 10 samples or fewer splits',
  });
  const bad = new Float32Array(4 * 3);
  bad[2 * 3 + 1] = NaN;
  assert.throws(() => inceptionScore(bad, 4, 3, 2), {
    name: 'UsageError',
    message: 'Inception Score: sample 2, class 1 has logit NaN; the classifier produced non-finite values',
  });
  assert.throws(() => inceptionScore(new Float32Array(4), 4, 1, 2), {
    message: 'Inception Score: needs at least 2 classes, got 1',
  });
  assert.throws(() => inceptionScore(new Float32Array(4), 2, 2, 0), {
    message: 'Inception Score: splits must be a positive integer, got 0',
  });
});
