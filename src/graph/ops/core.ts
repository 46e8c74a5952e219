/**
 * What a graph op is made of, and the helpers its parts share. Every op file in this folder defines
 * one op (or a family that shares everything but the arithmetic) as an {@link OpDef}: its shape rule
 * (which also validates the builder's arguments), its gradient, its float64 reference kernel and its
 * TensorFlow.js mapping, next to the builder that appends it to a graph. `registry.ts` lists them;
 * autodiff.ts, reference.ts and tfjs.ts are drivers that look ops up there. ONNX emission is generic.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { broadcastIndex, broadcastShapes } from '../broadcast.js';
import { type Attrs, type Dim, type DType, type Node, type TensorArray, type Value, fail } from '../ir.js';
import type { TfjsRuntime } from '../tfjs-backend.js';

/** dtype and shape of one output, as a shape rule declares it. */
export interface OutType {
  readonly dtype: DType;
  readonly shape: readonly Dim[];
}

/**
 * Output types of a node from its inputs and attributes; throws (naming the op) when they do not fit.
 * `target` is the output shape for ops whose shape is an input's *value* (Reshape, Expand,
 * ConstantOfShape): the builder knows it, the rule checks what it can.
 */
export type ShapeRule = (ins: readonly Value[], attrs: Attrs, target?: readonly Dim[]) => OutType[];

/**
 * The backward-node helpers a gradient rule builds with (implemented by autodiff.ts's Emitter, with
 * peepholes that keep the emitted graph small). An interface here, so op files never import the driver.
 */
export interface Emitter {
  /** x reshaped to `shape`; `like` supplies the shape at run time when `shape` has several symbolic dims. */
  reshape(x: Value, shape: readonly Dim[], like?: Value): Value;
  /** x [..., k] → [rows, k]. */
  flatten2d(x: Value): Value;
  /** Transpose by `perm`, cancelling an inverse producing Transpose. */
  transpose(x: Value, perm: readonly number[]): Value;
  /** Swaps the last two axes. */
  transposeLast2(x: Value): Value;
  /** g summed over the axes broadcasting added, to `target` (the shape of `like`). */
  sumTo(g: Value, target: readonly Dim[], like: Value): Value;
  /** v expanded to the shape of `like`. */
  expandTo(v: Value, like: Value): Value;
  /** Zeros shaped and typed like v. */
  zerosOf(v: Value): Value;
  /** Number of elements reduced by a Reduce node (x → y) as a scalar of x's dtype. */
  reducedCount(x: Value, y: Value, axes: readonly number[]): Value;
}

/**
 * Per-input gradients (undefined: none, or not needed, as `need[i]` says) from the per-output
 * gradients `gys` (undefined for an output the loss does not use), appended as nodes via `e`.
 */
export type GradRule = (
  n: Node,
  gys: readonly (Value | undefined)[],
  need: readonly boolean[],
  e: Emitter,
) => (Value | undefined)[];

/**
 * How autodiff treats an op: a rule; `'zero'` when the outputs are piecewise constant in the float
 * inputs (or not float), so nothing flows back; `'none'` when no rule is implemented, so a node of the
 * op on a path from a wrt value to the loss is an error.
 */
export type Gradient = GradRule | 'zero' | 'none';

/** A tensor of the float64 interpreter: floats as Float64Array, int64 as BigInt64Array, bool as Uint8Array (0/1). */
export interface RefTensor {
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly data: Float64Array | BigInt64Array | Uint8Array;
}

/** The node's outputs in float64, from its inputs (undefined: an optional input not given). */
export type RefKernel = (ins: readonly (RefTensor | undefined)[], n: Node) => RefTensor[];

export type Tf = TfjsRuntime['tf'];

/** What a tfjs mapping may ask of the interpreter besides its input tensors. */
export interface TfjsContext {
  /** Lower Conv to pad/slice/matmul (the wasm backend lacks Conv2DBackpropFilter). */
  readonly lowerConv: boolean;
  /** Input i as host integers (shape operands: constants are read without a device round trip). */
  ints(i: number): number[];
}

/** The node's outputs as tfjs tensors (inside the interpreter's tf.tidy). */
export type TfjsKernel = (tf: Tf, ins: readonly (Tensor | undefined)[], n: Node, ctx: TfjsContext) => Tensor[];

/** One graph op: ONNX op type (opset 17 semantics) and its parts. */
export interface OpDef {
  readonly type: string;
  readonly shape: ShapeRule;
  readonly grad: Gradient;
  readonly reference: RefKernel;
  readonly tfjs: TfjsKernel;
}

/**
 * Appends a node of `def` to the inputs' graph, its outputs typed by the op's shape rule.
 * @throws when inputs belong to different graphs, or as the shape rule.
 */
