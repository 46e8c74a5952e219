/**
 * A small typed tensor-graph IR: values with static (or symbolic batch) shapes, nodes that are ONNX
 * operators (opset 17 semantics), trainable parameters, constants. One graph definition is emitted to
 * ONNX for onnxruntime (training: forward + generated backward; export: forward with weights as
 * initializers) and can be interpreted in float64 by `reference.ts` as an independent oracle.
 *
 * Design: docs/architecture.md; ONNX operator semantics from onnx/docs/Operators.md (opset 17).
 */

/** Element type of a value. `float32` is the model dtype; `float64` is used by the teacher. */
export type DType = 'float32' | 'float64' | 'int64' | 'bool';

/** A dimension: a fixed size, or a symbolic name (e.g. `'batch'`) resolved when the graph runs. */
export type Dim = number | string;

/** Dense tensor data held by a constant or parameter initialiser (row-major). */
export type TensorArray = Float32Array | Float64Array | BigInt64Array | Uint8Array;

export interface TensorData {
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly data: TensorArray;
}

/** How a value comes to exist. `param` values are trainable: graph inputs when training, initialisers on export. */
export type ValueKind = 'input' | 'param' | 'const' | 'node';

export type AttrValue = number | readonly number[] | string | TensorData;
export type Attrs = Readonly<Record<string, AttrValue>>;

export interface Value {
  readonly graph: Graph;
  readonly id: number;
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly Dim[];
  readonly kind: ValueKind;
  /** The node that computes it (kind `node`). */
  readonly producer?: Node;
  /** Constant data (kind `const`). */
  readonly data?: TensorData;
}

export interface Node {
  readonly op: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attrs: Attrs;
}

/** Throws with the op name and the problem, e.g. `MatMul: inner dims differ ([2,3] x [4,5])`. */
export function fail(op: string, message: string): never {
  throw new Error(`${op}: ${message}`);
}

export const shapeStr = (s: readonly Dim[]): string => `[${s.join(',')}]`;

/** Number of elements of a fully static shape; throws on symbolic dims. */
export function numel(shape: readonly Dim[]): number {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') fail('numel', `symbolic dim ${d} in ${shapeStr(shape)}`);
    n *= d;
  }
  return n;
}

/**
 * A graph under construction. Nodes are appended in topological order (every input exists before the
 * node that reads it), so emission and interpretation walk `nodes` front to back.
 */
export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly params: Value[] = [];
  readonly consts: Value[] = [];
  private nextId = 0;
  private readonly names = new Set<string>();

  constructor(readonly name = 'graph') {}

  private uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  private make(v: Omit<Value, 'graph' | 'id' | 'name'> & { name: string }): Value {
    const value: Value = { ...v, graph: this, id: this.nextId++, name: this.uniqueName(v.name) };
    return value;
  }

  /** A runtime input (data fed on every run), e.g. `noise` [batch, C, H, W] float32. */
  input(name: string, dtype: DType, shape: readonly Dim[]): Value {
    if (this.names.has(name)) fail('input', `name ${name} already used`);
    const v = this.make({ name, dtype, shape: [...shape], kind: 'input' });
    this.inputs.push(v);
    return v;
  }

  /** A trainable float32 parameter of a fixed shape; its values live outside the graph (see `ParamStore`). */
  param(name: string, shape: readonly number[]): Value {
    if (this.names.has(name)) fail('param', `name ${name} already used`);
    const v = this.make({ name, dtype: 'float32', shape: [...shape], kind: 'param' });
    this.params.push(v);
    return v;
  }

  /** A constant tensor (an ONNX initialiser). */
  constant(data: TensorData, name = 'const'): Value {
    if (data.data.length !== data.dims.reduce((a, b) => a * b, 1)) {
      fail('constant', `data length ${data.data.length} does not match dims ${shapeStr(data.dims)}`);
    }
    const v = this.make({ name, dtype: data.dtype, shape: [...data.dims], kind: 'const', data });
    this.consts.push(v);
    return v;
  }

  /** Appends a node computing outputs of the given dtypes and shapes; returns the output values. */
  node(
    op: string,
    inputs: readonly Value[],
    outs: readonly { dtype: DType; shape: readonly Dim[] }[],
    attrs: Attrs = {},
    name?: string,
  ): Value[] {
    for (const x of inputs) if (x.graph !== this) fail(op, `input ${x.name} belongs to another graph`);
    const outputs: Value[] = [];
    const node: Node = { op, inputs: [...inputs], outputs, attrs };
    for (let i = 0; i < outs.length; i++) {
      outputs.push(
        this.make({
          name: name ?? `${op.toLowerCase()}`,
          dtype: outs[i].dtype,
          shape: [...outs[i].shape],
          kind: 'node',
          producer: node,
        }),
      );
    }
    this.nodes.push(node);
    return outputs;
  }
}
