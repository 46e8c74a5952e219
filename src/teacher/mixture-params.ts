/**
 * Parameters of the analytic class-conditional Gaussian-mixture teacher. Each class (group) has K
 * components N(μ_k, C_k) with C_k = W_k W_kᵀ + Ψ_k: W_k a rank-r factor loading, Ψ_k a per-pixel
 * (diagonal) residual variance. All arrays are float64 so the saved file round-trips exactly.
 */
import { createHash } from 'node:crypto';
import { type ImageShape, sampleSize } from '../edm/denoiser.js';

/** JSON-serialisable description of a fitted mixture (stored as safetensors metadata). */
export interface MixtureConfig {
  /** Format version of these parameters; bumped on incompatible changes. */
  readonly version: 1;
  readonly shape: ImageShape;
  /** Classes; 0 = unconditional (a single group fitted to all images). */
  readonly numClasses: number;
  /** K, components per group. */
  readonly components: number;
  /** r, factors per component. */
  readonly rank: number;
  /** Lower bound on every Ψ entry. */
  readonly psiFloor: number;
  /** Seed of the k-means++ and subspace-iteration PRNG. */
  readonly seed: number;
  /** Images the mixture was fitted to. */
  readonly trainCount: number;
}

export interface MixtureParams {
  readonly config: MixtureConfig;
  /** float64 [G, K]: mixture weights π (cluster fractions), summing to 1 within each group; G = max(1, numClasses). */
  readonly weights: Float64Array;
  /** float64 [G, K, P]: component means μ, P = C·H·W. */
  readonly means: Float64Array;
  /** float64 [G, K, r, P]: factor loadings stored transposed, row j of W_kᵀ = √λ_j·u_j (u_j a principal direction). */
  readonly factors: Float64Array;
  /** float64 [G, K, P]: per-pixel residual variances Ψ ≥ psiFloor. */
  readonly psi: Float64Array;
}

/** Number of groups G: one per class, or one for an unconditional mixture. */
export const groupCount = (c: MixtureConfig): number => Math.max(1, c.numClasses);

/**
 * Checks array sizes and value ranges.
 * @throws RangeError naming the first inconsistent field.
 */
export function validateMixture(p: MixtureParams): void {
  const c = p.config;
  if (c.version !== 1) throw new RangeError(`mixture: unsupported parameter version ${String(c.version)} (expected 1)`);
  const G = groupCount(c);
  const P = sampleSize(c.shape);
  const K = c.components;
  const r = c.rank;
  if (!(K >= 1 && r >= 0 && P >= 1)) throw new RangeError(`mixture: bad sizes K ${K}, r ${r}, P ${P}`);
  const want: [string, Float64Array, number][] = [
    ['weights', p.weights, G * K],
    ['means', p.means, G * K * P],
    ['factors', p.factors, G * K * r * P],
    ['psi', p.psi, G * K * P],
  ];
  for (const [name, a, n] of want) {
    if (!(a instanceof Float64Array)) throw new RangeError(`mixture: ${name} must be a Float64Array`);
    if (a.length !== n)
      throw new RangeError(`mixture: ${name} has ${a.length} values, expected ${n} (G ${G}, K ${K}, r ${r}, P ${P})`);
  }
  for (let i = 0; i < p.psi.length; i++) {
    if (!(p.psi[i] > 0)) throw new RangeError(`mixture: psi[${i}] = ${p.psi[i]} must be > 0`);
  }
  for (let g = 0; g < G; g++) {
    let sum = 0;
    for (let k = 0; k < K; k++) {
      const w = p.weights[g * K + k];
      if (!(w > 0))
        throw new RangeError(`mixture: weight of group ${g} component ${k} is ${w}; every component needs weight > 0`);
      sum += w;
    }
    if (Math.abs(sum - 1) > 1e-9) throw new RangeError(`mixture: weights of group ${g} sum to ${sum}, expected 1`);
  }
}

/** sha256 (hex) over the config JSON and every parameter array: the teacher's identity. */
export function mixtureDigest(p: MixtureParams): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(p.config));
  for (const a of [p.weights, p.means, p.factors, p.psi])
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex');
}
