import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classMeans, fitRidge, meanAbs, predictClassMean, predictRidge, type FlatPairs } from '../../src/eval/baselines.js';
import { Rng } from '../../src/util/rng.js';

function linearPairs(n: number, P: number, classes: number, rng: Rng, W: Float64Array[]): FlatPairs {
  const noise = rng.fillNormal(new Float32Array(n * P));
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
  const image = new Float32Array(n * P);
  for (let i = 0; i < n; i++) {
    const w = W[labels[i]];
    for (let o = 0; o < P; o++) {
      let s = w[P * P + o]; // bias row
      for (let j = 0; j < P; j++) s += noise[i * P + j] * w[j * P + o];
      image[i * P + o] = s;
    }
  }
  return { n, pixels: P, noise, image, labels };
}

test('ridge recovers an exact per-class linear map (P 8, 2 classes, λ→0)', async () => {
  const P = 8;
  const rng = new Rng(3);
  const W = [0, 1].map(() => rng.fillNormal(new Float64Array((P + 1) * P)));
  const train = linearPairs(400, P, 2, rng, W);
  const fitted = await fitRidge(train, 2, 1e-9, 40);
  for (let c = 0; c < 2; c++) for (let i = 0; i < W[c].length; i++) assert.ok(Math.abs(fitted[c]![i] - W[c][i]) < 1e-4, `class ${c} entry ${i}`);
  const testPairs = linearPairs(20, P, 2, rng, W);
  assert.ok(meanAbs(await predictRidge(fitted, testPairs), testPairs.image) < 1e-4);
});

test('class-mean baseline predicts the exact per-class mean', () => {
  const pairs: FlatPairs = {
    n: 4, pixels: 2,
    noise: new Float32Array(8),
    image: Float32Array.of(1, 2, 3, 4, -1, -1, 0, 0),
    labels: Int32Array.of(0, 0, 1, 1),
  };
  const means = classMeans(pairs, 2);
  assert.deepEqual([...means], [2, 3, -0.5, -0.5]);
  assert.deepEqual([...predictClassMean(means, { ...pairs, n: 1, labels: Int32Array.of(1) })], [-0.5, -0.5]);
  assert.equal(meanAbs(Float32Array.of(1, -1), Float32Array.of(0, 0)), 1);
});

test('a class without training pairs falls back to the overall mean image in both baselines', async () => {
  const train: FlatPairs = { n: 2, pixels: 2, noise: Float32Array.of(1, 0, 0, 1), image: Float32Array.of(1, 3, 3, 5), labels: Int32Array.of(0, 0) };
  const test1: FlatPairs = { n: 1, pixels: 2, noise: Float32Array.of(1, 1), image: Float32Array.of(0, 0), labels: Int32Array.of(1) };
  assert.deepEqual([...predictClassMean(classMeans(train, 2), test1)], [2, 4]);
  const W = await fitRidge(train, 2);
  assert.equal(W[1], null);
  assert.deepEqual([...(await predictRidge(W, test1, Float64Array.of(2, 4)))], [2, 4]);
});
