/**
 * Interprets a graph-IR `Graph` with TensorFlow.js ops, so the tfjs engine trains the SAME graph the
 * ort engine emits to ONNX (no second model definition); gradients come from tfjs autograd.
 *
 * ONNX opset-17 semantics (onnx/docs/Operators.md): numpy broadcasting, negative axes, int64 → int32
 * inside tfjs (tfjs has no int64), float64 → float32 (tfjs has no float64; outputs are widened back).
 * Ops whose tfjs gradient is missing on the wasm backend (Conv2DBackpropFilter, Gather's
 * UnsortedSegmentSum) are lowered into pad/slice/reshape/matmul expressions here, so every op is
 * differentiable on every backend. Everything runs inside tf.tidy: no tensors outlive a call.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type DType, type Graph, type Node, type TensorArray, type TensorData, type Value, fail } from './ir.js';
import { liveNodes } from './onnx.js';
import type { HostTensor } from './session.js';
import type { TfjsRuntime } from './tfjs-backend.js';

type Tf = TfjsRuntime['tf'];
type TfDType = 'float32' | 'int32' | 'bool';

const tfDType = (d: DType): TfDType => (d === 'int64' ? 'int32' : d === 'bool' ? 'bool' : 'float32');
const normAxis = (a: number, r: number) => (a < 0 ? a + r : a);
const range = (n: number) => [...Array(n).keys()];

/** Numpy broadcast of two static shapes. */
function broadcast(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return range(n).map((i) => {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da !== db && da !== 1 && db !== 1) fail(op, `cannot broadcast [${a}] with [${b}]`);
    return da === 1 ? db : da;
  });
}

/** Host data of a TensorData / HostTensor as a tfjs-compatible typed array. */
function toTfData(t: { dtype: DType; data: TensorArray }): Float32Array | Int32Array | Uint8Array {
  if (t.dtype === 'int64') return Int32Array.from(t.data as BigInt64Array, (v) => Number(v));
  if (t.dtype === 'bool') return t.data as Uint8Array;
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as Float64Array);
}

function toHost(v: Value, t: Tensor): HostTensor {
  const raw = t.dataSync();
  let data: TensorArray;
  if (v.dtype === 'int64') data = BigInt64Array.from(raw as Int32Array, (x) => BigInt(x));
  else if (v.dtype === 'bool') data = Uint8Array.from(raw as Uint8Array);
  else if (v.dtype === 'float64') data = Float64Array.from(raw as Float32Array);
  else data = raw instanceof Float32Array ? raw : Float32Array.from(raw as ArrayLike<number>);
  return { dtype: v.dtype, dims: [...t.shape], data };
}

/** Options of {@link TfjsGraph.create}. */
export interface TfjsGraphOptions {
  /**
   * Lower Conv to pad/slice/matmul (im2col) instead of tf.conv2d. Default: on for the wasm backend,
   * whose Conv2DBackpropFilter kernel is missing; native tf.conv2d elsewhere.
   */
  readonly lowerConv?: boolean;
}

/**
 * A compiled view of a graph for tfjs: the live nodes for the requested outputs, run by {@link run}
 * (forward) or {@link valueAndGrads} (forward + tfjs autograd w.r.t. every param).
 */
export class TfjsGraph {
  private constructor(
    private readonly rt: TfjsRuntime,
    private readonly graph: Graph,
    private readonly outputs: Readonly<Record<string, Value>>,
    private readonly nodes: readonly Node[],
    private readonly lowerConv: boolean,
    /** Constants uploaded once (freed by {@link dispose}). */
    private readonly consts: Map<Value, Tensor>,
  ) {}

  /**
   * Prepares `graph` for the given named outputs (only nodes they depend on run).
   * @throws Error naming the op and node for an op this interpreter does not know.
   */
  static create(
    rt: TfjsRuntime,
    graph: Graph,
    outputs: Readonly<Record<string, Value>>,
    opts: TfjsGraphOptions = {},
  ): TfjsGraph {
    const nodes = liveNodes(graph, Object.values(outputs));
    for (const n of nodes)
      if (!KNOWN.has(n.op))
        fail(
          n.op,
          `the tfjs interpreter has no implementation (node output ${n.outputs[0].name}); add it in src/graph/tfjs.ts`,
        );
    const used = new Set<Value>(Object.values(outputs));
    for (const n of nodes) for (const x of n.inputs) used.add(x);
    const consts = new Map<Value, Tensor>();
    for (const c of graph.consts)
      if (used.has(c) && c.data) consts.set(c, rt.tf.tensor(toTfData(c.data), [...c.data.dims], tfDType(c.dtype)));
    return new TfjsGraph(rt, graph, outputs, nodes, opts.lowerConv ?? rt.backend === 'wasm', consts);
  }

