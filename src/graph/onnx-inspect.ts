/**
 * Reading an ONNX model's signature (graph inputs and outputs, with dtypes and static or symbolic
 * dims) and its metadata_props, without running it; and structural validation of an exported model
 * (validateOnnx), which also runs it. Used to describe exported models (the inference service's
 * model metadata), to check models given by users, and by the export stage before it writes.
 */
import onnxProto from 'onnx-proto';
import type { DType, TensorArray } from './ir.js';
import { OPSET } from './onnx.js';
import type { HostTensor, OrtSession } from './session.js';

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
  const model = decodeModel(bytes, source);
  const g = model.graph!;
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  return {
    inputs: (g.input ?? []).filter((v) => !inits.has(v.name ?? '')).map(signature),
    outputs: (g.output ?? []).map(signature),
    metadata: Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
    opset: Number(String((model.opsetImport ?? []).find((o) => !o.domain)?.version ?? 0)),
  };
}

function decodeModel(bytes: Uint8Array, source: string): onnxProto.onnx.ModelProto {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(`${source}: not an ONNX model (${(e as Error).message})`, { cause: e });
  }
  if (!model.graph) throw new Error(`${source}: not an ONNX model (no graph)`);
  return model;
}

/** Bytes per element of the element types an initialiser may have here. */
const ELEM_BYTES: Readonly<Record<number, number>> = {
  [onnx.TensorProto.DataType.FLOAT]: 4,
  [onnx.TensorProto.DataType.DOUBLE]: 8,
  [onnx.TensorProto.DataType.INT64]: 8,
  [onnx.TensorProto.DataType.INT32]: 4,
  [onnx.TensorProto.DataType.UINT8]: 1,
  [onnx.TensorProto.DataType.BOOL]: 1,
};

/** Elements stored in an initialiser: raw bytes / element size, or the length of its typed field. */
function storedElements(t: onnxProto.onnx.ITensorProto): number | null {
  const size = ELEM_BYTES[t.dataType ?? 0];
  if (size === undefined) return null;
  if (t.rawData && t.rawData.length > 0) return t.rawData.length / size;
  const typed = [t.floatData, t.doubleData, t.int64Data, t.int32Data].find((a) => a && a.length > 0);
  return typed?.length ?? 0;
}

/** Zero-filled host tensor of a graph input, or null for a dtype the runtime feeds here cannot make. */
function zeros(dtype: string, dims: number[]): HostTensor | null {
  const n = dims.reduce((a, b) => a * b, 1);
  const make: Partial<Record<DType, () => TensorArray>> = {
    float32: () => new Float32Array(n),
    float64: () => new Float64Array(n),
    int64: () => new BigInt64Array(n),
    bool: () => new Uint8Array(n),
  };
  const f = make[dtype as DType];
  return f ? { dtype: dtype as DType, dims, data: f() } : null;
}

/** What validateOnnx checked. */
export interface OnnxValidation {
  readonly nodes: number;
  readonly initializers: number;
  /** Float elements in initialisers (weights and constants). */
  readonly initializerElements: number;
  /** Output dims observed at each batch size run, e.g. `{ 1: { image: [1,1,32,32] }, 3: … }`. */
  readonly observed: Readonly<Record<number, Readonly<Record<string, readonly number[]>>>>;
}

/** Batch sizes validateOnnx runs: 1 and a second one, so a batch fixed at 1 anywhere fails. */
export const VALIDATION_BATCHES = [1, 3] as const;

/**
 * Structural validation of a model with a symbolic batch dim named `batch` (the export contract):
 * decodes it; checks the default-domain opset is 17; initialiser names are unique and each one's data
 * holds exactly product(dims) elements; nodes are in topological order (every input is a graph input,
 * an initialiser or an earlier node's output) and no value is produced twice; every graph output is
 * produced and has a declared shape. Then loads it in onnxruntime and runs it with zero inputs at
 * batch 1 and 3 (inputs' `batch` dims substituted), checking each output's dims equal the declared
 * ones with `batch` substituted and that float outputs are finite: the shapes infer and the batch
 * really is dynamic.
 * @throws Error `<source>: …` naming the node, tensor or output at fault.
 */
