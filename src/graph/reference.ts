/**
 * A float64 reference interpreter of the graph IR: plain TypeScript loops over row-major arrays, one
 * small function per op, following ONNX opset-17 semantics (onnx/docs/Operators.md). Every float value
 * (float32 or float64 in the graph) is computed in float64 without rounding, so this is the
 * exact-arithmetic oracle for onnxruntime's forward pass and for finite-difference gradient checks.
 * It also checks each node's result against the shape the IR declared (a check of ops.ts).
 * Slow by design; use it on small graphs only.
 */
import {
  type Dim,
  type DType,
  type Graph,
  type Node,
  type TensorArray,
  type TensorData,
  type Value,
  fail,
  shapeStr,
} from './ir.js';
import { liveNodes } from './onnx.js';

/** A tensor of the interpreter: floats as Float64Array, int64 as BigInt64Array, bool as Uint8Array (0/1). */
export interface RefTensor {
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly data: Float64Array | BigInt64Array | Uint8Array;
}

/** A fed value: a tensor with dims (e.g. a session `HostTensor`), or bare data when the value's shape fixes the dims. */
export type RefFeed = TensorArray | { readonly dims: readonly number[]; readonly data: TensorArray };

/** Feeds by input value or by input name. */
export type RefFeeds = ReadonlyMap<Value, RefFeed> | Readonly<Record<string, RefFeed>>;

const isFloat = (t: DType) => t === 'float32' || t === 'float64';
const size = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);

/** Row-major strides of dims. */
function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  for (let i = dims.length - 1, acc = 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i];
  }
  return s;
}

function toRef(dtype: DType, dims: readonly number[], data: TensorArray): RefTensor {
  if (isFloat(dtype)) {
    if (data instanceof BigInt64Array) return { dtype, dims, data: Float64Array.from(data, Number) };
    return { dtype, dims, data: Float64Array.from(data as ArrayLike<number>) };
  }
  if (dtype === 'int64')
    return {
      dtype,
      dims,
      data:
        data instanceof BigInt64Array
          ? data
          : BigInt64Array.from(data as ArrayLike<number>, (v) => BigInt(Math.trunc(v))),
    };
  return {
    dtype,
    dims,
    data:
      data instanceof BigInt64Array
        ? Uint8Array.from(data, (v) => (v !== 0n ? 1 : 0))
        : Uint8Array.from(data as ArrayLike<number>, (v) => (v !== 0 ? 1 : 0)),
  };
}

const floats = (t: RefTensor): Float64Array => {
  if (!(t.data instanceof Float64Array)) fail('reference', `expected a float tensor, got ${t.dtype}`);
  return t.data;
};
const ints = (t: RefTensor): number[] => Array.from(t.data as ArrayLike<number | bigint>, Number);

/** Numpy broadcast of concrete dims. */
export function broadcastDims(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - n + a.length];
    const db = i < n - b.length ? 1 : b[i - n + b.length];
    if (da !== db && da !== 1 && db !== 1) fail(op, `cannot broadcast ${shapeStr(a)} with ${shapeStr(b)}`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** For each flat index of `out`, the flat index of the broadcast source with dims `src`. */
function broadcastIndex(out: readonly number[], src: readonly number[]): Int32Array {
  const lead = out.length - src.length;
  const ss = strides(src);
  const idx = new Int32Array(size(out));
  const pos = new Array<number>(out.length).fill(0);
  for (let f = 0; f < idx.length; f++) {
    let o = 0;
    for (let i = lead; i < out.length; i++) if (src[i - lead] !== 1) o += pos[i] * ss[i - lead];
    idx[f] = o;
    for (let i = out.length - 1; i >= 0 && ++pos[i] === out[i]; i--) pos[i] = 0;
  }
  return idx;
}

/** Elementwise op over broadcast inputs; `f` gets one number per input. */
function elementwise(op: string, ins: readonly RefTensor[], outType: DType, f: (...v: number[]) => number): RefTensor {
  const dims = ins.slice(1).reduce<number[]>((d, t) => broadcastDims(op, d, t.dims), [...ins[0].dims]);
  const maps = ins.map((t) => broadcastIndex(dims, t.dims));
  const vals = ins.map((t) => (t.data instanceof BigInt64Array ? Float64Array.from(t.data, Number) : t.data));
  const n = size(dims);
  const out = isFloat(outType) ? new Float64Array(n) : new Uint8Array(n);
  const args = new Array<number>(ins.length);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < ins.length; j++) args[j] = vals[j][maps[j][i]];
    out[i] = f(...args);
  }
  return { dtype: outType, dims, data: out };
}

