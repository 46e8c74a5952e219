/** where(cond, a, b) with broadcasting over all three (ONNX Where); the condition gets no gradient. */
import type { Tensor } from '@tensorflow/tfjs-core';
import { broadcastShapes } from '../broadcast.js';
import { type Value, fail } from '../ir.js';
import { type OpDef, type RefTensor, elementwise, emit, g0, when } from './core.js';
import { scalar } from './scalar.js';

export const Where: OpDef = {
  type: 'Where',
  shape: ([cond, a, b]) => {
    if (cond.dtype !== 'bool') fail('Where', `condition must be bool, got ${cond.dtype}`);
    if (a.dtype !== b.dtype) fail('Where', `dtype mismatch ${a.dtype} vs ${b.dtype}`);
    return [
      { dtype: a.dtype, shape: broadcastShapes('Where', broadcastShapes('Where', cond.shape, a.shape), b.shape) },
    ];
  },
  grad: (n, gys, need, e) => {
    const [cond, a, b] = n.inputs;
    const g = g0(gys);
    const zero = scalar(g, 0);
    return [
      undefined,
      when(need[1], () => e.sumTo(where(cond, g, zero), a.shape, a)),
      when(need[2], () => e.sumTo(where(cond, zero, g), b.shape, b)),
    ];
  },
  reference: (ins, n) => {
    const [c, a, b] = ins as RefTensor[];
    const cf: RefTensor = { dtype: 'float64', dims: c.dims, data: Float64Array.from(c.data as Uint8Array) };
    return [elementwise('Where', [cf, a, b], n.outputs[0].dtype, (p, q, r) => (p ? q : r))];
  },
  tfjs: (tf, ins) => {
    const [c, a, b] = ins as Tensor[];
    const shape = broadcastShapes('Where', broadcastShapes('Where', c.shape, a.shape), b.shape);
    const bc = (t: Tensor) =>
      t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]) ? t : tf.broadcastTo(t, shape);
    return [tf.where(bc(c), bc(a), bc(b))];
  },
};

/** where(cond, a, b): a where cond is true, else b (broadcasting over all three). */
export const where = (cond: Value, a: Value, b: Value) => emit(Where, [cond, a, b])[0];
