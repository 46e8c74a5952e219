/**
 * Seeds → noise and class labels: the pure function behind every (noise, image, label) pair.
 *
 * DATA CONTRACT (version 1; changing any detail changes every dataset, so bump the shard format version):
 * - Seeds are integers in [0, 2^31).
 * - Noise for seed s: MT19937 (pure-rand `mersenne`, the reference Mersenne Twister with Matsumoto &
 *   Nishimura's `init_genrand(s)` seeding) → 53-bit uniform doubles u = ((a >>> 5)·2^26 + (b >>> 6)) / 2^53
 *   from two consecutive 32-bit outputs a, b → standard normals by the Marsaglia polar method:
 *   x1 = 2u − 1, x2 = 2u′ − 1, reject unless 0 < r² = x1² + x2² < 1, f = √(−2 ln r² / r²), emit f·x2
 *   then f·x1. Values fill [C, H, W] in row-major order. This is exactly NumPy's legacy
 *   `numpy.random.RandomState(s).standard_normal(C*H*W)` (up to the last ulp of libm's log/sqrt), so
 *   any pair can be re-derived outside this project.
 * - Label for seed s: a separate MT19937 stream seeded with s + 2^31 (never a noise seed, since noise
 *   seeds are < 2^31, so labels are independent of every pair's noise); draw 32-bit words w and return
 *   the first w & m ≤ K − 1, where m = 2^⌈log2 K⌉ − 1 (masked rejection, uniform on [0, K)). This is
 *   NumPy's legacy `RandomState(s + 2**31).randint(K)`.
 *
 * The reference draws per-seed noise with `torch.Generator('cuda').manual_seed(seed)` (get-reference.md
 * §5), which cannot be reproduced on CPU; this contract keeps its property (noise and label are a pure
 * function of the seed) with a generator that can be.
 */
import { mersenne } from 'pure-rand/generator/mersenne';

// Exclusive upper bound of valid seeds (2^31), defined with the option specs.
import { SEED_LIMIT } from '../spec/names.js';
export { SEED_LIMIT };

/** A seed range [start, end): `end` is exclusive. */
export interface SeedRange {
  readonly start: number;
  readonly end: number;
}

/** Image shape of one sample. */
export interface SampleShape {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

/** @throws Error when `seed` is not an integer in [0, 2^31). */
export function assertSeed(seed: number, what = 'seed'): void {
  if (!Number.isInteger(seed) || seed < 0 || seed >= SEED_LIMIT) {
    throw new Error(`${what} ${String(seed)} is invalid: seeds are integers in [0, 2^31)`);
  }
}

function assertShape(shape: SampleShape): number {
  const { channels, height, width } = shape;
  for (const [k, v] of Object.entries({ channels, height, width })) {
    if (!Number.isInteger(v) || v <= 0)
      throw new Error(`noiseForSeed: ${k} must be a positive integer, got ${String(v)}`);
  }
  return channels * height * width;
}

/** Fills out[offset, offset+count) with the seed's standard normals (the contract in the file header). */
function fillNormals(seed: number, out: Float32Array | Float64Array, offset: number, count: number): void {
  const rng = mersenne(seed);
  const uniform = (): number => {
    const a = rng.next() >>> 5;
    const b = rng.next() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  };
  for (let i = 0; i < count; i += 2) {
    let x1: number, x2: number, r2: number;
    do {
      x1 = 2 * uniform() - 1;
      x2 = 2 * uniform() - 1;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1 || r2 === 0);
    const f = Math.sqrt((-2 * Math.log(r2)) / r2);
    out[offset + i] = f * x2;
    if (i + 1 < count) out[offset + i + 1] = f * x1;
  }
}

/**
 * The initial noise ε ~ N(0, I) of the pair with this seed: float64 [C, H, W], row-major, unit variance
 * (not scaled by σ_max; the sampler scales it). Pure function of (seed, shape).
 * @throws Error for a seed outside [0, 2^31) or a non-positive shape.
 */
export function noiseForSeed(seed: number, shape: SampleShape): Float64Array {
  assertSeed(seed);
  const size = assertShape(shape);
  const out = new Float64Array(size);
  fillNormals(seed, out, 0, size);
  return out;
}

/**
 * The class label of the pair with this seed, uniform in [0, numClasses), from a stream independent of
 * the noise (see the file header).
 * @throws Error for an invalid seed or a numClasses that is not an integer in [1, 2^32].
 */
export function labelForSeed(seed: number, numClasses: number): number {
  assertSeed(seed);
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 2 ** 32) {
    throw new Error(`labelForSeed: numClasses must be an integer >= 1, got ${String(numClasses)}`);
  }
  const max = numClasses - 1;
  if (max === 0) return 0;
  let mask = max;
  for (let s = 1; s < 32; s <<= 1) mask |= mask >>> s;
  mask >>>= 0;
  const rng = mersenne(seed + SEED_LIMIT);
  for (;;) {
    const w = (rng.next() & mask) >>> 0;
    if (w <= max) return w;
  }
}

/**
 * Noise for every seed of a range, batched: float32 [n, C, H, W] with n = end − start, item i from seed
 * start + i (float32-rounded `noiseForSeed`, the dtype stored in pair shards).
 */
export function noiseForSeedRange(range: SeedRange, shape: SampleShape): Float32Array {
  checkSeedRange(range);
  const size = assertShape(shape);
  const out = new Float32Array((range.end - range.start) * size);
  for (let s = range.start; s < range.end; s++) fillNormals(s, out, (s - range.start) * size, size);
  return out;
}

/** Labels for every seed of a range: int32 [n], item i from seed start + i. */
export function labelsForSeedRange(range: SeedRange, numClasses: number): Int32Array {
  checkSeedRange(range);
  const out = new Int32Array(range.end - range.start);
  for (let s = range.start; s < range.end; s++) out[s - range.start] = labelForSeed(s, numClasses);
  return out;
}

/** @throws Error unless start < end are integers with 0 <= start and end <= 2^31. */
export function checkSeedRange(range: SeedRange): SeedRange {
  const { start, end } = range;
  if (!Number.isInteger(start) || !Number.isInteger(end)) {
    throw new Error(`seed range [${String(start)}, ${String(end)}) must have integer bounds`);
  }
  if (start < 0 || end > SEED_LIMIT) throw new Error(`seed range [${start}, ${end}) must lie within [0, 2^31)`);
  if (end < start) throw new Error(`seed range [${start}, ${end}) is reversed: end is exclusive and must exceed start`);
  if (end === start) throw new Error(`seed range [${start}, ${end}) is empty: end is exclusive and must exceed start`);
  return range;
}

/** Makes a validated seed range [start, end) (end exclusive). @throws Error as `checkSeedRange`. */
export function seedRange(start: number, end: number): SeedRange {
  return checkSeedRange({ start, end });
}

/**
 * Splits a range into consecutive shards of `shardSize` seeds, aligned to `range.start`; the last one may
 * be shorter. E.g. [0, 2500) by 1024 → [0,1024), [1024,2048), [2048,2500).
 * @throws Error for an invalid range or a shardSize that is not a positive integer.
 */
export function splitSeedRange(range: SeedRange, shardSize: number): SeedRange[] {
  checkSeedRange(range);
  if (!Number.isInteger(shardSize) || shardSize <= 0) {
    throw new Error(`splitSeedRange: shardSize must be a positive integer, got ${String(shardSize)}`);
  }
  const out: SeedRange[] = [];
  for (let s = range.start; s < range.end; s += shardSize)
    out.push({ start: s, end: Math.min(s + shardSize, range.end) });
  return out;
}
