/**
 * The local executor: runs dataset → teacher → pairs → GET training → one-step samples → export
 * (model.onnx + model.json) → report in one process, with every artifact under one run URI (a folder,
 * file:// or s3://; docs/architecture.md).
 * The run describes itself (options.json, stats.jsonl) and resumes from itself (--resume).
 */
import { loadDataset, type ImageDataset } from '../data/datasets.js';
import { PairStream } from '../data/pair-stream.js';
import type { DatasetManifest } from '../data/shards.js';
import type { SeedRange } from '../data/seeds.js';
import type { Denoiser } from '../edm/denoiser.js';
import { heunNfe } from '../edm/schedule.js';
import { resolveConfig, type GetConfig } from '../get/config.js';
import { REFERENCE_ADAMW, type AdamWConfig, type EmaConfig } from '../train/optim.js';
import { type DistillOptions, HELDOUT_SEED_START } from '../spec/index.js';
import { type ObjectStore, StoreError, joinUri, storeFor } from '../store/index.js';
import { Interrupted, UsageError } from '../util/errors.js';
import { type Bar, Progress } from '../util/progress.js';
import { datagenStage, datasetDigest, type DatagenResult } from './datagen.js';
import { EVAL_SEED_START, compareTeacherStudent, type FidComparison } from './eval.js';
import { exportStage, type ExportResult } from './export.js';
import {
  type HeldoutSample,
  baselineL1,
  buildReport,
  heldoutL1Record,
  sampleHeldout,
  summaryRows,
  writeComparisonGrid,
} from './report.js';
import { StatsLog } from './stats-log.js';
import { prepareTeacher } from './teacher.js';
import { streamSource, trainStage, type TrainOptions, type TrainResult } from './train.js';
import { checkRanks, type RankJob, trainOnRanks } from './train-ranks.js';

