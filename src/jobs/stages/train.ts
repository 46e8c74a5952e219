/**
 * The train stage as a job (services/trainer): GET on a pair folder (manifest.json + shards) with AdamW
 * and EMA, checkpoints in `<out>/checkpoints` (docs/data-contracts.md §7), by the same `trainStage` and
 * `streamSource` the local executor runs. A job always resumes from `<out>/checkpoints/latest.json`
 * when one exists, so a rerun after SIGTERM / DELETE (which checkpoint before stopping) continues
 * where the last one stopped and reaches the same weights as a straight run.
 */
import type { DatasetManifest } from '../../data/shards.js';
import { PairStream } from '../../data/pair-stream.js';
import { resolveConfig } from '../../get/config.js';
import { datasetDigest } from '../../stages/datagen.js';
import { streamSource, trainStage } from '../../stages/train.js';
import {
  TFJS_BACKENDS,
  TFJS_BACKEND_ENV,
  TRAINING_ENGINES,
  ENGINE_ENV,
  type TfjsBackendChoice,
  type TrainingEngineKind,
} from '../../spec/names.js';
import { TrainSpecSchema, type TrainSpec } from '../../spec/jobs.js';
import { StoreError, joinUri, storeFor } from '../../store/index.js';
import { REFERENCE_ADAMW, type EmaConfig } from '../../train/optim.js';
import { UsageError } from '../../util/errors.js';
import type { JobContext, JobOutcome, StageJob } from '../types.js';
import { ageGauge, stageGauge } from '../metrics.js';
import { asSpecError, fieldError, requireInput } from './common.js';
import { worldCommunicator } from '../../parallel/mpi.js';

// The variables the engine fields default to (the trainer-gpu image sets tfjs / node-gpu).
export { ENGINE_ENV, TFJS_BACKEND_ENV };

/**
 * The engine and tfjs backend of a job: the spec's fields, else ENGINE_ENV / TFJS_BACKEND_ENV, else
 * ort / auto.
 * @throws UsageError naming the variable when it holds an unknown value.
 */
export function resolveEngine(
  spec: Pick<TrainSpec, 'engine' | 'tfjsBackend'>,
  env: Readonly<Record<string, string | undefined>> = process.env,
): { engine: TrainingEngineKind; tfjsBackend: TfjsBackendChoice } {
  const pick = <T extends string>(given: T | undefined, name: string, allowed: readonly T[], dflt: T): T => {
    if (given !== undefined) return given;
    const v = env[name]?.trim();
    if (!v) return dflt;
    if (!(allowed as readonly string[]).includes(v))
      throw new UsageError(`${name}=${v} is not one of ${allowed.join(', ')}; fix or unset the variable`);
    return v as T;
  };
  return {
    engine: pick(spec.engine, ENGINE_ENV, TRAINING_ENGINES, 'ort'),
    tfjsBackend: pick(spec.tfjsBackend, TFJS_BACKEND_ENV, TFJS_BACKENDS, 'auto'),
  };
}

export { TrainSpecSchema, type TrainSpec };

/**
 * Opens the pair stream of `spec.pairs`.
 * @throws UsageError naming `pairs` for a missing or invalid manifest; StoreError when the store fails.
 */
async function openPairs(spec: TrainSpec): Promise<PairStream> {
  try {
    return await PairStream.open(storeFor(spec.pairs), spec.pairs, {
      batchSize: spec.batch,
      seed: spec.seed,
      dropLast: true,
    });
  } catch (e) {
    if (e instanceof StoreError && e.code !== 'NotFound') throw e;
    throw fieldError('pairs', (e as Error).message);
  }
}

/** Wraps a failing batch read (a shard corrupted after its manifest was written) as a permanent error. */
async function pairData<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw fieldError(
      'pairs',
      `${(e as Error).message}; regenerate the pairs (rerun the datagen job into a new folder)`,
    );
  }
}

