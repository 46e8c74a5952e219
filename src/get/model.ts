/**
 * The Generative Equilibrium Transformer as one graph definition (Geng, Pokle & Kolter, NeurIPS 2023,
 * §3; locuslab/get models/get.py). Training, export and serving all build their graphs from here.
 *
 *   noise e [B,C,H,W] ─patchify→ [B,N,p²C] ─W_pe→ [B,N,D] + PE
 *     ─InjectionT (L_inj pre-LN blocks, QKV += class emb)→ x [B,N,D]
 *     ─W_inj (no bias)→ U [B,N,3D·L_eq] → u_1..u_L (each [B,N,3D])
 *   z_0 ~ N(0,I) [B,N,D];  z_{k+1} = f(z_k) = EqBlock_L(…EqBlock_1(z_k; c+u_1)…; c+u_L)
 *   decode(z) = unpatchify(LN_f(z) W_out + b_out) → [B,C,H,W]
 *
 * Weights are [in, out] (x @ W); the patch-embedding rows follow PyTorch's conv weight order
 * (channel, row-in-patch, col-in-patch); the decoder's columns follow (row, col, channel).
 */
import type { Dim, Value } from '../graph/ir.js';
import { Graph } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { type GetConfig, numTokens } from './config.js';

/** How a parameter is initialised (reference `initialize_weights`, get-reference.md §2.6). */
export type Init =
  | { kind: 'xavier'; fanIn: number; fanOut: number }
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'normal'; std: number };

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly init: Init;
}

/** Fixed-point-correction loss weights γ^(K−k), k = 1..K, γ = 0.8 (torchdeq loss/correction.py). */
export function correctionWeights(iterations: number, gamma = 0.8): number[] {
  return Array.from({ length: iterations }, (_, k) => gamma ** (iterations - 1 - k));
}

/**
 * Fixed 2-D sin-cos positional embedding [N, D] (MAE style): the first D/2 dims encode the column j,
 * the last D/2 the row i; each half is [sin(pos·ω), cos(pos·ω)] with ω_k = 10000^(−k/(D/4)).
 * Source: get-reference.md §2.1.
 */
export function sinCosPosEmbed(hiddenSize: number, gridSize: number): Float32Array {
  if (hiddenSize % 4 !== 0) throw new Error(`positional embedding needs hidden size divisible by 4, got ${hiddenSize}`);
  const D = hiddenSize;
  const q = D / 4;
  const out = new Float32Array(gridSize * gridSize * D);
  for (let i = 0; i < gridSize; i++) {
    for (let j = 0; j < gridSize; j++) {
      const row = out.subarray((i * gridSize + j) * D, (i * gridSize + j + 1) * D);
      for (let k = 0; k < q; k++) {
        const w = 1 / 10000 ** (k / q);
        row[k] = Math.sin(j * w);
        row[q + k] = Math.cos(j * w);
        row[2 * q + k] = Math.sin(i * w);
        row[3 * q + k] = Math.cos(i * w);
      }
    }
  }
  return out;
}

/** Declares a model's parameters in a graph and records their init specs. */
export class ParamBuilder {
  readonly specs: ParamSpec[] = [];
  constructor(private readonly g: Graph) {}
  add(name: string, shape: number[], init: Init): Value {
    this.specs.push({ name, shape, init });
    return this.g.param(name, shape);
  }
  linear(name: string, fanIn: number, fanOut: number, bias = true): { w: Value; b?: Value } {
    const w = this.add(`${name}.weight`, [fanIn, fanOut], { kind: 'xavier', fanIn, fanOut });
    return bias ? { w, b: this.add(`${name}.bias`, [fanOut], { kind: 'zeros' }) } : { w };
  }
  layerNorm(name: string, d: number): { scale: Value; bias: Value } {
    return {
      scale: this.add(`${name}.weight`, [d], { kind: 'ones' }),
      bias: this.add(`${name}.bias`, [d], { kind: 'zeros' }),
    };
  }
}

