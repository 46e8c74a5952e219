/**
 * The exported model (get-distill/model@1): parity with the training engine's forward pass, the card
 * and metadata round trip, structural validation (and its failures on broken models), and the export
 * stage on a checkpoint written by saveCheckpoint.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { type GetConfig, numTokens, referenceParamCount, resolveConfig } from '../../src/get/config.js';
import { MODEL_FORMAT, exportModel, readModelInfo } from '../../src/get/export.js';
import { paramSpecs } from '../../src/get/model.js';
import { z0ForSeed } from '../../src/get/sampler.js';
import { validateOnnx } from '../../src/graph/onnx-inspect.js';
import { type HostTensor, OrtSession } from '../../src/graph/session.js';
import { exportStage } from '../../src/stages/export.js';
import { storeFor } from '../../src/store/index.js';
import { type CheckpointState, saveCheckpoint } from '../../src/train/checkpoint.js';
import { OrtTrainingEngine } from '../../src/train/engine.js';
import { REFERENCE_ADAMW, REFERENCE_EMA } from '../../src/train/optim.js';
import { type ParamStore, initParams } from '../../src/train/params.js';
import { UsageError } from '../../src/util/errors.js';
import { sha256Hex } from '../../src/util/fsutil.js';
import { Rng } from '../../src/util/rng.js';

const { onnx } = onnxProto;
const root = mkdtempSync(join(tmpdir(), 'get-export-'));
after(() => rmSync(root, { recursive: true, force: true }));

const CONDITIONAL = resolveConfig('GET-CPU-XS/8', { numClasses: 10 });
const UNCONDITIONAL = resolveConfig('GET-CPU-XS/8', { channels: 3, patchSize: 4 }); // 3×32×32, 64 tokens
const K = 6;
const DIGEST = 'ab'.repeat(32);

/**
 * Reference init plus 0.2·N(0, 1) on every parameter (the zero-init decoder included, so images are
 * non-trivial), with the equilibrium blocks' output projections (attn.proj, mlp.fc2) scaled by 0.3:
 * then the residuals ‖z_k − z_{k−1}‖² wander by a few per cent, and the lowest lies at different k
 * for different samples (measured: iterates 1–6 all occur), so the per-sample choice is exercised.
 */
function weights(cfg: GetConfig, seed: number): ParamStore {
  const p = initParams(paramSpecs(cfg), seed);
  const r = new Rng(seed + 100);
  for (const s of p.specs) {
    const v = p.view(s.name);
    const damp = /^deq_blocks\.\d+\.(attn\.proj|mlp\.fc2)\.weight$/.test(s.name) ? 0.3 : 1;
    for (let i = 0; i < v.length; i++) v[i] = (v[i] + 0.2 * r.normal()) * damp;
  }
  return p;
}

