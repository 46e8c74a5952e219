/**
 * One pre-LN GET block (the model's own `block` from src/get/model.ts) as a stand-alone training
 * graph, for the per-block throughput benchmark: loss = mean|block(z) − target| and its gradients.
 * The block has no QKV injection (the equilibrium blocks add one [B,N,3D] tensor: negligible cost).
 */
import { Graph, type Value } from '../../src/graph/ir.js';
import * as op from '../../src/graph/ops.js';
import { gradients } from '../../src/graph/autodiff.js';
import { toOnnx } from '../../src/graph/onnx.js';
import { type GetConfig, numTokens } from '../../src/get/config.js';
import { ParamBuilder, block, blockParams } from '../../src/get/model.js';
import { matmulFlops } from '../../src/train/engine.js';

/** The compiled-to-ONNX training graph of one block and what the bench needs to feed it. */
export interface BlockTrainGraph {
  readonly onnx: Uint8Array;
  /** Parameter names and shapes, in graph order (float32 graph inputs). */
  readonly params: readonly { name: string; shape: number[] }[];
  /** MatMul flops of the forward pass ×3 (forward + backward), the engine's convention. */
  readonly flopsPerStep: number;
}

/**
 * Builds the block of `cfg` (width, heads, tokens) with MLP ratio `mlpRatio` for z, target
 * [batch, N, D] float32 inputs, with outputs `loss` and `grad:<param>` (src/graph/autodiff.ts).
 */
export function buildBlockTrainGraph(cfg: GetConfig, mlpRatio: number, batch: number): BlockTrainGraph {
  const N = numTokens(cfg);
  const D = cfg.hiddenSize;
  const g = new Graph('get_block_train');
  const z = g.input('z', 'float32', [batch, N, D]);
  const target = g.input('target', 'float32', [batch, N, D]);
  const out = block(cfg, batch, z, blockParams(new ParamBuilder(g), 'block', D, mlpRatio), null); // [B,N,D]
  const loss = op.reduceMean(op.abs(op.sub(out, target)), [0, 1, 2]); // scalar L1
  const flopsPerStep = 3 * matmulFlops(g);
  const grads = gradients(loss, g.params);
  const outputs: Record<string, Value> = { loss };
  g.params.forEach((p, i) => (outputs[`grad:${p.name}`] = grads[i]));
  return {
    onnx: toOnnx(g, { outputs }),
    params: g.params.map((p) => ({ name: p.name, shape: p.shape as number[] })),
    flopsPerStep,
  };
}
