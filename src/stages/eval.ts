/**
 * The evaluation stage: n samples of a model (a one-step student, or a teacher through its Heun
 * sampler) with fixed seeds → features of a feature network → FID against reference statistics,
 * Inception Score, improved precision/recall → eval.json, with progress and results as Prometheus
 * metrics (src/eval/metrics.ts). GET evaluates this way with 50k samples and Inception-v3
 * (get-reference.md §7); here the defaults are the embedded MNIST network and the MNIST test split.
 */
import type { DatasetName } from '../data/datasets.js';
import {
  extractFeatures,
  type FeatureSet,
  type Reference,
  referenceFromFeatures,
  scoreFeatures,
  type Scores,
} from '../eval/evaluate.js';
import {
  FeatureExtractor,
  type FeatureNetOptions,
  type FeatureNetSpec,
  isEmbeddedFeatureNet,
  resolveFeatureNet,
} from '../eval/features.js';
import type { EvalMetrics } from '../eval/metrics.js';
import { EMBEDDED_FEATURE_NETS } from '../eval/feature-net.js';
import { decodeFidStats, encodeFidStats } from '../eval/npz.js';
import type { ImageSource } from '../eval/sources.js';
import { openSource, type SourceOptions } from './eval-sources.js';
import { StoreError, parentUri, storeFor } from '../store/index.js';
import { UsageError } from '../util/errors.js';
import { Progress } from '../util/progress.js';

// First seed of evaluation samples (a spec constant; `distill`'s FID comparison uses it too).
export { EVAL_SEED_START } from '../spec/names.js';

type TeacherField = 'dataset' | 'teacherComponents' | 'teacherRank' | 'cacheDir' | 'samplerSteps';

/** `get-distill eval`'s options (the teacher fields always come with defaults from the CLI). */
export interface EvalOptions extends Omit<SourceOptions, TeacherField>, Required<Pick<SourceOptions, TeacherField>> {
  /** The evaluated images (see openSource). */
  readonly model: string;
  readonly samples: number;
  /** Feature network: a dataset's embedded one (`mnist` …) or an ONNX URI with `layer`. */
  readonly features: string;
  readonly layer?: string;
  readonly logitsLayer?: string;
  readonly inputRange?: readonly [number, number];
  /** Reference: an .npz of μ, Σ, a dataset split (`mnist:test`), a pair folder or a model. */
  readonly reference: string;
  /** Images of a reference that is computed here (default: all a dataset/pair folder holds, else `samples`). */
  readonly referenceSamples?: number;
  /** Where to write the reference statistics as .npz (pytorch-fid layout). */
  readonly saveReference?: string;
  /** Where to write the report (eval.json); omitted: only printed. */
  readonly out?: string;
  readonly batch: number;
  readonly splits: number;
  readonly k: number;
}

/** eval.json (format get-distill-eval/1). */
export interface EvalReport {
  readonly format: 'get-distill-eval/1';
  readonly model: { readonly id: string; readonly kind: string; readonly details: Readonly<Record<string, unknown>> };
  readonly samples: number;
  readonly features: { readonly id: string; readonly dim: number; readonly classes: number; readonly sha256: string };
  readonly reference: { readonly id: string; readonly samples: number | null };
  readonly scores: Scores;
  readonly samplesPerSecond: number;
  readonly wallSeconds: number;
}

const isNpz = (uri: string) => uri.toLowerCase().endsWith('.npz');

async function readReferenceNpz(uri: string): Promise<Reference> {
  try {
    return { id: uri, stats: decodeFidStats(await storeFor(parentUri(uri)).get(uri), uri), features: null };
  } catch (e) {
    if (e instanceof StoreError && e.code === 'NotFound')
      throw new UsageError(`--reference ${uri}: no such file or object`);
    throw e;
  }
}

/**
 * Resolves --features (src/eval/features.ts), reading an ONNX network given by URI through the store.
 * @throws UsageError when the URI names nothing, and as resolveFeatureNet.
 */
async function openFeatureNet(o: FeatureNetOptions): Promise<FeatureNetSpec> {
  if (isEmbeddedFeatureNet(o.features)) return resolveFeatureNet(o);
  let bytes: Uint8Array;
  try {
    bytes = await storeFor(parentUri(o.features)).get(o.features);
  } catch (e) {
    if (e instanceof StoreError && e.code === 'NotFound')
      throw new UsageError(
        `--features ${o.features}: no such file or object ` +
          `(give ${EMBEDDED_FEATURE_NETS.join(', ')} or the URI of an ONNX network)`,
      );
    throw e;
  }
  return resolveFeatureNet(o, bytes);
}

