/** a < b elementwise with broadcasting → bool (ONNX Less); no gradient flows through a comparison. */
import type { Tensor } from '@tensorflow/tfjs-core';
import { broadcastShapes } from '../broadcast.js';
import type { Value } from '../ir.js';
import { type OpDef, type RefTensor, elementwise, emit } from './core.js';

export const Less: OpDef = {
  type: 'Less',
  shape: ([a, b]) => [{ dtype: 'bool', shape: broadcastShapes('Less', a.shape, b.shape) }],
  grad: 'zero',
  reference: (ins) => [elementwise('Less', ins as RefTensor[], 'bool', (a, b) => (a < b ? 1 : 0))],
  tfjs: (tf, ins) => [tf.less(ins[0] as Tensor, ins[1] as Tensor)],
};

/** a < b elementwise → bool. */
export const less = (a: Value, b: Value) => emit(Less, [a, b])[0];
