/**
 * The inputs of n samples of a one-step model in the layout of `get-distill/model@1`
 * (src/get/export.ts), made from seeds (the reproducible path: noise and z_0 are pure functions of the
 * seed, so the same seed and label give the same image) or given by a client, and the merge of several
 * requests into one batch of feeds. The inference service (src/serve) and the evaluation of a student
 * (src/eval/sources.ts) both sample through here, so a seed means the same image in both.
 */
import type { ModelInfo } from './export.js';
import { z0ForSeed } from './sampler.js';
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
