/**
 * Fréchet (Inception) Distance between two Gaussians fitted to features, as pytorch-fid `fid_score.py`
 * calculate_frechet_distance and pytorch-gan-metrics `core.py` calculate_frechet_distance compute it:
 *
 *   FID = ‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2·Tr((Σ₁Σ₂)^{1/2})          (float64)
 *
 * Those call scipy's `sqrtm(Σ₁Σ₂)` (Schur method on the non-symmetric product). Here the trace of the square
 * root comes from symmetric factorizations instead. With any factors Σ₁ = F₁F₁ᵀ, Σ₂ = F₂F₂ᵀ:
 *
 *   λ(Σ₁Σ₂) = λ(F₁·F₁ᵀF₂F₂ᵀ) = λ(F₁ᵀF₂·F₂ᵀF₁) = σ(F₁ᵀF₂)²      (AB and BA have the same eigenvalues)
 *   ⇒ Tr((Σ₁Σ₂)^{1/2}) = Σᵢ √λᵢ(Σ₁Σ₂) = Σᵢ σᵢ(F₁ᵀF₂)          (the nuclear norm of F₁ᵀF₂)
 *
 * The eigenvalues of Σ₁Σ₂ are real and ≥ 0 (they are those of the PSD F₁ᵀΣ₂F₁), so the principal root is
 * real. scipy's route can return tiny negative round-off eigenvalues, whose imaginary roots pytorch-fid drops
 * (it keeps `covmean.real`), i.e. counts as 0; singular values are ≥ 0 by construction, so nothing to clip.
 * F is the Cholesky factor (ml-matrix CholeskyDecomposition) when Σ is numerically positive definite, else
 * V·diag(√max(λ, 0)) from a symmetric eigendecomposition (ml-matrix EigenvalueDecomposition, assumeSymmetric;
 * round-off negatives above −1e-9·λmax clipped). σ(F₁ᵀF₂) come from ml-matrix's SVD without singular
 * vectors; the product F₁ᵀF₂ runs as onnxruntime float64 Gemm. Cost at d = 2048 on this 2-core CPU: two
 * Cholesky ~4 s each, the SVD ~50 s (the O(d³) core, in JS), plus ~55 s per covariance that needs the eigen
 * route (singular covariances, e.g. a feature that never varies).
 * Working on the factors keeps the square roots of the condition numbers, not the condition numbers.
 *
 * sigma is used as (Σ + Σᵀ)/2 (exactly symmetric, as the factorizations need).
 *
 * Fallback (pytorch-fid): when the result is not finite, or a covariance is not positive semi-definite beyond
 * round-off, eps·I (eps = 1e-6) is added to both covariances and everything is recomputed (offsetApplied).
 */
import { CholeskyDecomposition, EigenvalueDecomposition, Matrix, SingularValueDecomposition } from 'ml-matrix';
import { F64Gemm, mat } from '../graph/linalg.js';
import { UsageError } from '../util/errors.js';

/**
 * A Gaussian fitted to features (FID statistics, as stored in pytorch-fid .npz files): mu float64 [d],
 * sigma float64 [d, d] row-major (symmetric PSD).
 */
export interface FidStats {
  readonly mu: Float64Array;
  readonly sigma: Float64Array;
}

export interface FidOptions {
  /** Offset added to both diagonals by the fallback (default 1e-6, as pytorch-fid). */
  readonly eps?: number;
  /** Names of the two statistics in errors (default `['features', 'reference statistics']`). */
  readonly labels?: readonly [string, string];
  /** A Gemm session cache to reuse; default: a fresh one, released before returning. */
  readonly gemm?: F64Gemm;
}

/** How a covariance was factored as F·Fᵀ. */
export type Factorization = 'cholesky' | 'eigh';

export interface FidResult {
  /** The Fréchet distance (squared-feature units; can be ~−1e-12 for identical statistics). */
  readonly fid: number;
  /** ‖μ₁ − μ₂‖². */
  readonly meanTerm: number;
  /** Tr((Σ₁Σ₂)^{1/2}) of the covariances used (with the offset when applied). */
  readonly traceSqrt: number;
  /** Whether eps·I was added to both covariances (the pytorch-fid fallback). */
  readonly offsetApplied: boolean;
  /** The offset used: 0 or eps. */
  readonly eps: number;
  /** How Σ₁ and Σ₂ were factored. */
  readonly factorizations: readonly [Factorization, Factorization];
}

const dimOf = (s: FidStats): number => s.mu.length;

function validate(s: FidStats, label: string): void {
  const d = dimOf(s);
  if (d < 1) throw new UsageError(`FID: ${label} have an empty mu`);
  if (s.sigma.length !== d * d)
    throw new UsageError(
      `FID: ${label} have sigma with ${s.sigma.length} values, expected ${d}×${d} for mu of length ${d}`,
    );
  for (const [name, a, cols] of [
    ['mu', s.mu, 1],
    ['sigma', s.sigma, d],
  ] as const) {
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i])) {
        const at = cols === 1 ? `[${i}]` : `[${Math.floor(i / cols)}, ${i % cols}]`;
        throw new UsageError(
          `FID: ${label} have ${name}${at} = ${a[i]}; recompute the statistics from finite features`,
        );
      }
    }
  }
}

