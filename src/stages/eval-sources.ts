/**
 * The eval stage's sources: which image source a `--model` / `--reference` spec of `get-distill eval`
 * names (src/eval/sources.ts has the sources themselves), with its URI opened through the object store
 * and the embedded teacher prepared (fitted or loaded from the cache) by the teacher stage.
 *   - `mnist:test` …: a dataset split (DATASET_SPLIT_SPECS of src/spec/names.ts);
 *   - `teacher`: the embedded mixture fitted to `dataset`, through its Heun sampler;
 *   - a URI of `model.onnx` (get-distill/model@1): a one-step student; of another ONNX network: an
 *     EDM-preconditioned teacher (src/teacher/onnx-teacher.ts); of a folder with manifest.json: pairs.
 */
import { type DatasetName, loadDataset } from '../data/datasets.js';
import { MANIFEST_FILE } from '../data/shards.js';
import { datasetSource, type ImageSource, pairsSource, studentSource, teacherSource } from '../eval/sources.js';
import { MODEL_FORMAT } from '../get/export.js';
import { readOnnxSignature } from '../graph/onnx-inspect.js';
import { StoreError, joinUri, parentUri, storeFor } from '../store/index.js';
import { parseDatasetSplit } from '../spec/names.js';
import { OnnxEdmTeacher } from '../teacher/onnx-teacher.js';
import { UsageError } from '../util/errors.js';
import { prepareTeacher } from './teacher.js';

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
  const ds = parseDatasetSplit(spec);
  if (ds) return datasetSource(ds.dataset, ds.split);
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
    return teacherSource(t.denoiser, o.seedStart, need(o, 'samplerSteps', spec));
  }
  const store = storeFor(parentUri(spec));
  if ((await store.head(spec)) === null) {
    if ((await store.head(joinUri(spec, MANIFEST_FILE))) !== null) return pairsSource(storeFor(spec), spec);
    throw new UsageError(
      `${flag} ${spec}: no such file, object or pair folder (give model.onnx, a pair folder with ` +
        `${MANIFEST_FILE}, "teacher", or a split such as mnist:test)`,
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
    );
  } catch (e) {
    throw new UsageError(
      `${flag} ${spec}: neither a get-distill/model@1 student nor an EDM teacher network (${(e as Error).message})`,
    );
  }
}
