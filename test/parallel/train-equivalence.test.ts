/**
 * Data-parallel training equals one process with the global batch (issue 15's acceptance): N ranks under
 * real mpirun (src/stages/train-ranks.ts) against trainStage in this process, step by step, on the same
 * pair folder, initialisation and z_0.
 *
 * Tolerances. The ranks compute each slice's mean loss and gradient and average them; one process takes
 * the mean over the whole batch. Both are float32 sums of the same terms in another order, so they differ
 * by rounding: |Δloss| / loss ≤ 1e-5 (seen: ~1e-7). The arrays drift apart by that rounding, step after
 * step: each step's gradients differ by ~1e-7 relative, AdamW turns them into updates of ~lr·m/√v, and
 * 20 steps accumulate it. Measured here (GET-CPU-XS/8, lr 1e-3, 20 steps): largest |Δ| / largest |value|
 * 1.8e-6 for parameters and EMA, 8e-7 for m, 4e-7 for v (3 ranks: 1.5e-6). The bound, 2e-5 for every
 * array, leaves 10× headroom for other CPUs' kernels; a real error is off by far more: one rank training
 * alone on its half-batch (no allreduce) is ≥ 1e-3 away (the negative control below).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/get/config.js';
import { paramSpecs } from '../../src/get/model.js';
import { REFERENCE_ADAMW } from '../../src/train/optim.js';
import { storeFor } from '../../src/store/index.js';
import { listCheckpoints, loadCheckpoint } from '../../src/train/checkpoint.js';
import { PairStream } from '../../src/data/pair-stream.js';
import { streamSource, trainStage } from '../../src/stages/train.js';
import { type RankJob, trainOnRanks } from '../../src/stages/train-ranks.js';
import { UsageError } from '../../src/util/errors.js';
import { noMpi, writeSyntheticPairs } from './helpers.js';

const cfg = resolveConfig('GET-CPU-XS/8', { numClasses: 10 });
const specs = paramSpecs(cfg);
const STEPS = 20;
/** Parameters, EMA and Adam moments: largest |Δ| over largest |value|, at every step (see the header). */
const TOL = 2e-5;
let root = '';
let pairs = '';
let digest = '';

function job(out: string, batch: number, over: Partial<RankJob> = {}): RankJob {
  return {
    pairs,
    config: cfg as unknown as RankJob['config'],
    steps: STEPS,
    batch,
    iterations: 3,
    optimizer: { ...REFERENCE_ADAMW, lr: 1e-3 },
    ema: { kind: 'halflife', halflifeImages: 200, rampupRatio: 0.05 },
    seed: 11,
    checkpointDir: out,
    checkpointEvery: 1,
    keep: STEPS + 1,
    resume: true,
    dataManifestSha256: digest,
    threads: 1,
    ...over,
  };
}

/** One process, in this process: the reference. Losses by step. */
async function single(j: RankJob): Promise<number[]> {
  const stream = await PairStream.open(storeFor(pairs), pairs, { batchSize: j.batch, seed: j.seed, dropLast: true });
  const losses: number[] = [];
  const { pairs: _p, ...t } = j;
  await trainStage(streamSource(stream), {
    ...t,
    config: cfg,
    store: storeFor(j.checkpointDir),
    onStep: (s) => losses.push(s.loss),
  });
  return losses;
}

async function ranks(j: RankJob, n: number): Promise<number[]> {
  const losses: number[] = [];
  await trainOnRanks(j, { ranks: n, onStep: (s) => losses.push(s.loss) });
  return losses;
}

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** Compares the checkpoints of every step of two runs; returns the worst relative difference of each array. */
async function compareSteps(
  a: string,
  b: string,
  { steps = STEPS, sameCounters = true } = {},
): Promise<Record<string, number>> {
  const la = await listCheckpoints(storeFor(a), a);
  const lb = await listCheckpoints(storeFor(b), b);
  assert.equal(la.length, steps, `${a}: one checkpoint per step`);
  assert.equal(lb.length, steps, `${b}: one checkpoint per step`);
  const worst: Record<string, number> = { params: 0, ema: 0, adamM: 0, adamV: 0 };
  for (let i = 0; i < steps; i++) {
    const ca = await loadCheckpoint(storeFor(a), join(a, la[i]), specs);
    const cb = await loadCheckpoint(storeFor(b), join(b, lb[i]), specs);
    assert.equal(ca.state.step, cb.state.step);
    if (sameCounters) assert.equal(ca.state.imagesSeen, cb.state.imagesSeen);
    assert.equal(ca.state.adamSteps, cb.state.adamSteps);
    for (const k of ['params', 'ema', 'adamM', 'adamV'] as const) {
      const x = ca[k].flat;
      const y = cb[k].flat;
      worst[k] = Math.max(worst[k], maxDiff(x, y) / maxAbs(x));
    }
  }
  return worst;
}

