/**
 * Shared helpers of the graph tests: a seeded PRNG, and a gradient check that runs forward + generated
 * backward in onnxruntime (float32) and compares every gradient with central finite differences of the
 * float64 reference interpreter.
 */
import assert from 'node:assert/strict';
import { gradients } from '../../src/graph/autodiff.js';
import { type Graph, type Value, numel } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import * as op from '../../src/graph/ops.js';
import { type RefFeed, evaluate } from '../../src/graph/reference.js';
import { type HostTensor, OrtSession } from '../../src/graph/session.js';

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n standard-normal float32 samples (Box–Muller) times `scale`. */
export function randn(rng: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  return out;
}

/** max |a − b| / max(max |b|, floor): the error measure of every comparison here. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let num = 0;
  let den = floor;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** A random fixed float32 constant of a static shape. */
export function randomConst(g: Graph, rng: () => number, shape: readonly number[]): Value {
  return g.constant({ dtype: 'float32', dims: shape, data: randn(rng, numel(shape)) }, 'r');
}

/** loss = Σ y·r for a fixed random r of y's (static) shape: the probe of one op's gradient. */
export function probeLoss(y: Value, rng: () => number): Value {
  const r = randomConst(y.graph, rng, y.shape as number[]);
  return op.reduceSum(op.mul(y, r), [...y.shape.keys()]);
}

export interface GradCheck {
  readonly graph: Graph;
  readonly loss: Value;
  /** Values to differentiate: parameters and/or float32 graph inputs. */
  readonly wrt: readonly Value[];
  /** float32 values of every parameter the loss uses. */
  readonly params: ReadonlyMap<Value, Float32Array>;
  /** Every graph input the loss uses, by name (as fed to onnxruntime). */
  readonly feeds?: Readonly<Record<string, HostTensor>>;
  /** Extra forward values compared with the reference (1e-5 relative). */
  readonly forward?: Readonly<Record<string, Value>>;
  /** Gradient tolerance (relErr), default 1e-3. */
  readonly tol?: number;
  /** Finite-difference step, default 1e-6. */
  readonly eps?: number;
}

/**
 * Runs loss + gradients in onnxruntime and asserts (1) the forward values equal the reference within
 * 1e-5 relative, (2) each gradient equals central finite differences of the float64 reference loss.
 * @returns the gradient errors by wrt name, and the onnxruntime gradients.
 */
export async function checkGradients(c: GradCheck): Promise<{ errors: Record<string, number>; grads: Float32Array[] }> {
  const { graph, loss, wrt, params } = c;
  const feeds = c.feeds ?? {};
  const grads = gradients(loss, wrt);
  const forward = { loss, ...(c.forward ?? {}) };
  const outputs: Record<string, Value> = {};
  for (const [k, v] of Object.entries(forward)) outputs[`fwd__${k}`] = v;
  grads.forEach((gv, i) => (outputs[`grad__${i}`] = gv));

  const session = await OrtSession.create(toOnnx(graph, { outputs }), { threads: 1 });
  const ortFeeds: Record<string, HostTensor> = { ...feeds };
  for (const [p, data] of params)
    if (session.inputNames.includes(p.name)) ortFeeds[p.name] = { dtype: 'float32', dims: p.shape as number[], data };
  const res = await session.run(ortFeeds);
  await session.release();

  // Reference state in float64: parameters and float inputs, perturbed in place by the FD loop.
  const p64 = new Map<Value, Float64Array>([...params].map(([p, d]) => [p, Float64Array.from(d)]));
  const f64: Record<string, RefFeed> = {};
  for (const [name, t] of Object.entries(feeds)) {
    f64[name] = { dims: t.dims, data: t.data instanceof Float32Array ? Float64Array.from(t.data) : t.data };
  }
  const paramOf = (p: Value) => p64.get(p) ?? assert.fail(`no value for parameter ${p.name}`);
  const fwdVals = Object.values(forward);
  const ref = evaluate(graph, f64, fwdVals, paramOf);
  Object.keys(forward).forEach((k, i) => {
    const got = res[`fwd__${k}`].data as Float32Array;
    const err = relErr(got, ref[i].data as Float64Array, 1e-3);
    assert.ok(err <= 1e-5, `forward ${k}: onnxruntime vs reference relative error ${err.toExponential(2)}`);
  });

  const eps = c.eps ?? 1e-6;
  const tol = c.tol ?? 1e-3;
  const lossAt = () => (evaluate(graph, f64, [loss], paramOf)[0].data as Float64Array)[0];
  const errors: Record<string, number> = {};
  const ortGrads: Float32Array[] = [];
  wrt.forEach((w, i) => {
    const got = res[`grad__${i}`];
    const dims = feeds[w.name]?.dims ?? w.shape;
    assert.deepEqual(got.dims, dims, `gradient of ${w.name} has dims [${got.dims}], expected [${dims}]`);
    const x =
      p64.get(w) ??
      (f64[w.name] as { data: Float64Array } | undefined)?.data ??
      assert.fail(`${w.name} is neither a parameter nor a fed input`);
    const fd = new Float64Array(x.length);
    for (let j = 0; j < x.length; j++) {
      const x0 = x[j];
      x[j] = x0 + eps;
      const up = lossAt();
      x[j] = x0 - eps;
      const down = lossAt();
      x[j] = x0;
      fd[j] = (up - down) / (2 * eps);
    }
    const err = relErr(got.data as Float32Array, fd);
    errors[w.name] = err;
    ortGrads.push(got.data as Float32Array);
    assert.ok(
      err <= tol,
      `gradient of ${w.name}: relative error ${err.toExponential(2)} vs finite differences (tol ${tol})`,
    );
  });
  return { errors, grads: ortGrads };
}

/** Random N(0, scale²) float32 values for every parameter of g (overrides by name). */
export function randomParams(
  g: Graph,
  rng: () => number,
  overrides: Readonly<Record<string, (n: number) => Float32Array>> = {},
): Map<Value, Float32Array> {
  return new Map(g.params.map((p) => [p, (overrides[p.name] ?? ((n: number) => randn(rng, n)))(numel(p.shape))]));
}
