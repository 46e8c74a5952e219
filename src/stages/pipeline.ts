/**
 * The local executor: runs dataset → teacher → pairs → GET training → one-step samples → report in
 * one process, with files under one run folder (DESIGN.md "The pipeline"). The run folder describes
 * itself (options.json, stats.jsonl) and resumes from itself (--resume).
 */
import { appendFile, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadDataset, type DatasetName } from '../data/datasets.js';
import { type PairBatch as StreamBatch, PairStream } from '../data/shards.js';
import { heunNfe } from '../edm/schedule.js';
import { meanAbs } from '../eval/baselines.js';
import { resolveConfig, referenceParamCount } from '../get/config.js';
import { REFERENCE_ADAMW, type EmaConfig } from '../train/optim.js';
import { UsageError } from '../util/errors.js';
import { makeDirs, writeFileAtomic } from '../util/fsutil.js';
import { Progress } from '../util/progress.js';
import { datagenStage, datasetDigest } from './datagen.js';
import { baselineL1, l1ByClass, sampleHeldout, writeComparisonGrid } from './report.js';
import { prepareTeacher } from './teacher.js';
import { trainStage, type BatchSource } from './train.js';

/** Options of `get-distill distill` (see src/cli/distill.ts for their meaning and defaults). */
export interface DistillOptions {
  out: string;
  resume: boolean;
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
  gridColumns: number;
}

/** First seed of the held-out pairs: far from any training seed range the CLI can make. */
export const HELDOUT_SEED_START = 2 ** 30;

/** Options that may change when resuming a run (everything else must match options.json). */
const RESUMABLE = new Set(['steps', 'threads', 'resume', 'out', 'cacheDir']);

async function prepareRunFolder(o: DistillOptions): Promise<void> {
  const entries = await readdir(o.out).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw new UsageError(`--out ${o.out}: cannot read it as a folder (${e.code}); give a folder path`);
  });
  if (entries && entries.length > 0) {
    if (!o.resume) throw new UsageError(`--out ${o.out} is not empty; pass --resume to continue that run, or choose a new folder (nothing was changed)`);
    const saved = await readFile(join(o.out, 'options.json'), 'utf8').then(JSON.parse, () => null);
    if (!saved) throw new UsageError(`--out ${o.out} holds files but no options.json; it is not a get-distill run folder (nothing was changed)`);
    for (const [k, v] of Object.entries(saved)) {
      if (!RESUMABLE.has(k) && JSON.stringify((o as unknown as Record<string, unknown>)[k]) !== JSON.stringify(v)) {
        throw new UsageError(`--resume: option ${k} is ${JSON.stringify((o as unknown as Record<string, unknown>)[k])} but the run in ${o.out} used ${JSON.stringify(v)}; pass the run's original options`);
      }
    }
  }
  await makeDirs(o.out).catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`--out ${o.out}: cannot create the run folder (${e.code ?? e.message}); choose a writable path`);
  });
  await writeFileAtomic(join(o.out, 'options.json'), `${JSON.stringify(o, null, 2)}\n`);
}

/** Adapts a PairStream (epochs, whole batches) to batch-by-step, resuming mid-epoch when asked. */
function streamSource(stream: PairStream): BatchSource {
  let it: AsyncGenerator<StreamBatch> | null = null;
  let next = -1;
  return {
    async batch(step) {
      const per = stream.batchesPerEpoch;
      if (per < 1) throw new UsageError(`--batch ${stream.options.batchSize} exceeds the ${stream.manifest.totalPairs} training pairs; lower --batch or raise --pairs`);
      if (step !== next || !it) it = stream.epoch(Math.floor(step / per), { startBatch: step % per });
      let r;
      try {
        r = await it.next();
        if (r.done) {
          it = stream.epoch(Math.floor(step / per), { startBatch: step % per });
          r = await it.next();
        }
      } catch (e) {
        // A shard changed or broke after the manifest was written: the user's data, not a bug.
        throw new UsageError(`${(e as Error).message}; regenerate the pairs (delete the shard and pairs/manifest.json, then --resume)`);
      }
      next = step + 1;
      if ((step + 1) % per === 0) it = null;
      const b = r.value;
      return { noise: b.noise, image: b.image, labels: b.label ?? null };
    },
  };
}

