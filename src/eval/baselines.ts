/**
 * Baselines for the held-out L1 of a one-step student (issue 2's report): predicting the per-class
 * mean teacher image, and a per-class ridge regression from noise to image fitted on the training
 * pairs. With more pairs than features, ridge is solved by conjugate gradients on (XᵀX + λI)W = XᵀY, one
 * column per pixel, with the products on onnxruntime (a dense 1025² inverse in JS costs ~5 s per class;
 * CG takes well under 1 s). With fewer (smoke runs), in the dual: W = Xcᵀ(XcXcᵀ + λI)⁻¹Yc on centred
 * data, an n×n Cholesky solve (ml-matrix), with the unpenalised bias ȳ − x̄W.
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import { F64Gemm, mat } from '../graph/linalg.js';

const gemm = new F64Gemm();
const matmulF64 = async (a: Float64Array, b: Float64Array, m: number, k: number, n: number): Promise<Float64Array> =>
  (await gemm.mul(mat(m, k, a), mat(k, n, b))).data;

/** Pairs as flat float32 arrays: noise/image [n, P] with P = C·H·W, labels [n] (all 0 when unconditional). */
export interface FlatPairs {
  readonly n: number;
  readonly pixels: number;
  readonly noise: Float32Array;
  readonly image: Float32Array;
  readonly labels: Int32Array;
}

