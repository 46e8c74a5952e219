/**
 * Section `train`: training-step throughput. (a) The full GET training step (`OrtTrainingEngine`: 6
 * differentiable fixed-point iterations, loss and every parameter gradient) of the default CPU preset;
 * (b) one GET-T-width block, forward + backward. GFLOP/s count MatMul flops ×3 (engine convention) and
 * are compared with the MatMul roofline measured in the same run.
 */
import { numTokens, resolveConfig, type GetConfig } from '../../src/get/config.js';
import { OrtSession, type HostTensor } from '../../src/graph/session.js';
import { OrtTrainingEngine, type TrainBatch } from '../../src/train/engine.js';
import { initParams, type ParamStore } from '../../src/train/params.js';
import { buildBlockTrainGraph } from './block.js';
import { type BenchContext, type Row, best, fmt, median, perturbZeroInits, randn, timeRuns } from './util.js';

/** Everything one timed `engine.step` needs. */
export interface TrainingSetup {
  readonly engine: OrtTrainingEngine;
  readonly params: ParamStore;
  readonly data: TrainBatch;
  /** z_0 [B,N,D] float32, N(0, I). */
  readonly z0: Float32Array;
  /** Flat gradient buffer, same size as params. */
  readonly grad: Float32Array;
  /** Graph build + onnxruntime session creation, ms. */
  readonly compileMs: number;
}

/**
 * Builds the training engine of `cfg` at a fixed batch with reference-initialised, then perturbed,
 * parameters and random data (noise/image N(0, I), labels i mod numClasses).
 */
export async function prepareTraining(cfg: GetConfig, batch: number, iterations = 6): Promise<TrainingSetup> {
  const t = performance.now();
  const engine = await OrtTrainingEngine.create(cfg, batch, iterations);
  const compileMs = performance.now() - t;
  const params = initParams(engine.specs, 0);
  perturbZeroInits(params, 1);
  const P = cfg.channels * cfg.imageSize ** 2;
  const data: TrainBatch = {
    noise: randn(batch * P, 2),
    image: randn(batch * P, 3, 0.5),
    labels: cfg.numClasses > 0 ? Int32Array.from({ length: batch }, (_, i) => i % cfg.numClasses) : null,
  };
  const z0 = randn(batch * numTokens(cfg) * cfg.hiddenSize, 4);
  return { engine, params, data, z0, grad: new Float32Array(params.size), compileMs };
}

/** The default CPU preset as trained on MNIST: `GET-CPU-S/4`, 10 classes, 1×32×32. */
export const cpuPresetConfig = (): GetConfig => resolveConfig('GET-CPU-S/4', { numClasses: 10 });

/** The MatMul roofline a training ratio divides by: best-run GFLOP/s and its description. */
export interface Roofline {
  readonly gflops: number;
  readonly what: string;
}

/**
 * A throughput row. GFLOP/s and the roofline ratio use the best step, like the roofline itself (best
 * run), so both sides are equally (un)disturbed by other load; the median is given beside it.
 */
function throughputRow(
  ctx: BenchContext,
  what: string,
  ms: number[],
  warm: number,
  flops: number,
  roofline: Roofline,
  extra: string,
): Row {
  const gf = flops / best(ms) / 1e6;
  const ratio = gf / roofline.gflops;
  ctx.log(
    `${what}: best ${fmt(best(ms), 1)} ms (${fmt(gf, 1)} GFLOP/s, ` +
      `${fmt(100 * ratio)}% of MatMul), median ${fmt(median(ms), 1)} ms`,
  );
  return {
    section: 'train',
    what,
    value: `${fmt(best(ms), 1)} ms/step, ${fmt(gf, 1)} GFLOP/s = ${fmt(100 * ratio)}% of MatMul`,
    goal: `≥ 60% of MatMul: ${ratio >= 0.6 ? 'met' : 'missed'}`,
    note:
      `best of ${ms.length} after ${warm} warm-up, median ${fmt(median(ms), 1)} ms ` +
      `(${fmt(flops / median(ms) / 1e6, 1)} GFLOP/s); ${fmt(flops / 1e9, 2)} GFLOP/step (MatMul ×3); ratio to ` +
      `${roofline.what}; ${extra}`,
  };
}

/** Runs the section against a MatMul roofline measured in the same run. */
export async function runTrain(ctx: BenchContext, roofline: Roofline): Promise<Row[]> {
  const rows: Row[] = [];
  const [warm, reps] = ctx.quick ? [1, 3] : [2, 8];

  // (a) GET-CPU-S/4 conditional, full training step.
  const cfg = cpuPresetConfig();
  const B = 32;
  const s = await prepareTraining(cfg, B);
  let ms: number[];
  try {
    ms = await timeRuns(() => s.engine.step(s.params, s.data, s.z0, s.grad), warm, reps);
  } finally {
    await s.engine.close();
  }
  rows.push(
    throughputRow(
      ctx,
      `Training step GET-CPU-S/4 (cond., 1×32×32), batch ${B}, 6 iterations`,
      ms,
      warm,
      s.engine.flopsPerStep,
      roofline,
      `${fmt(s.params.size)} params; compile ${fmt(s.compileMs)} ms`,
    ),
  );

  // (b) One GET-T block (D 256, 4 heads, 256 tokens, MLP ratio 6), forward + backward, batch 16.
  const t = resolveConfig('GET-T/2');
  const shape = { hiddenSize: t.hiddenSize, tokens: numTokens(t) };
  const Bb = 16;
  const t0 = performance.now();
  const blk = buildBlockTrainGraph(t, t.equilibriumMlpRatio, Bb);
  const session = await OrtSession.create(blk.onnx);
  const compileMs = performance.now() - t0;
  const act = [Bb, shape.tokens, shape.hiddenSize];
  const feeds: Record<string, HostTensor> = {
    z: { dtype: 'float32', dims: act, data: randn(Bb * shape.tokens * shape.hiddenSize, 5) },
    target: { dtype: 'float32', dims: act, data: randn(Bb * shape.tokens * shape.hiddenSize, 6) },
  };
  blk.params.forEach((p, i) => {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const fanIn = p.shape.length === 2 ? p.shape[0] : shape.hiddenSize;
    const data = randn(n, 10 + i, p.shape.length === 2 ? 1 / Math.sqrt(fanIn) : 0.02);
    // LN scale ≈ 1
    if (p.name.startsWith('norm') && p.name.endsWith('.weight')) for (let j = 0; j < n; j++) data[j] += 1;
    feeds[p.name] = { dtype: 'float32', dims: p.shape, data };
  });
  let bms: number[];
  try {
    bms = await timeRuns(() => session.run(feeds), warm, reps);
  } finally {
    await session.release();
  }
  rows.push(
    throughputRow(
      ctx,
      `One GET-T block (D 256, 4 heads, N 256, MLP 6), fwd+bwd, batch ${Bb}`,
      bms,
      warm,
      blk.flopsPerStep,
      roofline,
      `L1 loss, gradients of all ${blk.params.length} params; compile ${fmt(compileMs)} ms`,
    ),
  );
  return rows;
}
