/** Scalar constants (ONNX initialisers, not nodes). */
import type { Value } from '../ir.js';

/** A scalar constant (dims []) of `like`'s float dtype: float64 for float64, else float32. */
export function scalar(like: Value, v: number): Value {
  const data = like.dtype === 'float64' ? Float64Array.of(v) : Float32Array.of(v);
  return like.graph.constant({ dtype: like.dtype === 'float64' ? 'float64' : 'float32', dims: [], data }, 'scalar');
}
