/**
 * AdamW and the EMA of weights, on flat Float32Arrays.
 *
 * AdamW follows PyTorch `torch.optim.AdamW` (decoupled decay θ ← θ(1 − lr·wd), then the bias-corrected
 * Adam step); the reference trains GET with lr 1e-4, betas (0.9, 0.999), eps 1e-8, wd 0
 * (get-reference.md §4). The EMA is either the reference's constant decay (0.9999 from step 0) or
 * EDM's half-life with ramp-up (NVlabs/edm training/training_loop.py), which short CPU runs need:
 * a 0.9999 EMA after ~1k steps still carries most of the zero-initialised decoder.
 */
import { z } from 'zod';
import { REFERENCE_EMA as SPEC_REFERENCE_EMA } from '../spec/names.js';

export const AdamWConfigSchema = z
  .object({
    lr: z.number().positive(),
    beta1: z.number().min(0).lt(1),
    beta2: z.number().min(0).lt(1),
    eps: z.number().positive(),
    weightDecay: z.number().min(0),
  })
  .strict();
export type AdamWConfig = z.infer<typeof AdamWConfigSchema>;

export const REFERENCE_ADAMW: AdamWConfig = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

export class AdamW {
  /** First and second moments, same length as the parameters. */
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** Optimizer steps taken. */
  t = 0;

  constructor(
    readonly cfg: AdamWConfig,
    size: number,
    state?: { m: Float32Array; v: Float32Array; t: number },
  ) {
    this.m = state?.m ?? new Float32Array(size);
    this.v = state?.v ?? new Float32Array(size);
    this.t = state?.t ?? 0;
    if (this.m.length !== size || this.v.length !== size)
      throw new Error(`AdamW: state has ${this.m.length} values, parameters ${size}`);
  }

  /** One update of `params` in place from `grad` (same length). */
  step(params: Float32Array, grad: Float32Array): void {
    const { lr, beta1, beta2, eps, weightDecay } = this.cfg;
    this.t += 1;
    const bc1 = 1 - beta1 ** this.t;
    const bc2 = 1 - beta2 ** this.t;
    const stepSize = lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    const decay = 1 - lr * weightDecay;
    const { m, v } = this;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      params[i] = params[i] * decay - (stepSize * m[i]) / (Math.sqrt(v[i]) / sqrtBc2 + eps);
    }
  }
}

export const EmaConfigSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('constant'), decay: z.number().min(0).max(1) }).strict(),
  z
    .object({
      kind: z.literal('halflife'),
      halflifeImages: z.number().positive(),
      rampupRatio: z.number().positive().nullable(),
    })
    .strict(),
]);
export type EmaConfig = z.infer<typeof EmaConfigSchema>;

// The reference's constant EMA is defined with the option specs (its decay is quoted in --help).
export const REFERENCE_EMA: EmaConfig = SPEC_REFERENCE_EMA;

/**
 * EMA decay β for the step that has just seen `imagesSeen` images in batches of `batch`.
 * Half-life form: β = 0.5^(batch / min(halflife, imagesSeen·rampup)). EDM evaluates the ramp-up
 * with the images seen before the step (β = 0 on the first step); counting the step's own batch, as
 * here, gives β ≈ 1e-6 there instead: the same within float32 after the first step.
 */
export function emaDecay(cfg: EmaConfig, imagesSeen: number, batch: number): number {
  if (cfg.kind === 'constant') return cfg.decay;
  let half = cfg.halflifeImages;
  if (cfg.rampupRatio !== null) half = Math.min(half, imagesSeen * cfg.rampupRatio);
  return 0.5 ** (batch / Math.max(half, 1e-8));
}

/** ema ← β·ema + (1 − β)·params, in place. */
export function emaUpdate(ema: Float32Array, params: Float32Array, beta: number): void {
  for (let i = 0; i < ema.length; i++) ema[i] = beta * ema[i] + (1 - beta) * params[i];
}
