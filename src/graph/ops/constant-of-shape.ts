/** A tensor filled with one value, of a shape given as an int64 input (ONNX ConstantOfShape). */
import { type Dim, type TensorData, type Value, fail, shapeStr } from '../ir.js';
import { type OpDef, type RefTensor, emit, ints, sameKind, size, tfDType, toRef } from './core.js';
import { shapeOf } from './shape.js';

export const ConstantOfShape: OpDef = {
  type: 'ConstantOfShape',
  /** `target`: the declared output shape (the input's value); the dtype is the `value` attribute's. */
  shape: ([s], attrs, target) => {
    const value = attrs.value as TensorData;
    if (!target || s.shape[0] !== target.length)
      return fail(
        'ConstantOfShape',
        `shape input ${shapeStr(s.shape)} does not fit ${target ? shapeStr(target) : 'no shape'}`,
      );
    return [{ dtype: value.dtype, shape: target }];
  },
  grad: 'zero',
  reference: (ins, n) => {
    const value = n.attrs.value as TensorData;
    const t = toRef(value.dtype, [], value.data);
    const dims = ints(ins[0] as RefTensor);
    const out = sameKind(t, size(dims));
    out.fill(t.data[0] as never);
    return [{ dtype: t.dtype, dims, data: out }];
  },
  tfjs: (tf, _ins, n, ctx) => {
    const v = n.attrs.value as TensorData;
    return [tf.fill(ctx.ints(0), Number(v.data[0]), tfDType(n.outputs[0].dtype))];
  },
};

/** Zeros of `like`'s float dtype (float64, else float32) with shape `target`, the value of int64 `shape`. */
export function zerosOfShape(like: Value, shape: Value, target: readonly Dim[]): Value {
  const value: TensorData =
    like.dtype === 'float64'
      ? { dtype: 'float64', dims: [1], data: Float64Array.of(0) }
      : { dtype: 'float32', dims: [1], data: Float32Array.of(0) };
  return emit(ConstantOfShape, [shape], { value }, target)[0];
}

/** Zeros with the shape and dtype of `like`. */
export const zerosLike = (like: Value) => zerosOfShape(like, shapeOf(like), like.shape);