function assertEquivalent(name: string, l1: number[], lN: number[], worst: Record<string, number>): void {
  assert.equal(lN.length, l1.length);
  for (let s = 0; s < l1.length; s++) {
    const rel = Math.abs(lN[s] - l1[s]) / Math.abs(l1[s]);
    assert.ok(rel <= 1e-5, `${name}: step ${s + 1} loss ${lN[s]} vs ${l1[s]} (rel ${rel})`);
  }
  let worstLoss = 0;
  for (let s = 0; s < l1.length; s++) worstLoss = Math.max(worstLoss, Math.abs(lN[s] - l1[s]) / Math.abs(l1[s]));
  for (const k of ['params', 'ema', 'adamM', 'adamV'] as const)
    assert.ok(worst[k] <= TOL, `${name}: ${k} differ by ${worst[k]} of their largest magnitude (> ${TOL})`);
  console.log(`# ${name}: worst loss rel ${worstLoss.toExponential(2)}; arrays ${JSON.stringify(worst)}`);
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'get-ranks-'));
  pairs = join(root, 'pairs');
  digest = await writeSyntheticPairs(pairs, 192, 48, 5);
});
after(() => rm(root, { recursive: true, force: true }));

test('2 ranks × 16 = 1 rank × 32 at every one of 20 steps (loss, params, EMA, Adam)', { skip: noMpi }, async () => {
  const l1 = await single(job(join(root, 'one-32'), 32));
  const l2 = await ranks(job(join(root, 'two-16'), 32), 2);
  const worst = await compareSteps(join(root, 'one-32'), join(root, 'two-16'));
  assertEquivalent('2 ranks', l1, l2, worst);
  // The runs did train: the loss moved and the decoder left zero.
  assert.ok(Math.abs(l1[STEPS - 1] - l1[0]) > 1e-3);
});

test('negative control: one process on a half batch is far outside the tolerance', { skip: noMpi }, async () => {
  // What a rank would do without the allreduce: train on its own 16 pairs.
  await single(job(join(root, 'one-16'), 16));
  const worst = await compareSteps(join(root, 'one-16'), join(root, 'two-16'), { sameCounters: false });
  assert.ok(worst.params > 50 * TOL, `half batch vs 2 ranks: ${JSON.stringify(worst)}`);
  console.log(`# negative control (half batch, no allreduce): arrays ${JSON.stringify(worst)}`);
});

test('3 ranks × 10 (oversubscribed) = 1 rank × 30 at every step', { skip: noMpi }, async () => {
  const l1 = await single(job(join(root, 'one-30'), 30));
  const l3 = await ranks(job(join(root, 'three-10'), 30), 3);
  assertEquivalent('3 ranks', l1, l3, await compareSteps(join(root, 'one-30'), join(root, 'three-10')));
});

test(
  'the tfjs engine trains the same way: 2 ranks × 8 = 1 rank × 16 (wasm backend, 4 steps)',
  { skip: noMpi },
  async () => {
    const tf = { steps: 4, keep: 5, engine: 'tfjs' as const, tfjsBackend: 'wasm' as const, threads: undefined };
    const l1 = await single(job(join(root, 'tfjs-one'), 16, tf));
    const l2 = await ranks(job(join(root, 'tfjs-two'), 16, tf), 2);
    const worst = await compareSteps(join(root, 'tfjs-one'), join(root, 'tfjs-two'), { steps: 4 });
    assertEquivalent('tfjs 2 ranks', l1, l2, worst);
  },
);

test('a global batch not divisible by the ranks exits 2 with one line', { skip: noMpi }, async () => {
  await assert.rejects(
    ranks(job(join(root, 'bad-batch'), 32), 3),
    (e: Error) =>
      e instanceof UsageError &&
      /batch 32 is not divisible by the 3 ranks/.test(e.message) &&
      !e.message.includes('\n'),
  );
});
