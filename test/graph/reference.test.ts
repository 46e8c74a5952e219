/**
 * The float64 reference interpreter: exact values on small tensors, erf to 1e-15, shape checks, and
 * agreement with onnxruntime on the ops that have no gradient (int64/bool outputs, shape ops).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Graph, type Value } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import * as op from '../../src/graph/ops.js';
import { type RefTensor, erf, evaluate } from '../../src/graph/reference.js';
import { OrtSession } from '../../src/graph/session.js';
import { mulberry32, randn, relErr } from './helpers.js';

const f64 = (t: RefTensor) => [...(t.data as Float64Array)];
const noParams = () => assert.fail('no parameters here');

test('erf matches high-precision values to 1e-15 and is odd', () => {
  // erf values to 19 digits (Abramowitz & Stegun table 7.1 extended; erfc(3), erfc(5) for the tail), written
  // as their nearest doubles: 0.1124629160182848922, 0.5204998778130465377, 0.8427007929497148693,
  // 0.9661051464753107271, 0.9953222650189527342, erfc(3) = 2.209049699858544137e-5, erfc(5) = 1.53745979442803485e-12.
  const known: [number, number][] = [
    [0, 0],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [1.5, 0.9661051464753108],
    [2, 0.9953222650189527],
    [3, 1 - 2.209049699858544e-5],
    [5, 1 - 1.537459794428035e-12],
  ];
  for (const [x, v] of known) {
    assert.ok(Math.abs(erf(x) - v) <= 1e-15, `erf(${x}) = ${erf(x)}, expected ${v}`);
    if (x !== 0) assert.equal(erf(-x), -erf(x));
  }
  // The series (|x| < 1) and the continued fraction (|x| ≥ 1) meet without a jump.
  assert.ok(Math.abs(erf(1 - 1e-12) - erf(1)) < 2e-12);
  assert.equal(erf(30), 1);
  assert.equal(erf(-Infinity), -1);
});

test('MatMul broadcasts batch dims: [2,2,2] × [2,2] and [1,2,3] × [2,3,1]', () => {
  const g = new Graph();
  const a = g.input('a', 'float64', [2, 2, 2]);
  const b = g.input('b', 'float64', [2, 2]);
  const c = g.input('c', 'float64', [1, 2, 3]);
  const d = g.input('d', 'float64', [2, 3, 1]);
  const [ab, cd] = evaluate(
    g,
    {
      a: Float64Array.of(1, 2, 3, 4, 0, 1, 1, 0),
      b: Float64Array.of(5, 6, 7, 8),
      c: Float64Array.of(1, 2, 3, 4, 5, 6),
      d: Float64Array.of(1, 0, -1, 2, 2, 2),
    },
    [op.matmul(a, b), op.matmul(c, d)],
    noParams,
  );
  assert.deepEqual(ab.dims, [2, 2, 2]);
  assert.deepEqual(f64(ab), [19, 22, 43, 50, 7, 8, 5, 6]);
  assert.deepEqual(cd.dims, [2, 2, 1]);
  assert.deepEqual(f64(cd), [-2, -2, 12, 30]);
});

test('Transpose, Reshape (−1), Split/Concat move elements exactly', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3, 4]);
  const t = op.transpose(x, [2, 0, 1]); // [4,2,3]: t[i,j,k] = x[j,k,i]
  const r = op.reshape(x, [-1, 6]); // [4,6]
  const parts = op.split(x, 1, [1, 2]);
  const back = op.concat([parts[1], parts[0]], 1);
  const data = Float64Array.from({ length: 24 }, (_, i) => i);
  const [tv, rv, p0, bv] = evaluate(g, { x: data }, [t, r, parts[0], back], noParams);
  assert.deepEqual(tv.dims, [4, 2, 3]);
  for (let i = 0; i < 4; i++)
    for (let j = 0; j < 2; j++)
      for (let k = 0; k < 3; k++) assert.equal(f64(tv)[i * 6 + j * 3 + k], j * 12 + k * 4 + i);
  assert.deepEqual(rv.dims, [4, 6]);
  assert.deepEqual(f64(rv), [...data]);
  assert.deepEqual(f64(p0), [0, 1, 2, 3, 12, 13, 14, 15]);
  assert.deepEqual(f64(bv).slice(0, 12), [4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2, 3]);
});

test('Softmax, LayerNormalization (Mean, InvStdDev), reductions: closed-form values', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [1, 4]);
  const s = g.input('s', 'float64', [4]);
  const b = g.input('b', 'float64', [4]);
  const n = g.nodes.length;
  const y = op.layerNorm(x, s, b, 0.25);
  const [, mean, inv] = g.nodes[n].outputs;
  const sm = op.softmax(g.input('z', 'float64', [2]));
  const outs = evaluate(
    g,
    {
      x: Float64Array.of(1, 2, 3, 4),
      s: Float64Array.of(1, 1, 2, 2),
      b: Float64Array.of(0, 1, 0, 1),
      z: Float64Array.of(0, Math.log(2)),
    },
    [y, mean, inv, sm, op.reduceMean(x, [1], true), op.reduceSumSquare(x, [0, 1])],
    noParams,
  );
  // mean 2.5, variance 1.25, +eps 0.25 → invstd 1/√1.5
  const is = 1 / Math.sqrt(1.5);
  assert.deepEqual(outs[1].dims, [1, 1]);
  assert.equal(f64(outs[1])[0], 2.5);
  assert.ok(Math.abs(f64(outs[2])[0] - is) < 1e-15);
  const want = [-1.5 * is, -0.5 * is + 1, 2 * 0.5 * is, 2 * 1.5 * is + 1];
  assert.ok(relErr(f64(outs[0]), want) < 1e-15);
  assert.ok(relErr(f64(outs[3]), [1 / 3, 2 / 3]) < 1e-15);
  assert.deepEqual(f64(outs[4]), [2.5]);
  assert.deepEqual(outs[5].dims, []);
  assert.deepEqual(f64(outs[5]), [30]);
});

test('OneHot follows ONNX: −1 is the last class, out-of-range rows are zero', () => {
  const g = new Graph();
  const idx = g.input('idx', 'int64', [4]);
  const [oh] = evaluate(g, { idx: BigInt64Array.of(-1n, 3n, 1n, -4n) }, [op.oneHot(idx, 3)], noParams);
  assert.deepEqual(oh.dims, [4, 3]);
  assert.deepEqual(f64(oh), [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
});

test('symbolic dims are bound from the feeds and checked against every declared shape', () => {
  const g = new Graph();
  const x = g.input('x', 'float32', ['batch', 2]);
  const y = g.input('y', 'float32', ['batch', 2]);
  const s = op.add(x, y);
  const [v] = evaluate(
    g,
    { x: { dims: [3, 2], data: new Float32Array(6).fill(1) }, y: new Float32Array(6).fill(2) },
    [s],
    noParams,
  );
  assert.deepEqual(v.dims, [3, 2]);
  assert.deepEqual(f64(v), [3, 3, 3, 3, 3, 3]);
  assert.throws(
    () =>
      evaluate(
        g,
        { x: { dims: [3, 2], data: new Float32Array(6) }, y: { dims: [2, 2], data: new Float32Array(4) } },
        [s],
        noParams,
      ),
    /y: declared \[batch,2\] but computed \[2,2\]/,
  );
  const wrong = g.node('Identity', [x], [{ dtype: 'float32', shape: [5] }])[0];
  assert.throws(
    () => evaluate(g, { x: new Float32Array(6) }, [wrong], noParams),
    /declared \[5\] but computed \[3,2\] \(op Identity\)/,
  );
  assert.throws(() => evaluate(g, {}, [s], noParams), /input x \[batch,2\] is not fed/);
  const tanh = g.node('Tanh', [x], [{ dtype: 'float32', shape: x.shape }])[0];
  assert.throws(() => evaluate(g, { x: new Float32Array(4) }, [tanh], noParams), /op Tanh is not implemented/);
});

test('Shape, ConstantOfShape, Expand, Cast, Less, Where, Min, OneHot, Gemm, Unsqueeze, Sum = ort', async () => {
  const rng = mulberry32(42);
  const g = new Graph();
  const x = g.input('x', 'float32', ['batch', 3]);
  const w = g.param('w', [4, 3]);
  const c = g.param('c', [4]);
  const labels = g.input('labels', 'int64', ['batch']);
  const outs: Record<string, Value> = {
    shape: op.shapeOf(x),
    zeros: op.zerosLike(x),
    expand: op.expandAs(c, op.gemm(x, w, { transB: true })),
    toInt: op.cast(op.mul(x, op.scalar(x, 3)), 'int64'),
    less: op.less(x, op.scalar(x, 0)),
    where: op.where(op.less(x, op.scalar(x, 0)), x, op.neg(x)),
    min: op.min(x, op.scalar(x, 0.25)),
    onehot: op.oneHot(labels, 4),
    gemm_c: op.gemm(x, w, { transB: true, alpha: 0.5, beta: -2 }, c),
    unsq: op.unsqueeze(x, [0, 2]),
    sum: op.sum([x, op.sign(x), op.sqrt(op.abs(x))]),
  };
  const params = new Map([
    [w, randn(rng, 12)],
    [c, randn(rng, 4)],
  ]);
  const feeds = {
    x: { dtype: 'float32' as const, dims: [5, 3], data: randn(rng, 15) },
    labels: { dtype: 'int64' as const, dims: [5], data: BigInt64Array.of(0n, 3n, -1n, 7n, 2n) },
  };
  const session = await OrtSession.create(toOnnx(g, { outputs: outs }), { threads: 1 });
  const res = await session.run({
    ...feeds,
    w: { dtype: 'float32', dims: [4, 3], data: params.get(w)! },
    c: { dtype: 'float32', dims: [4], data: params.get(c)! },
  });
  await session.release();
  const ref = evaluate(g, feeds, Object.values(outs), (p) => params.get(p)!);
  Object.keys(outs).forEach((k, i) => {
    assert.deepEqual(res[k].dims, ref[i].dims, `${k} dims`);
    const a = Array.from(res[k].data as ArrayLike<number | bigint>, Number);
    const b = Array.from(ref[i].data as ArrayLike<number | bigint>, Number);
    if (ref[i].data instanceof Float64Array) assert.ok(relErr(a, b) < 1e-6, `${k}: ${a} vs ${b}`);
    else assert.deepEqual(a, b, k);
  });
});
