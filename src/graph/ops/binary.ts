/**
 * Elementwise arithmetic with numpy broadcasting: Add, Sub, Mul, Div (ONNX opset 17). One shape rule,
 * one reference loop and one tfjs call each; the gradients reduce over broadcast axes (Emitter.sumTo).
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { Value } from '../ir.js';
import {
  type GradRule,
  type OpDef,
  binaryShape,
  type Tf,
  elementwise,
  emit,
  g0,
  when,
  type RefTensor,
} from './core.js';
import { neg } from './unary.js';

function binaryOp(
  type: string,
  f: (a: number, b: number) => number,
  tfOp: (tf: Tf) => (a: Tensor, b: Tensor) => Tensor,
  grad: GradRule,
): OpDef {
  return {
    type,
    shape: binaryShape(type),
    grad,
    reference: (ins, n) => [elementwise(type, ins as RefTensor[], n.outputs[0].dtype, f)],
    tfjs: (tf, ins) => [tfOp(tf)(ins[0] as Tensor, ins[1] as Tensor)],
  };
}

export const Add = binaryOp(
  'Add',
  (a, b) => a + b,
  (tf) => tf.add,
  (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    return [when(need[0], () => e.sumTo(g, a.shape, a)), when(need[1], () => e.sumTo(g, b.shape, b))];
  },
);

export const Sub = binaryOp(
  'Sub',
  (a, b) => a - b,
  (tf) => tf.sub,
  (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    return [when(need[0], () => e.sumTo(g, a.shape, a)), when(need[1], () => neg(e.sumTo(g, b.shape, b)))];
  },
);

export const Mul = binaryOp(
  'Mul',
  (a, b) => a * b,
  (tf) => tf.mul,
  (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    return [when(need[0], () => e.sumTo(mul(g, b), a.shape, a)), when(need[1], () => e.sumTo(mul(g, a), b.shape, b))];
  },
);

export const Div = binaryOp(
  'Div',
  (a, b) => a / b,
  (tf) => tf.div,
  (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    // d(a/b)/db = −(a/b)/b = −y/b.
    return [
      when(need[0], () => e.sumTo(div(g, b), a.shape, a)),
      when(need[1], () => neg(e.sumTo(div(mul(g, n.outputs[0]), b), b.shape, b))),
    ];
  },
);

/** Elementwise a + b with broadcasting. */
export const add = (a: Value, b: Value) => emit(Add, [a, b])[0];
/** Elementwise a − b with broadcasting. */
export const sub = (a: Value, b: Value) => emit(Sub, [a, b])[0];
/** Elementwise a · b with broadcasting. */
export const mul = (a: Value, b: Value) => emit(Mul, [a, b])[0];
/** Elementwise a / b with broadcasting. */
export const div = (a: Value, b: Value) => emit(Div, [a, b])[0];
