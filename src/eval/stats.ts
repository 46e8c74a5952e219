/**
 * Feature statistics for FID: the mean mu [dim] and the unbiased covariance sigma [dim, dim] (ddof = 1, as
 * `numpy.cov(features, rowvar=False)` in pytorch-fid `fid_score.py` calculate_activation_statistics and
 * pytorch-gan-metrics `core.py`), in float64.
 *
 * The Gram matrix of 10,000 × 2,048 features is 4·10¹⁰ multiply-adds, so it runs as onnxruntime float64 Gemm
 * (src/graph/linalg.ts) over row chunks. Each chunk is centred on its own mean and the chunks are merged with
 * the pairwise update of Chan, Golub & LeVeque (1979) — centred sums, so no cancellation of ‖x‖² against n·μ²
 * — which also lets 50k × 2048 features stream through `FeatureStatsAccumulator` without being held at once.
 */
import { F64Gemm, mat } from '../graph/linalg.js';
import { UsageError } from '../util/errors.js';

/** Mean and unbiased covariance of n samples of dimension dim. */
export interface FeatureStats {
  /** Mean, float64 [dim]. */
  readonly mu: Float64Array;
  /** Covariance, float64 [dim, dim] row-major, symmetric, divided by n − 1. */
  readonly sigma: Float64Array;
  /** Number of samples. */
  readonly n: number;
}

export interface FeatureStatsOptions {
  /** Rows per Gemm call (default 2048: 32 MB of float64 at dim 2048). */
  readonly chunkRows?: number;
  /** A Gemm session cache to reuse; default: one owned (and released) by the accumulator. */
  readonly gemm?: F64Gemm;
  /** Names the features in errors (default `features`). */
  readonly what?: string;
}

/**
 * @throws UsageError naming the first non-finite value: `features: sample 12, feature 7 is NaN …`.
 * `first` is the index of row 0 of `x` among all samples.
 */
export function assertFiniteFeatures(
  x: ArrayLike<number>,
  rows: number,
  dim: number,
  first = 0,
  what = 'features',
): void {
  for (let i = 0; i < rows * dim; i++) {
    const v = x[i];
    if (!Number.isFinite(v)) {
      const s = first + Math.floor(i / dim);
      throw new UsageError(
        `${what}: sample ${s}, feature ${i % dim} is ${v}; the feature network produced non-finite values ` +
          `(check that the images are finite and in range)`,
      );
    }
  }
}

/**
 * Streaming mean/covariance: `add(batch, rows)` any number of times, then `finish()`.
 * Memory: O(chunkRows·dim + dim²) whatever the sample count.
 */
export class FeatureStatsAccumulator {
  private n = 0;
  private readonly mean: Float64Array;
  private readonly m2: Float64Array; // Σ (x − mean)(x − mean)ᵀ over all merged rows
  private readonly buf: Float64Array;
  private bufRows = 0;
  private readonly chunkRows: number;
  private readonly gemm: F64Gemm;
  private readonly ownsGemm: boolean;
  private readonly what: string;

  /** @param dim feature dimension (≥ 1). */
  constructor(
    readonly dim: number,
    opts: FeatureStatsOptions = {},
  ) {
    if (!Number.isInteger(dim) || dim < 1)
      throw new RangeError(`FeatureStatsAccumulator: dim must be a positive integer, got ${dim}`);
    this.chunkRows = Math.max(1, opts.chunkRows ?? 2048);
    this.mean = new Float64Array(dim);
    this.m2 = new Float64Array(dim * dim);
    this.buf = new Float64Array(this.chunkRows * dim);
    this.gemm = opts.gemm ?? new F64Gemm();
    this.ownsGemm = !opts.gemm;
    this.what = opts.what ?? 'features';
  }

  /** Samples added so far. */
  get count(): number {
    return this.n + this.bufRows;
  }

  /**
   * Adds `rows` samples: `batch` is float32/float64 [rows, dim] row-major.
   * @throws UsageError for a non-finite value (named by its global sample index); RangeError for a length mismatch.
   */
  async add(batch: Float32Array | Float64Array, rows: number): Promise<void> {
    const d = this.dim;
    if (batch.length !== rows * d)
      throw new RangeError(`${this.what}: ${batch.length} values do not fill ${rows}×${d}`);
    assertFiniteFeatures(batch, rows, d, this.count, this.what);
    for (let r = 0; r < rows;) {
      const take = Math.min(rows - r, this.chunkRows - this.bufRows);
      this.buf.set(batch.subarray(r * d, (r + take) * d), this.bufRows * d);
      this.bufRows += take;
      r += take;
      if (this.bufRows === this.chunkRows) await this.flush();
    }
  }

