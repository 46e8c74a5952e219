/** Broadcast to a shape given as an int64 input (ONNX Expand); the gradient sums over broadcast axes. */
import type { Tensor } from '@tensorflow/tfjs-core';
import { broadcastIndex, broadcastShapes } from '../broadcast.js';
import { type Dim, type Value, fail, shapeStr } from '../ir.js';
import { type OpDef, type RefTensor, emit, g0, ints, sameKind } from './core.js';
import { shapeOf } from './shape.js';

export const Expand: OpDef = {
  type: 'Expand',
  /** `target`: the declared output shape (the shape input's value). */
  shape: ([x, s], _attrs, target) => {
    if (!target || s.shape[0] !== target.length)
      return fail('Expand', `cannot expand ${shapeStr(x.shape)} to ${target ? shapeStr(target) : 'no shape'}`);
    return [{ dtype: x.dtype, shape: target }];
  },
  grad: (n, gys, _need, e) => [e.sumTo(g0(gys), n.inputs[0].shape, n.inputs[0]), undefined],
  reference: (ins) => {
    const x = ins[0] as RefTensor;
    const dims = broadcastShapes('Expand', x.dims, ints(ins[1] as RefTensor));
    const map = broadcastIndex(dims, x.dims);
    const out = sameKind(x, map.length);
    for (let i = 0; i < map.length; i++) out[i] = x.data[map[i]];
    return [{ dtype: x.dtype, dims, data: out }];
  },
  tfjs: (tf, ins, _n, ctx) => {
    const x = ins[0] as Tensor;
    return [tf.broadcastTo(x, broadcastShapes('Expand', x.shape, ctx.ints(1)))];
  },
};

/** Broadcast x to `target`, whose value is the int64 [rank] `shape` (a constant or a Shape). */
export const expand = (x: Value, shape: Value, target: readonly Dim[]) => emit(Expand, [x, shape], {}, target)[0];

/** Broadcast x to the shape of `like` (Expand). */
export const expandAs = (x: Value, like: Value) => expand(x, shapeOf(like), like.shape);
