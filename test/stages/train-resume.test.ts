import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/get/config.js';
import { REFERENCE_ADAMW } from '../../src/train/optim.js';
import { storeFor } from '../../src/store/index.js';
import { trainStage, type BatchSource, type TrainOptions } from '../../src/stages/train.js';
import { Rng } from '../../src/util/rng.js';

const cfg = resolveConfig('GET-CPU-XS/8', { numClasses: 10 });
const B = 4;
const P = 32 * 32;

/** Batch `step` is a pure function of the step, like the PairStream adapter. */
const source: BatchSource = {
  async batch(step) {
    const r = new Rng(1000 + step);
    return {
      noise: r.fillNormal(new Float32Array(B * P)),
      image: r.fillNormal(new Float32Array(B * P), 0.5),
      labels: Int32Array.from({ length: B }, () => r.int(10)),
    };
  },
};

function options(dir: string, steps: number, resume: boolean): TrainOptions {
  return {
    config: cfg,
    steps,
    batch: B,
    iterations: 3,
    optimizer: { ...REFERENCE_ADAMW, lr: 1e-3 },
    ema: { kind: 'halflife', halflifeImages: 100, rampupRatio: 0.05 },
    seed: 7,
    store: storeFor(dir),
    checkpointDir: dir,
    checkpointEvery: 3,
    keep: 2,
    resume,
    dataManifestSha256: 'test',
    threads: 1,
  };
}

test('3 steps + resume to 6 equals 6 straight steps (step, weights, EMA)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'get-resume-'));
  try {
    const straight = await trainStage(source, options(join(root, 'a'), 6, false));
    const first = await trainStage(source, options(join(root, 'b'), 3, false));
    assert.equal(first.step, 3);
    const resumed = await trainStage(source, options(join(root, 'b'), 6, true));
    assert.equal(resumed.resumedFrom, 3);
    assert.equal(resumed.step, 6);
    assert.equal(straight.step, 6);
    let maxDiff = 0;
    for (let i = 0; i < straight.params.size; i++) {
      maxDiff = Math.max(
        maxDiff,
        Math.abs(straight.params.flat[i] - resumed.params.flat[i]),
        Math.abs(straight.ema.flat[i] - resumed.ema.flat[i]),
      );
    }
    assert.ok(maxDiff <= 1e-7, `max |Δ| = ${maxDiff}`);
    // Training moved the weights (the decoder starts at zero).
    assert.ok(straight.params.view('final_layer.linear.weight').some((v) => v !== 0));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('resuming with another batch size, seed, iterations or optimizer is refused, naming the checkpoint', async () => {
  const root = mkdtempSync(join(tmpdir(), 'get-resume-'));
  try {
    await trainStage(source, options(root, 3, false));
    for (const change of [
      { batch: 2 },
      { seed: 8 },
      { iterations: 2 },
      { optimizer: { ...REFERENCE_ADAMW, lr: 5e-4 } },
    ]) {
      await assert.rejects(
        trainStage(source, { ...options(root, 6, true), ...change }),
        /another model config, batch size, seed, iteration count, optimizer or EMA/,
        JSON.stringify(change),
      );
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('shouldStop checkpoints once and reports interrupted, unless the last step was reached', async () => {
  const root = mkdtempSync(join(tmpdir(), 'get-resume-'));
  try {
    const stopped = await trainStage(source, {
      ...options(join(root, 'a'), 3, false),
      checkpointEvery: 10,
      shouldStop: () => true,
    });
    assert.equal(stopped.step, 1);
    assert.equal(stopped.interrupted, true);
    assert.deepEqual(readdirSync(join(root, 'a')).sort(), ['checkpoint-000000001.safetensors', 'latest.json']);
    const finished = await trainStage(source, {
      ...options(join(root, 'b'), 1, false),
      checkpointEvery: 10,
      shouldStop: () => true,
    });
    assert.equal(finished.step, 1);
    assert.equal(finished.interrupted, false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