  /**
   * Forward pass. `feeds`: the graph's 'input' values by name (int64 labels as BigInt64Array);
   * `params`: every param the outputs use, by name, float32 of the param's shape.
   * @returns every requested output as a host tensor of the Value's dtype.
   * @throws Error naming a missing feed/param or a size mismatch.
   */
  run(
    feeds: Readonly<Record<string, HostTensor>>,
    params: Readonly<Record<string, Float32Array>>,
  ): Record<string, HostTensor> {
    const out: Record<string, HostTensor> = {};
    // Results leave tf.tidy through a closure: returning host arrays would make tidy walk every element.
    this.rt.tf.tidy(() => {
      const env = this.bind(feeds, params);
      this.forward(env);
      for (const [name, v] of Object.entries(this.outputs)) out[name] = toHost(v, this.get(env, v));
    });
    return out;
  }

  /**
   * Forward + reverse pass with tfjs autograd: the scalar output `loss`, every requested output (same
   * forward), and d loss / d p for every param p of the graph (zeros when the loss does not use p).
   * @throws Error when `loss` is not a scalar float output, or as {@link run}.
   */
  valueAndGrads(
    feeds: Readonly<Record<string, HostTensor>>,
    params: Readonly<Record<string, Float32Array>>,
    loss: string,
  ): { outputs: Record<string, HostTensor>; grads: Record<string, Float32Array> } {
    const tf = this.rt.tf;
    const lossValue = this.outputs[loss];
    if (!lossValue || lossValue.shape.length !== 0 || lossValue.dtype === 'int64' || lossValue.dtype === 'bool') {
      fail(
        'TfjsGraph',
        `loss "${loss}" must be a scalar float output (outputs: ${Object.keys(this.outputs).join(', ')})`,
      );
    }
    const kept: Tensor[] = [];
    const outputs: Record<string, HostTensor> = {};
    const out: Record<string, Float32Array> = {};
    try {
      tf.tidy(() => {
        const env = this.bind(feeds, params);
        const ps = this.graph.params.filter((p) => env.has(p));
        const xs = ps.map((p) => env.get(p)!);
        const { value, grads } = tf.engine().gradients(
          () => {
            this.forward(env);
            for (const v of Object.values(this.outputs)) if (v !== lossValue) kept.push(tf.keep(this.get(env, v)));
            return this.get(env, lossValue) as Tensor;
          },
          xs,
          undefined,
          true,
        );
        for (const [name, v] of Object.entries(this.outputs))
          outputs[name] = toHost(v, v === lossValue ? value : this.get(env, v));
        for (const p of this.graph.params)
          out[p.name] = new Float32Array(p.shape.reduce<number>((a, d) => a * (d as number), 1));
        ps.forEach((p, i) => {
          if (grads[i]) out[p.name] = grads[i].dataSync() as Float32Array;
        });
      });
    } finally {
      for (const t of kept) t.dispose();
    }
    return { outputs, grads: out };
  }

  /** Frees the constant tensors uploaded by {@link create}; the graph cannot run afterwards. */
  dispose(): void {
    for (const t of this.consts.values()) t.dispose();
    this.consts.clear();
  }

  private get(env: Map<Value, Tensor>, v: Value): Tensor {
    const t = env.get(v);
    if (!t) fail('TfjsGraph', `value ${v.name} (${v.kind}) has no tensor`);
    return t;
  }

