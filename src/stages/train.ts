/**
 * The train stage: GET on pair shards with AdamW and EMA, checkpointing and resuming
 * (locuslab/get train.py; get-reference.md §4). Batches and z_0 are pure functions of (seed, step),
 * so N steps + kill + resume equals one straight run.
 */
import { numTokens, type GetConfig } from '../get/config.js';
import {
  createTrainingEngine,
  type StepResult,
  type TrainBatch,
  type TrainingEngine,
  type TrainingEngineKind,
} from '../train/engine.js';
import type { TfjsBackendChoice } from '../graph/tfjs-backend.js';
import { AdamW, type AdamWConfig, type EmaConfig, emaDecay, emaUpdate } from '../train/optim.js';
import { initParams, ParamStore } from '../train/params.js';
import {
  type CheckpointState,
  hasCheckpoint,
  listCheckpoints,
  loadLatestCheckpoint,
  saveCheckpoint,
} from '../train/checkpoint.js';
import type { ObjectStore } from '../store/index.js';
import type { PairBatch, PairStream } from '../data/pair-stream.js';
import { Rng, fmix32 } from '../util/rng.js';
import { UsageError } from '../util/errors.js';
import { type Communicator, SINGLE_PROCESS } from '../parallel/comm.js';
import {
  agreeOnOptions,
  agreeOnState,
  broadcastArrays,
  perRankBatch,
  sliceBatch,
  sliceRows,
} from '../train/data-parallel.js';

/**
 * Where batches come from: batch `step` of a deterministic stream (a pure function of seed and step),
 * `size` pairs: noise and image float32 [size, C, H, W], labels int32 [size] or null.
 */
export interface BatchSource {
  batch(step: number, size: number): Promise<TrainBatch>;
}

/**
 * Adapts a PairStream (epochs of whole batches, dropLast) to batch-by-step: step s is batch s mod P of
 * epoch ⌊s / P⌋ (P = batches per epoch), so a resumed run at any step reads the same batches as a
 * straight one, starting mid-epoch without reading earlier shards. Used by the local executor and the
 * train job alike.
 * @param guard wraps every batch read (callers turn corrupt-shard errors into their own UsageError).
 * @throws UsageError when the batch size exceeds the dataset; whatever `guard` throws for bad shards.
 */
export function streamSource(
  stream: PairStream,
  guard: <T>(f: () => Promise<T>) => Promise<T> = (f) => f(),
): BatchSource {
  let it: AsyncGenerator<PairBatch> | null = null;
  let next = -1;
  return {
    async batch(step) {
      const per = stream.batchesPerEpoch;
      if (per < 1)
        throw new UsageError(
          `--batch ${stream.options.batchSize} exceeds the ${stream.manifest.totalPairs} training pairs; ` +
            'lower --batch or raise --pairs',
        );
      if (step !== next || !it) it = stream.epoch(Math.floor(step / per), { startBatch: step % per });
      const r = await guard(() => it!.next());
      if (r.done)
        throw new Error(`PairStream ended before batch ${step % per} of ${per} in epoch ${Math.floor(step / per)}`);
      next = step + 1;
      if ((step + 1) % per === 0) it = null;
      const b = r.value;
      return { noise: b.noise, image: b.image, labels: b.label ?? null };
    },
  };
}

