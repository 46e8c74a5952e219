/**
 * The op registry (src/graph/ops/registry.ts): every registered op has all its parts, every builder
 * emits only registered ops, and every registered op is emitted by some builder (no unreachable op).
 * Also ReduceMax, which only the mixture teacher builds: reference forward equals onnxruntime.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import * as op from '../../src/graph/ops.js';
import { OPS } from '../../src/graph/ops/registry.js';
import { evaluate } from '../../src/graph/reference.js';
import { OrtSession } from '../../src/graph/session.js';

test('every registered op has a shape rule, a gradient (or a marker), a reference kernel and a tfjs mapping', () => {
  assert.ok(OPS.size > 0);
  for (const [type, def] of OPS) {
    assert.equal(def.type, type, `${type} is registered under its own type`);
    assert.equal(typeof def.shape, 'function', `${type}: shape rule`);
    assert.ok(
      typeof def.grad === 'function' || def.grad === 'zero' || def.grad === 'none',
      `${type}: gradient rule or 'zero' / 'none' marker`,
    );
    assert.equal(typeof def.reference, 'function', `${type}: float64 reference kernel`);
    assert.equal(typeof def.tfjs, 'function', `${type}: tfjs mapping`);
  }
});

test('the builders (and the backward pass) emit exactly the registered ops', () => {
  const g = new Graph();
  const x = g.param('x', [2, 3]);
  const img = g.param('img', [1, 2, 4, 4]);
  const w = g.param('w', [2, 2, 3, 3]);
  const labels = g.input('labels', 'int64', [2]);
  const pos = op.add(op.mul(x, x), op.scalar(x, 1));
  const ys = [
    op.sub(op.div(x, pos), op.min(x, op.neg(x))),
    op.where(op.less(x, pos), op.abs(x), op.sign(x)),
    op.add(op.sqrt(pos), op.relu(x)),
    op.add(op.log(pos), op.reciprocal(pos)),
    op.gelu(op.exp(x)),
    op.sum([x, x, x]),
    op.matmul(x, op.transposeLast2(x)),
    op.gemm(x, x, { transB: true }),
    op.reshape(op.transpose(x, [1, 0]), [2, 3]),
    op.reshape(op.unsqueeze(x, [0]), [2, 3]),
    op.concat(op.split(x, 1, [1, 2]), 1),
    op.mul(op.expandAs(op.reduceMax(x, [1], true), x), op.zerosLike(x)),
    op.cast(op.cast(x, 'float64'), 'float32'),
    op.matmul(op.oneHot(labels, 2), x),
    op.add(op.softmax(x), op.logSoftmax(x)),
    op.layerNorm(x, g.param('s', [3]), g.param('b', [3]), 1e-5),
    op.reduceMean(x, [0]),
    op.reduceSumSquare(x, [0]),
    op.identity(x),
  ];
  const pooled = op.avgPool2d(op.conv2d(img, w, undefined, { pads: 1 }), 2);
  const up = op.upsampleNearest(op.convTranspose2d(pooled, w, { pads: 1 }), 2);
  const all = (v: typeof x) => op.reduceSum(v, [...v.shape.keys()]);
  const loss = op.sum([...ys.map(all), all(op.mul(up, up))]);
  gradients(loss, [x]);
  gradients(all(pooled), [w]); // ConvTranspose has no gradient: it and Resize stay off this path
  op.size(x); // emitted by the backward pass only for symbolic reduced dims
  const built = new Set(g.nodes.map((n) => n.op));
  for (const t of built) assert.ok(OPS.has(t), `${t} is built but not registered`);
  for (const t of OPS.keys()) assert.ok(built.has(t), `${t} is registered but no builder emits it`);
});

test('ReduceMax: the float64 reference equals onnxruntime', async () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [3, 4]);
  const y = op.reduceMax(x, [0], true);
  const z = op.reduceMax(x, [-1]);
  const data = Float64Array.from({ length: 12 }, (_, i) => Math.sin(i * 1.7) * (i + 1));
  const s = await OrtSession.create(toOnnx(g, { outputs: { y, z } }));
  try {
    const want = await s.run({ x: { dtype: 'float64', dims: [3, 4], data } });
    const [ry, rz] = evaluate(g, { x: data }, [y, z], () => new Float64Array(0));
    assert.deepEqual(ry.dims, [1, 4]);
    assert.deepEqual(rz.dims, [3]);
    assert.deepEqual(Array.from(ry.data as Float64Array), Array.from(want.y.data as Float64Array));
    assert.deepEqual(Array.from(rz.data as Float64Array), Array.from(want.z.data as Float64Array));
  } finally {
    await s.release();
  }
});
