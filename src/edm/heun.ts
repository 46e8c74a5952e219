/**
 * EDM's deterministic second-order sampler (Heun), S_churn = 0. Source: Karras et al. 2022 (EDM)
 * Algorithm 1; NVlabs/edm generate.py `edm_sampler`. State is float64 throughout.
 */
import { type Denoiser, sampleSize } from './denoiser.js';
import { type KarrasOptions, karrasSigmas } from './schedule.js';

/** Progress of one Heun step i: σ_i → σ_{i+1}, with the denoiser evaluations spent so far. */
export interface HeunStepEvent {
  readonly step: number;
  readonly sigma: number;
  readonly sigmaNext: number;
  /** Cumulative NFE after this step (2·steps − 1 after the last). */
  readonly nfe: number;
}

export interface HeunOptions extends KarrasOptions {
  /** Explicit schedule (decreasing, ending in 0) instead of the Karras one. */
  readonly sigmas?: Float64Array;
  /** Called after every step; the last event's `nfe` is the run's NFE. */
  readonly onStep?: (e: HeunStepEvent) => void;
}

/**
 * Integrates the probability-flow ODE dx/dσ = (x − D(x; σ, y))/σ from σ_0 to 0.
 *
 * x_0 = noise·σ_0; for each i: d = (x_i − D(x_i; σ_i))/σ_i, x' = x_i + (σ_{i+1} − σ_i)·d; if σ_{i+1} ≠ 0,
 * d' = (x' − D(x'; σ_{i+1}))/σ_{i+1} and x_{i+1} = x_i + (σ_{i+1} − σ_i)·(d + d')/2, else x_{i+1} = x'.
 *
 * @param noise float64 [batch, C, H, W] drawn from N(0, I) (not yet scaled by σ_max).
 * @param labels int32 [batch] class indices, or null for an unconditional denoiser.
 * @returns float64 [batch, C, H, W], the sample at σ = 0 (data scale, about [−1, 1]).
 * @throws RangeError when the noise size does not match the denoiser's shape, or the schedule is not
 *   decreasing to 0; rethrows the denoiser's errors.
 */
export async function heunSample(
  denoiser: Denoiser,
  noise: Float64Array,
  labels: Int32Array | null,
  batch: number,
  opts: HeunOptions = {},
): Promise<Float64Array> {
  const n = batch * sampleSize(denoiser.shape);
  if (noise.length !== n)
    throw new RangeError(
      `heunSample: noise has ${noise.length} values, expected batch ${batch} × ${sampleSize(denoiser.shape)} = ${n}`,
    );
  const sigmas = opts.sigmas ?? karrasSigmas(opts);
  checkSchedule(sigmas);

  const x = new Float64Array(n);
  for (let j = 0; j < n; j++) x[j] = noise[j] * sigmas[0];
  const xNext = new Float64Array(n);
  const d = new Float64Array(n);
  let nfe = 0;
  for (let i = 0; i + 1 < sigmas.length; i++) {
    const s = sigmas[i];
    const sNext = sigmas[i + 1];
    const h = sNext - s;
    const den = await denoiser.denoise(x, s, labels, batch);
    nfe++;
    for (let j = 0; j < n; j++) {
      d[j] = (x[j] - den[j]) / s;
      xNext[j] = x[j] + h * d[j];
    }
    if (sNext !== 0) {
      const den2 = await denoiser.denoise(xNext, sNext, labels, batch);
      nfe++;
      for (let j = 0; j < n; j++) {
        const d2 = (xNext[j] - den2[j]) / sNext;
        xNext[j] = x[j] + h * 0.5 * (d[j] + d2);
      }
    }
    x.set(xNext);
    opts.onStep?.({ step: i, sigma: s, sigmaNext: sNext, nfe });
  }
  return x;
}

function checkSchedule(s: Float64Array): void {
  if (s.length < 2 || s[s.length - 1] !== 0)
    throw new RangeError('heunSample: the schedule must have ≥ 2 entries and end in 0');
  for (let i = 0; i + 1 < s.length; i++) {
    if (!(s[i] > s[i + 1]))
      throw new RangeError(
        `heunSample: the schedule must decrease strictly; sigmas[${i}] = ${s[i]}, sigmas[${i + 1}] = ${s[i + 1]}`,
      );
  }
}
