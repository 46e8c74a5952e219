import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeSafetensors } from '../../src/data/safetensors.js';
import {
  labelsForSeedRange,
  noiseForSeedRange,
  seedRange,
  splitSeedRange,
  type SeedRange,
} from '../../src/data/seeds.js';
import { type PairBatch, PairStream } from '../../src/data/pair-stream.js';
import {
  type PairShard,
  type WrittenShard,
  decodeShard,
  readManifest,
  readShard,
  shardFileName,
  writeManifest,
  writeShard,
} from '../../src/data/shards.js';
import { storeFor } from '../../src/store/index.js';
import type { JsonObject } from '../json.js';

const shape = { channels: 1, height: 4, width: 4 };
const D = 16;
const sampler = { name: 'heun', steps: 18, sigmaMax: 80, sigmaMin: 0.002, rho: 7 };
const dirs: string[] = [];
const tmp = async (): Promise<string> => {
  const d = await mkdtemp(join(tmpdir(), 'shards-test-'));
  dirs.push(d);
  return d;
};
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A shard whose "teacher image" is a fixed function of the noise (tanh), so content is checkable. */
function makeShard(seeds: SeedRange, conditional = true): PairShard {
  const noise = noiseForSeedRange(seeds, shape);
  return {
    teacher: 'test-teacher',
    sampler,
    seeds,
    shape,
    noise,
    image: noise.map((v) => Math.tanh(v)),
    ...(conditional ? { label: labelsForSeedRange(seeds, 10) } : {}),
  };
}

async function writeDataset(
  dir: string,
  total: number,
  shardSize: number,
  conditional = true,
): Promise<WrittenShard[]> {
  const written: WrittenShard[] = [];
  for (const r of splitSeedRange(seedRange(0, total), shardSize))
    written.push(await writeShard(storeFor(dir), dir, makeShard(r, conditional)));
  await writeManifest(storeFor(dir), dir, {
    dataset: 'synthetic',
    teacher: 'test-teacher',
    sampler,
    imageShape: shape,
    numClasses: 10,
    conditional,
    shards: written,
    createdAt: '2025-01-01T00:00:00.000Z',
  });
  return written;
}

describe('pair shards', () => {
  test('file name is zero-padded from the seed range', () => {
    assert.equal(shardFileName(seedRange(0, 1024)), 'pairs-0000000000-0000001024.safetensors');
    assert.equal(shardFileName(seedRange(2147482624, 2147483648)), 'pairs-2147482624-2147483648.safetensors');
  });

  test('write → read round trip; same content gives a byte-identical file; no temp files left', async () => {
    const [d1, d2] = [await tmp(), await tmp()];
    const shard = makeShard(seedRange(100, 110));
    const w1 = await writeShard(storeFor(d1), d1, shard);
    const w2 = await writeShard(storeFor(d2), d2, makeShard(seedRange(100, 110)));
    assert.equal(w1.file, 'pairs-0000000100-0000000110.safetensors');
    assert.deepEqual(w1, w2);
    assert.equal(w1.count, 10);
    assert.deepEqual(await readFile(join(d1, w1.file)), await readFile(join(d2, w2.file)));
    assert.deepEqual(await readdir(d1), [w1.file]);
    const back = await readShard(storeFor(d1), join(d1, w1.file), w1.sha256);
    assert.equal(back.sha256, w1.sha256);
    assert.equal(back.bytes, w1.bytes);
    assert.deepEqual(back.noise, shard.noise);
    assert.deepEqual(back.image, shard.image);
    assert.deepEqual(back.label, shard.label);
    assert.deepEqual(back.seeds, { start: 100, end: 110 });
    assert.deepEqual(back.shape, shape);
    assert.deepEqual(back.sampler, sampler);
    assert.equal(back.teacher, 'test-teacher');
  });

  test('unconditional shards have no label tensor', async () => {
    const d = await tmp();
    const w = await writeShard(storeFor(d), d, makeShard(seedRange(0, 3), false));
    assert.equal((await readShard(storeFor(d), join(d, w.file))).label, undefined);
  });

  test('readShard detects a digest mismatch and invalid contents', async () => {
    const d = await tmp();
    const w = await writeShard(storeFor(d), d, makeShard(seedRange(0, 4)));
    const path = join(d, w.file);
    const bytes = await readFile(path);
    bytes[bytes.length - 1] ^= 1;
    await writeFile(path, bytes);
    await assert.rejects(
      readShard(storeFor(d), path, w.sha256),
      new RegExp(`${w.file}: sha256 [0-9a-f]{64} does not match the manifest's ${w.sha256}`),
    );
    const meta = {
      format: 'get-distill/pairs',
      format_version: '1',
      teacher: 't',
      sampler: '{}',
      seed_start: '0',
      seed_end: '3',
    };
    const f32 = (n: number) => ({ dtype: 'float32' as const, dims: [n, 1, 4, 4], data: new Float32Array(n * D) });
    assert.throws(
      () => decodeShard(encodeSafetensors({ noise: f32(2), image: f32(2) }, meta), 'x'),
      /x: invalid pair shard: noise shape \[2,1,4,4\], expected \[3, C, H, W\] for seeds \[0, 3\)/,
    );
    assert.throws(() => decodeShard(encodeSafetensors({ noise: f32(3) }, meta), 'x'), /missing tensor 'image'/);
    assert.throws(
      () => decodeShard(encodeSafetensors({ noise: f32(3), image: f32(3) }, { ...meta, format_version: '2' }), 'x'),
      /format_version "2" is not supported/,
    );
    const nan = f32(3);
    nan.data[D + 1] = Number.NaN;
    assert.throws(
      () => decodeShard(encodeSafetensors({ noise: f32(3), image: nan }, meta), 'x'),
      /non-finite value at pair 1 \(seed 1\)/,
    );
  });
});