/** F with F·Fᵀ = sigma, or the most negative eigenvalue when sigma is not PSD beyond round-off. */
function factor(sigma: Float64Array, d: number): { f: Float64Array; how: Factorization } | { minEig: number } {
  const m = Matrix.from1DArray(d, d, sigma);
  const chol = new CholeskyDecomposition(m);
  if (chol.isPositiveDefinite()) {
    const l = chol.lowerTriangularMatrix;
    const f = new Float64Array(d * d);
    for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) f[i * d + j] = l.get(i, j);
    return { f, how: 'cholesky' };
  }
  const eig = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const lambda = eig.realEigenvalues;
  const v = eig.eigenvectorMatrix;
  const top = Math.max(...lambda.map(Math.abs));
  const minEig = Math.min(...lambda);
  if (!(minEig >= -1e-9 * top)) return { minEig };
  const root = lambda.map((x) => Math.sqrt(Math.max(x, 0)));
  const f = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) f[i * d + j] = v.get(i, j) * root[j];
  return { f, how: 'eigh' };
}

const trace = (s: Float64Array, d: number): number => {
  let t = 0;
  for (let i = 0; i < d; i++) t += s[i * d + i];
  return t;
};

/**
 * (Σ + Σᵀ)/2 + offset·I: ml-matrix's Cholesky demands exact symmetry, which stats from elsewhere may miss by an ulp.
 */
function symmetrized(s: Float64Array, d: number, offset: number): Float64Array {
  const o = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const v = 0.5 * (s[i * d + j] + s[j * d + i]);
      o[i * d + j] = v;
      o[j * d + i] = v;
    }
    o[i * d + i] += offset;
  }
  return o;
}

/**
 * Tr((Σ₁Σ₂)^{1/2}) = ‖F₁ᵀF₂‖_* (see the module comment), or the reason it is unusable.
 * @returns `bad` names which covariance is not PSD (index 0 or 1) with its most negative eigenvalue.
 */
async function traceSqrtProduct(
  s1: Float64Array,
  s2: Float64Array,
  d: number,
  gemm: F64Gemm,
): Promise<{ value: number; how: [Factorization, Factorization] } | { bad: number; minEig: number }> {
  const f1 = factor(s1, d);
  if ('minEig' in f1) return { bad: 0, minEig: f1.minEig };
  const f2 = factor(s2, d);
  if ('minEig' in f2) return { bad: 1, minEig: f2.minEig };
  const p = (await gemm.mul(mat(d, d, f1.f), mat(d, d, f2.f), true, false)).data; // F₁ᵀF₂
  const svd = new SingularValueDecomposition(Matrix.from1DArray(d, d, p), {
    computeLeftSingularVectors: false,
    computeRightSingularVectors: false,
  });
  let value = 0;
  for (const s of svd.diagonal) value += s;
  return { value, how: [f1.how, f2.how] };
}

/**
 * FID between `a` (usually the generated samples' statistics) and `b` (usually the reference statistics).
 * Units: squared feature units. Cost: O(d³) — at d = 2048 about a minute on one CPU core (module comment).
 * @throws UsageError when the dims differ (`FID: reference statistics have dim 2048, features have dim 64 …`),
 *   sigma is not d×d, a value is not finite, or a covariance is not positive semi-definite even after the
 *   eps·I offset.
 */
export async function frechetDistance(a: FidStats, b: FidStats, opts: FidOptions = {}): Promise<FidResult> {
  const [la, lb] = opts.labels ?? ['features', 'reference statistics'];
  const eps = opts.eps ?? 1e-6;
  if (dimOf(a) !== dimOf(b)) {
    throw new UsageError(
      `FID: ${lb} have dim ${dimOf(b)}, ${la} have dim ${dimOf(a)}; compute both with the same feature network`,
    );
  }
  validate(a, la);
  validate(b, lb);
  const d = dimOf(a);
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (a.mu[i] - b.mu[i]) ** 2;
  const gemm = opts.gemm ?? new F64Gemm();
  try {
    let last: { bad: number; minEig: number } | undefined;
    for (const offset of [0, eps]) {
      const s1 = symmetrized(a.sigma, d, offset);
      const s2 = symmetrized(b.sigma, d, offset);
      const r = await traceSqrtProduct(s1, s2, d, gemm);
      if ('bad' in r) {
        last = r;
        continue;
      }
      const fid = meanTerm + trace(s1, d) + trace(s2, d) - 2 * r.value;
      if (!Number.isFinite(fid)) continue;
      return { fid, meanTerm, traceSqrt: r.value, offsetApplied: offset !== 0, eps: offset, factorizations: r.how };
    }
    if (last) {
      throw new UsageError(
        `FID: sigma of the ${[la, lb][last.bad]} is not positive semi-definite (eigenvalue ` +
          `${last.minEig.toExponential(3)}, even after adding ${eps.toExponential()}·I); recompute it as a ` +
          `covariance of finite features`,
      );
    }
    throw new UsageError(
      `FID: the distance is not finite even after adding ` +
        `${eps.toExponential()}·I to both covariances; check the statistics' scale`,
    );
  } finally {
    if (!opts.gemm) await gemm.release();
  }
}
