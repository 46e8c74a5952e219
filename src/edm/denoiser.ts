/**
 * The teacher interface: an EDM denoiser D(x; σ, y), the network's estimate of E[x0 | x0 + σ·ε = x].
 * Arrays are float64 at this boundary because the Heun sampler keeps its state in float64
 * (NVlabs/edm generate.py `edm_sampler` runs in torch.float64). Source: Karras et al. 2022 (EDM) §2.
 */

/** Image geometry of one sample, [C, H, W]. */
export interface ImageShape {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

export interface Denoiser {
  /** Stable identity of the teacher (recorded in pair-shard metadata), e.g. `mixture-K10-r32-1a2b3c4d`. */
  readonly id: string;
  /** Geometry of one sample. */
  readonly shape: ImageShape;
  /** Number of classes; 0 = unconditional (then `labels` is ignored and may be null). */
  readonly numClasses: number;
  /**
   * D(x; σ, y).
   * @param x float64 [batch, C, H, W], the noisy images (data scale, not preconditioned).
   * @param sigma noise level σ > 0 (same for the whole batch).
   * @param labels int32 [batch] class indices in [0, numClasses), or null when unconditional.
   * @param batch number of samples B.
   * @returns float64 [batch, C, H, W], the denoised estimate.
   * @throws RangeError when sizes, σ or labels do not fit.
   */
  denoise(x: Float64Array, sigma: number, labels: Int32Array | null, batch: number): Promise<Float64Array>;
  /** Releases native resources (onnxruntime sessions). */
  close?(): Promise<void>;
}

/** Elements per sample, C·H·W. */
export const sampleSize = (s: ImageShape): number => s.channels * s.height * s.width;

/**
 * Checks the arguments of `denoise` against the denoiser's geometry; shared by every implementation.
 * @throws RangeError naming the argument and the expected size.
 */
export function checkDenoiseArgs(
  d: Pick<Denoiser, 'shape' | 'numClasses' | 'id'>,
  x: Float64Array,
  sigma: number,
  labels: Int32Array | null,
  batch: number,
): void {
  const p = sampleSize(d.shape);
  if (!Number.isInteger(batch) || batch < 0)
    throw new RangeError(`${d.id}: batch must be a non-negative integer, got ${batch}`);
  if (x.length !== batch * p) {
    throw new RangeError(
      `${d.id}: x has ${x.length} values, expected batch ${batch} × ` +
        `${d.shape.channels}×${d.shape.height}×${d.shape.width} = ${batch * p}`,
    );
  }
  if (!(sigma > 0) || !Number.isFinite(sigma))
    throw new RangeError(`${d.id}: sigma must be finite and > 0, got ${sigma}`);
  if (d.numClasses > 0) {
    if (!labels)
      throw new RangeError(`${d.id}: class-conditional teacher (${d.numClasses} classes) needs labels [batch]`);
    if (labels.length !== batch)
      throw new RangeError(`${d.id}: labels has ${labels.length} entries, expected batch ${batch}`);
    for (let i = 0; i < batch; i++) {
      const y = labels[i];
      if (y < 0 || y >= d.numClasses)
        throw new RangeError(`${d.id}: label ${y} at index ${i} is outside [0, ${d.numClasses})`);
    }
  }
}