/** Options that may change when resuming a run (everything else must match options.json). */
const RESUMABLE = new Set([
  'steps',
  'threads',
  'engine',
  'tfjsBackend',
  'ranks',
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
        `--out ${o.out} is not empty; pass --resume to continue that run, or choose a new folder ` +
          '(nothing was changed)',
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
      `--out ${o.out}: options.json is missing or unreadable (${(e as Error).message.split('\n')[0]}); ` +
        'it is not a get-distill run folder',
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
        `--resume: option ${k} is ${JSON.stringify(now[k])} but the run in ${o.out} used ` +
          `${JSON.stringify(saved[k] ?? null)}; drop the option to keep the run's value, ` +
          'or remove the folder to start over',
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

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

/**
 * SIGINT/SIGTERM while a run is in progress: the stage in progress stops at its next safe point (a
 * sub-batch of pairs, a training step + checkpoint); a second signal exits at once (130).
 */
interface StopSignals {
  /** The first signal's name (e.g. `SIGINT`), or null while none came. */
  readonly signal: string | null;
  /** Polled by the stages at their safe points. */
  readonly shouldStop: () => boolean;
  /** @throws Interrupted naming `where` (e.g. `after training`) when a signal came. */
  check(where: string): void;
  /** Removes the process listeners. */
  dispose(): void;
}

function watchStopSignals(progress: Progress): StopSignals {
  let stop: string | null = null;
  const onSignal = (sig: string) => {
    if (stop) {
      progress.note(`\nsecond ${sig}: exiting now; finished shards and checkpoints are kept, continue with --resume`);
      process.exit(130);
    }
    stop = sig;
    progress.note(`\n${sig}: stopping at the next safe point (press again to exit at once) …`);
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  return {
    get signal() {
      return stop;
    },
    shouldStop: () => stop !== null,
    check(where) {
      if (stop) throw new Interrupted(`${stop} ${where}; continue with --resume`);
    },
    dispose() {
      process.removeListener('SIGINT', onSignal).removeListener('SIGTERM', onSignal);
    },
  };
}

/** What every step of a run reads: built once by {@link openRun}. */
interface RunContext {
  /** The options, completed from options.json when resuming. */
  readonly o: DistillOptions;
  /** The preset's model config (numClasses 10 until the teacher sets it). */
  readonly cfg: GetConfig;
  readonly store: ObjectStore;
  /** The URI of `key` (e.g. `pairs`, `report.json`) inside the run folder. */
  readonly at: (key: string) => string;
  readonly resuming: boolean;
  /** The seeds of the training and held-out pairs. */
  readonly seeds: { readonly train: SeedRange; readonly heldout: SeedRange };
  readonly progress: Progress;
  readonly stats: StatsLog;
  readonly stop: StopSignals;
  /** performance.now() when the run started, and each timed step's wall seconds in the order they ran. */
  readonly t0: number;
  readonly wall: Record<string, number>;
  /** Writes options.json (the options without --resume). */
  saveOptions(): Promise<void>;
}

/** Runs `f` as the step `stage`, recording its wall seconds (also when it throws). */
async function timed<T>(run: RunContext, stage: string, f: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await f();
  } finally {
    run.wall[stage] = round((performance.now() - t) / 1000, 2);
  }
}

/**
 * Runs the whole pipeline into the run URI `o.out`, one step per stage: open the run → dataset →
 * teacher → pairs (train + held-out) → train → held-out samples and baselines → export → FID → report.
 * @param explicit the options given on the command line; with --resume the others come from the run's
 *   options.json.
 * @throws UsageError (exit 2) for bad input, Interrupted (exit 130) after SIGINT/SIGTERM.
 */
export async function runDistill(o: DistillOptions, explicit: ReadonlySet<string> = new Set()): Promise<void> {
  const opened = await openRun(o, explicit);
  const stop = watchStopSignals(opened.progress);
  try {
    await runSteps({ ...opened, stop });
  } finally {
    stop.dispose();
  }
}

/** The steps after the run is open; the teacher is closed whatever happens. */
async function runSteps(run: RunContext): Promise<void> {
  const train = await timed(run, 'dataset', () => loadDataset(run.o.dataset, 'train'));
  run.progress.note(
    `dataset ${run.o.dataset}: ${train.n} training images, ${train.channels}×${train.height}×${train.width}, ` +
      `${train.numClasses} classes`,
  );
  const teacher = await teacherStep(run, train);
  try {
    run.stop.check('after the teacher stage');
    // Written once the teacher works, so a run that fails to start leaves nothing behind; a resumed
    // run records its new --steps only once it has trained.
    if (!run.resuming) await run.saveOptions();
    const model = studentConfig(run.cfg, teacher.denoiser);
    const pairs = await pairsStep(run, teacher.denoiser);
    const trained = await trainStep(run, model, pairs.manifest);
    run.stop.check('after training');
    const sample = await heldoutStep(run, model, trained, teacher.denoiser.numClasses);
    const exported = await exportStep(run);
    const fid = await fidStep(run, teacher.denoiser, exported);
    await reportStep(run, { train, teacher, model, generated: pairs.generated, trained, sample, exported, fid });
  } finally {
    await teacher.denoiser.close?.();
  }
}

/**
 * Checks the options and the run folder (resume), and opens the run's stats log.
 * @throws UsageError for a bad preset or patch size, or a run folder that does not fit (checkRunFolder).
 */
async function openRun(o: DistillOptions, explicit: ReadonlySet<string>): Promise<Omit<RunContext, 'stop'>> {
  const t0 = performance.now();
  let cfg = resolveModel(o); // bad flags fail before any I/O
  const store = storeFor(o.out);
  const at = (key: string) => joinUri(o.out, key);
  const resuming = await checkRunFolder(store, o, explicit);
  if (resuming) cfg = resolveModel(o); // --preset / --patch-size not given again come from options.json
  checkRanks(o.ranks ?? 1, o.batch); // before any work: an uneven batch or a machine without Open MPI
  const { resume: _resume, ...recorded } = o;
  const progress = new Progress();
  const stats = await StatsLog.open(store, at('stats.jsonl'), resuming, (msg) => progress.note(msg));
  return {
    o,
    cfg,
    store,
    at,
    resuming,
    seeds: {
      train: { start: 0, end: o.pairs },
      heldout: { start: HELDOUT_SEED_START, end: HELDOUT_SEED_START + o.heldout },
    },
    progress,
    stats,
    t0,
    wall: {},
    saveOptions: async () => {
      await store.put(at('options.json'), new TextEncoder().encode(`${JSON.stringify(recorded, null, 2)}\n`));
    },
  };
}

/**
 * The model config of --preset (and --patch-size), for 10 classes.
 * @throws UsageError for an unknown preset, a patch size that does not divide the image, or a preset
 *   whose image shape the embedded teacher cannot make.
 */
function resolveModel(o: DistillOptions): GetConfig {
  let c: GetConfig;
  try {
    c = resolveConfig(o.preset, { numClasses: 10, ...(o.patchSize ? { patchSize: o.patchSize } : {}) });
  } catch (e) {
    throw new UsageError(
      `--preset ${o.preset}${o.patchSize ? ` --patch-size ${o.patchSize}` : ''}: ${(e as Error).message}`,
    );
  }
  if (o.teacher === 'mixture' && (c.channels !== 1 || c.imageSize !== 32)) {
    throw new UsageError(
      `--preset ${o.preset} is for ${c.channels}×${c.imageSize}×${c.imageSize} images, the embedded teacher ` +
        `makes 1×32×32 (${o.dataset}); pick a CPU preset (GET-CPU-*) or an ONNX teacher`,
    );
  }
  return c;
}

type Teacher = Awaited<ReturnType<typeof prepareTeacher>>;

/** Fits (or loads the cached fit of) the mixture teacher, or opens the ONNX one. */
async function teacherStep(run: RunContext, train: ImageDataset): Promise<Teacher> {
  const { o, progress } = run;
  const bar = progress.bar('teacher fit', 'classes');
  const teacher = await timed(run, 'teacher', () =>
    prepareTeacher(
      {
        spec: o.teacher,
        components: o.teacherComponents,
        rank: o.teacherRank,
        cacheDir: o.cacheDir,
        threads: o.threads,
        onFitGroup: (g, n) => bar.update(g + 1, n),
      },
      train,
    ),
  );
  bar.stop();
  const how =
    teacher.kind === 'onnx'
      ? 'ONNX network'
      : teacher.cached
        ? 'cached fit'
        : `fitted in ${teacher.fitSeconds.toFixed(1)} s`;
  progress.note(`teacher ${teacher.denoiser.id} (${how})`);
  return teacher;
}

/**
 * The student's config: the preset with the teacher's class count.
 * @throws UsageError when the teacher's images are not the preset's shape.
 */
function studentConfig(cfg: GetConfig, teacher: Denoiser): GetConfig {
  const { channels, height, width } = teacher.shape;
  if (height !== cfg.imageSize || channels !== cfg.channels) {
    throw new UsageError(
      `teacher images are ${channels}×${height}×${width}, ` +
        `preset ${cfg.name} expects ${cfg.channels}×${cfg.imageSize}×${cfg.imageSize}`,
    );
  }
  return { ...cfg, numClasses: teacher.numClasses };
}

/**
 * Generates (or reuses the verified shards of) the training pairs, then the held-out pairs.
 * @returns the training pairs' manifest and the pairs sampled by this invocation.
 * @throws Interrupted after SIGINT/SIGTERM (finished shards are kept).
 */
async function pairsStep(
  run: RunContext,
  teacher: Denoiser,
): Promise<{ manifest: DatasetManifest; generated: number }> {
  const nfe = heunNfe(run.o.samplerSteps);
  const pairsDir = run.at('pairs');
  const gen = await generatePairs(run, teacher, 'datagen', `pairs (Heun, ${nfe} NFE)`, run.seeds.train, pairsDir);
  if (gen.interrupted || !gen.manifest)
    throw new Interrupted(
      `${run.stop.signal} during pair generation: finished shards are kept in ${pairsDir}; continue with --resume`,
    );
  const heldDir = run.at('heldout');
  const held = await generatePairs(run, teacher, 'heldout', 'held-out pairs', run.seeds.heldout, heldDir);
  if (held.interrupted)
    throw new Interrupted(
      `${run.stop.signal} during held-out pair generation: finished shards are kept in ${heldDir}; ` +
        'continue with --resume',
    );
  return { manifest: gen.manifest, generated: gen.generated + held.generated };
}

/** The datagen stage over `seeds` into `outDir`, timed as `stage`, with a progress bar titled `title`. */
async function generatePairs(
  run: RunContext,
  teacher: Denoiser,
  stage: string,
  title: string,
  seeds: SeedRange,
  outDir: string,
): Promise<DatagenResult> {
  const bar = run.progress.bar(title, 'pairs');
  const result = await timed(run, stage, () =>
    datagenStage({
      teacher,
      dataset: run.o.dataset,
      seeds,
      shardSize: run.o.shardSize,
      store: run.store,
      outDir,
      samplerSteps: run.o.samplerSteps,
      onProgress: (d, n) => bar.update(d, n),
      onRegenerate: (uri, problem) => run.progress.note(`regenerating ${uri}: ${problem}`),
      shouldStop: run.stop.shouldStop,
    }),
  );
  bar.stop();
  return result;
}

/** AdamW with the reference hyperparameters and --lr. */
const optimizerOf = (o: DistillOptions): AdamWConfig => ({ ...REFERENCE_ADAMW, lr: o.lr });

/** --ema-decay (a constant decay) when given, else the half-life EMA of --ema-halflife-kimg / --ema-rampup. */
const emaOf = (o: DistillOptions): EmaConfig =>
  o.emaDecay !== undefined
    ? { kind: 'constant', decay: o.emaDecay }
    : { kind: 'halflife', halflifeImages: o.emaHalflifeKimg * 1000, rampupRatio: o.emaRampup };

/**
 * Trains the student on the training pairs up to --steps, resuming from the run's checkpoints; a
 * resumed run records its options once it has trained.
 * @throws Interrupted after SIGINT/SIGTERM (a checkpoint was saved); UsageError for a corrupt shard.
 */
async function trainStep(run: RunContext, model: GetConfig, pairs: DatasetManifest): Promise<TrainResult> {
  const { o, at } = run;
  const stream = await PairStream.open(run.store, at('pairs'), { batchSize: o.batch, seed: o.seed, dropLast: true });
  const bar = run.progress.bar(`train ${run.cfg.name}`, 'steps');
  let result: TrainResult;
  const opts = trainOptions(run, model, pairs, bar);
  const ranks = o.ranks ?? 1;
  try {
    result = await timed(run, 'train', () =>
      ranks > 1
        ? trainOnRanks(rankJob(opts, at('pairs')), {
            ranks,
            onStep: opts.onStep,
            log: opts.log,
          })
        : trainStage(streamSource(stream, userData), opts),
    );
  } finally {
    bar.stop();
  }
  if (run.resuming) await run.saveOptions();
  if (result.interrupted)
    throw new Interrupted(
      `${run.stop.signal} at step ${result.step}: checkpoint saved in ${at('checkpoints')}; continue with --resume`,
    );
  return result;
}

/** What the ranks of --ranks N need of the train stage's options: the data, not the callbacks or the store. */
function rankJob(t: TrainOptions, pairs: string): RankJob {
  const { store: _s, log: _l, onStep: _o, shouldStop: _st, comm: _c, batchField: _b, config, ...data } = t;
  return { pairs, config: config as unknown as RankJob['config'], ...data };
}

/** The train stage's options; its steps go to the bar and (every 10th) to stats.jsonl. */
function trainOptions(run: RunContext, model: GetConfig, pairs: DatasetManifest, bar: Bar): TrainOptions {
  const { o, stats } = run;
  let firstStep: number | null = null;
  return {
    config: model,
    steps: o.steps,
    batch: o.batch,
    iterations: o.iterations,
    optimizer: optimizerOf(o),
    ema: emaOf(o),
    seed: o.seed,
    store: run.store,
    checkpointDir: run.at('checkpoints'),
    checkpointEvery: o.checkpointEvery,
    keep: o.keep,
    resume: run.resuming,
    dataManifestSha256: datasetDigest(pairs),
    threads: o.threads,
    engine: o.engine,
    tfjsBackend: o.tfjsBackend,
    log: (msg) => run.progress.note(msg),
    onStep: (s) => {
      firstStep ??= s.step;
      if (s.step === firstStep) stats.forgetTrainStepsFrom(s.step); // logged by the run that was killed
      bar.update(s.step, o.steps, { l1: s.l1Last.toFixed(4) });
      if (s.step % 10 === 0)
        void stats.log({ stage: 'train', step: s.step, loss: s.loss, l1_last: s.l1Last, step_seconds: s.stepSeconds });
    },
    shouldStop: run.stop.shouldStop,
  };
}

/** The student's one-step samples of the held-out seeds, and the baselines' held-out L1. */
async function heldoutStep(
  run: RunContext,
  model: GetConfig,
  trained: TrainResult,
  numClasses: number,
): Promise<HeldoutSample & { baselines: { classMean: number; ridge: number } }> {
  const { o, store, at, progress } = run;
  progress.note('sampling the held-out seeds in one step …');
  const sample = await timed(run, 'sample', () =>
    userData(() => sampleHeldout(model, (n) => trained.ema.view(n), store, at('heldout'), o.iterations, o.threads)),
  );
  progress.note('fitting the baselines (class mean, ridge) …');
  const baselines = await timed(run, 'baselines', () =>
    userData(() => baselineL1(store, at('pairs'), sample.held, numClasses)),
  );
  return { ...sample, baselines };
}

/**
 * Exports the served artifact: the latest checkpoint's EMA (= the trained EMA, saved at the last step),
 * before report.json so the report never names a model that is not there.
 */
async function exportStep(run: RunContext): Promise<ExportResult> {
  run.progress.note('exporting model.onnx …');
  return timed(run, 'export', () => exportStage({ checkpoint: run.at('checkpoints'), out: run.o.out }));
}

/**
 * FID / IS / precision-recall of teacher and student samples on the same --fid-samples seeds (null
 * when --fid-samples is 0).
 * @throws Interrupted after SIGINT/SIGTERM.
 */
async function fidStep(run: RunContext, teacher: Denoiser, exported: ExportResult): Promise<FidComparison | null> {
  const { o, at } = run;
  if (o.fidSamples <= 0) return null;
  run.stop.check('after export');
  const title = `FID teacher samples (${heunNfe(o.samplerSteps)} NFE)`;
  const seeds = { start: EVAL_SEED_START, end: EVAL_SEED_START + o.fidSamples };
  const teacherPairs = at(`eval/teacher-${o.fidSamples}`);
  const evalPairs = await generatePairs(run, teacher, 'fid_teacher_samples', title, seeds, teacherPairs);
  if (evalPairs.interrupted)
    throw new Interrupted(
      `${run.stop.signal} while sampling the teacher for FID: finished shards are kept; continue with --resume`,
    );
  return timed(run, 'fid', () =>
    compareTeacherStudent({
      teacherPairs,
      studentModel: exported.modelUri,
      dataset: o.dataset,
      samples: o.fidSamples,
      seedStart: EVAL_SEED_START,
      saveReference: at(`eval/${o.dataset}-test.npz`),
      threads: o.threads,
      progress: run.progress,
    }),
  );
}

/** What the report step reads: the results of the steps before it. */
interface RunResults {
  readonly train: ImageDataset;
  readonly teacher: Teacher;
  readonly model: GetConfig;
  /** Pairs sampled by this invocation (training + held-out). */
  readonly generated: number;
  readonly trained: TrainResult;
  readonly sample: Awaited<ReturnType<typeof heldoutStep>>;
  readonly exported: ExportResult;
  readonly fid: FidComparison | null;
}

/** Writes report.json, then samples.png, logs the held-out L1 and prints the summary. */
async function reportStep(run: RunContext, r: RunResults): Promise<void> {
  const { o, cfg, at } = run;
  const { denoiser } = r.teacher;
  const report = buildReport({
    options: o,
    teacher: { id: denoiser.id, kind: r.teacher.kind, cached: r.teacher.cached },
    seeds: run.seeds,
    preset: cfg.name,
    model: r.model,
    optimizer: optimizerOf(o),
    ema: emaOf(o),
    trained: r.trained,
    generated: r.generated,
    wall: run.wall,
    totalSeconds: (performance.now() - run.t0) / 1000,
    heldoutL1: heldoutL1Record(r.sample, r.sample.baselines, denoiser.numClasses),
    fid: r.fid,
  });
  await run.store.put(at('report.json'), new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`));
  await writeComparisonGrid(run.store, at('samples.png'), r.sample.held, r.sample.student, {
    teacherTitle: `teacher (${heunNfe(o.samplerSteps)} NFE)`,
    columns: o.gridColumns,
    conditional: denoiser.numClasses > 0,
    shape: { channels: cfg.channels, height: cfg.imageSize, width: cfg.imageSize },
    classNames: r.train.classNames,
  });
  await run.stats.log({ stage: 'report', ...report.heldoutL1 });
  run.progress.summary(summaryRows(report, o.out, run.wall, r.exported));
}