async function run(spec: TrainSpec, ctx: JobContext): Promise<JobOutcome> {
  const stream = await openPairs(spec);
  const manifest: DatasetManifest = stream.manifest;
  let cfg: ReturnType<typeof resolveConfig>;
  try {
    cfg = resolveConfig(spec.preset, {
      numClasses: manifest.numClasses,
      ...(spec.patchSize ? { patchSize: spec.patchSize } : {}),
    });
  } catch (e) {
    throw fieldError(
      spec.patchSize ? 'patchSize' : 'preset',
      `${spec.preset}${spec.patchSize ? ` with patch size ${spec.patchSize}` : ''}: ${(e as Error).message}`,
    );
  }
  const { channels, height, width } = manifest.imageShape;
  if (channels !== cfg.channels || height !== cfg.imageSize || width !== cfg.imageSize) {
    throw fieldError(
      'preset',
      `${cfg.name} is for ${cfg.channels}×${cfg.imageSize}×${cfg.imageSize} images, the pairs in ` +
        `${spec.pairs} are ${channels}×${height}×${width}; pick a preset for that size`,
    );
  }
  if (spec.batch > manifest.totalPairs)
    throw fieldError('batch', `${spec.batch} exceeds the ${manifest.totalPairs} pairs in ${spec.pairs}; lower batch`);
  const model = { ...cfg, numClasses: manifest.numClasses };
  const ema: EmaConfig =
    spec.emaDecay !== undefined
      ? { kind: 'constant', decay: spec.emaDecay }
      : { kind: 'halflife', halflifeImages: spec.emaHalflifeKimg * 1000, rampupRatio: spec.emaRampup };
  const checkpointDir = joinUri(spec.out, 'checkpoints');
  const { engine, tfjsBackend } = resolveEngine(spec);

  const m = {
    step: stageGauge(ctx.registry, {
      name: 'get_train_step',
      help: 'Optimizer steps done by the latest training job (resumed steps included)',
    }),
    loss: stageGauge(ctx.registry, {
      name: 'get_train_loss',
      help: 'Weighted fixed-point correction loss of the last training step',
    }),
    ips: stageGauge(ctx.registry, {
      name: 'get_train_images_per_second',
      help: 'Training images per second of the last step',
    }),
    stepSeconds: stageGauge(ctx.registry, {
      name: 'get_train_step_seconds',
      help: 'Wall seconds of the last training step (batch load included)',
    }),
    age: ageGauge(
      ctx.registry,
      'get_train_checkpoint_age_seconds',
      'Seconds since the latest training job wrote its last checkpoint (since it started, before its first)',
    ),
  };
  m.age.touch(); // a job without a checkpoint yet shows its own age, so a stuck start is visible
  // A checkpoint is saved right after onStep reports a checkpoint step; the next batch read (or the
  // return) happens once it is in the store, which is when its age starts.
  let pending = false;
  const source = streamSource(stream, pairData);
  const timedSource = {
    batch: (step: number, size: number) => {
      if (pending) {
        m.age.touch();
        pending = false;
      }
      return source.batch(step, size);
    },
  };
  ctx.progress({ step: 0, steps: spec.steps });
  if (ctx.signal.aborted) return { artifacts: {}, interrupted: true, summary: { step: 0 } };
  let firstStep: number | null = null;
  const result = await trainStage(timedSource, {
    config: model,
    steps: spec.steps,
    batch: spec.batch,
    iterations: spec.iterations,
    optimizer: { ...REFERENCE_ADAMW, lr: spec.lr },
    ema,
    seed: spec.seed,
    store: storeFor(spec.out),
    checkpointDir,
    checkpointEvery: spec.checkpointEvery,
    keep: spec.keep,
    resume: true,
    dataManifestSha256: datasetDigest(manifest),
    threads: spec.threads,
    engine,
    tfjsBackend,
    log: (msg) => ctx.log.info({ engine, tfjsBackend }, msg),
    onStep: (s) => {
      if (firstStep === null) {
        firstStep = s.step;
        if (s.step > 1) ctx.log.info({ step: s.step - 1 }, `resumed from the checkpoint at step ${s.step - 1}`);
      }
      if (s.step % spec.checkpointEvery === 0 || s.step === spec.steps) pending = true;
      m.step.set(s.step);
      m.loss.set(s.loss);
      m.stepSeconds.set(s.stepSeconds);
      m.ips.set(spec.batch / s.stepSeconds);
      ctx.progress({ step: s.step, steps: spec.steps, loss: s.loss, l1Last: s.l1Last });
    },
    shouldStop: () => ctx.signal.aborted,
    // Under mpirun (the launcher's ranks, an MPIJob's workers) this is one rank of N; else one process.
    comm: worldCommunicator(),
    batchField: 'batch',
  }).catch((e: unknown) => {
    throw engineError(asSpecError(e));
  });
  m.age.touch(); // the last step, or the stop, was checkpointed before returning
  m.step.set(result.step);
  const summary = {
    step: result.step,
    resumedFrom: result.resumedFrom,
    firstStep,
    loss: result.lastLoss,
    preset: cfg.name,
    engine: result.engine,
    imagesPerSecond: result.step > result.resumedFrom ? Math.round(result.imagesPerSecond * 10) / 10 : null,
  };
  ctx.progress({ step: result.step, steps: spec.steps });
  return {
    artifacts: { checkpoints: checkpointDir, latest: joinUri(checkpointDir, 'latest.json') },
    interrupted: result.interrupted,
    summary,
  };
}

