/**
 * Pair shards and the dataset manifest: the shard codec (encode/decode, write/read with its digest) and
 * the manifest schema and its verification. The training loader over them is pair-stream.ts.
 *
 * DATA CONTRACT (format `get-distill/pairs`, version 1; full text in docs/data-contracts.md):
 * - Shard: one safetensors file per seed range [start, end), named
 *   `pairs-<start:10 digits>-<end:10 digits>.safetensors` (zero-padded so name order = seed order), with
 *   tensors `noise` F32 [n, C, H, W] (the seed's N(0, I) noise, seeds.ts), `image` F32 [n, C, H, W] (the
 *   teacher's sample from that noise, in [−1, 1]), and `label` I64 [n] for conditional teachers; n = end −
 *   start and row i belongs to seed start + i. Metadata (strings): `format` = "get-distill/pairs",
 *   `format_version` = "1", `teacher` (teacher id), `sampler` (canonical JSON: keys sorted),
 *   `seed_start`, `seed_end` (decimal).
 * - Manifest `manifest.json` in the same folder, written last: format, formatVersion, dataset, teacher,
 *   sampler, imageShape, numClasses, conditional, shards [{file, sha256, bytes, seedStart, seedEnd, count}]
 *   (sorted by seedStart, non-overlapping), totalPairs, createdAt (ISO 8601). A folder without a manifest
 *   is an unfinished generation. Every object is written atomically (src/store), the manifest last.
 *
 * Source: docs/data-contracts.md; the GET paper's data pipeline (locuslab/get data/generate.py) (the
 * reference stores pickled noise/image files per seed block; this project stores safetensors per seed
 * range instead).
 * All I/O goes through an ObjectStore (src/store): a dataset folder is a URI (plain path, file://, s3://).
 */
import { z } from 'zod';
import { type ObjectStore, StoreError, joinUri } from '../store/index.js';
import { sha256Hex } from '../util/fsutil.js';
import { decodeSafetensors, encodeSafetensors } from './safetensors.js';
import { type SampleShape, type SeedRange, SEED_LIMIT, checkSeedRange } from './seeds.js';

export const PAIR_FORMAT = 'get-distill/pairs';
export const PAIR_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

// ------------------------------------------------------------------------------------------------ shards

/** The pairs of one seed range, in memory. */
export interface PairShard {
  /** Teacher id (e.g. `gmm:mnist` or an ONNX model digest). */
  readonly teacher: string;
  /** Sampler description, JSON-serialisable (e.g. {name: 'heun', steps: 18, sigmaMin, sigmaMax, rho}). */
  readonly sampler: Readonly<Record<string, unknown>>;
  readonly seeds: SeedRange;
  readonly shape: SampleShape;
  /** float32 [n, C, H, W], N(0, I) noise of seeds start..end−1. */
  readonly noise: Float32Array;
  /** float32 [n, C, H, W], the teacher's image for each noise, in [−1, 1]. */
  readonly image: Float32Array;
  /** int32 [n] class labels (stored as I64), present iff the teacher is conditional. */
  readonly label?: Int32Array;
}

/** A shard as listed in the manifest. `file` is a bare name inside the dataset folder. */
export interface ShardEntry {
  readonly file: string;
  /** Lowercase hex sha256 of the whole file. */
  readonly sha256: string;
  readonly bytes: number;
  readonly seedStart: number;
  readonly seedEnd: number;
  readonly count: number;
}

/** What `writeShard` returns: the manifest entry plus the seed range. */
export interface WrittenShard extends ShardEntry {
  readonly seeds: SeedRange;
}

/** A shard read back, with the file's digest and size. */
export interface LoadedShard extends PairShard {
  readonly sha256: string;
  readonly bytes: number;
}

export { sha256Hex };

