/** The input unchanged (ONNX Identity; onnx.ts also emits it to rename outputs). */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { Value } from '../ir.js';
import { type OpDef, type RefTensor, emit, g0 } from './core.js';

export const Identity: OpDef = {
  type: 'Identity',
  shape: ([x]) => [{ dtype: x.dtype, shape: x.shape }],
  grad: (_n, gys) => [g0(gys)],
  reference: (ins) => [ins[0] as RefTensor],
  tfjs: (_tf, ins) => [ins[0] as Tensor],
};

/** x unchanged, as a new value. */
export const identity = (x: Value) => emit(Identity, [x])[0];
