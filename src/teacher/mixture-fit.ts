/**
 * Fitting the Gaussian-mixture teacher: per class, k-means (k-means++ seeding, Lloyd iterations) into K
 * clusters, then per cluster a rank-r factor model C = W Wᵀ + Ψ with W from the top-r principal
 * directions (randomised subspace iteration, Halko et al. 2011 Alg. 4.4) and a per-pixel residual
 * variance Ψ = max(floor, diag(S − W Wᵀ)). Deterministic for a given seed (pure-rand xoroshiro128+).
 * The large products run as float64 Gemm on onnxruntime (`F64Gemm`).
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';
import { type ImageShape, sampleSize } from '../edm/denoiser.js';
import { F64Gemm, type Mat, mat } from '../graph/linalg.js';
import type { MixtureParams } from './mixture-params.js';

export interface FitOptions {
  readonly shape: ImageShape;
  /** Classes in `labels`; 0 fits one unconditional mixture to all images (labels may be null). */
  readonly numClasses: number;
  /** K, components per class; default 10. */
  readonly componentsPerClass?: number;
  /** r, factors per component; default 32 (≤ C·H·W). */
  readonly rank?: number;
  /** PRNG seed; default 0. */
  readonly seed?: number;
  /** Lower bound on Ψ, keeping constant (background) pixels well-posed; default 1e-4. */
  readonly psiFloor?: number;
  /** Lloyd iterations (stops early when assignments settle); default 15. */
  readonly lloydIterations?: number;
  /** Subspace (power) iterations; default 6. */
  readonly powerIterations?: number;
  /** Extra subspace columns beyond r; default 10. */
  readonly oversample?: number;
  /** onnxruntime intra-op threads; default all cores. */
  readonly threads?: number;
  /** Progress callback, one call per fitted group. */
  readonly onGroup?: (group: number, groups: number) => void;
}

/**
 * Fits the mixture teacher.
 * @param images float32 [n, C, H, W] training images (data scale, e.g. [−1, 1]).
 * @param labels int32 [n] class indices in [0, numClasses), or null when numClasses = 0.
 * @returns float64 parameters (see `MixtureParams`).
 * @throws RangeError when sizes disagree, a label is out of range, a class has fewer than K images,
 *   or r > C·H·W.
 */
export async function fitMixtureTeacher(
  images: Float32Array,
  labels: Int32Array | null,
  opts: FitOptions,
): Promise<MixtureParams> {
  const P = sampleSize(opts.shape);
  const K = opts.componentsPerClass ?? 10;
  const r = opts.rank ?? 32;
  const seed = opts.seed ?? 0;
  const floor = opts.psiFloor ?? 1e-4;
  const C = opts.numClasses;
  const G = Math.max(1, C);
  if (images.length % P !== 0)
    throw new RangeError(`fitMixtureTeacher: ${images.length} values are not a whole number of ${P}-pixel images`);
  const n = images.length / P;
  if (!Number.isInteger(K) || K < 1)
    throw new RangeError(`fitMixtureTeacher: componentsPerClass must be an integer ≥ 1, got ${K}`);
  if (!Number.isInteger(r) || r < 0 || r > P)
    throw new RangeError(`fitMixtureTeacher: rank must be an integer in [0, ${P}], got ${r}`);
  if (!(floor > 0)) throw new RangeError(`fitMixtureTeacher: psiFloor must be > 0, got ${floor}`);
  const members = groupMembers(labels, n, C);

  const weights = new Float64Array(G * K);
  const means = new Float64Array(G * K * P);
  const factors = new Float64Array(G * K * r * P);
  const psi = new Float64Array(G * K * P);
  const gemm = new F64Gemm(opts.threads);
  try {
    for (let g = 0; g < G; g++) {
      const idx = members[g];
      if (idx.length < K)
        throw new RangeError(
          `fitMixtureTeacher: class ${g} has ${idx.length} images, ` +
            `fewer than K = ${K} components; lower componentsPerClass`,
        );
      const X = mat(idx.length, P);
      for (let i = 0; i < idx.length; i++) for (let p = 0; p < P; p++) X.data[i * P + p] = images[idx[i] * P + p];
      const rng = xoroshiro128plus((seed * 1000003 + g * 7919 + 1) | 0);
      const assign = await kmeans(gemm, X, K, opts.lloydIterations ?? 15, rng);
      for (let k = 0; k < K; k++) {
        const rows: number[] = [];
        for (let i = 0; i < assign.length; i++) if (assign[i] === k) rows.push(i);
        const off = (g * K + k) * P;
        weights[g * K + k] = rows.length / idx.length;
        const mu = means.subarray(off, off + P);
        const Xc = mat(rows.length, P);
        for (let i = 0; i < rows.length; i++) for (let p = 0; p < P; p++) mu[p] += X.data[rows[i] * P + p];
        for (let p = 0; p < P; p++) mu[p] /= rows.length;
        for (let i = 0; i < rows.length; i++)
          for (let p = 0; p < P; p++) Xc.data[i * P + p] = X.data[rows[i] * P + p] - mu[p];
        const f = await factorModel(
          gemm,
          Xc,
          r,
          Math.min(P, r + (opts.oversample ?? 10)),
          opts.powerIterations ?? 6,
          floor,
          rng,
        );
        factors.set(f.factors, (g * K + k) * r * P);
        psi.set(f.psi, off);
      }
      opts.onGroup?.(g, G);
    }
  } finally {
    await gemm.release();
  }
  return {
    config: {
      version: 1,
      shape: { ...opts.shape },
      numClasses: C,
      components: K,
      rank: r,
      psiFloor: floor,
      seed,
      trainCount: n,
    },
    weights,
    means,
    factors,
    psi,
  };
}