  /** Creates tensors for the inputs, params and constants the live nodes use. */
  private bind(
    feeds: Readonly<Record<string, HostTensor>>,
    params: Readonly<Record<string, Float32Array>>,
  ): Map<Value, Tensor> {
    const tf = this.rt.tf;
    const used = new Set<Value>(Object.values(this.outputs));
    for (const n of this.nodes) for (const x of n.inputs) used.add(x);
    const env = new Map<Value, Tensor>();
    for (const v of this.graph.inputs) {
      if (!used.has(v)) continue;
      const f = feeds[v.name];
      if (!f) fail('TfjsGraph', `missing feed "${v.name}" (${v.dtype} [${v.shape.join(',')}])`);
      env.set(v, tf.tensor(toTfData(f), [...f.dims], tfDType(v.dtype)));
    }
    for (const p of this.graph.params) {
      if (!used.has(p)) continue;
      const data = params[p.name];
      const shape = p.shape as number[];
      const n = shape.reduce((a, d) => a * d, 1);
      if (!data) fail('TfjsGraph', `missing parameter "${p.name}" [${shape.join(',')}]`);
      if (data.length !== n)
        fail('TfjsGraph', `parameter "${p.name}" has ${data.length} values, its shape [${shape.join(',')}] needs ${n}`);
      env.set(p, tf.tensor(data, shape, 'float32'));
    }
    for (const [c, t] of this.consts) {
      if (t.isDisposed) fail('TfjsGraph', 'the graph was disposed');
      env.set(c, t);
    }
    return env;
  }

  private forward(env: Map<Value, Tensor>): void {
    // Shape operands (Reshape targets, Split sizes, axes …) are constants: read them on the host.
    const hostInts = (v: Value, t: Tensor | undefined): number[] =>
      v.kind === 'const' && v.data && v.dtype === 'int64' ? Array.from(v.data.data as BigInt64Array, Number) : ints(t);
    for (const n of this.nodes) {
      const ins = n.inputs.map((x) => env.get(x));
      let outs: Tensor[];
      try {
        outs = evalNode(this.rt.tf, n, ins, this.lowerConv, hostInts);
      } catch (e) {
        throw new Error(`tfjs ${n.op} (node output ${n.outputs[0].name}): ${(e as Error).message}`);
      }
      n.outputs.forEach((o, i) => {
        if (outs[i]) env.set(o, outs[i]);
      });
    }
  }
}

const KNOWN = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Min',
  'Max',
  'Pow',
  'Sum',
  'Less',
  'Greater',
  'Equal',
  'LessOrEqual',
  'GreaterOrEqual',
  'Where',
  'Abs',
  'Neg',
  'Sqrt',
  'Exp',
  'Log',
  'Erf',
  'Sign',
  'Sin',
  'Cos',
  'Tanh',
  'Sigmoid',
  'Relu',
  'Reciprocal',
  'Identity',
  'MatMul',
  'Gemm',
  'Reshape',
  'Transpose',
  'Unsqueeze',
  'Squeeze',
  'Flatten',
  'Expand',
  'Shape',
  'Size',
  'ConstantOfShape',
  'Cast',
  'Softmax',
  'LogSoftmax',
  'LayerNormalization',
  'ReduceSum',
  'ReduceMean',
  'ReduceSumSquare',
  'ReduceMax',
  'ReduceMin',
  'Split',
  'Concat',
  'Slice',
  'OneHot',
  'Gather',
  'Conv',
  'ConvTranspose',
  'AveragePool',
  'Resize',
]);

/** int64 / int32 tensor → host numbers (shape operands: constants or Shape outputs, small). */
const ints = (t: Tensor | undefined): number[] => (t ? Array.from(t.dataSync() as Int32Array, Number) : []);
const ax = (n: Node, name: string): readonly number[] | undefined => n.attrs[name] as readonly number[] | undefined;
const num = (n: Node, name: string, dflt: number): number => (n.attrs[name] as number | undefined) ?? dflt;

