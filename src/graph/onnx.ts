/**
 * Emission of a `Graph` to an ONNX ModelProto (opset 17) with `onnx-proto`.
 *
 * Parameters become graph inputs (training: their values are fed on every step) or initialisers
 * (export: the EMA weights are baked in). Only nodes that the requested outputs depend on are emitted.
 * Source: onnx/onnx `onnx/onnx.proto` (IR version 8 is accepted by onnxruntime 1.30).
 */
import onnxProto from 'onnx-proto';
import { type DType, type Graph, type Node, type TensorData, type Value, fail } from './ir.js';

const { onnx } = onnxProto;
export const OPSET = 17;
export const IR_VERSION = 8;

const DT = onnx.TensorProto.DataType;
const onnxDType: Record<DType, number> = { float32: DT.FLOAT, float64: DT.DOUBLE, int64: DT.INT64, bool: DT.BOOL };

function tensorProto(name: string, t: TensorData): onnxProto.onnx.ITensorProto {
  const buf = t.data;
  return {
    name,
    dims: [...t.dims],
    dataType: onnxDType[t.dtype],
    rawData: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength),
  };
}

function valueInfo(v: Value): onnxProto.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: onnxDType[v.dtype],
        shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: Node['attrs'][string], op: string): onnxProto.onnx.IAttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    return Number.isInteger(v) && name !== 'epsilon' && name !== 'alpha' && name !== 'beta'
      ? { name, type: A.INT, i: v }
      : { name, type: A.FLOAT, f: v };
  }
  if (typeof v === 'string') {
    if (name === 'to') return { name, type: A.INT, i: onnxDType[v as DType] };
    return { name, type: A.STRING, s: new TextEncoder().encode(v) };
  }
  if (Array.isArray(v)) return { name, type: A.INTS, ints: [...(v as number[])] };
  if (typeof v === 'object' && v !== null && 'dims' in v)
    return { name, type: A.TENSOR, t: tensorProto(name, v as TensorData) };
  return fail(op, `unsupported attribute ${name}`);
}

/** The nodes (in order) needed to compute `outputs`. */
export function liveNodes(g: Graph, outputs: readonly Value[]): Node[] {
  const need = new Set<Value>(outputs);
  const live = new Set<Node>();
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (n.outputs.some((o) => need.has(o))) {
      live.add(n);
      for (const x of n.inputs) need.add(x);
    }
  }
  return g.nodes.filter((n) => live.has(n));
}

export interface EmitOptions {
  /** Values the model returns, with optional public names (e.g. `{ image: x }`). */
  readonly outputs: Readonly<Record<string, Value>>;
  /** When given, parameters become initialisers with these values; otherwise they are inputs. */
  readonly paramValues?: (p: Value) => Float32Array;
  readonly docString?: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * Serialises the graph to ONNX bytes.
 * @throws when an output name collides or a parameter has no value in `paramValues` mode.
 */
export function toOnnx(g: Graph, opts: EmitOptions): Uint8Array {
  const outs = Object.entries(opts.outputs);
  const nodes = liveNodes(
    g,
    outs.map(([, v]) => v),
  );
  const used = new Set<Value>();
  for (const n of nodes) for (const x of n.inputs) used.add(x);
  for (const [, v] of outs) used.add(v);

  // Outputs keep their public name; an Identity renames when the value has another name.
  const taken = new Set<string>([...g.inputs, ...g.params, ...g.consts].filter((v) => used.has(v)).map((v) => v.name));
  for (const n of nodes) for (const o of n.outputs) taken.add(o.name);
  const renames: onnxProto.onnx.INodeProto[] = [];
  const outputInfos = outs.map(([name, v]) => {
    if (v.name !== name && taken.has(name))
      fail(
        'toOnnx',
        `output name ${name} is already the name of another value in the graph; choose another output name`,
      );
    if (v.name !== name) renames.push({ opType: 'Identity', input: [v.name], output: [name], name: `out_${name}` });
    return { ...valueInfo(v), name };
  });

  const initializer: onnxProto.onnx.ITensorProto[] = [];
  const inputs: onnxProto.onnx.IValueInfoProto[] = [];
  for (const v of g.inputs) if (used.has(v)) inputs.push(valueInfo(v));
  for (const p of g.params) {
    if (!used.has(p)) continue;
    if (opts.paramValues) {
      const data = opts.paramValues(p);
      if (data.length !== p.shape.reduce<number>((a, d) => a * (d as number), 1))
        fail('toOnnx', `parameter ${p.name} has ${data.length} values`);
      initializer.push(tensorProto(p.name, { dtype: 'float32', dims: p.shape as number[], data }));
    } else inputs.push(valueInfo(p));
  }
  for (const c of g.consts) if (used.has(c) && c.data) initializer.push(tensorProto(c.name, c.data));

  const nodeProtos: onnxProto.onnx.INodeProto[] = nodes.map((n, i) => {
    const input = n.inputs.map((x) => x.name);
    let attrs = Object.entries(n.attrs);
    if (n.op === 'ReduceSum') {
      // Opset 13+ takes ReduceSum's axes as an input (ReduceMean/ReduceSumSquare keep the attribute until 18).
      const axes = (n.attrs.axes as number[]) ?? [];
      const name = `${n.outputs[0].name}_axes`;
      initializer.push(
        tensorProto(name, { dtype: 'int64', dims: [axes.length], data: BigInt64Array.from(axes.map(BigInt)) }),
      );
      input.push(name);
      attrs = attrs.filter(([k]) => k !== 'axes');
    }
    return {
      opType: n.op,
      name: `${n.op}_${i}`,
      input,
      output: n.outputs.map((o) => o.name),
      attribute: attrs.map(([k, v]) => attribute(k, v, n.op)),
    };
  });

  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'get-distill',
    docString: opts.docString ?? '',
    opsetImport: [{ domain: '', version: OPSET }],
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: { name: g.name, node: [...nodeProtos, ...renames], input: inputs, output: outputInfos, initializer },
  });
  return onnx.ModelProto.encode(model).finish();
}
