/**
 * Reductions over explicit axes (ONNX ReduceSum, ReduceMean, ReduceSumSquare, ReduceMax; the axes are
 * kept as an attribute here and emitted as ReduceSum's input by onnx.ts). One shape rule, one
 * reference loop and one tfjs call; ReduceMax has no gradient (it only stabilises exponentials).
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { broadcastIndex } from '../broadcast.js';
import { type Dim, type Value, fail, shapeStr } from '../ir.js';
import { div, mul } from './binary.js';
import { type Gradient, type OpDef, type RefTensor, type Tf, emit, floats, g0, normAxis, size } from './core.js';
import { scalar } from './scalar.js';
import { unsqueeze } from './unsqueeze.js';

type Kind = 'ReduceSum' | 'ReduceMean' | 'ReduceSumSquare' | 'ReduceMax';

/** Backward of Sum / Mean / SumSquare: bring g back to x's rank and broadcast. */
const reduceGrad =
  (kind: Kind): Gradient =>
  (n, gys, _need, e) => {
    const [x] = n.inputs;
    const axes = n.attrs.axes as readonly number[];
    let g = g0(gys);
    if (kind === 'ReduceMean') g = div(g, e.reducedCount(x, n.outputs[0], axes));
    if (kind === 'ReduceSumSquare') g = mul(g, scalar(g, 2));
    if (n.attrs.keepdims === 0) g = unsqueeze(g, axes);
    return [kind === 'ReduceSumSquare' ? mul(g, x) : e.expandTo(g, x)]; // the Mul broadcasts g itself
  };

/** x reduced over `axes` (normalised) in float64. */
function reduceRef(kind: Kind, x: RefTensor, axes: readonly number[], keepdims: boolean): RefTensor {
  const kept = x.dims.map((d, i) => (axes.includes(i) ? 1 : d));
  const X = floats(x);
  const out = new Float64Array(size(kept)).fill(kind === 'ReduceMax' ? -Infinity : 0);
  const map = broadcastIndex(x.dims, kept); // each x element → its output slot
  if (kind === 'ReduceMax') for (let i = 0; i < X.length; i++) out[map[i]] = Math.max(out[map[i]], X[i]);
  else for (let i = 0; i < X.length; i++) out[map[i]] += kind === 'ReduceSumSquare' ? X[i] * X[i] : X[i];
  if (kind === 'ReduceMean') {
    const n = X.length / out.length;
    for (let i = 0; i < out.length; i++) out[i] /= n;
  }
  return { dtype: x.dtype, dims: keepdims ? kept : x.dims.filter((_, i) => !axes.includes(i)), data: out };
}

function reduceOp(
  type: Kind,
  grad: Gradient,
  tfOp: (tf: Tf, x: Tensor, axes: number[], keep: boolean) => Tensor,
): OpDef {
  return {
    type,
    shape: ([x], attrs) => {
      const ax = attrs.axes as readonly number[];
      // ONNX reduces over *all* axes when `axes` is empty; refuse rather than declare the wrong shape.
      if (ax.length === 0)
        fail(type, `empty axes (ONNX would reduce all axes of ${shapeStr(x.shape)}); pass the axes explicitly`);
      const shape: Dim[] = [];
      x.shape.forEach((d, i) => {
        if (!ax.includes(i)) shape.push(d);
        else if (attrs.keepdims !== 0) shape.push(1);
      });
      return [{ dtype: x.dtype, shape }];
    },
    grad,
    reference: (ins, n) => [
      reduceRef(type, ins[0] as RefTensor, n.attrs.axes as readonly number[], n.attrs.keepdims !== 0),
    ],
    tfjs: (tf, ins, n) => [
      tfOp(tf, ins[0] as Tensor, [...(n.attrs.axes as readonly number[])], n.attrs.keepdims !== 0),
    ],
  };
}

export const ReduceSum = reduceOp('ReduceSum', reduceGrad('ReduceSum'), (tf, x, a, k) => tf.sum(x, a, k));
export const ReduceMean = reduceOp('ReduceMean', reduceGrad('ReduceMean'), (tf, x, a, k) => tf.mean(x, a, k));
export const ReduceSumSquare = reduceOp('ReduceSumSquare', reduceGrad('ReduceSumSquare'), (tf, x, a, k) =>
  tf.sum(tf.square(x), a, k),
);
export const ReduceMax = reduceOp('ReduceMax', 'zero', (tf, x, a, k) => tf.max(x, a, k));

const reduce = (def: OpDef, x: Value, axes: readonly number[], keepdims: boolean): Value =>
  emit(def, [x], { axes: axes.map((a) => normAxis(def.type, a, x.shape.length)), keepdims: keepdims ? 1 : 0 })[0];

/** Sum over `axes`. */
export const reduceSum = (x: Value, axes: readonly number[], keepdims = false) => reduce(ReduceSum, x, axes, keepdims);
/** Mean over `axes`. */
export const reduceMean = (x: Value, axes: readonly number[], keepdims = false) =>
  reduce(ReduceMean, x, axes, keepdims);
/** Sum of squares over `axes` (no gradient; used for fixed-point residuals). */
export const reduceSumSquare = (x: Value, axes: readonly number[], keepdims = false) =>
  reduce(ReduceSumSquare, x, axes, keepdims);
/** Max over `axes` (treated as a constant by autodiff: zero gradient). */
export const reduceMax = (x: Value, axes: readonly number[], keepdims = false) => reduce(ReduceMax, x, axes, keepdims);
