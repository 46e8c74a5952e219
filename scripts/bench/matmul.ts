/**
 * Section `matmul`: the float32 MatMul roofline of onnxruntime on this machine, built through the
 * project's graph IR (Graph → toOnnx → OrtSession), so it measures exactly the path training takes.
 * The best GFLOP/s here is the denominator of the training ratios.
 */
import { Graph } from '../../src/graph/ir.js';
import { matmul } from '../../src/graph/ops.js';
import { toOnnx } from '../../src/graph/onnx.js';
import { OrtSession, f32 } from '../../src/graph/session.js';
import { type BenchContext, type Row, best, fmt, median, randn, timeRuns } from './util.js';

/** One MatMul measurement: [m,k] × [k,n] float32, 2·m·k·n flops per run. */
export interface MatmulResult {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  /** Best-run GFLOP/s (after warm-up). */
  readonly gflops: number;
  /** Median-run GFLOP/s. */
  readonly medianGflops: number;
  readonly bestMs: number;
}

/**
 * Times c = a·b for a [m,k], b [k,n] float32 (inputs fed each run, as the training engine feeds its
 * parameters). @returns best and median GFLOP/s over `reps` runs after `warmup` runs.
 */
export async function measureMatmul(
  m: number,
  k: number,
  n: number,
  warmup: number,
  reps: number,
): Promise<MatmulResult> {
  const g = new Graph('matmul_bench');
  const a = g.input('a', 'float32', [m, k]);
  const b = g.input('b', 'float32', [k, n]);
  const session = await OrtSession.create(toOnnx(g, { outputs: { c: matmul(a, b) } }));
  const feeds = { a: f32([m, k], randn(m * k, 1)), b: f32([k, n], randn(k * n, 2)) };
  try {
    const ms = await timeRuns(() => session.run(feeds), warmup, reps);
    const flops = 2 * m * k * n;
    return { m, k, n, gflops: flops / best(ms) / 1e6, medianGflops: flops / median(ms) / 1e6, bestMs: best(ms) };
  } finally {
    await session.release();
  }
}

/** Square sizes measured: 1024³ and 2048³ (quick: 1024³ only). */
export const matmulSizes = (quick: boolean): number[] => (quick ? [1024] : [1024, 2048]);

/** Runs the section; @returns its rows and the roofline (the best GFLOP/s of all sizes). */
export async function runMatmul(ctx: BenchContext): Promise<{ rows: Row[]; roofline: MatmulResult }> {
  const rows: Row[] = [];
  let roofline: MatmulResult | undefined;
  for (const s of matmulSizes(ctx.quick)) {
    const reps = ctx.quick ? 3 : s >= 2048 ? 8 : 20;
    const r = await measureMatmul(s, s, s, 2, reps);
    ctx.log(
      `${s}×${s}×${s}: ${fmt(r.gflops, 1)} GFLOP/s best, ${fmt(r.medianGflops, 1)} median (${fmt(r.bestMs, 1)} ms)`,
    );
    rows.push({
      section: 'matmul',
      what: `MatMul ${s}×${s}×${s} float32`,
      value: `${fmt(r.gflops, 1)} GFLOP/s`,
      note: `best of ${reps} after 2 warm-up; median ${fmt(r.medianGflops, 1)}; ${fmt(r.bestMs, 1)} ms`,
    });
    if (!roofline || r.gflops > roofline.gflops) roofline = r;
  }
  // The CPU preset's own largest GEMM shape (batch 32 × 64 tokens rows, D 64 → MLP 256): what its
  // small matrices allow at best, beside the large-MatMul roofline the goal is stated against.
  const own = await measureMatmul(2048, 64, 256, 2, ctx.quick ? 3 : 50);
  ctx.log(`2048×64×256 (GET-CPU-S/4 fc1): ${fmt(own.gflops, 1)} GFLOP/s best`);
  rows.push({
    section: 'matmul',
    what: 'MatMul 2048×64×256 float32 (GET-CPU-S/4 fc1 at batch 32)',
    value: `${fmt(own.gflops, 1)} GFLOP/s = ${fmt((100 * own.gflops) / roofline!.gflops, 0)}% of the large MatMul`,
    note: `best of ${ctx.quick ? 3 : 50} after 2 warm-up; median ${fmt(own.medianGflops, 1)}`,
  });
  return { rows, roofline: roofline! };
}
