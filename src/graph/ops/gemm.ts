/**
 * ONNX Gemm: alpha·op(A)·op(B) + beta·C, with op(t) = tᵀ when transA / transB is set; A, B 2-D, C
 * (optional) broadcast to [M, N]. The backward pass forms weight gradients with it.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { broadcastShapes } from '../broadcast.js';
import { type Value, fail, shapeStr } from '../ir.js';
import { mul } from './binary.js';
import { type OpDef, type RefTensor, elementwise, emit, g0, mapFloats, num, when } from './core.js';
import { matmulRef } from './matmul.js';
import { scalar } from './scalar.js';
import { transposeRef } from './transpose.js';

export const Gemm: OpDef = {
  type: 'Gemm',
  shape: ([a, b, c], attrs) => {
    if (a.shape.length !== 2 || b.shape.length !== 2)
      fail('Gemm', `operands must be 2-D, got ${shapeStr(a.shape)} x ${shapeStr(b.shape)}`);
    if (a.dtype !== b.dtype || (c && c.dtype !== a.dtype)) fail('Gemm', 'operand dtypes differ');
    const tA = attrs.transA === 1;
    const tB = attrs.transB === 1;
    const [m, k] = tA ? [a.shape[1], a.shape[0]] : a.shape;
    const [k2, n] = tB ? [b.shape[1], b.shape[0]] : b.shape;
    if (k !== k2)
      fail('Gemm', `inner dims differ (${shapeStr(a.shape)}${tA ? 'ᵀ' : ''} x ${shapeStr(b.shape)}${tB ? 'ᵀ' : ''})`);
    if (c) broadcastShapes('Gemm', [m, n], c.shape);
    return [{ dtype: a.dtype, shape: [m, n] }];
  },
  /** Transposes folded into the backward Gemms. */
  grad: (n, gys, need, e) => {
    const [a, b, c] = n.inputs;
    const g = g0(gys);
    const tA = n.attrs.transA === 1;
    const tB = n.attrs.transB === 1;
    const alpha = (n.attrs.alpha as number | undefined) ?? 1;
    const beta = (n.attrs.beta as number | undefined) ?? 1;
    return [
      when(need[0], () => (tA ? gemm(b, g, { transA: tB, transB: true, alpha }) : gemm(g, b, { transB: !tB, alpha }))),
      when(need[1], () => (tB ? gemm(g, a, { transA: true, transB: tA, alpha }) : gemm(a, g, { transA: !tA, alpha }))),
      when(!!c && need[2], () => e.sumTo(beta === 1 ? g : mul(g, scalar(g, beta)), c.shape, c)),
    ];
  },
  reference: (ins, n) => {
    const [a, b, c] = ins as (RefTensor | undefined)[];
    const t2 = (x: RefTensor) => transposeRef(x, [1, 0]);
    const A = n.attrs.transA === 1 ? t2(a!) : a!;
    const B = n.attrs.transB === 1 ? t2(b!) : b!;
    const alpha = (n.attrs.alpha as number | undefined) ?? 1;
    const beta = (n.attrs.beta as number | undefined) ?? 1;
    const p = matmulRef(A, B);
    if (!c) return [mapFloats(p, (v) => alpha * v)];
    return [elementwise('Gemm', [p, c], p.dtype, (v, w) => alpha * v + beta * w)];
  },
  tfjs: (tf, ins, n) => {
    let y = tf.matMul(ins[0] as Tensor, ins[1] as Tensor, num(n, 'transA', 0) === 1, num(n, 'transB', 0) === 1);
    const alpha = num(n, 'alpha', 1);
    const beta = num(n, 'beta', 1);
    if (alpha !== 1) y = tf.mul(y, alpha);
    if (ins[2]) y = tf.add(y, beta === 1 ? ins[2] : tf.mul(ins[2], beta));
    return [y];
  },
};

/** Options of `gemm`: ONNX Gemm attributes (defaults 0, 0, 1, 1). */
export interface GemmOptions {
  readonly transA?: boolean;
  readonly transB?: boolean;
  readonly alpha?: number;
  readonly beta?: number;
}

/**
 * ONNX Gemm: alpha·op(a)·op(b) + beta·c, with op(t) = tᵀ when trans is set. a, b are 2-D
 * (op(a) [M, K], op(b) [K, N]); c (optional) broadcasts to [M, N]. Used by the backward pass to form
 * a weight gradient as one 2-D product (xᵀ·g with transA) without materialising a transpose.
 */
export function gemm(a: Value, b: Value, opts: GemmOptions = {}, c?: Value): Value {
  const attrs = {
    transA: opts.transA ? 1 : 0,
    transB: opts.transB ? 1 : 0,
    alpha: opts.alpha ?? 1,
    beta: opts.beta ?? 1,
  };
  return emit(Gemm, c ? [a, b, c] : [a, b], attrs)[0];
}