function evalNode(
  tf: Tf,
  n: Node,
  ins: (Tensor | undefined)[],
  lowerConv: boolean,
  host: (v: Value, t: Tensor | undefined) => number[],
): Tensor[] {
  const x = ins[0] as Tensor;
  const ints = (t: Tensor | undefined): number[] => {
    const i = ins.indexOf(t);
    return i >= 0 ? host(n.inputs[i], t) : [];
  };
  const outShape = () => n.outputs[0].shape;
  const bin = (f: (a: Tensor, b: Tensor) => Tensor) => [f(x, ins[1] as Tensor)];
  switch (n.op) {
    case 'Add':
      return bin(tf.add);
    case 'Sub':
      return bin(tf.sub);
    case 'Mul':
      return bin(tf.mul);
    case 'Div':
      return bin(tf.div);
    case 'Min':
      return [ins.slice(1).reduce<Tensor>((a, b) => tf.minimum(a, b as Tensor), x)];
    case 'Max':
      return [ins.slice(1).reduce<Tensor>((a, b) => tf.maximum(a, b as Tensor), x)];
    case 'Pow':
      return bin(tf.pow);
    case 'Sum':
      return [ins.slice(1).reduce<Tensor>((a, b) => tf.add(a, b as Tensor), x)];
    case 'Less':
      return bin(tf.less);
    case 'Greater':
      return bin(tf.greater);
    case 'Equal':
      return bin(tf.equal);
    case 'LessOrEqual':
      return bin(tf.lessEqual);
    case 'GreaterOrEqual':
      return bin(tf.greaterEqual);
    case 'Where': {
      const [c, a, b] = ins as Tensor[];
      const shape = broadcast('Where', broadcast('Where', c.shape, a.shape), b.shape);
      const bc = (t: Tensor) =>
        t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]) ? t : tf.broadcastTo(t, shape);
      return [tf.where(bc(c), bc(a), bc(b))];
    }
    case 'Abs':
      return [tf.abs(x)];
    case 'Neg':
      return [tf.neg(x)];
    case 'Sqrt':
      return [tf.sqrt(x)];
    case 'Exp':
      return [tf.exp(x)];
    case 'Log':
      return [tf.log(x)];
    case 'Erf':
      return [tf.erf(x)];
    case 'Sign':
      return [tf.sign(x)];
    case 'Sin':
      return [tf.sin(x)];
    case 'Cos':
      return [tf.cos(x)];
    case 'Tanh':
      return [tf.tanh(x)];
    case 'Sigmoid':
      return [tf.sigmoid(x)];
    case 'Relu':
      return [tf.relu(x)];
    case 'Reciprocal':
      return [tf.reciprocal(x)];
    case 'Identity':
      return [x];
    case 'MatMul':
      return [matmul(tf, x, ins[1] as Tensor)];
    case 'Gemm': {
      let y = tf.matMul(x, ins[1] as Tensor, num(n, 'transA', 0) === 1, num(n, 'transB', 0) === 1);
      const alpha = num(n, 'alpha', 1);
      const beta = num(n, 'beta', 1);
      if (alpha !== 1) y = tf.mul(y, alpha);
      if (ins[2]) y = tf.add(y, beta === 1 ? ins[2] : tf.mul(ins[2], beta));
      return [y];
    }
    case 'Reshape': {
      const target = ints(ins[1]).map((d, i) => (d === 0 ? x.shape[i] : d)); // ONNX: 0 copies the dim (allowzero = 0)
      return [tf.reshape(x, target)];
    }
    case 'Transpose':
      return [tf.transpose(x, [...(ax(n, 'perm') ?? range(x.rank).reverse())])];
    case 'Unsqueeze': {
      const axes = ins[1] ? ints(ins[1]) : [...(ax(n, 'axes') ?? [])];
      const r = x.rank + axes.length;
      const a = axes.map((v) => normAxis(v, r));
      const shape: number[] = [];
      let j = 0;
      for (let i = 0; i < r; i++) shape.push(a.includes(i) ? 1 : x.shape[j++]);
      return [tf.reshape(x, shape)];
    }
    case 'Squeeze': {
      const axes = (ins[1] ? ints(ins[1]) : [...(ax(n, 'axes') ?? [])]).map((v) => normAxis(v, x.rank));
      return [
        tf.reshape(
          x,
          x.shape.filter((d, i) => (axes.length ? !axes.includes(i) : d !== 1)),
        ),
      ];
    }
    case 'Flatten': {
      const a = normAxis(num(n, 'axis', 1), x.rank);
      const lead = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
      return [tf.reshape(x, [lead, -1])];
    }
    case 'Expand':
      return [tf.broadcastTo(x, broadcast('Expand', x.shape, ints(ins[1])))];
    case 'Shape':
      return [tf.tensor1d(x.shape, 'int32')];
    case 'Size':
      return [tf.scalar(x.size, 'int32')];
    case 'ConstantOfShape': {
      const v = n.attrs.value as TensorData | undefined;
      const fill = v ? Number(v.data[0]) : 0;
      return [tf.fill(ints(x), fill, tfDType(n.outputs[0].dtype))];
    }
    case 'Cast':
      return [tf.cast(x, tfDType(n.attrs.to as DType))];
    case 'Softmax':
    case 'LogSoftmax': {
      const a = normAxis(num(n, 'axis', -1), x.rank);
      const last = a === x.rank - 1;
      const xt = last ? x : tf.transpose(x, swap(x.rank, a));
      let y = n.op === 'Softmax' ? tf.softmax(xt) : tf.logSoftmax(xt);
      if (!last) y = tf.transpose(y, swap(x.rank, a));
      return [y];
    }
    case 'LayerNormalization': {
      // (x − μ)/√(σ² + ε)·scale + bias over axes [axis, rank); Mean and InvStdDev keep those dims as 1.
      const a = normAxis(num(n, 'axis', -1), x.rank);
      const axes = range(x.rank - a).map((i) => a + i);
      const mean = tf.mean(x, axes, true);
      const centred = tf.sub(x, mean);
      const invStd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), axes, true), num(n, 'epsilon', 1e-5)));
      let y = tf.mul(tf.mul(centred, invStd), ins[1] as Tensor);
      if (ins[2]) y = tf.add(y, ins[2]);
      return [y, mean, invStd];
    }
    case 'ReduceSum':
    case 'ReduceMean':
    case 'ReduceSumSquare':
    case 'ReduceMax':
    case 'ReduceMin': {
      let axes = (ins[1] ? ints(ins[1]) : [...(ax(n, 'axes') ?? [])]).map((v) => normAxis(v, x.rank));
      if (axes.length === 0) axes = range(x.rank); // ONNX: empty axes reduce everything (noop_with_empty_axes = 0)
      const keep = num(n, 'keepdims', 1) !== 0;
      const f = {
        ReduceSum: tf.sum,
        ReduceMean: tf.mean,
        ReduceMax: tf.max,
        ReduceMin: tf.min,
        ReduceSumSquare: tf.sum,
      }[n.op]!;
      return [f(n.op === 'ReduceSumSquare' ? tf.square(x) : x, axes, keep)];
    }
    case 'Split': {
      const a = normAxis(num(n, 'axis', 0), x.rank);
      const sizes = ins[1]
        ? ints(ins[1])
        : [...(ax(n, 'split') ?? Array(n.outputs.length).fill(x.shape[a] / n.outputs.length))];
      return tf.split(x, sizes, a);
    }
    case 'Concat':
      return [tf.concat(ins as Tensor[], normAxis(num(n, 'axis', 0), x.rank))];
    case 'Slice':
      return [
        slice(
          tf,
          x,
          ints(ins[1]),
          ints(ins[2]),
          ins[3] ? ints(ins[3]) : range(ints(ins[1]).length),
          ins[4] ? ints(ins[4]) : undefined,
        ),
      ];
    case 'OneHot': {
      const depth = ints(ins[1])[0];
      const [off, on] = Array.from(ins[2]!.dataSync() as Float32Array);
      // ONNX: [−depth, 0) counts from the back. Int scalars must be int32 tensors (a JS number makes float32).
      const idx = tf.where(tf.less(x, tf.scalar(0, 'int32')), tf.add(x, tf.scalar(depth, 'int32')), x);
      let y = oneHotOf(tf, idx, depth, on, off);
      const a = normAxis(num(n, 'axis', -1), x.rank + 1);
      if (a !== x.rank) y = tf.transpose(y, [...range(a), x.rank, ...range(x.rank - a).map((i) => a + i)]);
      return [y];
    }
    case 'Gather':
      return [gather(tf, x, ins[1] as Tensor, normAxis(num(n, 'axis', 0), x.rank))];
    case 'Conv': {
      const strides = ax(n, 'strides') ?? [1, 1];
      const dil = ax(n, 'dilations') ?? [1, 1];
      const pads = ax(n, 'pads') ?? [0, 0, 0, 0];
      if (num(n, 'group', 1) !== 1) fail('Conv', 'group ≠ 1 is not supported');
      if (n.attrs.auto_pad !== undefined && n.attrs.auto_pad !== 'NOTSET')
        fail('Conv', 'auto_pad is not supported; give explicit pads');
      return [conv(tf, x, ins[1] as Tensor, ins[2], strides, dil, pads, lowerConv)];
    }
    case 'ConvTranspose': {
      const strides = ax(n, 'strides') ?? [1, 1];
      const dil = ax(n, 'dilations') ?? [1, 1];
      if (
        strides.some((s) => s !== 1) ||
        dil.some((d) => d !== 1) ||
        num(n, 'group', 1) !== 1 ||
        ax(n, 'output_padding')?.some((v) => v !== 0)
      ) {
        fail('ConvTranspose', 'only stride 1, dilation 1, group 1, no output_padding');
      }
      // Stride-1 transposed conv = conv with the kernel flipped and in/out channels swapped, pads k − 1 − p.
      const w = ins[1] as Tensor;
      const [kh, kw] = w.shape.slice(2);
      const p = ax(n, 'pads') ?? [0, 0, 0, 0];
      const wf = tf.transpose(tf.reverse(w, [2, 3]), [1, 0, 2, 3]);
      const cp = [kh - 1 - p[0], kw - 1 - p[1], kh - 1 - p[2], kw - 1 - p[3]];
      return [conv(tf, x, wf, ins[2], [1, 1], [1, 1], cp, lowerConv)];
    }
    case 'AveragePool': {
      const k = ax(n, 'kernel_shape')!;
      const s = ax(n, 'strides') ?? [1, 1];
      const pads = ax(n, 'pads') ?? [0, 0, 0, 0];
      const [N, C, H, W] = x.shape;
      if (k[0] === s[0] && k[1] === s[1] && pads.every((v) => v === 0) && H % k[0] === 0 && W % k[1] === 0) {
        // Non-overlapping windows: a reshape and a mean (differentiable on every backend).
        return [tf.mean(tf.reshape(x, [N, C, H / k[0], k[0], W / k[1], k[1]]), [3, 5])];
      }
      if (pads.some((v) => v !== 0)) fail('AveragePool', 'pads with overlapping windows are not supported');
      const y = tf.avgPool(tf.transpose(x, [0, 2, 3, 1]) as never, [k[0], k[1]], [s[0], s[1]], 'valid');
      return [tf.transpose(y, [0, 3, 1, 2])];
    }
    case 'Resize': {
      const scales =
        ins[2] && ins[2].size > 0
          ? Array.from(ins[2].dataSync() as Float32Array)
          : ints(ins[3]).map((d, i) => d / x.shape[i]);
      const mode = (n.attrs.mode as string | undefined) ?? 'nearest';
      const ctm = (n.attrs.coordinate_transformation_mode as string | undefined) ?? 'half_pixel';
      const nm = (n.attrs.nearest_mode as string | undefined) ?? 'round_prefer_floor';
      if (
        mode !== 'nearest' ||
        ctm !== 'asymmetric' ||
        nm !== 'floor' ||
        scales.some((v) => !Number.isInteger(v) || v < 1)
      ) {
        fail(
          'Resize',
          `only nearest/asymmetric/floor upsampling by integer factors, got ${mode}/${ctm}/${nm} scales [${scales}]`,
        );
      }
      // y[..., i·k + a, ...] = x[..., i, ...]: insert a size-k axis after every dim, broadcast, merge.
      const inter = x.shape.flatMap((d) => [d, 1]);
      const full = x.shape.flatMap((d, i) => [d, scales[i]]);
      return [
        tf.reshape(
          tf.broadcastTo(tf.reshape(x, inter), full),
          x.shape.map((d, i) => d * scales[i]),
        ),
      ];
    }
    default:
      return fail(n.op, `no tfjs implementation (output shape [${outShape().join(',')}])`);
  }
}

