/** Concatenation along an axis (ONNX Concat); the gradient splits g back into the inputs' extents. */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Value, fail, shapeStr } from '../ir.js';
import { type OpDef, type RefTensor, around, emit, g0, normAxis, sameKind, size } from './core.js';
import { split } from './split.js';

export const Concat: OpDef = {
  type: 'Concat',
  shape: (xs, attrs) => {
    const a = attrs.axis as number;
    let total = 0;
    for (const x of xs) {
      if (x.shape.length !== xs[0].shape.length || x.shape.some((d, i) => i !== a && d !== xs[0].shape[i])) {
        fail('Concat', `shapes ${xs.map((v) => shapeStr(v.shape)).join(' ')} differ off axis ${a}`);
      }
      const d = x.shape[a];
      if (typeof d !== 'number') fail('Concat', 'symbolic concat axis');
      total += d;
    }
    return [{ dtype: xs[0].dtype, shape: xs[0].shape.map((d, i) => (i === a ? total : d)) }];
  },
  grad: (n, gys, need) => {
    const axis = n.attrs.axis as number;
    const parts = split(
      g0(gys),
      axis,
      n.inputs.map((x) => x.shape[axis] as number),
    );
    return parts.map((p, i) => (need[i] ? p : undefined));
  },
  reference: (ins, n) => {
    const xs = ins as RefTensor[];
    const axis = n.attrs.axis as number;
    const d = xs.reduce((p, x) => p + x.dims[axis], 0);
    const dims = xs[0].dims.map((m, i) => (i === axis ? d : m));
    const [outer, , inner] = around(dims, axis);
    const out = sameKind(xs[0], size(dims));
    let start = 0;
    for (const x of xs) {
      const s = x.dims[axis];
      for (let o = 0; o < outer; o++)
        for (let j = 0; j < s * inner; j++) out[o * d * inner + start * inner + j] = x.data[o * s * inner + j];
      start += s;
    }
    return [{ dtype: xs[0].dtype, dims, data: out }];
  },
  tfjs: (tf, ins, n) => [tf.concat(ins as Tensor[], n.attrs.axis as number)],
};

/** Concatenate along `axis`. */
export function concat(xs: readonly Value[], axis: number): Value {
  if (xs.length === 0) fail('Concat', 'no inputs');
  return emit(Concat, xs, { axis: normAxis('Concat', axis, xs[0].shape.length) })[0];
}
