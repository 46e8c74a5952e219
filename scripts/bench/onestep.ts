/**
 * Section `onestep`: what one step buys. Images/s of the exported one-step GET (default CPU preset,
 * batch 32, raw onnxruntime) against EDM Heun sampling (18 steps, 35 NFE, src/edm/heun.ts) with an
 * ONNX teacher network of about the same parameter count, run through OnnxEdmTeacher exactly as
 * datagen runs a teacher. Goal: GET ≥ 10× the teacher's images/s.
 *
 * The teacher is an untrained ViT-style denoiser (scripts/bench/timing-teacher.ts): a timing stand-in
 * whose cost per evaluation is that of a trained one. GET and teacher runs alternate in rounds, so
 * both see the same load: the ratio of the best rounds, and the median of the per-round ratios.
 */
import { availableParallelism } from 'node:os';
import { heunSample } from '../../src/edm/heun.js';
import { heunNfe } from '../../src/edm/schedule.js';
import { OrtSession } from '../../src/graph/session.js';
import { OnnxEdmTeacher } from '../../src/teacher/onnx-teacher.js';
import { EXPORT_ITERATIONS, exportFeeds, exportedBenchModel, inferenceFlopsPerImage } from './export.js';
import { type TimingTeacherConfig, buildTimingTeacher } from './timing-teacher.js';
import { cpuPresetConfig } from './train.js';
import { type BenchContext, type Row, best, fmt, median, randn } from './util.js';

const BATCH = 32;
const STEPS = 18;
const GOAL = 10;

/**
 * The stand-in teacher: GET-CPU-S/4's width, heads and tokens (D 64, 2 heads, patch 4 → 64 tokens),
 * 6 blocks of MLP ratio 4: 302,928 trainable parameters against GET-CPU-S/4's 290,960 (+4%).
 */
export const TIMING_TEACHER: TimingTeacherConfig = {
  channels: 1,
  imageSize: 32,
  patchSize: 4,
  hiddenSize: 64,
  numHeads: 2,
  depth: 6,
  mlpRatio: 4,
  numClasses: 10,
};

/** Accepted parameter-count mismatch between teacher and GET (a like-for-like size comparison). */
const PARAM_TOLERANCE = 0.2;

