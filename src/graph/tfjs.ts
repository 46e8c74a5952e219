/**
 * Interprets a graph-IR `Graph` with TensorFlow.js ops, so the tfjs engine trains the SAME graph the
 * ort engine emits to ONNX (no second model definition); gradients come from tfjs autograd.
 *
 * ONNX opset-17 semantics (onnx/docs/Operators.md): numpy broadcasting, negative axes, int64 → int32
 * inside tfjs (tfjs has no int64), float64 → float32 (tfjs has no float64; outputs are widened back).
 * Each op's mapping lives in its file under ops/ (looked up in ops/registry.ts); this is the driver.
 * Ops whose tfjs gradient is missing on the wasm backend (Conv2DBackpropFilter) are lowered into
 * pad/slice/reshape/matmul expressions there, so every op is differentiable on every backend.
 * Everything runs inside tf.tidy: no tensors outlive a call.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type DType, type Graph, type Node, type TensorArray, type Value, fail } from './ir.js';
import { liveNodes } from './onnx.js';
import { type TfjsContext, tfDType } from './ops/core.js';
import { opDef } from './ops/registry.js';
import type { HostTensor } from './session.js';
import type { TfjsRuntime } from './tfjs-backend.js';

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
      if (!opDef(n.op))
        fail(
          n.op,
          `the tfjs interpreter has no implementation (node output ${n.outputs[0].name}); ` +
            'add the op to src/graph/ops/',
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
    for (const n of this.nodes) {
      const ins = n.inputs.map((x) => env.get(x));
      // Shape operands (Reshape targets, Split sizes, axes …) are constants: read them on the host.
      const ctx: TfjsContext = {
        lowerConv: this.lowerConv,
        ints: (i) => {
          const v = n.inputs[i];
          if (v.kind === 'const' && v.data && v.dtype === 'int64')
            return Array.from(v.data.data as BigInt64Array, Number);
          const t = ins[i];
          return t ? Array.from(t.dataSync() as Int32Array, Number) : [];
        },
      };
      let outs: Tensor[];
      try {
        outs = opDef(n.op)!.tfjs(this.rt.tf, ins, n, ctx);
      } catch (e) {
        throw new Error(`tfjs ${n.op} (node output ${n.outputs[0].name}): ${(e as Error).message}`, { cause: e });
      }
      n.outputs.forEach((o, i) => {
        if (outs[i]) env.set(o, outs[i]);
      });
    }
  }
}