const unary = (x: RefTensor, f: (v: number) => number): RefTensor => ({
  dtype: x.dtype,
  dims: x.dims,
  data: floats(x).map(f),
});

/** Numpy matmul of a [..., m, k] and b [..., k, n] with broadcast batch dims. */
function matmul(a: RefTensor, b: RefTensor): RefTensor {
  const [m, k] = a.dims.slice(-2);
  const [k2, n] = b.dims.slice(-2);
  if (a.dims.length < 2 || b.dims.length < 2 || k !== k2)
    fail('MatMul', `cannot multiply ${shapeStr(a.dims)} x ${shapeStr(b.dims)}`);
  const batch = broadcastDims('MatMul', a.dims.slice(0, -2), b.dims.slice(0, -2));
  const ia = broadcastIndex(batch, a.dims.slice(0, -2));
  const ib = broadcastIndex(batch, b.dims.slice(0, -2));
  const A = floats(a);
  const B = floats(b);
  const out = new Float64Array(size(batch) * m * n);
  for (let t = 0; t < ia.length; t++) {
    const oa = ia[t] * m * k;
    const ob = ib[t] * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += A[oa + i * k + p] * B[ob + p * n + j];
        out[t * m * n + i * n + j] = s;
      }
    }
  }
  return { dtype: a.dtype, dims: [...batch, m, n], data: out };
}

/** Gemm: alpha·op(A)·op(B) + beta·C. */
function gemm(a: RefTensor, b: RefTensor, c: RefTensor | undefined, attrs: Node['attrs']): RefTensor {
  const t2 = (x: RefTensor) => transpose(x, [1, 0]);
  const A = attrs.transA === 1 ? t2(a) : a;
  const B = attrs.transB === 1 ? t2(b) : b;
  const alpha = (attrs.alpha as number | undefined) ?? 1;
  const beta = (attrs.beta as number | undefined) ?? 1;
  const p = matmul(A, B);
  if (!c) return unary(p, (v) => alpha * v);
  return elementwise('Gemm', [p, c], p.dtype, (v, w) => alpha * v + beta * w);
}

function transpose(x: RefTensor, perm: readonly number[]): RefTensor {
  const dims = perm.map((p) => x.dims[p]);
  const xs = strides(x.dims);
  const src = perm.map((p) => xs[p]); // stride in x of each output axis
  const n = size(dims);
  const out = new (x.data.constructor as { new (n: number): RefTensor['data'] })(n);
  const pos = new Array<number>(dims.length).fill(0);
  for (let f = 0; f < n; f++) {
    let o = 0;
    for (let i = 0; i < dims.length; i++) o += pos[i] * src[i];
    out[f] = x.data[o];
    for (let i = dims.length - 1; i >= 0 && ++pos[i] === dims[i]; i--) pos[i] = 0;
  }
  return { dtype: x.dtype, dims, data: out };
}

/** Views x as [outer, d, inner] around `axis`. */
function around(dims: readonly number[], axis: number): [number, number, number] {
  return [size(dims.slice(0, axis)), dims[axis], size(dims.slice(axis + 1))];
}

const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