/** Runs the section. @throws Error when the teacher's size drifts beyond ±20% of GET's. */
export async function runOnestep(ctx: BenchContext): Promise<Row[]> {
  const cfg = cpuPresetConfig();
  const threads = availableParallelism();
  const get = exportedBenchModel(cfg);
  const teacher = buildTimingTeacher(TIMING_TEACHER);
  const sizeRatio = teacher.paramCount / get.paramCount;
  ctx.log(
    `parameters: GET-CPU-S/4 ${fmt(get.paramCount)}, teacher ${fmt(teacher.paramCount)} ` +
      `(${fmt(100 * (sizeRatio - 1), 1)}%)`,
  );
  if (Math.abs(sizeRatio - 1) > PARAM_TOLERANCE) {
    throw new Error(
      `onestep: teacher has ${fmt(teacher.paramCount)} parameters, GET ${fmt(get.paramCount)}: outside ` +
        `±${100 * PARAM_TOLERANCE}%; adjust TIMING_TEACHER's depth or width`,
    );
  }
  const nfe = heunNfe(STEPS);
  const getFlops = inferenceFlopsPerImage(cfg);
  const teacherFlops = teacher.flopsPerEval * nfe;

  const session = await OrtSession.create(get.onnx, { threads });
  const denoiser = await OnnxEdmTeacher.fromBytes(teacher.onnx, { threads }, 'timing teacher');
  const feeds = exportFeeds(cfg, BATCH);
  const noise = Float64Array.from(randn(BATCH * 32 * 32, 7));
  const labels = Int32Array.from({ length: BATCH }, (_, i) => i % 10);
  const sample = () => heunSample(denoiser, noise, labels, BATCH, { steps: STEPS });
  // Each round: `GET_RUNS` GET batches (their mean is the round's GET time: a GET batch is ~1/10 of a
  // Heun batch) then one Heun batch, so both sides get the same number of samples and each round's
  // ratio compares neighbours in time.
  const GET_RUNS = 5;
  const getMs: number[] = [];
  const teacherMs: number[] = [];
  const [warm, rounds] = ctx.quick ? [1, 3] : [1, 6];
  try {
    for (let i = 0; i < warm; i++) {
      await session.run(feeds);
      await sample();
    }
    for (let i = 0; i < rounds; i++) {
      let t = performance.now();
      for (let j = 0; j < GET_RUNS; j++) await session.run(feeds);
      getMs.push((performance.now() - t) / GET_RUNS);
      t = performance.now();
      await sample();
      teacherMs.push(performance.now() - t);
    }
  } finally {
    await session.release();
    await denoiser.close();
  }
  const rate = (ms: number) => (1000 * BATCH) / ms;
  const [getRate, teacherRate] = [rate(best(getMs)), rate(best(teacherMs))];
  const ratio = getRate / teacherRate;
  const roundRatio = median(teacherMs.map((t, i) => t / getMs[i]));
  ctx.log(
    `GET ${fmt(getRate)} images/s, teacher ${fmt(teacherRate, 1)} images/s: ${fmt(ratio, 1)}× (median of ` +
      `per-round ratios ${fmt(roundRatio, 1)}×)`,
  );
  ctx.log(
    `MatMul FLOPs/image: GET ${fmt(getFlops / 1e6, 1)} M, teacher ${fmt(teacher.flopsPerEval / 1e6, 1)} M × ` +
      `${nfe} NFE = ${fmt(teacherFlops / 1e6, 1)} M (${fmt(teacherFlops / getFlops, 1)}×)`,
  );
  const teacherDesc =
    `ViT teacher (D ${TIMING_TEACHER.hiddenSize}, ${TIMING_TEACHER.depth} blocks, patch ` +
    `${TIMING_TEACHER.patchSize}, ${fmt(teacher.paramCount)} params)`;
  return [
    {
      section: 'onestep',
      what:
        `One-step GET-CPU-S/4 (K ${EXPORT_ITERATIONS}) vs ` +
        `${teacherDesc} Heun ${STEPS} steps (${nfe} NFE), batch ${BATCH}`,
      value: `${fmt(ratio, 1)}× images/s`,
      goal: `≥ ${GOAL}×: ${ratio >= GOAL ? 'met' : 'missed'}`,
      note:
        `best round of each side, ${rounds} rounds after ${warm} warm-up; median of per-round ratios ` +
        `${fmt(roundRatio, 1)}×; MatMul FLOPs ratio ${fmt(teacherFlops / getFlops, 1)}×; parameters GET ` +
        `${fmt(get.paramCount)}, teacher ${fmt(teacher.paramCount)} ` +
        `(${sizeRatio >= 1 ? '+' : ''}${fmt(100 * (sizeRatio - 1), 1)}%)`,
    },
    {
      section: 'onestep',
      what: `GET-CPU-S/4 one step, raw onnxruntime, batch ${BATCH}`,
      value: `${fmt(getRate)} images/s`,
      note:
        `best of ${rounds} rounds of ${GET_RUNS} batches (${fmt(best(getMs), 2)} ` +
        `ms/batch), median ${fmt(rate(median(getMs)))} images/s; ` +
        `${fmt(getFlops / 1e6, 1)} MFLOP/image (MatMul, whole inference graph)`,
    },
    {
      section: 'onestep',
      what: `${teacherDesc}: EDM Heun ${nfe} NFE via OnnxEdmTeacher, batch ${BATCH}`,
      value: `${fmt(teacherRate, 1)} images/s`,
      note:
        `best of ${rounds} rounds (${fmt(best(teacherMs))} ms/batch), median ` +
        `${fmt(rate(median(teacherMs)), 1)} images/s; ${fmt(teacher.flopsPerEval / 1e6, 1)} MFLOP/eval × ` +
        `${nfe} = ${fmt(teacherFlops / 1e6, 1)} MFLOP/image (MatMul); untrained timing stand-in`,
    },
  ];
}