/** A tfjs loading error (a forced backend whose package is missing) names the spec field. */
function engineError(e: unknown): unknown {
  if (e instanceof UsageError && /@tensorflow\//.test(e.message) && !/^tfjsBackend: /.test(e.message))
    return fieldError('tfjsBackend', e.message);
  return e;
}

/**
 * Loads the tfjs backend `backend` now (the packages are optional, so imported on demand).
 * @throws UsageError naming `source` (the spec field, or the variable a server default came from).
 */
async function loadTfjsFor(backend: TfjsBackendChoice, source: string): Promise<void> {
  const { loadTfjs } = await import('../../graph/tfjs-backend.js');
  try {
    await loadTfjs({ backend, log: () => {} });
  } catch (e) {
    const msg = (e as Error).message;
    if (source === 'tfjsBackend') throw fieldError('tfjsBackend', msg);
    throw new UsageError(
      `${source}=${backend} (this server's default): ${msg}; a spec may override it with "tfjsBackend"`,
      { cause: e },
    );
  }
}

/** The train stage job. */
export const trainJob: StageJob<TrainSpec> = {
  kind: 'train',
  dataParallel: true,
  schema: TrainSpecSchema,
  run,
  preflight: async (spec) => {
    await requireInput('pairs', spec.pairs, 'pair dataset', ['manifest.json']);
    // A forced tfjs backend that is not installed is a 400, not a job that fails later.
    const { engine, tfjsBackend } = resolveEngine(spec);
    if (engine !== 'tfjs' && spec.tfjsBackend !== undefined) {
      throw fieldError(
        'tfjsBackend',
        `applies to engine tfjs only (this job's engine is ${engine}); drop it or set engine to tfjs`,
      );
    }
    if (engine === 'tfjs' && spec.threads !== undefined)
      throw fieldError('threads', "sets onnxruntime's threads (engine ort); the tfjs engine does not use it");
    if (engine !== 'tfjs') return;
    // Every failure here is about the backend choice (missing package, another backend already loaded
    // in this process): a 400 naming the field, or the variable the server took it from.
    await loadTfjsFor(tfjsBackend, spec.tfjsBackend === undefined ? TFJS_BACKEND_ENV : 'tfjsBackend');
  },
  // A server whose own defaults cannot work refuses to start (exit 2) instead of failing every job.
  startupCheck: async (env) => {
    const { engine, tfjsBackend } = resolveEngine({}, env);
    if (engine === 'tfjs' && tfjsBackend !== 'auto') await loadTfjsFor(tfjsBackend, TFJS_BACKEND_ENV);
  },
};
