/**
 * From images to scores: features of n images of a source ({@link extractFeatures}), reference
 * statistics (a source's features, or an .npz of μ and Σ), and FID / Inception Score / improved
 * precision and recall of one feature set against a reference ({@link scoreFeatures}).
 */
import { UsageError } from '../util/errors.js';
import type { FeatureExtractor } from './features.js';
import { frechetDistance, type FidStats } from './fid.js';
import { inceptionScore } from './inception-score.js';
import { precisionRecall } from './precision-recall.js';
import type { ImageSource } from './sources.js';
import { featureStats } from './stats.js';

/** Features of n images, one row per image. */
export interface FeatureSet {
  readonly n: number;
  readonly dim: number;
  /** float32 [n, dim]. */
  readonly features: Float32Array;
  /** float32 [n, classes] or null (no logits layer). */
  readonly logits: Float32Array | null;
  readonly classes: number;
  /** Images per second through sampling and feature extraction together. */
  readonly imagesPerSecond: number;
}

/**
 * Draws the first n images of `source` and runs them through the feature network in batches.
 * @param onProgress called after every batch with (done, n).
 * @throws UsageError when the source holds fewer than n images or the network fails on them.
 */
export async function extractFeatures(
  source: ImageSource,
  n: number,
  net: FeatureExtractor,
  o: { batch?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<FeatureSet> {
  const batch = o.batch ?? 128;
  const P = source.shape.channels * source.shape.height * source.shape.width;
  const features = new Float32Array(n * net.dim);
  const logits = net.classes > 0 ? new Float32Array(n * net.classes) : null;
  const t0 = performance.now();
  let done = 0;
  for await (const images of source.images(n, batch)) {
    const m = images.length / P;
    const f = await net.extract(images, m, source.shape);
    features.set(f.features, done * net.dim);
    if (logits && f.logits) logits.set(f.logits, done * net.classes);
    done += m;
    o.onProgress?.(done, n);
  }
  if (done !== n) throw new Error(`${source.id} gave ${done} images, ${n} were asked for`);
  return {
    n,
    dim: net.dim,
    features,
    logits,
    classes: net.classes,
    imagesPerSecond: n / Math.max(1e-9, (performance.now() - t0) / 1000),
  };
}

/** What a feature set is compared with. */
export interface Reference {
  /** `mnist:test`, a pair folder, or an .npz URI. */
  readonly id: string;
  readonly stats: FidStats;
  /** The reference's own features, when it was computed here (needed for precision/recall). */
  readonly features: FeatureSet | null;
}

/** Builds a reference from features computed here. @throws UsageError as featureStats. */
export async function referenceFromFeatures(id: string, set: FeatureSet): Promise<Reference> {
  return { id, stats: await featureStats(set.features, set.n, set.dim, id), features: set };
}

export interface Scores {
  readonly fid: number;
  /** True when ε·I was added to both covariances (near-singular product; pytorch-fid's fallback). */
  readonly fidOffsetApplied: boolean;
  readonly inceptionScore: { readonly mean: number; readonly std: number; readonly splits: number } | null;
  readonly precision: number | null;
  readonly recall: number | null;
  /** Nearest neighbours of the k-NN manifolds (improved precision/recall). */
  readonly k: number | null;
  /** Seconds spent in the FID (statistics and Fréchet distance) and in precision/recall. */
  readonly seconds: { readonly fid: number; readonly precisionRecall: number };
}

/**
 * Scores one feature set against a reference. The Inception Score needs logits; precision/recall
 * need the reference's features and at least k + 1 samples on both sides.
 * @param id names the evaluated set in errors.
 * @throws UsageError when the feature dimensions differ, features are not finite, or there are too
 *   few samples for a covariance (see featureStats).
 */
export async function scoreFeatures(
  id: string,
  set: FeatureSet,
  ref: Reference,
  o: { splits?: number; k?: number; prSamples?: number } = {},
): Promise<Scores> {
  if (ref.stats.mu.length !== set.dim) {
    throw new UsageError(
      `reference statistics ${ref.id} have dimension ${ref.stats.mu.length}, the features of ${id} have ` +
        `${set.dim}; compute the reference with the same feature network and layer`,
    );
  }
  const t0 = performance.now();
  const stats = await featureStats(set.features, set.n, set.dim, id);
  const fd = await frechetDistance(stats, ref.stats);
  const t1 = performance.now();
  const splits = o.splits ?? 10;
  if (set.logits && set.n < 2 * splits)
    throw new UsageError(
      `--splits ${splits} needs at least ${2 * splits} samples (two per split) for the Inception Score, ` +
        `${id} has ${set.n}; lower --splits or raise --samples`,
    );
  const is = set.logits ? inceptionScore(set.logits, set.n, set.classes, splits) : null;
  const k = o.k ?? 3;
  let pr: { precision: number; recall: number } | null = null;
  if (ref.features && set.n > k && ref.features.n > k) {
    const cap = o.prSamples ?? 10_000;
    const nr = Math.min(ref.features.n, cap);
    const nf = Math.min(set.n, cap);
    pr = await precisionRecall(
      ref.features.features.subarray(0, nr * set.dim),
      nr,
      set.features.subarray(0, nf * set.dim),
      nf,
      set.dim,
      { k },
    );
  }
  const t2 = performance.now();
  return {
    fid: Math.max(0, fd.fid), // identical statistics can give −1e-12 from round-off
    fidOffsetApplied: fd.offsetApplied,
    inceptionScore: is ? { mean: is.mean, std: is.std, splits } : null,
    precision: pr?.precision ?? null,
    recall: pr?.recall ?? null,
    k: pr ? k : null,
    seconds: { fid: (t1 - t0) / 1000, precisionRecall: (t2 - t1) / 1000 },
  };
}
