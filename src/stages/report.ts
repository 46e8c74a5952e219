/**
 * The report stage's pieces: one-step samples of the held-out pairs, the baselines' held-out L1, and
 * the teacher-vs-student grid (samples.png).
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
import type { GetConfig } from '../get/config.js';
import { GetSampler } from '../get/sampler.js';
import { type ObjectStore, joinUri } from '../store/index.js';

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

/** The student's one-step images [n, C, H, W] for every held-out pair (z₀ from each pair's seed). */
export async function sampleHeldout(
  cfg: GetConfig,
  weights: (name: string) => Float32Array,
  store: ObjectStore,
  heldDir: string,
  iterations: number,
  threads?: number,
): Promise<{ held: SeededPairs; student: Float32Array }> {
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