function softmax(x: RefTensor, axis: number): RefTensor {
  const ls = logSoftmax(x, axis);
  return { dtype: x.dtype, dims: x.dims, data: Float64Array.from(ls.data as Float64Array, Math.exp) };
}

function logSoftmax(x: RefTensor, axis: number): RefTensor {
  const [outer, d, inner] = around(x.dims, normAxis(axis, x.dims.length));
  const X = floats(x);
  const out = new Float64Array(X.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (j: number) => o * d * inner + j * inner + i;
      let mx = -Infinity;
      for (let j = 0; j < d; j++) mx = Math.max(mx, X[at(j)]);
      let s = 0;
      for (let j = 0; j < d; j++) s += Math.exp(X[at(j)] - mx);
      const lse = mx + Math.log(s);
      for (let j = 0; j < d; j++) out[at(j)] = X[at(j)] - lse;
    }
  }
  return { dtype: x.dtype, dims: x.dims, data: out };
}

/** Symmetric pads p of a Conv/ConvTranspose node; only stride 1, dilation 1, group 1 are interpreted. */
function convPads(n: Node): number {
  const pads = (n.attrs.pads as readonly number[] | undefined) ?? [0, 0, 0, 0];
  const one = (k: string) => [(n.attrs[k] as readonly number[] | number | undefined) ?? 1].flat().every((v) => v === 1);
  if (
    pads.some((v) => v !== pads[0]) ||
    !one('strides') ||
    !one('dilations') ||
    !one('group') ||
    n.attrs.output_padding !== undefined
  ) {
    fail('reference', `${n.op}: only stride 1, dilation 1, group 1 and symmetric pads are implemented`);
  }
  return pads[0];
}

/**
 * Conv (transposed = false): y[n,o,i,j] = b[o] + Σ_{c,u,v} x[n,c,i+u−p,j+v−p]·w[o,c,u,v], zero outside x.
 * ConvTranspose (transposed = true, w [I, O, kH, kW]): y[n,o,i+u−p,j+v−p] += x[n,c,i,j]·w[c,o,u,v]
 * for every in-range output position (the adjoint of Conv).
 */
function conv(x: RefTensor, w: RefTensor, b: RefTensor | undefined, p: number, transposed: boolean): RefTensor {
  const [N, C, H, W] = x.dims;
  const [w0, w1, kh, kw] = w.dims;
  const O = transposed ? w1 : w0;
  if ((transposed ? w0 : w1) !== C)
    fail(transposed ? 'ConvTranspose' : 'Conv', `channels of x ${shapeStr(x.dims)} and w ${shapeStr(w.dims)} differ`);
  const [ho, wo] = transposed ? [H - 1 + kh - 2 * p, W - 1 + kw - 2 * p] : [H + 2 * p - kh + 1, W + 2 * p - kw + 1];
  const X = floats(x);
  const Wt = floats(w);
  const out = new Float64Array(N * O * ho * wo);
  const B = b ? floats(b) : undefined;
  for (let nn = 0; nn < N; nn++) {
    for (let o = 0; o < O; o++) {
      const ob = (nn * O + o) * ho * wo;
      if (B) out.fill(B[o], ob, ob + ho * wo);
      for (let c = 0; c < C; c++) {
        const xb = (nn * C + c) * H * W;
        const wb = (transposed ? c * O + o : o * C + c) * kh * kw;
        for (let u = 0; u < kh; u++) {
          for (let v = 0; v < kw; v++) {
            const wv = Wt[wb + u * kw + v];
            // Conv reads x at (i+u−p, j+v−p) for output (i, j); ConvTranspose writes output (i+u−p, j+v−p) from x (i, j).
            const [rows, cols] = transposed ? [H, W] : [ho, wo];
            for (let i = 0; i < rows; i++) {
              const r = i + u - p;
              if (r < 0 || r >= (transposed ? ho : H)) continue;
              for (let j = 0; j < cols; j++) {
                const q = j + v - p;
                if (q < 0 || q >= (transposed ? wo : W)) continue;
                if (transposed) out[ob + r * wo + q] += X[xb + i * W + j] * wv;
                else out[ob + i * wo + j] += X[xb + r * W + q] * wv;
              }
            }
          }
        }
      }
    }
  }
  return { dtype: x.dtype, dims: [N, O, ho, wo], data: out };
}

