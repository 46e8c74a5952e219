import assert from 'node:assert/strict';
import { test } from 'node:test';
import { precisionRecall } from '../../src/eval/precision-recall.js';
import { Rng } from '../../src/util/rng.js';

const rng = new Rng(7);
const gauss = (n: number, dim: number, shift = 0): Float32Array =>
  new Float32Array(n * dim).map(() => rng.normal() + shift);

/** Brute-force float64 reference: radii = k-th nearest other sample; coverage with distance ≤ radius. */
function naive(
  real: Float32Array,
  nr: number,
  fake: Float32Array,
  nf: number,
  dim: number,
  k: number,
): { precision: number; recall: number } {
  const dist = (a: Float32Array, i: number, b: Float32Array, j: number) => {
    let s = 0;
    for (let t = 0; t < dim; t++) s += (a[i * dim + t] - b[j * dim + t]) ** 2;
    return Math.sqrt(s);
  };
  const radii = (x: Float32Array, n: number) =>
    Array.from(
      { length: n },
      (_, i) =>
        Array.from({ length: n }, (_, j) => (i === j ? Infinity : dist(x, i, x, j))).sort((a, b) => a - b)[k - 1],
    );
  const covered = (q: Float32Array, nq: number, c: Float32Array, nc: number, r: number[]) => {
    let inside = 0;
    for (let i = 0; i < nq; i++) if (r.some((ri, j) => dist(q, i, c, j) <= ri)) inside++;
    return inside / nq;
  };
  return {
    precision: covered(fake, nf, real, nr, radii(real, nr)),
    recall: covered(real, nr, fake, nf, radii(fake, nf)),
  };
}

test('identical sets: precision = recall = 1', async () => {
  const x = gauss(200, 16);
  const r = await precisionRecall(x, 200, x.slice(), 200, 16);
  assert.deepEqual(r, { precision: 1, recall: 1, k: 3, nReal: 200, nFake: 200 });
});

test('far-apart clusters: precision = recall = 0', async () => {
  const r = await precisionRecall(gauss(150, 8), 150, gauss(120, 8, 100), 120, 8);
  assert.equal(r.precision, 0);
  assert.equal(r.recall, 0);
});

test('hand-checked 1-D case (k = 1)', async () => {
  // Real {0, 1, 2, 3, 10}: radii 1, 1, 1, 1, 7. Generated {0.5, 2.9, 5, 6, 30, 31}: radii 2.4, 2.1, 1, 1, 1, 1.
  // Precision: 0.5, 2.9 (near 0..3), 5 and 6 (within 7 of 10) are inside; 30 and 31 are not → 4/6.
  // Recall: 0, 1, 2, 3 lie within 2.4 of 0.5 or 2.1 of 2.9; 10 is 4 from 6 (radius 1), 20 from 30 → 4/5.
  const real = new Float32Array([0, 1, 2, 3, 10]);
  const fake = new Float32Array([0.5, 2.9, 5, 6, 30, 31]);
  const r = await precisionRecall(real, 5, fake, 6, 1, { k: 1 });
  assert.equal(r.precision, 4 / 6);
  assert.equal(r.recall, 4 / 5);
});

test('matches a brute-force float64 implementation on random data, across block sizes and k', async () => {
  const dim = 5;
  const real = gauss(60, dim);
  const fake = new Float32Array(45 * dim).map(() => rng.normal() * 1.5 + 0.7);
  for (const k of [1, 3, 5]) {
    const want = naive(real, 60, fake, 45, dim, k);
    for (const blockElems of [1 << 24, 7, 100]) {
      const r = await precisionRecall(real, 60, fake, 45, dim, { k, blockElems });
      assert.equal(r.precision, want.precision, `k=${k} block=${blockElems}`);
      assert.equal(r.recall, want.recall, `k=${k} block=${blockElems}`);
    }
  }
  assert.ok(naive(real, 60, fake, 45, dim, 3).precision < 1); // the case is not trivial
});

test('maxSamples uses the first samples of each set', async () => {
  const real = gauss(50, 4);
  const fake = gauss(40, 4, 0.3);
  const r = await precisionRecall(real, 50, fake, 40, 4, { maxSamples: 30 });
  const want = naive(real.subarray(0, 120), 30, fake.subarray(0, 120), 30, 4, 3);
  assert.deepEqual(r, { ...want, k: 3, nReal: 30, nFake: 30 });
});

test('precisionRecall errors: k ≥ n, bad k, non-finite features', async () => {
  await assert.rejects(precisionRecall(gauss(3, 2), 3, gauss(10, 2), 10, 2), {
    name: 'UsageError',
    message: 'precision/recall: k = 3 needs at least 4 real samples, got 3; use more samples or a smaller k',
  });
  await assert.rejects(precisionRecall(gauss(10, 2), 10, gauss(5, 2), 5, 2, { k: 5 }), {
    message: 'precision/recall: k = 5 needs at least 6 generated samples, got 5; use more samples or a smaller k',
  });
  await assert.rejects(precisionRecall(gauss(10, 2), 10, gauss(10, 2), 10, 2, { k: 0 }), {
    message: 'precision/recall: k must be a positive integer, got 0',
  });
  const bad = gauss(10, 2);
  bad[7] = Infinity;
  await assert.rejects(precisionRecall(gauss(10, 2), 10, bad, 10, 2), {
    name: 'UsageError',
    message: /^generated features: sample 3, feature 1 is Infinity;/,
  });
});
