/** Insert size-1 dims (ONNX Unsqueeze-13: the axes, positions in the output, are an int64 input). */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Dim, type Value, fail, shapeStr } from '../ir.js';
import { type OpDef, type RefTensor, axisOf, constInts, emit, g0, int64Const, ints, normAxis } from './core.js';

/** dims with 1s inserted at the (normalised) output positions `axes`. */
function inserted<D extends Dim>(dims: readonly D[], axes: readonly number[]): (D | 1)[] {
  const out: (D | 1)[] = [];
  for (let i = 0, j = 0; i < dims.length + axes.length; i++) out.push(axes.includes(i) ? 1 : dims[j++]);
  return out;
}

export const Unsqueeze: OpDef = {
  type: 'Unsqueeze',
  shape: ([x, a]) => {
    const ax = constInts('Unsqueeze', a);
    if (new Set(ax).size !== ax.length) fail('Unsqueeze', `repeated axes ${shapeStr(ax)}`);
    if (ax.some((v) => v < 0 || v >= x.shape.length + ax.length))
      fail('Unsqueeze', `axes ${shapeStr(ax)} out of range for rank ${x.shape.length + ax.length}`);
    return [{ dtype: x.dtype, shape: inserted(x.shape, ax) }];
  },
  grad: (n, gys, _need, e) => [e.reshape(g0(gys), n.inputs[0].shape, n.inputs[0]), undefined],
  reference: (ins) => {
    const [x, a] = ins as RefTensor[];
    const axes = ints(a).map((v) => axisOf(v, x.dims.length + a.dims[0]));
    return [{ ...x, dims: inserted(x.dims, axes) }];
  },
  tfjs: (tf, ins, _n, ctx) => {
    const x = ins[0] as Tensor;
    const axes = ctx.ints(1);
    return [
      tf.reshape(
        x,
        inserted(
          x.shape,
          axes.map((v) => axisOf(v, x.rank + axes.length)),
        ),
      ),
    ];
  },
};

/** Insert size-1 dims at `axes` (positions in the output, ONNX Unsqueeze-13). */
export function unsqueeze(x: Value, axes: readonly number[]): Value {
  const r = x.shape.length + axes.length;
  const ax = axes.map((a) => normAxis('Unsqueeze', a, r));
  if (new Set(ax).size !== ax.length) fail('Unsqueeze', `repeated axes ${shapeStr(axes)}`);
  return emit(Unsqueeze, [x, int64Const(x, ax, 'axes')])[0];
}