export async function validateOnnx(bytes: Uint8Array, source: string): Promise<OnnxValidation> {
  const model = decodeModel(bytes, source);
  const g = model.graph!;
  const opset = Number(String((model.opsetImport ?? []).find((o) => !o.domain)?.version ?? 0));
  if (opset !== OPSET) throw new Error(`${source}: default-domain opset is ${opset}, expected ${OPSET}`);

  const defined = new Map<string, string>(); // value name → what defines it
  let initializerElements = 0;
  for (const t of g.initializer ?? []) {
    const name = t.name ?? '';
    if (defined.has(name)) throw new Error(`${source}: initializer '${name}' is defined twice`);
    defined.set(name, 'an initializer');
    const dims = (t.dims ?? []).map((d) => Number(String(d)));
    const want = dims.reduce((a, b) => a * b, 1);
    const got = storedElements(t);
    if (got === null)
      throw new Error(
        `${source}: initializer '${name}' has element type ${t.dataType}, which this project never emits`,
      );
    if (got !== want)
      throw new Error(
        `${source}: initializer '${name}' [${dims.join(',')}] should hold ${want} elements, its data holds ${got}`,
      );
    if (t.dataType === onnx.TensorProto.DataType.FLOAT) initializerElements += want;
  }
  for (const v of g.input ?? []) if (!defined.has(v.name ?? '')) defined.set(v.name ?? '', 'a graph input');
  for (const [i, n] of (g.node ?? []).entries()) {
    const label = `node ${n.name || `#${i}`} (${n.opType})`;
    for (const x of n.input ?? []) {
      if (x !== '' && !defined.has(x))
        throw new Error(
          `${source}: ${label} input '${x}' is not a graph input, an initializer or an earlier node's output`,
        );
    }
    for (const y of n.output ?? []) {
      if (y === '') continue;
      const prior = defined.get(y);
      if (prior) throw new Error(`${source}: ${label} output '${y}' is already ${prior}`);
      defined.set(y, `the output of ${label}`);
    }
  }
  const sig = readOnnxSignature(bytes, source);
  for (const o of g.output ?? []) {
    if (!defined.has(o.name ?? '')) throw new Error(`${source}: graph output '${o.name}' is not produced by any node`);
    if (!o.type?.tensorType?.shape) throw new Error(`${source}: graph output '${o.name}' declares no shape`);
  }
  for (const v of sig.inputs) {
    const other = v.dims.find((d) => typeof d === 'string' && d !== 'batch');
    if (other !== undefined)
      throw new Error(`${source}: input '${v.name}' has symbolic dim '${other}'; only 'batch' is supported`);
  }

  // Loaded here, so reading a signature never loads the native runtime.
  const { OrtSession: Session } = await import('./session.js');
  let session: OrtSession;
  try {
    session = await Session.create(bytes, { threads: 1 });
  } catch (e) {
    throw new Error(`${source}: onnxruntime cannot load the model (${(e as Error).message.split('\n')[0]})`, {
      cause: e,
    });
  }
  const observed: Record<number, Record<string, number[]>> = {};
  try {
    for (const batch of VALIDATION_BATCHES) {
      const feeds: Record<string, HostTensor> = {};
      for (const v of sig.inputs) {
        const t = zeros(
          v.dtype,
          v.dims.map((d) => (typeof d === 'number' ? d : batch)),
        );
        if (!t) throw new Error(`${source}: input '${v.name}' has dtype ${v.dtype}, which validation cannot feed`);
        feeds[v.name] = t;
      }
      let out: Record<string, HostTensor>;
      try {
        out = await session.run(feeds);
      } catch (e) {
        throw new Error(
          `${source}: onnxruntime fails at batch ${batch} ` +
            `(${(e as Error).message.split('\n')[0]}); is the batch dim really dynamic?`,
          { cause: e },
        );
      }
      observed[batch] = {};
      for (const o of sig.outputs) {
        const t = out[o.name];
        if (!t) throw new Error(`${source}: onnxruntime returned no output '${o.name}'`);
        const want = o.dims.map((d) => (d === 'batch' ? batch : d));
        const ok = t.dims.length === want.length && want.every((d, i) => typeof d === 'string' || d === t.dims[i]);
        if (!ok)
          throw new Error(
            `${source}: output '${o.name}' has dims [${t.dims.join(',')}] ` +
              `at batch ${batch}, declared [${o.dims.join(',')}]`,
          );
        if ((t.dtype === 'float32' || t.dtype === 'float64') && !(t.data as Float32Array).every(Number.isFinite)) {
          throw new Error(
            `${source}: output '${o.name}' has non-finite values at ` +
              `batch ${batch} for zero inputs (NaN or infinite weights?)`,
          );
        }
        observed[batch][o.name] = [...t.dims];
      }
    }
  } finally {
    await session.release();
  }
  return { nodes: g.node?.length ?? 0, initializers: g.initializer?.length ?? 0, initializerElements, observed };
}
