/**
 * Section `parallel`: data-parallel training on Open MPI (issue 15, docs/parallel.md), all in one run.
 *
 *  1. Allreduce bandwidth over loopback: 2 ranks under mpirun (runMpirun, scripts/bench/allreduce-rank.ts)
 *     sum a float32 buffer the size of the GET-CPU-S/4 gradient and of the GET-B/2 gradient (parameter
 *     counts from paramSpecs), with the shared-memory transport's single copy `none` (our default) and
 *     `cma` (set through OMPI_MCA_btl_vader_single_copy_mechanism, which mpirunArgs yields to); beside
 *     memcpy of the same sizes in this process (Float32Array.prototype.set). Median of several after
 *     warm-up; GB/s = bytes / time (algorithm bandwidth; the bus bandwidth × 2(n−1)/n is the same number at
 *     n = 2).
 *  2. GET-CPU-S/4 training at batch 32 on synthetic pairs: 1 rank × 1 thread, 1 rank × 2 threads and
 *     2 ranks × 1 thread, each through trainOnRanks (mpirun -np 1 or 2 over src/cli/train-rank.ts: the same
 *     process setup for all three; one rank does no allreduce), the same steps, the first ones excluded;
 *     and the share of the 2-rank step spent in the allreduce (waiting for the slower rank included).
 *  3. The cost model (cost-model.ts): the interconnect GET-B/2 at batch 128 on 8 GPUs needs for < 10% of
 *     its step in communication, from the FLOP of its training graph.
 * Where Open MPI or the addon is missing, 1 and 2 are reported as not measured and 3 is still given.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readManifest } from '../../src/data/shards.js';
import { type GetConfig, resolveConfig } from '../../src/get/config.js';
import { paramSpecs } from '../../src/get/model.js';
import { findMpirun, runMpirun } from '../../src/parallel/launch.js';
import { MPI_ADDON_PATH } from '../../src/parallel/mpi.js';
import { datasetDigest } from '../../src/stages/datagen.js';
import { type RankJob, type RankStep, trainOnRanks } from '../../src/stages/train-ranks.js';
import { storeFor } from '../../src/store/index.js';
import { buildTrainingGraph } from '../../src/train/training-step.js';
import { REFERENCE_ADAMW } from '../../src/train/optim.js';
import { computeSeconds, costModelMarkdown, requiredBandwidth } from './cost-model.js';
import { writeSyntheticPairs } from './stream.js';
import { type BenchContext, type Row, best, fmt, median } from './util.js';

const RANK_SCRIPT = fileURLToPath(new URL('./allreduce-rank.ts', import.meta.url));
const MECHANISM_ENV = 'OMPI_MCA_btl_vader_single_copy_mechanism';
/** Cost model: GET-B/2 at batch 128 on 8 GPUs, < 10% of the step in the allreduce. */
const MODEL = { batch: 128, ranks: 8, share: 0.1, iterations: 6, rates: [50e12, 100e12, 200e12, 400e12] };

/** What the section returns: its rows and the cost-model block for docs/benchmarks.md. */
export interface ParallelResult {
  readonly rows: Row[];
  readonly markdown: string;
}

const paramCount = (cfg: GetConfig): number =>
  paramSpecs(cfg).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);

/** One gradient to move: its name and float count. */
interface Gradient {
  readonly label: string;
  readonly floats: number;
}

const gbs = (bytes: number, ms: number): number => bytes / ms / 1e6;
/** GB/s with at least 3 significant digits below 1. */
const rateFmt = (x: number): string => fmt(x, x >= 1 ? 2 : Math.min(6, 2 - Math.floor(Math.log10(x))));
/** A ratio with 2 significant digits, e.g. 0.16×, 0.00041×. */
const ratioFmt = (x: number): string => (x >= 1 ? fmt(x, 2) : x.toPrecision(2));
const mbytes = (bytes: number): string => `${fmt(bytes / 1e6, bytes < 1e7 ? 2 : 1)} MB`;

/** Median and best ms of `reps` copies of `floats` float32 values after `warmup`. */
function timeMemcpy(floats: number, warmup: number, reps: number): number[] {
  const src = new Float32Array(floats);
  for (let i = 0; i < floats; i += 1024) src[i] = i;
  const dst = new Float32Array(floats);
  for (let i = 0; i < warmup; i++) dst.set(src);
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    dst.set(src);
    ms.push(performance.now() - t);
  }
  if (dst[1024] !== 1024) throw new Error('memcpy bench: the copy is wrong');
  return ms;
}

