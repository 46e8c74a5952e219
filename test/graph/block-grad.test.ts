/**
 * A whole pre-LN transformer block (the GET block, get-reference.md §2.2) with an additive QKV
 * injection input and an L1 loss: every parameter gradient (and the injection's and the input's) from
 * onnxruntime vs central finite differences of the float64 reference. B=2, N=4, D=8, 2 heads, MLP 4·D.
 */
import { test } from 'node:test';
import { Graph, type Value } from '../../src/graph/ir.js';
import * as op from '../../src/graph/ops.js';
import { checkGradients, mulberry32, randn, randomParams } from './helpers.js';

const [B, N, D, H] = [2, 4, 8, 2];
const hd = D / H;

function block(g: Graph, x: Value, inj: Value): Value {
  const ln = (name: string, v: Value) =>
    op.layerNorm(v, g.param(`${name}.scale`, [D]), g.param(`${name}.bias`, [D]), 1e-6);
  const linear = (name: string, v: Value, i: number, o: number) =>
    op.add(op.matmul(v, g.param(`${name}.w`, [i, o])), g.param(`${name}.b`, [o]));
  const qkv = op.add(linear('qkv', ln('ln1', x), D, 3 * D), inj); // [B,N,3D]
  const [q, k, v] = op.split(qkv, -1, [D, D, D]); // each [B,N,D]
  const heads = (t: Value, perm: number[]) => op.transpose(op.reshape(t, [B, N, H, hd]), perm);
  const qh = op.mul(heads(q, [0, 2, 1, 3]), op.scalar(q, 1 / Math.sqrt(hd))); // [B,H,N,hd]
  const att = op.softmax(op.matmul(qh, heads(k, [0, 2, 3, 1]))); // [B,H,N,N]
  const o = op.reshape(op.transpose(op.matmul(att, heads(v, [0, 2, 1, 3])), [0, 2, 1, 3]), [B, N, D]); // [B,N,D]
  const x1 = op.add(x, linear('proj', o, D, D)); // [B,N,D]
  const hidden = op.gelu(linear('fc1', ln('ln2', x1), D, 4 * D)); // [B,N,4D]
  return op.add(x1, linear('fc2', hidden, 4 * D, D)); // [B,N,D]
}

test('pre-LN transformer block [2,4,8], 2 heads, injection, L1 loss: all gradients vs finite differences', async () => {
  const rng = mulberry32(2024);
  const g = new Graph('block');
  const x = g.input('x', 'float32', [B, N, D]);
  const inj = g.input('inj', 'float32', [B, N, 3 * D]);
  const target = g.input('target', 'float32', [B, N, D]);
  const y = block(g, x, inj);
  const loss = op.reduceMean(op.abs(op.sub(y, target)), [0, 1, 2]);
  // Weights at ~Xavier scale, LayerNorm scales near 1 so every path carries signal.
  const overrides: Record<string, (n: number) => Float32Array> = {};
  for (const p of g.params) {
    if (p.name.endsWith('.scale')) overrides[p.name] = (n) => randn(rng, n, 0.2).map((v) => 1 + v);
    else if (p.name.endsWith('.w'))
      overrides[p.name] = (n) => randn(rng, n, Math.sqrt(2 / ((p.shape[0] as number) + (p.shape[1] as number))));
    else overrides[p.name] = (n) => randn(rng, n, 0.1);
  }
  const params = randomParams(g, rng, overrides);
  const t = (n: number, scale = 1) => ({
    dtype: 'float32' as const,
    dims: [B, N, n],
    data: randn(rng, B * N * n, scale),
  });
  const feeds = { x: t(D), inj: t(3 * D, 0.5), target: t(D) };
  await checkGradients({ graph: g, loss, wrt: [...g.params, x, inj], params, feeds, forward: { y } });
});