/** AveragePool with a k×k window and stride k, no pads (what ops.avgPool2d builds). */
function avgPool(x: RefTensor, n: Node): RefTensor {
  const k = (n.attrs.kernel_shape as readonly number[])[0];
  const st = n.attrs.strides as readonly number[] | undefined;
  if (
    n.attrs.pads !== undefined ||
    !st ||
    [...st, ...(n.attrs.kernel_shape as readonly number[])].some((v) => v !== k)
  ) {
    fail('reference', 'AveragePool: only k×k windows with stride k and no pads are implemented');
  }
  const [N, C, H, W] = x.dims;
  const [ho, wo] = [Math.floor(H / k), Math.floor(W / k)];
  const X = floats(x);
  const out = new Float64Array(N * C * ho * wo);
  for (let p = 0; p < N * C; p++) {
    for (let i = 0; i < ho; i++) {
      for (let j = 0; j < wo; j++) {
        let s = 0;
        for (let u = 0; u < k; u++) for (let v = 0; v < k; v++) s += X[p * H * W + (i * k + u) * W + j * k + v];
        out[(p * ho + i) * wo + j] = s / (k * k);
      }
    }
  }
  return { dtype: x.dtype, dims: [N, C, ho, wo], data: out };
}

/** Resize, nearest mode with integer scales and asymmetric/floor coordinates: y[…, i, j] = x[…, ⌊i/s⌋, ⌊j/s⌋]. */
function resizeNearest(x: RefTensor, scales: readonly number[], n: Node): RefTensor {
  const a = n.attrs;
  if (
    a.mode !== 'nearest' ||
    a.coordinate_transformation_mode !== 'asymmetric' ||
    a.nearest_mode !== 'floor' ||
    scales.some((s) => !Number.isInteger(s) || s < 1)
  ) {
    fail(
      'reference',
      'Resize: only nearest mode with asymmetric coordinates, floor rounding and integer scales is implemented',
    );
  }
  const dims = x.dims.map((d, i) => d * scales[i]);
  const os = strides(dims);
  const xs = strides(x.dims);
  const out = new Float64Array(size(dims));
  const X = floats(x);
  for (let f = 0; f < out.length; f++) {
    let src = 0;
    for (let i = 0; i < dims.length; i++) src += Math.floor((Math.floor(f / os[i]) % dims[i]) / scales[i]) * xs[i];
    out[f] = X[src];
  }
  return { dtype: x.dtype, dims, data: out };
}

/** LayerNormalization over axes [axis, rank): outputs Y, Mean and InvStdDev (stat dims keep 1s). */
function layerNorm(
  x: RefTensor,
  scale: RefTensor,
  bias: RefTensor | undefined,
  axis: number,
  eps: number,
): RefTensor[] {
  const a = normAxis(axis, x.dims.length);
  const rows = size(x.dims.slice(0, a));
  const d = size(x.dims.slice(a));
  const X = floats(x);
  const S = floats(scale);
  const Bs = bias ? floats(bias) : undefined;
  if (S.length !== d || (Bs && Bs.length !== d)) fail('LayerNormalization', `scale/bias must have ${d} elements`);
  const y = new Float64Array(X.length);
  const mean = new Float64Array(rows);
  const inv = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < d; j++) m += X[r * d + j];
    m /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (X[r * d + j] - m) ** 2;
    const is = 1 / Math.sqrt(v / d + eps);
    mean[r] = m;
    inv[r] = is;
    for (let j = 0; j < d; j++) y[r * d + j] = (X[r * d + j] - m) * is * S[j] + (Bs ? Bs[j] : 0);
  }
  const stat = x.dims.map((n, i) => (i < a ? n : 1));
  return [
    { dtype: x.dtype, dims: x.dims, data: y },
    { dtype: x.dtype, dims: stat, data: mean },
    { dtype: x.dtype, dims: stat, data: inv },
  ];
}