export function emit(def: OpDef, ins: readonly Value[], attrs: Attrs = {}, target?: readonly Dim[]): Value[] {
  sameGraph(def.type, ...ins);
  return ins[0].graph.node(def.type, ins, def.shape(ins, attrs, target), attrs);
}

export const isFloat = (t: DType) => t === 'float32' || t === 'float64';

/** Shape rule of a two-input elementwise op: same dtype, broadcast shapes. */
export const binaryShape =
  (op: string): ShapeRule =>
  ([a, b]) => {
    if (a.dtype !== b.dtype) fail(op, `dtype mismatch ${a.dtype} vs ${b.dtype}`);
    return [{ dtype: a.dtype, shape: broadcastShapes(op, a.shape, b.shape) }];
  };

/** Shape rule of a float elementwise op of one input: the input's dtype and shape. */
export const unaryShape =
  (op: string): ShapeRule =>
  ([x]) => {
    if (!isFloat(x.dtype)) fail(op, `expects a float input, got ${x.dtype}`);
    return [{ dtype: x.dtype, shape: x.shape }];
  };

export function sameGraph(op: string, ...xs: readonly Value[]): void {
  for (const x of xs) if (x.graph !== xs[0].graph) fail(op, 'inputs belong to different graphs');
}

/** A possibly negative axis as an index in [0, rank). */
export const normAxis = (op: string, axis: number, rank: number): number => {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(op, `axis ${axis} out of range for rank ${rank}`);
  return a;
};

export const range = (n: number) => [...Array(n).keys()];

/** The single output gradient of a one-output op. */
export const g0 = (gys: readonly (Value | undefined)[]) => gys[0] as Value;
export const when = (flag: boolean, f: () => Value): Value | undefined => (flag ? f() : undefined);

// ---- float64 reference helpers ----

export const size = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);

/** Host data of a given dtype as the interpreter's tensor type (floats widened to float64). */
export function toRef(dtype: DType, dims: readonly number[], data: TensorArray): RefTensor {
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

export const floats = (t: RefTensor): Float64Array => {
  if (!(t.data instanceof Float64Array)) fail('reference', `expected a float tensor, got ${t.dtype}`);
  return t.data;
};
export const ints = (t: RefTensor): number[] => Array.from(t.data as ArrayLike<number | bigint>, Number);

/** A new array of t's element type (Float64Array, BigInt64Array or Uint8Array) with n elements. */
export const sameKind = (t: RefTensor, n: number): RefTensor['data'] =>
  new (t.data.constructor as { new (n: number): RefTensor['data'] })(n);

/** Elementwise op over broadcast inputs; `f` gets one number per input. */
export function elementwise(
  op: string,
  ins: readonly RefTensor[],
  outType: DType,
  f: (...v: number[]) => number,
): RefTensor {
  const dims = ins.slice(1).reduce<number[]>((d, t) => broadcastShapes(op, d, t.dims), [...ins[0].dims]);
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

/** f applied to every element of a float tensor. */
export const mapFloats = (x: RefTensor, f: (v: number) => number): RefTensor => ({
  dtype: x.dtype,
  dims: x.dims,
  data: floats(x).map(f),
});

/** Views dims as [outer, d, inner] around `axis`. */
export function around(dims: readonly number[], axis: number): [number, number, number] {
  return [size(dims.slice(0, axis)), dims[axis], size(dims.slice(axis + 1))];
}

/** A possibly negative axis of concrete data (already validated by the shape rule). */
export const axisOf = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

// ---- tfjs helpers ----

/** tfjs has no int64 (→ int32) and no float64 (→ float32). */
export const tfDType = (d: DType): 'float32' | 'int32' | 'bool' =>
  d === 'int64' ? 'int32' : d === 'bool' ? 'bool' : 'float32';

/** A numeric attribute with its ONNX default. */
export const num = (n: Node, name: string, dflt: number): number => (n.attrs[name] as number | undefined) ?? dflt;
/** An ints attribute (undefined when absent). */
export const intsAttr = (n: Node, name: string): readonly number[] | undefined =>
  n.attrs[name] as readonly number[] | undefined;

/** The int64 data of a constant input (shape operands: Reshape targets, Split sizes, axes …). */
export function constInts(op: string, v: Value): number[] {
  if (v.kind !== 'const' || !v.data || v.dtype !== 'int64') fail(op, `${v.name} must be an int64 constant`);
  return Array.from(v.data.data as BigInt64Array, Number);
}

/** An int64 [n] constant. */
export const int64Const = (like: Value, values: readonly number[], name: string): Value =>
  like.graph.constant({ dtype: 'int64', dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) }, name);
