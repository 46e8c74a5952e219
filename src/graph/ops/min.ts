/** Min of two inputs with broadcasting (ONNX Min, used with two operands); ties route the gradient to a. */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { Value } from '../ir.js';
import { type OpDef, binaryShape, type RefTensor, elementwise, emit, g0, when } from './core.js';
import { less } from './less.js';
import { scalar } from './scalar.js';
import { where } from './where.js';

export const Min: OpDef = {
  type: 'Min',
  shape: binaryShape('Min'),
  grad: (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    const bTaken = less(b, a); // ties route to a
    const zero = scalar(g, 0);
    return [
      when(need[0], () => e.sumTo(where(bTaken, zero, g), a.shape, a)),
      when(need[1], () => e.sumTo(where(bTaken, g, zero), b.shape, b)),
    ];
  },
  reference: (ins, n) => [elementwise('Min', ins as RefTensor[], n.outputs[0].dtype, Math.min)],
  tfjs: (tf, ins) => [ins.slice(1).reduce<Tensor>((a, b) => tf.minimum(a, b as Tensor), ins[0] as Tensor)],
};

/** Elementwise min(a, b) with broadcasting. */
export const min = (a: Value, b: Value) => emit(Min, [a, b])[0];
