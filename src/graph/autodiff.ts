/**
 * Reverse-mode automatic differentiation on the graph IR: `gradients(loss, wrt)` appends the backward
 * nodes to the loss's graph (ordinary ONNX opset-17 ops), so one emitted model computes the loss and
 * its gradients in one run (training: `toOnnx(g, { outputs: { loss, ...grads } })`, params as inputs).
 *
 * Gradient rules follow the ONNX semantics of each forward op (onnx/docs/Operators.md, opset 17);
 * the LayerNormalization rule reuses the node's Mean and InvStdDev outputs. Checked against central
 * finite differences of the float64 interpreter in `reference.ts` (test/graph/).
 */
import { type Dim, type DType, type Graph, type Node, type Value, fail, shapeStr } from './ir.js';
import * as op from './ops.js';

const isFloat = (t: DType) => t === 'float32' || t === 'float64';
const isStatic = (s: readonly Dim[]): s is readonly number[] => s.every((d) => typeof d === 'number');
const sameShape = (a: readonly Dim[], b: readonly Dim[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const range = (n: number) => [...Array(n).keys()];

/** Ops whose outputs do not depend differentiably on their inputs (zero gradient almost everywhere). */
const ZERO_GRAD = new Set([
  'Sign',
  'Less',
  'Shape',
  'Size',
  'OneHot',
  'ConstantOfShape',
  'ReduceMax',
  'Equal',
  'Greater',
]);

/** Backward-node helpers with peepholes that keep the emitted graph small. */
class Emitter {
  private readonly memo = new Map<string, Value>();
  constructor(readonly graph: Graph) {}

  private cached(key: string, make: () => Value): Value {
    let v = this.memo.get(key);
    if (!v) this.memo.set(key, (v = make()));
    return v;
  }

  /** x reshaped to `shape`; collapses Reshape chains; `like` supplies the shape at run time when `shape` has several symbolic dims. */
  reshape(x: Value, shape: readonly Dim[], like?: Value): Value {
    let src = x;
    while (src.producer?.op === 'Reshape') src = src.producer.inputs[0];
    if (sameShape(x.shape, shape)) return x;
    if (sameShape(src.shape, shape)) return src;
    return this.cached(`reshape:${src.id}:${shape.join(',')}`, () => {
      if (shape.filter((d) => typeof d === 'string' || d === -1).length <= 1) return op.reshape(src, shape);
      if (!like)
        fail('gradients', `cannot reshape ${shapeStr(src.shape)} to ${shapeStr(shape)} without a runtime shape`);
      return this.graph.node('Reshape', [src, op.shapeOf(like)], [{ dtype: src.dtype, shape }])[0];
    });
  }

  /** x [..., k] → [rows, k]; rows is a number, or a symbolic product like 'batch*4'. */
  flatten2d(x: Value): Value {
    const lead = x.shape.slice(0, -1);
    const syms = lead.filter((d) => typeof d === 'string');
    const stat = lead.filter((d): d is number => typeof d === 'number').reduce((p, d) => p * d, 1);
    const rows: Dim = syms.length === 0 ? stat : stat === 1 ? syms.join('*') : `${syms.join('*')}*${stat}`;
    return this.reshape(x, [rows, x.shape[x.shape.length - 1]]);
  }

  /**
   * Transpose that cancels an inverse producing Transpose. Other chains are left alone on purpose:
   * onnxruntime fuses a last-two-axes Transpose into FusedMatMul, a composed permutation it must copy.
   */
  transpose(x: Value, perm: readonly number[]): Value {
    if (x.producer?.op === 'Transpose') {
      const inner = x.producer.attrs.perm as readonly number[];
      if (perm.every((v, i) => inner[v] === i)) return x.producer.inputs[0];
    }
    return this.cached(`transpose:${x.id}:${perm.join(',')}`, () => op.transpose(x, perm));
  }

  transposeLast2(x: Value): Value {
    const p = range(x.shape.length);
    [p[p.length - 2], p[p.length - 1]] = [p[p.length - 1], p[p.length - 2]];
    return this.transpose(x, p);
  }

  /** Sum g over the axes along which `target` was broadcast to g's shape, giving exactly `target`'s shape. */
  sumTo(g: Value, target: readonly Dim[], like: Value): Value {
    if (sameShape(g.shape, target)) return g;
    const lead = g.shape.length - target.length;
    if (lead < 0) fail('gradients', `gradient ${shapeStr(g.shape)} has lower rank than ${shapeStr(target)}`);
    const ones = range(target.length)
      .filter((i) => target[i] === 1 && g.shape[i + lead] !== 1)
      .map((i) => i + lead);
    if (lead === 0 && ones.length === 0) fail('gradients', `cannot reduce ${shapeStr(g.shape)} to ${shapeStr(target)}`);
    if (ones.length === 0) return op.reduceSum(g, range(lead), false);
    if (lead === 0) return op.reduceSum(g, ones, true);
    return this.reshape(op.reduceSum(g, [...range(lead), ...ones], false), target, like);
  }

  /** Broadcast v to `like`'s shape (a constant shape when static, else Shape(like)). */
  expandTo(v: Value, like: Value): Value {
    if (sameShape(v.shape, like.shape)) return v;
    const shape = isStatic(like.shape)
      ? this.graph.constant(
          { dtype: 'int64', dims: [like.shape.length], data: BigInt64Array.from(like.shape.map(BigInt)) },
          'expand_shape',
        )
      : op.shapeOf(like);
    return this.graph.node('Expand', [v, shape], [{ dtype: v.dtype, shape: like.shape }])[0];
  }

  /** Zeros of v's shape and dtype (no run-time dependency on v when its shape is static). */
  zerosOf(v: Value): Value {
    if (!isStatic(v.shape)) return op.zerosLike(v);
    const shape = this.graph.constant(
      { dtype: 'int64', dims: [v.shape.length], data: BigInt64Array.from(v.shape.map(BigInt)) },
      'zeros_shape',
    );
    const value =
      v.dtype === 'float64'
        ? { dtype: 'float64' as const, dims: [1], data: Float64Array.of(0) }
        : { dtype: 'float32' as const, dims: [1], data: Float32Array.of(0) };
    return this.graph.node('ConstantOfShape', [shape], [{ dtype: v.dtype, shape: v.shape }], { value })[0];
  }

  /** Number of elements reduced by a Reduce node (x → y) as a scalar of x's dtype. */
  reducedCount(x: Value, y: Value, axes: readonly number[]): Value {
    const dims = axes.map((a) => x.shape[a]);
    if (isStatic(dims))
      return op.scalar(
        x,
        (dims as number[]).reduce((p, d) => p * d, 1),
      );
    const size = (v: Value) => op.cast(this.graph.node('Size', [v], [{ dtype: 'int64', shape: [] }])[0], x.dtype);
    return op.div(size(x), size(y));
  }
}

const isScalarConst = (v: Value, c: number) =>
  v.kind === 'const' &&
  v.data !== undefined &&
  v.data.data.length === 1 &&
  isFloat(v.dtype) &&
  Math.abs(Number(v.data.data[0]) - c) < 1e-6;

/**
 * Matches ops.gelu's nodes y = (x·½)·(erf(x·√½) + 1); returns x, a = erf(x·√½) + 1 and m = x·√½.
 * Its fused gradient, ½·g·(a + x·√(2/π)·e^(−m²)), takes 7 elementwise passes instead of 9.
 */
function matchGelu(n: Node): { x: Value; a: Value; m: Value } | undefined {
  if (n.op !== 'Mul') return undefined;
  const [h, a] = n.inputs;
  const hp = h.producer;
  const ap = a.producer;
  if (hp?.op !== 'Mul' || ap?.op !== 'Add' || !isScalarConst(hp.inputs[1], 0.5) || !isScalarConst(ap.inputs[1], 1))
    return undefined;
  const x = hp.inputs[0];
  const ep = ap.inputs[0].producer;
  const mp = ep?.op === 'Erf' ? ep.inputs[0].producer : undefined;
  if (mp?.op !== 'Mul' || mp.inputs[0] !== x || !isScalarConst(mp.inputs[1], Math.SQRT1_2)) return undefined;
  return { x, a, m: mp.outputs[0] };
}

function geluGrad(g: Value, { x, a, m }: { x: Value; a: Value; m: Value }): Value {
  const c = op.scalar(x, Math.log(Math.sqrt(2 / Math.PI))); // 2·φ(x) = exp(c − m²), m = x/√2
  const inner = op.add(a, op.mul(x, op.exp(op.sub(c, op.mul(m, m)))));
  return op.mul(op.mul(g, op.scalar(g, 0.5)), inner);
}

/** Per-input gradients (undefined: none, or not needed) from per-output gradients. */
type Rule = (
  n: Node,
  gys: readonly (Value | undefined)[],
  need: readonly boolean[],
  e: Emitter,
) => (Value | undefined)[];

/** The single output gradient of a one-output op. */
const g0 = (gys: readonly (Value | undefined)[]) => gys[0] as Value;
const when = (flag: boolean, f: () => Value): Value | undefined => (flag ? f() : undefined);

/** Gradients of [..., m, k] × [..., k, n]; a 2-D right operand (a weight) gets ONE 2-D product. */
const matmulRule: Rule = (n, gys, need, e) => {
  const [a, b] = n.inputs;
  const g = g0(gys);
  const [K, N] = b.shape;
  if (b.shape.length === 2 && typeof K === 'number' && typeof N === 'number') {
    // y [..., m, n] = a [..., m, k] · W [k, n]: flatten rows, dW = a2ᵀ·g2, da = g2·Wᵀ.
    const gFlat = () => e.flatten2d(g);
    return [
      when(need[0], () => e.reshape(op.gemm(gFlat(), b, { transB: true }), a.shape, a)),
      when(need[1], () => op.gemm(e.flatten2d(a), gFlat(), { transA: true })),
    ];
  }
  return [
    when(need[0], () => e.sumTo(op.matmul(g, e.transposeLast2(b)), a.shape, a)),
    when(need[1], () => e.sumTo(op.matmul(e.transposeLast2(a), g), b.shape, b)),
  ];
};

/** Gradients of Gemm: y = alpha·op(A)·op(B) + beta·C (transposes folded into the backward Gemms). */
const gemmRule: Rule = (n, gys, need, e) => {
  const [a, b, c] = n.inputs;
  const g = g0(gys);
  const tA = n.attrs.transA === 1;
  const tB = n.attrs.transB === 1;
  const alpha = (n.attrs.alpha as number | undefined) ?? 1;
  const beta = (n.attrs.beta as number | undefined) ?? 1;
  return [
    when(need[0], () =>
      tA ? op.gemm(b, g, { transA: tB, transB: true, alpha }) : op.gemm(g, b, { transB: !tB, alpha }),
    ),
    when(need[1], () =>
      tB ? op.gemm(g, a, { transA: true, transB: tA, alpha }) : op.gemm(a, g, { transA: !tA, alpha }),
    ),
    when(!!c && need[2], () => e.sumTo(beta === 1 ? g : op.mul(g, op.scalar(g, beta)), c.shape, c)),
  ];
};

/** ReduceSum / ReduceMean / ReduceSumSquare: bring g back to x's rank and broadcast. */
const reduceRule =
  (kind: 'sum' | 'mean' | 'sumsq'): Rule =>
  (n, gys, _need, e) => {
    const [x] = n.inputs;
    const axes = n.attrs.axes as readonly number[];
    let g = g0(gys);
    if (kind === 'mean') g = op.div(g, e.reducedCount(x, n.outputs[0], axes));
    if (kind === 'sumsq') g = op.mul(g, op.scalar(g, 2));
    if (n.attrs.keepdims === 0) g = op.unsqueeze(g, axes);
    return [kind === 'sumsq' ? op.mul(g, x) : e.expandTo(g, x)]; // the Mul broadcasts g itself
  };

/**
 * Gradients of a stride-1, dilation-1, group-1 Conv y = x ⊛ w + b with symmetric pads p:
 * dx = ConvTranspose(g, w, p); dw = (xᵀ ⊛ gᵀ)ᵀ, a Conv of x with N and C swapped by g with N and O
 * swapped (channel axis = batch), whose "kernel" is g's spatial extent, so its output is [C, O, kH, kW];
 * db = Σ_{N,H,W} g.
 */
const convRule: Rule = (n, gys, need, e) => {
  const [x, w, b] = n.inputs;
  const g = g0(gys);
  const pads = n.attrs.pads as readonly number[];
  const p = pads[0];
  const plain = (k: string) => (n.attrs[k] as readonly number[] | number | undefined) ?? 1;
  if (
    pads.some((v) => v !== p) ||
    [plain('strides'), plain('dilations')].flat().some((v) => v !== 1) ||
    plain('group') !== 1
  ) {
    fail(
      'gradients',
      `Conv gradient supports stride 1, dilation 1, group 1 and symmetric pads only (node output ${n.outputs[0].name})`,
    );
  }
  const nc = [1, 0, 2, 3];
  return [
    when(need[0], () => op.convTranspose2d(g, w, { pads: p })),
    when(need[1], () => e.transpose(op.conv2d(e.transpose(x, nc), e.transpose(g, nc), undefined, { pads: p }), nc)),
    when(!!b && need[2], () => op.reduceSum(g, [0, 2, 3])),
  ];
};

const RULES: Record<string, Rule> = {
  Add: (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    return [when(need[0], () => e.sumTo(g, a.shape, a)), when(need[1], () => e.sumTo(g, b.shape, b))];
  },
  Sub: (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    return [when(need[0], () => e.sumTo(g, a.shape, a)), when(need[1], () => op.neg(e.sumTo(g, b.shape, b)))];
  },
  Mul: (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    return [
      when(need[0], () => e.sumTo(op.mul(g, b), a.shape, a)),
      when(need[1], () => e.sumTo(op.mul(g, a), b.shape, b)),
    ];
  },
  Div: (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    // d(a/b)/db = −(a/b)/b = −y/b.
    return [
      when(need[0], () => e.sumTo(op.div(g, b), a.shape, a)),
      when(need[1], () => op.neg(e.sumTo(op.div(op.mul(g, n.outputs[0]), b), b.shape, b))),
    ];
  },
  Min: (n, gys, need, e) => {
    const [a, b] = n.inputs;
    const g = g0(gys);
    const bTaken = op.less(b, a); // ties route to a
    const zero = op.scalar(g, 0);
    return [
      when(need[0], () => e.sumTo(op.where(bTaken, zero, g), a.shape, a)),
      when(need[1], () => e.sumTo(op.where(bTaken, g, zero), b.shape, b)),
    ];
  },
  Where: (n, gys, need, e) => {
    const [cond, a, b] = n.inputs;
    const g = g0(gys);
    const zero = op.scalar(g, 0);
    return [
      undefined,
      when(need[1], () => e.sumTo(op.where(cond, g, zero), a.shape, a)),
      when(need[2], () => e.sumTo(op.where(cond, zero, g), b.shape, b)),
    ];
  },
  Sum: (n, gys, need, e) => n.inputs.map((x, i) => when(need[i], () => e.sumTo(g0(gys), x.shape, x))),
  MatMul: matmulRule,
  Gemm: gemmRule,
  Reshape: (n, gys, _need, e) => [e.reshape(g0(gys), n.inputs[0].shape, n.inputs[0]), undefined],
  Unsqueeze: (n, gys, _need, e) => [e.reshape(g0(gys), n.inputs[0].shape, n.inputs[0]), undefined],
  Transpose: (n, gys, _need, e) => {
    const perm = n.attrs.perm as readonly number[];
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [e.transpose(g0(gys), inv)];
  },
  Expand: (n, gys, _need, e) => [e.sumTo(g0(gys), n.inputs[0].shape, n.inputs[0]), undefined],
  Identity: (_n, gys) => [g0(gys)],
  Cast: (n, gys) => {
    const x = n.inputs[0];
    const g = g0(gys);
    return [g.dtype === x.dtype ? g : op.cast(g, x.dtype)];
  },
  Softmax: (n, gys) => {
    const y = n.outputs[0];
    const axis = n.attrs.axis as number;
    if (axis !== -1 && axis !== y.shape.length - 1)
      fail('gradients', `Softmax gradient supports only the last axis, got axis ${axis}`);
    const g = g0(gys);
    // dx = y·(g − Σ_last g·y)
    return [op.mul(y, op.sub(g, op.reduceSum(op.mul(g, y), [-1], true)))];
  },
  LayerNormalization: (n, gys, need) => {
    const [x, scale] = n.inputs;
    const [, mean, invStd] = n.outputs;
    const r = x.shape.length;
    const axis = n.attrs.axis as number;
    if (axis !== -1 && axis !== r - 1)
      fail('gradients', `LayerNormalization gradient supports only the last axis, got axis ${axis}`);
    if (gys[1] || gys[2])
      fail(
        'gradients',
        'LayerNormalization Mean/InvStdDev outputs are not differentiable here; do not use them in the loss',
      );
    const g = g0(gys);
    const xhat = op.mul(op.sub(x, mean), invStd); // [..., D]
    const lead = range(r - 1);
    const sumLead = (v: Value) => (lead.length ? op.reduceSum(v, lead) : v);
    return [
      when(need[0], () => {
        // dx = invstd·(gγ − mean(gγ) − x̂·mean(gγ·x̂)) over the normalised axis
        const gs = op.mul(g, scale);
        const m1 = op.reduceMean(gs, [-1], true);
        const m2 = op.reduceMean(op.mul(gs, xhat), [-1], true);
        return op.mul(op.sub(op.sub(gs, m1), op.mul(xhat, m2)), invStd);
      }),
      when(need[1], () => sumLead(op.mul(g, xhat))),
      when(need[2], () => sumLead(g)),
    ];
  },
  Erf: (n, gys) => {
    const x = n.inputs[0];
    // d erf(x)/dx = 2/√π·exp(−x²) = exp(ln(2/√π) − x²)
    const c = op.scalar(x, Math.log(2 / Math.sqrt(Math.PI)));
    return [op.mul(g0(gys), op.exp(op.sub(c, op.mul(x, x))))];
  },
  Relu: (n, gys) => {
    const y = n.outputs[0];
    const g = g0(gys);
    return [op.where(op.less(op.scalar(y, 0), y), g, op.scalar(g, 0))]; // 0 at x = 0, as PyTorch
  },
  LogSoftmax: (n, gys) => {
    const y = n.outputs[0];
    const axis = n.attrs.axis as number;
    if (axis !== -1 && axis !== y.shape.length - 1)
      fail('gradients', `LogSoftmax gradient supports only the last axis, got axis ${axis}`);
    const g = g0(gys);
    // dx = g − softmax(x)·Σ_last g, softmax(x) = exp(y)
    return [op.sub(g, op.mul(op.exp(y), op.reduceSum(g, [-1], true)))];
  },
  Conv: convRule,
  AveragePool: (n, gys) => {
    const k = (n.attrs.kernel_shape as readonly number[])[0];
    const st = n.attrs.strides as readonly number[] | undefined;
    if (
      n.attrs.pads !== undefined ||
      !st ||
      st.some((v) => v !== k) ||
      (n.attrs.kernel_shape as readonly number[]).some((v) => v !== k)
    ) {
      fail(
        'gradients',
        `AveragePool gradient supports only square k×k windows with stride k and no pads (node output ${n.outputs[0].name})`,
      );
    }
    const g = g0(gys);
    return [op.upsampleNearest(op.mul(g, op.scalar(g, 1 / (k * k))), k)];
  },
  Exp: (n, gys) => [op.mul(g0(gys), n.outputs[0])],
  Abs: (n, gys) => [op.mul(g0(gys), op.sign(n.inputs[0]))],
  Neg: (_n, gys) => [op.neg(g0(gys))],
  Sqrt: (n, gys) => [op.mul(op.div(g0(gys), n.outputs[0]), op.scalar(n.outputs[0], 0.5))],
  ReduceSum: reduceRule('sum'),
  ReduceMean: reduceRule('mean'),
  ReduceSumSquare: reduceRule('sumsq'),
  Split: (n, gys, _need, e) => {
    const axis = n.attrs.axis as number;
    return [
      op.concat(
        n.outputs.map((o, i) => gys[i] ?? e.zerosOf(o)),
        axis,
      ),
      undefined,
    ];
  },
  Concat: (n, gys, need) => {
    const axis = n.attrs.axis as number;
    const parts = op.split(
      g0(gys),
      axis,
      n.inputs.map((x) => x.shape[axis] as number),
    );
    return parts.map((p, i) => (need[i] ? p : undefined));
  },
};

/**
 * Reverse-mode gradients d loss / d w for each w in `wrt`, appended to `loss.graph` as ordinary nodes.
 *
 * - `loss`: a float scalar (shape []). `wrt`: float values of the same graph (usually `graph.params`;
 *   inputs and intermediate values work too).
 * - Returns one value per w, with w's shape and dtype. A w the loss does not depend on gets zeros
 *   (`ConstantOfShape(Shape(w))`, which keeps w an input of the emitted model, so the same feeds work).
 * - Only nodes on a path from some w to the loss get backward nodes; int64/bool values, shape tensors and
 *   OneHot indices get none. Fan-out is summed (one `Sum` node per value). Backward nodes work with
 *   symbolic batch dims wherever the forward graph does.
 * - The weight gradient of x [..., m, k] · W [k, n] is one 2-D Gemm (x flattened to [rows, k], transA).
 *
 * - GELU built by `ops.gelu` gets one fused rule (the pattern is matched; semantics are unchanged).
 * - Conv (stride 1, dilation 1, group 1, symmetric pads) gets ConvTranspose / Conv / ReduceSum backward
 *   nodes; AveragePool (k×k, stride k) gets a nearest-neighbour Resize of g/k².
 *
 * The graph's nodes at the time of the call are the forward pass; calling it again (another loss or
 * wrt list) appends a separate set of backward nodes.
 * @throws when the loss is not a float scalar, a w belongs to another graph, a node on a path has no
 *   gradient rule (the message names the op), or the loss uses LayerNormalization's Mean/InvStdDev.
 */
export function gradients(loss: Value, wrt: readonly Value[]): Value[] {
  const g = loss.graph;
  if (loss.shape.length !== 0 || !isFloat(loss.dtype))
    fail('gradients', `loss must be a float scalar, got ${loss.dtype} ${shapeStr(loss.shape)}`);
  for (const w of wrt) {
    if (w.graph !== g) fail('gradients', `${w.name} belongs to another graph than the loss`);
    if (!isFloat(w.dtype)) fail('gradients', `${w.name} is ${w.dtype}; only float values have gradients`);
  }
  const nodes = g.nodes.slice();
  const e = new Emitter(g);

  // Values that depend differentiably on some w (forward sweep) and values the loss depends on (backward sweep).
  const wrtSet = new Set<Value>(wrt);
  const dep = new Set<Value>(wrt);
  for (const n of nodes) {
    if (ZERO_GRAD.has(n.op) || !n.inputs.some((x) => dep.has(x))) continue;
    for (const o of n.outputs) if (isFloat(o.dtype)) dep.add(o);
  }
  const anc = new Set<Value>([loss]);
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (nodes[i].outputs.some((o) => anc.has(o))) for (const x of nodes[i].inputs) anc.add(x);
  }

  const contribs = new Map<Value, Value[]>();
  const total = (v: Value): Value | undefined => {
    const list = contribs.get(v);
    if (!list) return undefined;
    if (list.length > 1) contribs.set(v, [op.sum(list)]);
    return contribs.get(v)![0];
  };
  const push = (x: Value, gx: Value) => {
    const list = contribs.get(x);
    if (list) list.push(gx);
    else contribs.set(x, [gx]);
  };
  if (dep.has(loss)) push(loss, op.scalar(loss, 1));

  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!n.outputs.some((o) => anc.has(o) && dep.has(o))) continue;
    const need = n.inputs.map((x) => dep.has(x) && isFloat(x.dtype));
    if (!need.some(Boolean)) continue;
    const gys = n.outputs.map((o) => (dep.has(o) ? total(o) : undefined));
    if (gys.every((gy) => gy === undefined)) continue;
    const gelu = matchGelu(n);
    if (
      gelu &&
      dep.has(gelu.x) &&
      !n.inputs.some((v) => wrtSet.has(v)) &&
      !wrtSet.has(gelu.m) &&
      !wrtSet.has(gelu.a.producer!.inputs[0])
    ) {
      // Fused GELU: the gradient goes straight to x; other uses of its internal values still flow normally.
      push(gelu.x, geluGrad(gys[0] as Value, gelu));
      continue;
    }
    const rule = RULES[n.op];
    if (!rule)
      fail(
        'gradients',
        `no gradient rule for op ${n.op} (node output ${n.outputs[0].name}); add one in autodiff.ts or keep it off the path to the loss`,
      );
    const gxs = rule(n, gys, need, e);
    n.inputs.forEach((x, j) => {
      const gx = gxs[j];
      if (!need[j] || !gx) return;
      if (!sameShape(gx.shape, x.shape) || gx.dtype !== x.dtype) {
        fail(
          'gradients',
          `${n.op} rule gave ${gx.dtype} ${shapeStr(gx.shape)} for input ${x.name} ${x.dtype} ${shapeStr(x.shape)}`,
        );
      }
      push(x, gx);
    });
  }
  return wrt.map((w) => total(w) ?? op.zerosLike(w));
}