/** ReduceSum / ReduceMean / ReduceSumSquare; empty axes reduce all (ONNX). */
function reduce(kind: string, x: RefTensor, axesIn: readonly number[], keepdims: boolean): RefTensor {
  const r = x.dims.length;
  const axes = axesIn.length ? axesIn.map((a) => normAxis(a, r)) : [...Array(r).keys()];
  const kept = x.dims.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = new Float64Array(size(kept));
  const map = broadcastIndex(x.dims, kept); // each x element → its output slot
  const X = floats(x);
  for (let i = 0; i < X.length; i++) out[map[i]] += kind === 'ReduceSumSquare' ? X[i] * X[i] : X[i];
  if (kind === 'ReduceMean') {
    const n = X.length / out.length;
    for (let i = 0; i < out.length; i++) out[i] /= n;
  }
  return { dtype: x.dtype, dims: keepdims ? kept : x.dims.filter((_, i) => !axes.includes(i)), data: out };
}

/** Copies of slices of x along `axis` (Split) or their concatenation (Concat). */
function split(x: RefTensor, axis: number, sizes: readonly number[]): RefTensor[] {
  const [outer, d, inner] = around(x.dims, axis);
  if (sizes.reduce((p, s) => p + s, 0) !== d) fail('Split', `sizes ${shapeStr(sizes)} do not sum to ${d}`);
  let start = 0;
  return sizes.map((s) => {
    const Ctor = x.data.constructor as { new (n: number): RefTensor['data'] };
    const out = new Ctor(outer * s * inner);
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < s * inner; j++) out[o * s * inner + j] = x.data[o * d * inner + start * inner + j];
    start += s;
    return { dtype: x.dtype, dims: x.dims.map((n, i) => (i === axis ? s : n)), data: out };
  });
}

function concat(xs: readonly RefTensor[], axis: number): RefTensor {
  const d = xs.reduce((p, x) => p + x.dims[axis], 0);
  const dims = xs[0].dims.map((n, i) => (i === axis ? d : n));
  const [outer, , inner] = around(dims, axis);
  const Ctor = xs[0].data.constructor as { new (n: number): RefTensor['data'] };
  const out = new Ctor(size(dims));
  let start = 0;
  for (const x of xs) {
    const s = x.dims[axis];
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < s * inner; j++) out[o * d * inner + start * inner + j] = x.data[o * s * inner + j];
    start += s;
  }
  return { dtype: xs[0].dtype, dims, data: out };
}

/** Reshape target with ONNX's 0 (copy the input dim) and −1 (infer) entries resolved. */
function reshapeDims(x: RefTensor, target: readonly number[]): number[] {
  const dims = target.map((d, i) => (d === 0 ? x.dims[i] : d));
  const known = dims.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
  const total = size(x.dims);
  const out = dims.map((d) => (d === -1 ? total / known : d));
  if (size(out) !== total || out.some((d) => !Number.isInteger(d)))
    fail('Reshape', `cannot reshape ${shapeStr(x.dims)} to ${shapeStr(target)}`);
  return out;
}

function oneHot(indices: RefTensor, depth: number, values: Float64Array, axis: number): RefTensor {
  const a = normAxis(axis, indices.dims.length + 1);
  const dims = [...indices.dims.slice(0, a), depth, ...indices.dims.slice(a)];
  const [outer, , inner] = around(dims, a);
  const out = new Float64Array(size(dims)).fill(values[0]);
  const I = ints(indices);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let c = I[o * inner + i];
      if (c < 0) c += depth; // ONNX: negative indices count from the back
      if (c >= 0 && c < depth) out[o * depth * inner + c * inner + i] = values[1];
    }
  }
  return { dtype: 'float32', dims, data: out };
}