describe('dataset manifest', () => {
  test('written last with totals; read back equal', async () => {
    const d = await tmp();
    const written = await writeDataset(d, 20, 8);
    const m = await readManifest(storeFor(d), d, { verify: 'sha256' });
    assert.equal(m.totalPairs, 20);
    assert.deepEqual(
      m.shards.map((s) => [s.seedStart, s.seedEnd, s.count]),
      [
        [0, 8, 8],
        [8, 16, 8],
        [16, 20, 4],
      ],
    );
    assert.deepEqual(
      m.shards.map((s) => s.sha256),
      written.map((w) => w.sha256),
    );
    assert.equal(m.format, 'get-distill/pairs');
    assert.equal(m.formatVersion, 1);
    assert.deepEqual((await readdir(d)).sort(), ['manifest.json', ...written.map((w) => w.file)].sort());
  });

  test('clear errors: missing manifest, missing shard, count mismatch, overlap, bad digest field', async () => {
    const d = await tmp();
    await assert.rejects(
      readManifest(storeFor(d), d),
      /manifest\.json: no manifest \(the pair dataset is missing or its generation has not finished\)/,
    );
    const written = await writeDataset(d, 20, 8);
    const path = join(d, 'manifest.json');
    const orig = JSON.parse(await readFile(path, 'utf8'));
    const edit = async (f: (m: JsonObject) => void): Promise<void> => {
      const m = structuredClone(orig);
      f(m);
      await writeFile(path, JSON.stringify(m));
    };
    await edit((m) => {
      m.shards[1].count = 7;
    });
    await assert.rejects(
      readManifest(storeFor(d), d),
      new RegExp(
        'invalid manifest: shard pairs-0000000008-0000000016\\.safetensors: count 7 does not match its seed ' +
          'range \\[8, 16\\)',
      ),
    );
    await edit((m) => {
      m.totalPairs = 21;
    });
    await assert.rejects(readManifest(storeFor(d), d), /totalPairs 21 does not match the sum of shard counts 20/);
    await edit((m) => {
      m.shards[1].seedStart = 4;
      m.shards[1].count = 12;
      m.totalPairs = 24;
    });
    await assert.rejects(readManifest(storeFor(d), d), /seed range \[4, 16\) overlaps the previous shard/);
    await edit((m) => {
      m.shards[0].sha256 = 'XYZ';
    });
    await assert.rejects(
      readManifest(storeFor(d), d),
      /invalid manifest: shards\.0\.sha256: must be 64 lowercase hex digits/,
    );
    await edit((m) => {
      delete m.teacher;
    });
    await assert.rejects(readManifest(storeFor(d), d), /invalid manifest: teacher:/);
    await writeFile(path, '{not json');
    await assert.rejects(readManifest(storeFor(d), d), /manifest is not valid JSON/);
    await edit(() => undefined);
    await unlink(join(d, written[2].file));
    await assert.rejects(
      readManifest(storeFor(d), d),
      /shard pairs-0000000016-0000000020\.safetensors is missing \(expected at .*\); regenerate seeds \[16, 20\)/,
    );
    await assert.rejects(writeManifest(storeFor(d), d, { ...orig, shards: written }), /is missing/);
  });

  test('sha256 verification catches a replaced shard of the same size', async () => {
    const d = await tmp();
    const written = await writeDataset(d, 16, 8);
    const p = join(d, written[0].file);
    const bytes = await readFile(p);
    bytes[bytes.length - 5] ^= 0x10;
    await writeFile(p, bytes);
    await readManifest(storeFor(d), d); // sizes still match
    await assert.rejects(
      readManifest(storeFor(d), d, { verify: 'sha256' }),
      /pairs-0000000000-0000000008\.safetensors sha256 [0-9a-f]+ does not match/,
    );
  });
});

