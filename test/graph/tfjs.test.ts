/**
 * The tfjs interpreter of the graph IR (src/graph/tfjs.ts) on the wasm backend against onnxruntime
 * running the same graph (forward) and the project's own autodiff (gradients); strided Conv against
 * direct float64 sums.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph, type Value } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import * as op from '../../src/graph/ops.js';
import { type HostTensor, OrtSession } from '../../src/graph/session.js';
import { TfjsGraph } from '../../src/graph/tfjs.js';
import { loadTfjs, type TfjsRuntime } from '../../src/graph/tfjs-backend.js';
import { resolveConfig } from '../../src/get/config.js';
import { blockParams, buildGet, ParamBuilder, block, trainingObjective } from '../../src/get/model.js';
import { UsageError } from '../../src/util/errors.js';

/** Deterministic N(0, 1)-ish values (sum of uniforms from an LCG). */
function randn(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const u = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, () => (u() + u() + u() - 1.5) * 2 * scale);
}
const size = (shape: readonly (number | string)[]) => shape.reduce<number>((a, d) => a * (d as number), 1);
const f32 = (dims: readonly number[], data: Float32Array): HostTensor => ({ dtype: 'float32', dims, data });

/** ‖a − b‖∞ / max(‖b‖∞, 1e-12): one number per tensor. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / Math.max(m, 1e-12);
}

const paramValues = (g: Graph, seed: number, scale: number) =>
  Object.fromEntries(g.params.map((p, i) => [p.name, randn(size(p.shape), seed + 7 * i, scale)]));
const paramFeeds = (g: Graph, ps: Record<string, Float32Array>) =>
  Object.fromEntries(g.params.map((p) => [p.name, f32(p.shape as number[], ps[p.name])]));

/**
 * Loss and every parameter gradient: tfjs autograd vs the project's autodiff in onnxruntime.
 * @returns the worst relative error over the loss and all gradients.
 */
async function compareGrads(
  rt: TfjsRuntime,
  g: Graph,
  loss: Value,
  feeds: Record<string, HostTensor>,
  ps: Record<string, Float32Array>,
): Promise<number> {
  const tg = TfjsGraph.create(rt, g, { loss });
  const grads = gradients(loss, g.params);
  const outputs: Record<string, Value> = { loss };
  g.params.forEach((p, i) => (outputs[`grad:${p.name}`] = grads[i]));
  const ort = await OrtSession.create(toOnnx(g, { outputs }), { threads: 1 });
  const want = await ort.run({ ...feeds, ...paramFeeds(g, ps) });
  await ort.release();
  const before = rt.tf.memory().numTensors;
  const got = tg.valueAndGrads(feeds, ps, 'loss');
  assert.equal(rt.tf.memory().numTensors, before, 'valueAndGrads leaks tensors');
  let worst = relErr(got.outputs.loss.data as Float32Array, want.loss.data as Float32Array);
  assert.ok(worst <= 1e-5, `loss: relative error ${worst}`);
  for (const p of g.params) {
    const e = relErr(got.grads[p.name], want[`grad:${p.name}`].data as Float32Array);
    assert.ok(e <= 1e-4, `gradient of ${p.name}: relative error ${e}`);
    worst = Math.max(worst, e);
  }
  return worst;
}