/**
 * Times allreduces of each gradient's size on 2 ranks with single-copy `mechanism`.
 * @returns ms per repetition (slowest rank) by float count.
 * @throws Error with mpirun's line when the world fails.
 */
async function timeAllreduce(
  grads: readonly Gradient[],
  mechanism: string,
  plan: readonly { warmup: number; reps: number }[],
): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  const errors: string[] = [];
  // One world per size, so each size gets its own warm-up and repetition counts.
  for (const [i, g] of grads.entries()) {
    const r = await runMpirun({
      ranks: 2,
      oversubscribe: true,
      env: { ...process.env, [MECHANISM_ENV]: mechanism },
      forwardSignals: false,
      command: [
        process.execPath,
        '--import',
        'tsx',
        RANK_SCRIPT,
        JSON.stringify({ floats: [g.floats], warmup: plan[i].warmup, reps: plan[i].reps }),
      ],
      onLine: (line, from) => {
        if (from.rank === 0 && line.startsWith('RESULT ')) {
          const res = JSON.parse(line.slice(7)) as { floats: number; ms: number[] };
          out.set(res.floats, res.ms);
        } else if (line.trim()) errors.push(line.trim());
      },
    });
    if (r.code !== 0 || !out.has(g.floats))
      throw new Error(`${r.line ?? `mpirun exited with code ${r.code}`}${errors.length ? `: ${errors[0]}` : ''}`);
  }
  return out;
}

/** Steps of one training configuration as rank 0 reported them. */
async function trainRun(job: RankJob, ranks: number): Promise<RankStep[]> {
  const steps: RankStep[] = [];
  await trainOnRanks(job, { ranks, onStep: (s) => steps.push(s) });
  if (steps.length !== job.steps) throw new Error(`training on ${ranks} ranks reported ${steps.length} steps`);
  return steps;
}

