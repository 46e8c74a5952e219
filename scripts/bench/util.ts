/**
 * Shared helpers of `npm run bench`: timing, result rows, random fills. Benchmarks, not tests: numbers
 * are measured and reported; a missed goal is a finding, not a failure.
 */
import type { ParamStore } from '../../src/train/params.js';
import { Rng } from '../../src/util/rng.js';

/** One line of the results table. */
export interface Row {
  /** Section key, e.g. `matmul` (what `--only` selects). */
  readonly section: string;
  /** What was measured, e.g. `MatMul 1024×1024×1024 float32`. */
  readonly what: string;
  /** The measured value, formatted with its unit, e.g. `212.4 GFLOP/s`. */
  readonly value: string;
  /** The goal and whether it was met, e.g. `≥ 60%: met`; empty when there is none. */
  readonly goal?: string;
  /** Conditions and secondary numbers (batch, best/median, RSS baseline …). */
  readonly note?: string;
}

/** Options every section receives. */
export interface BenchContext {
  /** `--quick`: fewer repetitions and smaller data, for a smoke run (about a minute). */
  readonly quick: boolean;
  /** Prints one progress line (prefixed with the section name). */
  readonly log: (msg: string) => void;
}

/** Milliseconds of each of `reps` calls of `fn`, after `warmup` untimed calls. */
export async function timeRuns(fn: () => Promise<unknown>, warmup: number, reps: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return ms;
}

/** Smallest value (the best run: least disturbed by other load). */
export const best = (xs: readonly number[]): number => Math.min(...xs);

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Fixed-point formatting with thousands separators, e.g. fmt(81920) = `81,920`. */
export const fmt = (x: number, digits = 0): string =>
  x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** KB (as `resourceUsage().maxRSS` reports on Linux) → MB string. */
export const mb = (kb: number): string => `${fmt(kb / 1024, 0)} MB`;

/** A float32 array of N(0, std²) values, deterministic in `seed`. */
export function randn(n: number, seed: number, std = 1): Float32Array {
  return new Rng(seed).fillNormal(new Float32Array(n), std);
}

/**
 * Replaces the zero initialisations of a fresh ParamStore (biases, LayerNorm shifts, GET's zero decoder)
 * with N(0, std²) values, so a timed step never runs on degenerate (all-zero upstream gradient) data.
 */
export function perturbZeroInits(store: ParamStore, seed: number, std = 0.02): void {
  const rng = new Rng(seed);
  for (const s of store.specs) if (s.init.kind === 'zeros') rng.fillNormal(store.view(s.name), std);
}
