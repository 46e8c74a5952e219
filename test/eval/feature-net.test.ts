/**
 * The embedded feature networks (assets/feature-nets): each ONNX file matches its model card, reaches
 * the card's exact test accuracy (≥ 99% MNIST, ≥ 90% Fashion-MNIST) when run in onnxruntime on the
 * full test split, and gives finite features with a full-rank covariance; the input quantisation
 * recovers u8/255 from dataset images; training is deterministic.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadDataset } from '../../src/data/datasets.js';
import {
  EMBEDDED_FEATURE_NETS,
  covarianceEigenRange,
  embeddedFeatureNet,
  exportFeatureNet,
  featureNetAssetDir,
  runFeatureNet,
  toUnitRange,
  trainFeatureNet,
} from '../../src/eval/feature-net.js';
import { sha256Hex } from '../../src/util/fsutil.js';

test('toUnitRange: a dataset byte u8 (x = u8/127.5 − 1 in float32) gives u8/255 exactly; out of range clips', () => {
  const x = Float32Array.from({ length: 256 }, (_, u8) => u8 / 127.5 - 1);
  const v = toUnitRange(x);
  for (let u8 = 0; u8 < 256; u8++) assert.equal(v[u8], Math.fround(u8 / 255), `byte ${u8}`);
  // floor(x·127.5 + 128): 0 → 128 (round half up), ±2 and ±∞ clip to 0 / 255.
  assert.deepEqual(
    [...toUnitRange(Float32Array.of(0, 2, -2, Infinity, -Infinity))],
    [128 / 255, 1, 0, 1, 0].map(Math.fround),
  );
});

const BAR = { mnist: 0.99, 'fashion-mnist': 0.9 } as const;

for (const dataset of EMBEDDED_FEATURE_NETS) {
  test(`${dataset}: the committed ONNX matches its card; onnxruntime accuracy ≥ ${BAR[dataset]}`, async () => {
    const { onnx, card } = await embeddedFeatureNet(dataset);
    assert.equal(card.bytes, onnx.length);
    assert.equal(card.sha256, sha256Hex(onnx));
    assert.ok(onnx.length <= 2 * 1024 * 1024, `${onnx.length} bytes`);
    // 16·25 + 16 + 32·16·25 + 32 + 2048·128 + 128 + 128·10 + 10 float32 weights, plus the graph (~1.3 kB).
    assert.equal(card.parameterCount, 276810);
    assert.ok(onnx.length > 4 * 276810 && onnx.length < 4 * 276810 + 4096, `${onnx.length} bytes`);
    assert.ok(card.testAccuracy >= BAR[dataset], `card test accuracy ${card.testAccuracy}`);

    const data = await loadDataset(dataset, 'test');
    const run = await runFeatureNet(onnx, data);
    assert.equal(run.n, 10000);
    assert.equal(run.correct / run.n, card.testAccuracy);
    const F = card.outputs.features.dim;
    assert.equal(F, 128);
    assert.equal(run.features.length, run.n * F);
    assert.equal(run.logits.length, run.n * card.outputs.logits.classes);
    assert.ok(run.features.every(Number.isFinite) && run.logits.every(Number.isFinite));
    // FID takes the square root of this covariance: it must be positive definite (no dead units).
    const eig = await covarianceEigenRange(run.features, run.n);
    assert.ok(eig.min > 1e-7 * eig.max, `feature covariance eigenvalues ${eig.min} … ${eig.max}`);
    assert.ok(Math.abs(eig.min - card.testFeatureCovariance.minEigenvalue) <= 1e-6 * eig.max);
  });
}

test('embeddedFeatureNet refuses ONNX bytes that do not match the card, naming the fix', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'feature-net-'));
  try {
    await copyFile(join(featureNetAssetDir(), 'mnist.json'), join(dir, 'mnist.json'));
    const bytes = await readFile(join(featureNetAssetDir(), 'mnist.onnx'));
    bytes[bytes.length - 1] ^= 1;
    await writeFile(join(dir, 'mnist.onnx'), bytes);
    await assert.rejects(
      embeddedFeatureNet('mnist', `${dir}/`),
      /mnist\.onnx \(\d+ bytes\) does not match its model card .*train-feature-nets\.ts --dataset mnist/,
    );
    await assert.rejects(
      embeddedFeatureNet('fashion-mnist', `${dir}/`),
      /fashion-mnist\.onnx cannot be read \(ENOENT\)/,
    );
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('deterministic training: 20 steps on 512 MNIST images twice → the same ONNX bytes; the loss falls', async () => {
  const train = await loadDataset('mnist', 'train');
  const opts = {
    epochs: 3,
    batch: 64,
    lr: 2e-3,
    warmupSteps: 5,
    weightDecay: 0.01,
    seed: 3,
    threads: 2,
    limit: 512,
    maxSteps: 20,
  };
  const losses: number[] = [];
  const a = await trainFeatureNet(train, { ...opts, onStep: (_s, _t, l) => losses.push(l) });
  const b = await trainFeatureNet(train, opts);
  assert.equal(a.steps, 20);
  assert.equal(sha256Hex(exportFeatureNet(a.params, 'mnist')), sha256Hex(exportFeatureNet(b.params, 'mnist')));
  assert.deepEqual(a.params.flat, b.params.flat);
  const c = await trainFeatureNet(train, { ...opts, seed: 4 });
  assert.notDeepEqual(a.params.flat, c.params.flat);
  // Cross-entropy of 10 classes starts near ln 10 ≈ 2.30 and falls within 20 steps.
  assert.ok(losses[0] > 1.9 && losses[0] < 2.7, `first loss ${losses[0]}`);
  assert.ok(
    losses.slice(-4).reduce((p, l) => p + l, 0) / 4 < 0.75 * losses[0],
    `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`,
  );
});