/** Runs the section. */
export async function runParallel(ctx: BenchContext): Promise<ParallelResult> {
  const rows: Row[] = [];
  const small = resolveConfig('GET-CPU-S/4', { numClasses: 10 });
  const big = resolveConfig('GET-B/2', { numClasses: 10 });
  const grads: Gradient[] = [
    { label: 'GET-CPU-S/4 gradient', floats: paramCount(small) },
    { label: 'GET-B/2 gradient', floats: paramCount(big) },
  ];
  const what = (g: Gradient): string => `${g.label} (${fmt(g.floats)} floats, ${mbytes(4 * g.floats)})`;
  const plan = ctx.quick
    ? [
        { warmup: 2, reps: 7 },
        { warmup: 1, reps: 3 },
      ]
    : [
        { warmup: 5, reps: 31 },
        { warmup: 2, reps: 7 },
      ];

  // 1a. memcpy in this process.
  const memcpy = new Map<number, number>();
  for (const [i, g] of grads.entries()) {
    const ms = timeMemcpy(g.floats, plan[i].warmup, plan[i].reps);
    memcpy.set(g.floats, gbs(4 * g.floats, median(ms)));
    ctx.log(`memcpy ${what(g)}: median ${fmt(median(ms), 3)} ms = ${fmt(memcpy.get(g.floats)!, 2)} GB/s`);
    rows.push({
      section: 'parallel',
      what: `memcpy (Float32Array.prototype.set) in one process, ${what(g)}`,
      value: `${fmt(memcpy.get(g.floats)!, 2)} GB/s`,
      note:
        `bytes / time (each byte read once and written once); median of ${plan[i].reps} after ` +
        `${plan[i].warmup} warm-up: ${fmt(median(ms), 3)} ms; best ${fmt(best(ms), 3)} ms = ` +
        `${fmt(gbs(4 * g.floats, best(ms)), 2)} GB/s`,
    });
  }

  const missing =
    findMpirun() === null ? 'mpirun' : !existsSync(MPI_ADDON_PATH) ? 'the Open MPI addon (npm run build:mpi)' : null;
  const loopback: Record<string, number> = {};
  let allreduceSmallMs: number | undefined;
  const trainMechanism = process.env[MECHANISM_ENV] ?? 'none';
  if (missing !== null) {
    rows.push({
      section: 'parallel',
      what: 'Allreduce over loopback and data-parallel training',
      value: 'not measured',
      note: `${missing} is missing: apt-get install openmpi-bin libopenmpi-dev, then npm run build:mpi`,
    });
  } else {
    // 1b. Allreduce on 2 ranks, both single-copy mechanisms.
    for (const mechanism of ['none', 'cma']) {
      let times: Map<number, number[]>;
      try {
        times = await timeAllreduce(grads, mechanism, plan);
      } catch (e) {
        const msg = (e as Error).message.split('\n')[0];
        ctx.log(`allreduce with single copy ${mechanism}: failed: ${msg}`);
        rows.push({
          section: 'parallel',
          what: `Allreduce, 2 ranks on loopback, single copy ${mechanism}`,
          value: 'failed',
          note: mechanism === 'cma' ? `${msg} (cma needs ptrace rights between the ranks: docs/parallel.md)` : msg,
        });
        continue;
      }
      for (const [i, g] of grads.entries()) {
        const ms = times.get(g.floats)!;
        const rate = gbs(4 * g.floats, median(ms));
        if (i === 1) loopback[mechanism] = rate;
        if (i === 0 && mechanism === trainMechanism) allreduceSmallMs = median(ms);
        const ratio = rate / memcpy.get(g.floats)!;
        ctx.log(`allreduce ${mechanism} ${what(g)}: median ${fmt(median(ms), 2)} ms = ${rateFmt(rate)} GB/s`);
        rows.push({
          section: 'parallel',
          what:
            `Allreduce (MPI_Allreduce sum, float32, in place), 2 ranks on loopback, single copy ` +
            `${mechanism}${mechanism === 'none' ? ' (our default)' : ''}, ${what(g)}`,
          value: `${rateFmt(rate)} GB/s = ${ratioFmt(ratio)}× memcpy`,
          note:
            `algorithm bandwidth, bytes / time (bus bandwidth = × 2(n−1)/n = the same at n = 2); median of ` +
            `${plan[i].reps} after ${plan[i].warmup} warm-up: ${fmt(median(ms), 2)} ms (slowest rank, from a ` +
            `barrier to the promise settling); best ${fmt(best(ms), 2)} ms = ${rateFmt(gbs(4 * g.floats, best(ms)))} ` +
            `GB/s, worst ${fmt(Math.max(...ms), 2)} ms; memcpy median from the row above`,
        });
      }
    }
    // 2. Training throughput.
    rows.push(...(await trainRows(ctx, small, trainMechanism, allreduceSmallMs)));
  }

  // 3. Cost model.
  const t = performance.now();
  const flop = 3 * buildTrainingGraph(big, MODEL.batch, MODEL.iterations).forwardFlops;
  ctx.log(
    `GET-B/2 batch ${MODEL.batch}: ${fmt(flop / 1e12, 2)} TFLOP/step (graph built in ${fmt(performance.now() - t)} ms)`,
  );
  const input = {
    model: 'GET-B/2 (cond., CIFAR-10)',
    gradBytes: 4 * grads[1].floats,
    stepFlop: flop,
    flopNote:
      `MatMul FLOP of the K = ${MODEL.iterations} training graph, 2 per multiply-add, ×3 for forward + backward: ` +
      `the engine's flopsPerStep; get-reference.md's estimate of 81.2 GMAC per image forward gives the same; ` +
      'counted in multiply-adds it would be half',
    batch: MODEL.batch,
    ranks: MODEL.ranks,
    share: MODEL.share,
    rates: MODEL.rates,
    loopback,
  };
  const r100 = 100e12;
  const need = requiredBandwidth(input.gradBytes, MODEL.ranks, computeSeconds(flop, MODEL.ranks, r100), MODEL.share);
  rows.push({
    section: 'parallel',
    what:
      `Cost model: per-GPU bandwidth for < ${fmt(100 * MODEL.share)}% of a GET-B/2 step (batch ${MODEL.batch}, ` +
      `${MODEL.ranks} GPUs, ring allreduce, no overlap) in communication, at ${fmt(r100 / 1e12)} TFLOP/s ` +
      'sustained per GPU',
    value: `${fmt(need / 1e9)} GB/s each direction`,
    note:
      `${fmt(flop / 1e12, 1)} TFLOP/step from the graph, ${mbytes(input.gradBytes)} gradient; other rates, the ` +
      'links and our loopback rate in the cost model below',
  });
  return { rows, markdown: costModelMarkdown(input) };
}

