/**
 * One-step sampling with a trained GET: the inference graph (K fixed-point iterations, per-sample
 * lowest-residual iterate, get-reference.md §3.2) with the given (EMA) weights baked in as
 * initialisers, run in onnxruntime with a symbolic batch.
 */
import { Graph } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { type HostTensor, OrtSession } from '../graph/session.js';
import { Rng, fmix32 } from '../util/rng.js';
import { type GetConfig, numTokens } from './config.js';
import { buildGet, inferenceOutput } from './model.js';

/**
 * The fixed-point start state z_0 ~ N(0, I) [N·D] of the sample drawn from `seed`: a pure function
 * of the seed (Rng seeded with fmix32(seed ⊕ 0x5EED0000)), so the same seed and label give the same image.
 */
export function z0ForSeed(seed: number, size: number): Float32Array {
  return new Rng(fmix32(seed ^ 0x5eed0000)).fillNormal(new Float32Array(size));
}

/**
 * Builds the inference ONNX model with weights as initialisers; `weights(name)` returns each parameter.
 * `metadata` goes into the model's metadata_props (see src/get/export.ts for the exported contract).
 */
export function inferenceModel(
  cfg: GetConfig,
  weights: (name: string) => Float32Array,
  iterations = 6,
  metadata?: Record<string, string>,
): Uint8Array {
  const g = new Graph('get_sample');
  const m = buildGet(g, cfg, 'batch');
  const { image, residual2 } = inferenceOutput(m, 'batch', iterations);
  return toOnnx(g, {
    outputs: { image, residual2 },
    paramValues: (p) => weights(p.name),
    ...(metadata && { metadata }),
  });
}

export class GetSampler {
  private constructor(
    readonly cfg: GetConfig,
    private readonly session: OrtSession,
  ) {}

  static async create(
    cfg: GetConfig,
    weights: (name: string) => Float32Array,
    iterations = 6,
    threads?: number,
  ): Promise<GetSampler> {
    return new GetSampler(cfg, await OrtSession.create(inferenceModel(cfg, weights, iterations), { threads }));
  }

  /**
   * Generates images in one step.
   * @param noise float32 [B,C,H,W], N(0, I). @param labels int32 [B] (conditional) or null.
   * @param seeds the B seeds (they give each sample's z_0).
   * @returns image float32 [B,C,H,W] (about [−1, 1], not clipped) and residual² per sample [B].
   * @throws when sizes disagree or a conditional model gets no labels.
   */
  async generate(
    noise: Float32Array,
    labels: Int32Array | null,
    seeds: readonly number[],
  ): Promise<{ image: Float32Array; residual2: Float32Array }> {
    const { channels: C, imageSize: H, hiddenSize: D, numClasses } = this.cfg;
    const B = seeds.length;
    const N = numTokens(this.cfg);
    if (noise.length !== B * C * H * H)
      throw new Error(`GetSampler: noise has ${noise.length} values, expected ${B}×${C}×${H}×${H}`);
    const z0 = new Float32Array(B * N * D);
    seeds.forEach((s, i) => z0.set(z0ForSeed(s, N * D), i * N * D));
    const feeds: Record<string, HostTensor> = {
      noise: { dtype: 'float32', dims: [B, C, H, H], data: noise },
      z0: { dtype: 'float32', dims: [B, N, D], data: z0 },
    };
    if (numClasses > 0) {
      if (!labels || labels.length !== B) throw new Error(`GetSampler: a conditional model needs ${B} class labels`);
      feeds.class_labels = { dtype: 'int64', dims: [B], data: BigInt64Array.from(labels, (v) => BigInt(v)) };
    }
    const out = await this.session.run(feeds);
    return { image: out.image.data as Float32Array, residual2: out.residual2.data as Float32Array };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
