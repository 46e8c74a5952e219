/**
 * Op constructors with shape inference. Each returns the output value(s) and throws, naming the op and
 * the argument, when shapes or dtypes do not fit. Semantics are ONNX opset 17 (numpy broadcasting).
 * Shapes in docstrings: `[..., m, k]` means any leading dims.
 */
import { type Dim, type DType, type TensorData, type Value, fail, numel, shapeStr } from './ir.js';

const isFloat = (t: DType) => t === 'float32' || t === 'float64';

function sameGraph(op: string, ...xs: Value[]): void {
  for (const x of xs) if (x.graph !== xs[0].graph) fail(op, 'inputs belong to different graphs');
}

/** Numpy broadcast of two shapes; symbolic dims match only themselves (or 1). */
export function broadcastShapes(op: string, a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else fail(op, `cannot broadcast ${shapeStr(a)} with ${shapeStr(b)}`);
  }
  return out;
}

function binary(op: string, a: Value, b: Value): Value {
  sameGraph(op, a, b);
  if (a.dtype !== b.dtype) fail(op, `dtype mismatch ${a.dtype} vs ${b.dtype}`);
  return a.graph.node(op, [a, b], [{ dtype: a.dtype, shape: broadcastShapes(op, a.shape, b.shape) }])[0];
}

/** Elementwise a + b with broadcasting. */
export const add = (a: Value, b: Value) => binary('Add', a, b);
/** Elementwise a − b with broadcasting. */
export const sub = (a: Value, b: Value) => binary('Sub', a, b);
/** Elementwise a · b with broadcasting. */
export const mul = (a: Value, b: Value) => binary('Mul', a, b);
/** Elementwise a / b with broadcasting. */
export const div = (a: Value, b: Value) => binary('Div', a, b);
/** Elementwise min(a, b) with broadcasting. */
export const min = (a: Value, b: Value) => binary('Min', a, b);

/** a < b elementwise → bool. */
export function less(a: Value, b: Value): Value {
  sameGraph('Less', a, b);
  return a.graph.node('Less', [a, b], [{ dtype: 'bool', shape: broadcastShapes('Less', a.shape, b.shape) }])[0];
}

/** where(cond, a, b): a where cond is true, else b (broadcasting over all three). */
export function where(cond: Value, a: Value, b: Value): Value {
  sameGraph('Where', cond, a, b);
  if (cond.dtype !== 'bool') fail('Where', `condition must be bool, got ${cond.dtype}`);
  if (a.dtype !== b.dtype) fail('Where', `dtype mismatch ${a.dtype} vs ${b.dtype}`);
  const shape = broadcastShapes('Where', broadcastShapes('Where', cond.shape, a.shape), b.shape);
  return a.graph.node('Where', [cond, a, b], [{ dtype: a.dtype, shape }])[0];
}

function unary(op: string, x: Value): Value {
  if (!isFloat(x.dtype)) fail(op, `expects a float input, got ${x.dtype}`);
  return x.graph.node(op, [x], [{ dtype: x.dtype, shape: x.shape }])[0];
}
export const erf = (x: Value) => unary('Erf', x);
export const exp = (x: Value) => unary('Exp', x);
export const abs = (x: Value) => unary('Abs', x);
export const neg = (x: Value) => unary('Neg', x);
export const sign = (x: Value) => unary('Sign', x);
export const sqrt = (x: Value) => unary('Sqrt', x);

/** A scalar constant of x's dtype (float). */
export function scalar(like: Value, v: number): Value {
  const data = like.dtype === 'float64' ? Float64Array.of(v) : Float32Array.of(v);
  return like.graph.constant({ dtype: like.dtype === 'float64' ? 'float64' : 'float32', dims: [], data }, 'scalar');
}

/**
 * Numpy matmul: a [..., m, k] × b [..., k, n] → [..., m, n], batch dims broadcast. 1-D operands are
 * not supported (reshape first).
 */
