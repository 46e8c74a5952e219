/**
 * The report stage's pieces: one-step samples of the held-out pairs, the baselines' held-out L1, the
 * teacher-vs-student grid (samples.png), report.json's content and the run's closing summary.
 */
import { readManifest, readShard } from '../data/shards.js';
import { renderSampleGrid } from '../data/png.js';
import {
  classMeans,
  fitRidge,
  meanAbs,
  meanImage,
  predictClassMean,
  predictRidge,
  type FlatPairs,
} from '../eval/baselines.js';
import type { SeedRange } from '../data/seeds.js';
import { heunNfe } from '../edm/schedule.js';
import { referenceParamCount, type GetConfig } from '../get/config.js';
import { GetSampler } from '../get/sampler.js';
import type { AdamWConfig, EmaConfig } from '../train/optim.js';
import { type ObjectStore, joinUri } from '../store/index.js';
import type { FidComparison } from './eval.js';
import type { TrainResult } from './train.js';

/** Pairs with their seeds, as flat arrays (see FlatPairs). */
export type SeededPairs = FlatPairs & { readonly seeds: Int32Array };

/**
 * Loads every pair of a dataset (folder URI `dir` in `store`) into memory, verifying each shard's
 * sha256: the held-out set, and the training set for the baselines (~268 MB of float32 at the
 * default 32,768 pairs).
 * @throws Error naming the shard's URI when one is missing or corrupt.
 */
export async function loadAllPairs(store: ObjectStore, dir: string): Promise<SeededPairs> {
  const m = await readManifest(store, dir);
  const P = m.imageShape.channels * m.imageShape.height * m.imageShape.width;
  const noise = new Float32Array(m.totalPairs * P);
  const image = new Float32Array(m.totalPairs * P);
  const labels = new Int32Array(m.totalPairs);
  const seeds = new Int32Array(m.totalPairs);
  let i = 0;
  for (const e of m.shards) {
    const s = await readShard(store, joinUri(dir, e.file), e.sha256);
    noise.set(s.noise, i * P);
    image.set(s.image, i * P);
    if (s.label) labels.set(s.label, i);
    for (let k = 0; k < e.count; k++) seeds[i + k] = e.seedStart + k;
    i += e.count;
  }
  return { n: m.totalPairs, pixels: P, noise, image, labels, seeds };
}

/** The held-out pairs and the student's one-step images of them (float32 [n, C, H, W], same order). */
export interface HeldoutSample {
  readonly held: SeededPairs;
  readonly student: Float32Array;
}

/** The student's one-step images [n, C, H, W] for every held-out pair (z₀ from each pair's seed). */
export async function sampleHeldout(
  cfg: GetConfig,
  weights: (name: string) => Float32Array,
  store: ObjectStore,
  heldDir: string,
  iterations: number,
  threads?: number,
): Promise<HeldoutSample> {
  const held = await loadAllPairs(store, heldDir);
  const sampler = await GetSampler.create(cfg, weights, iterations, threads);
  try {
    const student = new Float32Array(held.noise.length);
    const B = 64;
    for (let i = 0; i < held.n; i += B) {
      const m = Math.min(B, held.n - i);
      const labels = cfg.numClasses > 0 ? held.labels.subarray(i, i + m) : null;
      const r = await sampler.generate(held.noise.subarray(i * held.pixels, (i + m) * held.pixels), labels, [
        ...held.seeds.subarray(i, i + m),
      ]);
      student.set(r.image, i * held.pixels);
    }
    return { held, student };
  } finally {
    await sampler.close();
  }
}

/** Held-out L1 of the per-class mean teacher image and of per-class ridge regression, fitted on the training pairs. */
export async function baselineL1(
  store: ObjectStore,
  pairsDir: string,
  held: FlatPairs,
  numClasses: number,
): Promise<{ classMean: number; ridge: number }> {
  const train = await loadAllPairs(store, pairsDir);
  const K = Math.max(1, numClasses);
  const classMean = meanAbs(predictClassMean(classMeans(train, K), held), held.image);
  const ridge = meanAbs(await predictRidge(await fitRidge(train, K), held, meanImage(train)), held.image);
  return { classMean, ridge };
}

/** Mean |pred − target| per class [K] (NaN for a class without samples). */
export function l1ByClass(pred: Float32Array, held: FlatPairs, numClasses: number): number[] {
  const P = held.pixels;
  const sum = new Float64Array(Math.max(1, numClasses));
  const n = new Float64Array(sum.length);
  for (let i = 0; i < held.n; i++) {
    const c = numClasses > 0 ? held.labels[i] : 0;
    let s = 0;
    for (let j = i * P; j < (i + 1) * P; j++) s += Math.abs(pred[j] - held.image[j]);
    sum[c] += s / P;
    n[c] += 1;
  }
  return [...sum].map((v, c) => (n[c] > 0 ? v / n[c] : NaN));
}

