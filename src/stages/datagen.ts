/**
 * The datagen stage: the teacher's deterministic Heun sampler (Karras schedule, 35 NFE by default)
 * from each seed's N(0, I) noise, stored as pair shards plus a manifest written last
 * (locuslab/get data/generate.py; get-reference.md §5).
 *
 * A shard is a pure function of its seed range and the teacher: it is sampled in fixed sub-batches
 * aligned to the shard start, so any worker that generates the same seed range (in any order, in any
 * process) writes byte-identical objects. Existing shards that verify are kept, the others are
 * regenerated (resume). All I/O goes through the object store (src/store).
 */
import type { Denoiser } from '../edm/denoiser.js';
import { heunSample } from '../edm/heun.js';
import { heunNfe } from '../edm/schedule.js';
import { type SeedRange, labelsForSeedRange, noiseForSeedRange, splitSeedRange } from '../data/seeds.js';
import { type DatasetManifest, type LoadedShard, type ShardEntry, ShardEntrySchema, canonicalJson, readManifest, readShard, shardFileName, writeManifest, writeShard } from '../data/shards.js';
import { type ObjectStore, StoreError, joinUri } from '../store/index.js';
import { UsageError } from '../util/errors.js';
import { z } from 'zod';
import { sha256Hex } from '../util/fsutil.js';

export interface DatagenOptions {
  readonly teacher: Denoiser;
  /** Source-data id recorded in the manifest (e.g. `mnist`). */
  readonly dataset: string;
  readonly seeds: SeedRange;
  readonly shardSize: number;
  /** Where shards and manifest.json go, and the dataset URI in it (a plain path, file:// or s3://). */
  readonly store: ObjectStore;
  readonly outDir: string;
  /** Heun steps (NFE = 2·steps − 1). */
  readonly samplerSteps: number;
  /** Samples per denoiser call (memory vs. throughput; part of the shard's determinism). */
  readonly subBatch?: number;
  /** Called as pairs complete (generated or reused). */
  readonly onProgress?: (done: number, total: number) => void;
  /** Called once for every existing shard that failed verification and is being regenerated. */
  readonly onRegenerate?: (uri: string, problem: string) => void;
  /** Polled between sub-batches; when true the stage returns early with `interrupted` (finished shards stay). */
  readonly shouldStop?: () => boolean;
}

/** The generation journal: shards finished so far, each with its digest (removed once the manifest exists). */
export const PROGRESS_FILE = 'progress.json';
const PROGRESS_FORMAT = 'get-distill/pairs-progress';

/** Sampler description stored in every shard and the manifest. */
export function samplerInfo(steps: number): Record<string, unknown> {
  return { name: 'edm-heun', deterministic: true, steps, nfe: heunNfe(steps), sigmaMin: 0.002, sigmaMax: 80, rho: 7, sChurn: 0 };
}

export interface DatagenResult {
  /** The written (or verified) manifest; null when interrupted. */
  readonly manifest: DatasetManifest | null;
  /** Pairs sampled by this call (the rest were reused from verified shards). */
  readonly generated: number;
  /** True when `shouldStop` ended the stage early; `manifest` is then null. */
  readonly interrupted: boolean;
}

/**
 * Generates (or reuses) every shard of `seeds`, then writes the manifest.
 *
 * Resume: a shard that exists is kept when it decodes as a valid shard of its seed range (and, when a
 * previous manifest lists it, matches that manifest's sha256 and size); a truncated or corrupt one is
 * regenerated in place (the write is atomic, so a failure leaves the old object).
 * @throws UsageError when an existing valid shard was made by another teacher or sampler (another
 *   run's folder), or when the teacher returns non-finite images; StoreError when the store fails.
 */