export function matmul(a: Value, b: Value): Value {
  sameGraph('MatMul', a, b);
  if (a.shape.length < 2 || b.shape.length < 2)
    fail('MatMul', `operands need rank ≥ 2, got ${shapeStr(a.shape)} x ${shapeStr(b.shape)}`);
  if (a.dtype !== b.dtype) fail('MatMul', `dtype mismatch ${a.dtype} vs ${b.dtype}`);
  const [m, k] = a.shape.slice(-2);
  const [k2, n] = b.shape.slice(-2);
  if (k !== k2) fail('MatMul', `inner dims differ (${shapeStr(a.shape)} x ${shapeStr(b.shape)})`);
  const batch = broadcastShapes('MatMul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  return a.graph.node('MatMul', [a, b], [{ dtype: a.dtype, shape: [...batch, m, n] }])[0];
}

/**
 * Reshape to `shape`. At most one dim may be symbolic or -1; it is inferred at run time (emitted as
 * −1). Static element counts must agree.
 */
export function reshape(x: Value, shape: readonly Dim[]): Value {
  const unknown = shape.filter((d) => typeof d === 'string' || d === -1).length;
  if (unknown > 1) fail('Reshape', `at most one symbolic or -1 dim allowed in ${shapeStr(shape)}`);
  const staticIn = x.shape.every((d) => typeof d === 'number');
  let out = [...shape];
  if (unknown === 0 && staticIn && numel(x.shape) !== numel(shape)) {
    fail('Reshape', `cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  }
  const known = shape.filter((d) => typeof d === 'number' && d !== -1).reduce<number>((p, d) => p * (d as number), 1);
  if (unknown === 1 && staticIn) {
    const total = numel(x.shape);
    if (total % known !== 0) fail('Reshape', `cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    out = shape.map((d) => (d === -1 || typeof d === 'string' ? total / known : d));
  } else if (shape.includes(-1)) {
    // Symbolic input and a -1 target: name the inferred dim (e.g. 'batch*4') rather than declare -1.
    out = shape.map((d) => (d === -1 ? inferredDimName(x.shape, known) : d));
  }
  const target: TensorData = {
    dtype: 'int64',
    dims: [shape.length],
    data: BigInt64Array.from(shape.map((d) => BigInt(typeof d === 'string' ? -1 : d))),
  };
  const s = x.graph.constant(target, 'shape');
  return x.graph.node('Reshape', [x, s], [{ dtype: x.dtype, shape: out }])[0];
}

/** Symbolic name of numel(shape)/known, e.g. ['batch', 4, 8] with known 8 → 'batch*4'. */
function inferredDimName(shape: readonly Dim[], known: number): string {
  const syms = shape.filter((d): d is string => typeof d === 'string');
  const stat = shape.filter((d): d is number => typeof d === 'number').reduce((p, d) => p * d, 1);
  const factor = stat % known === 0 ? stat / known : 0;
  if (factor === 0) return `(${syms.join('*')}*${stat}/${known})`;
  return factor === 1 ? syms.join('*') : `${syms.join('*')}*${factor}`;
}

/** Permute dims: out.shape[i] = x.shape[perm[i]]. */
export function transpose(x: Value, perm: readonly number[]): Value {
  if (perm.length !== x.shape.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    fail('Transpose', `perm ${shapeStr(perm)} is not a permutation of rank ${x.shape.length}`);
  }
  return x.graph.node('Transpose', [x], [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }], { perm })[0];
}

/** Swap the last two dims. */
export function transposeLast2(x: Value): Value {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return transpose(x, perm);
}

const normAxis = (op: string, axis: number, rank: number) => {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(op, `axis ${axis} out of range for rank ${rank}`);
  return a;
};

/** Softmax over the last axis (the only axis used here). */
export function softmax(x: Value): Value {
  if (!isFloat(x.dtype)) fail('Softmax', `expects float, got ${x.dtype}`);
  return x.graph.node('Softmax', [x], [{ dtype: x.dtype, shape: x.shape }], { axis: -1 })[0];
}

/**
 * LayerNormalization over the last axis: (x − mean)/sqrt(var + eps)·scale + bias, with scale and bias
 * of shape [D]. The node also outputs Mean and InvStdDev ([..., 1]) for the backward pass.
 */
export function layerNorm(x: Value, scale: Value, bias: Value, epsilon: number): Value {
  const d = x.shape[x.shape.length - 1];
  if (scale.shape.length !== 1 || scale.shape[0] !== d || bias.shape.length !== 1 || bias.shape[0] !== d) {
    fail('LayerNormalization', `scale/bias must be [${d}], got ${shapeStr(scale.shape)} / ${shapeStr(bias.shape)}`);
  }
  const stat = [...x.shape.slice(0, -1), 1];
  return x.graph.node(
    'LayerNormalization',
    [x, scale, bias],
    [
      { dtype: x.dtype, shape: x.shape },
      { dtype: x.dtype, shape: stat },
      { dtype: x.dtype, shape: stat },
    ],
    { axis: -1, epsilon },
  )[0];
}

function reduce(op: string, x: Value, axes: readonly number[], keepdims: boolean): Value {
  const r = x.shape.length;
  // ONNX reduces over *all* axes when `axes` is empty; refuse rather than declare the wrong shape.
  if (axes.length === 0)
    fail(op, `empty axes (ONNX would reduce all axes of ${shapeStr(x.shape)}); pass the axes explicitly`);
  const ax = axes.map((a) => normAxis(op, a, r));
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!ax.includes(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  return x.graph.node(op, [x], [{ dtype: x.dtype, shape }], { axes: ax, keepdims: keepdims ? 1 : 0 })[0];
}
/** Sum over `axes`. */
export const reduceSum = (x: Value, axes: readonly number[], keepdims = false) =>
  reduce('ReduceSum', x, axes, keepdims);
/** Mean over `axes`. */
export const reduceMean = (x: Value, axes: readonly number[], keepdims = false) =>
  reduce('ReduceMean', x, axes, keepdims);
/** Sum of squares over `axes` (no gradient; used for fixed-point residuals). */
export const reduceSumSquare = (x: Value, axes: readonly number[], keepdims = false) =>
  reduce('ReduceSumSquare', x, axes, keepdims);

/** Split along `axis` into pieces of the given sizes. */
export function split(x: Value, axis: number, sizes: readonly number[]): Value[] {
  const a = normAxis('Split', axis, x.shape.length);
  const total = sizes.reduce((p, s) => p + s, 0);
  if (x.shape[a] !== total)
    fail('Split', `sizes ${shapeStr(sizes)} do not sum to dim ${String(x.shape[a])} of ${shapeStr(x.shape)}`);
  const s = x.graph.constant(
    { dtype: 'int64', dims: [sizes.length], data: BigInt64Array.from(sizes.map(BigInt)) },
    'split',
  );
  return x.graph.node(
    'Split',
    [x, s],
    sizes.map((n) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === a ? n : d)) })),
    { axis: a },
  );
}

