/**
 * One-hot of int64 indices along a new last axis (ONNX OneHot with depth and [off, on] values as
 * inputs). As in ONNX, an index i in [−depth, 0) counts from the back; indices outside [−depth, depth)
 * give all-off rows. Indices are not differentiable.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Value, fail } from '../ir.js';
import { type OpDef, type RefTensor, constInts, emit, floats, ints, size } from './core.js';

export const OneHot: OpDef = {
  type: 'OneHot',
  shape: ([indices, depth], attrs) => {
    if (indices.dtype !== 'int64') fail('OneHot', `indices must be int64, got ${indices.dtype}`);
    if (attrs.axis !== -1) fail('OneHot', `only axis -1 is supported, got ${String(attrs.axis)}`);
    return [{ dtype: 'float32', shape: [...indices.shape, constInts('OneHot', depth)[0]] }];
  },
  grad: 'zero',
  reference: (ins) => {
    const [indices, d, v] = ins as RefTensor[];
    const depth = ints(d)[0];
    const values = floats(v);
    const dims = [...indices.dims, depth];
    const out = new Float64Array(size(dims)).fill(values[0]);
    const I = ints(indices);
    for (let o = 0; o < I.length; o++) {
      let c = I[o];
      if (c < 0) c += depth; // ONNX: negative indices count from the back
      if (c >= 0 && c < depth) out[o * depth + c] = values[1];
    }
    return [{ dtype: 'float32', dims, data: out }];
  },
  tfjs: (tf, ins, _n, ctx) => {
    const x = ins[0] as Tensor;
    const depth = ctx.ints(1)[0];
    const [off, on] = Array.from(ins[2]!.dataSync() as Float32Array);
    // ONNX: [−depth, 0) counts from the back. Int scalars must be int32 tensors (a JS number makes float32).
    const idx = tf.where(tf.less(x, tf.scalar(0, 'int32')), tf.add(x, tf.scalar(depth, 'int32')), x);
    // equal(idx, range(depth)): tf.oneHot with a float32 dtype returns all zeros on the wasm backend (4.22.0).
    const hit = tf.equal(tf.expandDims(tf.cast(idx, 'int32'), -1), tf.range(0, depth, 1, 'int32'));
    const y = tf.cast(hit, 'float32');
    return [on === 1 && off === 0 ? y : tf.add(tf.mul(y, on - off), off)];
  },
};

/**
 * One-hot of int64 indices [...] → float32 [..., depth]. As in ONNX, an index i in [−depth, 0) counts
 * from the back (i + depth); indices outside [−depth, depth) give all-zero rows.
 */
export function oneHot(indices: Value, depth: number): Value {
  if (indices.dtype !== 'int64') fail('OneHot', `indices must be int64, got ${indices.dtype}`);
  const g = indices.graph;
  const d = g.constant({ dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(depth)) }, 'depth');
  const values = g.constant({ dtype: 'float32', dims: [2], data: Float32Array.of(0, 1) }, 'onehot_values');
  return emit(OneHot, [indices, d, values], { axis: -1 })[0];
}
