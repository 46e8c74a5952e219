/**
 * Seeded pseudo-random numbers for initialisation, fixed-point start states and batch order.
 * Generator: pure-rand xoroshiro128+ whose 128-bit state is four murmur3-fmix32 hashes of
 * (seed + k·0x9E3779B9), k = 1..4 (pure-rand's own seeding leaves the first outputs of small seeds
 * nearly equal); uniforms are pure-rand's uniformFloat64 (53-bit, [0, 1)); normals by Box–Muller
 * (both outputs used).
 */
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

/** murmur3's 32-bit finaliser: a bijective avalanche mix of a 32-bit integer. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/** The xoroshiro128+ state for a seed (four well-mixed, never all-zero words). */
export function seedState(seed: number): number[] {
  const st = [1, 2, 3, 4].map((k) => fmix32((seed + Math.imul(k, 0x9e3779b9)) | 0));
  return st.some((w) => w !== 0) ? st : [1, 0, 0, 0];
}

export class Rng {
  private readonly gen: RandomGenerator;
  private spare: number | null = null;

  /** @throws when seed is not an integer in [−2^31, 2^31). */
  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < -(2 ** 31) || seed >= 2 ** 31)
      throw new Error(`Rng: seed must be a 32-bit integer, got ${seed}`);
    this.gen = xoroshiro128plusFromState(seedState(seed));
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return uniformFloat64(this.gen);
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal N(0, 1). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log is finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** Fills `out` with N(0, std²) samples and returns it. */
  fillNormal<T extends Float32Array | Float64Array>(out: T, std = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.normal() * std;
    return out;
  }
}
