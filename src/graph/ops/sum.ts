/** Sum of any number of inputs with broadcasting (ONNX Sum): one node for a fan-in of gradients. */
import type { Tensor } from '@tensorflow/tfjs-core';
import { broadcastShapes } from '../broadcast.js';
import { type Dim, type Value, fail } from '../ir.js';
import { type OpDef, type RefTensor, elementwise, emit, g0, when } from './core.js';

export const Sum: OpDef = {
  type: 'Sum',
  shape: (xs) => {
    for (const x of xs) if (x.dtype !== xs[0].dtype) fail('Sum', `dtype mismatch ${xs[0].dtype} vs ${x.dtype}`);
    const shape = xs.slice(1).reduce<Dim[]>((s, x) => broadcastShapes('Sum', s, x.shape), [...xs[0].shape]);
    return [{ dtype: xs[0].dtype, shape }];
  },
  grad: (n, gys, need, e) => n.inputs.map((x, i) => when(need[i], () => e.sumTo(g0(gys), x.shape, x))),
  reference: (ins, n) => [
    elementwise('Sum', ins as RefTensor[], n.outputs[0].dtype, (...v) => v.reduce((p, q) => p + q, 0)),
  ],
  tfjs: (tf, ins) => [ins.slice(1).reduce<Tensor>((a, b) => tf.add(a, b as Tensor), ins[0] as Tensor)],
};

/** Sum of any number of values with broadcasting; one value is returned as is. */
export function sum(xs: readonly Value[]): Value {
  if (xs.length === 0) fail('Sum', 'no inputs');
  if (xs.length === 1) return xs[0];
  return emit(Sum, xs)[0];
}