/** Mean |a − b| over all elements. */
export function meanAbs(a: Float32Array | Float64Array, b: Float32Array | Float64Array): number {
  if (a.length !== b.length) throw new Error(`meanAbs: lengths differ (${a.length} vs ${b.length})`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

function byClass(p: FlatPairs, numClasses: number): number[][] {
  const idx: number[][] = Array.from({ length: Math.max(numClasses, 1) }, () => []);
  for (let i = 0; i < p.n; i++) idx[p.labels[i]].push(i);
  return idx;
}

/** Mean image [P] (float64) over all training pairs. */
export function meanImage(train: FlatPairs): Float64Array {
  const P = train.pixels;
  const m = new Float64Array(P);
  for (let i = 0; i < train.n; i++) for (let j = 0; j < P; j++) m[j] += train.image[i * P + j];
  return m.map((v) => v / Math.max(1, train.n));
}

/**
 * Per-class mean image [numClasses, P] (float64) of the training pairs; a class without pairs gets the overall mean.
 */
export function classMeans(train: FlatPairs, numClasses: number): Float64Array {
  const P = train.pixels;
  const means = new Float64Array(Math.max(numClasses, 1) * P);
  const overall = meanImage(train);
  byClass(train, numClasses).forEach((rows, c) => {
    for (const i of rows) for (let j = 0; j < P; j++) means[c * P + j] += train.image[i * P + j];
    for (let j = 0; j < P; j++) means[c * P + j] = rows.length ? means[c * P + j] / rows.length : overall[j];
  });
  return means;
}

/** Predictions [n, P] of the class-mean baseline for `test`. */
export function predictClassMean(means: Float64Array, test: FlatPairs): Float64Array {
  const P = test.pixels;
  const out = new Float64Array(test.n * P);
  for (let i = 0; i < test.n; i++) out.set(means.subarray(test.labels[i] * P, (test.labels[i] + 1) * P), i * P);
  return out;
}

/**
 * Per-class ridge regression image ≈ [noise, 1]·W, λ = `lambdaPerSample`·n_c on the weights (not the bias).
 * @returns W per class, each [(P+1), P] float64, or null for a class without training pairs.
 */
export async function fitRidge(
  train: FlatPairs,
  numClasses: number,
  lambdaPerSample = 0.1,
  iterations = 60,
): Promise<(Float64Array | null)[]> {
  const P = train.pixels;
  const F = P + 1;
  const out: (Float64Array | null)[] = [];
  for (const rows of byClass(train, numClasses)) {
    const n = rows.length;
    if (n === 0) {
      out.push(null); // no training pairs of this class: its predictions fall back to the mean image
      continue;
    }
    if (n <= F) {
      out.push(await fitRidgeDual(train, rows, lambdaPerSample * n));
      continue;
    }
    const X = new Float64Array(n * F);
    const Y = new Float64Array(n * P);
    rows.forEach((i, r) => {
      for (let j = 0; j < P; j++) X[r * F + j] = train.noise[i * P + j];
      X[r * F + P] = 1;
      for (let j = 0; j < P; j++) Y[r * P + j] = train.image[i * P + j];
    });
    const A = (await gemm.mul(mat(n, F, X), mat(n, F, X), true)).data; // XᵀX
    const lambda = lambdaPerSample * n;
    for (let j = 0; j < P; j++) A[j * F + j] += lambda; // no penalty on the bias row
    A[P * F + P] += 1e-6 * n;
    out.push(await conjugateGradients(A, (await gemm.mul(mat(n, F, X), mat(n, P, Y), true)).data, F, P, iterations));
  }
  return out;
}

/**
 * Ridge in the dual for n ≤ P + 1 pairs: W [(P+1), P] with rows 0..P−1 = Xcᵀ(XcXcᵀ + λI)⁻¹Yc and the
 * last row the bias ȳ − x̄·W (not penalised), Xc, Yc the centred noise and images of `rows`.
 */
async function fitRidgeDual(train: FlatPairs, rows: readonly number[], lambda: number): Promise<Float64Array> {
  const P = train.pixels;
  const n = rows.length;
  const xMean = new Float64Array(P);
  const yMean = new Float64Array(P);
  for (const i of rows)
    for (let j = 0; j < P; j++) {
      xMean[j] += train.noise[i * P + j] / n;
      yMean[j] += train.image[i * P + j] / n;
    }
  const Xc = new Float64Array(n * P);
  const Yc = new Float64Array(n * P);
  rows.forEach((i, r) => {
    for (let j = 0; j < P; j++) {
      Xc[r * P + j] = train.noise[i * P + j] - xMean[j];
      Yc[r * P + j] = train.image[i * P + j] - yMean[j];
    }
  });
  const K = (await gemm.mul(mat(n, P, Xc), mat(n, P, Xc), false, true)).data; // XcXcᵀ [n, n]
  const Km = new Matrix(n, n);
  for (let a = 0; a < n; a++)
    for (let b = 0; b < n; b++) Km.set(a, b, K[a * n + b] + (a === b ? Math.max(lambda, 1e-9) : 0));
  const Ym = new Matrix(n, P);
  for (let a = 0; a < n; a++) for (let j = 0; j < P; j++) Ym.set(a, j, Yc[a * P + j]);
  const alpha = new CholeskyDecomposition(Km).solve(Ym); // [n, P]
  const A = new Float64Array(n * P);
  for (let a = 0; a < n; a++) for (let j = 0; j < P; j++) A[a * P + j] = alpha.get(a, j);
  const Wtop = (await gemm.mul(mat(n, P, Xc), mat(n, P, A), true)).data; // Xcᵀα [P, P]
  const W = new Float64Array((P + 1) * P);
  W.set(Wtop);
  for (let c = 0; c < P; c++) {
    let b = yMean[c];
    for (let j = 0; j < P; j++) b -= xMean[j] * Wtop[j * P + c];
    W[P * P + c] = b;
  }
  return W;
}

/** Solves A·W = B for SPD A [F,F] and B [F,R], column-wise CG with the products on onnxruntime. */
async function conjugateGradients(
  A: Float64Array,
  B: Float64Array,
  F: number,
  R: number,
  iterations: number,
): Promise<Float64Array> {
  const W = new Float64Array(F * R);
  const res = B.slice();
  const dir = B.slice();
  const rr = colDots(res, res, F, R);
  for (let it = 0; it < iterations; it++) {
    const Ad = await matmulF64(A, dir, F, F, R);
    const dAd = colDots(dir, Ad, F, R);
    const alpha = rr.map((v, c) => (dAd[c] > 0 ? v / dAd[c] : 0));
    for (let i = 0; i < F; i++)
      for (let c = 0; c < R; c++) {
        W[i * R + c] += alpha[c] * dir[i * R + c];
        res[i * R + c] -= alpha[c] * Ad[i * R + c];
      }
    const rrNew = colDots(res, res, F, R);
    for (let i = 0; i < F; i++)
      for (let c = 0; c < R; c++) dir[i * R + c] = res[i * R + c] + (rr[c] > 0 ? rrNew[c] / rr[c] : 0) * dir[i * R + c];
    rr.set(rrNew);
  }
  return W;
}

function colDots(a: Float64Array, b: Float64Array, F: number, R: number): Float64Array {
  const d = new Float64Array(R);
  for (let i = 0; i < F; i++) for (let c = 0; c < R; c++) d[c] += a[i * R + c] * b[i * R + c];
  return d;
}

/**
 * Predictions [n, P] of the ridge baseline for `test` (one product per class); a class without a fit
 * predicts `fallback` [P] (e.g. the mean training image), or zeros.
 */
export async function predictRidge(
  W: readonly (Float64Array | null)[],
  test: FlatPairs,
  fallback?: Float64Array,
): Promise<Float64Array> {
  const P = test.pixels;
  const F = P + 1;
  const out = new Float64Array(test.n * P);
  const rowsOf = byClass(test, W.length);
  for (let c = 0; c < rowsOf.length; c++) {
    const rows = rowsOf[c];
    const w = W[c];
    if (rows.length === 0) continue;
    if (!w) {
      for (const i of rows) if (fallback) out.set(fallback, i * P);
      continue;
    }
    const X = new Float64Array(rows.length * F);
    rows.forEach((i, r) => {
      for (let j = 0; j < P; j++) X[r * F + j] = test.noise[i * P + j];
      X[r * F + P] = 1;
    });
    const Y = await matmulF64(X, w, rows.length, F, P);
    rows.forEach((i, r) => out.set(Y.subarray(r * P, (r + 1) * P), i * P));
  }
  return out;
}