/** Concatenate along `axis`. */
export function concat(xs: readonly Value[], axis: number): Value {
  if (xs.length === 0) fail('Concat', 'no inputs');
  const a = normAxis('Concat', axis, xs[0].shape.length);
  let total = 0;
  for (const x of xs) {
    if (x.shape.length !== xs[0].shape.length || x.shape.some((d, i) => i !== a && d !== xs[0].shape[i])) {
      fail('Concat', `shapes ${xs.map((v) => shapeStr(v.shape)).join(' ')} differ off axis ${a}`);
    }
    const d = x.shape[a];
    if (typeof d !== 'number') fail('Concat', 'symbolic concat axis');
    total += d;
  }
  return xs[0].graph.node(
    'Concat',
    xs,
    [{ dtype: xs[0].dtype, shape: xs[0].shape.map((d, i) => (i === a ? total : d)) }],
    { axis: a },
  )[0];
}

/**
 * One-hot of int64 indices [...] → float32 [..., depth]. As in ONNX, an index i in [−depth, 0) counts
 * from the back (i + depth); indices outside [−depth, depth) give all-zero rows.
 */
export function oneHot(indices: Value, depth: number): Value {
  if (indices.dtype !== 'int64') fail('OneHot', `indices must be int64, got ${indices.dtype}`);
  const g = indices.graph;
  const d = g.constant({ dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(depth)) }, 'depth');
  const values = g.constant({ dtype: 'float32', dims: [2], data: Float32Array.of(0, 1) }, 'onehot_values');
  return g.node('OneHot', [indices, d, values], [{ dtype: 'float32', shape: [...indices.shape, depth] }], {
    axis: -1,
  })[0];
}

/** Shape of x as an int64 [rank] tensor (for ops whose output shape is only known at run time). */
export function shapeOf(x: Value): Value {
  return x.graph.node('Shape', [x], [{ dtype: 'int64', shape: [x.shape.length] }])[0];
}