function groupMembers(labels: Int32Array | null, n: number, C: number): number[][] {
  if (C === 0) return [Array.from({ length: n }, (_, i) => i)];
  if (!labels || labels.length !== n)
    throw new RangeError(
      `fitMixtureTeacher: need labels [${n}] for ${C} classes, got ${labels ? labels.length : 'null'}`,
    );
  const out: number[][] = Array.from({ length: C }, () => []);
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (!(y >= 0 && y < C)) throw new RangeError(`fitMixtureTeacher: label ${y} at index ${i} is outside [0, ${C})`);
    out[y].push(i);
  }
  return out;
}

/** k-means++ seeding (Arthur & Vassilvitskii 2007), then Lloyd iterations; returns the cluster of each row. */
async function kmeans(gemm: F64Gemm, X: Mat, K: number, iterations: number, rng: RandomGenerator): Promise<Int32Array> {
  const { rows: n, cols: P } = X;
  const centers = mat(K, P);
  const d2 = new Float64Array(n).fill(Infinity);
  let chosen = Math.floor(uniformFloat64(rng) * n);
  for (let k = 0; k < K; k++) {
    if (k > 0) {
      let total = 0;
      for (let i = 0; i < n; i++) total += d2[i];
      if (total > 0) {
        let u = uniformFloat64(rng) * total;
        chosen = n - 1;
        for (let i = 0; i < n; i++)
          if ((u -= d2[i]) < 0) {
            chosen = i;
            break;
          }
      } else chosen = k; // every point coincides with a centre: any distinct rows will do
    }
    centers.data.set(X.data.subarray(chosen * P, (chosen + 1) * P), k * P);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let p = 0; p < P; p++) {
        const v = X.data[i * P + p] - centers.data[k * P + p];
        s += v * v;
      }
      if (s < d2[i]) d2[i] = s;
    }
  }
  const assign = new Int32Array(n).fill(-1);
  const dist = new Float64Array(n);
  for (let it = 0; it <= iterations; it++) {
    // ‖x − c‖² = ‖x‖² − 2x·c + ‖c‖²; ‖x‖² does not change the argmin, so it is left out.
    const scores = await gemm.mul(X, centers, false, true);
    const cn = new Float64Array(K);
    for (let k = 0; k < K; k++) for (let p = 0; p < P; p++) cn[k] += centers.data[k * P + p] ** 2;
    let changed = 0;
    for (let i = 0; i < n; i++) {
      let best = 0;
      let bestD = Infinity;
      for (let k = 0; k < K; k++) {
        const d = cn[k] - 2 * scores.data[i * K + k];
        if (d < bestD) {
          bestD = d;
          best = k;
        }
      }
      dist[i] = bestD;
      if (assign[i] !== best) {
        assign[i] = best;
        changed++;
      }
    }
    fillEmptyClusters(X, assign, dist, K);
    if (changed === 0 || it === iterations) break;
    centers.data.fill(0);
    const count = new Float64Array(K);
    for (let i = 0; i < n; i++) {
      const k = assign[i];
      count[k]++;
      for (let p = 0; p < P; p++) centers.data[k * P + p] += X.data[i * P + p];
    }
    for (let k = 0; k < K; k++) for (let p = 0; p < P; p++) centers.data[k * P + p] /= count[k];
  }
  return assign;
}

/**
 * Gives each empty cluster the point farthest from its centre (‖x − c‖², first index on ties) among clusters of size ≥
 * 2.
 */
