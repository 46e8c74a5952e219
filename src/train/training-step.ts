/**
 * What every training engine shares, in a module of its own so the engines (src/train/engine.ts,
 * src/train/tfjs-engine.ts) import it without importing each other: the batch and step types, the
 * TrainingEngine interface, the training graph of one step, its data feeds and its MatMul flops.
 */
import { Graph } from '../graph/ir.js';
import type { HostTensor } from '../graph/session.js';
import { type GetConfig, numTokens } from '../get/config.js';
import { buildGet, trainingObjective, type ParamSpec, type TrainingObjective } from '../get/model.js';
import type { ParamStore } from './params.js';
import { TFJS_BACKENDS, TRAINING_ENGINES, type TrainingEngineKind } from '../spec/names.js';

/** One training mini-batch of pairs. */
export interface TrainBatch {
  /** N(0, I) noise [B,C,H,W] float32. */
  readonly noise: Float32Array;
  /** Teacher image [B,C,H,W] float32. */
  readonly image: Float32Array;
  /** Class labels [B] (conditional models). */
  readonly labels: Int32Array | null;
}

export interface StepResult {
  /** Weighted fixed-point-correction loss. */
  readonly loss: number;
  /** L1 of each decoded iterate x̂_1 … x̂_K (length K = iterations). */
  readonly l1: readonly number[];
}

/** The forward pass of one batch with every iterate (an engine created with `iterates: true`). */
export interface ForwardResult extends StepResult {
  /** z_1..z_K, each float32 [B,N,D] (z_0 is the caller's input). */
  readonly states: readonly Float32Array[];
  /** x̂_k = decode(z_k) for k = 1..K, each float32 [B,C,H,W]. */
  readonly images: readonly Float32Array[];
}

// The engine and tfjs backend names are defined once, in src/spec/names.ts.
export { TFJS_BACKENDS, TRAINING_ENGINES, type TrainingEngineKind };

/**
 * One GET training step at fixed config, batch and iteration count K, whatever runs it. Both engines
 * compute the same function (the training graph of buildGet + trainingObjective) and lay the gradient
 * out in ParamStore order, so a run may switch engine between checkpoints.
 */
export interface TrainingEngine {
  /** `ort` or `tfjs`. */
  readonly name: TrainingEngineKind;
  /**
   * Engine and backend in words, for logs, e.g. `ort (onnxruntime, providers cpu)`,
   * `tfjs (wasm, @tensorflow/tfjs-backend-wasm)`.
   */
  readonly describe: string;
  readonly cfg: GetConfig;
  readonly batch: number;
  readonly iterations: number;
  /** The parameters in declaration order (the ParamStore layout of params and grad). */
  readonly specs: readonly ParamSpec[];
  /** Floating-point operations of one step (forward + backward): the forward graph's MatMul flops ×3. */
  readonly flopsPerStep: number;
  /**
   * Loss and gradients at `params` for one batch; writes the flat gradient (float32, length
   * params.size, ParamStore order) into `grad`.
   * @param z0 fixed-point start state [B,N,D] float32, N(0, I).
   * @throws Error when a conditional model gets no labels, or the backend rejects the feeds.
   */
  step(params: ParamStore, data: TrainBatch, z0: Float32Array, grad: Float32Array): Promise<StepResult>;
  /** Frees the session / tensors. */
  close(): Promise<void>;
}

/** The forward graph of one training step (buildGet + trainingObjective) with its MatMul flops. */
export function buildTrainingGraph(
  cfg: GetConfig,
  batch: number,
  iterations: number,
): {
  graph: Graph;
  specs: readonly ParamSpec[];
  objective: TrainingObjective;
  forwardFlops: number;
} {
  const graph = new Graph('get_train');
  const m = buildGet(graph, cfg, batch);
  const objective = trainingObjective(m, batch, iterations);
  return { graph, specs: m.specs, objective, forwardFlops: matmulFlops(graph) };
}

/**
 * The data feeds of one step as host tensors (parameters not included): noise/image [B,C,H,W]
 * float32, z0 [B,N,D] float32, class_labels [B] int64 (conditional models only).
 * @throws Error when a conditional model gets no labels.
 */
export function stepFeeds(
  cfg: GetConfig,
  batch: number,
  data: TrainBatch,
  z0: Float32Array,
): Record<string, HostTensor> {
  const { channels: C, imageSize: H, hiddenSize: D } = cfg;
  const B = batch;
  const feeds: Record<string, HostTensor> = {
    noise: { dtype: 'float32', dims: [B, C, H, H], data: data.noise },
    image: { dtype: 'float32', dims: [B, C, H, H], data: data.image },
    z0: { dtype: 'float32', dims: [B, numTokens(cfg), D], data: z0 },
  };
  if (cfg.numClasses > 0) {
    if (!data.labels) throw new Error('a conditional model needs class labels in every batch');
    feeds.class_labels = { dtype: 'int64', dims: [B], data: BigInt64Array.from(data.labels, (v) => BigInt(v)) };
  }
  return feeds;
}

/**
 * 2·m·k·n summed over the MatMul nodes of a graph with static shapes (the dominant cost of GET); NaN with
 * symbolic dims.
 */
export function matmulFlops(g: Graph): number {
  let flops = 0;
  for (const n of g.nodes) {
    if (n.op !== 'MatMul') continue;
    const a = n.inputs[0];
    const out = n.outputs[0].shape as number[];
    const k = a.shape[a.shape.length - 1] as number;
    flops += 2 * k * out.reduce((x, y) => x * y, 1);
  }
  return flops;
}
