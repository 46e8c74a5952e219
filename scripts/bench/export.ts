/**
 * Section `export`: raw onnxruntime throughput of the exported one-step model (`exportModel`,
 * src/get/export.ts: K = 6 fixed-point iterations unrolled, weights baked in) of the default CPU
 * preset at several batch sizes. No service around it: feeds are built once, only `session.run` is
 * timed. `measureRawInference` is the baseline a service-load benchmark compares against.
 */
import { availableParallelism } from 'node:os';
import { type GetConfig, numTokens } from '../../src/get/config.js';
import { exportModel } from '../../src/get/export.js';
import { buildGet, inferenceOutput } from '../../src/get/model.js';
import { Graph } from '../../src/graph/ir.js';
import { type HostTensor, OrtSession } from '../../src/graph/session.js';
import { matmulFlops } from '../../src/train/engine.js';
import { initParams } from '../../src/train/params.js';
import { cpuPresetConfig } from './train.js';
import { type BenchContext, type Row, best, fmt, median, perturbZeroInits, randn, timeRuns } from './util.js';

/** Fixed-point iterations of the export (the training default). */
export const EXPORT_ITERATIONS = 6;

/** MatMul flops (2·m·k·n) of the whole inference graph of `cfg` for one image (K iterations, decode). */
export function inferenceFlopsPerImage(cfg: GetConfig, iterations = EXPORT_ITERATIONS): number {
  const m = buildGet(new Graph('get_sample_flops'), cfg, 1);
  inferenceOutput(m, 1, iterations);
  return matmulFlops(m.graph);
}

/**
 * The exported model.onnx of `cfg` with initParams weights (seed 0), zero initialisations perturbed to
 * N(0, 0.02²) so no iterate is degenerate. @returns the ONNX bytes and the trainable parameter count.
 */
export function exportedBenchModel(
  cfg: GetConfig,
  iterations = EXPORT_ITERATIONS,
): { onnx: Uint8Array; paramCount: number } {
  const params = initParams(buildGet(new Graph('x'), cfg, 1).specs, 0);
  perturbZeroInits(params, 1);
  const { onnx } = exportModel(cfg, (name) => params.view(name), {
    iterations,
    step: 0,
    dataManifestSha256: '0'.repeat(64),
  });
  return { onnx, paramCount: params.size };
}

/** Feeds of the export contract for `batch` images: noise, z0 N(0, I) float32, labels i mod classes (int64). */
export function exportFeeds(cfg: GetConfig, batch: number, seed = 0): Record<string, HostTensor> {
  const { channels: C, imageSize: H, hiddenSize: D } = cfg;
  const N = numTokens(cfg);
  const feeds: Record<string, HostTensor> = {
    noise: { dtype: 'float32', dims: [batch, C, H, H], data: randn(batch * C * H * H, seed) },
    z0: { dtype: 'float32', dims: [batch, N, D], data: randn(batch * N * D, seed + 1) },
  };
  if (cfg.numClasses > 0)
    feeds.class_labels = {
      dtype: 'int64',
      dims: [batch],
      data: BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % cfg.numClasses)),
    };
  return feeds;
}

/** Throughput of one batch size. */
export interface BatchThroughput {
  readonly batch: number;
  /** Best and median ms of one `session.run` of the whole batch. */
  readonly bestMs: number;
  readonly medianMs: number;
  /** batch / best (resp. median) seconds. */
  readonly imagesPerS: number;
  readonly medianImagesPerS: number;
  /** MatMul GFLOP/s at the best run. */
  readonly gflops: number;
  readonly reps: number;
}

/** What `measureRawInference` found. */
export interface RawInference {
  readonly perBatch: readonly BatchThroughput[];
  /** The batch size with the highest best-run images/s, and that rate. */
  readonly bestBatch: number;
  readonly bestImagesPerS: number;
  readonly flopsPerImage: number;
  readonly paramCount: number;
  readonly threads: number;
  readonly warmup: number;
}

