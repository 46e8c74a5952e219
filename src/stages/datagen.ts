/**
 * The datagen stage: the teacher's deterministic Heun sampler (Karras schedule, 35 NFE by default)
 * from each seed's N(0, I) noise, stored as pair shards plus a manifest written last
 * (locuslab/get data/generate.py; get-reference.md §5).
 *
 * A shard is a pure function of its seed range and the teacher: it is sampled in fixed sub-batches
 * aligned to the shard start, so any worker that generates the same seed range (in any order, in any
 * process) writes byte-identical files. Existing shards that verify are kept (resume).
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Denoiser } from '../edm/denoiser.js';
import { heunSample } from '../edm/heun.js';
import { heunNfe } from '../edm/schedule.js';
import { type SeedRange, labelsForSeedRange, noiseForSeedRange, splitSeedRange } from '../data/seeds.js';
import { type DatasetManifest, type ShardEntry, canonicalJson, readManifest, readShard, shardFileName, writeManifest, writeShard } from '../data/shards.js';
import { UsageError } from '../util/errors.js';
import { sha256Hex } from '../util/fsutil.js';

export interface DatagenOptions {
  readonly teacher: Denoiser;
  /** Source-data id recorded in the manifest (e.g. `mnist`). */
  readonly dataset: string;
  readonly seeds: SeedRange;
  readonly shardSize: number;
  readonly outDir: string;
  /** Heun steps (NFE = 2·steps − 1). */
  readonly samplerSteps: number;
  /** Samples per denoiser call (memory vs. throughput; part of the shard's determinism). */
  readonly subBatch?: number;
  /** Called as pairs complete (generated or reused). */
  readonly onProgress?: (done: number, total: number) => void;
}

/** Sampler description stored in every shard and the manifest. */
export function samplerInfo(steps: number): Record<string, unknown> {
  return { name: 'edm-heun', deterministic: true, steps, nfe: heunNfe(steps), sigmaMin: 0.002, sigmaMax: 80, rho: 7, sChurn: 0 };
}

const exists = (p: string) => stat(p).then(() => true, () => false);

export interface DatagenResult {
  readonly manifest: DatasetManifest;
  /** Pairs sampled by this call (the rest were reused from verified shards). */
  readonly generated: number;
}

/**
 * Generates (or reuses) every shard of `seeds`, then writes the manifest.
 * @throws UsageError when an existing shard was made by another teacher or sampler, or is corrupt, or
 *   when the teacher returns non-finite images.
 */
export async function datagenStage(o: DatagenOptions): Promise<DatagenResult> {
  await mkdir(o.outDir, { recursive: true });
  const sampler = samplerInfo(o.samplerSteps);
  const subBatch = o.subBatch ?? 256;
  const { channels, height, width } = o.teacher.shape;
  const shape = { channels, height, width };
  const total = o.seeds.end - o.seeds.start;
  const existing = await readManifest(o.outDir, { verify: 'size' }).catch(() => null);
  if (existing && existing.teacher === o.teacher.id && canonicalJson(existing.sampler) === canonicalJson(sampler) &&
      existing.shards[0]?.seedStart === o.seeds.start && existing.shards.at(-1)?.seedEnd === o.seeds.end && existing.totalPairs === total) {
    o.onProgress?.(total, total);
    return { manifest: existing, generated: 0 }; // complete and matching: nothing to do
  }
  const entries: ShardEntry[] = [];
  let done = 0;
  let generated = 0;
  for (const range of splitSeedRange(o.seeds, o.shardSize)) {
    const path = join(o.outDir, shardFileName(range));
    if (await exists(path)) {
      let s;
      try {
        s = await readShard(path);
      } catch (e) {
        throw new UsageError(`${(e as Error).message}; delete the file to regenerate it`);
      }
      if (s.teacher !== o.teacher.id || canonicalJson(s.sampler) !== canonicalJson(sampler)) {
        throw new UsageError(`${path}: made by teacher ${s.teacher} with another sampler config; use a new --out`);
      }
      entries.push({ file: shardFileName(range), sha256: s.sha256, bytes: s.bytes, seedStart: range.start, seedEnd: range.end, count: range.end - range.start });
      done += range.end - range.start;
      o.onProgress?.(done, total);
      continue;
    }
    const n = range.end - range.start;
    const noise = noiseForSeedRange(range, shape); // float32 [n,C,H,W], the stored student input
    const label = o.teacher.numClasses > 0 ? labelsForSeedRange(range, o.teacher.numClasses) : undefined;
    const image = new Float32Array(noise.length);
    const per = channels * height * width;
    for (let b = 0; b < n; b += subBatch) {
      const m = Math.min(subBatch, n - b);
      const x = Float64Array.from(noise.subarray(b * per, (b + m) * per)); // the teacher sees exactly the stored noise
      const y = await heunSample(o.teacher, x, label ? label.subarray(b, b + m) : null, m, { steps: o.samplerSteps });
      const bad = y.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new UsageError(`teacher ${o.teacher.id} returned a non-finite image for seed ${range.start + b + Math.floor(bad / per)}; check the teacher network`);
      image.set(y, b * per);
      done += m;
      generated += m;
      o.onProgress?.(done, total);
    }
    entries.push(await writeShard(o.outDir, { teacher: o.teacher.id, sampler, seeds: range, shape, noise, image, label }));
  }
  const manifest = await writeManifest(o.outDir, {
    dataset: o.dataset,
    teacher: o.teacher.id,
    sampler,
    imageShape: shape,
    numClasses: o.teacher.numClasses,
    conditional: o.teacher.numClasses > 0,
    shards: entries,
  });
  return { manifest, generated };
}

/** Digest of a dataset's content (its shard list with sha256s), recorded in checkpoints. */
export function datasetDigest(m: DatasetManifest): string {
  return sha256Hex(canonicalJson(m.shards));
}
