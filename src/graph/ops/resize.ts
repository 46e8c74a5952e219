/**
 * Nearest-neighbour upsampling by integer factors (ONNX Resize with mode nearest, asymmetric
 * coordinates, floor rounding and constant scales): y[…, i, j] = x[…, ⌊i/s⌋, ⌊j/s⌋]. It is the
 * gradient of AveragePool; no gradient of its own is implemented.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { strides } from '../broadcast.js';
import { type Attrs, type Value, fail } from '../ir.js';
import { type OpDef, type RefTensor, emit, floats, isFloat, size } from './core.js';
import { poolDims } from './avg-pool.js';

/** The integer scales of a node as built; refuses other modes. */
function scalesOf(scales: readonly number[], a: Attrs): readonly number[] {
  if (
    a.mode !== 'nearest' ||
    a.coordinate_transformation_mode !== 'asymmetric' ||
    a.nearest_mode !== 'floor' ||
    scales.some((s) => !Number.isInteger(s) || s < 1)
  ) {
    fail('Resize', 'only nearest mode with asymmetric coordinates, floor rounding and integer scales is implemented');
  }
  return scales;
}

export const Resize: OpDef = {
  type: 'Resize',
  shape: ([x, , s], attrs) => {
    if (!isFloat(x.dtype)) fail('Resize', `expects float, got ${x.dtype}`);
    const [n, c, h, w] = poolDims('Resize', x, 1);
    if (s.kind !== 'const' || !s.data) return fail('Resize', 'scales must be a constant');
    const k = scalesOf(Array.from(s.data.data as Float32Array), attrs);
    return [{ dtype: x.dtype, shape: [n, c, h * k[2], w * k[3]] }];
  },
  grad: 'none',
  reference: (ins, n) => {
    const x = ins[0] as RefTensor;
    const scales = scalesOf(Array.from(floats(ins[2] as RefTensor)), n.attrs);
    const dims = x.dims.map((d, i) => d * scales[i]);
    const os = strides(dims);
    const xs = strides(x.dims);
    const out = new Float64Array(size(dims));
    const X = floats(x);
    for (let f = 0; f < out.length; f++) {
      let src = 0;
      for (let i = 0; i < dims.length; i++) src += Math.floor((Math.floor(f / os[i]) % dims[i]) / scales[i]) * xs[i];
      out[f] = X[src];
    }
    return [{ dtype: x.dtype, dims, data: out }];
  },
  tfjs: (tf, ins, n) => {
    const x = ins[0] as Tensor;
    const scales = scalesOf(Array.from((ins[2] as Tensor).dataSync() as Float32Array), n.attrs);
    // y[..., i·k + a, ...] = x[..., i, ...]: insert a size-k axis after every dim, broadcast, merge.
    const inter = x.shape.flatMap((d) => [d, 1]);
    const full = x.shape.flatMap((d, i) => [d, scales[i]]);
    return [
      tf.reshape(
        tf.broadcastTo(tf.reshape(x, inter), full),
        x.shape.map((d, i) => d * scales[i]),
      ),
    ];
  },
};

/**
 * Nearest-neighbour upsampling by an integer factor k (ONNX Resize, mode nearest, asymmetric
 * coordinates, floor): x [N, C, H, W] → y [N, C, kH, kW] with y[n,c,i,j] = x[n,c,⌊i/k⌋,⌊j/k⌋].
 * @throws when x is not a 4-D float value with static H, W.
 */
export function upsampleNearest(x: Value, k: number): Value {
  if (!isFloat(x.dtype)) fail('Resize', `expects float, got ${x.dtype}`);
  poolDims('Resize', x, 1);
  if (!Number.isInteger(k) || k < 1) fail('Resize', `factor must be a positive integer, got ${k}`);
  const g = x.graph;
  const roi = g.constant({ dtype: 'float32', dims: [0], data: new Float32Array(0) }, 'roi');
  const scales = g.constant({ dtype: 'float32', dims: [4], data: Float32Array.of(1, 1, k, k) }, 'scales');
  const attrs = { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' };
  return emit(Resize, [x, roi, scales], attrs)[0];
}