function fillEmptyClusters(X: Mat, assign: Int32Array, dist: Float64Array, K: number): void {
  const count = new Int32Array(K);
  for (const a of assign) count[a]++;
  for (let k = 0; k < K; k++) {
    if (count[k] > 0) continue;
    let far = -1;
    let farD = -Infinity;
    for (let i = 0; i < assign.length; i++) {
      if (count[assign[i]] < 2) continue;
      let xn = 0;
      for (let p = 0; p < X.cols; p++) xn += X.data[i * X.cols + p] ** 2;
      if (dist[i] + xn > farD) {
        farD = dist[i] + xn;
        far = i;
      }
    }
    count[assign[far]]--;
    assign[far] = k;
    count[k] = 1;
    dist[far] = -Infinity;
  }
}

/**
 * Rank-r factor model of centred rows Xc [m, P]: S = XcᵀXc/m, top-r eigenpairs (λ_j, u_j) by subspace
 * iteration with l ≥ r columns, W_j = √λ_j·u_j, Ψ = max(floor, diag(S) − Σ_j W_j²).
 * @returns factors float64 [r, P] (rows W_jᵀ) and psi float64 [P].
 */
async function factorModel(
  gemm: F64Gemm,
  Xc: Mat,
  r: number,
  l: number,
  q: number,
  floor: number,
  rng: RandomGenerator,
): Promise<{ factors: Float64Array; psi: Float64Array }> {
  const P = Xc.cols;
  const m = Math.max(1, Xc.rows);
  const S = await gemm.mul(Xc, Xc, true, false);
  for (let i = 0; i < S.data.length; i++) S.data[i] /= m;
  const psi = new Float64Array(P);
  for (let p = 0; p < P; p++) psi[p] = S.data[p * P + p];
  const factors = new Float64Array(r * P);
  if (r > 0) {
    let Q = mat(l, P);
    for (let i = 0; i < Q.data.length; i++) Q.data[i] = gaussian(rng);
    orthonormalizeRows(Q, rng);
    for (let it = 0; it < q; it++) {
      Q = await gemm.mul(Q, S); // rows (S·q_i)ᵀ, S symmetric
      orthonormalizeRows(Q, rng);
    }
    // Rayleigh–Ritz: T = Q S Qᵀ [l, l], eigenvectors V, Ritz vectors Vᵀ Q.
    const T = await gemm.mul(await gemm.mul(Q, S), Q, false, true);
    const eig = new EigenvalueDecomposition(new Matrix(toRows(T)), { assumeSymmetric: true });
    const lambda = eig.realEigenvalues;
    const V = eig.eigenvectorMatrix;
    const order = lambda.map((_, i) => i).sort((a, b) => lambda[b] - lambda[a] || a - b);
    for (let j = 0; j < r; j++) {
      const c = order[j];
      const scale = Math.sqrt(Math.max(0, lambda[c]));
      const row = factors.subarray(j * P, (j + 1) * P);
      for (let i = 0; i < l; i++) {
        const v = V.get(i, c) * scale;
        for (let p = 0; p < P; p++) row[p] += v * Q.data[i * P + p];
      }
      for (let p = 0; p < P; p++) psi[p] -= row[p] * row[p];
    }
  }
  for (let p = 0; p < P; p++) psi[p] = Math.max(floor, psi[p]);
  return { factors, psi };
}

const toRows = (a: Mat): number[][] =>
  Array.from({ length: a.rows }, (_, i) => Array.from(a.data.subarray(i * a.cols, (i + 1) * a.cols)));

/** Standard normal by Box–Muller (one value per call, deterministic in the PRNG stream). */
function gaussian(rng: RandomGenerator): number {
  const u = 1 - uniformFloat64(rng);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniformFloat64(rng));
}

/**
 * Modified Gram–Schmidt over the rows of A (in place), applied twice for stability; a row that falls in
 * the span of the previous ones (rank-deficient S) is replaced by a fresh random direction.
 */
function orthonormalizeRows(A: Mat, rng: RandomGenerator): void {
  const { rows: l, cols: P } = A;
  for (let i = 0; i < l; i++) {
    const row = A.data.subarray(i * P, (i + 1) * P);
    for (let attempt = 0; ; attempt++) {
      const before = Math.sqrt(dot(row, row));
      for (let pass = 0; pass < 2; pass++) {
        for (let j = 0; j < i; j++) {
          const prev = A.data.subarray(j * P, (j + 1) * P);
          const c = dot(row, prev);
          for (let p = 0; p < P; p++) row[p] -= c * prev[p];
        }
      }
      const norm = Math.sqrt(dot(row, row));
      if (norm > 1e-10 * before && norm > 1e-300) {
        for (let p = 0; p < P; p++) row[p] /= norm;
        break;
      }
      if (attempt > 20)
        throw new Error('orthonormalizeRows: cannot complete an orthonormal basis (rows exceed the dimension?)');
      for (let p = 0; p < P; p++) row[p] = gaussian(rng);
    }
  }
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
