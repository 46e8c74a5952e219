/**
 * Image sources for evaluation, each a stream of [m, C, H, W] images:
 *   - a one-step student, `model.onnx` of `get-distill/model@1` (src/get/export.ts), sampled from seeds;
 *   - a teacher (any Denoiser) through its deterministic Heun sampler;
 *   - a pair folder (its manifest.json and shards): the teacher images datagen already made;
 *   - a dataset split, `mnist:test`, `fashion-mnist:train` ….
 * Seeded sources draw seed s's noise, label and z₀ from the seed contract (src/data/seeds.ts,
 * src/get/seeded.ts), so the student and the teacher evaluated on the same seed range see the same
 * noise and labels. Which source a `--model` / `--reference` spec names, and opening its URI, is the
 * eval stage's job (src/stages/eval-sources.ts): this module gets bytes, a store or a denoiser.
 */
import { type DatasetName, type DatasetSplit, loadDataset } from '../data/datasets.js';
import { labelsForSeedRange, noiseForSeedRange, type SeedRange, seedRange } from '../data/seeds.js';
import { readManifest, readShard } from '../data/shards.js';
import type { Denoiser, ImageShape } from '../edm/denoiser.js';
import { heunSample } from '../edm/heun.js';
import { heunNfe } from '../edm/schedule.js';
import { readModelInfo } from '../get/export.js';
import { mergeSamples, seedSamples } from '../get/seeded.js';
import { OrtSession } from '../graph/session.js';
import type { ObjectStore } from '../store/types.js';
import { joinUri } from '../store/uri.js';
import { UsageError } from '../util/errors.js';

/** A finite or seeded stream of images. */
export interface ImageSource {
  /** What it is, for reports and metric labels (a URI, `teacher:mixture-…`, `mnist:test`). */
  readonly id: string;
  readonly kind: 'student' | 'teacher' | 'pairs' | 'dataset';
  readonly shape: ImageShape;
  /** Images it holds (pairs, dataset) or null for seeded samplers (any count up to the seed limit). */
  readonly available: number | null;
  /** Facts for the report (seed range, NFE, step …). */
  readonly details: Readonly<Record<string, unknown>>;
  /**
   * The first n images in chunks of at most `batch`: float32 [m, C, H, W], about [−1, 1].
   * @throws UsageError when n exceeds `available`.
   */
  images(n: number, batch: number): AsyncGenerator<Float32Array>;
  close(): Promise<void>;
}

/** Seeds seedStart … seedStart + n − 1. @throws UsageError when they leave [0, 2^31). */
function seeds(seedStart: number, n: number): SeedRange {
  try {
    return seedRange(seedStart, seedStart + n);
  } catch (e) {
    throw new UsageError(`--seed-start ${seedStart} with ${n} samples: ${(e as Error).message}`);
  }
}

/** A dataset split, in its order. */
export async function datasetSource(name: DatasetName, split: DatasetSplit): Promise<ImageSource> {
  const d = await loadDataset(name, split);
  const shape = { channels: d.channels, height: d.height, width: d.width };
  const P = d.channels * d.height * d.width;
  return {
    id: `${name}:${split}`,
    kind: 'dataset',
    shape,
    available: d.n,
    details: { dataset: name, split, images: d.n },
    async *images(n, batch) {
      if (n > d.n)
        throw new UsageError(`${name}:${split} holds ${d.n} images, ${n} were asked for; ask for ${d.n} or fewer`);
      for (let i = 0; i < n; i += batch) yield d.images.subarray(i * P, Math.min(n, i + batch) * P);
    },
    async close() {},
  };
}

/**
 * The teacher images of the pair folder `dir` in `store` (its manifest.json and shards, checked by sha256).
 * @throws StoreError / Error when the manifest or a shard cannot be read or does not match.
 */