  /** Merges the buffered rows: centre on their mean, Gram via Gemm, Chan's pairwise update. */
  private async flush(): Promise<void> {
    const d = this.dim;
    const nb = this.bufRows;
    if (nb === 0) return;
    const x = this.buf.subarray(0, nb * d);
    const mb = new Float64Array(d);
    for (let r = 0; r < nb; r++) for (let j = 0; j < d; j++) mb[j] += x[r * d + j];
    for (let j = 0; j < d; j++) mb[j] /= nb;
    for (let r = 0; r < nb; r++) for (let j = 0; j < d; j++) x[r * d + j] -= mb[j];
    const g = (await this.gemm.mul(mat(nb, d, x), mat(nb, d, x), true, false)).data; // xᵀx, [d, d]
    const na = this.n;
    const n = na + nb;
    const w = (na * nb) / n;
    const delta = new Float64Array(d);
    for (let j = 0; j < d; j++) delta[j] = mb[j] - this.mean[j];
    for (let i = 0; i < d; i++) {
      const wi = w * delta[i];
      const row = i * d;
      for (let j = 0; j < d; j++) this.m2[row + j] += g[row + j] + wi * delta[j];
    }
    for (let j = 0; j < d; j++) this.mean[j] += (delta[j] * nb) / n;
    this.n = n;
    this.bufRows = 0;
  }

  /**
   * The statistics of everything added. Releases the owned Gemm sessions; the accumulator is spent after.
   * @throws UsageError for fewer than 2 samples, or n ≤ dim (the covariance is singular; needs dim + 1 samples).
   */
  async finish(): Promise<FeatureStats> {
    try {
      const d = this.dim;
      const total = this.count;
      if (total < 2) throw new UsageError(`${this.what}: a covariance needs at least 2 samples, got ${total}`);
      if (total <= d) {
        throw new UsageError(
          `${this.what}: ${total} samples of dimension ${d} give a singular covariance; use at least ` +
            `${d + 1} samples (FID needs more samples than feature dimensions)`,
        );
      }
      await this.flush();
      const sigma = new Float64Array(d * d);
      const s = 1 / (total - 1);
      for (let i = 0; i < d; i++) {
        for (let j = i; j < d; j++) {
          const v = 0.5 * (this.m2[i * d + j] + this.m2[j * d + i]) * s; // exact symmetry for the eigensolvers
          sigma[i * d + j] = v;
          sigma[j * d + i] = v;
        }
      }
      return { mu: Float64Array.from(this.mean), sigma, n: total };
    } finally {
      await this.release();
    }
  }

  /** Releases the owned Gemm sessions (finish does this itself); a no-op for a shared `gemm`. */
  async release(): Promise<void> {
    if (this.ownsGemm) await this.gemm.release();
  }
}

/**
 * mu and sigma of `n` samples held at once: features float32/float64 [n, dim] row-major.
 * @param options options, or just the name of the features in errors (e.g. the sample source's id).
 * @throws UsageError for non-finite values (`features: sample i, feature j is NaN …`), n < 2, or n ≤ dim.
 */
export async function featureStats(
  features: Float32Array | Float64Array,
  n: number,
  dim: number,
  options: FeatureStatsOptions | string = {},
): Promise<FeatureStats> {
  const opts: FeatureStatsOptions = typeof options === 'string' ? { what: options } : options;
  const what = opts.what ?? 'features';
  if (features.length !== n * dim) throw new RangeError(`${what}: ${features.length} values do not fill ${n}×${dim}`);
  // Check the counts before doing any work, so a too-small sample fails fast.
  if (n < 2) throw new UsageError(`${what}: a covariance needs at least 2 samples, got ${n}`);
  if (n <= dim)
    throw new UsageError(
      `${what}: ${n} samples of dimension ${dim} give a singular covariance; use at least ${dim + 1} samples ` +
        `(FID needs more samples than feature dimensions)`,
    );
  const acc = new FeatureStatsAccumulator(dim, opts);
  try {
    await acc.add(features, n);
  } catch (e) {
    await acc.release();
    throw e;
  }
  return acc.finish();
}
