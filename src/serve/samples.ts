/**
 * The inputs of n samples in the layout of `get-distill/model@1` (src/get/export.ts), made from seeds
 * (the reproducible path: noise and z_0 are pure functions of the seed, so the same seed and label give
 * the same image) or given by a client; the merge of several requests into one batch, the split of its
 * outputs back, and their PNGs. The engine's worker threads run {@link mergeSamples} and
 * {@link encodeOutputs}, so the main thread only checks seeds and labels ({@link seedSamples}).
 */
import { encodeImagePng } from '../data/png.js';
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

/**
 * One request's n samples given by seeds, expanded by {@link mergeSamples}: sample i uses seed + i
 * (noise = noiseForSeed, z_0 = z0ForSeed) and labels[i]. A few bytes to post to a worker instead of
 * (C·H·W + N·D)·4 per sample.
 */
export interface SeedSamples {
  readonly n: number;
  /** First seed; seed + n − 1 < 2^31. */
  readonly seed: number;
  /** int64 [n] in [0, num_classes) for conditional models, null for unconditional ones. */
  readonly labels: BigInt64Array | null;
}

/** What one request hands the engine. */
export interface GenerateJob {
  /** Its inputs: client tensors, or seeds (same values as {@link samplesFromSeeds}). */
  readonly samples: Samples | SeedSamples;
  /** Also encode each image as a PNG at this integer upscale ({@link encodeOutputs}); omitted: none. */
  readonly pngScale?: number;
}

/** One request's share of a run's outputs. */
export interface SampleOutputs {
  /** float32 [n, C, H, W], about [−1, 1] (not clipped). */
  readonly image: Float32Array;
  /** float32 [n], ‖f(z) − z‖² of each sample's chosen iterate. */
  readonly residual2: Float32Array;
  /** n PNG files (encodeImagePng) when the job asked for them. */
  readonly png?: readonly Uint8Array[];
}

/** Whether a job's samples are seeds (expanded in the worker) rather than tensors. */
export const isSeedSamples = (s: Samples | SeedSamples): s is SeedSamples => 'seed' in s;

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
  const s = seedSamples(seed, n, labels);
  const feeds = mergeSamples(info, [s]);
  return { n, noise: feeds.noise.data as Float32Array, labels: s.labels, z0: feeds.z0.data as Float32Array };
}

/**
 * Seeds seed … seed + n − 1 with their labels, checked (cheap: nothing is generated here).
 * @param labels n class labels, already checked against num_classes, or null (unconditional model).
 * @throws Error when seed + n − 1 ≥ 2^31 (seeds are 31-bit) or labels has the wrong length.
 */
export function seedSamples(seed: number, n: number, labels: readonly number[] | null): SeedSamples {
  if (!Number.isInteger(n) || n < 1) throw new Error(`n must be a positive integer, got ${n}`);
  if (!Number.isInteger(seed) || seed < 0 || seed + n > SEED_LIMIT)
    throw new Error(`seeds ${seed} … ${seed + n - 1} leave [0, 2^31)`);
  if (labels && labels.length !== n) throw new Error(`${labels.length} labels for ${n} samples`);
  return { n, seed, labels: labels ? BigInt64Array.from(labels, (v) => BigInt(v)) : null };
}

/**
 * The feeds of one run holding every request's samples in order: noise [B, C, H, W],
 * class_labels [B] (conditional), z0 [B, N, D] with B = Σ n; seed items are expanded here (the same
 * values as {@link samplesFromSeeds}). Fresh arrays (the pool may transfer them).
 */
export function mergeSamples(info: ModelInfo, items: readonly (Samples | SeedSamples)[]): Record<string, HostTensor> {
  const { channels: C, imageSize: H, hiddenSize: D, numClasses } = info.config;
  const per = perSample(info);
  const B = items.reduce((a, s) => a + s.n, 0);
  const noise = new Float32Array(B * per.noise);
  const z0 = new Float32Array(B * per.z0);
  const labels = numClasses > 0 ? new BigInt64Array(B) : null;
  let b = 0;
  for (const s of items) {
    if (isSeedSamples(s)) {
      noise.set(
        noiseForSeedRange({ start: s.seed, end: s.seed + s.n }, { channels: C, height: H, width: H }),
        b * per.noise,
      );
      for (let i = 0; i < s.n; i++) z0.set(z0ForSeed(s.seed + i, per.z0), (b + i) * per.z0);
    } else {
      noise.set(s.noise, b * per.noise);
      z0.set(s.z0, b * per.z0);
    }
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
export function splitOutputs(
  info: ModelInfo,
  out: Readonly<Record<string, HostTensor>>,
  sizes: readonly number[],
): SampleOutputs[] {
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

/**
 * Adds each job's PNGs (encodeImagePng of every image at the job's `pngScale`) to its share of a run.
 * @throws Error when the model's channels are not 1 or 3 or a scale is not a positive integer.
 */
export function encodeOutputs(
  info: ModelInfo,
  shares: readonly SampleOutputs[],
  jobs: readonly GenerateJob[],
): SampleOutputs[] {
  const { channels: C, imageSize: H } = info.config;
  const per = perSample(info).noise;
  return shares.map((share, j) => {
    const scale = jobs[j].pngScale;
    if (scale === undefined) return share;
    const png = Array.from({ length: share.residual2.length }, (_, i) =>
      encodeImagePng(share.image.subarray(i * per, (i + 1) * per), { channels: C, height: H, width: H }, scale),
    );
    return { ...share, png };
  });
}
