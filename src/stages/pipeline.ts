/**
 * The local executor: runs dataset → teacher → pairs → GET training → one-step samples → export
 * (model.onnx + model.json) → report in one process, with every artifact under one run URI (a folder,
 * file:// or s3://; docs/architecture.md).
 * The run describes itself (options.json, stats.jsonl) and resumes from itself (--resume).
 */
import { loadDataset, type DatasetName } from '../data/datasets.js';
import { PairStream } from '../data/pair-stream.js';
import { heunNfe } from '../edm/schedule.js';
import { meanAbs } from '../eval/baselines.js';
import { resolveConfig, referenceParamCount } from '../get/config.js';
import { REFERENCE_ADAMW, type EmaConfig } from '../train/optim.js';
import type { TrainingEngineKind } from '../train/engine.js';
import type { TfjsBackendChoice } from '../graph/tfjs-backend.js';
import { type ObjectStore, StoreError, joinUri, storeFor } from '../store/index.js';
import { UsageError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { datagenStage, datasetDigest } from './datagen.js';
import { EVAL_SEED_START, compareTeacherStudent, type FidComparison } from './eval.js';
import { exportStage } from './export.js';
import { baselineL1, l1ByClass, sampleHeldout, writeComparisonGrid } from './report.js';
import { StatsLog } from './stats-log.js';
import { prepareTeacher } from './teacher.js';
import { streamSource, trainStage, type TrainResult } from './train.js';

/** Options of `get-distill distill` (see src/cli/distill.ts for their meaning and defaults). */
export interface DistillOptions {
  out: string;
  resume?: boolean;
  dataset: DatasetName;
  teacher: string;
  teacherComponents: number;
  teacherRank: number;
  samplerSteps: number;
  cacheDir: string;
  pairs: number;
  heldout: number;
  shardSize: number;
  preset: string;
  patchSize?: number;
  steps: number;
  batch: number;
  lr: number;
  emaHalflifeKimg: number;
  emaRampup: number;
  emaDecay?: number;
  iterations: number;
  checkpointEvery: number;
  keep: number;
  seed: number;
  threads?: number;
  /** Training engine (default ort); may change on --resume (checkpoints are engine-agnostic). */
  engine?: TrainingEngineKind;
  /** tfjs backend of --engine tfjs (default auto). */
  tfjsBackend?: TfjsBackendChoice;
  gridColumns: number;
  /** Teacher and student samples for the FID comparison (0: skip it). */
  fidSamples: number;
}

/** First seed of the held-out pairs: far from any training seed range the CLI can make. */
export const HELDOUT_SEED_START = 2 ** 30;

/** Options that may change when resuming a run (everything else must match options.json). */
const RESUMABLE = new Set([
  'steps',
  'threads',
  'engine',
  'tfjsBackend',
  'resume',
  'out',
  'cacheDir',
  'gridColumns',
  'keep',
  'checkpointEvery',
  'fidSamples',
]);

/**
 * Checks --out before anything is written: a fresh run needs an absent or empty folder (prefix). With
 * --resume the run's options.json supplies every option not given on the command line (`explicit`);
 * an explicit option must match it unless it is RESUMABLE. Mutates `o` accordingly.
 * @returns true when the run resumes.
 * @throws UsageError (StoreError for a missing bucket, denied access, an unreachable endpoint).
 */
async function checkRunFolder(store: ObjectStore, o: DistillOptions, explicit: ReadonlySet<string>): Promise<boolean> {
  // A listing first: unlike HEAD, its error answers carry the S3 error code (e.g. SignatureDoesNotMatch).
  const entries = await store.list(o.out.endsWith('/') ? o.out : `${o.out}/`, { limit: 1 }).catch((e: unknown) => {
    if (e instanceof StoreError && e.code === 'Io')
      throw new UsageError(`--out ${o.out}: cannot read it as a folder (${e.message}); give a folder path`);
    throw e;
  });
  if ((await store.head(o.out)) !== null)
    throw new UsageError(`--out ${o.out} is a file (an object), not a folder; give a folder path or prefix`);
  const empty = entries.length === 0;
  if (!o.resume) {
    if (!empty)
      throw new UsageError(
        `--out ${o.out} is not empty; pass --resume to continue that run, or choose a new folder (nothing was changed)`,
      );
    return false;
  }
  if (empty)
    throw new UsageError(
      `--resume: --out ${o.out} holds no run to resume; check the path, or drop --resume to start one`,
    );
  let saved: Record<string, unknown> | null;
  try {
    saved = JSON.parse(new TextDecoder().decode(await store.get(joinUri(o.out, 'options.json'))));
  } catch (e) {
    if (e instanceof StoreError && e.code !== 'NotFound') throw e;
    throw new UsageError(
      `--out ${o.out}: options.json is missing or unreadable (${(e as Error).message.split('\n')[0]}); it is not a get-distill run folder`,
    );
  }
  if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) {
    throw new UsageError(
      `--out ${o.out}: options.json does not hold an options object; it is not a get-distill run folder`,
    );
  }
  const now = o as unknown as Record<string, unknown>;
  for (const k of new Set([...Object.keys(saved), ...explicit])) {
    if (k === 'out' || k === 'resume') continue;
    if (!explicit.has(k)) {
      if (k in saved) now[k] = saved[k];
      else delete now[k];
    } else if (!RESUMABLE.has(k) && JSON.stringify(now[k]) !== JSON.stringify(saved[k])) {
      throw new UsageError(
        `--resume: option ${k} is ${JSON.stringify(now[k])} but the run in ${o.out} used ${JSON.stringify(saved[k] ?? null)}; drop the option to keep the run's value, or remove the folder to start over`,
      );
    }
  }
  return true;
}