/** Broadcast x to the shape of `like` (Expand). */
export function expandAs(x: Value, like: Value): Value {
  return x.graph.node('Expand', [x, shapeOf(like)], [{ dtype: x.dtype, shape: like.shape }])[0];
}

/** Zeros with the shape and dtype of `like`. */
export function zerosLike(like: Value): Value {
  const value: TensorData =
    like.dtype === 'float64'
      ? { dtype: 'float64', dims: [1], data: Float64Array.of(0) }
      : { dtype: 'float32', dims: [1], data: Float32Array.of(0) };
  return like.graph.node('ConstantOfShape', [shapeOf(like)], [{ dtype: like.dtype, shape: like.shape }], { value })[0];
}

/** Cast to another dtype. */
export function cast(x: Value, to: DType): Value {
  return x.graph.node('Cast', [x], [{ dtype: to, shape: x.shape }], { to })[0];
}

/** Exact GELU, x·Φ(x) = 0.5·x·(1 + erf(x/√2)), built from Erf (opset 17 has no Gelu). */
export function gelu(x: Value): Value {
  const inner = erf(mul(x, scalar(x, Math.SQRT1_2)));
  return mul(mul(x, scalar(x, 0.5)), add(inner, scalar(x, 1)));
}

/** Sum of any number of values with broadcasting (ONNX Sum: one node for a fan-in of gradients). */
export function sum(xs: readonly Value[]): Value {
  if (xs.length === 0) fail('Sum', 'no inputs');
  if (xs.length === 1) return xs[0];
  sameGraph('Sum', ...xs);
  for (const x of xs) if (x.dtype !== xs[0].dtype) fail('Sum', `dtype mismatch ${xs[0].dtype} vs ${x.dtype}`);
  const shape = xs.slice(1).reduce<Dim[]>((s, x) => broadcastShapes('Sum', s, x.shape), [...xs[0].shape]);
  return xs[0].graph.node('Sum', xs, [{ dtype: xs[0].dtype, shape }])[0];
}

/** Options of `gemm`: ONNX Gemm attributes (defaults 0, 0, 1, 1). */
export interface GemmOptions {
  readonly transA?: boolean;
  readonly transB?: boolean;
  readonly alpha?: number;
  readonly beta?: number;
}

/**
 * ONNX Gemm: alpha·op(a)·op(b) + beta·c, with op(t) = tᵀ when trans is set. a, b are 2-D
 * (op(a) [M, K], op(b) [K, N]); c (optional) broadcasts to [M, N]. Used by the backward pass to form
 * a weight gradient as one 2-D product (xᵀ·g with transA) without materialising a transpose.
 */
export function gemm(a: Value, b: Value, opts: GemmOptions = {}, c?: Value): Value {
  const ins = c ? [a, b, c] : [a, b];
  sameGraph('Gemm', ...ins);
  if (a.shape.length !== 2 || b.shape.length !== 2)
    fail('Gemm', `operands must be 2-D, got ${shapeStr(a.shape)} x ${shapeStr(b.shape)}`);
  if (a.dtype !== b.dtype || (c && c.dtype !== a.dtype)) fail('Gemm', 'operand dtypes differ');
  const [m, k] = opts.transA ? [a.shape[1], a.shape[0]] : a.shape;
  const [k2, n] = opts.transB ? [b.shape[1], b.shape[0]] : b.shape;
  if (k !== k2)
    fail(
      'Gemm',
      `inner dims differ (${shapeStr(a.shape)}${opts.transA ? 'ᵀ' : ''} x ${shapeStr(b.shape)}${opts.transB ? 'ᵀ' : ''})`,
    );
  if (c) broadcastShapes('Gemm', [m, n], c.shape);
  const attrs = {
    transA: opts.transA ? 1 : 0,
    transB: opts.transB ? 1 : 0,
    alpha: opts.alpha ?? 1,
    beta: opts.beta ?? 1,
  };
  return a.graph.node('Gemm', ins, [{ dtype: a.dtype, shape: [m, n] }], attrs)[0];
}

