/**
 * Timings of the sample-quality metrics on synthetic Gaussian features, for `npm run bench` (scripts/bench.ts):
 * FID statistics (featureStats) and the Fréchet distance, and improved precision/recall.
 * Wall-clock seconds on this machine; the metrics' values on random data are reported only as a sanity check.
 */
import { Rng } from '../util/rng.js';
import { type Factorization, frechetDistance } from './fid.js';
import { precisionRecall } from './precision-recall.js';
import { featureStats } from './stats.js';

/** n × dim float32 features: N(shift, scale²) with a per-dimension scale ramp so Σ is not ∝ I. */
function features(n: number, dim: number, seed: number, scale = 1, shift = 0): Float32Array {
  const x = new Rng(seed).fillNormal(new Float32Array(n * dim));
  for (let i = 0; i < x.length; i++) x[i] = x[i] * scale * (0.5 + (i % dim) / dim) + shift;
  return x;
}

export interface FidBench {
  readonly dim: number;
  /** Samples per set. */
  readonly n: number;
  /** featureStats of one set of n × dim features (mean over the two sets), seconds. */
  readonly statsSeconds: number;
  /** frechetDistance of the two sets' statistics, seconds. */
  readonly fidSeconds: number;
  readonly fid: number;
  readonly factorizations: readonly [Factorization, Factorization];
}

/** Times FID on two synthetic sets of n × dim features (default n = 10,000). */
export async function benchFid(dim: number, n = 10_000, seed = 1): Promise<FidBench> {
  const a = features(n, dim, seed);
  const b = features(n, dim, seed + 1, 1.1, 0.05);
  let t = performance.now();
  const sa = await featureStats(a, n, dim);
  const sb = await featureStats(b, n, dim);
  const statsSeconds = (performance.now() - t) / 2000;
  t = performance.now();
  const r = await frechetDistance(sa, sb);
  return {
    dim,
    n,
    statsSeconds,
    fidSeconds: (performance.now() - t) / 1000,
    fid: r.fid,
    factorizations: r.factorizations,
  };
}

export interface PrecisionRecallBench {
  readonly dim: number;
  readonly n: number;
  readonly seconds: number;
  readonly precision: number;
  readonly recall: number;
}

/** Times improved precision/recall (k = 3) of n real vs n generated synthetic features (default n = 10,000). */
export async function benchPrecisionRecall(dim: number, n = 10_000, seed = 1): Promise<PrecisionRecallBench> {
  const real = features(n, dim, seed);
  const fake = features(n, dim, seed + 1, 1.1, 0.05);
  const t = performance.now();
  const r = await precisionRecall(real, n, fake, n, dim);
  return { dim, n, seconds: (performance.now() - t) / 1000, precision: r.precision, recall: r.recall };
}
