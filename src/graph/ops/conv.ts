/**
 * 2-D convolution (ONNX Conv; cross-correlation as in PyTorch) and its adjoint ConvTranspose, NCHW,
 * group 1. The builders emit stride 1, dilation 1 and symmetric pads, which is what the gradient and
 * the float64 kernel implement; the tfjs mapping of Conv also takes strides, dilations and asymmetric
 * pads. They share the kernel arithmetic, so they share this file.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Dim, type Node, type Value, fail, shapeStr } from '../ir.js';
import {
  type OpDef,
  type RefTensor,
  type ShapeRule,
  type Tf,
  emit,
  floats,
  g0,
  intsAttr,
  isFloat,
  num,
  when,
} from './core.js';
import { reduceSum } from './reduce.js';

/** Spatial output size of a stride-1 conv (in + 2p − k + 1) or transposed conv (in − 1 + k − 2p). */
function convDims(op: string, x: Value, w: Value, p: number, transposed: boolean): number[] {
  if (x.shape.length !== 4 || w.shape.length !== 4)
    fail(op, `x and w must be 4-D (NCHW), got ${shapeStr(x.shape)} and ${shapeStr(w.shape)}`);
  if (!Number.isInteger(p) || p < 0) fail(op, `pads must be a non-negative integer, got ${p}`);
  const sp = [x.shape[2], x.shape[3], w.shape[2], w.shape[3]];
  if (!sp.every((d): d is number => typeof d === 'number'))
    fail(op, `spatial dims must be static, got ${shapeStr(x.shape)} and kernel ${shapeStr(w.shape)}`);
  const [h, wd, kh, kw] = sp as number[];
  const out = transposed ? [h - 1 + kh - 2 * p, wd - 1 + kw - 2 * p] : [h + 2 * p - kh + 1, wd + 2 * p - kw + 1];
  if (out[0] < 1 || out[1] < 1) fail(op, `kernel ${kh}×${kw} with pads ${p} does not fit input ${h}×${wd}`);
  return out;
}

/** Symmetric pads p of a node; only stride 1, dilation 1, group 1 are implemented here. */
function convPads(op: string, attrs: Node['attrs'], name: string): number {
  const pads = (attrs.pads as readonly number[] | undefined) ?? [0, 0, 0, 0];
  const one = (k: string) => [(attrs[k] as readonly number[] | number | undefined) ?? 1].flat().every((v) => v === 1);
  if (
    pads.some((v) => v !== pads[0]) ||
    !one('strides') ||
    !one('dilations') ||
    !one('group') ||
    attrs.output_padding !== undefined
  ) {
    fail(op, `only stride 1, dilation 1, group 1 and symmetric pads are implemented (${name})`);
  }
  return pads[0];
}

/**
 * Conv (transposed = false): y[n,o,i,j] = b[o] + Σ_{c,u,v} x[n,c,i+u−p,j+v−p]·w[o,c,u,v], zero outside x.
 * ConvTranspose (transposed = true, w [I, O, kH, kW]): y[n,o,i+u−p,j+v−p] += x[n,c,i,j]·w[c,o,u,v]
 * for every in-range output position (the adjoint of Conv). float64.
 */