export interface TrainOptions {
  readonly config: GetConfig;
  /** Total optimizer steps to reach (a resumed run continues up to it). */
  readonly steps: number;
  /** Pairs per step. */
  readonly batch: number;
  /** Unrolled fixed-point iterations K (6 in the reference). */
  readonly iterations: number;
  readonly optimizer: AdamWConfig;
  readonly ema: EmaConfig;
  /** Seed of the initialisation and of every step's z_0. */
  readonly seed: number;
  /** The store of the checkpoint folder, and the folder's URI in it. */
  readonly store: ObjectStore;
  readonly checkpointDir: string;
  /** Steps between checkpoints (one is always written at the last step). */
  readonly checkpointEvery: number;
  /** Checkpoints kept. */
  readonly keep: number;
  /** Resume from `checkpointDir/latest.json` when it exists. */
  readonly resume: boolean;
  /** Digest of the pair dataset (datasetDigest of its manifest); a resume must match it. */
  readonly dataManifestSha256: string;
  /** onnxruntime intra-op threads (ort engine). */
  readonly threads?: number;
  /**
   * Training engine (default `ort`: onnxruntime, CPU/CUDA). `tfjs`: TensorFlow.js (the trainer GPU
   * image's engine). Checkpoints do not record it: a run may resume on the other engine.
   */
  readonly engine?: TrainingEngineKind;
  /** tfjs backend (default `auto`); ignored by ort. */
  readonly tfjsBackend?: TfjsBackendChoice;
  /** One-line notes: which engine and backend run (and tfjs's backend choice). */
  readonly log?: (msg: string) => void;
  /** Called after every step. */
  readonly onStep?: (s: {
    step: number;
    loss: number;
    l1Last: number;
    stepSeconds: number;
    /** Seconds of this step in the allreduce (waiting for the other ranks included); 0 in one process. */
    commSeconds: number;
  }) => void;
  /** Polled after every step before the last; when true the stage checkpoints and returns early. */
  readonly shouldStop?: () => boolean;
  /**
   * The world of ranks this process trains in (default: one process). With N ranks, `batch` is the
   * global batch (a multiple of N), each rank computes the gradient of its contiguous slice, the
   * gradients are averaged by an allreduce, and rank 0 alone writes checkpoints
   * (src/train/data-parallel.ts). Every rank returns the same result.
   */
  readonly comm?: Communicator;
  /** Words for the batch option in errors (default `--batch`; the job spec's field is `batch`). */
  readonly batchField?: string;
}

export interface TrainResult {
  readonly params: ParamStore;
  /** EMA of the weights (what sampling uses). */
  readonly ema: ParamStore;
  /** Steps done in total, and the step this invocation started from. */
  readonly step: number;
  readonly resumedFrom: number;
  /** True when `shouldStop` ended training before `steps` (a checkpoint was written). */
  readonly interrupted: boolean;
  /** Weighted fixed-point-correction loss of the last step. */
  readonly lastLoss: number | null;
  /** Seconds of this invocation's loop, including batch loading and checkpoint writes. */
  readonly trainSeconds: number;
  /** Training images per second of this invocation (0 when it did no step). */
  readonly imagesPerSecond: number;
  /** MatMul flops of one step (forward ×3), for GFLOP/s. */
  readonly flopsPerStep: number;
  /** The engine and backend that ran, in words (TrainingEngine.describe). */
  readonly engine: string;
}

/**
 * Fills `out` (float32 [B·N·D]) with the fixed-point start state z_0 ~ N(0, I) of training step
 * `step`: a pure function of (seed, step), independent of the sampling stream of src/get/sampler.ts.
 */
export function trainZ0(seed: number, step: number, out: Float32Array): Float32Array {
  return new Rng(fmix32(fmix32(seed) ^ step)).fillNormal(out);
}

/**
 * Trains GET on `source`'s batches up to `o.steps` optimizer steps, from `o.checkpointDir`'s latest
 * checkpoint when resuming, checkpointing every `o.checkpointEvery` steps and at the last one.
 * @throws UsageError for a checkpoint that cannot resume this run, or a diverged loss; StoreError.
 */
export async function trainStage(source: BatchSource, o: TrainOptions): Promise<TrainResult> {
  const comm = o.comm ?? SINGLE_PROCESS;
  const local = perRankBatch(o.batch, comm.size, o.batchField ?? '--batch');
  await agreeOnOptions(comm, optionRecord(o));
  const engine = await createTrainingEngine(o.engine ?? 'ort', o.config, local, o.iterations, {
    threads: o.threads,
    tfjsBackend: o.tfjsBackend,
    log: o.log,
  });
  o.log?.(`training engine: ${engine.describe}`);
  try {
    const s = await startState(o, engine.specs);
    const resumedFrom = s.step;
    await agreeStart(comm, s, resumedFrom);
    const t0 = performance.now();
    const interrupted = await trainSteps(engine, source, o, s);
    const trainSeconds = (performance.now() - t0) / 1000;
    const done = s.step - resumedFrom;
    return {
      params: s.params,
      ema: s.ema,
      step: s.step,
      resumedFrom,
      interrupted,
      lastLoss: s.lastLoss,
      trainSeconds,
      imagesPerSecond: done > 0 ? (done * o.batch) / trainSeconds : 0,
      flopsPerStep: engine.flopsPerStep,
      engine: engine.describe,
    };
  } finally {
    await engine.close();
  }
}

/**
 * What every rank must be started with alike (compared across ranks at start): every option that
 * changes the trained weights or where they go. Threads and the tfjs backend are left out: they change
 * speed, not results, and may differ between machines.
 */