/** `pairs-0000000000-0000001024.safetensors` for [0, 1024): 10 digits fit every seed < 2^31. */
export function shardFileName(range: SeedRange): string {
  checkSeedRange(range);
  const p = (x: number): string => String(x).padStart(10, '0');
  return `pairs-${p(range.start)}-${p(range.end)}.safetensors`;
}

/** JSON with object keys sorted at every level, so equal content serialises identically. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, (v as Record<string, unknown>)[k]]),
        )
      : v,
  );
}

function checkShardArrays(s: PairShard, where: string): number {
  checkSeedRange(s.seeds);
  const n = s.seeds.end - s.seeds.start;
  const { channels: c, height: h, width: w } = s.shape;
  if (![c, h, w].every((d) => Number.isInteger(d) && d > 0))
    throw new Error(`${where}: invalid image shape [${c},${h},${w}]`);
  const size = n * c * h * w;
  if (s.noise.length !== size)
    throw new Error(`${where}: noise has ${s.noise.length} values, expected ${size} = [${n},${c},${h},${w}]`);
  if (s.image.length !== size)
    throw new Error(`${where}: image has ${s.image.length} values, expected ${size} = [${n},${c},${h},${w}]`);
  if (s.label && s.label.length !== n) throw new Error(`${where}: label has ${s.label.length} values, expected ${n}`);
  for (let i = 0; i < size; i++) {
    if (!Number.isFinite(s.noise[i]) || !Number.isFinite(s.image[i])) {
      throw new Error(
        `${where}: non-finite value at pair ${Math.floor(i / (c * h * w))} ` +
          `(seed ${s.seeds.start + Math.floor(i / (c * h * w))})`,
      );
    }
  }
  if (s.label)
    for (let i = 0; i < n; i++)
      if (s.label[i] < 0) throw new Error(`${where}: negative label ${s.label[i]} at pair ${i}`);
  return n;
}

/** Serialises a shard (pure; byte-identical for equal content). @throws Error on inconsistent arrays. */
export function encodeShard(shard: PairShard): Uint8Array {
  const n = checkShardArrays(shard, 'encodeShard');
  const { channels: c, height: h, width: w } = shard.shape;
  const tensors = {
    noise: { dtype: 'float32' as const, dims: [n, c, h, w], data: shard.noise },
    image: { dtype: 'float32' as const, dims: [n, c, h, w], data: shard.image },
    ...(shard.label
      ? { label: { dtype: 'int64' as const, dims: [n], data: BigInt64Array.from(shard.label, (v) => BigInt(v)) } }
      : {}),
  };
  return encodeSafetensors(tensors, {
    format: PAIR_FORMAT,
    format_version: String(PAIR_FORMAT_VERSION),
    teacher: shard.teacher,
    sampler: canonicalJson(shard.sampler),
    seed_start: String(shard.seeds.start),
    seed_end: String(shard.seeds.end),
  });
}

/**
 * Parses and validates shard bytes: safetensors structure, format/version, seed range, tensor set
 * (`noise`, `image`, optional `label`, nothing else), dtypes, shapes agreeing with n = end − start,
 * finite values, labels in [0, 2^31).
 * @throws Error `<source>: <problem>`.
 */