function convRef(x: RefTensor, w: RefTensor, b: RefTensor | undefined, p: number, transposed: boolean): RefTensor {
  const [N, C, H, W] = x.dims;
  const [w0, w1, kh, kw] = w.dims;
  const O = transposed ? w1 : w0;
  if ((transposed ? w0 : w1) !== C)
    fail(transposed ? 'ConvTranspose' : 'Conv', `channels of x ${shapeStr(x.dims)} and w ${shapeStr(w.dims)} differ`);
  const [ho, wo] = transposed ? [H - 1 + kh - 2 * p, W - 1 + kw - 2 * p] : [H + 2 * p - kh + 1, W + 2 * p - kw + 1];
  const X = floats(x);
  const Wt = floats(w);
  const out = new Float64Array(N * O * ho * wo);
  const B = b ? floats(b) : undefined;
  for (let nn = 0; nn < N; nn++) {
    for (let o = 0; o < O; o++) {
      const ob = (nn * O + o) * ho * wo;
      if (B) out.fill(B[o], ob, ob + ho * wo);
      for (let c = 0; c < C; c++) {
        const xb = (nn * C + c) * H * W;
        const wb = (transposed ? c * O + o : o * C + c) * kh * kw;
        for (let u = 0; u < kh; u++) {
          for (let v = 0; v < kw; v++) {
            const wv = Wt[wb + u * kw + v];
            // Conv reads x at (i+u−p, j+v−p) for output (i, j);
            // ConvTranspose writes output (i+u−p, j+v−p) from x (i, j).
            const [rows, cols] = transposed ? [H, W] : [ho, wo];
            for (let i = 0; i < rows; i++) {
              const r = i + u - p;
              if (r < 0 || r >= (transposed ? ho : H)) continue;
              for (let j = 0; j < cols; j++) {
                const q = j + v - p;
                if (q < 0 || q >= (transposed ? wo : W)) continue;
                if (transposed) out[ob + r * wo + q] += X[xb + i * W + j] * wv;
                else out[ob + i * wo + j] += X[xb + r * W + q] * wv;
              }
            }
          }
        }
      }
    }
  }
  return { dtype: x.dtype, dims: [N, O, ho, wo], data: out };
}

/** Every `step`-th element along axis a, starting at 0 (differentiable: pad, reshape, slice). */
function takeEvery(tf: Tf, y: Tensor, a: number, step: number): Tensor {
  const len = y.shape[a];
  const m = Math.ceil(len / step);
  const padded =
    m * step === len
      ? y
      : tf.pad(y, y.shape.map((_, j) => (j === a ? [0, m * step - len] : [0, 0])) as Array<[number, number]>);
  const split = [...padded.shape.slice(0, a), m, step, ...padded.shape.slice(a + 1)];
  const r = tf.reshape(padded, split);
  const begin = split.map(() => 0);
  const size = split.map((d, j) => (j === a + 1 ? 1 : d));
  return tf.reshape(tf.slice(r, begin, size), [...padded.shape.slice(0, a), m, ...padded.shape.slice(a + 1)]);
}

/**
 * ONNX Conv in tfjs (NCHW, group 1): x [N,C,H,W], w [O,C,kH,kW], b [O] → [N,O,Ho,Wo] with pads
 * [top, left, bottom, right]. `lower`: im2col — pad, take the kH·kW shifted (strided) windows with
 * slices, stack them, one matmul with w as [C·kH·kW, O]; differentiable with basic ops only.
 */
