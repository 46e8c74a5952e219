/**
 * The train stage: GET on pair shards with AdamW and EMA, checkpointing and resuming
 * (locuslab/get train.py; get-reference.md §4). Batches and z_0 are pure functions of (seed, step),
 * so N steps + kill + resume equals one straight run.
 */
import { mkdir } from 'node:fs/promises';
import { numTokens, type GetConfig } from '../get/config.js';
import { OrtTrainingEngine, type PairBatch } from '../train/engine.js';
import { AdamW, type AdamWConfig, type EmaConfig, emaDecay, emaUpdate } from '../train/optim.js';
import { initParams, ParamStore } from '../train/params.js';
import { type CheckpointState, hasCheckpoint, listCheckpoints, loadLatestCheckpoint, saveCheckpoint } from '../train/checkpoint.js';
import { Rng, fmix32 } from '../util/rng.js';
import { UsageError } from '../util/errors.js';

/** Where batches come from: batch `step` of a deterministic stream (a pure function of seed and step). */
export interface BatchSource {
  batch(step: number, size: number): Promise<PairBatch>;
}

export interface TrainOptions {
  readonly config: GetConfig;
  readonly steps: number;
  readonly batch: number;
  readonly iterations: number;
  readonly optimizer: AdamWConfig;
  readonly ema: EmaConfig;
  readonly seed: number;
  readonly checkpointDir: string;
  readonly checkpointEvery: number;
  readonly keep: number;
  /** Resume from `checkpointDir/latest.json` when it exists. */
  readonly resume: boolean;
  readonly dataManifestSha256: string;
  readonly threads?: number;
  /** Called after every step. */
  readonly onStep?: (s: { step: number; loss: number; l1Last: number; stepSeconds: number }) => void;
  /** Polled between steps; when true the stage checkpoints and returns early. */
  readonly shouldStop?: () => boolean;
}

export interface TrainResult {
  readonly params: ParamStore;
  readonly ema: ParamStore;
  readonly step: number;
  readonly resumedFrom: number;
  readonly lastLoss: number | null;
  readonly trainSeconds: number;
  readonly imagesPerSecond: number;
  readonly flopsPerStep: number;
}

/** z_0 ~ N(0, I) [B,N,D] for training step `step`. */
export function trainZ0(seed: number, step: number, size: number): Float32Array {
  return new Rng(fmix32(fmix32(seed) ^ step)).fillNormal(new Float32Array(size));
}

export async function trainStage(source: BatchSource, o: TrainOptions): Promise<TrainResult> {
  await mkdir(o.checkpointDir, { recursive: true });
  const engine = await OrtTrainingEngine.create(o.config, o.batch, o.iterations, o.threads);
  try {
    let params: ParamStore;
    let ema: ParamStore;
    let adam: AdamW;
    let step = 0;
    let imagesSeen = 0;
    let lastLoss: number | null = null;
    if (o.resume && !(await hasCheckpoint(o.checkpointDir)) && (await listCheckpoints(o.checkpointDir)).length > 0) {
      throw new UsageError(`${o.checkpointDir} holds checkpoints but no latest.json; restore latest.json, or delete the folder to train from step 0`);
    }
    if (o.resume && (await hasCheckpoint(o.checkpointDir))) {
      const ck = await loadLatestCheckpoint(o.checkpointDir, engine.specs);
      if (ck.state.step > o.steps) {
        throw new UsageError(`--steps ${o.steps} is below the checkpoint's step ${ck.state.step} in ${o.checkpointDir}; pass --steps ≥ ${ck.state.step}`);
      }
      if (ck.state.dataManifestSha256 !== o.dataManifestSha256) {
        throw new UsageError(`${o.checkpointDir}: checkpoint was trained on another pair dataset (manifest sha256 differs); use a new --out`);
      }
      if (JSON.stringify(ck.state.config) !== JSON.stringify(o.config) || ck.state.batch !== o.batch) {
        throw new UsageError(`${o.checkpointDir}: checkpoint has another model config or batch size; resume with the original options or use a new --out`);
      }
      ({ params, ema } = ck);
      adam = new AdamW(o.optimizer, params.size, { m: ck.adamM.flat, v: ck.adamV.flat, t: ck.state.adamSteps });
      step = ck.state.step;
      imagesSeen = ck.state.imagesSeen;
      lastLoss = ck.state.loss;
    } else {
      params = initParams(engine.specs, o.seed);
      ema = params.clone(); // the EMA starts as an exact copy (get-reference.md §4)
      adam = new AdamW(o.optimizer, params.size);
    }
    const resumedFrom = step;
    const grad = new Float32Array(params.size);
    const z0Size = o.batch * numTokens(o.config) * o.config.hiddenSize;
    const save = () => {
      const state: CheckpointState = {
        step, imagesSeen, adamSteps: adam.t, config: o.config, optimizer: o.optimizer, ema: o.ema, batch: o.batch,
        iterations: o.iterations, seed: o.seed, dataManifestSha256: o.dataManifestSha256, loss: lastLoss,
      };
      return saveCheckpoint(o.checkpointDir, { state, params, ema, adamM: new ParamStore(params.specs, adam.m), adamV: new ParamStore(params.specs, adam.v) }, o.keep);
    };
    const t0 = performance.now();
    while (step < o.steps) {
      const ts = performance.now();
      const data = await source.batch(step, o.batch);
      const r = await engine.step(params, data, trainZ0(o.seed, step, z0Size), grad);
      if (!Number.isFinite(r.loss)) throw new UsageError(`training diverged at step ${step + 1} (loss ${r.loss}); lower --lr (now ${o.optimizer.lr})`);
      adam.step(params.flat, grad);
      step += 1;
      imagesSeen += o.batch;
      emaUpdate(ema.flat, params.flat, emaDecay(o.ema, imagesSeen, o.batch));
      lastLoss = r.loss;
      o.onStep?.({ step, loss: r.loss, l1Last: r.l1[r.l1.length - 1], stepSeconds: (performance.now() - ts) / 1000 });
      if (step % o.checkpointEvery === 0 || step === o.steps) await save();
      if (o.shouldStop?.()) {
        if (step % o.checkpointEvery !== 0) await save();
        break;
      }
    }
    const trainSeconds = (performance.now() - t0) / 1000;
    const done = step - resumedFrom;
    return { params, ema, step, resumedFrom, lastLoss, trainSeconds, imagesPerSecond: done > 0 ? (done * o.batch) / trainSeconds : 0, flopsPerStep: engine.flopsPerStep };
  } finally {
    await engine.close();
  }
}
