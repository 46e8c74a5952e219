import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import { OrtSession } from '../../src/graph/session.js';
import { PRESETS, referenceParamCount, resolveConfig, numTokens } from '../../src/get/config.js';
import { buildGet, correctionWeights, inferenceOutput, sinCosPosEmbed } from '../../src/get/model.js';
import { initParams } from '../../src/train/params.js';
import { Rng } from '../../src/util/rng.js';

// Unconditional parameter counts from locuslab/get STAT.md via get-reference.md §2.7
// (model.parameters(), which includes the frozen positional embedding).
const REFERENCE_COUNTS: Record<string, number> = {
  'GET-T/2': 8_558_092,
  'GET-M/2': 19_177_740,
  'GET-S/2': 37_173_260,
  'GET-B/2': 62_207_244,
  'GET-B+/2': 83_481_612,
};

function graphParamCount(preset: string, numClasses = 0): number {
  const cfg = resolveConfig(preset, { numClasses });
  const m = buildGet(new Graph(), cfg, 'batch');
  const trainable = m.specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  return trainable + m.posEmbed.length;
}

for (const [preset, count] of Object.entries(REFERENCE_COUNTS)) {
  test(`${preset}: graph parameters + frozen pos-embed = ${count} (reference) = closed form`, () => {
    assert.equal(graphParamCount(preset), count);
    assert.equal(referenceParamCount(resolveConfig(preset)), count);
  });
}

test('GET-B/2 conditional adds the 10×3D class table: 62,230,284', () => {
  assert.equal(graphParamCount('GET-B/2', 10), 62_230_284);
});

test('presets validate: unknown preset and a patch that does not divide the image are named', () => {
  assert.throws(() => resolveConfig('GET-X/2'), /unknown preset "GET-X\/2"/);
  assert.throws(() => resolveConfig('GET-CPU-S/4', { patchSize: 5 }), /patch size 5 does not divide the image size 32/);
  for (const p of Object.keys(PRESETS)) assert.doesNotThrow(() => resolveConfig(p));
});

test('fixed-point-correction weights are 0.8^(6-k): 0.32768 … 1', () => {
  const w = correctionWeights(6);
  const expected = [0.32768, 0.4096, 0.512, 0.64, 0.8, 1];
  w.forEach((x, i) => assert.ok(Math.abs(x - expected[i]) < 1e-15, `${x} vs ${expected[i]}`));
  assert.ok(Math.abs(w.reduce((a, b) => a + b) - 3.68928) < 1e-12);
});

test('sin-cos positional embedding: column in the first half, row in the second (grid 4, D 8)', () => {
  const pe = sinCosPosEmbed(8, 4);
  const D = 8;
  // token n = i·4 + j with i = 1, j = 2; ω = [1, 1/100]
  const row = pe.subarray((1 * 4 + 2) * D, (1 * 4 + 3) * D);
  const expect = [
    Math.sin(2),
    Math.sin(0.02),
    Math.cos(2),
    Math.cos(0.02),
    Math.sin(1),
    Math.sin(0.01),
    Math.cos(1),
    Math.cos(0.01),
  ];
  expect.forEach((e, k) => assert.ok(Math.abs(row[k] - e) < 1e-6, `dim ${k}: ${row[k]} vs ${e}`));
});

test('GET-CPU-S/4 conditional: output is exactly zero at initialisation (zero decoder), batch 3', async () => {
  const cfg = resolveConfig('GET-CPU-S/4', { numClasses: 10 });
  const g = new Graph('get_infer');
  const m = buildGet(g, cfg, 'batch');
  const { image, residual2 } = inferenceOutput(m, 'batch');
  const params = initParams(m.specs, 0);
  const s = await OrtSession.create(
    toOnnx(g, { outputs: { image, residual2 }, paramValues: (p) => params.view(p.name) }),
  );
  const B = 3;
  const rng = new Rng(1);
  const out = await s.run({
    noise: { dtype: 'float32', dims: [B, 1, 32, 32], data: rng.fillNormal(new Float32Array(B * 1024)) },
    class_labels: { dtype: 'int64', dims: [B], data: BigInt64Array.of(0n, 4n, 9n) },
    z0: {
      dtype: 'float32',
      dims: [B, numTokens(cfg), cfg.hiddenSize],
      data: rng.fillNormal(new Float32Array(B * numTokens(cfg) * cfg.hiddenSize)),
    },
  });
  assert.deepEqual(out.image.dims, [B, 1, 32, 32]);
  assert.ok((out.image.data as Float32Array).every((v) => v === 0));
  assert.ok((out.residual2.data as Float32Array).every((v) => v > 0 && Number.isFinite(v)));
});
