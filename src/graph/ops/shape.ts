/** Shape and Size of a value as int64 tensors (for shapes only known at run time); not differentiable. */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { Value } from '../ir.js';
import { type OpDef, type RefTensor, emit, size as numel } from './core.js';

export const Shape: OpDef = {
  type: 'Shape',
  shape: ([x]) => [{ dtype: 'int64', shape: [x.shape.length] }],
  grad: 'zero',
  reference: (ins) => {
    const x = ins[0] as RefTensor;
    return [{ dtype: 'int64', dims: [x.dims.length], data: BigInt64Array.from(x.dims.map(BigInt)) }];
  },
  tfjs: (tf, ins) => [tf.tensor1d((ins[0] as Tensor).shape, 'int32')],
};

export const Size: OpDef = {
  type: 'Size',
  shape: () => [{ dtype: 'int64', shape: [] }],
  grad: 'zero',
  reference: (ins) => [{ dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(numel((ins[0] as RefTensor).dims))) }],
  tfjs: (tf, ins) => [tf.scalar((ins[0] as Tensor).size, 'int32')],
};

/** Shape of x as an int64 [rank] tensor (for ops whose output shape is only known at run time). */
export const shapeOf = (x: Value) => emit(Shape, [x])[0];
/** Number of elements of x as an int64 scalar. */
export const size = (x: Value) => emit(Size, [x])[0];
