/**
 * Reading an ONNX model's signature (graph inputs and outputs, with dtypes and static or symbolic
 * dims) and its metadata_props, without running it. Used to describe exported models (the inference
 * service's model metadata) and to check models given by users.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** ONNX element type → the name used by the Open Inference Protocol and onnxruntime. */
const DTYPES: Readonly<Record<number, string>> = {
  [onnx.TensorProto.DataType.FLOAT]: 'float32',
  [onnx.TensorProto.DataType.DOUBLE]: 'float64',
  [onnx.TensorProto.DataType.INT64]: 'int64',
  [onnx.TensorProto.DataType.INT32]: 'int32',
  [onnx.TensorProto.DataType.UINT8]: 'uint8',
  [onnx.TensorProto.DataType.BOOL]: 'bool',
};

/** One graph input or output: dims are numbers (static) or strings (symbolic, e.g. `batch`). */
export interface TensorSignature {
  readonly name: string;
  /** `float32`, `int64`, … (`elem<N>` for types this project does not use). */
  readonly dtype: string;
  readonly dims: readonly (number | string)[];
}

export interface OnnxSignature {
  /** Graph inputs that are not initialisers. */
  readonly inputs: readonly TensorSignature[];
  readonly outputs: readonly TensorSignature[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly opset: number;
}

function signature(v: onnxProto.onnx.IValueInfoProto): TensorSignature {
  const t = v.type?.tensorType;
  const elem = t?.elemType ?? 0;
  // dim_value and dim_param are a oneof; protobufjs puts defaults on the prototype, so test own properties.
  const dims = (t?.shape?.dim ?? []).map((d) =>
    Object.hasOwn(d, 'dimValue') && d.dimValue != null ? Number(String(d.dimValue)) : String(d.dimParam ?? '?'),
  );
  return { name: v.name ?? '', dtype: DTYPES[elem] ?? `elem${elem}`, dims };
}

/**
 * Decodes the model's inputs, outputs, metadata and default-domain opset.
 * @throws Error `<source>: not an ONNX model (…)` when the bytes do not decode or hold no graph.
 */
export function readOnnxSignature(bytes: Uint8Array, source: string): OnnxSignature {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(`${source}: not an ONNX model (${(e as Error).message})`);
  }
  const g = model.graph;
  if (!g) throw new Error(`${source}: not an ONNX model (no graph)`);
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  return {
    inputs: (g.input ?? []).filter((v) => !inits.has(v.name ?? '')).map(signature),
    outputs: (g.output ?? []).map(signature),
    metadata: Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
    opset: Number(String((model.opsetImport ?? []).find((o) => !o.domain)?.version ?? 0)),
  };
}
