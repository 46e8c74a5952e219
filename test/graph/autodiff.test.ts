/**
 * Structure of the generated backward graph: gradient shapes, zeros for unused parameters, the weight
 * gradient as one Gemm, one Sum per fan-in, no chained Transposes, symbolic batch dims, and errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph, type Node, type Value } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import * as op from '../../src/graph/ops.js';
import { OrtSession } from '../../src/graph/session.js';
import { checkGradients, mulberry32, randn, randomParams, relErr } from './helpers.js';

const l1 = (y: Value) => op.reduceMean(op.abs(y), [...y.shape.keys()]);
const newNodes = (g: Graph, from: number): Node[] => g.nodes.slice(from);

test('shapes: gradient shapes equal parameter shapes; unused and Sign-only params get exact zeros', async () => {
  const g = new Graph();
  const x = g.input('x', 'float32', [2, 3, 4]);
  const w = g.param('w', [4, 5]);
  const b = g.param('b', [5]);
  const s = g.param('s', [1, 3, 1]);
  const unused = g.param('unused', [7, 2]);
  const signOnly = g.param('sign_only', [5]);
  const y = op.mul(op.add(op.add(op.matmul(x, w), b), op.sign(signOnly)), s); // [2,3,5]
  const loss = l1(y);
  const params = [w, b, s, unused, signOnly];
  const grads = gradients(loss, params);
  grads.forEach((gv, i) => assert.deepEqual(gv.shape, params[i].shape, `${params[i].name}`));
  grads.forEach((gv, i) => assert.equal(gv.dtype, 'float32', `${params[i].name}`));

  const rng = mulberry32(7);
  const values = randomParams(g, rng);
  const outputs = Object.fromEntries(params.map((p, i) => [`grad_${p.name}`, grads[i]]));
  const session = await OrtSession.create(toOnnx(g, { outputs }), { threads: 1 });
  // Every parameter is an input of the emitted model, so the trainer can feed all of them.
  for (const p of params) assert.ok(session.inputNames.includes(p.name), `${p.name} is an input`);
  const feeds = Object.fromEntries(
    params.map((p) => [p.name, { dtype: 'float32' as const, dims: p.shape as number[], data: values.get(p)! }]),
  );
  const res = await session.run({ ...feeds, x: { dtype: 'float32', dims: [2, 3, 4], data: randn(rng, 24) } });
  await session.release();
  for (const p of params) assert.deepEqual(res[`grad_${p.name}`].dims, p.shape);
  assert.deepEqual([...res.grad_unused.data], new Array(14).fill(0));
  assert.deepEqual([...res.grad_sign_only.data], new Array(5).fill(0));
  assert.ok(
    [...res.grad_w.data].some((v) => v !== 0),
    'the weight gradient is not all zero',
  );
});

test('weight [k,n] × x [B,N,k]: one Gemm(transA) for dW, no Transpose, nothing for the data input', () => {
  const g = new Graph();
  const x = g.input('x', 'float32', [2, 3, 4]);
  const w = g.param('w', [4, 5]);
  const b = g.param('b', [5]);
  const loss = l1(op.add(op.matmul(x, w), b));
  const before = g.nodes.length;
  const [dw, db] = gradients(loss, [w, b]);
  const added = newNodes(g, before);
  const products = added.filter((n) => n.op === 'Gemm' || n.op === 'MatMul');
  assert.equal(products.length, 1);
  assert.equal(products[0].op, 'Gemm');
  assert.equal(products[0].attrs.transA, 1);
  assert.equal(products[0].attrs.transB, 0);
  assert.equal(products[0].outputs[0], dw);
  assert.deepEqual(
    products[0].inputs.map((v) => v.shape),
    [
      [6, 4],
      [6, 5],
    ],
  );
  assert.equal(added.filter((n) => n.op === 'Transpose').length, 0);
  assert.equal(db.producer?.op, 'ReduceSum');
  assert.deepEqual(db.producer?.attrs.axes, [0, 1]);
});

test('fan-out: a weight used 3 times gets one Sum of 3 contributions', () => {
  const g = new Graph();
  const x = g.input('x', 'float32', [2, 3]);
  const w = g.param('w', [3, 3]);
  const loss = l1(op.matmul(op.matmul(op.matmul(x, w), w), w));
  const [dw] = gradients(loss, [w]);
  assert.equal(dw.producer?.op, 'Sum');
  assert.equal(dw.producer?.inputs.length, 3);
});

test('attention q·kᵀ, transposed heads: Transposes into MatMul swap the last two axes (fusable), none cancel', () => {
  const g = new Graph();
  const q = g.param('q', [2, 3, 2, 4]); // [B,N,h,d]
  const k = g.param('k', [2, 3, 2, 4]);
  const loss = l1(op.softmax(op.matmul(op.transpose(q, [0, 2, 1, 3]), op.transpose(k, [0, 2, 3, 1]))));
  const before = g.nodes.length;
  gradients(loss, [q, k]);
  const added = newNodes(g, before);
  const transposes = added.filter((n) => n.op === 'Transpose');
  // qhᵀ and ktᵀ for the two products, then one back to [B,N,h,d] for each of dq and dk.
  assert.equal(transposes.length, 4);
  for (const t of transposes) {
    const perm = t.attrs.perm as number[];
    const inner = t.inputs[0].producer?.op === 'Transpose' ? (t.inputs[0].producer.attrs.perm as number[]) : null;
    assert.ok(!inner || !perm.every((v, i) => inner[v] === i), `${t.outputs[0].name} undoes its input's transpose`);
    if (added.some((n) => n.op === 'MatMul' && n.inputs.includes(t.outputs[0]))) assert.deepEqual(perm, [0, 1, 3, 2]);
  }
});

test('GELU: fused backward (one Exp, no Erf-chain Sum) for the nodes ops.gelu builds', () => {
  const g = new Graph();
  const x = g.param('x', [2, 8]);
  const loss = l1(op.gelu(x));
  const before = g.nodes.length;
  gradients(loss, [x]);
  const ops = newNodes(g, before).map((n) => n.op);
  assert.equal(ops.filter((o) => o === 'Exp').length, 1);
  assert.equal(ops.filter((o) => o === 'Sum').length, 0, 'x gets one contribution, not two');
  assert.equal(ops.filter((o) => o === 'Mul').length, 5, 'sign, m², x·e, g·½, ·inner');
});

test('GELU: the gradient of an internal value (erf(x·√½) + 1) falls back to the per-node rules', async () => {
  const g = new Graph();
  const x = g.param('x', [3]);
  const y = op.gelu(x);
  const a = y.producer!.inputs[1]; // erf(x·√½) + 1
  const loss = op.reduceSum(y, [0]);
  const [da, dx] = gradients(loss, [a, x]); // d Σ (x/2)·a / da = x/2; dx = GELU'(x) = Φ(x) + x·φ(x)
  const session = await OrtSession.create(toOnnx(g, { outputs: { da, dx } }), { threads: 1 });
  const res = await session.run({ x: { dtype: 'float32', dims: [3], data: Float32Array.of(1, -2, 0.5) } });
  await session.release();
  assert.deepEqual([...res.da.data], [0.5, -1, 0.25]);
  const want = [0.841344746 + 0.241970725, 0.022750132 - 2 * 0.053990967, 0.691462461 + 0.5 * 0.352065327];
  assert.ok(relErr(res.dx.data as Float32Array, want) < 1e-6, `${res.dx.data}`);
});

test('only paths that reach both the loss and a wrt value get backward nodes', () => {
  const g = new Graph();
  const x = g.param('x', [3, 4]);
  const w = g.param('w', [4, 4]);
  const side = op.exp(op.matmul(x, w)); // not on the loss
  const loss = l1(op.matmul(x, w));
  void side;
  const before = g.nodes.length;
  gradients(loss, [w]);
  const ops = newNodes(g, before).map((n) => n.op);
  assert.ok(!ops.includes('Exp'), 'no backward for the side branch');
  assert.equal(ops.filter((o) => o === 'Gemm' || o === 'MatMul').length, 1, 'no gradient for x');
});

test('wrt the loss itself is 1; wrt an intermediate value is its upstream gradient', async () => {
  const g = new Graph();
  const a = g.param('a', [3]);
  const h = op.mul(a, op.scalar(a, 2)); // [3]
  const loss = op.reduceSum(op.mul(h, h), [0]); // Σ h² → d/dh = 2h
  const [dl, dh] = gradients(loss, [loss, h]);
  const session = await OrtSession.create(toOnnx(g, { outputs: { dl, dh } }), { threads: 1 });
  const res = await session.run({ a: { dtype: 'float32', dims: [3], data: Float32Array.of(1, -2, 0.5) } });
  await session.release();
  assert.deepEqual([...res.dl.data], [1]);
  assert.deepEqual([...res.dh.data], [4, -8, 2]);
});

test('symbolic batch "B" (attention, LayerNorm, batch mean) = finite differences at B = 3 and B = 1', async () => {
  const g = new Graph();
  const [N, D, H] = [4, 8, 2];
  const x = g.input('x', 'float32', ['B', N, D]);
  const w = g.param('w', [D, 3 * D]);
  const s = g.param('s', [D]);
  const b = g.param('b', [D]);
  const [q, k, v] = op.split(op.matmul(op.layerNorm(x, s, b, 1e-6), w), -1, [D, D, D]);
  const heads = (t: Value, perm: number[]) => op.transpose(op.reshape(t, ['B', N, H, D / H]), perm);
  const att = op.softmax(op.matmul(heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1]))); // [B,H,N,N]
  const o = op.reshape(op.transpose(op.matmul(att, heads(v, [0, 2, 1, 3])), [0, 2, 1, 3]), ['B', N, D]);
  const loss = op.reduceMean(op.abs(op.add(o, x)), [0, 1, 2]);
  const rng = mulberry32(11);
  const params = randomParams(g, rng);
  for (const batch of [3, 1]) {
    const feeds = { x: { dtype: 'float32' as const, dims: [batch, N, D], data: randn(rng, batch * N * D) } };
    await checkGradients({ graph: g, loss, wrt: [w, s, b, x], params, feeds });
  }
});

test('errors name the problem', () => {
  const g = new Graph();
  const x = g.param('x', [2, 3]);
  assert.throws(() => gradients(op.abs(x), [x]), /loss must be a float scalar/);
  const idx = g.input('idx', 'int64', [2]);
  const loss = op.reduceSum(x, [0, 1]);
  assert.throws(() => gradients(loss, [idx]), /idx is int64; only float values have gradients/);
  const t = g.node('Tanh', [x], [{ dtype: 'float32', shape: [2, 3] }])[0];
  assert.throws(() => gradients(op.reduceSum(t, [0, 1]), [x]), /no gradient rule for op Tanh/);
  const s = g.param('s', [3]);
  const ln = g.nodes.length;
  op.layerNorm(x, s, s, 1e-6);
  const mean = g.nodes[ln].outputs[1];
  assert.throws(() => gradients(op.reduceSum(mean, [0, 1]), [x]), /Mean\/InvStdDev outputs are not differentiable/);
  const other = new Graph().param('w', [1]);
  assert.throws(() => gradients(loss, [other]), /belongs to another graph/);
  assert.throws(() => op.reduceSum(x, []), /empty axes/);
});