/** Insert size-1 dims at `axes` (positions in the output, ONNX Unsqueeze-13). */
export function unsqueeze(x: Value, axes: readonly number[]): Value {
  const r = x.shape.length + axes.length;
  const ax = axes.map((a) => normAxis('Unsqueeze', a, r));
  if (new Set(ax).size !== ax.length) fail('Unsqueeze', `repeated axes ${shapeStr(axes)}`);
  const shape: Dim[] = [];
  let j = 0;
  for (let i = 0; i < r; i++) shape.push(ax.includes(i) ? 1 : x.shape[j++]);
  const a = x.graph.constant({ dtype: 'int64', dims: [ax.length], data: BigInt64Array.from(ax.map(BigInt)) }, 'axes');
  return x.graph.node('Unsqueeze', [x, a], [{ dtype: x.dtype, shape }])[0];
}

/** Rectified linear unit max(x, 0) elementwise (ONNX Relu). */
export const relu = (x: Value) => unary('Relu', x);

/**
 * log(softmax(x)) over the last axis (ONNX LogSoftmax-13): x − max − log Σ exp(x − max), stable for
 * large logits. Used for softmax cross-entropy.
 */
export function logSoftmax(x: Value): Value {
  if (!isFloat(x.dtype)) fail('LogSoftmax', `expects float, got ${x.dtype}`);
  return x.graph.node('LogSoftmax', [x], [{ dtype: x.dtype, shape: x.shape }], { axis: -1 })[0];
}

/** Options of `conv2d` / `convTranspose2d`: zero padding added on every side (ONNX pads [p, p, p, p]). */
export interface Conv2dOptions {
  readonly pads?: number;
}

/** Spatial output size of a stride-1 conv (in + 2p − k + 1) or transposed conv (in − 1 + k − 2p). */
function convDims(op: string, x: Value, w: Value, p: number, transposed: boolean): number[] {
  if (x.shape.length !== 4 || w.shape.length !== 4)
    fail(op, `x and w must be 4-D (NCHW), got ${shapeStr(x.shape)} and ${shapeStr(w.shape)}`);
  if (!Number.isInteger(p) || p < 0) fail(op, `pads must be a non-negative integer, got ${p}`);
  const sp = [x.shape[2], x.shape[3], w.shape[2], w.shape[3]];
  if (!sp.every((d): d is number => typeof d === 'number'))
    fail(op, `spatial dims must be static, got ${shapeStr(x.shape)} and kernel ${shapeStr(w.shape)}`);
  const [h, wd, kh, kw] = sp as number[];
  const out = transposed ? [h - 1 + kh - 2 * p, wd - 1 + kw - 2 * p] : [h + 2 * p - kh + 1, wd + 2 * p - kw + 1];
  if (out[0] < 1 || out[1] < 1) fail(op, `kernel ${kh}×${kw} with pads ${p} does not fit input ${h}×${wd}`);
  return out;
}

/**
 * 2-D convolution (ONNX Conv; cross-correlation as in PyTorch): x [N, C, H, W] ⊛ w [O, C, kH, kW]
 * (+ b [O]) → [N, O, H + 2p − kH + 1, W + 2p − kW + 1]. Stride 1, dilation 1, group 1, `pads` zeros on
 * every side. N and C may be symbolic (C must then be the same name in x and w); H, W, kH, kW static.
 * @throws when ranks, channels, dtypes or the bias shape do not fit, or the kernel exceeds the padded input.
 */
export function conv2d(x: Value, w: Value, b?: Value, opts: Conv2dOptions = {}): Value {
  const ins = b ? [x, w, b] : [x, w];
  sameGraph('Conv', ...ins);
  if (!isFloat(x.dtype) || ins.some((v) => v.dtype !== x.dtype))
    fail('Conv', `operands must share one float dtype, got ${ins.map((v) => v.dtype).join(', ')}`);
  const p = opts.pads ?? 0;
  const [ho, wo] = convDims('Conv', x, w, p, false);
  if (x.shape[1] !== w.shape[1])
    fail('Conv', `input channels differ: x ${shapeStr(x.shape)} vs w ${shapeStr(w.shape)}`);
  if (b && (b.shape.length !== 1 || b.shape[0] !== w.shape[0]))
    fail('Conv', `bias must be [${String(w.shape[0])}], got ${shapeStr(b.shape)}`);
  const attrs = { kernel_shape: [w.shape[2] as number, w.shape[3] as number], pads: [p, p, p, p] };
  return x.graph.node('Conv', ins, [{ dtype: x.dtype, shape: [x.shape[0], w.shape[0], ho, wo] }], attrs)[0];
}