export function decodeShard(bytes: Uint8Array, source: string): PairShard {
  const { tensors, metadata: m } = decodeSafetensors(bytes, source);
  const bad = (msg: string): Error => new Error(`${source}: invalid pair shard: ${msg}`);
  if (m.format !== PAIR_FORMAT) throw bad(`metadata format is ${JSON.stringify(m.format)}, expected "${PAIR_FORMAT}"`);
  if (m.format_version !== String(PAIR_FORMAT_VERSION)) {
    throw bad(
      `format_version ${JSON.stringify(m.format_version)} is not supported ` +
        `(this build reads ${PAIR_FORMAT_VERSION}); regenerate the shards or upgrade`,
    );
  }
  if (!m.teacher) throw bad('metadata teacher is missing');
  let sampler: unknown;
  try {
    sampler = JSON.parse(m.sampler ?? '');
  } catch {
    throw bad('metadata sampler is not JSON');
  }
  if (typeof sampler !== 'object' || sampler === null || Array.isArray(sampler))
    throw bad('metadata sampler is not a JSON object');
  const seeds = { start: Number(m.seed_start), end: Number(m.seed_end) };
  try {
    checkSeedRange(seeds);
  } catch (e) {
    throw bad(`metadata seed_start/seed_end: ${(e as Error).message}`);
  }
  for (const name of Object.keys(tensors))
    if (!['noise', 'image', 'label'].includes(name)) throw bad(`unexpected tensor '${name}'`);
  const { noise, image, label } = tensors;
  if (!noise || !image) throw bad(`missing tensor '${noise ? 'image' : 'noise'}'`);
  const n = seeds.end - seeds.start;
  for (const [name, t] of [
    ['noise', noise],
    ['image', image],
  ] as const) {
    if (t.dtype !== 'float32') throw bad(`${name} is ${t.dtype}, expected float32`);
    if (t.dims.length !== 4 || t.dims[0] !== n)
      throw bad(
        `${name} shape [${t.dims.join(',')}], expected [${n}, C, H, W] for seeds [${seeds.start}, ${seeds.end})`,
      );
  }
  if (noise.dims.join(',') !== image.dims.join(','))
    throw bad(`noise [${noise.dims.join(',')}] and image [${image.dims.join(',')}] shapes differ`);
  const labels = label ? decodeLabels(label, n, bad) : undefined;
  const shard: PairShard = {
    teacher: m.teacher,
    sampler: sampler as Record<string, unknown>,
    seeds,
    shape: { channels: noise.dims[1], height: noise.dims[2], width: noise.dims[3] },
    noise: noise.data as Float32Array,
    image: image.data as Float32Array,
    ...(labels ? { label: labels } : {}),
  };
  checkShardArrays(shard, source);
  return shard;
}

/** A shard's `label` tensor (int64 [n], each in [0, 2^31)) as int32. @throws what `bad` makes. */
function decodeLabels(
  label: { dtype: string; dims: readonly number[]; data: unknown },
  n: number,
  bad: (msg: string) => Error,
): Int32Array {
  if (label.dtype !== 'int64' || label.dims.length !== 1 || label.dims[0] !== n)
    throw bad(`label is ${label.dtype} [${label.dims.join(',')}], expected int64 [${n}]`);
  const raw = label.data as BigInt64Array;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (raw[i] < 0n || raw[i] >= BigInt(SEED_LIMIT)) throw bad(`label ${raw[i]} at pair ${i} is out of range`);
    labels[i] = Number(raw[i]);
  }
  return labels;
}

/**
 * Writes a shard under the dataset URI `dir` as `shardFileName(shard.seeds)`, atomically.
 * @returns the manifest entry: bare file name, sha256, size in bytes, pair count, seed range.
 * @throws Error on inconsistent arrays; StoreError on a failed write (nothing partial is left).
 */
export async function writeShard(store: ObjectStore, dir: string, shard: PairShard): Promise<WrittenShard> {
  const bytes = encodeShard(shard);
  const file = shardFileName(shard.seeds);
  await store.put(joinUri(dir, file), bytes);
  const { start, end } = shard.seeds;
  return {
    file,
    sha256: sha256Hex(bytes),
    bytes: bytes.length,
    seedStart: start,
    seedEnd: end,
    count: end - start,
    seeds: { start, end },
  };
}

/**
 * Reads and validates the shard object `uri`; when `expectedSha256` is given, its digest must match.
 * @throws StoreError when it cannot be read (absent, access denied, …); Error naming the URI on a
 *   digest mismatch or any `decodeShard` problem (a truncated shard fails its safetensors checks).
 */
