/**
 * The worker-side batch assembly (src/serve/samples.ts): seed items expand to exactly the seed
 * contract's noise and z_0 wherever they sit in a merged batch beside client tensors, seed ranges and
 * label counts are checked up front, and each job gets the PNGs encodeImagePng makes of its share.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeImagePng } from '../../src/data/png.js';
import { noiseForSeed } from '../../src/data/seeds.js';
import { readModelInfo } from '../../src/get/export.js';
import { z0ForSeed } from '../../src/get/sampler.js';
import { mergeSamples, type Samples, samplesFromSeeds, seedSamples } from '../../src/get/seeded.js';
import { encodeOutputs, splitOutputs } from '../../src/serve/samples.js';
import { CONDITIONAL, modelBytes } from './helpers.js';

const info = readModelInfo(modelBytes(CONDITIONAL), 'test');
const NOISE = 32 * 32;
const Z0 = info.tokens * CONDITIONAL.hiddenSize;

test('mergeSamples: seeds beside client tensors give the seed contract values, in request order', () => {
  const client: Samples = {
    n: 1,
    noise: new Float32Array(NOISE).fill(0.5),
    labels: BigInt64Array.of(9n),
    z0: new Float32Array(Z0).fill(-2),
  };
  const feeds = mergeSamples(info, [seedSamples(40, 2, [1, 2]), client, seedSamples(2 ** 31 - 1, 1, [3])]);
  assert.deepEqual(feeds.noise.dims, [4, 1, 32, 32]);
  assert.deepEqual(feeds.z0.dims, [4, info.tokens, CONDITIONAL.hiddenSize]);
  assert.deepEqual([...(feeds.class_labels.data as BigInt64Array)], [1n, 2n, 9n, 3n]);
  const noise = feeds.noise.data as Float32Array;
  const z0 = feeds.z0.data as Float32Array;
  for (const [b, seed] of [
    [0, 40],
    [1, 41],
    [3, 2 ** 31 - 1],
  ]) {
    assert.deepEqual(
      noise.subarray(b * NOISE, (b + 1) * NOISE),
      Float32Array.from(noiseForSeed(seed, { channels: 1, height: 32, width: 32 })),
      `noise of seed ${seed}`,
    );
    assert.deepEqual(z0.subarray(b * Z0, (b + 1) * Z0), z0ForSeed(seed, Z0), `z0 of seed ${seed}`);
  }
  assert.ok(
    noise.subarray(2 * NOISE, 3 * NOISE).every((v) => v === 0.5) && z0.subarray(2 * Z0, 3 * Z0).every((v) => v === -2),
    'client tensors copied as given',
  );
  // samplesFromSeeds (the main-thread form) holds the same values.
  const s = samplesFromSeeds(info, 40, 2, [1, 2]);
  assert.deepEqual(s.noise, noise.subarray(0, 2 * NOISE));
  assert.deepEqual(s.z0, z0.subarray(0, 2 * Z0));
});

test('seedSamples: bad ranges and label counts are refused before any work', () => {
  assert.throws(() => seedSamples(2 ** 31 - 2, 3, null), /seeds 2147483646 … 2147483648 leave \[0, 2\^31\)/);
  assert.throws(() => seedSamples(-1, 1, null), /leave \[0, 2\^31\)/);
  assert.throws(() => seedSamples(0, 2, [1]), /1 labels for 2 samples/);
  assert.throws(() => seedSamples(0, 0, null), /n must be a positive integer, got 0/);
  assert.deepEqual(seedSamples(5, 2, [0, 7]), { n: 2, seed: 5, labels: BigInt64Array.of(0n, 7n) });
});

test('splitOutputs + encodeOutputs: each job its own share, PNGs only where asked, at its scale', () => {
  const image = Float32Array.from({ length: 3 * NOISE }, (_, i) => Math.sin(i) * 1.1);
  const residual2 = Float32Array.of(0.1, 0.2, 0.3);
  const out = {
    image: { dtype: 'float32' as const, dims: [3, 1, 32, 32], data: image },
    residual2: { dtype: 'float32' as const, dims: [3], data: residual2 },
  };
  const jobs = [{ samples: seedSamples(0, 2, [0, 0]), pngScale: 2 }, { samples: seedSamples(9, 1, [1]) }];
  const [a, b] = encodeOutputs(info, splitOutputs(info, out, [2, 1]), jobs);
  assert.deepEqual(a.residual2, Float32Array.of(0.1, 0.2));
  assert.deepEqual(b.image, image.subarray(2 * NOISE));
  assert.equal(b.png, undefined);
  assert.equal(a.png!.length, 2);
  for (let i = 0; i < 2; i++)
    assert.deepEqual(
      a.png![i],
      encodeImagePng(image.subarray(i * NOISE, (i + 1) * NOISE), { channels: 1, height: 32, width: 32 }, 2),
    );
  assert.notDeepEqual(a.png![0], a.png![1]);
  assert.equal(a.image.buffer.byteLength, a.image.byteLength, 'a share owns its buffer (transferable)');
});
