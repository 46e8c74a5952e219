/**
 * Softmax and LogSoftmax over the last axis (ONNX Softmax-13 / LogSoftmax-13 with axis −1, the only
 * axis the builders emit): they share the shape rule and the stable log-sum-exp kernel.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Attrs, type Value, fail } from '../ir.js';
import { mul, sub } from './binary.js';
import { type OpDef, type RefTensor, type ShapeRule, around, axisOf, emit, floats, g0, isFloat } from './core.js';
import { reduceSum } from './reduce.js';
import { exp } from './unary.js';

const lastAxisShape =
  (op: string): ShapeRule =>
  ([x], attrs: Attrs) => {
    if (!isFloat(x.dtype)) fail(op, `expects float, got ${x.dtype}`);
    const axis = attrs.axis as number;
    if (axis !== -1 && axis !== x.shape.length - 1) fail(op, `only the last axis is supported, got axis ${axis}`);
    return [{ dtype: x.dtype, shape: x.shape }];
  };

/** log(softmax(x)) along `axis` in float64: x − max − log Σ exp(x − max). */
function logSoftmaxRef(x: RefTensor, axis: number): RefTensor {
  const [outer, d, inner] = around(x.dims, axisOf(axis, x.dims.length));
  const X = floats(x);
  const out = new Float64Array(X.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (j: number) => o * d * inner + j * inner + i;
      let mx = -Infinity;
      for (let j = 0; j < d; j++) mx = Math.max(mx, X[at(j)]);
      let s = 0;
      for (let j = 0; j < d; j++) s += Math.exp(X[at(j)] - mx);
      const lse = mx + Math.log(s);
      for (let j = 0; j < d; j++) out[at(j)] = X[at(j)] - lse;
    }
  }
  return { dtype: x.dtype, dims: x.dims, data: out };
}

export const Softmax: OpDef = {
  type: 'Softmax',
  shape: lastAxisShape('Softmax'),
  grad: (n, gys) => {
    const y = n.outputs[0];
    const g = g0(gys);
    // dx = y·(g − Σ_last g·y)
    return [mul(y, sub(g, reduceSum(mul(g, y), [-1], true)))];
  },
  reference: (ins, n) => {
    const x = ins[0] as RefTensor;
    const ls = logSoftmaxRef(x, n.attrs.axis as number);
    return [{ dtype: x.dtype, dims: x.dims, data: Float64Array.from(ls.data as Float64Array, Math.exp) }];
  },
  tfjs: (tf, ins) => [tf.softmax(ins[0] as Tensor)],
};

export const LogSoftmax: OpDef = {
  type: 'LogSoftmax',
  shape: lastAxisShape('LogSoftmax'),
  grad: (n, gys) => {
    const y = n.outputs[0];
    const g = g0(gys);
    // dx = g − softmax(x)·Σ_last g, softmax(x) = exp(y)
    return [sub(g, mul(exp(y), reduceSum(g, [-1], true)))];
  },
  reference: (ins, n) => [logSoftmaxRef(ins[0] as RefTensor, n.attrs.axis as number)],
  tfjs: (tf, ins) => [tf.logSoftmax(ins[0] as Tensor)],
};

/** Softmax over the last axis (the only axis used here). */
export const softmax = (x: Value) => emit(Softmax, [x], { axis: -1 })[0];

/**
 * log(softmax(x)) over the last axis (ONNX LogSoftmax-13): x − max − log Σ exp(x − max), stable for
 * large logits. Used for softmax cross-entropy.
 */
export const logSoftmax = (x: Value) => emit(LogSoftmax, [x], { axis: -1 })[0];
