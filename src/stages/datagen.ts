/**
 * The datagen stage: the teacher's deterministic Heun sampler (Karras schedule, 35 NFE by default)
 * from each seed's N(0, I) noise, stored as pair shards plus a manifest written last
 * (locuslab/get data/generate.py; get-reference.md §5).
 *
 * A shard is a pure function of its seed range and the teacher: it is sampled in fixed sub-batches
 * aligned to the shard start, so any worker that generates the same seed range (in any order, in any
 * process) writes byte-identical objects. Existing shards that verify are kept, the others are
 * regenerated (resume). Several workers can split one seed range into parts (Kubernetes Indexed
 * Jobs): each writes its share and a part file, and the last to finish merges them into the manifest.
 * All I/O goes through the object store (src/store).
 */
import type { Denoiser } from '../edm/denoiser.js';
import { heunSample } from '../edm/heun.js';
import { heunNfe } from '../edm/schedule.js';
import { type SeedRange, labelsForSeedRange, noiseForSeedRange, splitSeedRange } from '../data/seeds.js';
import {
  type DatasetManifest,
  type LoadedShard,
  type ShardEntry,
  ShardEntrySchema,
  canonicalJson,
  readManifest,
  readShard,
  shardFileName,
  writeManifest,
  writeShard,
} from '../data/shards.js';
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
  /**
   * Called as pairs complete: `done` of `total` (generated or reused; with `part`, of the part's share),
   * `generated` of them sampled by this call.
   */
  readonly onProgress?: (done: number, total: number, generated: number) => void;
  /** Called once for every existing shard that failed verification and is being regenerated. */
  readonly onRegenerate?: (uri: string, problem: string) => void;
  /** Polled between sub-batches; when true the stage returns early with `interrupted` (finished shards stay). */
  readonly shouldStop?: () => boolean;
  /**
   * One worker of `count` (a Kubernetes Indexed Job): generate only share `index` of `seeds` (see
   * {@link partShardRanges}), journal it in `progress-part-<index>-of-<count>.json`, record its shard entries in
   * `parts/part-<index>-of-<count>.json` when done, and write the merged manifest.json when all
   * `count` part files are present (the last part to finish does it).
   */
  readonly part?: DatagenPart;
}

/** Which share of the seed range a worker generates: `index` in [0, count). */
export interface DatagenPart {
  readonly index: number;
  readonly count: number;
}

/** The generation journal: shards finished so far, each with its digest (removed once the manifest exists). */
export const PROGRESS_FILE = 'progress.json';
const PROGRESS_FORMAT = 'get-distill/pairs-progress';

/** Sampler description stored in every shard and the manifest. */
export function samplerInfo(steps: number): Record<string, unknown> {
  return {
    name: 'edm-heun',
    deterministic: true,
    steps,
    nfe: heunNfe(steps),
    sigmaMin: 0.002,
    sigmaMax: 80,
    rho: 7,
    sChurn: 0,
  };
}