function optionRecord(o: TrainOptions): Record<string, unknown> {
  return {
    config: o.config,
    steps: o.steps,
    batch: o.batch,
    iterations: o.iterations,
    optimizer: o.optimizer,
    ema: o.ema,
    seed: o.seed,
    checkpointDir: o.checkpointDir,
    checkpointEvery: o.checkpointEvery,
    keep: o.keep,
    resume: o.resume,
    dataManifestSha256: o.dataManifestSha256,
    engine: o.engine ?? 'ort',
  };
}

/**
 * Makes every rank start from rank 0's state: a fresh run broadcasts rank 0's initial weights (and the EMA
 * becomes their copy again); a resumed one was read by every rank from the same latest.json. Either way
 * the ranks then compare a digest of the whole state.
 * @throws UsageError when any rank's state differs from rank 0's.
 */
async function agreeStart(comm: Communicator, s: TrainState, resumedFrom: number): Promise<void> {
  if (comm.size === 1) return;
  if (resumedFrom === 0) {
    await broadcastArrays(comm, [s.params.flat]);
    s.ema.flat.set(s.params.flat);
  }
  await agreeOnState(
    comm,
    [s.params.flat, s.ema.flat, s.adam.m, s.adam.v],
    [s.step, s.imagesSeen, s.adam.t],
    resumedFrom === 0 ? 'at the start' : `after resuming from step ${resumedFrom}`,
  );
}

/** What training changes and a checkpoint records: weights, their EMA, AdamW, and the counters. */
interface TrainState {
  readonly params: ParamStore;
  readonly ema: ParamStore;
  readonly adam: AdamW;
  step: number;
  imagesSeen: number;
  lastLoss: number | null;
}

/**
 * The state to train from: the latest checkpoint's when resuming from one, else fresh weights (seeded
 * by `o.seed`) with an EMA that starts as their exact copy (get-reference.md §4).
 * @throws UsageError when checkpoints exist without latest.json, or the checkpoint cannot resume this run.
 */
async function startState(o: TrainOptions, specs: TrainingEngine['specs']): Promise<TrainState> {
  const hasLatest = o.resume && (await hasCheckpoint(o.store, o.checkpointDir));
  if (o.resume && !hasLatest && (await listCheckpoints(o.store, o.checkpointDir)).length > 0) {
    throw new UsageError(
      `${o.checkpointDir} holds checkpoints but no latest.json; restore latest.json, ` +
        'or delete the folder to train from step 0',
    );
  }
  if (!hasLatest) {
    const params = initParams(specs, o.seed);
    const adam = new AdamW(o.optimizer, params.size);
    return { params, ema: params.clone(), adam, step: 0, imagesSeen: 0, lastLoss: null };
  }
  const { state, params, ema, adamM, adamV } = await loadLatestCheckpoint(o.store, o.checkpointDir, specs);
  checkResumable(state, o);
  const adam = new AdamW(o.optimizer, params.size, { m: adamM.flat, v: adamV.flat, t: state.adamSteps });
  return { params, ema, adam, step: state.step, imagesSeen: state.imagesSeen, lastLoss: state.loss };
}

/** @throws UsageError when checkpoint `ck` is past --steps, or was trained on other data or options. */
function checkResumable(ck: CheckpointState, o: TrainOptions): void {
  if (ck.step > o.steps) {
    throw new UsageError(
      `--steps ${o.steps} is below the checkpoint's step ${ck.step} in ${o.checkpointDir}; pass --steps ≥ ${ck.step}`,
    );
  }
  if (ck.dataManifestSha256 !== o.dataManifestSha256) {
    throw new UsageError(
      `${o.checkpointDir}: checkpoint was trained on another pair dataset (its shard digests differ); use a new --out`,
    );
  }
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (
    !same(ck.config, o.config) ||
    ck.batch !== o.batch ||
    ck.seed !== o.seed ||
    ck.iterations !== o.iterations ||
    !same(ck.optimizer, o.optimizer) ||
    !same(ck.ema, o.ema)
  ) {
    throw new UsageError(
      `${o.checkpointDir}: checkpoint has another model config, batch size, seed, iteration count, optimizer ` +
        'or EMA; resume with the original options or use a new --out',
    );
  }
}

/**
 * The optimizer steps from `s.step` to `o.steps`, updating `s` in place.
 * @returns true when `o.shouldStop` ended them early (after a checkpoint).
 * @throws UsageError when the loss is not finite.
 */