/**
 * Times the exported model of `cfg` in one onnxruntime session (intra-op threads = all cores) at each
 * batch size: `warmup` untimed runs, then `reps(batch)` timed runs (default 10, 30 at batch ≤ 8).
 * @returns per-batch best/median images/s and the best batch; `bestImagesPerS` is the raw ceiling a
 *   service serving this model can approach.
 * @throws when onnxruntime rejects the model or feeds.
 */
export async function measureRawInference(
  cfg: GetConfig,
  batchSizes: readonly number[],
  opts: { warmup?: number; reps?: (batch: number) => number; log?: (msg: string) => void } = {},
): Promise<RawInference> {
  const warmup = opts.warmup ?? 2;
  const repsFor = opts.reps ?? ((b: number) => (b <= 8 ? 30 : 10));
  const threads = availableParallelism();
  const { onnx, paramCount } = exportedBenchModel(cfg);
  const flopsPerImage = inferenceFlopsPerImage(cfg);
  const session = await OrtSession.create(onnx, { threads });
  const perBatch: BatchThroughput[] = [];
  try {
    for (const batch of batchSizes) {
      const feeds = exportFeeds(cfg, batch);
      const reps = repsFor(batch);
      const ms = await timeRuns(() => session.run(feeds), warmup, reps);
      const r: BatchThroughput = {
        batch,
        bestMs: best(ms),
        medianMs: median(ms),
        reps,
        imagesPerS: (1000 * batch) / best(ms),
        medianImagesPerS: (1000 * batch) / median(ms),
        gflops: (flopsPerImage * batch) / best(ms) / 1e6,
      };
      opts.log?.(
        `batch ${batch}: ${fmt(r.imagesPerS)} images/s best (${fmt(r.bestMs, 2)} ms), ` +
          `${fmt(r.medianImagesPerS)} median; ${fmt(r.gflops, 1)} GFLOP/s`,
      );
      perBatch.push(r);
    }
  } finally {
    await session.release();
  }
  const top = perBatch.reduce((a, b) => (b.imagesPerS > a.imagesPerS ? b : a));
  return { perBatch, bestBatch: top.batch, bestImagesPerS: top.imagesPerS, flopsPerImage, paramCount, threads, warmup };
}

/** Batch sizes of the section. */
export const EXPORT_BATCHES = [1, 8, 32, 64] as const;

/** Runs the section. */
export async function runExport(ctx: BenchContext): Promise<Row[]> {
  const cfg = cpuPresetConfig();
  const r = await measureRawInference(cfg, EXPORT_BATCHES, {
    warmup: ctx.quick ? 1 : 2,
    reps: (b) => (ctx.quick ? (b <= 8 ? 10 : 3) : b <= 8 ? 30 : 10),
    log: ctx.log,
  });
  const model = `Exported GET-CPU-S/4 (cond., 1×32×32, K ${EXPORT_ITERATIONS})`;
  const rows: Row[] = r.perBatch.map((b) => ({
    section: 'export',
    what: `${model}, raw onnxruntime, batch ${b.batch}`,
    value: `${fmt(b.imagesPerS)} images/s`,
    note:
      `best of ${b.reps} after ${r.warmup} warm-up: ${fmt(b.bestMs, 2)} ms/batch, ${fmt(b.gflops, 1)} GFLOP/s ` +
      `(MatMul); median ${fmt(b.medianMs, 2)} ms = ${fmt(b.medianImagesPerS)} images/s`,
  }));
  rows.push({
    section: 'export',
    what: `${model}: best batch size`,
    value: `batch ${r.bestBatch}: ${fmt(r.bestImagesPerS)} images/s`,
    note:
      `${fmt(r.paramCount)} trainable params; ${fmt(r.flopsPerImage / 1e6, 1)} MFLOP/image (MatMul, whole ` +
      `inference graph); ${r.threads} intra-op threads`,
  });
  return rows;
}
