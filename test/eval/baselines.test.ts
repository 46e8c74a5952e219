import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  classMeans,
  fitRidge,
  meanAbs,
  predictClassMean,
  predictRidge,
  type FlatPairs,
} from '../../src/eval/baselines.js';
import { Matrix, solve } from 'ml-matrix';
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
  for (let c = 0; c < 2; c++)
    for (let i = 0; i < W[c].length; i++) assert.ok(Math.abs(fitted[c]![i] - W[c][i]) < 1e-4, `class ${c} entry ${i}`);
  const testPairs = linearPairs(20, P, 2, rng, W);
  assert.ok(meanAbs(await predictRidge(fitted, testPairs), testPairs.image) < 1e-4);
});

test('fewer pairs than features: the dual fit = the primal ridge solution on centred data (P 8, n 6)', async () => {
  const P = 8;
  const rng = new Rng(5);
  const train: FlatPairs = {
    n: 6,
    pixels: P,
    noise: rng.fillNormal(new Float32Array(6 * P)),
    image: rng.fillNormal(new Float32Array(6 * P)),
    labels: new Int32Array(6),
  };
  const lambdaPerSample = 0.1;
  const [W] = await fitRidge(train, 1, lambdaPerSample);
  // Primal reference in float64: (XcᵀXc + λI)W = XcᵀYc, bias = ȳ − x̄W.
  const mean = (a: Float32Array, j: number) => [...Array(6).keys()].reduce((s, i) => s + a[i * P + j], 0) / 6;
  const xc = new Matrix(6, P);
  const yc = new Matrix(6, P);
  for (let i = 0; i < 6; i++)
    for (let j = 0; j < P; j++) {
      xc.set(i, j, train.noise[i * P + j] - mean(train.noise, j));
      yc.set(i, j, train.image[i * P + j] - mean(train.image, j));
    }
  const lhs = xc
    .transpose()
    .mmul(xc)
    .add(Matrix.eye(P).mul(lambdaPerSample * 6));
  const ref = solve(lhs, xc.transpose().mmul(yc));
  for (let j = 0; j < P; j++)
    for (let c = 0; c < P; c++) assert.ok(Math.abs(W![j * P + c] - ref.get(j, c)) < 1e-9, `W[${j},${c}]`);
  for (let c = 0; c < P; c++) {
    let b = mean(train.image, c);
    for (let j = 0; j < P; j++) b -= mean(train.noise, j) * ref.get(j, c);
    assert.ok(Math.abs(W![P * P + c] - b) < 1e-9, `bias ${c}`);
  }
});

test('class-mean baseline predicts the exact per-class mean', () => {
  const pairs: FlatPairs = {
    n: 4,
    pixels: 2,
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
  const train: FlatPairs = {
    n: 2,
    pixels: 2,
    noise: Float32Array.of(1, 0, 0, 1),
    image: Float32Array.of(1, 3, 3, 5),
    labels: Int32Array.of(0, 0),
  };
  const test1: FlatPairs = {
    n: 1,
    pixels: 2,
    noise: Float32Array.of(1, 1),
    image: Float32Array.of(0, 0),
    labels: Int32Array.of(1),
  };
  assert.deepEqual([...predictClassMean(classMeans(train, 2), test1)], [2, 4]);
  const W = await fitRidge(train, 2);
  assert.equal(W[1], null);
  assert.deepEqual([...(await predictRidge(W, test1, Float64Array.of(2, 4)))], [2, 4]);
});