/**
 * Numpy matmul [..., m, k] × [..., k, n]. tfjs's BatchMatMul gradient does not sum over broadcast
 * batch dims (it returns a [B, k, n] gradient for a [k, n] operand), so a 2-D right operand is applied
 * to a flattened [rows, k] left one, and other broadcasts are made explicit (broadcastTo sums back).
 */
function matmul(tf: Tf, a: Tensor, b: Tensor): Tensor {
  if (b.rank === 2 && a.rank > 2) {
    const lead = a.shape.slice(0, -1);
    const y = tf.matMul(tf.reshape(a, [-1, a.shape[a.rank - 1]]), b);
    return tf.reshape(y, [...lead, b.shape[1] as number]);
  }
  const batch = broadcast('MatMul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const full = (t: Tensor) => {
    const shape = [...batch, ...t.shape.slice(-2)];
    return t.rank === shape.length && t.shape.every((d, i) => d === shape[i]) ? t : tf.broadcastTo(t, shape);
  };
  return tf.matMul(full(a), full(b));
}

/** Permutation swapping axis a with the last axis. */
function swap(rank: number, a: number): number[] {
  const p = range(rank);
  [p[a], p[rank - 1]] = [p[rank - 1], p[a]];
  return p;
}

/**
 * ONNX Slice. Steps ≠ 1 use a reshape trick (slice, pad to a multiple of the step, reshape, take index
 * 0) so the result stays differentiable; negative steps reverse first.
 */