async function collect(stream: PairStream, epoch: number, startBatch = 0): Promise<PairBatch[]> {
  const out: PairBatch[] = [];
  for await (const b of stream.epoch(epoch, { startBatch })) out.push(b);
  return out;
}

describe('PairStream', () => {
  test('every pair exactly once per epoch, with matching content; full batches except the last', async () => {
    const d = await tmp();
    await writeDataset(d, 50, 8); // 7 shards: 6×8 + 2
    const stream = await PairStream.open(storeFor(d), d, { batchSize: 5, seed: 3 });
    assert.equal(stream.batchesPerEpoch, 10);
    const batches = await collect(stream, 0);
    assert.deepEqual(
      batches.map((b) => b.size),
      new Array(10).fill(5),
    );
    const seen = batches.flatMap((b) => Array.from(b.seeds));
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.notDeepEqual(
      seen,
      [...seen].sort((a, b) => a - b),
    ); // shuffled
    const labels = labelsForSeedRange(seedRange(0, 50), 10);
    const noise = noiseForSeedRange(seedRange(0, 50), shape);
    for (const b of batches) {
      for (let i = 0; i < b.size; i++) {
        const s = b.seeds[i];
        assert.equal(b.label![i], labels[s]);
        assert.deepEqual(b.noise.subarray(i * D, (i + 1) * D), noise.subarray(s * D, (s + 1) * D));
        assert.equal(b.image[i * D + 3], Math.fround(Math.tanh(noise[s * D + 3])));
      }
    }
    assert.ok(stream.stats.peakLoadedShards <= 2);
    assert.equal(stream.stats.shardsLoaded, 7);
  });

  test('deterministic given (seed, epoch); epochs and seeds reshuffle; last batch short; dropLast', async () => {
    const d = await tmp();
    await writeDataset(d, 23, 4, false);
    const order = async (seed: number, epoch: number, dropLast = false): Promise<number[][]> =>
      (
        await collect(
          new PairStream(storeFor(d), d, await readManifest(storeFor(d), d), { batchSize: 5, seed, dropLast }),
          epoch,
        )
      ).map((b) => Array.from(b.seeds));
    const a = await order(1, 0);
    assert.deepEqual(a, await order(1, 0));
    assert.notDeepEqual(a, await order(1, 1));
    assert.notDeepEqual(a, await order(2, 0));
    assert.deepEqual(
      a.map((b) => b.length),
      [5, 5, 5, 5, 3],
    );
    const dropped = await order(1, 0, true);
    assert.deepEqual(dropped, a.slice(0, 4));
    const batches = await collect(
      new PairStream(storeFor(d), d, await readManifest(storeFor(d), d), { batchSize: 5, seed: 1 }),
      0,
    );
    assert.equal(batches[0].label, undefined);
  });

  test('startBatch resumes mid-epoch with the same batches and skips reading earlier shards', async () => {
    const d = await tmp();
    await writeDataset(d, 64, 8);
    const full = await collect(await PairStream.open(storeFor(d), d, { batchSize: 6, seed: 9, shardsPerBuffer: 1 }), 2);
    const resumed = await PairStream.open(storeFor(d), d, { batchSize: 6, seed: 9, shardsPerBuffer: 1 });
    const tail = await collect(resumed, 2, 7);
    assert.deepEqual(
      tail.map((b) => Array.from(b.seeds)),
      full.slice(7).map((b) => Array.from(b.seeds)),
    );
    assert.deepEqual(tail[0].noise, full[7].noise);
    assert.ok(resumed.stats.shardsLoaded < 8, `loaded ${resumed.stats.shardsLoaded}`);
    assert.deepEqual(await collect(resumed, 2, 11), []);
  });

  test('memory stays bounded by two shards and a batch, whatever the number of shards', async () => {
    const peaks: number[] = [];
    for (const total of [40, 320]) {
      const d = await tmp();
      await writeDataset(d, total, 8);
      const s = await PairStream.open(storeFor(d), d, { batchSize: 7, seed: 0 });
      let n = 0;
      for await (const b of s.epoch(0)) n += b.size;
      assert.equal(n, total);
      assert.equal(s.stats.peakLoadedShards, 2);
      peaks.push(s.stats.peakBufferedPairs);
    }
    assert.deepEqual(peaks, [2 * 8 + 7, 2 * 8 + 7]);
  });

  test('a shard that disagrees with the manifest fails loudly', async () => {
    const d = await tmp();
    const written = await writeDataset(d, 16, 8);
    // Same name, new content.
    await writeShard(storeFor(d), d, { ...makeShard(seedRange(0, 8)), image: new Float32Array(8 * D) });
    const s = new PairStream(storeFor(d), d, await readManifest(storeFor(d), d, { verify: 'none' }), {
      batchSize: 4,
      seed: 0,
    });
    await assert.rejects(collect(s, 0), new RegExp(`${written[0].file}: sha256 .* does not match`));
  });
});
