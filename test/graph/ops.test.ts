/**
 * Shape inference of the constructors added for the backward pass (gemm, sum, unsqueeze), the naming
 * of inferred dims in symbolic reshapes, and the errors of reduce and toOnnx.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Graph } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import * as op from '../../src/graph/ops.js';

test('gemm [3,4]ᵀ x [3,5] → [4,5]; sum broadcasts; unsqueeze inserts 1s', () => {
  const g = new Graph();
  const a = g.param('a', [3, 4]);
  const b = g.param('b', [3, 5]);
  assert.deepEqual(op.gemm(a, b, { transA: true }).shape, [4, 5]);
  assert.deepEqual(op.gemm(b, a, { transA: true, transB: false }, g.param('c', [5, 1])).shape, [5, 4]);
  assert.throws(() => op.gemm(a, b), /Gemm: inner dims differ \(\[3,4\] x \[3,5\]\)/);
  assert.throws(() => op.gemm(a, b, { transA: true }, g.param('bad', [3])), /cannot broadcast/);
  assert.deepEqual(op.sum([g.param('x', [2, 1, 4]), g.param('y', [3, 1]), g.param('z', [4])]).shape, [2, 3, 4]);
  assert.deepEqual(op.unsqueeze(a, [0, 2]).shape, [1, 3, 1, 4]);
  assert.deepEqual(op.unsqueeze(a, [-1]).shape, [3, 4, 1]);
});

test('reshape of a symbolic shape to −1 names the inferred dim', () => {
  const g = new Graph();
  const x = g.input('x', 'float32', ['batch', 4, 8]);
  assert.deepEqual(op.reshape(x, [-1, 8]).shape, ['batch*4', 8]);
  assert.deepEqual(op.reshape(x, [-1, 32]).shape, ['batch', 32]);
  assert.deepEqual(op.reshape(x, ['batch', 32]).shape, ['batch', 32]);
});

test('reduce with empty axes is refused (ONNX would reduce all axes)', () => {
  const g = new Graph();
  assert.throws(() => op.reduceMean(g.param('x', [2, 3]), []), /ReduceMean: empty axes/);
});

test('toOnnx refuses an output name that another emitted value already has', () => {
  const g = new Graph();
  const x = g.param('x', [2]);
  const y = op.neg(x); // named 'neg'
  const z = op.exp(y);
  assert.throws(() => toOnnx(g, { outputs: { neg: z } }), /output name neg is already the name of another value/);
  assert.ok(toOnnx(g, { outputs: { neg: y, out: z } }).length > 0, 'a value may keep its own name');
});