/**
 * 2-D transposed convolution (ONNX ConvTranspose), the adjoint of `conv2d` with the same weight:
 * x [N, O, H, W], w [O, C, kH, kW] → [N, C, H − 1 + kH − 2p, W − 1 + kW − 2p]. Stride 1, no output
 * padding, group 1. It is the input gradient of Conv in autodiff.ts.
 * @throws as `conv2d`.
 */
export function convTranspose2d(x: Value, w: Value, opts: Conv2dOptions = {}): Value {
  sameGraph('ConvTranspose', x, w);
  if (!isFloat(x.dtype) || w.dtype !== x.dtype)
    fail('ConvTranspose', `operands must share one float dtype, got ${x.dtype}, ${w.dtype}`);
  const p = opts.pads ?? 0;
  const [ho, wo] = convDims('ConvTranspose', x, w, p, true);
  if (x.shape[1] !== w.shape[0])
    fail('ConvTranspose', `channels differ: x ${shapeStr(x.shape)} vs w ${shapeStr(w.shape)} (w is [in, out, kH, kW])`);
  const attrs = { kernel_shape: [w.shape[2] as number, w.shape[3] as number], pads: [p, p, p, p] };
  return x.graph.node('ConvTranspose', [x, w], [{ dtype: x.dtype, shape: [x.shape[0], w.shape[1], ho, wo] }], attrs)[0];
}

/** Checks a 4-D NCHW value with static H, W divisible by `k`; returns [N, C, H, W]. */
function poolDims(op: string, x: Value, k: number): [Dim, Dim, number, number] {
  if (!Number.isInteger(k) || k < 1) fail(op, `factor must be a positive integer, got ${k}`);
  if (x.shape.length !== 4) fail(op, `x must be 4-D (NCHW), got ${shapeStr(x.shape)}`);
  const [n, c, h, w] = x.shape;
  if (typeof h !== 'number' || typeof w !== 'number' || h % k !== 0 || w % k !== 0)
    fail(op, `spatial dims ${shapeStr(x.shape)} must be static and divisible by ${k}`);
  return [n, c, h, w];
}

/**
 * k×k average pooling with stride k, no padding (ONNX AveragePool): x [N, C, H, W] → [N, C, H/k, W/k].
 * Its gradient (autodiff.ts) is `upsampleNearest(g, k) / k²`.
 * @throws when x is not 4-D or H, W are symbolic or not divisible by k.
 */
export function avgPool2d(x: Value, k: number): Value {
  if (!isFloat(x.dtype)) fail('AveragePool', `expects float, got ${x.dtype}`);
  const [n, c, h, w] = poolDims('AveragePool', x, k);
  return x.graph.node('AveragePool', [x], [{ dtype: x.dtype, shape: [n, c, h / k, w / k] }], {
    kernel_shape: [k, k],
    strides: [k, k],
  })[0];
}

/**
 * Nearest-neighbour upsampling by an integer factor k (ONNX Resize, mode nearest, asymmetric
 * coordinates, floor): x [N, C, H, W] → y [N, C, kH, kW] with y[n,c,i,j] = x[n,c,⌊i/k⌋,⌊j/k⌋].
 * @throws when x is not a 4-D float value with static H, W.
 */
export function upsampleNearest(x: Value, k: number): Value {
  if (!isFloat(x.dtype)) fail('Resize', `expects float, got ${x.dtype}`);
  const [n, c, h, w] = poolDims('Resize', x, 1);
  if (!Number.isInteger(k) || k < 1) fail('Resize', `factor must be a positive integer, got ${k}`);
  const g = x.graph;
  const roi = g.constant({ dtype: 'float32', dims: [0], data: new Float32Array(0) }, 'roi');
  const scales = g.constant({ dtype: 'float32', dims: [4], data: Float32Array.of(1, 1, k, k) }, 'scales');
  const attrs = { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' };
  return g.node('Resize', [x, roi, scales], [{ dtype: x.dtype, shape: [n, c, h * k, w * k] }], attrs)[0];
}
