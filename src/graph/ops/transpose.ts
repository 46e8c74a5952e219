/** Permutation of dims (ONNX Transpose): out.shape[i] = x.shape[perm[i]]. */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Value, fail, shapeStr } from '../ir.js';
import { type OpDef, type RefTensor, emit, g0, range, sameKind, size } from './core.js';
import { strides } from '../broadcast.js';

/** x with its dims permuted, any element type. */
export function transposeRef(x: RefTensor, perm: readonly number[]): RefTensor {
  const dims = perm.map((p) => x.dims[p]);
  const xs = strides(x.dims);
  const src = perm.map((p) => xs[p]); // stride in x of each output axis
  const n = size(dims);
  const out = sameKind(x, n);
  const pos = new Array<number>(dims.length).fill(0);
  for (let f = 0; f < n; f++) {
    let o = 0;
    for (let i = 0; i < dims.length; i++) o += pos[i] * src[i];
    out[f] = x.data[o];
    for (let i = dims.length - 1; i >= 0 && ++pos[i] === dims[i]; i--) pos[i] = 0;
  }
  return { dtype: x.dtype, dims, data: out };
}

const permOf = (attrs: { readonly [k: string]: unknown }) => attrs.perm as readonly number[];

export const Transpose: OpDef = {
  type: 'Transpose',
  shape: ([x], attrs) => {
    const perm = permOf(attrs);
    if (perm.length !== x.shape.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
      fail('Transpose', `perm ${shapeStr(perm)} is not a permutation of rank ${x.shape.length}`);
    }
    return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }];
  },
  grad: (n, gys, _need, e) => {
    const perm = permOf(n.attrs);
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [e.transpose(g0(gys), inv)];
  },
  reference: (ins, n) => [transposeRef(ins[0] as RefTensor, permOf(n.attrs))],
  tfjs: (tf, ins, n) => [tf.transpose(ins[0] as Tensor, [...permOf(n.attrs)])],
};

/** Permute dims: out.shape[i] = x.shape[perm[i]]. */
export const transpose = (x: Value, perm: readonly number[]) => emit(Transpose, [x], { perm })[0];

/** Swap the last two dims. */
export function transposeLast2(x: Value): Value {
  const r = x.shape.length;
  const perm = range(r);
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return transpose(x, perm);
}
