/**
 * The inputs of n samples in the layout of `get-distill/model@1` (src/get/export.ts), made from seeds
 * (the reproducible path: noise and z_0 are pure functions of the seed, so the same seed and label give
 * the same image) or given by a client; and the merge of several requests into one batch and the split
 * of its outputs back.
 */
import type { ModelInfo } from '../get/export.js';
import { z0ForSeed } from '../get/sampler.js';
import { noiseForSeedRange, SEED_LIMIT } from '../data/seeds.js';
import type { HostTensor } from '../graph/session.js';

/** One request's n samples. */
export interface Samples {
  readonly n: number;
  /** float32 [n, C, H, W], N(0, I). */
  readonly noise: Float32Array;
  /** int64 [n] in [0, num_classes) for conditional models, null for unconditional ones. */
  readonly labels: BigInt64Array | null;
  /** float32 [n, N, D], the fixed-point start states. */
  readonly z0: Float32Array;
}

/** One request's share of a run's outputs. */
export interface SampleOutputs {
  /** float32 [n, C, H, W], about [−1, 1] (not clipped). */
  readonly image: Float32Array;
  /** float32 [n], ‖f(z) − z‖² of each sample's chosen iterate. */
  readonly residual2: Float32Array;
}

/** Values per sample of each tensor. */
export function perSample(info: ModelInfo): { noise: number; z0: number } {
  const { channels: C, imageSize: H, hiddenSize: D } = info.config;
  return { noise: C * H * H, z0: info.tokens * D };
}

/**
 * Samples i = 0 … n−1 from seeds seed + i: noise = noiseForSeed(seed + i) as float32 (the rounding pair
 * shards store), z_0 = z0ForSeed(seed + i), label labels[i].
 * @param labels n class labels, already checked against num_classes, or null (unconditional model).
 * @throws Error when seed + n − 1 ≥ 2^31 (seeds are 31-bit) or labels has the wrong length.
 */
export function samplesFromSeeds(info: ModelInfo, seed: number, n: number, labels: readonly number[] | null): Samples {
  if (!Number.isInteger(seed) || seed < 0 || seed + n > SEED_LIMIT) throw new Error(`seeds ${seed} … ${seed + n - 1} leave [0, 2^31)`);
  if (labels && labels.length !== n) throw new Error(`${labels.length} labels for ${n} samples`);
  const { channels: C, imageSize: H } = info.config;
  const per = perSample(info);
  const noise = noiseForSeedRange({ start: seed, end: seed + n }, { channels: C, height: H, width: H });
  const z0 = new Float32Array(n * per.z0);
  for (let i = 0; i < n; i++) z0.set(z0ForSeed(seed + i, per.z0), i * per.z0);
  return { n, noise, labels: labels ? BigInt64Array.from(labels, (v) => BigInt(v)) : null, z0 };
}

/**
 * The feeds of one run holding every request's samples in order: noise [B, C, H, W],
 * class_labels [B] (conditional), z0 [B, N, D] with B = Σ n. Fresh arrays (the pool may transfer them).
 */
export function mergeSamples(info: ModelInfo, items: readonly Samples[]): Record<string, HostTensor> {
  const { channels: C, imageSize: H, hiddenSize: D, numClasses } = info.config;
  const per = perSample(info);
  const B = items.reduce((a, s) => a + s.n, 0);
  const noise = new Float32Array(B * per.noise);
  const z0 = new Float32Array(B * per.z0);
  const labels = numClasses > 0 ? new BigInt64Array(B) : null;
  let b = 0;
  for (const s of items) {
    noise.set(s.noise, b * per.noise);
    z0.set(s.z0, b * per.z0);
    if (labels) labels.set(s.labels!, b);
    b += s.n;
  }
  return {
    noise: { dtype: 'float32', dims: [B, C, H, H], data: noise },
    ...(labels && { class_labels: { dtype: 'int64', dims: [B], data: labels } }),
    z0: { dtype: 'float32', dims: [B, info.tokens, D], data: z0 },
  };
}

/** Splits a run's `image` and `residual2` into consecutive shares of `sizes` samples. */
export function splitOutputs(info: ModelInfo, out: Readonly<Record<string, HostTensor>>, sizes: readonly number[]): SampleOutputs[] {
  const per = perSample(info).noise;
  const image = out.image.data as Float32Array;
  const residual2 = out.residual2.data as Float32Array;
  let b = 0;
  return sizes.map((n) => {
    const share = { image: image.slice(b * per, (b + n) * per), residual2: residual2.slice(b, b + n) };
    b += n;
    return share;
  });
}