function slice(tf: Tf, x: Tensor, starts: number[], ends: number[], axes: number[], steps?: number[]): Tensor {
  let y = x;
  axes.forEach((a0, i) => {
    const a = normAxis(a0, x.rank);
    const d = y.shape[a];
    let step = steps?.[i] ?? 1;
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    let s = starts[i] < 0 ? starts[i] + d : starts[i];
    let e = ends[i] < 0 ? ends[i] + d : ends[i];
    if (step < 0) {
      // Reverse the axis and mirror the indices: positions d−1−s … d−1−e with a positive step.
      s = clamp(s, -1, d - 1);
      e = clamp(e, -1, d - 1);
      y = tf.reverse(y, [a]);
      [s, e, step] = [d - 1 - s, d - 1 - e, -step];
    } else {
      s = clamp(s, 0, d);
      e = clamp(e, 0, d);
    }
    const len = Math.max(0, e - s);
    const begin = y.shape.map((_, j) => (j === a ? s : 0));
    const size = y.shape.map((dd, j) => (j === a ? len : dd));
    y = tf.slice(y, begin, size);
    if (step > 1 && len > 0) y = takeEvery(tf, y, a, step);
  });
  return y;
}

/** Every `step`-th element along axis a, starting at 0 (differentiable: pad, reshape, slice). */
function takeEvery(tf: Tf, y: Tensor, a: number, step: number): Tensor {
  const len = y.shape[a];
  const m = Math.ceil(len / step);
  const padded =
    m * step === len
      ? y
      : tf.pad(y, y.shape.map((_, j) => (j === a ? [0, m * step - len] : [0, 0])) as Array<[number, number]>);
  const split = [...padded.shape.slice(0, a), m, step, ...padded.shape.slice(a + 1)];
  const r = tf.reshape(padded, split);
  const begin = split.map(() => 0);
  const size = split.map((d, j) => (j === a + 1 ? 1 : d));
  return tf.reshape(tf.slice(r, begin, size), [...padded.shape.slice(0, a), m, ...padded.shape.slice(a + 1)]);
}

