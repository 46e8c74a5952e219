/**
 * Where evaluated images come from (the `--model` and `--reference` specs of `get-distill eval`):
 *   - a one-step student, `model.onnx` of `get-distill/model@1` (src/get/export.ts), sampled from seeds;
 *   - a teacher through its deterministic Heun sampler: `teacher` (the embedded mixture fitted to
 *     --dataset) or an EDM-preconditioned ONNX network (src/teacher/onnx-teacher.ts);
 *   - a pair folder (its manifest.json and shards): the teacher images datagen already made;
 *   - a dataset split, `mnist:test`, `fashion-mnist:train` ….
 * Seeded sources draw seed s's noise, label and z₀ from the seed contract (src/data/seeds.ts), so the
 * student and the teacher evaluated on the same seed range see the same noise and labels.
 */
import { type DatasetName, type DatasetSplit, loadDataset } from '../data/datasets.js';
import { labelsForSeedRange, noiseForSeedRange, type SeedRange, seedRange } from '../data/seeds.js';
import { MANIFEST_FILE, readManifest, readShard } from '../data/shards.js';
import type { Denoiser, ImageShape } from '../edm/denoiser.js';
import { heunSample } from '../edm/heun.js';
import { heunNfe } from '../edm/schedule.js';
import { MODEL_FORMAT, readModelInfo } from '../get/export.js';
import { readOnnxSignature } from '../graph/onnx-inspect.js';
import { OrtSession } from '../graph/session.js';
import { mergeSamples, seedSamples } from '../serve/samples.js';
import { prepareTeacher } from '../stages/teacher.js';
import { OnnxEdmTeacher } from '../teacher/onnx-teacher.js';
import { StoreError, joinUri, parentUri, storeFor } from '../store/index.js';
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

/** Dataset-split specs (`mnist:test` …). */
const DATASET_SPEC = /^(mnist|fashion-mnist):(train|test)$/;

/** Options for {@link openSource}. Teacher fields are needed only when the spec is a teacher. */
export interface SourceOptions {
  /** First seed of seeded sources (students, teachers). */
  readonly seedStart: number;
  readonly threads?: number;
  /** Teachers (`teacher`, an EDM ONNX network): Heun steps (NFE = 2n − 1). */
  readonly samplerSteps?: number;
  /** For `teacher`: the dataset the embedded mixture teacher is fitted to, its fit and its cache. */
  readonly dataset?: DatasetName;
  readonly teacherComponents?: number;
  readonly teacherRank?: number;
  readonly cacheDir?: string;
}

/** An option a teacher source needs. @throws Error (a caller's bug) naming it when absent. */
function need<K extends keyof SourceOptions>(o: SourceOptions, key: K, spec: string): NonNullable<SourceOptions[K]> {
  const v = o[key];
  if (v === undefined) throw new Error(`openSource(${spec}): option ${key} is required for a teacher source`);
  return v as NonNullable<SourceOptions[K]>;
}

/**
 * Opens `spec` (see the module comment); `flag` names the option in errors (`--model`, `--reference`).
 * @throws UsageError when the spec names nothing readable or something that is neither a model, a
 *   pair folder nor a dataset split.
 */
export async function openSource(spec: string, flag: string, o: SourceOptions): Promise<ImageSource> {
  const ds = DATASET_SPEC.exec(spec);
  if (ds) return datasetSource(ds[1] as DatasetName, ds[2] as DatasetSplit);
  if (spec === 'teacher') {
    const train = await loadDataset(need(o, 'dataset', spec), 'train');
    const t = await prepareTeacher(
      {
        spec: 'mixture',
        components: need(o, 'teacherComponents', spec),
        rank: need(o, 'teacherRank', spec),
        cacheDir: need(o, 'cacheDir', spec),
        threads: o.threads,
      },
      train,
    );
    return teacherSource(t.denoiser, o.seedStart, need(o, 'samplerSteps', spec), o);
  }
  const store = storeFor(parentUri(spec));
  if ((await store.head(spec)) === null) {
    if ((await store.head(joinUri(spec, MANIFEST_FILE))) !== null) return pairsSource(spec);
    throw new UsageError(
      `${flag} ${spec}: no such file, object or pair folder (give model.onnx, a pair folder with ${MANIFEST_FILE}, "teacher", or a split such as mnist:test)`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await store.get(spec);
  } catch (e) {
    if (e instanceof StoreError) throw new UsageError(`${flag} ${e.message}`);
    throw e;
  }
  let metadata: Readonly<Record<string, string>>;
  try {
    metadata = readOnnxSignature(bytes, spec).metadata;
  } catch (e) {
    throw new UsageError(`${flag} ${(e as Error).message}`);
  }
  if (metadata.format === MODEL_FORMAT) return studentSource(bytes, spec, flag, o);
  try {
    return teacherSource(
      await OnnxEdmTeacher.fromBytes(bytes, { threads: o.threads }, spec),
      o.seedStart,
      need(o, 'samplerSteps', spec),
      o,
    );
  } catch (e) {
    throw new UsageError(
      `${flag} ${spec}: neither a get-distill/model@1 student nor an EDM teacher network (${(e as Error).message})`,
    );
  }
}

function seeds(o: SourceOptions, n: number): SeedRange {
  try {
    return seedRange(o.seedStart, o.seedStart + n);
  } catch (e) {
    throw new UsageError(`--seed-start ${o.seedStart} with ${n} samples: ${(e as Error).message}`);
  }
}

async function datasetSource(name: DatasetName, split: DatasetSplit): Promise<ImageSource> {
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

async function pairsSource(dir: string): Promise<ImageSource> {
  const store = storeFor(dir);
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

function teacherSource(denoiser: Denoiser, seedStart: number, steps: number, o: SourceOptions): ImageSource {
  return {
    id: `teacher:${denoiser.id}`,
    kind: 'teacher',
    shape: denoiser.shape,
    available: null,
    details: { teacher: denoiser.id, sampler: 'edm-heun', heunSteps: steps, nfe: heunNfe(steps), seedStart },
    async *images(n, batch) {
      const all = seeds(o, n);
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

async function studentSource(bytes: Uint8Array, uri: string, flag: string, o: SourceOptions): Promise<ImageSource> {
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
      const all = seeds(o, n);
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