/** The three training configurations and the allreduce share of the 2-rank step. */
async function trainRows(
  ctx: BenchContext,
  cfg: GetConfig,
  mechanism: string,
  allreduceMs: number | undefined,
): Promise<Row[]> {
  const batch = 32;
  const [steps, warm] = ctx.quick ? [12, 4] : [60, 10];
  const root = await mkdtemp(join(tmpdir(), 'get-distill-bench-parallel-'));
  try {
    const pairs = join(root, 'pairs');
    await writeSyntheticPairs(pairs, 2048);
    const digest = datasetDigest(await readManifest(storeFor(pairs), pairs));
    const job = (name: string, threads: number): RankJob => ({
      pairs,
      config: cfg as unknown as RankJob['config'],
      steps,
      batch,
      iterations: 6,
      optimizer: { ...REFERENCE_ADAMW, lr: 1e-3 },
      ema: { kind: 'halflife', halflifeImages: 20_000, rampupRatio: 0.05 },
      seed: 0,
      checkpointDir: join(root, name),
      checkpointEvery: steps,
      keep: 1,
      resume: false,
      dataManifestSha256: digest,
      threads,
    });
    const configs = [
      { name: '1 rank × 1 thread', ranks: 1, threads: 1 },
      { name: '1 rank × 2 threads', ranks: 1, threads: 2 },
      { name: '2 ranks × 1 thread', ranks: 2, threads: 1 },
    ];
    const rates: number[] = [];
    const rows: Row[] = [];
    let measured: RankStep[] = [];
    for (const c of configs) {
      const all = await trainRun(job(`ck-${c.ranks}x${c.threads}`, c.threads), c.ranks);
      measured = all.slice(warm);
      const secs = measured.map((s) => s.stepSeconds);
      const mean = secs.reduce((a, b) => a + b, 0) / secs.length;
      const rate = batch / mean;
      rates.push(rate);
      ctx.log(`${c.name}: ${fmt(rate, 1)} images/s (median step ${fmt(1000 * median(secs), 1)} ms)`);
      const vs =
        c.ranks === 2 ? ` = ${fmt(rate / rates[0], 2)}× 1 rank × 1 thread, ${fmt(rate / rates[1], 2)}× 1 × 2` : '';
      rows.push({
        section: 'parallel',
        what:
          `GET-CPU-S/4 training (cond., 1×32×32, 6 iterations), batch ${batch}` +
          `${c.ranks > 1 ? ` (${batch / c.ranks} per rank)` : ''}, ${c.name}`,
        value: `${fmt(rate, 1)} images/s${vs}`,
        note:
          `batch / mean step over steps ${warm + 1}–${steps} (${steps - warm} of ${steps}; the first ${warm} ` +
          `are warm-up); median step ${fmt(1000 * median(secs), 1)} ms, first step ` +
          `${fmt(1000 * all[0].stepSeconds)} ms; trainOnRanks (mpirun -np ${c.ranks}), onnxruntime threads ` +
          `${c.threads} per rank` +
          (c.ranks > 1 ? `, single copy ${mechanism}` : ', no allreduce') +
          '; synthetic pairs',
      });
    }
    // `measured` is the 2-rank run's (the last configuration).
    const shares = measured.map((s) => s.commSeconds / s.stepSeconds);
    const comm = median(measured.map((s) => s.commSeconds));
    ctx.log(`allreduce share of the 2-rank step: ${fmt(100 * median(shares), 1)}%`);
    rows.push({
      section: 'parallel',
      what: `Share of the 2-rank step in the allreduce (GET-CPU-S/4, batch ${batch}, 2 ranks × 1 thread)`,
      value: `${fmt(100 * median(shares), 1)}%`,
      note:
        `median over steps ${warm + 1}–${steps} of commSeconds / stepSeconds (rank 0); median allreduce ` +
        `${fmt(1000 * comm, 2)} ms of a ${fmt(1000 * median(measured.map((s) => s.stepSeconds)), 1)} ms step; ` +
        `it includes waiting for the slower rank` +
        (allreduceMs !== undefined
          ? ` (the allreduce alone of this size, single copy ${mechanism}: ${fmt(allreduceMs, 2)} ms median above)`
          : ''),
    });
    return rows;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
