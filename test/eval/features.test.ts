/**
 * The feature-network front end: the eval quantisation, PyTorch-style bilinear resize and 1 → 3
 * channels, exposing an inner layer of any ONNX network, and a network whose input is larger than the
 * samples (as Inception-v3 takes 299×299).
 */
import { test } from 'node:test';
import onnxProto from 'onnx-proto';
import assert from 'node:assert/strict';
import { exposeLayers, FeatureExtractor, preprocess } from '../../src/eval/features.js';
import { Graph } from '../../src/graph/ir.js';
import * as op from '../../src/graph/ops.js';
import { toOnnx } from '../../src/graph/onnx.js';
import { UsageError } from '../../src/util/errors.js';

/** The sample value whose quantisation is exactly `u8`. */
const fromU8 = (u8: number) => (u8 - 128 + 0.5) / 127.5;

test('quantisation: clip(floor(x·127.5 + 128)) / 255, mapped to the range', () => {
  const x = Float32Array.from([-1.5, -1, 0, 0.999, 1, 2]);
  const shape = { channels: 1, height: 1, width: 6 };
  assert.deepEqual([...preprocess(x, 1, shape, shape, [0, 255])], [0, 0, 128, 255, 255, 255]);
  const unit = preprocess(x, 1, shape, shape, [-1, 1]);
  assert.ok(Math.abs(unit[2] - (-1 + (2 * 128) / 255)) < 1e-6);
});

test('bilinear 2×2 → 4×4 equals PyTorch F.interpolate(align_corners=False), and grey → 3 channels', () => {
  const x = Float32Array.from([1, 2, 3, 4].map(fromU8));
  const out = preprocess(x, 1, { channels: 1, height: 2, width: 2 }, { channels: 3, height: 4, width: 4 }, [0, 255]);
  const torch = [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4];
  for (let c = 0; c < 3; c++) assert.deepEqual([...out.subarray(16 * c, 16 * (c + 1))], torch);
});

/** A network taking [B,3,64,64]: hidden = mean over H, W per channel; out = hidden · 2. */
function tinyNet(): Uint8Array {
  const g = new Graph('tiny');
  const image = g.input('image', 'float32', ['B', 3, 64, 64]);
  const hidden = op.reduceMean(image, [2, 3]);
  const out = op.mul(hidden, op.scalar(hidden, 2));
  return toOnnx(g, { outputs: { out } });
}

test('an inner layer of an ONNX network as features, with the input resized to the network', async () => {
  const onnx = tinyNet();
  const hiddenName = onnxProto.onnx.ModelProto.decode(onnx).graph!.node!.find((n) => n.opType === 'ReduceMean')!
    .output![0];
  const inner = await FeatureExtractor.create(
    {
      id: 'tiny#hidden',
      onnx: exposeLayers(onnx, 'tiny.onnx', [hiddenName]),
      featuresOutput: hiddenName,
      range: [0, 1],
    },
    { channels: 1, height: 32, width: 32 },
  );
  try {
    const f = await inner.extract(new Float32Array(32 * 32).fill(fromU8(51)), 1, {
      channels: 1,
      height: 32,
      width: 32,
    });
    assert.equal(f.features.length, 3);
    for (const v of f.features) assert.ok(Math.abs(v - 0.2) < 1e-5, String(v)); // u8 51 = 0.2, kept by the resize
  } finally {
    await inner.close();
  }
  assert.throws(
    () => exposeLayers(onnx, 'tiny.onnx', ['nope']),
    (e: unknown) =>
      e instanceof UsageError &&
      /no layer named 'nope' in the graph; outputs and some layers: out/.test((e as Error).message),
  );
  const x = await FeatureExtractor.create(
    { id: 'tiny', onnx, featuresOutput: 'out', range: [0, 1] },
    { channels: 1, height: 32, width: 32 },
  );
  try {
    assert.equal(x.dim, 3);
    assert.equal(x.classes, 0);
    // A constant image of u8 = 51 stays 51/255 = 0.2 through the resize: features 2·0.2 per channel.
    const img = new Float32Array(2 * 32 * 32).fill(fromU8(51));
    const f = await x.extract(img, 2, { channels: 1, height: 32, width: 32 });
    for (const v of f.features) assert.ok(Math.abs(v - 0.4) < 1e-5, String(v));
  } finally {
    await x.close();
  }
  await assert.rejects(
    FeatureExtractor.create(
      { id: 'tiny', onnx, featuresOutput: 'out', range: [0, 1] },
      { channels: 2, height: 32, width: 32 },
    ),
    /takes 3-channel images, the samples have 2 channels/,
  );
});
