import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../../src/data/datasets.js';
import { readShard } from '../../src/data/shards.js';
import { noiseForSeed } from '../../src/data/seeds.js';
import { MixtureDenoiser, fitMixtureTeacher } from '../../src/teacher/mixture.js';
import { datagenStage } from '../../src/stages/datagen.js';
import { storeFor } from '../../src/store/index.js';

test('shards are byte-identical whether one worker writes a seed range or two workers split it, in any order', async () => {
  const mnist = await loadDataset('mnist', 'train');
  const n = 600;
  const params = await fitMixtureTeacher(mnist.images.subarray(0, n * 1024), mnist.labels.subarray(0, n), {
    shape: { channels: 1, height: 32, width: 32 }, numClasses: 10, componentsPerClass: 2, rank: 4,
  });
  const teacher = await MixtureDenoiser.create(params, { threads: 1 });
  const root = mkdtempSync(join(tmpdir(), 'get-datagen-'));
  try {
    const common = { teacher, dataset: 'mnist', shardSize: 16, samplerSteps: 18, subBatch: 8 };
    const one = join(root, 'one');
    const two = join(root, 'two');
    const { manifest: m, generated } = await datagenStage({ ...common, seeds: { start: 0, end: 48 }, store: storeFor(one), outDir: one });
    assert.equal(generated, 48);
    // Two "workers", the second range first.
    await datagenStage({ ...common, seeds: { start: 16, end: 48 }, store: storeFor(two), outDir: two });
    await datagenStage({ ...common, seeds: { start: 0, end: 16 }, store: storeFor(two), outDir: two });
    const shards = readdirSync(one).filter((f) => f.endsWith('.safetensors')).sort();
    assert.equal(shards.length, 3);
    for (const f of shards) assert.deepEqual(readFileSync(join(two, f)), readFileSync(join(one, f)), f);
    assert.equal(m.totalPairs, 48);
    // A shard holds each seed's noise (float32-rounded) and a teacher image in a sane range.
    const s = await readShard(storeFor(one), join(one, shards[1]), m.shards[1].sha256);
    assert.deepEqual([...s.noise.subarray(0, 1024)], [...Float32Array.from(noiseForSeed(16, { channels: 1, height: 32, width: 32 }))]);
    assert.equal(s.label!.length, 16);
    const img = s.image;
    assert.ok(img.every((v) => Number.isFinite(v) && Math.abs(v) < 6));
    assert.ok(Math.abs(img.reduce((a, b) => a + b, 0) / img.length - -0.75) < 0.3, 'MNIST-like images are mostly background (−1)');
    // Resume: a second call reuses every shard (same manifest).
    const again = await datagenStage({ ...common, seeds: { start: 0, end: 48 }, store: storeFor(one), outDir: one });
    assert.deepEqual(again.manifest.shards, m.shards);
    assert.equal(again.generated, 0);
  } finally {
    await teacher.close();
    rmSync(root, { recursive: true, force: true });
  }
});