export async function pairsSource(store: ObjectStore, dir: string): Promise<ImageSource> {
  const m = await readManifest(store, dir);
  const P = m.imageShape.channels * m.imageShape.height * m.imageShape.width;
  return {
    id: dir,
    kind: 'pairs',
    shape: m.imageShape,
    available: m.totalPairs,
    details: {
      pairs: m.totalPairs,
      teacher: m.teacher,
      sampler: m.sampler,
      seeds: [m.shards[0]?.seedStart, m.shards.at(-1)?.seedEnd],
    },
    async *images(n, batch) {
      if (n > m.totalPairs)
        throw new UsageError(
          `${dir} holds ${m.totalPairs} pairs, ${n} were asked for; ask for ${m.totalPairs} or fewer`,
        );
      let left = n;
      for (const e of m.shards) {
        if (left <= 0) break;
        const s = await readShard(store, joinUri(dir, e.file), e.sha256);
        const take = Math.min(left, e.count);
        for (let i = 0; i < take; i += batch) yield s.image.subarray(i * P, Math.min(take, i + batch) * P);
        left -= take;
      }
    },
    async close() {},
  };
}

/** Heun samples of `denoiser` (`steps` steps, NFE = 2·steps − 1) from seeds seedStart, seedStart + 1, …. */
export function teacherSource(denoiser: Denoiser, seedStart: number, steps: number): ImageSource {
  return {
    id: `teacher:${denoiser.id}`,
    kind: 'teacher',
    shape: denoiser.shape,
    available: null,
    details: { teacher: denoiser.id, sampler: 'edm-heun', heunSteps: steps, nfe: heunNfe(steps), seedStart },
    async *images(n, batch) {
      const all = seeds(seedStart, n);
      for (let s = all.start; s < all.end; s += batch) {
        const r = { start: s, end: Math.min(all.end, s + batch) };
        const m = r.end - r.start;
        const noise = Float64Array.from(noiseForSeedRange(r, denoiser.shape));
        const labels = denoiser.numClasses > 0 ? labelsForSeedRange(r, denoiser.numClasses) : null;
        yield Float32Array.from(await heunSample(denoiser, noise, labels, m, { steps }));
      }
    },
    async close() {
      await denoiser.close?.();
    },
  };
}

/** What seeded sources need: the first seed and onnxruntime's intra-op threads (default all cores). */
export interface SeededOptions {
  readonly seedStart: number;
  readonly threads?: number;
}

/**
 * One-step samples of the student `model.onnx` (bytes read from `uri`) from seeds o.seedStart, ….
 * @param flag names the option in errors (`--model`, `--reference`).
 * @throws UsageError when the bytes are not a get-distill/model@1 model.
 */
export async function studentSource(
  bytes: Uint8Array,
  uri: string,
  flag: string,
  o: SeededOptions,
): Promise<ImageSource> {
  let info;
  try {
    info = readModelInfo(bytes, uri);
  } catch (e) {
    throw new UsageError(`${flag} ${(e as Error).message}`);
  }
  const session = await OrtSession.create(bytes, { threads: o.threads });
  const K = info.config.numClasses;
  const shape = { channels: info.config.channels, height: info.config.imageSize, width: info.config.imageSize };
  return {
    id: uri,
    kind: 'student',
    shape,
    available: null,
    details: {
      preset: info.config.name,
      step: info.step,
      iterations: info.iterations,
      nfe: 1,
      seedStart: o.seedStart,
      dataManifestSha256: info.dataManifestSha256,
    },
    async *images(n, batch) {
      const all = seeds(o.seedStart, n);
      for (let s = all.start; s < all.end; s += batch) {
        const m = Math.min(all.end, s + batch) - s;
        const labels = K > 0 ? [...labelsForSeedRange({ start: s, end: s + m }, K)] : null;
        const feeds = mergeSamples(info, [seedSamples(s, m, labels)]);
        const out = await session.run(feeds, ['image']);
        yield out.image.data as Float32Array;
      }
    },
    async close() {
      await session.release();
    },
  };
}