/**
 * The parameters of one pre-LN block (names as in locuslab/get: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2).
 */
export interface BlockParams {
  ln1: { scale: Value; bias: Value };
  qkv: { w: Value; b?: Value };
  proj: { w: Value; b?: Value };
  ln2: { scale: Value; bias: Value };
  fc1: { w: Value; b?: Value };
  fc2: { w: Value; b?: Value };
}

/** Declares one block's parameters under `name` (hidden width D, MLP hidden ⌊D·mlpRatio⌋). */
export function blockParams(p: ParamBuilder, name: string, D: number, mlpRatio: number): BlockParams {
  const h = Math.floor(D * mlpRatio);
  return {
    ln1: p.layerNorm(`${name}.norm1`, D),
    qkv: p.linear(`${name}.attn.qkv`, D, 3 * D),
    proj: p.linear(`${name}.attn.proj`, D, D),
    ln2: p.layerNorm(`${name}.norm2`, D),
    fc1: p.linear(`${name}.mlp.fc1`, D, h),
    fc2: p.linear(`${name}.mlp.fc2`, h, D),
  };
}

const affine = (x: Value, l: { w: Value; b?: Value }) => (l.b ? op.add(op.matmul(x, l.w), l.b) : op.matmul(x, l.w));

/**
 * One pre-LN GET block (get-reference.md §2.2): z + Attn(LN₁ z; qkv += inj), then + MLP(LN₂ z).
 * @param z [B,N,D]; @param inj additive QKV injection broadcastable to [B,N,3D], or null.
 */
export function block(cfg: GetConfig, batch: Dim, z: Value, bp: BlockParams, inj: Value | null): Value {
  const D = cfg.hiddenSize;
  const nh = cfg.numHeads;
  const hd = D / nh;
  const N = numTokens(cfg);
  let qkv = affine(op.layerNorm(z, bp.ln1.scale, bp.ln1.bias, cfg.layerNormEps), bp.qkv); // [B,N,3D]
  if (inj) qkv = op.add(qkv, inj); // [B,N,3D]
  const [q, k, v] = op.split(qkv, -1, [D, D, D]); // each [B,N,D]
  const heads = (x: Value, perm: number[]) => op.transpose(op.reshape(x, [batch, N, nh, hd]), perm);
  const qh = op.mul(heads(q, [0, 2, 1, 3]), op.scalar(q, 1 / Math.sqrt(hd))); // [B,nh,N,hd] · 1/√hd
  const kt = heads(k, [0, 2, 3, 1]); // [B,nh,hd,N]
  const vh = heads(v, [0, 2, 1, 3]); // [B,nh,N,hd]
  const attn = op.matmul(op.softmax(op.matmul(qh, kt)), vh); // [B,nh,N,hd]
  const merged = op.reshape(op.transpose(attn, [0, 2, 1, 3]), [batch, N, D]); // [B,N,D]
  z = op.add(z, affine(merged, bp.proj)); // [B,N,D]
  const hidden = op.gelu(affine(op.layerNorm(z, bp.ln2.scale, bp.ln2.bias, cfg.layerNormEps), bp.fc1)); // [B,N,h]
  return op.add(z, affine(hidden, bp.fc2)); // [B,N,D]
}

export interface GetInputs {
  /** N(0, I) noise [B,C,H,W] float32. */
  noise: Value;
  /** Class labels [B] int64 (conditional models only). */
  labels: Value | null;
  /** Fixed-point start state z_0 [B,N,D] float32 (N(0, I) in the reference). */
  z0: Value;
}

/** The built GET: its injection and equilibrium function, as graph-building closures. */
export interface GetModel {
  readonly cfg: GetConfig;
  readonly graph: Graph;
  readonly specs: readonly ParamSpec[];
  /** Fixed positional embedding [N, D] (a constant, counted by the reference as a parameter). */
  readonly posEmbed: Float32Array;
  readonly inputs: GetInputs;
  /** f(z): one application of the L_eq weight-tied blocks, [B,N,D] → [B,N,D]. */
  f(z: Value): Value;
  /** decode(z): [B,N,D] → image [B,C,H,W]. */
  decode(z: Value): Value;
}