export async function runDistill(o: DistillOptions): Promise<void> {
  const t0 = performance.now();
  const wall: Record<string, number> = {};
  const timed = async <T>(stage: string, f: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await f();
    } finally {
      wall[stage] = Math.round((performance.now() - t) / 10) / 100;
    }
  };
  let cfg;
  try {
    cfg = resolveConfig(o.preset, { numClasses: 10, ...(o.patchSize ? { patchSize: o.patchSize } : {}) });
  } catch (e) {
    throw new UsageError(`--preset ${o.preset}${o.patchSize ? ` --patch-size ${o.patchSize}` : ''}: ${(e as Error).message}`);
  }
  await prepareRunFolder(o);
  const progress = new Progress();
  const log = (rec: Record<string, unknown>) => appendFile(join(o.out, 'stats.jsonl'), `${JSON.stringify({ time: new Date().toISOString(), ...rec })}\n`);

  const train = await timed('dataset', () => loadDataset(o.dataset, 'train'));
  progress.note(`dataset ${o.dataset}: ${train.n} training images, ${train.channels}×${train.height}×${train.width}, ${train.numClasses} classes`);

  const teacherBar = progress.bar('teacher fit', 'classes');
  const teacher = await timed('teacher', () => prepareTeacher({
    spec: o.teacher, components: o.teacherComponents, rank: o.teacherRank, cacheDir: o.cacheDir, threads: o.threads,
    onFitGroup: (g, n) => teacherBar.update(g + 1, n),
  }, train));
  teacherBar.stop();
  progress.note(`teacher ${teacher.denoiser.id} (${teacher.cached ? 'cached' : `fitted in ${teacher.fitSeconds.toFixed(1)} s`})`);
  if (teacher.denoiser.shape.height !== cfg.imageSize || teacher.denoiser.shape.channels !== cfg.channels) {
    throw new UsageError(`teacher images are ${teacher.denoiser.shape.channels}×${teacher.denoiser.shape.height}, preset ${cfg.name} expects ${cfg.channels}×${cfg.imageSize}`);
  }
  const conditional = teacher.denoiser.numClasses > 0;
  const model = { ...cfg, numClasses: teacher.denoiser.numClasses };

  try {
    const pairsDir = join(o.out, 'pairs');
    const genBar = progress.bar(`pairs (Heun, ${heunNfe(o.samplerSteps)} NFE)`, 'pairs');
    const manifest = await timed('datagen', () => datagenStage({
      teacher: teacher.denoiser, dataset: o.dataset, seeds: { start: 0, end: o.pairs }, shardSize: o.shardSize, outDir: pairsDir,
      samplerSteps: o.samplerSteps, onProgress: (d, n) => genBar.update(d, n),
    }));
    genBar.stop();
    const heldBar = progress.bar('held-out pairs', 'pairs');
    const heldDir = join(o.out, 'heldout');
    await timed('heldout', () => datagenStage({
      teacher: teacher.denoiser, dataset: o.dataset, seeds: { start: HELDOUT_SEED_START, end: HELDOUT_SEED_START + o.heldout },
      shardSize: o.shardSize, outDir: heldDir, samplerSteps: o.samplerSteps, onProgress: (d, n) => heldBar.update(d, n),
    }));
    heldBar.stop();
    const pairsPerSecond = (o.pairs + o.heldout) / Math.max(1e-9, (wall.datagen ?? 0) + (wall.heldout ?? 0));

    const ema: EmaConfig = o.emaDecay !== undefined
      ? { kind: 'constant', decay: o.emaDecay }
      : { kind: 'halflife', halflifeImages: o.emaHalflifeKimg * 1000, rampupRatio: o.emaRampup };
    const stream = await PairStream.open(pairsDir, { batchSize: o.batch, seed: o.seed, dropLast: true });
    const trainBar = progress.bar(`train ${cfg.name}`, 'steps');
    let lastLoss = NaN;
    const result = await timed('train', () => trainStage(streamSource(stream), {
      config: model, steps: o.steps, batch: o.batch, iterations: o.iterations,
      optimizer: { ...REFERENCE_ADAMW, lr: o.lr }, ema, seed: o.seed,
      checkpointDir: join(o.out, 'checkpoints'), checkpointEvery: o.checkpointEvery, keep: o.keep, resume: o.resume,
      dataManifestSha256: datasetDigest(manifest), threads: o.threads,
      onStep: (s) => {
        lastLoss = s.loss;
        trainBar.update(s.step, o.steps, { loss: s.l1Last.toFixed(4) });
        if (s.step % 100 === 0) void log({ stage: 'train', step: s.step, loss: s.loss, l1_last: s.l1Last, step_seconds: s.stepSeconds });
      },
    }));
    trainBar.stop();

    const sample = await timed('sample', () => sampleHeldout(model, (n) => result.ema.view(n), heldDir, o.iterations, o.threads));

    const baselines = await timed('baselines', () => baselineL1(pairsDir, sample.held, teacher.denoiser.numClasses));
    const studentL1 = meanAbs(sample.student, sample.held.image);

    await writeComparisonGrid(join(o.out, 'samples.png'), sample.held, sample.student, {
      teacherTitle: `teacher (${heunNfe(o.samplerSteps)} NFE)`, columns: o.gridColumns, conditional,
      shape: { channels: cfg.channels, height: cfg.imageSize, width: cfg.imageSize }, classNames: train.classNames,
    });

    const trainable = result.params.size;
    const report = {
      format: 'get-distill-report/1',
      dataset: o.dataset,
      teacher: { id: teacher.denoiser.id, kind: teacher.kind, cached: teacher.cached, components: o.teacherComponents, rank: o.teacherRank },
      sampler: { name: 'edm-heun', steps: o.samplerSteps, nfe: heunNfe(o.samplerSteps), sigmaMin: 0.002, sigmaMax: 80, rho: 7 },
      preset: cfg.name,
      config: model,
      parameterCount: referenceParamCount(model),
      trainableParameters: trainable,
      pairs: { train: o.pairs, heldout: o.heldout, trainSeeds: [0, o.pairs], heldoutSeeds: [HELDOUT_SEED_START, HELDOUT_SEED_START + o.heldout] },
      steps: result.step,
      resumedFromStep: result.resumedFrom,
      batch: o.batch,
      optimizer: { ...REFERENCE_ADAMW, lr: o.lr },
      ema,
      iterations: o.iterations,
      finalTrainLoss: Number.isFinite(lastLoss) ? lastLoss : result.lastLoss,
      wallSeconds: { ...wall, total: Math.round((performance.now() - t0) / 10) / 100 },
      datagenPairsPerSecond: Math.round(pairsPerSecond * 10) / 10,
      trainImagesPerSecond: Math.round(result.imagesPerSecond * 10) / 10,
      trainGflopsPerSecond: result.imagesPerSecond > 0 ? Math.round((result.flopsPerStep / o.batch) * result.imagesPerSecond / 1e8) / 10 : 0,
      heldoutL1: {
        student: studentL1,
        classMean: baselines.classMean,
        ridge: baselines.ridge,
        studentOverClassMean: studentL1 / baselines.classMean,
        studentOverRidge: studentL1 / baselines.ridge,
        studentByClass: l1ByClass(sample.student, sample.held, teacher.denoiser.numClasses).map((v) => Math.round(v * 1e4) / 1e4),
      },
      artifacts: { samples: 'samples.png', pairs: 'pairs/manifest.json', heldout: 'heldout/manifest.json', checkpoints: 'checkpoints/latest.json' },
    };
    await writeFileAtomic(join(o.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    await log({ stage: 'report', ...report.heldoutL1 });
    progress.summary([
      ['run folder', o.out],
      ['teacher', `${teacher.denoiser.id}, ${heunNfe(o.samplerSteps)} NFE`],
      ['pairs', `${o.pairs} train + ${o.heldout} held-out (${report.datagenPairsPerSecond} pairs/s)`],
      ['student', `${cfg.name}, ${trainable.toLocaleString('en-US')} trainable parameters, ${result.step} steps (${report.trainImagesPerSecond} images/s)`],
      ['held-out L1', `student ${studentL1.toFixed(4)} | class mean ${baselines.classMean.toFixed(4)} (×${report.heldoutL1.studentOverClassMean.toFixed(2)}) | ridge ${baselines.ridge.toFixed(4)} (×${report.heldoutL1.studentOverRidge.toFixed(2)})`],
      ['wall time', `${report.wallSeconds.total} s (${Object.entries(wall).map(([k, v]) => `${k} ${v}`).join(', ')})`],
      ['outputs', 'samples.png, report.json, pairs/, heldout/, checkpoints/'],
    ]);
  } finally {
    await teacher.denoiser.close?.();
  }
}