function cast(x: RefTensor, to: DType): RefTensor {
  if (isFloat(to))
    return {
      dtype: to,
      dims: x.dims,
      data: x.data instanceof Float64Array ? x.data : Float64Array.from(x.data as ArrayLike<number | bigint>, Number),
    };
  if (to === 'int64')
    return {
      dtype: to,
      dims: x.dims,
      data: BigInt64Array.from(x.data as ArrayLike<number | bigint>, (v) =>
        BigInt(typeof v === 'bigint' ? v : Math.trunc(v)),
      ),
    };
  return {
    dtype: to,
    dims: x.dims,
    data: Uint8Array.from(x.data as ArrayLike<number | bigint>, (v) => (Number(v) !== 0 ? 1 : 0)),
  };
}

/**
 * erf(x) to ~1e-16 absolute (float64): the Maclaurin series Σ (−1)ⁿ x^(2n+1) / (n!(2n+1)) · 2/√π for
 * |x| < 1 (at most 0.84 of cancellation), else 1 − erfc(x) with erfc from its continued fraction
 * e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))) evaluated by the modified Lentz method.
 * Source: Abramowitz & Stegun 7.1.5 and 7.1.14.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 1) {
    const x2 = x * x;
    let term = x; // (−1)ⁿ x^(2n+1) / n!
    let s = x;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      s += t;
      if (Math.abs(t) < 1e-17 * Math.abs(s)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * s;
  }
  const e = erfc(ax);
  return x > 0 ? 1 - e : e - 1;
}

/** erfc(x) for x ≥ 1 by the continued fraction above (relative error ~1e-15). */
function erfc(x: number): number {
  if (x > 27) return 0; // e^(−729) underflows
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? 1 / tiny : 1 / d;
    c = x + a / c;
    if (Math.abs(c) < tiny) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
  }
  return fail('erf', `continued fraction did not converge at x = ${x}`);
}

