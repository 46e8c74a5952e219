/**
 * Section `stream`: the trainer's data path must not hold the dataset in memory. Two synthetic pair
 * datasets (N and 10·N pairs, 1×32×32, conditional) are written as shards under os.tmpdir(); one epoch
 * of `PairStream` over each runs in its own child process, and the peak RSS difference must stay
 * under 100 MB. The datasets are deleted afterwards.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ShardEntry, writeManifest, writeShard } from '../../src/data/shards.js';
import { storeFor } from '../../src/store/index.js';
import { runChild } from './spawn.js';
import { type BenchContext, type Row, fmt, mb } from './util.js';

const SHAPE = { channels: 1, height: 32, width: 32 };
const SHARD = 2048;
const LIMIT_MB = 100;

/**
 * Writes `pairs` synthetic pairs into `dir` in shards of 2048 (seed range [0, pairs)), then the manifest.
 * Contents are cheap xorshift uniforms (noise with unit variance, images in [−1, 1], labels in [0, 10)):
 * only their size matters here. Holds one shard in memory at a time.
 */
export async function writeSyntheticPairs(dir: string, pairs: number): Promise<void> {
  const P = SHAPE.channels * SHAPE.height * SHAPE.width;
  let x = 0x9e3779b9;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
  const store = storeFor(dir);
  const entries: ShardEntry[] = [];
  for (let start = 0; start < pairs; start += SHARD) {
    const end = Math.min(pairs, start + SHARD);
    const n = end - start;
    const noise = new Float32Array(n * P);
    const image = new Float32Array(n * P);
    for (let i = 0; i < n * P; i++) {
      noise[i] = (2 * next() - 1) * Math.sqrt(3);
      image[i] = 2 * next() - 1;
    }
    const label = Int32Array.from({ length: n }, () => Math.floor(next() * 10));
    entries.push(
      await writeShard(store, dir, {
        teacher: 'synthetic-bench',
        sampler: { name: 'none' },
        seeds: { start, end },
        shape: SHAPE,
        noise,
        image,
        label,
      }),
    );
  }
  await writeManifest(store, dir, {
    dataset: 'synthetic',
    teacher: 'synthetic-bench',
    sampler: { name: 'none' },
    imageShape: SHAPE,
    numClasses: 10,
    conditional: true,
    shards: entries,
  });
}

/** Runs the section. */
export async function runStream(ctx: BenchContext): Promise<Row[]> {
  const base = ctx.quick ? 4096 : 8192;
  const sizes = [base, 10 * base];
  const root = await mkdtemp(join(tmpdir(), 'get-distill-bench-stream-'));
  try {
    const idle = await runChild('idle', {});
    const peaks: number[] = [];
    const rows: Row[] = [];
    for (const n of sizes) {
      const dir = join(root, `pairs-${n}`);
      const t = performance.now();
      await writeSyntheticPairs(dir, n);
      ctx.log(
        `wrote ${fmt(n)} pairs (${fmt((n * 2 * 4096) / 2 ** 20)} MB of shards) in ` +
          `${fmt((performance.now() - t) / 1000, 1)} s`,
      );
      const r = await runChild('stream', { dir, batch: 32 });
      if (r.extra.pairs !== n)
        throw new Error(
          `stream bench: an epoch over ${n} pairs yielded ${r.extra.pairs}; PairStream lost or repeated pairs`,
        );
      peaks.push(r.maxRssKb);
      ctx.log(`streamed ${fmt(n)} pairs: peak RSS ${mb(r.maxRssKb)} (${fmt(n / r.extra.seconds)} pairs/s)`);
      rows.push({
        section: 'stream',
        what: `Peak RSS, one PairStream epoch over ${fmt(n)} pairs (1×32×32, batch 32)`,
        value: mb(r.maxRssKb),
        note:
          `child process; ${fmt(n / SHARD)} shards of ${fmt(SHARD)}, ${fmt((n * 2 * 4096) / 2 ** 20)} MB on ` +
          `disk; ${fmt(r.extra.seconds, 1)} s (sha256 verified); ≤ ${r.extra.peakLoadedShards} shards held; ` +
          `idle child ${mb(idle.maxRssKb)}`,
      });
      await rm(dir, { recursive: true, force: true });
    }
    const diffMb = (peaks[1] - peaks[0]) / 1024;
    ctx.log(`peak RSS difference 10×: ${fmt(diffMb, 1)} MB (limit ${LIMIT_MB} MB)`);
    rows.push({
      section: 'stream',
      what: `Peak RSS difference, ${fmt(sizes[1])} vs ${fmt(sizes[0])} pairs`,
      value: `${fmt(diffMb, 1)} MB`,
      goal: `< ${LIMIT_MB} MB: ${diffMb < LIMIT_MB ? 'met' : 'MISSED'}`,
      note: 'the dataset grows by 10×, the stream holds at most two shards plus one batch',
    });
    return rows;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
