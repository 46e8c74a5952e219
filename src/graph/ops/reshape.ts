/**
 * Reshape (ONNX Reshape, allowzero = 0): the target is a constant (symbolic dims emitted as −1) or,
 * in the backward pass, a run-time Shape of another value.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Dim, type Value, fail, numel, shapeStr } from '../ir.js';
import { type OpDef, type RefTensor, emit, g0, ints, size } from './core.js';
import { shapeOf } from './shape.js';

/** Symbolic name of numel(shape)/known, e.g. ['batch', 4, 8] with known 8 → 'batch*4'. */
function inferredDimName(shape: readonly Dim[], known: number): string {
  const syms = shape.filter((d): d is string => typeof d === 'string');
  const stat = shape.filter((d): d is number => typeof d === 'number').reduce((p, d) => p * d, 1);
  const factor = stat % known === 0 ? stat / known : 0;
  if (factor === 0) return `(${syms.join('*')}*${stat}/${known})`;
  return factor === 1 ? syms.join('*') : `${syms.join('*')}*${factor}`;
}

/** Reshape target with ONNX's 0 (copy the input dim) and −1 (infer) entries resolved. */
function reshapeDims(x: RefTensor, target: readonly number[]): number[] {
  const dims = target.map((d, i) => (d === 0 ? x.dims[i] : d));
  const known = dims.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
  const total = size(x.dims);
  const out = dims.map((d) => (d === -1 ? total / known : d));
  if (size(out) !== total || out.some((d) => !Number.isInteger(d)))
    fail('Reshape', `cannot reshape ${shapeStr(x.dims)} to ${shapeStr(target)}`);
  return out;
}

export const Reshape: OpDef = {
  type: 'Reshape',
  /** `target`: the requested shape; with a run-time shape input it is the declared output shape. */
  shape: ([x, s], _attrs, target) => {
    if (!target) return fail('Reshape', 'no target shape');
    if (s.kind !== 'const') return [{ dtype: x.dtype, shape: target }];
    const shape = target;
    const unknown = shape.filter((d) => typeof d === 'string' || d === -1).length;
    if (unknown > 1) fail('Reshape', `at most one symbolic or -1 dim allowed in ${shapeStr(shape)}`);
    const staticIn = x.shape.every((d) => typeof d === 'number');
    let out = [...shape];
    if (unknown === 0 && staticIn && numel(x.shape) !== numel(shape)) {
      fail('Reshape', `cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    }
    const known = shape.filter((d) => typeof d === 'number' && d !== -1).reduce<number>((p, d) => p * (d as number), 1);
    if (unknown === 1 && staticIn) {
      const total = numel(x.shape);
      if (total % known !== 0) fail('Reshape', `cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
      out = shape.map((d) => (d === -1 || typeof d === 'string' ? total / known : d));
    } else if (shape.includes(-1)) {
      // Symbolic input and a -1 target: name the inferred dim (e.g. 'batch*4') rather than declare -1.
      out = shape.map((d) => (d === -1 ? inferredDimName(x.shape, known) : d));
    }
    return [{ dtype: x.dtype, shape: out }];
  },
  grad: (n, gys, _need, e) => [e.reshape(g0(gys), n.inputs[0].shape, n.inputs[0]), undefined],
  reference: (ins) => {
    const x = ins[0] as RefTensor;
    return [{ ...x, dims: reshapeDims(x, ints(ins[1] as RefTensor)) }];
  },
  tfjs: (tf, ins, _n, ctx) => {
    const x = ins[0] as Tensor;
    const target = ctx.ints(1).map((d, i) => (d === 0 ? x.shape[i] : d)); // ONNX: 0 copies the dim (allowzero = 0)
    return [tf.reshape(x, target)];
  },
};

/**
 * Reshape to `shape`. At most one dim may be symbolic or -1; it is inferred at run time (emitted as
 * −1). Static element counts must agree.
 */
export function reshape(x: Value, shape: readonly Dim[]): Value {
  const target = x.graph.constant(
    {
      dtype: 'int64',
      dims: [shape.length],
      data: BigInt64Array.from(shape.map((d) => BigInt(typeof d === 'string' ? -1 : d))),
    },
    'shape',
  );
  return emit(Reshape, [x, target], {}, shape)[0];
}

/**
 * Reshape x to the run-time shape of `like`, declared as `shape` (which may have several symbolic
 * dims; the caller vouches that it is like's shape).
 */
export const reshapeLike = (x: Value, like: Value, shape: readonly Dim[]): Value =>
  emit(Reshape, [x, shapeOf(like)], {}, shape)[0];