/** Features of a source's first n images, with a progress bar and the metrics' progress gauges. */
async function featuresOf(
  source: ImageSource,
  n: number,
  net: FeatureExtractor,
  phase: 'sample' | 'reference',
  o: { batch: number; progress: Progress; metrics?: EvalMetrics },
): Promise<FeatureSet> {
  const bar = o.progress.bar(`${phase === 'sample' ? 'samples' : 'reference'} → features`, 'images');
  try {
    return await extractFeatures(source, n, net, {
      batch: o.batch,
      onProgress: (done, total) => {
        bar.update(done, total);
        o.metrics?.progress(phase, done, total);
      },
    });
  } finally {
    bar.stop();
  }
}

/**
 * Checks, before any work, that `uri` can receive an object: not a folder name (trailing `/`), not an
 * existing folder or prefix, and its bucket exists and is readable.
 * @throws UsageError naming `flag`.
 */
export async function checkObjectTarget(uri: string, flag: string): Promise<void> {
  if (uri.endsWith('/'))
    throw new UsageError(`${flag} ${uri} names a folder; give a file or object name such as ${uri}eval.json`);
  const parent = parentUri(uri);
  const store = storeFor(parent);
  try {
    await store.list(parent.endsWith('/') ? parent : `${parent}/`, { limit: 1 });
    await store.head(uri);
    if ((await store.list(`${uri}/`, { limit: 1 })).length > 0)
      throw new UsageError(`${flag} ${uri} is a folder (or prefix); give a file or object name inside it`);
  } catch (e) {
    if (e instanceof StoreError) throw new UsageError(`${flag} ${e.message}`);
    throw e;
  }
}

/** What {@link evalStage} computed: the report and the reference statistics used. */
export interface EvalResult {
  readonly report: EvalReport;
  readonly reference: Reference;
}

/**
 * Runs one evaluation (nothing is written: see {@link saveEvalOutputs}).
 * @throws UsageError (exit 2) for bad specs, a reference of another dimension, non-finite features,
 *   too few samples for a covariance, a layer that does not exist.
 */
export async function evalStage(
  o: EvalOptions,
  x: { progress?: Progress; metrics?: EvalMetrics } = {},
): Promise<EvalResult> {
  const t0 = performance.now();
  const progress = x.progress ?? new Progress();
  if (o.out) await checkObjectTarget(o.out, '--out');
  if (o.saveReference) await checkObjectTarget(o.saveReference, '--save-reference');
  const spec = await openFeatureNet({
    features: o.features,
    layer: o.layer,
    logitsLayer: o.logitsLayer,
    range: o.inputRange,
  });
  const source = await openSource(o.model, '--model', o);
  let net: FeatureExtractor | null = null;
  try {
    if (source.available !== null && o.samples > source.available)
      throw new UsageError(
        `--samples ${o.samples}: ${source.id} holds ${source.available} images; ` +
          `give --samples ${source.available} or fewer`,
      );
    net = await FeatureExtractor.create(spec, source.shape, o.threads);
    const tooFew = (flag: string, n: number) =>
      new UsageError(
        `${flag} ${n}: ${n} samples of dimension ${net!.dim} give a singular covariance; ` +
          `give more than ${net!.dim} (FID needs a full-rank covariance)`,
      );
    if (o.samples <= net.dim) throw tooFew('--samples', o.samples);
    if (net.classes > 0 && o.samples < 2 * o.splits)
      throw new UsageError(
        `--splits ${o.splits} needs at least ${2 * o.splits} samples (two per split) for the Inception Score; ` +
          'lower --splits or raise --samples',
      );
    let ref: Reference;
    let refSamples: number | null = null;
    if (isNpz(o.reference)) {
      ref = await readReferenceNpz(o.reference);
      if (ref.stats.mu.length !== net.dim) {
        throw new UsageError(
          `--reference ${o.reference} has dimension ${ref.stats.mu.length}, the features of ${spec.id} ` +
            `have ${net.dim}; compute the reference with the same feature network and layer`,
        );
      }
    } else {
      const refSource = await openSource(o.reference, '--reference', o);
      try {
        refSamples = o.referenceSamples ?? refSource.available ?? o.samples;
        if (refSource.available !== null && refSamples > refSource.available)
          throw new UsageError(
            `--reference-samples ${refSamples}: ${refSource.id} holds ${refSource.available} images; ` +
              `give ${refSource.available} or fewer`,
          );
        if (refSamples <= net.dim) throw tooFew('--reference-samples', refSamples);
        ref = await referenceFromFeatures(
          refSource.id,
          await featuresOf(refSource, refSamples, net, 'reference', { ...o, progress, metrics: x.metrics }),
        );
      } finally {
        await refSource.close();
      }
    }
    const set = await featuresOf(source, o.samples, net, 'sample', { ...o, progress, metrics: x.metrics });
    progress.note('computing FID, IS, precision/recall …');
    const scores = await scoreFeatures(source.id, set, ref, { splits: o.splits, k: o.k });
    const report: EvalReport = {
      format: 'get-distill-eval/1',
      model: { id: source.id, kind: source.kind, details: source.details },
      samples: o.samples,
      features: { id: spec.id, dim: net.dim, classes: net.classes, sha256: net.sha256 },
      reference: { id: ref.id, samples: refSamples },
      scores,
      samplesPerSecond: set.imagesPerSecond,
      wallSeconds: (performance.now() - t0) / 1000,
    };
    return { report, reference: ref };
  } finally {
    await net?.close();
    await source.close();
  }
}

