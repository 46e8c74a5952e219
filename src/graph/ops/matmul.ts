/**
 * Numpy matmul (ONNX MatMul): a [..., m, k] × b [..., k, n] → [..., m, n] with broadcast batch dims.
 * 1-D operands are not supported (reshape first).
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { broadcastIndex, broadcastShapes } from '../broadcast.js';
import { type Value, fail, shapeStr } from '../ir.js';
import { type OpDef, type RefTensor, type Tf, emit, floats, g0, size, when } from './core.js';
import { gemm } from './gemm.js';

/** Numpy matmul of concrete float tensors a [..., m, k] and b [..., k, n] in float64. */
export function matmulRef(a: RefTensor, b: RefTensor): RefTensor {
  const [m, k] = a.dims.slice(-2);
  const [k2, n] = b.dims.slice(-2);
  if (a.dims.length < 2 || b.dims.length < 2 || k !== k2)
    fail('MatMul', `cannot multiply ${shapeStr(a.dims)} x ${shapeStr(b.dims)}`);
  const batch = broadcastShapes('MatMul', a.dims.slice(0, -2), b.dims.slice(0, -2));
  const ia = broadcastIndex(batch, a.dims.slice(0, -2));
  const ib = broadcastIndex(batch, b.dims.slice(0, -2));
  const A = floats(a);
  const B = floats(b);
  const out = new Float64Array(size(batch) * m * n);
  for (let t = 0; t < ia.length; t++) {
    const oa = ia[t] * m * k;
    const ob = ib[t] * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += A[oa + i * k + p] * B[ob + p * n + j];
        out[t * m * n + i * n + j] = s;
      }
    }
  }
  return { dtype: a.dtype, dims: [...batch, m, n], data: out };
}

/**
 * tfjs numpy matmul. tfjs's BatchMatMul gradient does not sum over broadcast batch dims (it returns a
 * [B, k, n] gradient for a [k, n] operand), so a 2-D right operand is applied to a flattened [rows, k]
 * left one, and other broadcasts are made explicit (broadcastTo sums back).
 */
function matmulTf(tf: Tf, a: Tensor, b: Tensor): Tensor {
  if (b.rank === 2 && a.rank > 2) {
    const lead = a.shape.slice(0, -1);
    const y = tf.matMul(tf.reshape(a, [-1, a.shape[a.rank - 1]]), b);
    return tf.reshape(y, [...lead, b.shape[1] as number]);
  }
  const batch = broadcastShapes('MatMul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const full = (t: Tensor) => {
    const shape = [...batch, ...t.shape.slice(-2)];
    return t.rank === shape.length && t.shape.every((d, i) => d === shape[i]) ? t : tf.broadcastTo(t, shape);
  };
  return tf.matMul(full(a), full(b));
}

export const MatMul: OpDef = {
  type: 'MatMul',
  shape: ([a, b]) => {
    if (a.shape.length < 2 || b.shape.length < 2)
      fail('MatMul', `operands need rank ≥ 2, got ${shapeStr(a.shape)} x ${shapeStr(b.shape)}`);
    if (a.dtype !== b.dtype) fail('MatMul', `dtype mismatch ${a.dtype} vs ${b.dtype}`);
    const [m, k] = a.shape.slice(-2);
    const [k2, n] = b.shape.slice(-2);
    if (k !== k2) fail('MatMul', `inner dims differ (${shapeStr(a.shape)} x ${shapeStr(b.shape)})`);
    const batch = broadcastShapes('MatMul', a.shape.slice(0, -2), b.shape.slice(0, -2));
    return [{ dtype: a.dtype, shape: [...batch, m, n] }];
  },
  /** Gradients of [..., m, k] × [..., k, n]; a 2-D right operand (a weight) gets ONE 2-D product. */
  grad: (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    const [K, N] = b.shape;
    if (b.shape.length === 2 && typeof K === 'number' && typeof N === 'number') {
      // y [..., m, n] = a [..., m, k] · W [k, n]: flatten rows, dW = a2ᵀ·g2, da = g2·Wᵀ.
      const gFlat = () => e.flatten2d(g);
      return [
        when(need[0], () => e.reshape(gemm(gFlat(), b, { transB: true }), a.shape, a)),
        when(need[1], () => gemm(e.flatten2d(a), gFlat(), { transA: true })),
      ];
    }
    return [
      when(need[0], () => e.sumTo(matmul(g, e.transposeLast2(b)), a.shape, a)),
      when(need[1], () => e.sumTo(matmul(e.transposeLast2(a), g), b.shape, b)),
    ];
  },
  reference: (ins) => [matmulRef(ins[0] as RefTensor, ins[1] as RefTensor)],
  tfjs: (tf, ins) => [matmulTf(tf, ins[0] as Tensor, ins[1] as Tensor)],
};

/**
 * Numpy matmul: a [..., m, k] × b [..., k, n] → [..., m, n], batch dims broadcast. 1-D operands are
 * not supported (reshape first).
 */
export const matmul = (a: Value, b: Value) => emit(MatMul, [a, b])[0];
