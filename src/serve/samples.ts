/**
 * What the inference engine hands its workers and gets back: a request's samples (seeds or client
 * tensors, src/get/seeded.ts), the split of a run's outputs back into requests, and their PNGs. The
 * engine's worker threads run mergeSamples (src/get/seeded.ts) and {@link encodeOutputs}, so the main
 * thread only checks seeds and labels (seedSamples).
 */
import { encodeImagePng } from '../data/png.js';
import type { ModelInfo } from '../get/export.js';
import { perSample, type Samples, type SeedSamples } from '../get/seeded.js';
import type { HostTensor } from '../graph/session.js';

/** What one request hands the engine. */
export interface GenerateJob {
  /** Its inputs: client tensors, or seeds (same values as samplesFromSeeds, src/get/seeded.ts). */
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