/** Evaluates one node; returns its outputs. */
function run(n: Node, ins: readonly (RefTensor | undefined)[]): RefTensor[] {
  const x = ins[0] as RefTensor;
  const at = n.attrs;
  const out0 = n.outputs[0];
  switch (n.op) {
    case 'Add':
      return [elementwise(n.op, ins as RefTensor[], out0.dtype, (a, b) => a + b)];
    case 'Sub':
      return [elementwise(n.op, ins as RefTensor[], out0.dtype, (a, b) => a - b)];
    case 'Mul':
      return [elementwise(n.op, ins as RefTensor[], out0.dtype, (a, b) => a * b)];
    case 'Div':
      return [elementwise(n.op, ins as RefTensor[], out0.dtype, (a, b) => a / b)];
    case 'Min':
      return [elementwise(n.op, ins as RefTensor[], out0.dtype, Math.min)];
    case 'Sum':
      return [elementwise(n.op, ins as RefTensor[], out0.dtype, (...v) => v.reduce((p, q) => p + q, 0))];
    case 'Less':
      return [elementwise(n.op, ins as RefTensor[], 'bool', (a, b) => (a < b ? 1 : 0))];
    case 'Where': {
      const [c, a, b] = ins as RefTensor[];
      const cf: RefTensor = { dtype: 'float64', dims: c.dims, data: Float64Array.from(c.data as Uint8Array) };
      return [elementwise(n.op, [cf, a, b], out0.dtype, (p, q, r) => (p ? q : r))];
    }
    case 'Erf':
      return [unary(x, erf)];
    case 'Exp':
      return [unary(x, Math.exp)];
    case 'Abs':
      return [unary(x, Math.abs)];
    case 'Sign':
      return [unary(x, Math.sign)];
    case 'Neg':
      return [unary(x, (v) => -v)];
    case 'Sqrt':
      return [unary(x, Math.sqrt)];
    case 'Identity':
      return [x];
    case 'MatMul':
      return [matmul(x, ins[1] as RefTensor)];
    case 'Gemm':
      return [gemm(x, ins[1] as RefTensor, ins[2], at)];
    case 'Transpose':
      return [transpose(x, (at.perm as readonly number[] | undefined) ?? [...x.dims.keys()].reverse())];
    case 'Reshape':
      return [{ ...x, dims: reshapeDims(x, ints(ins[1] as RefTensor)) }];
    case 'Unsqueeze': {
      const axes = ints(ins[1] as RefTensor).map((a) => normAxis(a, x.dims.length + (ins[1] as RefTensor).dims[0]));
      const dims: number[] = [];
      for (let i = 0, j = 0; i < x.dims.length + axes.length; i++) dims.push(axes.includes(i) ? 1 : x.dims[j++]);
      return [{ ...x, dims }];
    }
    case 'Softmax':
      return [softmax(x, (at.axis as number | undefined) ?? -1)];
    case 'LogSoftmax':
      return [logSoftmax(x, (at.axis as number | undefined) ?? -1)];
    case 'Relu':
      return [unary(x, (v) => Math.max(v, 0))];
    case 'AveragePool':
      return [avgPool(x, n)];
    case 'Resize':
      return [resizeNearest(x, Array.from(floats(ins[2] as RefTensor)), n)];
    case 'Conv':
      return [conv(x, ins[1] as RefTensor, ins[2], convPads(n), false)];
    case 'ConvTranspose':
      return [conv(x, ins[1] as RefTensor, ins[2], convPads(n), true)];
    case 'LayerNormalization':
      return layerNorm(
        x,
        ins[1] as RefTensor,
        ins[2],
        (at.axis as number | undefined) ?? -1,
        (at.epsilon as number | undefined) ?? 1e-5,
      );
    case 'ReduceSum':
    case 'ReduceMean':
    case 'ReduceSumSquare':
      return [reduce(n.op, x, (at.axes as readonly number[] | undefined) ?? [], at.keepdims !== 0)];
    case 'Split': {
      const axis = normAxis((at.axis as number | undefined) ?? 0, x.dims.length);
      const k = n.outputs.length;
      const sizes = ins[1] ? ints(ins[1]) : Array<number>(k).fill(x.dims[axis] / k);
      return split(x, axis, sizes);
    }
    case 'Concat':
      return [concat(ins as RefTensor[], normAxis(at.axis as number, x.dims.length))];
    case 'OneHot':
      return [
        oneHot(x, ints(ins[1] as RefTensor)[0], floats(ins[2] as RefTensor), (at.axis as number | undefined) ?? -1),
      ];
    case 'Shape':
      return [{ dtype: 'int64', dims: [x.dims.length], data: BigInt64Array.from(x.dims.map(BigInt)) }];
    case 'Size':
      return [{ dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(size(x.dims))) }];
    case 'Expand': {
      const dims = broadcastDims('Expand', x.dims, ints(ins[1] as RefTensor));
      const map = broadcastIndex(dims, x.dims);
      const Ctor = x.data.constructor as { new (n: number): RefTensor['data'] };
      const out = new Ctor(map.length);
      for (let i = 0; i < map.length; i++) out[i] = x.data[map[i]];
      return [{ dtype: x.dtype, dims, data: out }];
    }
    case 'ConstantOfShape': {
      const value = at.value as TensorData | undefined;
      const t = value ? toRef(value.dtype, [], value.data) : toRef('float32', [], Float32Array.of(0));
      const dims = ints(x);
      const Ctor = t.data.constructor as { new (n: number): RefTensor['data'] };
      const out = new Ctor(size(dims));
      out.fill(t.data[0] as never);
      return [{ dtype: t.dtype, dims, data: out }];
    }
    case 'Cast':
      return [cast(x, at.to as DType)];
    default:
      return fail('reference', `op ${n.op} is not implemented (node output ${out0.name})`);
  }
}

