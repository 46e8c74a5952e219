/**
 * Improved precision and recall (Kynkäänniemi, Karras, Laine, Lehtinen, Aila: "Improved Precision and Recall
 * Metric for Assessing Generative Models", NeurIPS 2019, §2). Each set's manifold is the union of balls around
 * its samples, the radius of a sample being the distance to its k-th nearest neighbour in the same set
 * (itself excluded; k = 3 in the paper). precision = fraction of generated samples inside the real manifold;
 * recall = fraction of real samples inside the generated manifold. A point is inside when its distance to some
 * centre is ≤ that centre's radius.
 *
 * Distances: squared Euclidean, ‖a‖² + ‖b‖² − 2a·b clipped at 0, as one onnxruntime float32 Gemm + Add + Relu
 * per row block (comparing squared distances orders them exactly as distances). Three n×n passes: real–real and
 * fake–fake for the radii, fake–real for both coverage tests at once; blocks of ≤ 16M distances (64 MB).
 */
import { Graph } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import * as op from '../graph/ops.js';
import { OrtSession, f32 } from '../graph/session.js';
import { UsageError } from '../util/errors.js';
import { assertFiniteFeatures } from './stats.js';

export interface PrecisionRecallOptions {
  /** Neighbour rank that sets each radius (default 3, as the paper). */
  readonly k?: number;
  /** Use only the first `maxSamples` samples of each set (pass shuffled sets; default: all). */
  readonly maxSamples?: number;
  /** Distances computed per onnxruntime call (default 2^24). */
  readonly blockElems?: number;
}

export interface PrecisionRecallResult {
  /** Fraction of generated samples inside the real manifold, in [0, 1]. */
  readonly precision: number;
  /** Fraction of real samples inside the generated manifold, in [0, 1]. */
  readonly recall: number;
  readonly k: number;
  /** Samples used per set (after maxSamples). */
  readonly nReal: number;
  readonly nFake: number;
}

/** Squared distances of rows of `a` [m, dim] to rows of `b` [n, dim], in row blocks, float32. */
class SquaredDistances {
  private constructor(private readonly session: OrtSession) {}

  static async create(dim: number): Promise<SquaredDistances> {
    const g = new Graph('sqdist');
    const a = g.input('a', 'float32', ['m', dim]);
    const b = g.input('b', 'float32', ['n', dim]);
    const na = g.input('na', 'float32', ['m', 1]);
    const nb = g.input('nb', 'float32', [1, 'n']);
    const ab = op.gemm(a, b, { transB: true, alpha: -2, beta: 1 }, nb); // ‖b‖² − 2a·bᵀ, [m, n]
    const d2 = op.relu(op.add(ab, na));
    return new SquaredDistances(await OrtSession.create(toOnnx(g, { outputs: { d2 } })));
  }

  /** Calls `visit(block, r0, rows)` with block = d²[r0 : r0 + rows, :] (row-major, n columns). */
  async forEachBlock(
    a: FeatureSet,
    b: FeatureSet,
    blockElems: number,
    visit: (d2: Float32Array, r0: number, rows: number) => void,
  ): Promise<void> {
    const step = Math.max(1, Math.min(a.n, Math.floor(blockElems / b.n)));
    for (let r0 = 0; r0 < a.n; r0 += step) {
      const rows = Math.min(step, a.n - r0);
      const res = await this.session.run({
        a: f32([rows, a.dim], a.x.subarray(r0 * a.dim, (r0 + rows) * a.dim)),
        b: f32([b.n, b.dim], b.x),
        na: f32([rows, 1], a.norms.subarray(r0, r0 + rows)),
        nb: f32([1, b.n], b.norms),
      });
      visit(res.d2.data as Float32Array, r0, rows);
    }
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

interface FeatureSet {
  readonly x: Float32Array;
  readonly n: number;
  readonly dim: number;
  readonly norms: Float32Array;
}

function makeSet(x: Float32Array, n: number, dim: number, what: string): FeatureSet {
  assertFiniteFeatures(x, n, dim, 0, what);
  const norms = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = i * dim; j < (i + 1) * dim; j++) s += x[j] * x[j];
    norms[i] = s;
  }
  return { x, n, dim, norms };
}

