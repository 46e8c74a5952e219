/**
 * Section `tfjs`: the two training engines on the same step. The full GET training step (6
 * differentiable fixed-point iterations, loss and every parameter gradient) of GET-CPU-S/4 at batch 32,
 * timed on the ort engine (onnxruntime, generated backward graph) and on the tfjs engine (TensorFlow.js
 * interpreting the same forward graph, tfjs autograd) with the same parameters, batch and z_0, in one
 * run; reported as the ratio tfjs/ort. tfjs uses the fastest backend installed (`auto`: tfjs-node-gpu,
 * tfjs-node, else wasm; wasm here, and it is slow, so few repetitions).
 */
import { createTrainingEngine } from '../../src/train/engine.js';
import { cpuPresetConfig, prepareTraining } from './train.js';
import { type BenchContext, type Row, best, fmt, median, timeRuns } from './util.js';

export async function runTfjs(ctx: BenchContext): Promise<Row[]> {
  const cfg = cpuPresetConfig();
  const B = 32;
  const s = await prepareTraining(cfg, B);
  let ortMs: number[];
  try {
    ortMs = await timeRuns(() => s.engine.step(s.params, s.data, s.z0, s.grad), 1, ctx.quick ? 3 : 8);
  } finally {
    await s.engine.close();
  }
  const t0 = performance.now();
  const tfjs = await createTrainingEngine('tfjs', cfg, B, 6, {
    tfjsBackend: 'auto',
    log: (m) => ctx.log(m.replace(/^tfjs: /, '')),
  });
  const createMs = performance.now() - t0;
  const grad = new Float32Array(s.params.size);
  let tfjsMs: number[];
  let first: number;
  try {
    // The first step is the warm-up (kernel set-up, allocations): timed apart and reported separately.
    const t1 = performance.now();
    await tfjs.step(s.params, s.data, s.z0, grad);
    first = performance.now() - t1;
    tfjsMs = await timeRuns(() => tfjs.step(s.params, s.data, s.z0, grad), 0, ctx.quick ? 2 : 4);
  } finally {
    await tfjs.close();
  }
  // The two engines must agree on this step, or the timing compares different work.
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < grad.length; i++) {
    scale = Math.max(scale, Math.abs(s.grad[i]));
    diff = Math.max(diff, Math.abs(s.grad[i] - grad[i]));
  }
  const ratio = best(tfjsMs) / best(ortMs);
  const gf = (ms: number) => fmt(s.engine.flopsPerStep / ms / 1e6, 1);
  ctx.log(
    `ort best ${fmt(best(ortMs), 1)} ms, ${tfjs.describe} best ${fmt(best(tfjsMs), 1)} ms: tfjs/ort ` +
      `${fmt(ratio, 1)}×; max |Δgrad|/max|grad| ${(diff / scale).toExponential(1)}`,
  );
  const what = `Training step GET-CPU-S/4 (cond., 1×32×32), batch ${B}, 6 iterations`;
  return [
    {
      section: 'tfjs',
      what: `${what}, ort engine`,
      value: `${fmt(best(ortMs), 1)} ms/step, ${gf(best(ortMs))} GFLOP/s`,
      note: `best of ${ortMs.length} after 1 warm-up, median ${fmt(median(ortMs), 1)} ms; ${s.engine.describe}`,
    },
    {
      section: 'tfjs',
      what: `${what}, tfjs engine (${tfjs.describe.replace(/^tfjs \((.*)\)$/, '$1')})`,
      value: `${fmt(best(tfjsMs), 1)} ms/step, ${gf(best(tfjsMs))} GFLOP/s = ${fmt(ratio, 1)}× the ort step`,
      note:
        `best of ${tfjsMs.length} after 1 warm-up (first step ${fmt(first)} ms, engine creation ` +
        `${fmt(createMs)} ms), median ${fmt(median(tfjsMs), 1)} ms; gradients agree with ort to ` +
        `${(diff / scale).toExponential(1)} of max |g|`,
    },
  ];
}