/** Runs an exported model on noise, labels and the z0 of `seeds`. */
async function runExported(
  bytes: Uint8Array,
  cfg: GetConfig,
  noise: Float32Array,
  labels: Int32Array | null,
  z0: Float32Array,
): Promise<Record<string, HostTensor>> {
  const B = noise.length / (cfg.channels * cfg.imageSize ** 2);
  const feeds: Record<string, HostTensor> = {
    noise: { dtype: 'float32', dims: [B, cfg.channels, cfg.imageSize, cfg.imageSize], data: noise },
    z0: { dtype: 'float32', dims: [B, numTokens(cfg), cfg.hiddenSize], data: z0 },
  };
  if (labels) feeds.class_labels = { dtype: 'int64', dims: [B], data: BigInt64Array.from(labels, BigInt) };
  const s = await OrtSession.create(bytes, { threads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

for (const [title, cfg] of [
  ['conditional GET-CPU-XS/8, 10 classes', CONDITIONAL],
  ['unconditional 3×32×32, patch 4', UNCONDITIONAL],
] as const) {
  test(`exported model = training engine's lowest-residual iterate, ${title}`, async () => {
    const B = 8;
    const P = cfg.channels * cfg.imageSize ** 2;
    const ND = numTokens(cfg) * cfg.hiddenSize;
    const params = weights(cfg, 3);
    const rng = new Rng(7);
    const noise = rng.fillNormal(new Float32Array(B * P));
    const labels = cfg.numClasses > 0 ? Int32Array.of(0, 3, 9, 5, 1, 2, 7, 8) : null;
    const z0 = new Float32Array(B * ND);
    for (let i = 0; i < B; i++) z0.set(z0ForSeed(20 + i, ND), i * ND);

    const engine = await OrtTrainingEngine.create(cfg, B, K, 1, { iterates: true });
    const fwd = await engine.forward(params, { noise, image: new Float32Array(B * P), labels }, z0);
    await engine.close();
    const { onnx: bytes } = exportModel(cfg, (n) => params.view(n), {
      iterations: K,
      step: 0,
      dataManifestSha256: DIGEST,
    });
    const out = await runExported(bytes, cfg, noise, labels, z0);

    let maxDiff = 0;
    const chosen: number[] = [];
    for (let b = 0; b < B; b++) {
      // Residual of iterate k: ‖z_k − z_{k−1}‖² (float64); the first minimum wins, as inferenceOutput does.
      let best = 0;
      let bestR = Infinity;
      for (let k = 0; k < K; k++) {
        const cur = fwd.states[k].subarray(b * ND, (b + 1) * ND);
        const prev = k === 0 ? z0.subarray(b * ND, (b + 1) * ND) : fwd.states[k - 1].subarray(b * ND, (b + 1) * ND);
        let r = 0;
        for (let i = 0; i < ND; i++) r += (cur[i] - prev[i]) ** 2;
        if (r < bestR) [best, bestR] = [k, r];
      }
      chosen.push(best + 1);
      const want = fwd.images[best].subarray(b * P, (b + 1) * P);
      const got = (out.image.data as Float32Array).subarray(b * P, (b + 1) * P);
      for (let i = 0; i < P; i++) maxDiff = Math.max(maxDiff, Math.abs(want[i] - got[i]));
      assert.ok(
        Math.abs((out.residual2.data as Float32Array)[b] - bestR) <= 1e-4 * bestR,
        `sample ${b}: residual² ${(out.residual2.data as Float32Array)[b]} vs ${bestR}`,
      );
      assert.ok(
        want.some((v) => Math.abs(v) > 0.5),
        'non-trivial image',
      );
    }
    const peak = (out.image.data as Float32Array).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    console.log(
      `# ${title}: max |Δ| = ${maxDiff.toExponential(2)} (max |image| ${peak.toFixed(2)}), ` +
        `chosen iterates ${chosen.join(',')}`,
    );
    assert.ok(maxDiff <= 1e-4, `max |exported − engine| = ${maxDiff}`);
    // The choice matters: some samples take a later iterate, whose image is far from x̂_1's.
    const later = chosen.findIndex((k) => k > 1);
    assert.ok(later >= 0, `every sample took iterate 1 (${chosen.join(',')}); the test would not see the choice`);
    const gap = fwd.images[0]
      .subarray(later * P, (later + 1) * P)
      .reduce((m, v, i) => Math.max(m, Math.abs(v - fwd.images[chosen[later] - 1][later * P + i])), 0);
    assert.ok(gap > 1e-2, `x̂_1 and x̂_${chosen[later]} differ by only ${gap}`);
  });
}

test('card and metadata round trip: readModelInfo, sha256, parameter count', () => {
  const cfg = CONDITIONAL;
  const params = weights(cfg, 4);
  const { onnx: bytes, card } = exportModel(cfg, (n) => params.view(n), {
    iterations: 4,
    step: 1234,
    dataManifestSha256: DIGEST,
    createdAt: '2025-01-02T03:04:05.000Z',
  });
  const info = readModelInfo(bytes, 'model.onnx');
  assert.deepEqual(info.config, cfg);
  assert.equal(info.iterations, 4);
  assert.equal(info.step, 1234);
  assert.equal(info.dataManifestSha256, DIGEST);
  assert.equal(info.tokens, 16);
  assert.deepEqual(info.inputs, [
    { name: 'noise', dtype: 'float32', dims: ['batch', 1, 32, 32] },
    { name: 'class_labels', dtype: 'int64', dims: ['batch'] },
    { name: 'z0', dtype: 'float32', dims: ['batch', 16, 32] },
  ]);
  assert.deepEqual(info.outputs, [
    { name: 'image', dtype: 'float32', dims: ['batch', 1, 32, 32] },
    { name: 'residual2', dtype: 'float32', dims: ['batch'] },
  ]);
  assert.equal(card.format, MODEL_FORMAT);
  assert.equal(card.sha256, sha256Hex(bytes));
  assert.equal(card.bytes, bytes.length);
  assert.deepEqual(card.inputs, info.inputs);
  // Trainable parameters + the frozen positional embedding N·D = the reference's closed form.
  assert.equal(card.parameterCount, params.size + 16 * 32);
  assert.equal(card.parameterCount, referenceParamCount(cfg));
  assert.throws(() => readModelInfo(bytes.subarray(0, 100), 'cut.onnx'), /cut\.onnx: not an ONNX model/);
});

/** Decodes a model, lets `edit` break it, and re-encodes it. */
function broken(bytes: Uint8Array, edit: (m: onnxProto.onnx.ModelProto) => void): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  edit(m);
  return onnx.ModelProto.encode(m).finish();
}

test('validateOnnx passes the export at batch 1 and 3, and names the fault in broken models', async () => {
  const cfg = UNCONDITIONAL;
  const params = weights(cfg, 5);
  const { onnx: bytes } = exportModel(cfg, (n) => params.view(n), {
    iterations: 2,
    step: 0,
    dataManifestSha256: DIGEST,
  });
  const v = await validateOnnx(bytes, 'm.onnx');
  assert.deepEqual(v.observed, {
    1: { image: [1, 3, 32, 32], residual2: [1] },
    3: { image: [3, 3, 32, 32], residual2: [3] },
  });
  assert.ok(
    v.initializerElements >= params.size,
    `${v.initializerElements} float initializer elements < ${params.size} parameters`,
  );

  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  const node = g.node!.findIndex((n) => n.opType === 'MatMul');
  const nodeName = g.node![node].name;
  const weight = g.initializer!.find((t) => t.name === 'deq_blocks.0.mlp.fc1.weight')!;
  const shapeConst = g.node!.find((n) => n.opType === 'Reshape')!.input![1];
  const cases: [string, (m: onnxProto.onnx.ModelProto) => void, RegExp][] = [
    [
      'undefined input',
      (x) => {
        x.graph!.node![node].input![0] = 'nowhere';
      },
      new RegExp(
        `node ${nodeName} \\(MatMul\\) input 'nowhere' is not a graph input, ` +
          `an initializer or an earlier node's output`,
      ),
    ],
    [
      'nodes out of order',
      (x) => {
        x.graph!.node!.reverse();
      },
      /input '.*' is not a graph input, an initializer or an earlier node's output/,
    ],
    [
      'wrong initializer size',
      (x) => {
        const t = x.graph!.initializer!.find((i) => i.name === weight.name)!;
        t.rawData = t.rawData!.subarray(0, t.rawData!.length - 4);
      },
      /initializer 'deq_blocks\.0\.mlp\.fc1\.weight' \[32,64\] should hold 2048 elements, its data holds 2047/,
    ],
    [
      'duplicate output',
      (x) => {
        x.graph!.node![node + 1].output![0] = x.graph!.node![node].output![0];
      },
      /output '.*' is already the output of node/,
    ],
    [
      'unproduced graph output',
      (x) => {
        x.graph!.output![0].name = 'picture';
      },
      /graph output 'picture' is not produced by any node/,
    ],
    [
      'opset 16',
      (x) => {
        x.opsetImport![0].version = 16;
      },
      /opset is 16, expected 17/,
    ],
    [
      'wrong declared dims',
      (x) => {
        x.graph!.output![0].type!.tensorType!.shape!.dim![3] = { dimValue: 31 };
      },
      /output 'image' has dims \[1,3,32,32\] at batch 1, declared \[batch,3,32,31\]/,
    ],
    [
      'batch fixed at 1 in a Reshape',
      (x) => {
        const t = x.graph!.initializer!.find((i) => i.name === shapeConst)!;
        const dims = new BigInt64Array(Uint8Array.from(t.rawData!).buffer);
        dims[0] = 1n; // was −1 (the symbolic batch)
        t.rawData = new Uint8Array(dims.buffer);
      },
      /fails at batch 3 .*is the batch dim really dynamic\?/,
    ],
  ];
  for (const [what, edit, pattern] of cases) {
    await assert.rejects(
      validateOnnx(broken(bytes, edit), 'm.onnx'),
      (e: Error) => {
        assert.match(e.message, /^m\.onnx: /, what);
        assert.match(e.message, pattern, what);
        return true;
      },
      what,
    );
  }
});

/** A checkpoint whose EMA differs from its params, written with saveCheckpoint into `dir`. */
async function writeCheckpoint(
  dir: string,
  cfg: GetConfig,
  step: number,
): Promise<{ ema: ParamStore; params: ParamStore }> {
  const params = weights(cfg, 6);
  const ema = weights(cfg, 7);
  const state: CheckpointState = {
    step,
    imagesSeen: step * 8,
    adamSteps: step,
    config: cfg,
    optimizer: REFERENCE_ADAMW,
    ema: REFERENCE_EMA,
    batch: 8,
    iterations: 3,
    seed: 0,
    dataManifestSha256: DIGEST,
    loss: 0.25,
  };
  await saveCheckpoint(storeFor(dir), dir, { state, params, ema, adamM: params.clone(), adamV: params.clone() }, 2);
  return { ema, params };
}

test('export stage: checkpoint folder or file → model.onnx (EMA weights) then model.json', async () => {
  const cfg = CONDITIONAL;
  const dir = join(root, 'run', 'checkpoints');
  const { ema, params } = await writeCheckpoint(dir, cfg, 40);
  const out = join(root, 'run');
  const createdAt = '2025-06-07T08:09:10.000Z';
  const r = await exportStage({ checkpoint: dir, out, createdAt });
  assert.equal(r.modelUri, join(out, 'model.onnx'));
  const bytes = new Uint8Array(readFileSync(r.modelUri));
  const card = JSON.parse(readFileSync(r.cardUri, 'utf8'));
  // Byte-identical to exporting the EMA in memory (the params would give other bytes).
  const want = exportModel(cfg, (n) => ema.view(n), { iterations: 3, step: 40, dataManifestSha256: DIGEST, createdAt });
  assert.equal(sha256Hex(bytes), want.card.sha256);
  assert.notEqual(
    exportModel(cfg, (n) => params.view(n), { iterations: 3, step: 40, dataManifestSha256: DIGEST }).card.sha256,
    want.card.sha256,
  );
  assert.deepEqual(card, JSON.parse(JSON.stringify(want.card)));
  assert.equal(card.step, 40);
  assert.equal(card.iterations, 3);
  assert.equal(readModelInfo(bytes, r.modelUri).step, 40);

  const single = await exportStage({
    checkpoint: join(dir, 'checkpoint-000000040.safetensors'),
    out: `file://${join(root, 'single')}`,
    createdAt,
  });
  assert.equal(single.card.sha256, want.card.sha256);
  assert.equal(single.modelUri, `file://${join(root, 'single', 'model.onnx')}`);
});

test('export stage: missing, foreign and corrupt checkpoints are UsageErrors naming the URI', async () => {
  const out = join(root, 'bad-out');
  const usage = (uri: string, pattern: RegExp) =>
    assert.rejects(exportStage({ checkpoint: uri, out }), (e: Error) => {
      assert.ok(e instanceof UsageError, `${e.name}: ${e.message}`);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
  const missing = join(root, 'nope');
  await usage(missing, new RegExp(`^${missing}: no checkpoint there`));
  const text = join(root, 'notes.txt');
  writeFileSync(text, 'not a checkpoint at all');
  await usage(text, /notes\.txt: not a checkpoint \(checkpoints are checkpoint-<step>\.safetensors objects\)/);
  const fake = join(root, 'fake.safetensors');
  writeFileSync(fake, 'not a checkpoint at all');
  await usage(fake, /fake\.safetensors: corrupt safetensors file: .*; not a get-distill-checkpoint\/1 file/);
  const dir = join(root, 'corrupt', 'checkpoints');
  await writeCheckpoint(dir, UNCONDITIONAL, 7);
  const file = join(dir, 'checkpoint-000000007.safetensors');
  truncateSync(file, 5000);
  await usage(dir, /checkpoint-000000007\.safetensors: checkpoint is corrupt or truncated/);
  await usage(file, /checkpoint-000000007\.safetensors: corrupt safetensors file/);
  await usage('ftp://host/ck', /unknown URI scheme "ftp:\/\/"/);
  assert.throws(() => readFileSync(join(out, 'model.json')), /ENOENT/, 'nothing written');
});
