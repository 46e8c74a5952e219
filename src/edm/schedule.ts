/**
 * The Karras (EDM) noise-level discretisation. Source: Karras et al. 2022 (EDM) eq. 5;
 * NVlabs/edm generate.py `edm_sampler` (t_steps).
 */

export interface KarrasOptions {
  /** Number of noise levels N before the final 0 (EDM's `num_steps`); default 18 (NFE 35 with Heun). */
  readonly steps?: number;
  /** Smallest nonzero σ; default 0.002. */
  readonly sigmaMin?: number;
  /** Largest σ (the start); default 80. */
  readonly sigmaMax?: number;
  /** Warping exponent ρ; default 7. */
  readonly rho?: number;
}

/**
 * σ_i = (σmax^(1/ρ) + i/(N−1)·(σmin^(1/ρ) − σmax^(1/ρ)))^ρ for i = 0..N−1, then σ_N = 0.
 * The two ends are set to σmax and σmin exactly (the power round trip is otherwise off by a few ulp).
 * @returns float64 [steps + 1], decreasing, last entry 0.
 * @throws RangeError when steps < 2, σmin ≥ σmax, σmin ≤ 0 or ρ ≤ 0.
 */
export function karrasSigmas(opts: KarrasOptions = {}): Float64Array {
  const { steps = 18, sigmaMin = 0.002, sigmaMax = 80, rho = 7 } = opts;
  if (!Number.isInteger(steps) || steps < 2)
    throw new RangeError(`karrasSigmas: steps must be an integer ≥ 2, got ${steps}`);
  if (!(sigmaMin > 0) || !(sigmaMax > sigmaMin)) {
    throw new RangeError(`karrasSigmas: need 0 < sigmaMin < sigmaMax, got sigmaMin ${sigmaMin}, sigmaMax ${sigmaMax}`);
  }
  if (!(rho > 0)) throw new RangeError(`karrasSigmas: rho must be > 0, got ${rho}`);
  const a = sigmaMax ** (1 / rho);
  const b = sigmaMin ** (1 / rho);
  const out = new Float64Array(steps + 1);
  for (let i = 0; i < steps; i++) out[i] = (a + (i / (steps - 1)) * (b - a)) ** rho;
  out[0] = sigmaMax;
  out[steps - 1] = sigmaMin;
  out[steps] = 0;
  return out;
}

/** Denoiser evaluations of the deterministic Heun sampler over a schedule of `steps` levels: 2·steps − 1. */
export const heunNfe = (steps: number): number => 2 * steps - 1;
