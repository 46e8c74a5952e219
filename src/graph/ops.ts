/**
 * The op builders (`import * as op from './ops.js'`): each appends one node (or a few, for gelu)
 * and returns the output value(s), throwing, with the op's name, when shapes or dtypes do not fit.
 * Semantics are ONNX opset 17 (numpy broadcasting). Each op lives in one file under ops/ with its
 * shape rule, gradient, float64 reference kernel and tfjs mapping; ops/registry.ts lists them.
 */
export { broadcastShapes } from './broadcast.js';
export { avgPool2d } from './ops/avg-pool.js';
export { add, div, mul, sub } from './ops/binary.js';
export { cast } from './ops/cast.js';
export { concat } from './ops/concat.js';
export { zerosLike, zerosOfShape } from './ops/constant-of-shape.js';
export { type Conv2dOptions, conv2d, convTranspose2d } from './ops/conv.js';
export { erf } from './ops/erf.js';
export { expand, expandAs } from './ops/expand.js';
export { type GemmOptions, gemm } from './ops/gemm.js';
export { gelu } from './ops/gelu.js';
export { identity } from './ops/identity.js';
export { layerNorm } from './ops/layer-norm.js';
export { less } from './ops/less.js';
export { matmul } from './ops/matmul.js';
export { min } from './ops/min.js';
export { oneHot } from './ops/one-hot.js';
export { reduceMax, reduceMean, reduceSum, reduceSumSquare } from './ops/reduce.js';
export { reshape, reshapeLike } from './ops/reshape.js';
export { upsampleNearest } from './ops/resize.js';
export { scalar } from './ops/scalar.js';
export { shapeOf, size } from './ops/shape.js';
export { logSoftmax, softmax } from './ops/softmax.js';
export { split } from './ops/split.js';
export { sum } from './ops/sum.js';
export { transpose, transposeLast2 } from './ops/transpose.js';
export { abs, exp, log, neg, reciprocal, relu, sign, sqrt } from './ops/unary.js';
export { unsqueeze } from './ops/unsqueeze.js';
export { where } from './ops/where.js';
