/**
 * Gradient checks of the CNN ops (Relu, LogSoftmax, Conv, 2×2 average pooling, a small conv net with
 * softmax cross-entropy): onnxruntime's forward + generated backward (float32) against the float64
 * reference interpreter (forward 1e-5, gradients vs central finite differences 1e-3), plus Conv /
 * ConvTranspose forward values against hand-computed ones and onnxruntime.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Graph, type Value } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import * as op from '../../src/graph/ops.js';
import { evaluate } from '../../src/graph/reference.js';
import { OrtSession } from '../../src/graph/session.js';
import { checkGradients, mulberry32, probeLoss, randn, randomParams, relErr } from './helpers.js';

test('Conv, ConvTranspose forward: hand-computed 3×3 case; adjoint identity ⟨conv(x), y⟩ = ⟨x, convT(y)⟩', async () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [1, 1, 3, 3]);
  const w = g.input('w', 'float64', [1, 1, 2, 2]);
  const b = g.input('b', 'float64', [1]);
  const yv = op.conv2d(x, w, b, { pads: 0 }); // [1,1,2,2]
  const zv = op.conv2d(x, w, undefined, { pads: 1 }); // [1,1,4,4]
  const [y, z] = evaluate(
    g,
    { x: Float64Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9), w: Float64Array.of(1, 0, 0, -1), b: Float64Array.of(0.5) },
    [yv, zv],
    () => assert.fail(),
  );
  // y[i,j] = x[i,j] − x[i+1,j+1] + 0.5 = −4 + 0.5 everywhere.
  assert.deepEqual([...(y.data as Float64Array)], [-3.5, -3.5, -3.5, -3.5]);
  // Padded: z[i,j] = x[i−1,j−1] − x[i,j] (zero outside); corners 0 − 1 = −1 and 9 − 0 = 9.
  assert.deepEqual(z.dims, [1, 1, 4, 4]);
  assert.deepEqual([...(z.data as Float64Array)], [-1, -2, -3, 0, -4, -4, -4, 3, -7, -4, -4, 6, 0, 7, 8, 9]);

  // Adjoint identity and onnxruntime agreement on a random [2,3,6,5] ⊛ [4,3,3,3] with pads 1 (float32).
  const rng = mulberry32(7);
  const h = new Graph();
  const X = h.input('X', 'float32', ['B', 3, 6, 5]);
  const W = h.input('W', 'float32', [4, 3, 3, 3]);
  const Y = h.input('Y', 'float32', ['B', 4, 6, 5]);
  const cx = op.conv2d(X, W, undefined, { pads: 1 });
  const ty = op.convTranspose2d(Y, W, { pads: 1 });
  assert.deepEqual(ty.shape, ['B', 3, 6, 5]);
  const feeds = {
    X: { dtype: 'float32' as const, dims: [2, 3, 6, 5], data: randn(rng, 180) },
    W: { dtype: 'float32' as const, dims: [4, 3, 3, 3], data: randn(rng, 108) },
    Y: { dtype: 'float32' as const, dims: [2, 4, 6, 5], data: randn(rng, 240) },
  };
  const ref = evaluate(h, feeds, [cx, ty], () => assert.fail());
  const dot = (a: ArrayLike<number>, c: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * c[i], 0);
  const lhs = dot(ref[0].data as Float64Array, feeds.Y.data);
  const rhs = dot(feeds.X.data, ref[1].data as Float64Array);
  assert.ok(Math.abs(lhs - rhs) <= 1e-9 * Math.abs(lhs), `⟨conv x, y⟩ = ${lhs} vs ⟨x, convT y⟩ = ${rhs}`);
  const s = await OrtSession.create(toOnnx(h, { outputs: { cx, ty } }), { threads: 1 });
  const out = await s.run(feeds);
  await s.release();
  assert.deepEqual(out.cx.dims, [2, 4, 6, 5]);
  assert.ok(relErr(out.cx.data as Float32Array, ref[0].data as Float64Array) < 1e-5);
  assert.ok(relErr(out.ty.data as Float32Array, ref[1].data as Float64Array) < 1e-5);
});

test('upsampleNearest ×2 and avgPool2d: hand-computed values, reference = onnxruntime', async () => {
  const g = new Graph();
  const x = g.input('x', 'float32', ['B', 1, 2, 2]);
  const up = op.upsampleNearest(x, 2);
  const down = op.avgPool2d(up, 2); // pooling the upsampled image gives it back
  const pooled = op.avgPool2d(x, 2);
  assert.deepEqual(up.shape, ['B', 1, 4, 4]);
  const feeds = { x: { dtype: 'float32' as const, dims: [1, 1, 2, 2], data: Float32Array.of(1, 2, 3, 4) } };
  const expected = [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4];
  const ref = evaluate(g, feeds, [up, down, pooled], () => assert.fail());
  assert.deepEqual([...(ref[0].data as Float64Array)], expected);
  assert.deepEqual([...(ref[1].data as Float64Array)], [1, 2, 3, 4]);
  assert.deepEqual([...(ref[2].data as Float64Array)], [2.5]);
  const s = await OrtSession.create(toOnnx(g, { outputs: { up, down, pooled } }), { threads: 1 });
  const out = await s.run(feeds);
  await s.release();
  assert.deepEqual([...(out.up.data as Float32Array)], expected);
  assert.deepEqual([...(out.down.data as Float32Array)], [1, 2, 3, 4]);
  assert.deepEqual([...(out.pooled.data as Float32Array)], [2.5]);
});

test('conv2d shape errors name the op and the problem', () => {
  const g = new Graph();
  const x = g.input('x', 'float32', ['B', 3, 8, 8]);
  assert.throws(() => op.conv2d(x, g.param('w', [4, 2, 3, 3])), /Conv: input channels differ/);
  assert.throws(() => op.conv2d(x, g.param('w2', [4, 3, 9, 9])), /Conv: kernel 9×9 with pads 0 does not fit input 8×8/);
  assert.throws(() => op.conv2d(x, g.param('w3', [4, 3, 3, 3]), g.param('b3', [3])), /Conv: bias must be \[4\]/);
  assert.throws(() => op.avgPool2d(x, 3), /AveragePool: spatial dims \[B,3,8,8\] must be static and divisible by 3/);
  assert.deepEqual(op.conv2d(x, g.param('w4', [4, 3, 5, 5]), undefined, { pads: 2 }).shape, ['B', 4, 8, 8]);
});

interface Case {
  build(g: Graph): { y: Value; wrt: Value[] };
}

const cases: Record<string, Case> = {
  'Relu [B,C,H,W]': {
    build: (g) => {
      const x = g.param('x', [2, 3, 2, 2]);
      return { y: op.relu(x), wrt: [x] };
    },
  },
  'LogSoftmax [B,K]': {
    build: (g) => {
      const x = g.param('x', [3, 5]);
      return { y: op.logSoftmax(x), wrt: [x] };
    },
  },
  'Conv [2,3,5,4] ⊛ [4,3,3,3] + b, pads 1': {
    build: (g) => {
      const x = g.param('x', [2, 3, 5, 4]);
      const w = g.param('w', [4, 3, 3, 3]);
      const b = g.param('b', [4]);
      return { y: op.conv2d(x, w, b, { pads: 1 }), wrt: [x, w, b] };
    },
  },
  'Conv [2,2,6,6] ⊛ [3,2,5,5], pads 2, and ⊛ [3,2,2,3], pads 0 (non-square kernel)': {
    build: (g) => {
      const x = g.param('x', [2, 2, 6, 6]);
      const w = g.param('w', [3, 2, 5, 5]);
      const v = g.param('v', [3, 2, 2, 3]);
      const y = op.concat(
        [op.reshape(op.conv2d(x, w, undefined, { pads: 2 }), [2, 108]), op.reshape(op.conv2d(x, v), [2, 60])],
        1,
      );
      return { y, wrt: [x, w, v] };
    },
  },
  'avgPool2d 2×2 [2,3,4,6]': {
    build: (g) => {
      const x = g.param('x', [2, 3, 4, 6]);
      return { y: op.avgPool2d(x, 2), wrt: [x] };
    },
  },
};

for (const [name, c] of Object.entries(cases)) {
  test(`gradient: ${name}`, async () => {
    const rng = mulberry32(name.length * 131);
    const g = new Graph(name);
    const { y, wrt } = c.build(g);
    await checkGradients({ graph: g, loss: probeLoss(y, rng), wrt, params: randomParams(g, rng), forward: { y } });
  });
}

test('gradient: conv → relu → pool → conv → fc → softmax cross-entropy, symbolic batch fed B = 3', async () => {
  const rng = mulberry32(5);
  const g = new Graph('cnn');
  const x = g.input('x', 'float32', ['B', 1, 8, 8]);
  const labels = g.input('labels', 'int64', ['B']);
  const w1 = g.param('w1', [3, 1, 3, 3]);
  const b1 = g.param('b1', [3]);
  const w2 = g.param('w2', [2, 3, 3, 3]);
  const fc = g.param('fc', [32, 4]);
  const fb = g.param('fb', [4]);
  const h = op.avgPool2d(op.relu(op.conv2d(x, w1, b1, { pads: 1 })), 2); // [B,3,4,4]
  const f = op.reshape(op.conv2d(h, w2, undefined, { pads: 1 }), ['B', 32]);
  const logits = op.add(op.matmul(f, fc), fb);
  const nll = op.neg(op.reduceSum(op.mul(op.oneHot(labels, 4), op.logSoftmax(logits)), [1])); // [B]
  const loss = op.reduceMean(nll, [0]);
  const feeds = {
    x: { dtype: 'float32' as const, dims: [3, 1, 8, 8], data: randn(rng, 192) },
    labels: { dtype: 'int64' as const, dims: [3], data: BigInt64Array.of(0n, 3n, 1n) },
  };
  await checkGradients({
    graph: g,
    loss,
    wrt: [x, w1, b1, w2, fc, fb],
    params: randomParams(g, rng),
    feeds,
    forward: { logits },
  });
});