export async function datagenStage(o: DatagenOptions): Promise<DatagenResult> {
  const { store } = o;
  const sampler = samplerInfo(o.samplerSteps);
  const subBatch = o.subBatch ?? 256;
  const { channels, height, width } = o.teacher.shape;
  const shape = { channels, height, width };
  const total = o.seeds.end - o.seeds.start;
  const existing = await readManifest(store, o.outDir, { verify: 'sha256' }).catch(rethrowStore);
  if (existing && existing.teacher === o.teacher.id && canonicalJson(existing.sampler) === canonicalJson(sampler) &&
      existing.shards[0]?.seedStart === o.seeds.start && existing.shards.at(-1)?.seedEnd === o.seeds.end && existing.totalPairs === total) {
    o.onProgress?.(total, total);
    return { manifest: existing, generated: 0, interrupted: false }; // complete, matching and verified
  }
  // A shard is trusted only when a record vouches for its digest: a previous manifest, or the journal
  // of an interrupted generation. An unrecorded shard (killed before its record) is regenerated.
  const listed = new Map<string, ShardEntry>();
  for (const e of (await readManifest(store, o.outDir, { verify: 'none' }).catch(rethrowStore))?.shards ?? []) listed.set(e.file, e);
  for (const e of await readProgress(store, o.outDir)) listed.set(e.file, e);
  const progressUri = joinUri(o.outDir, PROGRESS_FILE);
  const entries: ShardEntry[] = [];
  const record = () => store.put(progressUri, new TextEncoder().encode(`${JSON.stringify({ format: PROGRESS_FORMAT, shards: entries }, null, 1)}\n`));
  let done = 0;
  let generated = 0;
  for (const range of splitSeedRange(o.seeds, o.shardSize)) {
    const file = shardFileName(range);
    const uri = joinUri(o.outDir, file);
    const info = await store.head(uri);
    if (info !== null) {
      let s: LoadedShard | undefined;
      const entry = listed.get(file);
      if (!entry) {
        o.onRegenerate?.(uri, 'no digest on record (the run that wrote it stopped before recording it)');
      } else if (entry.bytes !== info.size) {
        o.onRegenerate?.(uri, `${info.size} bytes, the manifest lists ${entry.bytes} (truncated or replaced)`);
      } else {
        try {
          s = await readShard(store, uri, entry.sha256);
        } catch (e) {
          if (e instanceof StoreError) throw e; // the store failed, not the shard
          o.onRegenerate?.(uri, (e as Error).message.replace(`${uri}: `, ''));
        }
      }
      if (s && (s.seeds.start !== range.start || s.seeds.end !== range.end)) {
        o.onRegenerate?.(uri, `holds seeds [${s.seeds.start}, ${s.seeds.end}), its name says [${range.start}, ${range.end})`);
        s = undefined;
      }
      if (s) {
        if (s.teacher !== o.teacher.id || canonicalJson(s.sampler) !== canonicalJson(sampler)) {
          throw new UsageError(`${uri}: made by teacher ${s.teacher} with another sampler config; use a new --out`);
        }
        entries.push({ file, sha256: s.sha256, bytes: s.bytes, seedStart: range.start, seedEnd: range.end, count: range.end - range.start });
        done += range.end - range.start;
        o.onProgress?.(done, total);
        continue;
      }
    }
    const n = range.end - range.start;
    const noise = noiseForSeedRange(range, shape); // float32 [n,C,H,W], the stored student input
    const label = o.teacher.numClasses > 0 ? labelsForSeedRange(range, o.teacher.numClasses) : undefined;
    const image = new Float32Array(noise.length);
    const per = channels * height * width;
    for (let b = 0; b < n; b += subBatch) {
      if (o.shouldStop?.()) return { manifest: null, generated, interrupted: true }; // this shard is not written
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
    const { seeds: _written, ...entry } = await writeShard(store, o.outDir, { teacher: o.teacher.id, sampler, seeds: range, shape, noise, image, label });
    entries.push(entry);
    await record();
  }
  const manifest = await writeManifest(store, o.outDir, {
    dataset: o.dataset,
    teacher: o.teacher.id,
    sampler,
    imageShape: shape,
    numClasses: o.teacher.numClasses,
    conditional: o.teacher.numClasses > 0,
    shards: entries,
  });
  await store.delete(progressUri);
  return { manifest, generated, interrupted: false };
}

/** A missing or unreadable manifest is "none yet"; a failing store is an error. */
function rethrowStore(e: unknown): null {
  if (e instanceof StoreError && e.code !== 'NotFound') throw e;
  return null;
}

const ProgressSchema = z.object({ format: z.literal(PROGRESS_FORMAT), shards: z.array(ShardEntrySchema) });

/** The journal's entries ([] when absent or unreadable: its shards are then regenerated). */
async function readProgress(store: ObjectStore, dir: string): Promise<ShardEntry[]> {
  try {
    return ProgressSchema.parse(JSON.parse(new TextDecoder().decode(await store.get(joinUri(dir, PROGRESS_FILE))))).shards;
  } catch (e) {
    return rethrowStore(e) ?? [];
  }
}

/** Digest of a dataset's content (its shard list with sha256s), recorded in checkpoints. */
export function datasetDigest(m: DatasetManifest): string {
  return sha256Hex(canonicalJson(m.shards));
}
