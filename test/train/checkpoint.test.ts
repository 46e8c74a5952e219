import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/get/config.js';
import { Graph } from '../../src/graph/ir.js';
import { buildGet } from '../../src/get/model.js';
import { REFERENCE_ADAMW } from '../../src/train/optim.js';
import { initParams } from '../../src/train/params.js';
import {
  type CheckpointState,
  encodeCheckpoint,
  loadLatestCheckpoint,
  saveCheckpoint,
} from '../../src/train/checkpoint.js';
import { exportStage } from '../../src/stages/export.js';
import { UsageError } from '../../src/util/errors.js';
import { storeFor } from '../../src/store/index.js';

const cfg = resolveConfig('GET-CPU-XS/8', { numClasses: 10 });
const specs = buildGet(new Graph(), cfg, 1).specs;
const state = (step: number): CheckpointState => ({
  step,
  imagesSeen: step * 4,
  adamSteps: step,
  config: cfg,
  optimizer: REFERENCE_ADAMW,
  ema: { kind: 'constant', decay: 0.9999 },
  batch: 4,
  iterations: 6,
  seed: 0,
  dataManifestSha256: 'x',
  loss: null,
});

test('rotation keeps the new checkpoint and the newest older ones, and drops stale later ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'get-ck-'));
  try {
    const p = initParams(specs, 0);
    const ck = (step: number) => ({ state: state(step), params: p, ema: p, adamM: p, adamV: p });
    for (const s of [40, 50, 60]) await saveCheckpoint(storeFor(dir), dir, ck(s), 3);
    // A restart from step 0 (latest.json deleted) must not lose its own checkpoint to the stale 40–60.
    await saveCheckpoint(storeFor(dir), dir, ck(10), 2);
    assert.deepEqual(readdirSync(dir).sort(), ['checkpoint-000000010.safetensors', 'latest.json']);
    await saveCheckpoint(storeFor(dir), dir, ck(20), 2);
    await saveCheckpoint(storeFor(dir), dir, ck(30), 2);
    assert.deepEqual(readdirSync(dir).sort(), [
      'checkpoint-000000020.safetensors',
      'checkpoint-000000030.safetensors',
      'latest.json',
    ]);
    const back = await loadLatestCheckpoint(storeFor(dir), dir, specs);
    assert.equal(back.state.step, 30);
    assert.deepEqual(back.params.flat, p.flat);
    writeFileSync(join(dir, 'latest.json'), 'garbage');
    await assert.rejects(
      loadLatestCheckpoint(storeFor(dir), dir, specs),
      /latest.json: not a valid checkpoint pointer .*delete the checkpoints folder/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a checkpoint with a non-finite value is never written: the last finite one stays the latest', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'get-ck-nan-'));
  try {
    const p = initParams(specs, 0);
    await saveCheckpoint(storeFor(dir), dir, { state: state(10), params: p, ema: p, adamM: p, adamV: p }, 3);
    const latest = readFileSync(join(dir, 'latest.json'), 'utf8');
    // Only the EMA went bad (the loss of the step was finite): the case seen in the field.
    const ema = p.clone();
    ema.view('final_layer.linear.weight')[3] = Number.NaN;
    await assert.rejects(
      saveCheckpoint(storeFor(dir), dir, { state: state(20), params: p, ema, adamM: p, adamV: p }, 3),
      (e: Error) =>
        e instanceof UsageError &&
        /^checkpoint of step 20 not written: ema final_layer\.linear\.weight\[3\] is NaN; training diverged/.test(
          e.message,
        ),
    );
    const inf = p.clone();
    inf.flat[0] = Infinity;
    await assert.rejects(
      saveCheckpoint(storeFor(dir), dir, { state: state(20), params: inf, ema: p, adamM: p, adamV: p }, 3),
      /params .*\[0\] is Infinity/,
    );
    assert.deepEqual(readdirSync(dir).sort(), ['checkpoint-000000010.safetensors', 'latest.json']);
    assert.equal(readFileSync(join(dir, 'latest.json'), 'utf8'), latest);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exporting a checkpoint whose EMA holds a NaN is a one-line UsageError naming the weight', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'get-ck-nan-export-'));
  try {
    const p = initParams(specs, 0);
    const ema = p.clone();
    ema.view('final_layer.linear.weight')[3] = Number.NaN;
    const file = join(dir, 'checkpoint-000000020.safetensors');
    writeFileSync(file, encodeCheckpoint({ state: state(20), params: p, ema, adamM: p, adamV: p }));
    await assert.rejects(exportStage({ checkpoint: file, out: join(dir, 'model') }), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /the EMA weight final_layer\.linear\.weight\[3\] of step 20 is NaN/);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
    assert.deepEqual(readdirSync(dir), ['checkpoint-000000020.safetensors'], 'no model written');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
