/**
 * The training loader: shuffled mini-batches of pair shards (PairStream) in a batch order that is a pure
 * function of (manifest, seed, epoch). The shards and manifest it reads are defined in shards.ts.
 */
import { mersenne } from 'pure-rand/generator/mersenne';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { type ObjectStore, joinUri } from '../store/index.js';
import { fmix32 } from '../util/rng.js';
import {
  type DatasetManifest,
  type PairShard,
  type ShardEntry,
  MANIFEST_FILE,
  readManifest,
  readShard,
} from './shards.js';

/** One mini-batch; b = batch size (the last batch of an epoch may be smaller unless dropLast). */
export interface PairBatch {
  readonly size: number;
  /** float32 [b, C, H, W]. */
  readonly noise: Float32Array;
  /** float32 [b, C, H, W]. */
  readonly image: Float32Array;
  /** int32 [b], present iff the dataset is conditional. */
  readonly label?: Int32Array;
  /** int32 [b], the seed of each pair (for tracing and tests). */
  readonly seeds: Int32Array;
}

export interface PairStreamOptions {
  readonly batchSize: number;
  /** Shuffle seed: (seed, epoch) fixes the shard order and the in-buffer order. */
  readonly seed: number;
  /** Shards loaded together and shuffled as one buffer: 1 or 2 (default 2). */
  readonly shardsPerBuffer?: 1 | 2;
  /** Drop the final partial batch of each epoch (default false). */
  readonly dropLast?: boolean;
  /** Check each shard's sha256 against the manifest when loading (default true). */
  readonly verifySha256?: boolean;
}

/** Memory bookkeeping, for tests and logs. */
export interface PairStreamStats {
  shardsLoaded: number;
  peakLoadedShards: number;
  /** Peak pairs held by the stream: loaded shards plus the batch being assembled. */
  peakBufferedPairs: number;
}

/** murmur3's 32-bit finaliser as an unsigned 32-bit integer (decorrelates nearby (seed, epoch) pairs). */
const mix32 = (x: number): number => fmix32(x) >>> 0;