export interface GridOptions {
  readonly teacherTitle: string;
  /** Samples per class row. */
  readonly columns: number;
  readonly conditional: boolean;
  readonly shape: { channels: number; height: number; width: number };
  readonly classNames: readonly string[];
}

/**
 * samples.png: teacher and student side by side for the same noise, one row per class (the first
 * `columns` held-out pairs of each class, in seed order), written to the object `uri`.
 */
export async function writeComparisonGrid(
  store: ObjectStore,
  uri: string,
  held: SeededPairs,
  student: Float32Array,
  o: GridOptions,
): Promise<void> {
  const P = held.pixels;
  const classOf = (i: number) => (o.conditional ? held.labels[i] : 0);
  const count = new Map<number, number>();
  const pick: number[] = [];
  for (let i = 0; i < held.n; i++) {
    const c = classOf(i);
    if ((count.get(c) ?? 0) < o.columns) {
      pick.push(i);
      count.set(c, (count.get(c) ?? 0) + 1);
    }
  }
  pick.sort((a, b) => classOf(a) - classOf(b) || a - b);
  const gather = (a: Float32Array) => {
    const g = new Float32Array(pick.length * P);
    pick.forEach((i, k) => g.set(a.subarray(i * P, (i + 1) * P), k * P));
    return g;
  };
  const { png } = renderSampleGrid({
    panels: [
      { title: o.teacherTitle, images: gather(held.image) },
      { title: 'student (1 step)', images: gather(student) },
    ],
    shape: o.shape,
    ...(o.conditional ? { labels: Int32Array.from(pick, classOf), classNames: o.classNames } : {}),
    columns: o.columns,
  });
  await store.put(uri, png);
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

/** The options report.json records (a subset of `get-distill distill`'s; see src/cli/distill.ts). */
export interface ReportOptions {
  readonly dataset: string;
  readonly teacher: string;
  readonly teacherComponents: number;
  readonly teacherRank: number;
  readonly samplerSteps: number;
  readonly pairs: number;
  readonly heldout: number;
  readonly batch: number;
  readonly seed: number;
  readonly iterations: number;
}

/** report.json's held-out L1 block: mean |x̂ − x| of the student and the baselines, and their ratios. */
export interface HeldoutL1 {
  readonly student: number;
  readonly classMean: number;
  readonly ridge: number;
  readonly studentOverClassMean: number;
  readonly studentOverRidge: number;
  /** Per class (NaN, written as null, for a class without held-out pairs), rounded to 4 digits. */
  readonly studentByClass: number[];
}

/** The held-out L1 block from the student's samples and the baselines' L1 (baselineL1). */
export function heldoutL1Record(
  s: HeldoutSample,
  baselines: { classMean: number; ridge: number },
  numClasses: number,
): HeldoutL1 {
  const student = meanAbs(s.student, s.held.image);
  return {
    student,
    classMean: baselines.classMean,
    ridge: baselines.ridge,
    studentOverClassMean: student / baselines.classMean,
    studentOverRidge: student / baselines.ridge,
    studentByClass: l1ByClass(s.student, s.held, numClasses).map((v) => round(v, 4)),
  };
}

/** What a run's report is made of: its options and the results of its steps. */
export interface ReportInput {
  readonly options: ReportOptions;
  readonly teacher: { readonly id: string; readonly kind: 'mixture' | 'onnx'; readonly cached: boolean };
  readonly seeds: { readonly train: SeedRange; readonly heldout: SeedRange };
  /** The preset's name, and the student's config (the preset with the teacher's class count). */
  readonly preset: string;
  readonly model: GetConfig;
  readonly optimizer: AdamWConfig;
  readonly ema: EmaConfig;
  readonly trained: TrainResult;
  /** Pairs sampled by this invocation (training + held-out; 0 when a resumed run reused them all). */
  readonly generated: number;
  /** Wall seconds of each timed step (keys `datagen` and `heldout` among them), and of the whole run. */
  readonly wall: Readonly<Record<string, number>>;
  readonly totalSeconds: number;
  readonly heldoutL1: HeldoutL1;
  readonly fid: FidComparison | null;
}

/** report.json (format get-distill-report/1; docs/data-contracts.md). Rates are null when this run reused the work. */
export function buildReport(i: ReportInput) {
  const { options: o, trained: r } = i;
  return {
    format: 'get-distill-report/1',
    dataset: o.dataset,
    teacher:
      i.teacher.kind === 'onnx'
        ? { id: i.teacher.id, kind: i.teacher.kind, path: o.teacher }
        : { ...i.teacher, components: o.teacherComponents, rank: o.teacherRank },
    sampler: {
      name: 'edm-heun',
      heunSteps: o.samplerSteps,
      nfe: heunNfe(o.samplerSteps),
      sigmaMin: 0.002,
      sigmaMax: 80,
      rho: 7,
    },
    preset: i.preset,
    config: i.model,
    parameterCount: referenceParamCount(i.model),
    trainableParameters: r.params.size,
    pairs: {
      train: o.pairs,
      heldout: o.heldout,
      trainSeeds: [i.seeds.train.start, i.seeds.train.end],
      heldoutSeeds: [i.seeds.heldout.start, i.seeds.heldout.end],
      generatedThisRun: i.generated,
    },
    steps: r.step,
    resumedFromStep: r.resumedFrom,
    batch: o.batch,
    seed: o.seed,
    optimizer: i.optimizer,
    ema: i.ema,
    iterations: o.iterations,
    /** Σ_k 0.8^(K−k)·L1(x̂_k, x) of the last step, and its last-iterate L1 (what the progress bar shows). */
    finalTrainLoss: r.lastLoss,
    wallSeconds: { ...i.wall, total: round(i.totalSeconds, 2) },
    ...rates(i),
    heldoutL1: i.heldoutL1,
    /** FID / IS / precision-recall of teacher and student samples on the same seeds, vs the test split. */
    fid: i.fid,
    artifacts: {
      samples: 'samples.png',
      pairs: 'pairs/manifest.json',
      heldout: 'heldout/manifest.json',
      checkpoints: 'checkpoints/latest.json',
      model: 'model.onnx',
      modelCard: 'model.json',
    },
  };
}

/** The report's content. */
export type DistillReport = ReturnType<typeof buildReport>;

/** Throughput of this invocation's work (null where it did none: a resumed run may reuse everything). */
function rates(i: ReportInput) {
  const { trained: r, generated, wall } = i;
  const trainedSteps = r.step - r.resumedFrom;
  return {
    datagenPairsPerSecond: generated > 0 ? round(generated / Math.max(1e-9, wall.datagen + wall.heldout), 1) : null,
    /** The engine (and backend) of this invocation's training steps; a resumed run may have used another. */
    trainEngine: r.engine,
    trainImagesPerSecond: trainedSteps > 0 ? round(r.imagesPerSecond, 1) : null,
    trainGflopsPerSecond:
      trainedSteps > 0 ? round(((r.flopsPerStep / i.options.batch) * r.imagesPerSecond) / 1e9, 1) : null,
  };
}

/**
 * The closing summary's rows (label, text) of a finished run at `out`, with the wall seconds of its
 * steps and the exported model.
 */
export function summaryRows(
  report: DistillReport,
  out: string,
  wall: Readonly<Record<string, number>>,
  exported: { modelUri: string; card: { sha256: string; bytes: number; step: number } },
): [string, string][] {
  const rate = (v: number | null, unit: string) => (v === null ? 'reused' : `${v} ${unit}`);
  const l1 = report.heldoutL1;
  const { card } = exported;
  return [
    ['run', out],
    ['teacher', `${report.teacher.id}, ${report.sampler.nfe} NFE`],
    [
      'pairs',
      `${report.pairs.train} train + ${report.pairs.heldout} held-out ` +
        `(${rate(report.datagenPairsPerSecond, 'pairs/s')})`,
    ],
    [
      'student',
      `${report.preset}, ${report.trainableParameters.toLocaleString('en-US')} trainable parameters, ` +
        `${report.steps} steps (${rate(report.trainImagesPerSecond, 'images/s')}, ${report.trainEngine})`,
    ],
    [
      'held-out L1',
      `student ${l1.student.toFixed(4)} | class mean ${l1.classMean.toFixed(4)} ` +
        `(student ×${l1.studentOverClassMean.toFixed(2)}) | ridge ${l1.ridge.toFixed(4)} ` +
        `(student ×${l1.studentOverRidge.toFixed(2)}); below ×1 the student wins`,
    ],
    ...(report.fid ? [['FID', fidSummary(report.fid)] as [string, string]] : []),
    [
      'wall time',
      `${report.wallSeconds.total} s (${Object.entries(wall)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')})`,
    ],
    [
      'model',
      `${exported.modelUri} (sha256 ${card.sha256.slice(0, 12)}…, ${(card.bytes / 2 ** 20).toFixed(2)} MiB, ` +
        `step ${card.step})`,
    ],
    ['outputs', 'model.onnx, model.json, samples.png, report.json, pairs/, heldout/, checkpoints/'],
  ];
}

/** The summary's FID row: student vs teacher FID, and both precision/recall pairs. */
function fidSummary(fid: FidComparison): string {
  const { student: s, teacher: t } = fid;
  return (
    `student ${s.fid.toFixed(3)} | teacher ${t.fid.toFixed(3)} (student ×${fid.studentOverTeacher.toFixed(2)}) ` +
    `on ${fid.samples} samples vs ${fid.reference}, ${fid.features} features; ` +
    `precision/recall student ${s.precision?.toFixed(3)}/${s.recall?.toFixed(3)}, ` +
    `teacher ${t.precision?.toFixed(3)}/${t.recall?.toFixed(3)}`
  );
}
