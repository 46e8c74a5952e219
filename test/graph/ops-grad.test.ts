/**
 * Per-op gradient checks: loss = Σ op(x)·r with a fixed random r; onnxruntime's forward + generated
 * backward (float32) against the float64 reference interpreter (forward: 1e-5, gradients vs central
 * finite differences: 1e-3). Shapes named in each case: B batch, N tokens, D width, h heads.
 */
import { test } from 'node:test';
import { Graph, type Value } from '../../src/graph/ir.js';
import * as op from '../../src/graph/ops.js';
import type { HostTensor } from '../../src/graph/session.js';
import { checkGradients, mulberry32, probeLoss, randn, randomParams } from './helpers.js';

interface Case {
  /** Builds y from fresh params/inputs; returns y and the values to differentiate. */
  build(g: Graph): { y: Value; wrt: Value[]; feeds?: Record<string, HostTensor> };
  /** Custom initial values by param name. */
  init?: Record<string, (n: number) => Float32Array>;
}

const positive = (rng: () => number) => (n: number) => randn(rng, n).map((v) => Math.abs(v) + 0.5);

async function runCase(name: string, c: Case, seed: number): Promise<void> {
  const rng = mulberry32(seed);
  const g = new Graph(name);
  const { y, wrt, feeds } = c.build(g);
  const init: Record<string, (n: number) => Float32Array> = {};
  for (const [k, f] of Object.entries(c.init ?? {})) init[k] = f;
  const params = randomParams(g, rng, init);
  await checkGradients({ graph: g, loss: probeLoss(y, rng), wrt, params, feeds, forward: { y } });
}

const rngFor = (seed: number) => mulberry32(seed);
const posInit = positive(rngFor(99));

