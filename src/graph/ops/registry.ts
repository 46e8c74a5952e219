/**
 * The op registry: every op a graph may contain, by ONNX op type. autodiff.ts, reference.ts and
 * tfjs.ts look nodes up here; an op missing from this list has no gradient, kernel or tfjs mapping.
 */
import { AveragePool } from './avg-pool.js';
import { Add, Div, Mul, Sub } from './binary.js';
import { Cast } from './cast.js';
import { Concat } from './concat.js';
import { ConstantOfShape } from './constant-of-shape.js';
import { Conv, ConvTranspose } from './conv.js';
import type { OpDef } from './core.js';
import { Erf } from './erf.js';
import { Expand } from './expand.js';
import { Gemm } from './gemm.js';
import { Identity } from './identity.js';
import { LayerNormalization } from './layer-norm.js';
import { Less } from './less.js';
import { MatMul } from './matmul.js';
import { Min } from './min.js';
import { OneHot } from './one-hot.js';
import { ReduceMax, ReduceMean, ReduceSum, ReduceSumSquare } from './reduce.js';
import { Reshape } from './reshape.js';
import { Resize } from './resize.js';
import { Shape, Size } from './shape.js';
import { LogSoftmax, Softmax } from './softmax.js';
import { Split } from './split.js';
import { Sum } from './sum.js';
import { Transpose } from './transpose.js';
import { Abs, Exp, Log, Neg, Reciprocal, Relu, Sign, Sqrt } from './unary.js';
import { Unsqueeze } from './unsqueeze.js';
import { Where } from './where.js';

// prettier-ignore
const ALL: readonly OpDef[] = [
  Add, Sub, Mul, Div, Min, Less, Where, Sum,
  Erf, Exp, Abs, Neg, Sign, Sqrt, Relu, Log, Reciprocal,
  MatMul, Gemm, Conv, ConvTranspose, AveragePool, Resize,
  Reshape, Transpose, Unsqueeze, Split, Concat, Expand, Identity, Cast,
  Shape, Size, ConstantOfShape, OneHot,
  Softmax, LogSoftmax, LayerNormalization,
  ReduceSum, ReduceMean, ReduceSumSquare, ReduceMax,
];

/** Every registered op by type. */
export const OPS: ReadonlyMap<string, OpDef> = new Map(ALL.map((d) => [d.type, d]));

/** The definition of op `type`, or undefined when no op of that type is registered. */
export const opDef = (type: string): OpDef | undefined => OPS.get(type);
