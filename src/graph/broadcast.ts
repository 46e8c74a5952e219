/**
 * Numpy broadcasting (ONNX opset 17 "multidirectional broadcasting"), once for every user: the op shape
 * rules (symbolic dims), the float64 reference kernels and the tfjs mappings (concrete dims), and the
 * un-broadcast reduction of a gradient back to an operand's shape (autodiff's sumTo).
 */
import { type Dim, fail, shapeStr } from './ir.js';

/**
 * Numpy broadcast of two shapes: right-aligned, a dim of 1 stretches to the other; symbolic dims match
 * only themselves (or 1). Works on concrete dims too (number in, number out).
 * @throws `op: cannot broadcast [a] with [b]` when two dims differ and neither is 1.
 */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[];
export function broadcastShapes(op: string, a: readonly Dim[], b: readonly Dim[]): Dim[];
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

/** Row-major strides of concrete dims. */
export function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  for (let i = dims.length - 1, acc = 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i];
  }
  return s;
}

/**
 * For each flat (row-major) index of a tensor with dims `out`, the flat index of the element of the
 * broadcast source with dims `src` (src right-aligned to out, its 1-dims repeated) that it reads.
 */
export function broadcastIndex(out: readonly number[], src: readonly number[]): Int32Array {
  const lead = out.length - src.length;
  const ss = strides(src);
  const idx = new Int32Array(out.reduce((p, d) => p * d, 1));
  const pos = new Array<number>(out.length).fill(0);
  for (let f = 0; f < idx.length; f++) {
    let o = 0;
    for (let i = lead; i < out.length; i++) if (src[i - lead] !== 1) o += pos[i] * ss[i - lead];
    idx[f] = o;
    for (let i = out.length - 1; i >= 0 && ++pos[i] === out[i]; i--) pos[i] = 0;
  }
  return idx;
}

/**
 * The axes of `full` along which a value of shape `target` was broadcast to it: `lead`, the number of
 * leading axes `target` lacks (axes 0 … lead−1 of full), and `ones`, the axes of full (≥ lead) where
 * target has a 1 and full does not. Summing over both gives target's shape (keeping the `ones` axes).
 * @throws when `full` has lower rank than `target`.
 */
export function broadcastAxes(full: readonly Dim[], target: readonly Dim[]): { lead: number; ones: number[] } {
  const lead = full.length - target.length;
  if (lead < 0) fail('gradients', `gradient ${shapeStr(full)} has lower rank than ${shapeStr(target)}`);
  const ones: number[] = [];
  for (let i = 0; i < target.length; i++) if (target[i] === 1 && full[i + lead] !== 1) ones.push(i + lead);
  return { lead, ones };
}