async function trainSteps(
  engine: TrainingEngine,
  source: BatchSource,
  o: TrainOptions,
  s: TrainState,
): Promise<boolean> {
  const comm = o.comm ?? SINGLE_PROCESS;
  const { rank, size } = comm;
  const P = s.params.size;
  const K = o.iterations;
  // [gradient | loss | L1_1..L1_K | stop flag]: one allreduce per step carries all a rank reports.
  const reduced = new Float32Array(size > 1 ? P + K + 2 : P);
  const grad = reduced.subarray(0, P);
  const tokens = numTokens(o.config) * o.config.hiddenSize;
  const z0 = new Float32Array(o.batch * tokens);
  const local = o.batch / size;
  while (s.step < o.steps) {
    const ts = performance.now();
    const data = await source.batch(s.step, o.batch);
    trainZ0(o.seed, s.step, z0);
    const mine = size > 1 ? sliceBatch(data, o.batch, rank, size) : data;
    let r = await engine.step(s.params, mine, sliceRows(z0, rank, local, tokens), grad);
    let stop = size > 1 && s.step + 1 < o.steps && (o.shouldStop?.() ?? false);
    const tc = performance.now();
    if (size > 1) ({ r, stop } = await averageAcrossRanks(comm, reduced, P, r, stop));
    const commSeconds = size > 1 ? (performance.now() - tc) / 1000 : 0;
    if (!Number.isFinite(r.loss))
      throw new UsageError(
        `training diverged at step ${s.step + 1} (loss ${r.loss}); lower --lr (now ${o.optimizer.lr})`,
      );
    s.adam.step(s.params.flat, grad);
    s.step += 1;
    s.imagesSeen += o.batch;
    emaUpdate(s.ema.flat, s.params.flat, emaDecay(o.ema, s.imagesSeen, o.batch));
    s.lastLoss = r.loss;
    const stepSeconds = (performance.now() - ts) / 1000;
    o.onStep?.({ step: s.step, loss: r.loss, l1Last: r.l1[r.l1.length - 1], stepSeconds, commSeconds });
    const saved = s.step % o.checkpointEvery === 0 || s.step === o.steps;
    if (saved && rank === 0) await save(o, s);
    // Yield to the event loop once per step: the tfjs engine computes synchronously and in-memory
    // batches resolve at once, so without this a service answers no probe and sees no SIGTERM or
    // DELETE until training ends.
    await new Promise<void>((r) => setImmediate(r));
    // One process polls its stop request after the step; ranks stop together, at the step whose
    // allreduce first carried a request.
    if (size === 1) stop = s.step < o.steps && (o.shouldStop?.() ?? false);
    if (stop) {
      if (!saved && rank === 0) await save(o, s);
      return true;
    }
  }
  return false;
}

/**
 * Sums [gradient | loss | L1… | stop] over the ranks in place and turns the sums into the means of the
 * global batch; a stop requested on any rank stops all.
 */
async function averageAcrossRanks(
  comm: Communicator,
  reduced: Float32Array,
  P: number,
  r: StepResult,
  stop: boolean,
): Promise<{ r: StepResult; stop: boolean }> {
  const K = r.l1.length;
  reduced[P] = r.loss;
  for (let k = 0; k < K; k++) reduced[P + 1 + k] = r.l1[k];
  reduced[P + 1 + K] = stop ? 1 : 0;
  await comm.allreduceSum(reduced);
  const inv = 1 / comm.size;
  for (let i = 0; i < P; i++) reduced[i] *= inv;
  return {
    r: { loss: reduced[P] * inv, l1: Array.from({ length: K }, (_, k) => reduced[P + 1 + k] * inv) },
    stop: reduced[P + 1 + K] > 0,
  };
}

/** Writes `s` as the checkpoint of its step (keeping the latest `o.keep`). */
function save(o: TrainOptions, s: TrainState): Promise<string> {
  const state: CheckpointState = {
    step: s.step,
    imagesSeen: s.imagesSeen,
    adamSteps: s.adam.t,
    config: o.config,
    optimizer: o.optimizer,
    ema: o.ema,
    batch: o.batch,
    iterations: o.iterations,
    seed: o.seed,
    dataManifestSha256: o.dataManifestSha256,
    loss: s.lastLoss,
  };
  const { params, ema, adam } = s;
  const adamM = new ParamStore(params.specs, adam.m);
  const adamV = new ParamStore(params.specs, adam.v);
  return saveCheckpoint(o.store, o.checkpointDir, { state, params, ema, adamM, adamV }, o.keep);
}
