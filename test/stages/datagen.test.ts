import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../../src/data/datasets.js';
import { readShard } from '../../src/data/shards.js';
import { noiseForSeed } from '../../src/data/seeds.js';
import { MixtureDenoiser, fitMixtureTeacher } from '../../src/teacher/mixture.js';
import { datagenStage } from '../../src/stages/datagen.js';
import { storeFor } from '../../src/store/index.js';

test('shards are byte-identical for any seed-range split; resume keeps recorded, redoes bad/unrecorded', async () => {
  const mnist = await loadDataset('mnist', 'train');
  const n = 600;
  const params = await fitMixtureTeacher(mnist.images.subarray(0, n * 1024), mnist.labels.subarray(0, n), {
    shape: { channels: 1, height: 32, width: 32 },
    numClasses: 10,
    componentsPerClass: 2,
    rank: 4,
  });
  const teacher = await MixtureDenoiser.create(params, { threads: 1 });
  const root = mkdtempSync(join(tmpdir(), 'get-datagen-'));
  try {
    const common = { teacher, dataset: 'mnist', shardSize: 16, samplerSteps: 18, subBatch: 8 };
    const one = join(root, 'one');
    const two = join(root, 'two');
    const { manifest, generated } = await datagenStage({
      ...common,
      seeds: { start: 0, end: 48 },
      store: storeFor(one),
      outDir: one,
    });
    assert.equal(generated, 48);
    const m = manifest!;
    // Two "workers", the second range first.
    await datagenStage({ ...common, seeds: { start: 16, end: 48 }, store: storeFor(two), outDir: two });
    await datagenStage({ ...common, seeds: { start: 0, end: 16 }, store: storeFor(two), outDir: two });
    const shards = readdirSync(one)
      .filter((f) => f.endsWith('.safetensors'))
      .sort();
    assert.equal(shards.length, 3);
    for (const f of shards) assert.deepEqual(readFileSync(join(two, f)), readFileSync(join(one, f)), f);
    assert.equal(m.totalPairs, 48);
    // A shard holds each seed's noise (float32-rounded) and a teacher image in a sane range.
    const s = await readShard(storeFor(one), join(one, shards[1]), m.shards[1].sha256);
    assert.deepEqual(
      [...s.noise.subarray(0, 1024)],
      [...Float32Array.from(noiseForSeed(16, { channels: 1, height: 32, width: 32 }))],
    );
    assert.equal(s.label!.length, 16);
    const img = s.image;
    assert.ok(img.every((v) => Number.isFinite(v) && Math.abs(v) < 6));
    assert.ok(
      Math.abs(img.reduce((a, b) => a + b, 0) / img.length - -0.75) < 0.3,
      'MNIST-like images are mostly background (−1)',
    );
    // Resume: a second call reuses every shard (same manifest).
    const again = await datagenStage({ ...common, seeds: { start: 0, end: 48 }, store: storeFor(one), outDir: one });
    assert.deepEqual(again.manifest!.shards, m.shards);
    assert.equal(again.generated, 0);

    // Interrupted after the first shard: the journal records it, the next call reuses it.
    const three = join(root, 'three');
    let subBatches = 0;
    const cut = await datagenStage({
      ...common,
      seeds: { start: 0, end: 48 },
      store: storeFor(three),
      outDir: three,
      shouldStop: () => ++subBatches > 2,
    });
    assert.equal(cut.interrupted, true);
    assert.equal(cut.manifest, null);
    assert.deepEqual(JSON.parse(readFileSync(join(three, 'progress.json'), 'utf8')).shards, [m.shards[0]]);
    const notes: string[] = [];
    const resumed = await datagenStage({
      ...common,
      seeds: { start: 0, end: 48 },
      store: storeFor(three),
      outDir: three,
      onRegenerate: (u, why) => notes.push(`${u}: ${why}`),
    });
    assert.equal(resumed.generated, 32);
    assert.equal(notes.length, 0, notes.join('\n'));
    assert.deepEqual(resumed.manifest!.shards, m.shards);
    assert.ok(!readdirSync(three).includes('progress.json'), 'the journal goes once the manifest exists');

    // A same-size bit flip in a shard of a complete dataset is caught by its sha256 and regenerated.
    const flipped = readFileSync(join(three, shards[2]));
    flipped[flipped.length - 5] ^= 0x01;
    writeFileSync(join(three, shards[2]), flipped);
    const healed = await datagenStage({
      ...common,
      seeds: { start: 0, end: 48 },
      store: storeFor(three),
      outDir: three,
      onRegenerate: (u, why) => notes.push(`${u}: ${why}`),
    });
    assert.equal(healed.generated, 16);
    assert.equal(notes.length, 1);
    assert.match(
      notes[0],
      new RegExp(`${shards[2]}: sha256 [0-9a-f]{64} does not match the manifest's ${m.shards[2].sha256}`),
    );
    assert.deepEqual(readFileSync(join(three, shards[2])), readFileSync(join(one, shards[2])));

    // A shard no record vouches for (its run died before the journal write) is regenerated.
    rmSync(join(three, 'manifest.json'));
    const unrecorded = await datagenStage({
      ...common,
      seeds: { start: 0, end: 48 },
      store: storeFor(three),
      outDir: three,
      onRegenerate: (u, why) => notes.push(`${u}: ${why}`),
    });
    assert.equal(unrecorded.generated, 48);
    assert.match(notes[1], /no digest on record/);
  } finally {
    await teacher.close();
    rmSync(root, { recursive: true, force: true });
  }
});