/** Wraps data errors of a stage (a shard that broke after it was written) as usage errors. */
async function userData<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `${(e as Error).message}; regenerate the pairs (delete the shard and its manifest.json, then --resume)`,
    );
  }
}

/** Raised when SIGINT/SIGTERM stopped training after a checkpoint; the CLI exits 130. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

/**
 * Runs the whole pipeline into the run URI `o.out`.
 * @param explicit the options given on the command line; with --resume the others come from the run's
 *   options.json.
 * @throws UsageError (exit 2) for bad input, Interrupted (exit 130) after SIGINT/SIGTERM.
 */
export async function runDistill(o: DistillOptions, explicit: ReadonlySet<string> = new Set()): Promise<void> {
  const t0 = performance.now();
  const wall: Record<string, number> = {};
  const timed = async <T>(stage: string, f: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await f();
    } finally {
      wall[stage] = round((performance.now() - t) / 1000, 2);
    }
  };
  const resolveModel = (): ReturnType<typeof resolveConfig> => {
    let c: ReturnType<typeof resolveConfig>;
    try {
      c = resolveConfig(o.preset, { numClasses: 10, ...(o.patchSize ? { patchSize: o.patchSize } : {}) });
    } catch (e) {
      throw new UsageError(
        `--preset ${o.preset}${o.patchSize ? ` --patch-size ${o.patchSize}` : ''}: ${(e as Error).message}`,
      );
    }
    if (o.teacher === 'mixture' && (c.channels !== 1 || c.imageSize !== 32)) {
      throw new UsageError(
        `--preset ${o.preset} is for ${c.channels}×${c.imageSize}×${c.imageSize} images, the embedded teacher makes 1×32×32 (${o.dataset}); pick a CPU preset (GET-CPU-*) or an ONNX teacher`,
      );
    }
    return c;
  };
  let cfg = resolveModel(); // bad flags fail before any I/O
  const store = storeFor(o.out);
  const at = (key: string) => joinUri(o.out, key);
  const resuming = await checkRunFolder(store, o, explicit);
  if (resuming) cfg = resolveModel(); // --preset / --patch-size not given again come from options.json
  const text = (s: string) => new TextEncoder().encode(s);
  const { resume: _resume, ...recorded } = o;
  const saveOptions = () => store.put(at('options.json'), text(`${JSON.stringify(recorded, null, 2)}\n`));
  const progress = new Progress();
  const stats = await StatsLog.open(store, at('stats.jsonl'), resuming, (msg) => progress.note(msg));
  const log = (rec: Record<string, unknown>) => stats.log(rec);
  // SIGINT/SIGTERM: the stage in progress stops at its next safe point (a sub-batch of pairs, a training
  // step + checkpoint); a second signal exits at once.
  let stop: string | null = null;
  const onSignal = (sig: string) => {
    if (stop) {
      progress.note(`\nsecond ${sig}: exiting now; finished shards and checkpoints are kept, continue with --resume`);
      process.exit(130);
    }
    stop = sig;
    progress.note(`\n${sig}: stopping at the next safe point (press again to exit at once) …`);
  };
  const stopped = (where: string) => {
    if (stop) throw new Interrupted(`${stop} ${where}; continue with --resume`);
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  try {
    await runStages();
  } finally {
    process.removeListener('SIGINT', onSignal).removeListener('SIGTERM', onSignal);
  }

  async function runStages(): Promise<void> {
    const train = await timed('dataset', () => loadDataset(o.dataset, 'train'));
    progress.note(
      `dataset ${o.dataset}: ${train.n} training images, ${train.channels}×${train.height}×${train.width}, ${train.numClasses} classes`,
    );

    const teacherBar = progress.bar('teacher fit', 'classes');
    const teacher = await timed('teacher', () =>
      prepareTeacher(
        {
          spec: o.teacher,
          components: o.teacherComponents,
          rank: o.teacherRank,
          cacheDir: o.cacheDir,
          threads: o.threads,
          onFitGroup: (g, n) => teacherBar.update(g + 1, n),
        },
        train,
      ),
    );
    teacherBar.stop();
    progress.note(
      `teacher ${teacher.denoiser.id} (${teacher.kind === 'onnx' ? 'ONNX network' : teacher.cached ? 'cached fit' : `fitted in ${teacher.fitSeconds.toFixed(1)} s`})`,
    );
    try {
      stopped('after the teacher stage');
      // Written once the teacher works, so a run that fails to start leaves nothing behind; a resumed
      // run records its new --steps only once it has trained.
      if (!resuming) await saveOptions();
      if (teacher.denoiser.shape.height !== cfg.imageSize || teacher.denoiser.shape.channels !== cfg.channels) {
        throw new UsageError(
          `teacher images are ${teacher.denoiser.shape.channels}×${teacher.denoiser.shape.height}×${teacher.denoiser.shape.width}, preset ${cfg.name} expects ${cfg.channels}×${cfg.imageSize}×${cfg.imageSize}`,
        );
      }
      const conditional = teacher.denoiser.numClasses > 0;
      const model = { ...cfg, numClasses: teacher.denoiser.numClasses };

      const pairsDir = at('pairs');
      const onRegenerate = (uri: string, problem: string) => progress.note(`regenerating ${uri}: ${problem}`);
      const genBar = progress.bar(`pairs (Heun, ${heunNfe(o.samplerSteps)} NFE)`, 'pairs');
      const gen = await timed('datagen', () =>
        datagenStage({
          teacher: teacher.denoiser,
          dataset: o.dataset,
          seeds: { start: 0, end: o.pairs },
          shardSize: o.shardSize,
          store,
          outDir: pairsDir,
          samplerSteps: o.samplerSteps,
          onProgress: (d, n) => genBar.update(d, n),
          onRegenerate,
          shouldStop: () => stop !== null,
        }),
      );
      genBar.stop();
      if (gen.interrupted || !gen.manifest)
        throw new Interrupted(
          `${stop} during pair generation: finished shards are kept in ${pairsDir}; continue with --resume`,
        );
      const heldBar = progress.bar('held-out pairs', 'pairs');
      const heldDir = at('heldout');
      const held = await timed('heldout', () =>
        datagenStage({
          teacher: teacher.denoiser,
          dataset: o.dataset,
          seeds: { start: HELDOUT_SEED_START, end: HELDOUT_SEED_START + o.heldout },
          shardSize: o.shardSize,
          store,
          outDir: heldDir,
          samplerSteps: o.samplerSteps,
          onProgress: (d, n) => heldBar.update(d, n),
          onRegenerate,
          shouldStop: () => stop !== null,
        }),
      );
      heldBar.stop();
      if (held.interrupted)
        throw new Interrupted(
          `${stop} during held-out pair generation: finished shards are kept in ${heldDir}; continue with --resume`,
        );
      const generated = gen.generated + held.generated;

      const ema: EmaConfig =
        o.emaDecay !== undefined
          ? { kind: 'constant', decay: o.emaDecay }
          : { kind: 'halflife', halflifeImages: o.emaHalflifeKimg * 1000, rampupRatio: o.emaRampup };
      const stream = await PairStream.open(store, pairsDir, { batchSize: o.batch, seed: o.seed, dropLast: true });
      const trainBar = progress.bar(`train ${cfg.name}`, 'steps');
      let result: TrainResult;
      let firstStep: number | null = null;
      try {
        result = await timed('train', () =>
          trainStage(streamSource(stream, userData), {
            config: model,
            steps: o.steps,
            batch: o.batch,
            iterations: o.iterations,
            optimizer: { ...REFERENCE_ADAMW, lr: o.lr },
            ema,
            seed: o.seed,
            store,
            checkpointDir: at('checkpoints'),
            checkpointEvery: o.checkpointEvery,
            keep: o.keep,
            resume: resuming,
            dataManifestSha256: datasetDigest(gen.manifest!),
            threads: o.threads,
            engine: o.engine,
            tfjsBackend: o.tfjsBackend,
            log: (msg) => progress.note(msg),
            onStep: (s) => {
              firstStep ??= s.step;
              if (s.step === firstStep) stats.forgetTrainStepsFrom(s.step); // logged by the run that was killed
              trainBar.update(s.step, o.steps, { l1: s.l1Last.toFixed(4) });
              if (s.step % 10 === 0)
                void log({
                  stage: 'train',
                  step: s.step,
                  loss: s.loss,
                  l1_last: s.l1Last,
                  step_seconds: s.stepSeconds,
                });
            },
            shouldStop: () => stop !== null,
          }),
        );
      } finally {
        trainBar.stop();
      }
      if (resuming) await saveOptions();
      if (result.interrupted)
        throw new Interrupted(
          `${stop} at step ${result.step}: checkpoint saved in ${at('checkpoints')}; continue with --resume`,
        );

      stopped('after training');
      progress.note('sampling the held-out seeds in one step …');
      const sample = await timed('sample', () =>
        userData(() => sampleHeldout(model, (n) => result.ema.view(n), store, heldDir, o.iterations, o.threads)),
      );
      progress.note('fitting the baselines (class mean, ridge) …');
      const baselines = await timed('baselines', () =>
        userData(() => baselineL1(store, pairsDir, sample.held, teacher.denoiser.numClasses)),
      );
      const studentL1 = meanAbs(sample.student, sample.held.image);
      // The served artifact: the latest checkpoint's EMA (= result.ema, saved at the last step), exported
      // before report.json so the report never names a model that is not there.
      progress.note('exporting model.onnx …');
      const exported = await timed('export', () => exportStage({ checkpoint: at('checkpoints'), out: o.out }));
      let fid: FidComparison | null = null;
      if (o.fidSamples > 0) {
        stopped('after export');
        const fidBar = progress.bar(`FID teacher samples (${heunNfe(o.samplerSteps)} NFE)`, 'pairs');
        const fidSeeds = { start: EVAL_SEED_START, end: EVAL_SEED_START + o.fidSamples };
        const evalPairs = await timed('fid_teacher_samples', () =>
          datagenStage({
            teacher: teacher.denoiser,
            dataset: o.dataset,
            seeds: fidSeeds,
            shardSize: o.shardSize,
            store,
            outDir: at(`eval/teacher-${o.fidSamples}`),
            samplerSteps: o.samplerSteps,
            onProgress: (d, n) => fidBar.update(d, n),
            onRegenerate,
            shouldStop: () => stop !== null,
          }),
        );
        fidBar.stop();
        if (evalPairs.interrupted)
          throw new Interrupted(
            `${stop} while sampling the teacher for FID: finished shards are kept; continue with --resume`,
          );
        fid = await timed('fid', () =>
          compareTeacherStudent({
            teacherPairs: at(`eval/teacher-${o.fidSamples}`),
            studentModel: exported.modelUri,
            dataset: o.dataset,
            samples: o.fidSamples,
            seedStart: EVAL_SEED_START,
            saveReference: at(`eval/${o.dataset}-test.npz`),
            threads: o.threads,
            progress,
          }),
        );
      }
      const trained = result.step - result.resumedFrom;
      const report = {
        format: 'get-distill-report/1',
        dataset: o.dataset,
        teacher:
          teacher.kind === 'onnx'
            ? { id: teacher.denoiser.id, kind: teacher.kind, path: o.teacher }
            : {
                id: teacher.denoiser.id,
                kind: teacher.kind,
                cached: teacher.cached,
                components: o.teacherComponents,
                rank: o.teacherRank,
              },
        sampler: {
          name: 'edm-heun',
          heunSteps: o.samplerSteps,
          nfe: heunNfe(o.samplerSteps),
          sigmaMin: 0.002,
          sigmaMax: 80,
          rho: 7,
        },
        preset: cfg.name,
        config: model,
        parameterCount: referenceParamCount(model),
        trainableParameters: result.params.size,
        pairs: {
          train: o.pairs,
          heldout: o.heldout,
          trainSeeds: [0, o.pairs],
          heldoutSeeds: [HELDOUT_SEED_START, HELDOUT_SEED_START + o.heldout],
          generatedThisRun: generated,
        },
        steps: result.step,
        resumedFromStep: result.resumedFrom,
        batch: o.batch,
        seed: o.seed,
        optimizer: { ...REFERENCE_ADAMW, lr: o.lr },
        ema,
        iterations: o.iterations,
        /** Σ_k 0.8^(K−k)·L1(x̂_k, x) of the last step, and its last-iterate L1 (what the progress bar shows). */
        finalTrainLoss: result.lastLoss,
        wallSeconds: { ...wall, total: round((performance.now() - t0) / 1000, 2) },
        // Rates only when this invocation did the work (a resumed run may reuse everything).
        datagenPairsPerSecond: generated > 0 ? round(generated / Math.max(1e-9, wall.datagen + wall.heldout), 1) : null,
        /** The engine (and backend) of this invocation's training steps; a resumed run may have used another. */
        trainEngine: result.engine,
        trainImagesPerSecond: trained > 0 ? round(result.imagesPerSecond, 1) : null,
        trainGflopsPerSecond:
          trained > 0 ? round(((result.flopsPerStep / o.batch) * result.imagesPerSecond) / 1e9, 1) : null,
        heldoutL1: {
          student: studentL1,
          classMean: baselines.classMean,
          ridge: baselines.ridge,
          studentOverClassMean: studentL1 / baselines.classMean,
          studentOverRidge: studentL1 / baselines.ridge,
          studentByClass: l1ByClass(sample.student, sample.held, teacher.denoiser.numClasses).map((v) => round(v, 4)),
        },
        /** FID / IS / precision-recall of teacher and student samples on the same seeds, vs the test split. */
        fid,
        artifacts: {
          samples: 'samples.png',
          pairs: 'pairs/manifest.json',
          heldout: 'heldout/manifest.json',
          checkpoints: 'checkpoints/latest.json',
          model: 'model.onnx',
          modelCard: 'model.json',
        },
      };
      await store.put(at('report.json'), text(`${JSON.stringify(report, null, 2)}\n`));
      await writeComparisonGrid(store, at('samples.png'), sample.held, sample.student, {
        teacherTitle: `teacher (${heunNfe(o.samplerSteps)} NFE)`,
        columns: o.gridColumns,
        conditional,
        shape: { channels: cfg.channels, height: cfg.imageSize, width: cfg.imageSize },
        classNames: train.classNames,
      });
      await log({ stage: 'report', ...report.heldoutL1 });
      const rate = (v: number | null, unit: string) => (v === null ? 'reused' : `${v} ${unit}`);
      progress.summary([
        ['run', o.out],
        ['teacher', `${teacher.denoiser.id}, ${heunNfe(o.samplerSteps)} NFE`],
        ['pairs', `${o.pairs} train + ${o.heldout} held-out (${rate(report.datagenPairsPerSecond, 'pairs/s')})`],
        [
          'student',
          `${cfg.name}, ${result.params.size.toLocaleString('en-US')} trainable parameters, ${result.step} steps (${rate(report.trainImagesPerSecond, 'images/s')}, ${result.engine})`,
        ],
        [
          'held-out L1',
          `student ${studentL1.toFixed(4)} | class mean ${baselines.classMean.toFixed(4)} (student ×${report.heldoutL1.studentOverClassMean.toFixed(2)}) | ridge ${baselines.ridge.toFixed(4)} (student ×${report.heldoutL1.studentOverRidge.toFixed(2)}); below ×1 the student wins`,
        ],
        ...(fid
          ? [
              [
                'FID',
                `student ${fid.student.fid.toFixed(3)} | teacher ${fid.teacher.fid.toFixed(3)} (student ×${fid.studentOverTeacher.toFixed(2)}) on ${fid.samples} samples vs ${fid.reference}, ${fid.features} features; precision/recall student ${fid.student.precision?.toFixed(3)}/${fid.student.recall?.toFixed(3)}, teacher ${fid.teacher.precision?.toFixed(3)}/${fid.teacher.recall?.toFixed(3)}`,
              ] as [string, string],
            ]
          : []),
        [
          'wall time',
          `${report.wallSeconds.total} s (${Object.entries(wall)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')})`,
        ],
        [
          'model',
          `${exported.modelUri} (sha256 ${exported.card.sha256.slice(0, 12)}…, ${(exported.card.bytes / 2 ** 20).toFixed(2)} MiB, step ${exported.card.step})`,
        ],
        ['outputs', 'model.onnx, model.json, samples.png, report.json, pairs/, heldout/, checkpoints/'],
      ]);
    } finally {
      await teacher.denoiser.close?.();
    }
  }
}