function convTf(
  tf: Tf,
  x: Tensor,
  w: Tensor,
  b: Tensor | undefined,
  strides: readonly number[],
  dil: readonly number[],
  pads: readonly number[],
  lower: boolean,
): Tensor {
  const [N, C, H, W] = x.shape;
  const [O, C2, kh, kw] = w.shape;
  if (C !== C2) fail('Conv', `input channels ${C} ≠ kernel channels ${C2}`);
  const Hp = H + pads[0] + pads[2];
  const Wp = W + pads[1] + pads[3];
  const Ho = Math.floor((Hp - dil[0] * (kh - 1) - 1) / strides[0]) + 1;
  const Wo = Math.floor((Wp - dil[1] * (kw - 1) - 1) / strides[1]) + 1;
  let y: Tensor;
  if (!lower) {
    const xh = tf.transpose(x, [0, 2, 3, 1]);
    const padded = pads.some((p) => p !== 0)
      ? tf.pad(xh, [
          [0, 0],
          [pads[0], pads[2]],
          [pads[1], pads[3]],
          [0, 0],
        ])
      : xh;
    const wh = tf.transpose(w, [2, 3, 1, 0]); // [kH,kW,C,O]
    y = tf.transpose(
      tf.conv2d(padded as never, wh as never, [strides[0], strides[1]], 'valid', 'NHWC', [dil[0], dil[1]]),
      [0, 3, 1, 2],
    );
  } else {
    // Crop or pad so the window arithmetic needs no negative offsets (ONNX allows negative pads).
    const xp = tf.pad(x, [
      [0, 0],
      [0, 0],
      [Math.max(0, pads[0]), Math.max(0, pads[2])],
      [Math.max(0, pads[1]), Math.max(0, pads[3])],
    ]);
    const xs = pads.some((p) => p < 0)
      ? tf.slice(xp, [0, 0, Math.max(0, -pads[0]), Math.max(0, -pads[1])], [N, C, Hp, Wp])
      : xp;
    const cols: Tensor[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        let win = tf.slice(
          xs,
          [0, 0, i * dil[0], j * dil[1]],
          [N, C, (Ho - 1) * strides[0] + 1, (Wo - 1) * strides[1] + 1],
        );
        if (strides[0] > 1) win = takeEvery(tf, win, 2, strides[0]);
        if (strides[1] > 1) win = takeEvery(tf, win, 3, strides[1]);
        cols.push(win); // [N,C,Ho,Wo]
      }
    }
    const stacked = tf.stack(cols, 2); // [N,C,kh·kw,Ho,Wo], row (c, i, j) matches w's layout
    const patches = tf.reshape(tf.transpose(stacked, [0, 3, 4, 1, 2]), [N * Ho * Wo, C * kh * kw]);
    const out = tf.matMul(patches, tf.reshape(w, [O, C * kh * kw]), false, true); // [N·Ho·Wo, O]
    y = tf.transpose(tf.reshape(out, [N, Ho, Wo, O]), [0, 3, 1, 2]);
  }
  return b ? tf.add(y, tf.reshape(b, [1, O, 1, 1])) : y;
}

const attrPads = (n: Node) => (n.attrs.pads as readonly number[] | undefined) ?? [0, 0, 0, 0];

/** Shape rule of Conv / ConvTranspose as the builders emit them (stride 1, symmetric pads). */
const convShape =
  (op: 'Conv' | 'ConvTranspose'): ShapeRule =>
  (ins, attrs) => {
    const [x, w, b] = ins;
    const transposed = op === 'ConvTranspose';
    if (!isFloat(x.dtype) || ins.some((v) => v.dtype !== x.dtype))
      fail(op, `operands must share one float dtype, got ${ins.map((v) => v.dtype).join(', ')}`);
    const p = convPads(op, attrs, 'as built');
    const [ho, wo] = convDims(op, x, w, p, transposed);
    if (!transposed && x.shape[1] !== w.shape[1])
      fail(op, `input channels differ: x ${shapeStr(x.shape)} vs w ${shapeStr(w.shape)}`);
    if (transposed && x.shape[1] !== w.shape[0])
      fail(op, `channels differ: x ${shapeStr(x.shape)} vs w ${shapeStr(w.shape)} (w is [in, out, kH, kW])`);
    if (b && (b.shape.length !== 1 || b.shape[0] !== (transposed ? w.shape[1] : w.shape[0])))
      fail(op, `bias must be [${String(transposed ? w.shape[1] : w.shape[0])}], got ${shapeStr(b.shape)}`);
    const out: Dim[] = [x.shape[0], transposed ? w.shape[1] : w.shape[0], ho, wo];
    return [{ dtype: x.dtype, shape: out }];
  };