/**
 * One-hot [..., depth] of integer indices as equal(idx, range(depth)): tf.oneHot with a float32 dtype
 * returns all zeros on the wasm backend (4.22.0). Indices outside [0, depth) give all-`off` rows.
 */
function oneHotOf(
  tf: Tf,
  idx: Tensor,
  depth: number,
  on: number,
  off: number,
  dtype: 'float32' | 'int32' = 'float32',
): Tensor {
  const hit = tf.equal(tf.expandDims(tf.cast(idx, 'int32'), -1), tf.range(0, depth, 1, 'int32'));
  const y = tf.cast(hit, dtype);
  return on === 1 && off === 0 ? y : tf.add(tf.mul(y, on - off), off);
}

/** ONNX Gather as oneHot(indices)·data (tfjs's gather gradient needs UnsortedSegmentSum, missing on wasm). */
function gather(tf: Tf, data: Tensor, indices: Tensor, a: number): Tensor {
  const d = data.shape[a];
  const idx = tf.where(tf.less(indices, tf.scalar(0, 'int32')), tf.add(indices, tf.scalar(d, 'int32')), indices);
  const moved = a === 0 ? data : tf.transpose(data, [a, ...range(data.rank).filter((i) => i !== a)]);
  const rest = moved.shape.slice(1);
  const flat = tf.reshape(moved, [d, rest.reduce((p, v) => p * v, 1)]);
  const oh = oneHotOf(tf, tf.reshape(idx, [-1]), d, 1, 0, data.dtype === 'int32' ? 'int32' : 'float32');
  const picked = tf.reshape(tf.matMul(oh as Tensor, flat), [...indices.shape, ...rest]);
  if (a === 0) return picked;
  // Output dims: data[:a] + indices + data[a+1:]; picked is indices + data[:a] + data[a+1:].
  const ri = indices.rank;
  const perm = [...range(a).map((i) => ri + i), ...range(ri), ...range(data.rank - 1 - a).map((i) => ri + a + i)];
  return tf.transpose(picked, perm);
}

