/** Split along an axis into pieces of given sizes (ONNX Split-13: the sizes are an int64 input). */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Value, fail, shapeStr } from '../ir.js';
import { type OpDef, type RefTensor, around, constInts, emit, int64Const, ints, normAxis, sameKind } from './core.js';
import { concat } from './concat.js';

export const Split: OpDef = {
  type: 'Split',
  shape: ([x, s], attrs) => {
    const a = attrs.axis as number;
    const sizes = constInts('Split', s);
    const total = sizes.reduce((p, v) => p + v, 0);
    if (x.shape[a] !== total)
      fail('Split', `sizes ${shapeStr(sizes)} do not sum to dim ${String(x.shape[a])} of ${shapeStr(x.shape)}`);
    return sizes.map((k) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === a ? k : d)) }));
  },
  grad: (n, gys, _need, e) => [
    concat(
      n.outputs.map((o, i) => gys[i] ?? e.zerosOf(o)),
      n.attrs.axis as number,
    ),
    undefined,
  ],
  /** Copies of the slices of x along the axis. */
  reference: (ins, n) => {
    const [x, s] = ins as RefTensor[];
    const axis = n.attrs.axis as number;
    const sizes = ints(s);
    const [outer, d, inner] = around(x.dims, axis);
    let start = 0;
    return sizes.map((k) => {
      const out = sameKind(x, outer * k * inner);
      for (let o = 0; o < outer; o++)
        for (let j = 0; j < k * inner; j++) out[o * k * inner + j] = x.data[o * d * inner + start * inner + j];
      start += k;
      return { dtype: x.dtype, dims: x.dims.map((m, i) => (i === axis ? k : m)), data: out };
    });
  },
  tfjs: (tf, ins, n, ctx) => tf.split(ins[0] as Tensor, ctx.ints(1), n.attrs.axis as number),
};

/** Split along `axis` into pieces of the given sizes. */
export function split(x: Value, axis: number, sizes: readonly number[]): Value[] {
  const a = normAxis('Split', axis, x.shape.length);
  return emit(Split, [x, int64Const(x, sizes, 'split')], { axis: a });
}