/** Squared radius of every sample of `s`: its k-th smallest squared distance to the others. */
async function radii(dist: SquaredDistances, s: FeatureSet, k: number, blockElems: number): Promise<Float32Array> {
  const r = new Float32Array(s.n);
  const best = new Float64Array(k);
  await dist.forEachBlock(s, s, blockElems, (d2, r0, rows) => {
    for (let i = 0; i < rows; i++) {
      best.fill(Infinity); // ascending k smallest so far
      const row = i * s.n;
      const self = r0 + i;
      for (let j = 0; j < s.n; j++) {
        const v = d2[row + j];
        if (v >= best[k - 1] || j === self) continue;
        let p = k - 1;
        while (p > 0 && best[p - 1] > v) {
          best[p] = best[p - 1];
          p--;
        }
        best[p] = v;
      }
      r[self] = best[k - 1];
    }
  });
  return r;
}

/**
 * Improved precision and recall of generated features against real features.
 * @param real float32 [nReal, dim] row-major features of real samples.
 * @param fake float32 [nFake, dim] row-major features of generated samples.
 * @throws UsageError for non-finite features (names set, sample and feature), k not a positive integer, or a set
 *   with ≤ k samples (a k-th neighbour other than itself needs k + 1 samples).
 */
export async function precisionRecall(
  real: Float32Array,
  nReal: number,
  fake: Float32Array,
  nFake: number,
  dim: number,
  opts: PrecisionRecallOptions = {},
): Promise<PrecisionRecallResult> {
  const k = opts.k ?? 3;
  if (real.length !== nReal * dim)
    throw new RangeError(`precisionRecall: ${real.length} real values do not fill ${nReal}×${dim}`);
  if (fake.length !== nFake * dim)
    throw new RangeError(`precisionRecall: ${fake.length} generated values do not fill ${nFake}×${dim}`);
  if (!Number.isInteger(k) || k < 1) throw new UsageError(`precision/recall: k must be a positive integer, got ${k}`);
  const cap = opts.maxSamples ?? Infinity;
  const nr = Math.min(nReal, cap);
  const nf = Math.min(nFake, cap);
  for (const [what, n] of [
    ['real', nr],
    ['generated', nf],
  ] as const) {
    if (n <= k)
      throw new UsageError(
        `precision/recall: k = ${k} needs at least ${k + 1} ${what} samples, got ${n}; use more samples or a smaller k`,
      );
  }
  const r = makeSet(real.subarray(0, nr * dim), nr, dim, 'real features');
  const f = makeSet(fake.subarray(0, nf * dim), nf, dim, 'generated features');
  const blockElems = opts.blockElems ?? 1 << 24;
  const dist = await SquaredDistances.create(dim);
  try {
    const rReal = await radii(dist, r, k, blockElems);
    const rFake = await radii(dist, f, k, blockElems);
    const realCovered = new Uint8Array(nr);
    let fakeInside = 0;
    await dist.forEachBlock(f, r, blockElems, (d2, r0, rows) => {
      for (let j = 0; j < rows; j++) {
        const rf = rFake[r0 + j];
        const row = j * nr;
        let inside = false;
        for (let i = 0; i < nr; i++) {
          const v = d2[row + i];
          if (v <= rReal[i]) inside = true;
          if (v <= rf) realCovered[i] = 1;
        }
        if (inside) fakeInside++;
      }
    });
    let realInside = 0;
    for (const c of realCovered) realInside += c;
    return { precision: fakeInside / nf, recall: realInside / nr, k, nReal: nr, nFake: nf };
  } finally {
    await dist.release();
  }
}