/**
 * ONNX Conv (NCHW, group 1): x [N,C,H,W], w [O,C,kH,kW], b [O] → [N,O,Ho,Wo] with pads
 * [top, left, bottom, right]. `lower`: im2col — pad, take the kH·kW shifted (strided) windows with
 * slices, stack them, one matmul with w as [C·kH·kW, O]; differentiable with basic ops only.
 */
function conv(
  tf: Tf,
  x: Tensor,
  w: Tensor,
  b: Tensor | undefined,
  strides: readonly number[],
  dil: readonly number[],
  pads: readonly number[],
  lower: boolean,
): Tensor {
  const [N, C, H, W] = x.shape;
  const [O, C2, kh, kw] = w.shape;
  if (C !== C2) fail('Conv', `input channels ${C} ≠ kernel channels ${C2}`);
  const Hp = H + pads[0] + pads[2];
  const Wp = W + pads[1] + pads[3];
  const Ho = Math.floor((Hp - dil[0] * (kh - 1) - 1) / strides[0]) + 1;
  const Wo = Math.floor((Wp - dil[1] * (kw - 1) - 1) / strides[1]) + 1;
  let y: Tensor;
  if (!lower) {
    const xh = tf.transpose(x, [0, 2, 3, 1]);
    const padded = pads.some((p) => p !== 0)
      ? tf.pad(xh, [
          [0, 0],
          [pads[0], pads[2]],
          [pads[1], pads[3]],
          [0, 0],
        ])
      : xh;
    const wh = tf.transpose(w, [2, 3, 1, 0]); // [kH,kW,C,O]
    y = tf.transpose(
      tf.conv2d(padded as never, wh as never, [strides[0], strides[1]], 'valid', 'NHWC', [dil[0], dil[1]]),
      [0, 3, 1, 2],
    );
  } else {
    // Crop or pad so the window arithmetic needs no negative offsets (ONNX allows negative pads).
    const xp = tf.pad(x, [
      [0, 0],
      [0, 0],
      [Math.max(0, pads[0]), Math.max(0, pads[2])],
      [Math.max(0, pads[1]), Math.max(0, pads[3])],
    ]);
    const xs = pads.some((p) => p < 0)
      ? tf.slice(xp, [0, 0, Math.max(0, -pads[0]), Math.max(0, -pads[1])], [N, C, Hp, Wp])
      : xp;
    const cols: Tensor[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        let win = tf.slice(
          xs,
          [0, 0, i * dil[0], j * dil[1]],
          [N, C, (Ho - 1) * strides[0] + 1, (Wo - 1) * strides[1] + 1],
        );
        if (strides[0] > 1) win = takeEvery(tf, win, 2, strides[0]);
        if (strides[1] > 1) win = takeEvery(tf, win, 3, strides[1]);
        cols.push(win); // [N,C,Ho,Wo]
      }
    }
    const stacked = tf.stack(cols, 2); // [N,C,kh·kw,Ho,Wo], row (c, i, j) matches w's layout
    const patches = tf.reshape(tf.transpose(stacked, [0, 3, 4, 1, 2]), [N * Ho * Wo, C * kh * kw]);
    const out = tf.matMul(patches, tf.reshape(w, [O, C * kh * kw]), false, true); // [N·Ho·Wo, O]
    y = tf.transpose(tf.reshape(out, [N, Ho, Wo, O]), [0, 3, 1, 2]);
  }
  return b ? tf.add(y, tf.reshape(b, [1, O, 1, 1])) : y;
}
