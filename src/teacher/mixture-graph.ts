/**
 * ONNX graphs (float64) of the Gaussian-mixture posterior mean, built with the project IR.
 *
 * For one class with components k = 1..K, C_k = W_k W_kᵀ + Ψ_k and x = x0 + σ·ε:
 *   E[x0 | x] = x − σ²·Σ_k γ_k(x)·(C_k + σ²I)⁻¹(x − μ_k),   γ_k ∝ π_k·N(x; μ_k, C_k + σ²I).
 * With D_k = Ψ_k + σ² (diagonal) and M_k = I_r + W_kᵀD_k⁻¹W_k, Woodbury and the determinant lemma give
 *   (C_k + σ²I)⁻¹u = D_k⁻¹u − D_k⁻¹W_k M_k⁻¹ t_k,  t_k = W_kᵀD_k⁻¹u,
 *   uᵀ(C_k + σ²I)⁻¹u = uᵀD_k⁻¹u − t_kᵀM_k⁻¹t_k,    log det(C_k + σ²I) = Σ log D_k + log det M_k.
 * Expanding u = x − μ_k turns every per-component term into a product of x with a σ-dependent matrix,
 * so the whole batch runs as a few Gemms ([n, P] × [P, K·r] and back) and nothing of size [K, n, P] is
 * formed. The σ-dependent tensors come from `buildPrepGraph` (once per σ, cached by the caller).
 */
import { Graph } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import * as op from '../graph/ops.js';

/**
 * Posterior-mean graph for one class.
 * Inputs (float64): x [n, P]; wt [K, r, P] (W_kᵀ); dinv [K, 1, P] (D_k⁻¹); a [K, P] (D_k⁻¹μ_k);
 * b [1, K·r] (W_kᵀD_k⁻¹μ_k); minv [K, r, r] (M_k⁻¹); bias [K, 1] (log π_k − ½(μ_kᵀD_k⁻¹μ_k + log det(C_k+σ²I)));
 * sigma2 [1]. Output `denoised` [n, P].
 */
export function buildDenoiseGraph(K: number, r: number, P: number): Uint8Array {
  const R = K * r;
  const g = new Graph('mixture_denoise');
  const x = g.input('x', 'float64', ['batch', P]);
  const wt = g.input('wt', 'float64', [K, r, P]);
  const dinv3 = g.input('dinv', 'float64', [K, 1, P]);
  const a = g.input('a', 'float64', [K, P]);
  const b = g.input('b', 'float64', [1, R]);
  const minv = g.input('minv', 'float64', [K, r, r]);
  const bias = g.input('bias', 'float64', [K, 1]);
  const sigma2 = g.input('sigma2', 'float64', [1]);

  const wdT = op.reshape(op.mul(wt, dinv3), [R, P]); //             [R, P]   rows D_k⁻¹W_k[:, j]
  const dinv = op.reshape(dinv3, [K, P]); //                          [K, P]
  const t = op.gemm(x, wdT, { transB: true, beta: -1 }, b); //        [n, R]   t_k = W_kᵀD_k⁻¹(x − μ_k)
  const t3 = op.transpose(op.reshape(t, ['batch', K, r]), [1, 0, 2]); // [K, n, r]
  const s3 = op.matmul(t3, minv); //                                  [K, n, r] s_k = M_k⁻¹t_k
  const ts = op.reduceSum(op.mul(t3, s3), [2]); //                    [K, n]   t_kᵀM_k⁻¹t_k
  const qd = op.gemm(dinv, op.mul(x, x), { transB: true }); //       [K, n]   Σ D⁻¹x²
  const q = op.gemm(a, x, { transB: true, alpha: -2, beta: 1 }, qd); // [K, n]   Σ D⁻¹(x² − 2μx)
  const half = op.scalar(x, 0.5);
  const logits = op.add(bias, op.mul(half, op.sub(ts, q))); //        [K, n]
  const e = op.exp(op.sub(logits, op.reduceMax(logits, [0], true))); //            [K, n]   stable softmax over K
  const gamma = op.div(e, op.reduceSum(e, [0], true)); //             [K, n]   γ_k(x)
  // gs: [n, R]
  const gs = op.reshape(op.transpose(op.mul(s3, op.reshape(gamma, [K, 'batch', 1])), [1, 0, 2]), ['batch', R]);
  const xd = op.mul(x, op.gemm(gamma, dinv, { transA: true })); //    [n, P]   x·Σγ_k D_k⁻¹
  const c1 = op.gemm(gamma, a, { transA: true, alpha: -1, beta: 1 }, xd); // [n, P]  Σγ_k D_k⁻¹(x − μ_k)
  const corr = op.gemm(gs, wdT, { alpha: -1, beta: 1 }, c1); //        [n, P]  Σγ_k (C_k + σ²I)⁻¹(x − μ_k)
  const denoised = op.sub(x, op.mul(sigma2, corr)); //                 [n, P]
  return toOnnx(g, { outputs: { denoised } });
}

/**
 * σ-dependent tensors of one class.
 * Inputs (float64): wt [K, r, P]; mu [K, P]; psi [K, P]; sigma2 [1].
 * Outputs: dinv [K, P] = 1/(Ψ + σ²); a [K, P] = dinv·μ; b [K, r, 1] = W_kᵀ dinv μ; wdw [K, r, r] = W_kᵀ D_k⁻¹ W_k;
 * cq [K] = μᵀD⁻¹μ; logdet_d [K] = Σ log(Ψ + σ²).
 */
export function buildPrepGraph(K: number, r: number, P: number): Uint8Array {
  const g = new Graph('mixture_prep');
  const wt = g.input('wt', 'float64', [K, r, P]);
  const mu = g.input('mu', 'float64', [K, P]);
  const psi = g.input('psi', 'float64', [K, P]);
  const sigma2 = g.input('sigma2', 'float64', [1]);
  const v = op.add(psi, sigma2); //                                   [K, P]
  const dinv = op.reciprocal(v); //                                    [K, P]
  const logdetD = op.reduceSum(op.log(v), [1]); //                     [K]
  const a = op.mul(dinv, mu); //                                      [K, P]
  const cq = op.reduceSum(op.mul(a, mu), [1]); //                     [K]
  const wd = op.mul(wt, op.reshape(dinv, [K, 1, P])); //              [K, r, P]
  const wdw = op.matmul(wd, op.transpose(wt, [0, 2, 1])); //          [K, r, r]
  const b = op.matmul(wd, op.reshape(mu, [K, P, 1])); //              [K, r, 1]
  return toOnnx(g, { outputs: { dinv, a, b, wdw, cq, logdet_d: logdetD } });
}