/**
 * Declares GET's inputs and parameters in `g` and computes the injection once.
 * @param batch a fixed batch size (training) or a symbolic name (export, e.g. `'batch'`).
 */
export function buildGet(g: Graph, cfg: GetConfig, batch: Dim): GetModel {
  const { channels: C, imageSize: H, patchSize: p, hiddenSize: D } = cfg;
  const s = H / p; // patches per side
  const N = numTokens(cfg);
  const patchIn = C * p * p;
  const P = new ParamBuilder(g);

  const noise = g.input('noise', 'float32', [batch, C, H, H]);
  const labels = cfg.numClasses > 0 ? g.input('class_labels', 'int64', [batch]) : null;
  const z0 = g.input('z0', 'float32', [batch, N, D]);

  const patchEmbed = P.add('x_embedder.proj.weight', [patchIn, D], { kind: 'xavier', fanIn: patchIn, fanOut: D });
  const patchBias = P.add('x_embedder.proj.bias', [D], { kind: 'zeros' });
  const classEmbed = labels
    ? P.add('y_embedder.embedding_table', [cfg.numClasses, 3 * D], { kind: 'normal', std: 0.02 })
    : null;
  const injBlocks = Array.from({ length: cfg.injectionDepth }, (_, i) =>
    blockParams(P, `blocks.${i}`, D, cfg.injectionMlpRatio),
  );
  const injProj = P.add('qkv_inject.weight', [D, 3 * D * cfg.equilibriumDepth], {
    kind: 'xavier',
    fanIn: D,
    fanOut: 3 * D * cfg.equilibriumDepth,
  });
  const eqBlocks = Array.from({ length: cfg.equilibriumDepth }, (_, i) =>
    blockParams(P, `deq_blocks.${i}`, D, cfg.equilibriumMlpRatio),
  );
  const finalNorm = P.layerNorm('final_layer.norm_final', D);
  const finalLinear = {
    w: P.add('final_layer.linear.weight', [D, patchIn], { kind: 'zeros' }),
    b: P.add('final_layer.linear.bias', [patchIn], { kind: 'zeros' }),
  };
  const posEmbed = sinCosPosEmbed(D, s);
  const pe = g.constant({ dtype: 'float32', dims: [N, D], data: posEmbed }, 'pos_embed');

  // Patchify: [B,C,H,W] → [B,C,s,p,s,p] → [B,s,s,C,p,p] → [B,N,C·p·p].
  const patches = op.reshape(op.transpose(op.reshape(noise, [batch, C, s, p, s, p]), [0, 2, 4, 1, 3, 5]), [
    batch,
    N,
    patchIn,
  ]);
  let x = op.add(op.add(op.matmul(patches, patchEmbed), patchBias), pe); // [B,N,D]
  const c =
    classEmbed && labels
      ? op.reshape(op.matmul(op.oneHot(labels, cfg.numClasses), classEmbed), [batch, 1, 3 * D])
      : null; // [B,1,3D]
  for (const bp of injBlocks) x = block(cfg, batch, x, bp, c);
  const U = op.matmul(x, injProj); // [B,N,3D·L_eq]
  // each [B,N,3D], c folded in once
  const us = op.split(U, -1, Array(cfg.equilibriumDepth).fill(3 * D)).map((u) => (c ? op.add(u, c) : u));

  return {
    cfg,
    graph: g,
    specs: P.specs,
    posEmbed,
    inputs: { noise, labels, z0 },
    f(z: Value): Value {
      for (let l = 0; l < eqBlocks.length; l++) z = block(cfg, batch, z, eqBlocks[l], us[l]);
      return z;
    },
    decode(z: Value): Value {
      const y = affine(op.layerNorm(z, finalNorm.scale, finalNorm.bias, cfg.layerNormEps), finalLinear); // [B,N,p·p·C]
      // Unpatchify: [B,s,s,p,p,C] → [B,C,s,p,s,p] → [B,C,H,W].
      return op.reshape(op.transpose(op.reshape(y, [batch, s, s, p, p, C]), [0, 5, 1, 3, 2, 4]), [batch, C, H, H]);
    },
  };
}