/** Writes eval.json (`o.out`) and the reference statistics (`o.saveReference`) when asked for. */
export async function saveEvalOutputs(o: Pick<EvalOptions, 'out' | 'saveReference'>, r: EvalResult): Promise<void> {
  if (o.saveReference)
    await storeFor(parentUri(o.saveReference)).put(o.saveReference, encodeFidStats(r.reference.stats));
  if (o.out)
    await storeFor(parentUri(o.out)).put(o.out, new TextEncoder().encode(`${JSON.stringify(r.report, null, 2)}\n`));
}

/** The teacher-vs-student comparison `npm run distill` reports (report.json `fid`). */
export interface FidComparison {
  readonly samples: number;
  readonly seeds: readonly [number, number];
  readonly features: string;
  readonly reference: string;
  readonly teacher: Scores;
  readonly student: Scores;
  /** student FID / teacher FID (goal ≤ 1.5). */
  readonly studentOverTeacher: number;
}

/**
 * FID, IS and precision/recall of the teacher's samples (a pair folder made on the evaluation seeds)
 * and of the exported student's samples on the same seeds, against a dataset split, with the embedded
 * feature network of that dataset; the reference statistics are saved as .npz.
 * @throws UsageError as evalStage.
 */
export async function compareTeacherStudent(o: {
  teacherPairs: string;
  studentModel: string;
  dataset: DatasetName;
  samples: number;
  seedStart: number;
  saveReference?: string;
  threads?: number;
  batch?: number;
  progress: Progress;
}): Promise<FidComparison> {
  const spec = await resolveFeatureNet({ features: o.dataset });
  const src: SourceOptions = { seedStart: o.seedStart, threads: o.threads };
  const refSource = await openSource(`${o.dataset}:test`, 'reference', src);
  const teacher = await openSource(o.teacherPairs, 'teacher samples', src);
  const student = await openSource(o.studentModel, 'student', src);
  const net = await FeatureExtractor.create(spec, student.shape, o.threads);
  const x = { batch: o.batch ?? 128, progress: o.progress };
  try {
    const ref = await referenceFromFeatures(
      refSource.id,
      await featuresOf(refSource, refSource.available!, net, 'reference', x),
    );
    if (o.saveReference) await storeFor(parentUri(o.saveReference)).put(o.saveReference, encodeFidStats(ref.stats));
    const t = await scoreFeatures('teacher samples', await featuresOf(teacher, o.samples, net, 'sample', x), ref);
    const s = await scoreFeatures('student samples', await featuresOf(student, o.samples, net, 'sample', x), ref);
    return {
      samples: o.samples,
      seeds: [o.seedStart, o.seedStart + o.samples],
      features: spec.id,
      reference: ref.id,
      teacher: t,
      student: s,
      studentOverTeacher: s.fid / t.fid,
    };
  } finally {
    await net.close();
    await Promise.all([refSource.close(), teacher.close(), student.close()]);
  }
}
