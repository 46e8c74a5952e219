/**
 * Elementwise float functions of one input (ONNX opset 17): Exp, Abs, Neg, Sign, Sqrt, Relu, Log,
 * Reciprocal. One shape rule, one reference map and one tfjs call each; Erf, whose float64 kernel is a
 * numerical method of its own, is in erf.ts.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { Value } from '../ir.js';
import { div, mul } from './binary.js';
import { type Gradient, type OpDef, type Tf, type RefTensor, emit, g0, unaryShape, mapFloats } from './core.js';
import { less } from './less.js';
import { scalar } from './scalar.js';
import { where } from './where.js';

/** The definition of a float elementwise op: `f` in float64, `tfOp` in tfjs. */
export function unaryOp(
  type: string,
  f: (v: number) => number,
  tfOp: (tf: Tf) => (x: Tensor) => Tensor,
  grad: Gradient,
): OpDef {
  return {
    type,
    shape: unaryShape(type),
    grad,
    reference: (ins) => [mapFloats(ins[0] as RefTensor, f)],
    tfjs: (tf, ins) => [tfOp(tf)(ins[0] as Tensor)],
  };
}

export const Exp = unaryOp(
  'Exp',
  Math.exp,
  (tf) => tf.exp,
  (n, gys) => [mul(g0(gys), n.outputs[0])],
);
export const Abs = unaryOp(
  'Abs',
  Math.abs,
  (tf) => tf.abs,
  (n, gys) => [mul(g0(gys), sign(n.inputs[0]))],
);
export const Neg = unaryOp(
  'Neg',
  (v) => -v,
  (tf) => tf.neg,
  (_n, gys) => [neg(g0(gys))],
);
export const Sign = unaryOp('Sign', Math.sign, (tf) => tf.sign, 'zero');
export const Sqrt = unaryOp(
  'Sqrt',
  Math.sqrt,
  (tf) => tf.sqrt,
  (n, gys) => [mul(div(g0(gys), n.outputs[0]), scalar(n.outputs[0], 0.5))],
);
export const Relu = unaryOp(
  'Relu',
  (v) => Math.max(v, 0),
  (tf) => tf.relu,
  (n, gys) => {
    const y = n.outputs[0];
    const g = g0(gys);
    return [where(less(scalar(y, 0), y), g, scalar(g, 0))]; // 0 at x = 0, as PyTorch
  },
);
export const Log = unaryOp(
  'Log',
  Math.log,
  (tf) => tf.log,
  (n, gys) => [div(g0(gys), n.inputs[0])],
);
/** d(1/x)/dx = −1/x² = −y². */
export const Reciprocal = unaryOp(
  'Reciprocal',
  (v) => 1 / v,
  (tf) => tf.reciprocal,
  (n, gys) => [neg(mul(g0(gys), mul(n.outputs[0], n.outputs[0])))],
);

export const exp = (x: Value) => emit(Exp, [x])[0];
export const abs = (x: Value) => emit(Abs, [x])[0];
export const neg = (x: Value) => emit(Neg, [x])[0];
export const sign = (x: Value) => emit(Sign, [x])[0];
export const sqrt = (x: Value) => emit(Sqrt, [x])[0];
/** Rectified linear unit max(x, 0) elementwise (ONNX Relu). */
export const relu = (x: Value) => emit(Relu, [x])[0];
/** Natural logarithm elementwise. */
export const log = (x: Value) => emit(Log, [x])[0];
/** 1/x elementwise. */
export const reciprocal = (x: Value) => emit(Reciprocal, [x])[0];