export async function readShard(store: ObjectStore, uri: string, expectedSha256?: string): Promise<LoadedShard> {
  const bytes = await store.get(uri);
  const sha256 = sha256Hex(bytes);
  if (expectedSha256 !== undefined && sha256 !== expectedSha256.toLowerCase()) {
    throw new Error(
      `${uri}: sha256 ${sha256} does not match the manifest's ${expectedSha256} ` +
        '(corrupt or replaced shard; regenerate its seed range)',
    );
  }
  return { ...decodeShard(bytes, uri), sha256, bytes: bytes.length };
}

// ---------------------------------------------------------------------------------------------- manifest

const int = z.number().int();
export const ShardEntrySchema = z.object({
  file: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors$/, 'must be a bare *.safetensors file name'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
  bytes: int.positive(),
  seedStart: int.min(0).max(SEED_LIMIT - 1),
  seedEnd: int.min(1).max(SEED_LIMIT),
  count: int.positive(),
});
const ManifestSchema = z.object({
  format: z.literal(PAIR_FORMAT),
  formatVersion: z.literal(PAIR_FORMAT_VERSION),
  dataset: z.string().min(1),
  teacher: z.string().min(1),
  sampler: z.record(z.string(), z.unknown()),
  imageShape: z.object({ channels: int.positive(), height: int.positive(), width: int.positive() }),
  numClasses: int.min(0),
  conditional: z.boolean(),
  shards: z.array(ShardEntrySchema).min(1),
  totalPairs: int.positive(),
  createdAt: z.iso.datetime({ offset: true }),
});

/** The dataset manifest (`manifest.json`). Unknown extra keys are ignored when read. */
export type DatasetManifest = z.infer<typeof ManifestSchema>;

/** What the writer supplies; format, version, totalPairs and (by default) createdAt are filled in. */
export interface ManifestInput {
  /** Source data of the teacher, e.g. `mnist` (free-form id). */
  readonly dataset: string;
  readonly teacher: string;
  readonly sampler: Readonly<Record<string, unknown>>;
  readonly imageShape: SampleShape;
  /** Classes of the label space (0 allowed for unconditional data). */
  readonly numClasses: number;
  readonly conditional: boolean;
  /** Entries as returned by `writeShard` (extra keys such as `seeds` are dropped). */
  readonly shards: readonly ShardEntry[];
  readonly createdAt?: string;
}

/** Cross-field rules zod cannot express: counts, totals, seed-range overlap, unique files, classes. */
function checkManifestRules(m: DatasetManifest): string | undefined {
  const files = new Set<string>();
  let total = 0;
  let prevEnd = -1;
  for (const s of m.shards) {
    if (s.seedEnd <= s.seedStart) return `shard ${s.file}: seedEnd ${s.seedEnd} must exceed seedStart ${s.seedStart}`;
    if (s.count !== s.seedEnd - s.seedStart)
      return (
        `shard ${s.file}: count ${s.count} does not match its seed range [${s.seedStart}, ${s.seedEnd}) ` +
        `(${s.seedEnd - s.seedStart} seeds)`
      );
    if (files.has(s.file)) return `shard ${s.file} is listed twice`;
    files.add(s.file);
    if (s.seedStart < prevEnd)
      return (
        `shard ${s.file}: seed range [${s.seedStart}, ${s.seedEnd}) overlaps the previous shard or is out of order ` +
        '(shards must be sorted by seedStart)'
      );
    prevEnd = s.seedEnd;
    total += s.count;
  }
  if (total !== m.totalPairs) return `totalPairs ${m.totalPairs} does not match the sum of shard counts ${total}`;
  if (m.conditional && m.numClasses < 1) return 'a conditional dataset needs numClasses >= 1';
  return undefined;
}

