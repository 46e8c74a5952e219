/**
 * LayerNormalization over the last axis (ONNX opset 17): Y = (x − mean)/sqrt(var + eps)·scale + bias,
 * plus the Mean and InvStdDev outputs ([..., 1]) that the gradient reuses.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Value, fail, shapeStr } from '../ir.js';
import { mul, sub } from './binary.js';
import { type OpDef, type RefTensor, axisOf, emit, floats, g0, num, range, size, when } from './core.js';
import { reduceMean, reduceSum } from './reduce.js';

export const LayerNormalization: OpDef = {
  type: 'LayerNormalization',
  shape: ([x, scale, bias], attrs) => {
    const d = x.shape[x.shape.length - 1];
    if (attrs.axis !== -1)
      fail('LayerNormalization', `only the last axis is supported, got axis ${String(attrs.axis)}`);
    if (scale.shape.length !== 1 || scale.shape[0] !== d || bias.shape.length !== 1 || bias.shape[0] !== d) {
      fail('LayerNormalization', `scale/bias must be [${d}], got ${shapeStr(scale.shape)} / ${shapeStr(bias.shape)}`);
    }
    const stat = [...x.shape.slice(0, -1), 1];
    return [
      { dtype: x.dtype, shape: x.shape },
      { dtype: x.dtype, shape: stat },
      { dtype: x.dtype, shape: stat },
    ];
  },
  grad: (n, gys, need) => {
    const [x, scale] = n.inputs;
    const [, mean, invStd] = n.outputs;
    const r = x.shape.length;
    if (gys[1] || gys[2])
      fail(
        'gradients',
        'LayerNormalization Mean/InvStdDev outputs are not differentiable here; do not use them in the loss',
      );
    const g = g0(gys);
    const xhat = mul(sub(x, mean), invStd); // [..., D]
    const lead = range(r - 1);
    const sumLead = (v: Value) => (lead.length ? reduceSum(v, lead) : v);
    return [
      when(need[0], () => {
        // dx = invstd·(gγ − mean(gγ) − x̂·mean(gγ·x̂)) over the normalised axis
        const gs = mul(g, scale);
        const m1 = reduceMean(gs, [-1], true);
        const m2 = reduceMean(mul(gs, xhat), [-1], true);
        return mul(sub(sub(gs, m1), mul(xhat, m2)), invStd);
      }),
      when(need[1], () => sumLead(mul(g, xhat))),
      when(need[2], () => sumLead(g)),
    ];
  },
  /** Over axes [axis, rank): outputs Y, Mean and InvStdDev (stat dims keep 1s). */
  reference: (ins, n) => {
    const [x, scale, bias] = ins as (RefTensor | undefined)[] as [RefTensor, RefTensor, RefTensor | undefined];
    const a = axisOf(n.attrs.axis as number, x.dims.length);
    const eps = n.attrs.epsilon as number;
    const rows = size(x.dims.slice(0, a));
    const d = size(x.dims.slice(a));
    const X = floats(x);
    const S = floats(scale);
    const Bs = bias ? floats(bias) : undefined;
    if (S.length !== d || (Bs && Bs.length !== d)) fail('LayerNormalization', `scale/bias must have ${d} elements`);
    const y = new Float64Array(X.length);
    const mean = new Float64Array(rows);
    const inv = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let j = 0; j < d; j++) m += X[r * d + j];
      m /= d;
      let v = 0;
      for (let j = 0; j < d; j++) v += (X[r * d + j] - m) ** 2;
      const is = 1 / Math.sqrt(v / d + eps);
      mean[r] = m;
      inv[r] = is;
      for (let j = 0; j < d; j++) y[r * d + j] = (X[r * d + j] - m) * is * S[j] + (Bs ? Bs[j] : 0);
    }
    const stat = x.dims.map((k, i) => (i < a ? k : 1));
    return [
      { dtype: x.dtype, dims: x.dims, data: y },
      { dtype: x.dtype, dims: stat, data: mean },
      { dtype: x.dtype, dims: stat, data: inv },
    ];
  },
  tfjs: (tf, ins, n) => {
    // (x − μ)/√(σ² + ε)·scale + bias over the last axis; Mean and InvStdDev keep it as 1.
    const x = ins[0] as Tensor;
    const axes = [x.rank - 1];
    const mean = tf.mean(x, axes, true);
    const centred = tf.sub(x, mean);
    const invStd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), axes, true), num(n, 'epsilon', 1e-5)));
    let y = tf.mul(tf.mul(centred, invStd), ins[1] as Tensor);
    if (ins[2]) y = tf.add(y, ins[2]);
    return [y, mean, invStd];
  },
};

/**
 * LayerNormalization over the last axis: (x − mean)/sqrt(var + eps)·scale + bias, with scale and bias
 * of shape [D]. The node also outputs Mean and InvStdDev ([..., 1]) for the backward pass.
 */
export const layerNorm = (x: Value, scale: Value, bias: Value, epsilon: number): Value =>
  emit(LayerNormalization, [x, scale, bias], { axis: -1, epsilon })[0];