describe('TfjsGraph on wasm', () => {
  let rt: TfjsRuntime;
  before(async () => {
    rt = await loadTfjs({ backend: 'wasm', log: () => {} });
  });

  it('loads the wasm backend from @tensorflow/tfjs-backend-wasm with gradients registered', () => {
    assert.equal(rt.backend, 'wasm');
    assert.equal(rt.source, '@tensorflow/tfjs-backend-wasm');
    assert.ok(rt.tf.getGradient('Sum'));
  });

  it('forward equals onnxruntime for a graph using many ops', async () => {
    const g = new Graph('many');
    const x = g.input('x', 'float32', [2, 3, 4]);
    const lab = g.input('lab', 'int64', [2]);
    const img = g.input('img', 'float32', [2, 2, 6, 6]);
    const w = g.param('w', [4, 4]);
    const s = g.param('s', [4]);
    const b = g.param('b', [4]);
    const k = g.param('k', [3, 2, 3, 3]);
    const kb = g.param('kb', [3]);
    const h = op.add(op.matmul(x, w), b); // [2,3,4]
    const ln = op.layerNorm(h, s, b, 1e-5);
    const sm = op.softmax(op.mul(ln, op.scalar(ln, 3)));
    const ls = op.logSoftmax(op.div(h, op.add(op.abs(h), op.scalar(h, 1))));
    const [p1, p2] = op.split(ls, -1, [1, 3]);
    const cat = op.concat([p2, op.neg(p1)], -1);
    const t = op.reshape(op.transpose(cat, [0, 2, 1]), [2, 12]); // [2,12]
    const gm = op.gemm(op.reshape(h, [6, 4]), w, { transB: true, alpha: 0.5, beta: 2 }, b); // [6,4]
    const oh = op.oneHot(lab, 4); // [2,4] (labels include a negative one)
    const cond = op.less(op.reduceMean(x, [1], false), oh); // [2,4]
    const wh = op.where(cond, op.erf(oh), op.exp(op.reduceMean(x, [1], false)));
    const ex = op.expandAs(op.unsqueeze(s, [0]), wh);
    const r = op.sum([op.relu(op.sub(wh, ex)), op.sqrt(op.add(op.mul(wh, wh), op.scalar(wh, 1))), op.min(wh, ex)]);
    const castBack = op.cast(op.cast(r, 'float64'), 'float32');
    const zs = op.add(op.zerosLike(castBack), castBack);
    const cv = op.conv2d(img, k, kb, { pads: 1 }); // [2,3,6,6]
    const ct = op.convTranspose2d(cv, k, { pads: 1 }); // [2,2,6,6]
    const pool = op.avgPool2d(op.mul(op.sign(ct), op.abs(ct)), 2); // [2,2,3,3]
    const up = op.upsampleNearest(pool, 2); // [2,2,6,6]
    const outputs = { sm, ls: cat, t, gm, r: zs, cv, ct, up, ln_sum: op.reduceSumSquare(sm, [2], true) };
    const ps = paramValues(g, 11, 0.5);
    const feeds: Record<string, HostTensor> = {
      x: f32([2, 3, 4], randn(24, 1)),
      lab: { dtype: 'int64', dims: [2], data: BigInt64Array.of(2n, -1n) },
      img: f32([2, 2, 6, 6], randn(144, 2)),
    };
    const ort = await OrtSession.create(toOnnx(g, { outputs }), { threads: 1 });
    const want = await ort.run({ ...feeds, ...paramFeeds(g, ps) });
    await ort.release();
    const tg = TfjsGraph.create(rt, g, outputs);
    const before = rt.tf.memory().numTensors;
    const got = tg.run(feeds, ps);
    assert.equal(rt.tf.memory().numTensors, before, 'run leaks tensors');
    const errs: Record<string, number> = {};
    for (const name of Object.keys(outputs)) {
      assert.deepEqual(got[name].dims, want[name].dims, name);
      errs[name] = relErr(got[name].data as Float32Array, want[name].data as Float32Array);
    }
    console.log('forward max rel. error per output', errs);
    for (const [name, e] of Object.entries(errs)) assert.ok(e <= 1e-5, `${name}: relative error ${e}`);
  });

  it('gradients of one GET block equal the project autodiff in onnxruntime', async () => {
    const cfg = resolveConfig('GET-CPU-XS/8', { imageSize: 8, patchSize: 2, hiddenSize: 16, numHeads: 2 });
    const g = new Graph('block');
    const B = 2;
    const N = 16;
    const D = 16;
    const z = g.input('z', 'float32', [B, N, D]);
    const inj = g.input('inj', 'float32', [B, N, 3 * D]);
    const target = g.input('target', 'float32', [B, N, D]);
    const bp = blockParams(new ParamBuilder(g), 'blk', D, 2);
    const y = block(cfg, B, z, bp, inj);
    const loss = op.reduceMean(op.abs(op.sub(y, target)), [0, 1, 2]);
    const feeds = {
      z: f32([B, N, D], randn(B * N * D, 3)),
      inj: f32([B, N, 3 * D], randn(B * N * 3 * D, 4, 0.3)),
      target: f32([B, N, D], randn(B * N * D, 5)),
    };
    const worst = await compareGrads(rt, g, loss, feeds, paramValues(g, 21, 0.3));
    console.log('GET block: max rel. error over loss + gradients', worst);
  });

  it('loss and every parameter gradient of a small conditional GET equal onnxruntime', async () => {
    const cfg = resolveConfig('GET-CPU-XS/8', {
      imageSize: 8,
      patchSize: 2,
      hiddenSize: 16,
      numHeads: 2,
      numClasses: 3,
    });
    const B = 2;
    const g = new Graph('get');
    const m = buildGet(g, cfg, B);
    const { loss } = trainingObjective(m, B, 2);
    const feeds: Record<string, HostTensor> = {
      noise: f32([B, 1, 8, 8], randn(B * 64, 6)),
      image: f32([B, 1, 8, 8], randn(B * 64, 7, 0.5)),
      z0: f32([B, 16, 16], randn(B * 256, 8)),
      class_labels: { dtype: 'int64', dims: [B], data: BigInt64Array.of(2n, 0n) },
    };
    const worst = await compareGrads(rt, g, loss, feeds, paramValues(g, 31, 0.25));
    console.log(`GET (${g.params.length} params): max rel. error over loss + gradients`, worst);
  });

  it('Conv with pads and stride 2: forward, input and filter gradients (lowered, wasm)', async () => {
    const [N, C, H, W, O, kh, kw, s, p] = [2, 2, 7, 6, 3, 3, 2, 2, 1];
    const Ho = Math.floor((H + 2 * p - kh) / s) + 1;
    const Wo = Math.floor((W + 2 * p - kw) / s) + 1;
    const g = new Graph('conv');
    const r = g.input('r', 'float32', [N, O, Ho, Wo]);
    const xp = g.param('x', [N, C, H, W]);
    const wp = g.param('w', [O, C, kh, kw]);
    const bp = g.param('b', [O]);
    const [y] = g.node('Conv', [xp, wp, bp], [{ dtype: 'float32', shape: [N, O, Ho, Wo] }], {
      kernel_shape: [kh, kw],
      pads: [p, p, p, p],
      strides: [s, s],
    });
    const loss = op.reduceSum(op.mul(y, r), [0, 1, 2, 3]);
    const ps = paramValues(g, 41, 1);
    const rv = randn(N * O * Ho * Wo, 9);
    const ort = await OrtSession.create(toOnnx(g, { outputs: { y } }), { threads: 1 });
    const want = await ort.run(paramFeeds(g, ps));
    await ort.release();
    const tg = TfjsGraph.create(rt, g, { y, loss });
    const got = tg.valueAndGrads({ r: f32([N, O, Ho, Wo], rv) }, ps, 'loss');
    const eY = relErr(got.outputs.y.data as Float32Array, want.y.data as Float32Array);
    // Direct float64 sums: y[n,o,a,b] = b[o] + Σ x[n,c,a·s+i−p, b·s+j−p]·w[o,c,i,j].
    const dx = new Float64Array(N * C * H * W);
    const dw = new Float64Array(O * C * kh * kw);
    const { x: X, w: Wt } = ps;
    for (let n = 0; n < N; n++)
      for (let o = 0; o < O; o++)
        for (let a = 0; a < Ho; a++)
          for (let bb = 0; bb < Wo; bb++) {
            const gr = rv[((n * O + o) * Ho + a) * Wo + bb];
            for (let c = 0; c < C; c++)
              for (let i = 0; i < kh; i++)
                for (let j = 0; j < kw; j++) {
                  const hh = a * s + i - p;
                  const ww = bb * s + j - p;
                  if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                  const xi = ((n * C + c) * H + hh) * W + ww;
                  const wi = ((o * C + c) * kh + i) * kw + j;
                  dx[xi] += gr * Wt[wi];
                  dw[wi] += gr * X[xi];
                }
          }
    const eX = relErr(got.grads.x, dx);
    const eW = relErr(got.grads.w, dw);
    console.log('strided Conv: rel. error y, dx, dw', eY, eX, eW);
    assert.ok(eY <= 1e-5 && eX <= 1e-5 && eW <= 1e-5, `y ${eY}, dx ${eX}, dw ${eW}`);
  });

  it('stride-1 Conv gradients equal the autodiff ConvTranspose/Conv rules in onnxruntime', async () => {
    const g = new Graph('conv1');
    const x = g.input('x', 'float32', [2, 3, 5, 5]);
    const r = g.input('r', 'float32', [2, 4, 5, 5]);
    const w = g.param('w', [4, 3, 3, 3]);
    const b = g.param('b', [4]);
    const loss = op.reduceSum(op.mul(op.conv2d(x, w, b, { pads: 1 }), r), [0, 1, 2, 3]);
    const worst = await compareGrads(
      rt,
      g,
      loss,
      { x: f32([2, 3, 5, 5], randn(150, 12)), r: f32([2, 4, 5, 5], randn(200, 13)) },
      paramValues(g, 51, 1),
    );
    console.log('stride-1 Conv: max rel. error', worst);
  });

  it('a forced tfjs-node backend that is not installed is a UsageError naming the package', async () => {
    await assert.rejects(
      loadTfjs({ backend: 'node' }),
      (e: Error) =>
        e instanceof UsageError && /@tensorflow\/tfjs-node\b/.test(e.message) && /npm install/.test(e.message),
    );
  });

  it('an unknown op is an error naming the op and the node', () => {
    const g = new Graph('bad');
    const x = g.input('x', 'float32', [2]);
    const [y] = g.node('Frobnicate', [x], [{ dtype: 'float32', shape: [2] }], {}, 'frob_out');
    assert.throws(() => TfjsGraph.create(rt, g, { y }), /Frobnicate.*frob_out/);
  });
});