export interface DatagenResult {
  /**
   * The written (or verified) manifest; null when interrupted, or (with `part`) while other parts
   * have not finished.
   */
  readonly manifest: DatasetManifest | null;
  /** With `part`: the URI of the part file this call wrote (absent when interrupted). */
  readonly partUri?: string;
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
 *
 * With `part`, only that share's shards are generated and the manifest is written by whichever part
 * finishes last (see {@link DatagenOptions.part}); the shards are the same bytes as a single worker's
 * with the same teacher (same onnxruntime thread count).
 * @throws UsageError when an existing valid shard was made by another teacher or sampler (another
 *   run's folder), or when the teacher returns non-finite images; StoreError when the store fails.
 */
export async function datagenStage(o: DatagenOptions): Promise<DatagenResult> {
  const { store } = o;
  const sampler = samplerInfo(o.samplerSteps);
  const { channels, height, width } = o.teacher.shape;
  const shape = { channels, height, width };
  const total = o.seeds.end - o.seeds.start;
  const existing = await completeManifest(o, sampler);
  if (existing) {
    const mine = o.part ? shareSize(partShardRanges(o.seeds, o.shardSize, o.part)) : total;
    o.onProgress?.(mine, mine, 0);
    return { manifest: existing, generated: 0, interrupted: false }; // complete, matching and verified
  }
  const ranges = o.part ? partShardRanges(o.seeds, o.shardSize, o.part) : splitSeedRange(o.seeds, o.shardSize);
  const count: PairCount = { done: 0, generated: 0, mine: o.part ? shareSize(ranges) : total };
  const progressUri = joinUri(o.outDir, o.part ? partProgressFile(o.part) : PROGRESS_FILE);
  const partUri = o.part ? joinUri(o.outDir, partFileName(o.part)) : undefined;
  const listed = await recordedShards(o, progressUri, partUri);
  const entries: ShardEntry[] = [];
  const record = () =>
    store.put(
      progressUri,
      new TextEncoder().encode(`${JSON.stringify({ format: PROGRESS_FORMAT, shards: entries }, null, 1)}\n`),
    );
  for (const range of ranges) {
    const kept = await keptShard(o, range, listed.get(shardFileName(range)), sampler);
    if (kept) {
      entries.push(kept);
      count.done += range.end - range.start;
      o.onProgress?.(count.done, count.mine, count.generated);
      continue;
    }
    const pairs = await samplePairs(o, range, count);
    if (!pairs) return { manifest: null, generated: count.generated, interrupted: true }; // this shard is not written
    const { seeds: _written, ...entry } = await writeShard(store, o.outDir, {
      teacher: o.teacher.id,
      sampler,
      seeds: range,
      shape,
      ...pairs,
    });
    entries.push(entry);
    await record();
  }
  return recordDone(o, sampler, entries, { progressUri, partUri }, count.generated);
}

/**
 * Records a finished generation: the manifest (or, with `o.part`, the part's file, and the manifest
 * when every part is done), then drops the journal once the record vouches for the shards.
 */
async function recordDone(
  o: DatagenOptions,
  sampler: Record<string, unknown>,
  entries: ShardEntry[],
  { progressUri, partUri }: { progressUri: string; partUri?: string },
  generated: number,
): Promise<DatagenResult> {
  const { store } = o;
  const { channels, height, width } = o.teacher.shape;
  const manifestInput = {
    dataset: o.dataset,
    teacher: o.teacher.id,
    sampler,
    imageShape: { channels, height, width },
    numClasses: o.teacher.numClasses,
    conditional: o.teacher.numClasses > 0,
  };
  if (o.part && partUri) {
    const part: PartRecord = {
      format: PART_FORMAT,
      index: o.part.index,
      count: o.part.count,
      seeds: { start: o.seeds.start, end: o.seeds.end },
      shardSize: o.shardSize,
      ...manifestInput,
      shards: entries,
    };
    await store.put(partUri, new TextEncoder().encode(`${JSON.stringify(part, null, 1)}\n`));
    await store.delete(progressUri);
    const manifest = await mergeParts(store, o.outDir, part);
    return { manifest, partUri, generated, interrupted: false };
  }
  const manifest = await writeManifest(store, o.outDir, { ...manifestInput, shards: entries });
  await store.delete(progressUri);
  return { manifest, generated, interrupted: false };
}

const shareSize = (ranges: SeedRange[]): number => ranges.reduce((a, r) => a + r.end - r.start, 0);

/** Pairs of this call so far: `done` (generated or reused) and `generated` of `mine` (its share). */
interface PairCount {
  done: number;
  generated: number;
  readonly mine: number;
}

/** The existing manifest when it is complete, verified (sha256) and matches this teacher, sampler and seeds. */
async function completeManifest(o: DatagenOptions, sampler: Record<string, unknown>): Promise<DatasetManifest | null> {
  const existing = await readManifest(o.store, o.outDir, { verify: 'sha256' }).catch(rethrowStore);
  const matches =
    existing &&
    existing.teacher === o.teacher.id &&
    canonicalJson(existing.sampler) === canonicalJson(sampler) &&
    existing.shards[0]?.seedStart === o.seeds.start &&
    existing.shards.at(-1)?.seedEnd === o.seeds.end &&
    existing.totalPairs === o.seeds.end - o.seeds.start;
  return matches ? existing : null;
}

/**
 * The shard entries on record, by file name: a shard is trusted only when a record vouches for its
 * digest (a previous manifest, this part's file, or the journal of an interrupted generation). An
 * unrecorded shard (killed before its record) is regenerated.
 */
async function recordedShards(
  o: DatagenOptions,
  progressUri: string,
  partUri: string | undefined,
): Promise<Map<string, ShardEntry>> {
  const listed = new Map<string, ShardEntry>();
  for (const e of (await readManifest(o.store, o.outDir, { verify: 'none' }).catch(rethrowStore))?.shards ?? [])
    listed.set(e.file, e);
  if (partUri) for (const e of (await readPart(o.store, partUri))?.shards ?? []) listed.set(e.file, e);
  for (const e of await readProgress(o.store, progressUri)) listed.set(e.file, e);
  return listed;
}

/**
 * The entry of the existing shard of `range` when it can be kept: on record (`entry`), the listed size,
 * its digest, and its seed range; otherwise undefined (after onRegenerate says why, when it exists).
 * @throws UsageError when a valid shard was made by another teacher or sampler; StoreError.
 */
async function keptShard(
  o: DatagenOptions,
  range: SeedRange,
  entry: ShardEntry | undefined,
  sampler: Record<string, unknown>,
): Promise<ShardEntry | undefined> {
  const file = shardFileName(range);
  const uri = joinUri(o.outDir, file);
  const info = await o.store.head(uri);
  if (info === null) return undefined;
  if (!entry) {
    o.onRegenerate?.(uri, 'no digest on record (the run that wrote it stopped before recording it)');
    return undefined;
  }
  if (entry.bytes !== info.size) {
    o.onRegenerate?.(uri, `${info.size} bytes, the manifest lists ${entry.bytes} (truncated or replaced)`);
    return undefined;
  }
  let s: LoadedShard;
  try {
    s = await readShard(o.store, uri, entry.sha256);
  } catch (e) {
    if (e instanceof StoreError) throw e; // the store failed, not the shard
    o.onRegenerate?.(uri, (e as Error).message.replace(`${uri}: `, ''));
    return undefined;
  }
  if (s.seeds.start !== range.start || s.seeds.end !== range.end) {
    o.onRegenerate?.(
      uri,
      `holds seeds [${s.seeds.start}, ${s.seeds.end}), its name says [${range.start}, ${range.end})`,
    );
    return undefined;
  }
  if (s.teacher !== o.teacher.id || canonicalJson(s.sampler) !== canonicalJson(sampler)) {
    throw new UsageError(`${uri}: made by teacher ${s.teacher} with another sampler config; use a new --out`);
  }
  const { sha256, bytes } = s;
  return { file, sha256, bytes, seedStart: range.start, seedEnd: range.end, count: range.end - range.start };
}

/**
 * The teacher's samples from the stored noise of every seed in `range`, in sub-batches aligned to the
 * range start (so the shard's bytes do not depend on who makes it), counting them in `count`.
 * @returns null when `shouldStop` ended it before the last sub-batch.
 * @throws UsageError when the teacher returns a non-finite image.
 */
async function samplePairs(
  o: DatagenOptions,
  range: SeedRange,
  count: PairCount,
): Promise<{ noise: Float32Array; image: Float32Array; label?: Int32Array } | null> {
  const { channels, height, width } = o.teacher.shape;
  const subBatch = o.subBatch ?? 256;
  const n = range.end - range.start;
  const noise = noiseForSeedRange(range, { channels, height, width }); // float32 [n,C,H,W], the stored student input
  const label = o.teacher.numClasses > 0 ? labelsForSeedRange(range, o.teacher.numClasses) : undefined;
  const image = new Float32Array(noise.length);
  const per = channels * height * width;
  for (let b = 0; b < n; b += subBatch) {
    if (o.shouldStop?.()) return null;
    const m = Math.min(subBatch, n - b);
    const x = Float64Array.from(noise.subarray(b * per, (b + m) * per)); // the teacher sees exactly the stored noise
    const y = await heunSample(o.teacher, x, label ? label.subarray(b, b + m) : null, m, { steps: o.samplerSteps });
    const bad = y.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0)
      throw new UsageError(
        `teacher ${o.teacher.id} returned a non-finite image for seed ${range.start + b + Math.floor(bad / per)}; ` +
          'check the teacher network',
      );
    image.set(y, b * per);
    count.done += m;
    count.generated += m;
    o.onProgress?.(count.done, count.mine, count.generated);
  }
  return { noise, image, label };
}

// ------------------------------------------------------------------------------- parts (Indexed Jobs)

/** Folder (inside the dataset folder) of the part files of a multi-worker generation. */
export const PARTS_DIR = 'parts';
const PART_FORMAT = 'get-distill/pairs-part';

/** `parts/part-<index>-of-<count>.json`: a finished part's shard entries. */
export const partFileName = (p: DatagenPart): string => `${PARTS_DIR}/part-${p.index}-of-${p.count}.json`;

/** `progress-part-<index>-of-<count>.json`: the journal of one unfinished part. */
export const partProgressFile = (p: DatagenPart): string => `progress-part-${p.index}-of-${p.count}.json`;

/**
 * The shards of part `index` of `count`: the shards of `seeds` (splitSeedRange by `shardSize`) cut into
 * `count` contiguous groups whose sizes differ by at most one shard, the larger ones first. A part is
 * empty when there are fewer shards than parts.
 * @throws Error for an invalid seed range, shard size, or part (index outside [0, count)).
 */
export function partShardRanges(seeds: SeedRange, shardSize: number, part: DatagenPart): SeedRange[] {
  const { index, count } = part;
  if (!Number.isInteger(count) || count < 1)
    throw new Error(`part count must be a positive integer, got ${String(count)}`);
  if (!Number.isInteger(index) || index < 0 || index >= count)
    throw new Error(`part index ${String(index)} is outside [0, ${count})`);
  const all = splitSeedRange(seeds, shardSize);
  const base = Math.floor(all.length / count);
  const extra = all.length % count;
  const first = index * base + Math.min(index, extra);
  return all.slice(first, first + base + (index < extra ? 1 : 0));
}

const PartSchema = z.object({
  format: z.literal(PART_FORMAT),
  index: z.number().int().min(0),
  count: z.number().int().positive(),
  seeds: z.object({ start: z.number().int(), end: z.number().int() }),
  shardSize: z.number().int().positive(),
  dataset: z.string(),
  teacher: z.string(),
  sampler: z.record(z.string(), z.unknown()),
  imageShape: z.object({ channels: z.number().int(), height: z.number().int(), width: z.number().int() }),
  numClasses: z.number().int().min(0),
  conditional: z.boolean(),
  shards: z.array(ShardEntrySchema),
});
type PartRecord = z.infer<typeof PartSchema>;

/** A part file, or null when absent or unreadable (a failing store throws). */
async function readPart(store: ObjectStore, uri: string): Promise<PartRecord | null> {
  try {
    return PartSchema.parse(JSON.parse(new TextDecoder().decode(await store.get(uri))));
  } catch (e) {
    return rethrowStore(e);
  }
}

/**
 * Writes manifest.json when every part of `mine`'s generation has its part file: their shard entries,
 * sorted by seedStart, must be exactly the shards of the whole seed range. Each part writes its file
 * before it looks, and S3 reads are read-after-write consistent, so the last part to finish sees them
 * all; two parts that finish together both write the same manifest (equal apart from createdAt).
 * @returns the manifest, or null while some part file is missing.
 * @throws UsageError when a part file belongs to another generation (teacher, sampler, seed range or
 *   shard size differ) or the parts do not cover the seed range.
 */
async function mergeParts(store: ObjectStore, dir: string, mine: PartRecord): Promise<DatasetManifest | null> {
  const parts: PartRecord[] = [];
  for (let index = 0; index < mine.count; index++) {
    if (index === mine.index) {
      parts.push(mine);
      continue;
    }
    const uri = joinUri(dir, partFileName({ index, count: mine.count }));
    const p = await readPart(store, uri);
    if (!p) return null; // not finished yet: its worker merges when it is
    const same = (a: unknown, b: unknown) => canonicalJson(a) === canonicalJson(b);
    if (
      p.index !== index ||
      p.count !== mine.count ||
      !same(p.seeds, mine.seeds) ||
      p.shardSize !== mine.shardSize ||
      p.teacher !== mine.teacher ||
      !same(p.sampler, mine.sampler) ||
      p.dataset !== mine.dataset
    ) {
      throw new UsageError(
        `${uri}: part of another generation (teacher, sampler, seed range or shard size differ from ` +
          `part ${mine.index}'s); use a new output folder`,
      );
    }
    parts.push(p);
  }
  const shards = parts.flatMap((p) => p.shards).sort((a, b) => a.seedStart - b.seedStart);
  const want = splitSeedRange(mine.seeds, mine.shardSize).map(shardFileName);
  if (shards.length !== want.length || shards.some((s, i) => s.file !== want[i])) {
    throw new UsageError(
      `${joinUri(dir, PARTS_DIR)}: the ${mine.count} part files do not list exactly the shards of ` +
        `seeds [${mine.seeds.start}, ${mine.seeds.end}); delete the parts folder and rerun every part`,
    );
  }
  const { dataset, teacher, sampler, imageShape, numClasses, conditional } = mine;
  return writeManifest(store, dir, { dataset, teacher, sampler, imageShape, numClasses, conditional, shards });
}

/** A missing or unreadable manifest is "none yet"; a failing store is an error. */
function rethrowStore(e: unknown): null {
  if (e instanceof StoreError && e.code !== 'NotFound') throw e;
  return null;
}

const ProgressSchema = z.object({ format: z.literal(PROGRESS_FORMAT), shards: z.array(ShardEntrySchema) });

/** The journal's entries ([] when absent or unreadable: its shards are then regenerated). */
async function readProgress(store: ObjectStore, uri: string): Promise<ShardEntry[]> {
  try {
    return ProgressSchema.parse(JSON.parse(new TextDecoder().decode(await store.get(uri)))).shards;
  } catch (e) {
    return rethrowStore(e) ?? [];
  }
}

/** Digest of a dataset's content (its shard list with sha256s), recorded in checkpoints. */
export function datasetDigest(m: DatasetManifest): string {
  return sha256Hex(canonicalJson(m.shards));
}