const cases: Record<string, Case> = {
  'Add bias [D] + [B,N,D]': {
    build: (g) => {
      const x = g.param('x', [2, 3, 4]);
      const b = g.param('b', [4]);
      return { y: op.add(x, b), wrt: [x, b] };
    },
  },
  'Add [B,1,D] + [N,1] (both sides broadcast)': {
    build: (g) => {
      const a = g.param('a', [2, 1, 4]);
      const b = g.param('b', [3, 1]);
      return { y: op.add(a, b), wrt: [a, b] };
    },
  },
  'Sub [B,N,D] − [N,1]': {
    build: (g) => {
      const a = g.param('a', [2, 3, 4]);
      const b = g.param('b', [3, 1]);
      return { y: op.sub(a, b), wrt: [a, b] };
    },
  },
  'Mul [B,N,D] · [D] and x·x': {
    build: (g) => {
      const x = g.param('x', [2, 3, 4]);
      const s = g.param('s', [4]);
      return { y: op.add(op.mul(x, s), op.mul(x, x)), wrt: [x, s] };
    },
  },
  'Div [B,N,D] / [B,N,1]': {
    build: (g) => {
      const a = g.param('a', [2, 3, 4]);
      const d = g.param('d', [2, 3, 1]);
      return { y: op.div(a, d), wrt: [a, d] };
    },
    init: { d: posInit },
  },
  'MatMul [B,N,k] × weight [k,n]': {
    build: (g) => {
      const x = g.param('x', [2, 3, 5]);
      const w = g.param('w', [5, 4]);
      return { y: op.matmul(x, w), wrt: [x, w] };
    },
  },
  'MatMul [m,k] × [k,n]': {
    build: (g) => {
      const a = g.param('a', [3, 5]);
      const b = g.param('b', [5, 2]);
      return { y: op.matmul(a, b), wrt: [a, b] };
    },
  },
  'MatMul batched [B,h,N,d] × [B,h,d,N]': {
    build: (g) => {
      const q = g.param('q', [2, 2, 3, 4]);
      const k = g.param('k', [2, 2, 4, 3]);
      return { y: op.matmul(q, k), wrt: [q, k] };
    },
  },
  'MatMul broadcast batch [B,h,N,d] × [1,h,d,N]': {
    build: (g) => {
      const q = g.param('q', [2, 2, 3, 4]);
      const k = g.param('k', [1, 2, 4, 3]);
      return { y: op.matmul(q, k), wrt: [q, k] };
    },
  },
  'MatMul weight on the left [m,k] × [B,k,n]': {
    build: (g) => {
      const w = g.param('w', [3, 4]);
      const x = g.param('x', [2, 4, 5]);
      return { y: op.matmul(w, x), wrt: [w, x] };
    },
  },
  'MatMul of transposed views qᵀ-style [B,N,h,d] → [B,h,N,d] × [B,h,d,N]': {
    build: (g) => {
      const q = g.param('q', [2, 3, 2, 4]);
      const k = g.param('k', [2, 3, 2, 4]);
      return { y: op.matmul(op.transpose(q, [0, 2, 1, 3]), op.transpose(k, [0, 2, 3, 1])), wrt: [q, k] };
    },
  },
  'Gemm (all transA/transB combinations, C [n])': {
    build: (g) => {
      const a = g.param('a', [3, 4]);
      const at = g.param('at', [4, 3]);
      const b = g.param('b', [4, 2]);
      const bt = g.param('bt', [2, 4]);
      const c = g.param('c', [2]);
      const y = op.sum([
        op.gemm(a, b, { alpha: 0.5, beta: 2 }, c),
        op.gemm(at, b, { transA: true }),
        op.gemm(a, bt, { transB: true }),
        op.gemm(at, bt, { transA: true, transB: true, alpha: -1.5 }),
      ]);
      return { y, wrt: [a, at, b, bt, c] };
    },
  },
  'Sum of [B,N,D], [D], [N,1]': {
    build: (g) => {
      const a = g.param('a', [2, 3, 4]);
      const b = g.param('b', [4]);
      const c = g.param('c', [3, 1]);
      return { y: op.sum([a, b, c]), wrt: [a, b, c] };
    },
  },
  'Reshape + Transpose to heads [B,N,D] → [B,h,N,d]': {
    build: (g) => {
      const x = g.param('x', [2, 3, 8]);
      return { y: op.transpose(op.reshape(x, [2, 3, 2, 4]), [0, 2, 1, 3]), wrt: [x] };
    },
  },
  'Unsqueeze [B,D] → [B,1,D]': {
    build: (g) => {
      const x = g.param('x', [2, 4]);
      return { y: op.mul(op.unsqueeze(x, [1]), x), wrt: [x] };
    },
  },
  'Softmax [B,h,N,N]': {
    build: (g) => {
      const x = g.param('x', [2, 2, 3, 3]);
      return { y: op.softmax(x), wrt: [x] };
    },
  },
  'LayerNormalization [B,N,D], scale/bias [D]': {
    build: (g) => {
      const x = g.param('x', [2, 3, 6]);
      const s = g.param('s', [6]);
      const b = g.param('b', [6]);
      return { y: op.layerNorm(x, s, b, 1e-6), wrt: [x, s, b] };
    },
  },
  'Erf, Exp, Abs, Neg [B,D]': {
    build: (g) => {
      const x = g.param('x', [3, 5]);
      return { y: op.concat([op.erf(x), op.exp(x), op.abs(x), op.neg(x)], 1), wrt: [x] };
    },
  },
  'Sqrt [B,D] (x > 0)': {
    build: (g) => {
      const x = g.param('x', [3, 5]);
      return { y: op.sqrt(x), wrt: [x] };
    },
    init: { x: posInit },
  },
  'GELU (exact erf) [B,N,D]': {
    build: (g) => {
      const x = g.param('x', [2, 3, 4]);
      return { y: op.gelu(x), wrt: [x] };
    },
  },
  'GELU pattern whose erf(x·√½) + 1 is also used elsewhere': {
    build: (g) => {
      const x = g.param('x', [2, 3, 4]);
      const a = op.add(op.erf(op.mul(x, op.scalar(x, Math.SQRT1_2))), op.scalar(x, 1));
      const y = op.mul(op.mul(x, op.scalar(x, 0.5)), a); // the nodes ops.gelu builds
      return { y: op.concat([y, op.mul(a, a)], 2), wrt: [x] };
    },
  },
  'ReduceSum axis 1, ReduceMean axes [0,2] keepdims, ReduceSumSquare [1,2]': {
    build: (g) => {
      const x = g.param('x', [2, 3, 4]);
      const s = op.reduceSum(x, [1]); // [2,4]
      const m = op.reshape(op.reduceMean(x, [0, 2], true), [3]); // [1,3,1] → [3]
      const q = op.reduceSumSquare(x, [1, 2]); // [2]
      return { y: op.concat([op.reshape(s, [8]), m, q], 0), wrt: [x] };
    },
  },
  'Split [B,N,3D] → q, k (unused), v': {
    build: (g) => {
      const x = g.param('x', [2, 3, 6]);
      const [q, , v] = op.split(x, -1, [2, 2, 2]);
      return { y: op.add(q, op.mul(v, v)), wrt: [x] };
    },
  },
  'Concat [B,2,D] ‖ [B,3,D] on axis 1': {
    build: (g) => {
      const a = g.param('a', [2, 2, 4]);
      const b = g.param('b', [2, 3, 4]);
      return { y: op.concat([a, b], 1), wrt: [a, b] };
    },
  },
  'Where (bool input cond [B,N,1], a [B,N,D], b [D])': {
    build: (g) => {
      const cond = g.input('cond', 'bool', [2, 3, 1]);
      const a = g.param('a', [2, 3, 4]);
      const b = g.param('b', [4]);
      const feeds = { cond: { dtype: 'bool' as const, dims: [2, 3, 1], data: Uint8Array.of(1, 0, 0, 1, 1, 0) } };
      return { y: op.where(cond, a, b), wrt: [a, b], feeds };
    },
  },
  'Where(Less(r1, r2)) and Min (the inference selection path)': {
    build: (g) => {
      const r1 = g.param('r1', [3]);
      const r2 = g.param('r2', [3]);
      const a = g.param('a', [3, 4]);
      const b = g.param('b', [3, 4]);
      const better = op.reshape(op.less(r1, r2), [3, 1]);
      return { y: op.concat([op.where(better, a, b), op.reshape(op.min(r1, r2), [3, 1])], 1), wrt: [r1, r2, a, b] };
    },
  },
  'Min [B,N] with [N]': {
    build: (g) => {
      const a = g.param('a', [2, 5]);
      const b = g.param('b', [5]);
      return { y: op.min(a, b), wrt: [a, b] };
    },
  },
  'Cast float32 → float64 → float32': {
    build: (g) => {
      const x = g.param('x', [2, 3]);
      const w = g.param('w', [3]);
      const y64 = op.mul(op.cast(x, 'float64'), op.cast(w, 'float64'));
      return { y: op.cast(y64, 'float32'), wrt: [x, w] };
    },
  },
  'OneHot(labels) × table [C,3D] (labels incl. −1 and out of range)': {
    build: (g) => {
      const labels = g.input('labels', 'int64', [4]);
      const table = g.param('table', [3, 6]);
      const feeds = { labels: { dtype: 'int64' as const, dims: [4], data: BigInt64Array.of(2n, 0n, -1n, 3n) } };
      return { y: op.matmul(op.oneHot(labels, 3), table), wrt: [table], feeds };
    },
  },
  'Expand [1,D] to [B,N,D] (expandAs)': {
    build: (g) => {
      const b = g.param('b', [1, 4]);
      const x = g.input('x', 'float32', [2, 3, 4]);
      const feeds = { x: { dtype: 'float32' as const, dims: [2, 3, 4], data: randn(mulberry32(5), 24) } };
      return { y: op.mul(op.expandAs(b, x), x), wrt: [b, x], feeds };
    },
  },
  'Log, Reciprocal [B,D] (x > 0)': {
    build: (g) => {
      const x = g.param('x', [3, 5]);
      return { y: op.concat([op.log(x), op.reciprocal(x)], 1), wrt: [x] };
    },
    init: { x: positive(rngFor(98)) },
  },
};

let seed = 1;
for (const [name, c] of Object.entries(cases)) {
  const s = seed++;
  test(name, () => runCase(name, c, s));
}