/** Checks that every listed shard exists with the listed size (and digest when `sha256`). */
async function checkShardFiles(
  store: ObjectStore,
  dir: string,
  m: DatasetManifest,
  verify: 'size' | 'sha256',
  where: string,
): Promise<void> {
  for (const s of m.shards) {
    const uri = joinUri(dir, s.file);
    const info = await store.head(uri);
    if (info === null)
      throw new Error(
        `${where}: shard ${s.file} is missing (expected at ${uri}); regenerate seeds [${s.seedStart}, ${s.seedEnd})`,
      );
    if (info.size !== s.bytes)
      throw new Error(
        `${where}: shard ${s.file} has ${info.size} bytes, the manifest lists ${s.bytes} (truncated or replaced)`,
      );
    if (verify === 'sha256') {
      const digest = sha256Hex(await store.get(uri));
      if (digest !== s.sha256)
        throw new Error(`${where}: shard ${s.file} sha256 ${digest} does not match the manifest's ${s.sha256}`);
    }
  }
}

/**
 * Writes `manifest.json` under the dataset URI `dir` last and atomically, after checking that every
 * shard exists with its listed size. Shards are sorted by seedStart; totalPairs is their sum.
 * @returns the manifest as written.
 * @throws Error on a schema violation, overlapping seed ranges, count mismatch or a missing shard;
 *   StoreError when the store fails.
 */
export async function writeManifest(store: ObjectStore, dir: string, input: ManifestInput): Promise<DatasetManifest> {
  const shards = [...input.shards]
    .map(({ file, sha256, bytes, seedStart, seedEnd, count }) => ({ file, sha256, bytes, seedStart, seedEnd, count }))
    .sort((a, b) => a.seedStart - b.seedStart);
  const candidate = {
    format: PAIR_FORMAT,
    formatVersion: PAIR_FORMAT_VERSION,
    dataset: input.dataset,
    teacher: input.teacher,
    sampler: { ...input.sampler },
    imageShape: { channels: input.imageShape.channels, height: input.imageShape.height, width: input.imageShape.width },
    numClasses: input.numClasses,
    conditional: input.conditional,
    shards,
    totalPairs: shards.reduce((a, s) => a + s.count, 0),
    createdAt: input.createdAt ?? new Date().toISOString(),
  };
  const uri = joinUri(dir, MANIFEST_FILE);
  const where = `${uri} (writing)`;
  const m = parseManifest(candidate, where);
  await checkShardFiles(store, dir, m, 'size', where);
  await store.put(uri, new TextEncoder().encode(JSON.stringify(m, null, 2) + '\n'));
  return m;
}

/** Validates a parsed manifest object. @throws Error `<where>: <field path>: <problem>`. */
export function parseManifest(json: unknown, where: string): DatasetManifest {
  const r = ManifestSchema.safeParse(json);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`${where}: invalid manifest: ${issues}`);
  }
  const rule = checkManifestRules(r.data);
  if (rule) throw new Error(`${where}: invalid manifest: ${rule}`);
  return r.data;
}

/**
 * Reads and validates `<dir>/manifest.json`: schema (zod), counts and totals, seed-range order and overlap,
 * then that each shard exists with its listed size (`verify: 'size'`, default), also its sha256
 * (`'sha256'`, reads every shard), or neither (`'none'`).
 * @throws Error naming the manifest URI: missing manifest (generation unfinished), invalid JSON, schema
 *   violation, count mismatch, missing or resized shard; StoreError when the store fails otherwise.
 */
export async function readManifest(
  store: ObjectStore,
  dir: string,
  opts: { verify?: 'none' | 'size' | 'sha256' } = {},
): Promise<DatasetManifest> {
  const path = joinUri(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = new TextDecoder().decode(await store.get(path));
  } catch (e) {
    if (e instanceof StoreError && e.code === 'NotFound')
      // eslint-disable-next-line preserve-caught-error -- a StoreError cause would change classifyError's reason
      throw new Error(`${path}: no manifest (the pair dataset is missing or its generation has not finished)`);
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: manifest is not valid JSON (${(e as Error).message})`, { cause: e });
  }
  const m = parseManifest(json, path);
  const verify = opts.verify ?? 'size';
  if (verify !== 'none') await checkShardFiles(store, dir, m, verify, path);
  return m;
}