/** Checks actual dims against a declared shape, binding symbolic dims in `env` on first sight. */
function checkDims(v: Value, dims: readonly number[], env: Map<string, number>): void {
  const bad = () =>
    fail(
      'reference',
      `${v.name}: declared ${shapeStr(v.shape)} but computed ${shapeStr(dims)}${v.producer ? ` (op ${v.producer.op})` : ''}`,
    );
  if (dims.length !== v.shape.length) bad();
  v.shape.forEach((d: Dim, i) => {
    if (typeof d === 'number') {
      if (d !== -1 && d !== dims[i]) bad();
    } else if (env.has(d)) {
      if (env.get(d) !== dims[i]) bad();
    } else env.set(d, dims[i]);
  });
}

function feedTensor(v: Value, f: RefFeed): RefTensor {
  if ('dims' in f && !ArrayBuffer.isView(f)) return toRef(v.dtype, f.dims, f.data);
  const data = f as TensorArray;
  const syms = v.shape.filter((d) => typeof d !== 'number');
  if (syms.length > 1)
    fail('reference', `input ${v.name} ${shapeStr(v.shape)} has several symbolic dims; feed { dims, data }`);
  const known = v.shape.filter((d): d is number => typeof d === 'number').reduce((p, d) => p * d, 1);
  return toRef(
    v.dtype,
    v.shape.map((d) => (typeof d === 'number' ? d : data.length / known)),
    data,
  );
}

/**
 * Evaluates `outputs` of graph `g` in float64 (see the file comment).
 * @param feeds every graph input the outputs need, keyed by Value or by input name. Float data of any
 *   float array type is widened to float64; symbolic dims are bound from the fed dims.
 * @param params the value of each parameter the outputs need (Float64Array or Float32Array, row-major).
 * @returns one RefTensor per output, in order: floats as Float64Array, int64 as BigInt64Array, bool as Uint8Array.
 * @throws when a needed input is not fed, dims disagree with the declared shapes (naming the value),
 *   or an op is not implemented here.
 */
export function evaluate(
  g: Graph,
  feeds: RefFeeds,
  outputs: readonly Value[],
  params: (p: Value) => Float64Array | Float32Array,
): RefTensor[] {
  const env = new Map<string, number>();
  const vals = new Map<Value, RefTensor>();
  const byName = feeds instanceof Map ? undefined : (feeds as Readonly<Record<string, RefFeed>>);
  const nodes = liveNodes(g, outputs);
  const needed = new Set<Value>(outputs);
  for (const n of nodes) for (const x of n.inputs) needed.add(x);
  for (const v of g.inputs) {
    if (!needed.has(v)) continue;
    const f = byName ? byName[v.name] : (feeds as ReadonlyMap<Value, RefFeed>).get(v);
    if (!f) fail('reference', `input ${v.name} ${shapeStr(v.shape)} is not fed`);
    const t = feedTensor(v, f);
    checkDims(v, t.dims, env);
    vals.set(v, t);
  }
  for (const p of g.params) {
    if (!needed.has(p)) continue;
    const data = params(p);
    const t = toRef(p.dtype, p.shape as number[], data);
    if (t.data.length !== size(t.dims))
      fail('reference', `parameter ${p.name} ${shapeStr(p.shape)} has ${data.length} values`);
    vals.set(p, t);
  }
  for (const c of g.consts) if (needed.has(c) && c.data) vals.set(c, toRef(c.dtype, c.data.dims, c.data.data));
  for (const n of nodes) {
    const outs = run(
      n,
      n.inputs.map((x) => vals.get(x)),
    );
    n.outputs.forEach((o, i) => {
      checkDims(o, outs[i].dims, env);
      vals.set(o, outs[i]);
    });
  }
  return outputs.map((o) => vals.get(o) ?? fail('reference', `output ${o.name} was not computed`));
}
