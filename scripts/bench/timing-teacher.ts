/**
 * A transformer EDM denoiser network F built with the project's graph IR, used only as a timing
 * stand-in for a trained teacher in the `onestep` section: untrained, so its samples are not images,
 * but its cost per evaluation is that of a real ViT-style denoiser of the given size.
 *
 *   x [B,C,H,W] ─patchify→ [B,N,p²C] ─W_pe→ [B,N,D] + PE (fixed sin-cos)
 *     + cond [B,1,D],  cond = GELU(c_noise·w_σ + b_σ) + E[y]        (σ and class embedding, added to every token)
 *     ─L pre-LN blocks (GET's own `block`, no QKV injection)→ LN_f → W_out → unpatchify → F [B,C,H,W]
 *
 * I/O follows the EDM teacher contract of src/teacher/onnx-teacher.ts: inputs `x` float32 [B,C,H,W]
 * (the preconditioned c_in·x), `c_noise` float32 [B] (¼·ln σ), `class_labels` int64 [B] (when
 * numClasses > 0); output `F` float32 [B,C,H,W]; metadata `num_classes`.
 */
import { type Dim, Graph, type Value } from '../../src/graph/ir.js';
import * as op from '../../src/graph/ops.js';
import { toOnnx } from '../../src/graph/onnx.js';
import { type GetConfig, numTokens } from '../../src/get/config.js';
import { ParamBuilder, type ParamSpec, block, blockParams, sinCosPosEmbed } from '../../src/get/model.js';
import { matmulFlops } from '../../src/train/engine.js';
import { initParams } from '../../src/train/params.js';
import { perturbZeroInits } from './util.js';

/** Size of the stand-in teacher network. */
export interface TimingTeacherConfig {
  readonly channels: number;
  /** Square image side H = W. */
  readonly imageSize: number;
  readonly patchSize: number;
  /** Hidden width D (divisible by 4 for the positional embedding, and by numHeads). */
  readonly hiddenSize: number;
  readonly numHeads: number;
  /** Transformer blocks L. */
  readonly depth: number;
  readonly mlpRatio: number;
  /** 0 = unconditional (no class_labels input). */
  readonly numClasses: number;
}

/** The built network: its graph output F and parameter specs. */
interface Built {
  readonly graph: Graph;
  readonly F: Value;
  readonly specs: readonly ParamSpec[];
}

/** The GetConfig view `block` reads (width, heads, tokens, LayerNorm ε). */
const blockConfig = (c: TimingTeacherConfig): GetConfig => ({
  name: 'timing-teacher',
  channels: c.channels,
  imageSize: c.imageSize,
  patchSize: c.patchSize,
  hiddenSize: c.hiddenSize,
  numHeads: c.numHeads,
  injectionDepth: 0,
  injectionMlpRatio: c.mlpRatio,
  equilibriumDepth: 1,
  equilibriumMlpRatio: c.mlpRatio,
  numClasses: c.numClasses,
  layerNormEps: 1e-6,
});

/** Declares the network in a fresh graph at batch `batch` (a number, or a symbolic name like `'batch'`). */
function build(c: TimingTeacherConfig, batch: Dim): Built {
  const cfg = blockConfig(c);
  const { channels: C, imageSize: H, patchSize: p, hiddenSize: D } = c;
  const s = H / p;
  const N = numTokens(cfg);
  const patchIn = C * p * p;
  const g = new Graph('timing_teacher');
  const P = new ParamBuilder(g);
  const x = g.input('x', 'float32', [batch, C, H, H]);
  const cNoise = g.input('c_noise', 'float32', [batch]);
  const labels = c.numClasses > 0 ? g.input('class_labels', 'int64', [batch]) : null;

  const pe = P.linear('x_embedder', patchIn, D);
  const sigmaW = P.add('sigma_embedder.weight', [1, D], { kind: 'normal', std: 1 });
  const sigmaB = P.add('sigma_embedder.bias', [D], { kind: 'zeros' });
  const classTable = labels
    ? P.add('y_embedder.embedding_table', [c.numClasses, D], { kind: 'normal', std: 0.02 })
    : null;
  const blocks = Array.from({ length: c.depth }, (_, i) => blockParams(P, `blocks.${i}`, D, c.mlpRatio));
  const finalNorm = P.layerNorm('final_layer.norm_final', D);
  const out = P.linear('final_layer.linear', D, patchIn);
  const pos = g.constant({ dtype: 'float32', dims: [N, D], data: sinCosPosEmbed(D, s) }, 'pos_embed');

  // Patchify [B,C,H,W] → [B,N,C·p·p] (GET's order), embed, add positions.
  const patches = op.reshape(op.transpose(op.reshape(x, [batch, C, s, p, s, p]), [0, 2, 4, 1, 3, 5]), [
    batch,
    N,
    patchIn,
  ]);
  let h = op.add(op.add(op.matmul(patches, pe.w), pe.b!), pos); // [B,N,D]
  // Conditioning [B,1,D]: σ through a learned direction (outer product, an elementwise Mul) and the class row.
  let cond = op.gelu(op.add(op.mul(op.reshape(cNoise, [batch, 1, 1]), sigmaW), sigmaB)); // [B,1,D]
  if (classTable && labels)
    cond = op.add(cond, op.reshape(op.matmul(op.oneHot(labels, c.numClasses), classTable), [batch, 1, D]));
  h = op.add(h, cond);
  for (const bp of blocks) h = block(cfg, batch, h, bp, null); // [B,N,D]
  // y: [B,N,p·p·C]
  const y = op.add(op.matmul(op.layerNorm(h, finalNorm.scale, finalNorm.bias, cfg.layerNormEps), out.w), out.b!);
  const F = op.reshape(op.transpose(op.reshape(y, [batch, s, s, p, p, C]), [0, 5, 1, 3, 2, 4]), [batch, C, H, H]);
  return { graph: g, F, specs: P.specs };
}

/** The stand-in teacher as ONNX bytes, with its size and cost. */
export interface TimingTeacher {
  /** EDM-contract model (symbolic batch `batch`), weights baked in as initialisers. */
  readonly onnx: Uint8Array;
  /** Trainable parameters (the fixed positional embedding N·D not included). */
  readonly paramCount: number;
  /** MatMul flops (2·m·k·n) of one network evaluation per image. */
  readonly flopsPerEval: number;
}

/**
 * Builds the network with reference-style initial weights (Xavier, zero biases, LN 1/0, class table
 * N(0, 0.02²)), zero initialisations then perturbed to N(0, 0.02²) (as the train section does), seed `seed`.
 * @throws Error when the patch does not divide the image or D is not divisible by 4 and numHeads.
 */
export function buildTimingTeacher(c: TimingTeacherConfig, seed = 0): TimingTeacher {
  if (c.imageSize % c.patchSize !== 0)
    throw new Error(`timing teacher: patch ${c.patchSize} does not divide image ${c.imageSize}`);
  if (c.hiddenSize % 4 !== 0 || c.hiddenSize % c.numHeads !== 0)
    throw new Error(`timing teacher: hidden size ${c.hiddenSize} must be divisible by 4 and by ${c.numHeads} heads`);
  const net = build(c, 'batch');
  const params = initParams(net.specs, seed);
  perturbZeroInits(params, seed + 1);
  const onnx = toOnnx(net.graph, {
    outputs: { F: net.F },
    paramValues: (p) => params.view(p.name),
    metadata: { num_classes: String(c.numClasses) },
  });
  return { onnx, paramCount: params.size, flopsPerEval: matmulFlops(build(c, 1).graph) };
}
