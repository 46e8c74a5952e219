/**
 * k×k average pooling with stride k, no padding (ONNX AveragePool with kernel_shape = strides = [k, k]):
 * x [N, C, H, W] → [N, C, H/k, W/k]. Its gradient is the nearest-neighbour upsampling of g/k².
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Dim, type Value, fail, shapeStr } from '../ir.js';
import { mul } from './binary.js';
import { type OpDef, type RefTensor, emit, floats, g0, isFloat } from './core.js';
import { upsampleNearest } from './resize.js';
import { scalar } from './scalar.js';

/** Checks a 4-D NCHW value with static H, W divisible by `k`; returns [N, C, H, W]. */
export function poolDims(op: string, x: Value, k: number): [Dim, Dim, number, number] {
  if (!Number.isInteger(k) || k < 1) fail(op, `factor must be a positive integer, got ${k}`);
  if (x.shape.length !== 4) fail(op, `x must be 4-D (NCHW), got ${shapeStr(x.shape)}`);
  const [n, c, h, w] = x.shape;
  if (typeof h !== 'number' || typeof w !== 'number' || h % k !== 0 || w % k !== 0)
    fail(op, `spatial dims ${shapeStr(x.shape)} must be static and divisible by ${k}`);
  return [n, c, h, w];
}

/** The window size k of a node as built (square, stride k, no pads). */
const windowOf = (attrs: { readonly [k: string]: unknown }): number => {
  const ks = attrs.kernel_shape as readonly number[];
  const st = attrs.strides as readonly number[] | undefined;
  const k = ks[0];
  if (attrs.pads !== undefined || !st || [...st, ...ks].some((v) => v !== k))
    fail('AveragePool', `only square k×k windows with stride k and no pads are supported`);
  return k;
};

export const AveragePool: OpDef = {
  type: 'AveragePool',
  shape: ([x], attrs) => {
    if (!isFloat(x.dtype)) fail('AveragePool', `expects float, got ${x.dtype}`);
    const k = windowOf(attrs);
    const [n, c, h, w] = poolDims('AveragePool', x, k);
    return [{ dtype: x.dtype, shape: [n, c, h / k, w / k] }];
  },
  grad: (n, gys) => {
    const k = windowOf(n.attrs);
    const g = g0(gys);
    return [upsampleNearest(mul(g, scalar(g, 1 / (k * k))), k)];
  },
  reference: (ins, n) => {
    const x = ins[0] as RefTensor;
    const k = windowOf(n.attrs);
    const [N, C, H, W] = x.dims;
    const [ho, wo] = [Math.floor(H / k), Math.floor(W / k)];
    const X = floats(x);
    const out = new Float64Array(N * C * ho * wo);
    for (let p = 0; p < N * C; p++) {
      for (let i = 0; i < ho; i++) {
        for (let j = 0; j < wo; j++) {
          let s = 0;
          for (let u = 0; u < k; u++) for (let v = 0; v < k; v++) s += X[p * H * W + (i * k + u) * W + j * k + v];
          out[(p * ho + i) * wo + j] = s / (k * k);
        }
      }
    }
    return [{ dtype: x.dtype, dims: [N, C, ho, wo], data: out }];
  },
  tfjs: (tf, ins, n) => {
    // Non-overlapping windows: a reshape and a mean (differentiable on every backend).
    const x = ins[0] as Tensor;
    const k = windowOf(n.attrs);
    const [N, C, H, W] = x.shape;
    return [tf.mean(tf.reshape(x, [N, C, H / k, k, W / k, k]), [3, 5])];
  },
};

/**
 * k×k average pooling with stride k, no padding (ONNX AveragePool): x [N, C, H, W] → [N, C, H/k, W/k].
 * Its gradient is `upsampleNearest(g, k) / k²`.
 * @throws when x is not 4-D or H, W are symbolic or not divisible by k.
 */
export function avgPool2d(x: Value, k: number): Value {
  if (!Number.isInteger(k) || k < 1) fail('AveragePool', `factor must be a positive integer, got ${k}`);
  return emit(AveragePool, [x], { kernel_shape: [k, k], strides: [k, k] })[0];
}
