/**
 * Reverse-mode automatic differentiation on the graph IR: `gradients(loss, wrt)` appends the backward
 * nodes to the loss's graph (ordinary ONNX opset-17 ops), so one emitted model computes the loss and
 * its gradients in one run (training: `toOnnx(g, { outputs: { loss, ...grads } })`, params as inputs).
 *
 * The gradient rules live with their ops (ops/*.ts, looked up in ops/registry.ts) and follow the ONNX
 * semantics of each forward op (onnx/docs/Operators.md, opset 17); this file is the driver plus the
 * `Emitter` the rules build with. Checked against central finite differences of the float64
 * interpreter in `reference.ts` (test/graph/).
 */
import { broadcastAxes } from './broadcast.js';
import { type Dim, type DType, type Graph, type Value, fail, shapeStr } from './ir.js';
import * as op from './ops.js';
import { type Emitter as GradEmitter, int64Const, range } from './ops/core.js';
import { geluGrad, matchGelu } from './ops/gelu.js';
import { opDef } from './ops/registry.js';

const isFloat = (t: DType) => t === 'float32' || t === 'float64';
const isStatic = (s: readonly Dim[]): s is readonly number[] => s.every((d) => typeof d === 'number');
const sameShape = (a: readonly Dim[], b: readonly Dim[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Backward-node helpers for the gradient rules, with peepholes that keep the emitted graph small. */
export class Emitter implements GradEmitter {
  private readonly memo = new Map<string, Value>();
  constructor(readonly graph: Graph) {}

  private cached(key: string, make: () => Value): Value {
    let v = this.memo.get(key);
    if (!v) this.memo.set(key, (v = make()));
    return v;
  }

  /**
   * x reshaped to `shape`; collapses Reshape chains; `like` supplies the shape at run time when `shape`
   * has several symbolic dims.
   */
  reshape(x: Value, shape: readonly Dim[], like?: Value): Value {
    let src = x;
    while (src.producer?.op === 'Reshape') src = src.producer.inputs[0];
    if (sameShape(x.shape, shape)) return x;
    if (sameShape(src.shape, shape)) return src;
    return this.cached(`reshape:${src.id}:${shape.join(',')}`, () => {
      if (shape.filter((d) => typeof d === 'string' || d === -1).length <= 1) return op.reshape(src, shape);
      if (!like)
        fail('gradients', `cannot reshape ${shapeStr(src.shape)} to ${shapeStr(shape)} without a runtime shape`);
      return op.reshapeLike(src, like, shape);
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
    const { lead, ones } = broadcastAxes(g.shape, target);
    if (lead === 0 && ones.length === 0) fail('gradients', `cannot reduce ${shapeStr(g.shape)} to ${shapeStr(target)}`);
    if (ones.length === 0) return op.reduceSum(g, range(lead), false);
    if (lead === 0) return op.reduceSum(g, ones, true);
    return this.reshape(op.reduceSum(g, [...range(lead), ...ones], false), target, like);
  }

  /** Broadcast v to `like`'s shape (a constant shape when static, else Shape(like)). */
  expandTo(v: Value, like: Value): Value {
    if (sameShape(v.shape, like.shape)) return v;
    const shape = isStatic(like.shape) ? int64Const(like, like.shape, 'expand_shape') : op.shapeOf(like);
    return op.expand(v, shape, like.shape);
  }

  /** Zeros of v's shape and dtype (no run-time dependency on v when its shape is static). */
  zerosOf(v: Value): Value {
    if (!isStatic(v.shape)) return op.zerosLike(v);
    return op.zerosOfShape(v, int64Const(v, v.shape, 'zeros_shape'), v.shape);
  }

  /** Number of elements reduced by a Reduce node (x → y) as a scalar of x's dtype. */
  reducedCount(x: Value, y: Value, axes: readonly number[]): Value {
    const dims = axes.map((a) => x.shape[a]);
    if (isStatic(dims))
      return op.scalar(
        x,
        (dims as number[]).reduce((p, d) => p * d, 1),
      );
    const size = (v: Value) => op.cast(op.size(v), x.dtype);
    return op.div(size(x), size(y));
  }
}

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
 * - Ops marked `'zero'` in the registry (comparisons, Sign, Shape, OneHot, ReduceMax …) pass nothing back.
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
    if (opDef(n.op)?.grad === 'zero' || !n.inputs.some((x) => dep.has(x))) continue;
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
    const rule = opDef(n.op)?.grad;
    if (typeof rule !== 'function')
      fail(
        'gradients',
        `no gradient rule for op ${n.op} (node output ${n.outputs[0].name}); ` +
          'add one to its file in src/graph/ops/ or keep it off the path to the loss',
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
