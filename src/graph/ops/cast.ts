/** Cast to another dtype (ONNX Cast); the gradient casts back. */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { DType, Value } from '../ir.js';
import { type OpDef, type RefTensor, emit, g0, isFloat, tfDType } from './core.js';

export const Cast: OpDef = {
  type: 'Cast',
  shape: ([x], attrs) => [{ dtype: attrs.to as DType, shape: x.shape }],
  grad: (n, gys) => {
    const x = n.inputs[0];
    const g = g0(gys);
    return [g.dtype === x.dtype ? g : cast(g, x.dtype)];
  },
  reference: (ins, n) => {
    const x = ins[0] as RefTensor;
    const to = n.attrs.to as DType;
    const src = x.data as ArrayLike<number | bigint>;
    if (isFloat(to))
      return [
        { dtype: to, dims: x.dims, data: x.data instanceof Float64Array ? x.data : Float64Array.from(src, Number) },
      ];
    if (to === 'int64')
      return [
        {
          dtype: to,
          dims: x.dims,
          data: BigInt64Array.from(src, (v) => BigInt(typeof v === 'bigint' ? v : Math.trunc(v))),
        },
      ];
    return [{ dtype: to, dims: x.dims, data: Uint8Array.from(src, (v) => (Number(v) !== 0 ? 1 : 0)) }];
  },
  tfjs: (tf, ins, n) => [tf.cast(ins[0] as Tensor, tfDType(n.attrs.to as DType))],
};

/** Cast to another dtype. */
export const cast = (x: Value, to: DType) => emit(Cast, [x], { to })[0];