/**
 * The parameter specs (names, shapes, inits) of a config, in declaration order: what a checkpoint
 * must hold. Builds a throwaway graph; cheap (no weights are allocated).
 * @throws Error when the config is inconsistent (e.g. hidden size not divisible by 4).
 */
export function paramSpecs(cfg: GetConfig): readonly ParamSpec[] {
  return buildGet(new Graph('get_specs'), cfg, 1).specs;
}

/** The training graph's values (see {@link trainingObjective}). */
export interface TrainingObjective {
  /** Weighted fixed-point-correction loss, scalar float32. */
  readonly loss: Value;
  /** mean|x̂_k − x| for k = 1..K, each a scalar. */
  readonly l1: Value[];
  /** The target input `image` [B,C,H,W] float32. */
  readonly image: Value;
  /** The states z_1..z_K [B,N,D] (z_k = f(z_{k−1}); z_0 is the input). */
  readonly states: Value[];
  /** Their decodings x̂_1..x̂_K [B,C,H,W]. */
  readonly decoded: Value[];
}

/**
 * Training graph: K differentiable fixed-point iterations from z_0 (backprop through all of them, as
 * torchdeq's phantom gradient with τ = 1 and sup_gap 1 reduces to), each state decoded, loss
 * Σ_k γ^(K−k)·mean|x̂_k − x| (get-reference.md §3.1). States and decodings are returned for callers
 * that want them as extra outputs (tests); unused values are not emitted.
 */
export function trainingObjective(m: GetModel, batch: number, iterations = 6): TrainingObjective {
  const { channels: C, imageSize: H } = m.cfg;
  const image = m.graph.input('image', 'float32', [batch, C, H, H]);
  const weights = correctionWeights(iterations);
  let z = m.inputs.z0;
  let loss: Value | null = null;
  const l1: Value[] = [];
  const states: Value[] = [];
  const decoded: Value[] = [];
  for (let k = 0; k < iterations; k++) {
    z = m.f(z); // z_{k+1} [B,N,D]
    const x = m.decode(z); // x̂_{k+1} [B,C,H,W]
    states.push(z);
    decoded.push(x);
    const err = op.reduceMean(op.abs(op.sub(x, image)), [0, 1, 2, 3]); // scalar L1
    l1.push(err);
    const term = op.mul(err, op.scalar(err, weights[k]));
    loss = loss ? op.add(loss, term) : term;
  }
  return { loss: loss as Value, l1, image, states, decoded };
}

/**
 * Inference graph (torchdeq fixed_point_iter, get-reference.md §3.2): K iterations from z_0; per
 * sample keep the f(z_k) with the lowest residual ‖f(z_k) − z_k‖₂ (the first is always taken; ties
 * keep the earlier); decode it. No data-dependent control flow.
 * @returns image [B,C,H,W] and the chosen residual² per sample [B].
 */
export function inferenceOutput(m: GetModel, batch: Dim, iterations = 6): { image: Value; residual2: Value } {
  let z = m.inputs.z0;
  let best: Value | null = null;
  let bestR: Value | null = null;
  for (let k = 0; k < iterations; k++) {
    const fz = m.f(z); // [B,N,D]
    const r = op.reduceSumSquare(op.sub(fz, z), [1, 2]); // [B]
    if (!best || !bestR) {
      best = fz;
      bestR = r;
    } else {
      const better = op.reshape(op.less(r, bestR), [batch, 1, 1]); // [B,1,1]
      best = op.where(better, fz, best);
      bestR = op.min(r, bestR);
    }
    z = fz;
  }
  return { image: m.decode(best as Value), residual2: bestR as Value };
}