/** Fisher–Yates shuffle of `a` in place with `rng` (one uniformInt draw per position, from the end). */
function shuffleInPlace(rng: Parameters<typeof uniformInt>[0], a: Int32Array): Int32Array {
  for (let i = a.length - 1; i > 0; i--) {
    const j = uniformInt(rng, 0, i);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** The arrays of one batch being assembled: `b` pairs of `D` floats each (labels iff conditional). */
type BatchArrays = { noise: Float32Array; image: Float32Array; label?: Int32Array; seeds: Int32Array };

const batchArrays = (b: number, D: number, conditional: boolean): BatchArrays => ({
  noise: new Float32Array(b * D),
  image: new Float32Array(b * D),
  seeds: new Int32Array(b),
  ...(conditional ? { label: new Int32Array(b) } : {}),
});

/** The first `fill` pairs of `cur` as a batch of their own (an epoch's short last batch). */
const shortBatch = (cur: BatchArrays, fill: number, D: number): PairBatch => ({
  size: fill,
  noise: cur.noise.slice(0, fill * D),
  image: cur.image.slice(0, fill * D),
  ...(cur.label ? { label: cur.label.slice(0, fill) } : {}),
  seeds: cur.seeds.slice(0, fill),
});

/**
 * Streams shuffled mini-batches of pairs for training, holding at most `shardsPerBuffer` shards plus one
 * batch in memory, whatever the dataset size.
 *
 * Epoch e: shards are permuted (Fisher–Yates, MT19937 seeded with mix32(seed ^ mix32(e + 0x9e3779b9)));
 * they are loaded `shardsPerBuffer` at a time, and each buffer's pairs are permuted with the same
 * generator. Pairs left over at the end of a buffer start the next batch, so every pair appears exactly
 * once per epoch and only the last batch may be short. Pairs are i.i.d. across seeds, so a buffer-local
 * shuffle is statistically a global one. Deterministic given (manifest, options, epoch).
 */
export class PairStream {
  readonly stats: PairStreamStats = { shardsLoaded: 0, peakLoadedShards: 0, peakBufferedPairs: 0 };
  private readonly verified = new Set<string>();
  private readonly perPair: number;
  private readonly perBuffer: number;

  /** @param dir the dataset URI in `store` (the folder of manifest.json). */
  constructor(
    readonly store: ObjectStore,
    readonly dir: string,
    readonly manifest: DatasetManifest,
    readonly options: PairStreamOptions,
  ) {
    const { batchSize, seed } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error(`PairStream: batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(seed)) throw new Error(`PairStream: seed must be an integer, got ${seed}`);
    this.perBuffer = options.shardsPerBuffer ?? 2;
    if (this.perBuffer !== 1 && this.perBuffer !== 2)
      throw new Error(`PairStream: shardsPerBuffer must be 1 or 2, got ${this.perBuffer}`);
    const { channels, height, width } = manifest.imageShape;
    this.perPair = channels * height * width;
  }

  /** Reads and validates `<dir>/manifest.json`, then makes a stream over it. */
  static async open(store: ObjectStore, dir: string, options: PairStreamOptions): Promise<PairStream> {
    return new PairStream(store, dir, await readManifest(store, dir), options);
  }

  /** Batches per epoch: ⌈totalPairs / b⌉, or ⌊totalPairs / b⌋ with dropLast. */
  get batchesPerEpoch(): number {
    const { totalPairs } = this.manifest;
    const b = this.options.batchSize;
    return this.options.dropLast ? Math.floor(totalPairs / b) : Math.ceil(totalPairs / b);
  }

  /**
   * The batches of epoch `epoch`, starting at batch `startBatch` (for resuming mid-epoch: the same
   * batches as the tail of the full epoch; shards wholly before it are not read).
   * @throws Error when a shard is missing, corrupt, or disagrees with the manifest.
   */
  async *epoch(epoch: number, opts: { startBatch?: number } = {}): AsyncGenerator<PairBatch> {
    const startBatch = opts.startBatch ?? 0;
    if (!Number.isInteger(epoch) || epoch < 0)
      throw new Error(`PairStream.epoch: epoch must be a non-negative integer, got ${epoch}`);
    if (!Number.isInteger(startBatch) || startBatch < 0)
      throw new Error(`PairStream.epoch: startBatch must be a non-negative integer, got ${startBatch}`);
    const b = this.options.batchSize;
    const D = this.perPair;
    const cond = this.manifest.conditional;
    const rng = mersenne(mix32(this.options.seed ^ mix32(epoch + 0x9e3779b9)));
    const shuffle = (a: Int32Array): Int32Array => shuffleInPlace(rng, a);
    const order = shuffle(Int32Array.from(this.manifest.shards.keys()));
    const skipPairs = startBatch * b;
    let emitted = 0; // pairs consumed so far this epoch (skipped or copied)
    let batchIndex = 0;
    let cur: BatchArrays | undefined;
    let fill = 0;
    for (let g = 0; g < order.length; g += this.perBuffer) {
      const entries = Array.from(order.subarray(g, g + this.perBuffer), (k) => this.manifest.shards[k]);
      const m = entries.reduce((a, e) => a + e.count, 0);
      // Drawn even when skipped: keeps the rng in step.
      const perm = shuffle(Int32Array.from({ length: m }, (_, i) => i));
      if (emitted + m <= skipPairs) {
        emitted += m;
        batchIndex = Math.floor(emitted / b);
        continue;
      }
      const loaded: PairShard[] = [];
      for (const e of entries) loaded.push(await this.load(e));
      this.stats.peakLoadedShards = Math.max(this.stats.peakLoadedShards, loaded.length);
      this.stats.peakBufferedPairs = Math.max(this.stats.peakBufferedPairs, m + b);
      const first = loaded[0].seeds.end - loaded[0].seeds.start;
      for (let i = 0; i < m; i++) {
        if (emitted < skipPairs) {
          emitted++;
          if (emitted % b === 0) batchIndex++;
          continue;
        }
        const p = perm[i];
        const s = p < first ? loaded[0] : loaded[1];
        const r = p < first ? p : p - first;
        if (!cur) {
          cur = batchArrays(b, D, cond);
          fill = 0;
        }
        cur.noise.set(s.noise.subarray(r * D, (r + 1) * D), fill * D);
        cur.image.set(s.image.subarray(r * D, (r + 1) * D), fill * D);
        if (cur.label) cur.label[fill] = s.label![r];
        cur.seeds[fill] = s.seeds.start + r;
        fill++;
        emitted++;
        if (fill === b) {
          yield { size: b, ...cur };
          batchIndex++;
          cur = undefined;
        }
      }
    }
    if (cur && fill > 0 && !this.options.dropLast && batchIndex >= startBatch) yield shortBatch(cur, fill, D);
  }

  /** Loads one shard and checks it against its manifest entry and the dataset's shape and labels. */
  private async load(e: ShardEntry): Promise<PairShard> {
    const path = joinUri(this.dir, e.file);
    // sha256 is checked on a shard's first load only: later epochs re-read bytes already verified.
    const verify = this.options.verifySha256 !== false && !this.verified.has(e.file);
    const s = await readShard(this.store, path, verify ? e.sha256 : undefined);
    this.verified.add(e.file);
    this.stats.shardsLoaded++;
    const { channels, height, width } = this.manifest.imageShape;
    const mismatch = (what: string): Error =>
      new Error(`${path}: ${what} disagrees with ${joinUri(this.dir, MANIFEST_FILE)}`);
    if (s.seeds.start !== e.seedStart || s.seeds.end !== e.seedEnd)
      throw mismatch(`seed range [${s.seeds.start}, ${s.seeds.end})`);
    if (s.shape.channels !== channels || s.shape.height !== height || s.shape.width !== width) {
      throw mismatch(`image shape [${s.shape.channels},${s.shape.height},${s.shape.width}]`);
    }
    if (Boolean(s.label) !== this.manifest.conditional)
      throw mismatch(s.label ? 'a label tensor' : 'a missing label tensor');
    if (s.label) {
      for (let i = 0; i < s.label.length; i++) {
        if (s.label[i] >= this.manifest.numClasses)
          throw mismatch(`label ${s.label[i]} at pair ${i} (numClasses ${this.manifest.numClasses})`);
      }
    }
    return s;
  }
}