export const Conv: OpDef = {
  type: 'Conv',
  shape: convShape('Conv'),
  /**
   * y = x ⊛ w + b with symmetric pads p: dx = ConvTranspose(g, w, p); dw = (xᵀ ⊛ gᵀ)ᵀ, a Conv of x with
   * N and C swapped by g with N and O swapped (channel axis = batch), whose "kernel" is g's spatial
   * extent, so its output is [C, O, kH, kW]; db = Σ_{N,H,W} g.
   */
  grad: (n, gys, need, e) => {
    const [x, w, b] = n.inputs;
    const g = g0(gys);
    const p = convPads('gradients', n.attrs, `Conv gradient, node output ${n.outputs[0].name}`);
    const nc = [1, 0, 2, 3];
    return [
      when(need[0], () => convTranspose2d(g, w, { pads: p })),
      when(need[1], () => e.transpose(conv2d(e.transpose(x, nc), e.transpose(g, nc), undefined, { pads: p }), nc)),
      when(!!b && need[2], () => reduceSum(g, [0, 2, 3])),
    ];
  },
  reference: (ins, n) => [
    convRef(
      ins[0] as RefTensor,
      ins[1] as RefTensor,
      ins[2],
      convPads('reference: Conv', n.attrs, n.outputs[0].name),
      false,
    ),
  ],
  tfjs: (tf, ins, n, ctx) => {
    const strides = intsAttr(n, 'strides') ?? [1, 1];
    const dil = intsAttr(n, 'dilations') ?? [1, 1];
    if (num(n, 'group', 1) !== 1) fail('Conv', 'group ≠ 1 is not supported');
    return [convTf(tf, ins[0] as Tensor, ins[1] as Tensor, ins[2], strides, dil, attrPads(n), ctx.lowerConv)];
  },
};

export const ConvTranspose: OpDef = {
  type: 'ConvTranspose',
  shape: convShape('ConvTranspose'),
  grad: 'none',
  reference: (ins, n) => [
    convRef(
      ins[0] as RefTensor,
      ins[1] as RefTensor,
      ins[2],
      convPads('reference: ConvTranspose', n.attrs, n.outputs[0].name),
      true,
    ),
  ],
  tfjs: (tf, ins, n, ctx) => {
    // Stride-1 transposed conv = conv with the kernel flipped and in/out channels swapped, pads k − 1 − p.
    const w = ins[1] as Tensor;
    const [kh, kw] = w.shape.slice(2);
    const p = attrPads(n);
    const wf = tf.transpose(tf.reverse(w, [2, 3]), [1, 0, 2, 3]);
    const cp = [kh - 1 - p[0], kw - 1 - p[1], kh - 1 - p[2], kw - 1 - p[3]];
    return [convTf(tf, ins[0] as Tensor, wf, ins[2], [1, 1], [1, 1], cp, ctx.lowerConv)];
  },
};

/** Options of `conv2d` / `convTranspose2d`: zero padding added on every side (ONNX pads [p, p, p, p]). */
export interface Conv2dOptions {
  readonly pads?: number;
}

const convAttrs = (w: Value, p: number) => ({
  kernel_shape: [w.shape[2] as number, w.shape[3] as number],
  pads: [p, p, p, p],
});

/**
 * 2-D convolution (ONNX Conv; cross-correlation as in PyTorch): x [N, C, H, W] ⊛ w [O, C, kH, kW]
 * (+ b [O]) → [N, O, H + 2p − kH + 1, W + 2p − kW + 1]. Stride 1, dilation 1, group 1, `pads` zeros on
 * every side. N and C may be symbolic (C must then be the same name in x and w); H, W, kH, kW static.
 * @throws when ranks, channels, dtypes or the bias shape do not fit, or the kernel exceeds the padded input.
 */
export const conv2d = (x: Value, w: Value, b?: Value, opts: Conv2dOptions = {}): Value =>
  emit(Conv, b ? [x, w, b] : [x, w], convAttrs(w, opts.pads ?? 0))[0];

/**
 * 2-D transposed convolution (ONNX ConvTranspose), the adjoint of `conv2d` with the same weight:
 * x [N, O, H, W], w [O, C, kH, kW] → [N, C, H − 1 + kH − 2p, W − 1 + kW − 2p]. Stride 1, no output
 * padding, group 1. It is the input gradient of Conv.
 * @throws as `conv2d`.
 */
export const convTranspose2d = (x: Value, w: Value, opts: Conv2dOptions = {}): Value =>
  emit(ConvTranspose, [x, w], convAttrs(w, opts.pads ?? 0))[0];
