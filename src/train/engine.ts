/**
 * Training engines: what one GET training step (loss + every parameter gradient) runs on.
 *   ort  (default) GET's forward and its generated backward graph (src/graph/autodiff.ts) in one
 *        onnxruntime session (CPU here, the CUDA execution provider in GPU images).
 *   tfjs the same forward graph interpreted with TensorFlow.js ops, gradients by tfjs autograd
 *        (src/train/tfjs-engine.ts; tfjs-node-gpu in the trainer's GPU image, wasm/cpu elsewhere).
 * Parameters are fed from the flat ParamStore each step; the loss, the per-iteration L1 and one
 * gradient per parameter come back, gathered into one flat array (ParamStore order) for AdamW, so
 * optimizer, EMA and checkpoints are engine-agnostic. See docs/architecture.md and README.md "Training engines".
 */
import { Graph } from '../graph/ir.js';
import { gradients } from '../graph/autodiff.js';
import { toOnnx } from '../graph/onnx.js';
import { type HostTensor, OrtSession } from '../graph/session.js';
import type { GetConfig } from '../get/config.js';
import { numTokens } from '../get/config.js';
import { buildGet, trainingObjective, type ParamSpec, type TrainingObjective } from '../get/model.js';
import type { ParamStore } from './params.js';
import type { TfjsBackendChoice } from '../graph/tfjs-backend.js';

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

// The engine and backend names are defined once in src/spec/names.ts.
import { TFJS_BACKENDS, TRAINING_ENGINES, type TrainingEngineKind } from '../spec/names.js';
export { TFJS_BACKENDS, TRAINING_ENGINES, type TrainingEngineKind };

/**
 * One GET training step at fixed config, batch and iteration count K, whatever runs it. Both engines
 * compute the same function (the training graph of buildGet + trainingObjective) and lay the gradient
 * out in ParamStore order, so a run may switch engine between checkpoints.
 */
export interface TrainingEngine {
  /** `ort` or `tfjs`. */
  readonly name: TrainingEngineKind;
  /** Engine and backend in words, for logs, e.g. `ort (onnxruntime, providers cpu)`, `tfjs (wasm, @tensorflow/tfjs-backend-wasm)`. */
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

export interface CreateEngineOptions {
  /** onnxruntime intra-op threads (ort; default all cores). */
  readonly threads?: number;
  /** tfjs backend (tfjs only; default `auto`). */
  readonly tfjsBackend?: TfjsBackendChoice;
  /** Receives one-line notes (which tfjs backend was loaded, and why others were not). */
  readonly log?: (msg: string) => void;
}

/**
 * Builds the training engine `kind` for `cfg` at a fixed batch and K = `iterations`. The tfjs engine
 * (and TensorFlow.js itself) is imported only when asked for: tfjs packages are optional dependencies.
 * @throws UsageError when a forced tfjs backend's package is missing (the message names the package);
 *   Error for an inconsistent config or a graph the backend rejects.
 */
export async function createTrainingEngine(
  kind: TrainingEngineKind,
  cfg: GetConfig,
  batch: number,
  iterations: number,
  o: CreateEngineOptions = {},
): Promise<TrainingEngine> {
  if (kind === 'ort') return OrtTrainingEngine.create(cfg, batch, iterations, o.threads);
  const { TfjsTrainingEngine } = await import('./tfjs-engine.js');
  return TfjsTrainingEngine.create(cfg, batch, iterations, { backend: o.tfjsBackend, log: o.log });
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

export interface EngineOptions {
  /** Also emit z_k and x̂_k as outputs (for {@link OrtTrainingEngine.forward}); off for training. */
  readonly iterates?: boolean;
}

export class OrtTrainingEngine implements TrainingEngine {
  readonly name = 'ort' as const;
  private constructor(
    readonly cfg: GetConfig,
    readonly batch: number,
    readonly iterations: number,
    readonly specs: readonly ParamSpec[],
    private readonly session: OrtSession,
    /** Floating-point operations of one step (forward + backward), counted from the graph's MatMuls ×3. */
    readonly flopsPerStep: number,
    private readonly iterates: boolean,
  ) {}

  /**
   * Builds the training graph for a fixed batch size and compiles it.
   * @throws when the config is inconsistent (see resolveConfig) or onnxruntime rejects the graph.
   */
  static async create(
    cfg: GetConfig,
    batch: number,
    iterations = 6,
    threads?: number,
    opts: EngineOptions = {},
  ): Promise<OrtTrainingEngine> {
    const { graph: g, specs, objective, forwardFlops } = buildTrainingGraph(cfg, batch, iterations);
    const { loss, l1, states, decoded } = objective;
    const grads = gradients(loss, g.params);
    const outputs: Record<string, (typeof grads)[number]> = { loss };
    l1.forEach((v, k) => (outputs[`l1_${k + 1}`] = v));
    g.params.forEach((p, i) => (outputs[`grad:${p.name}`] = grads[i]));
    if (opts.iterates) {
      states.forEach((v, k) => (outputs[`z_${k + 1}`] = v));
      decoded.forEach((v, k) => (outputs[`x_hat_${k + 1}`] = v));
    }
    const session = await OrtSession.create(toOnnx(g, { outputs }), { threads });
    return new OrtTrainingEngine(cfg, batch, iterations, specs, session, 3 * forwardFlops, opts.iterates ?? false);
  }

  get describe(): string {
    return `ort (onnxruntime, providers ${this.session.executionProviders.join(',')})`;
  }

  private feeds(params: ParamStore, data: TrainBatch, z0: Float32Array): Record<string, HostTensor> {
    const feeds = stepFeeds(this.cfg, this.batch, data, z0);
    for (const s of this.specs) feeds[s.name] = { dtype: 'float32', dims: s.shape, data: params.view(s.name) };
    return feeds;
  }

  private stepResult(out: Record<string, HostTensor>): StepResult {
    return {
      loss: (out.loss.data as Float32Array)[0],
      l1: Array.from({ length: this.iterations }, (_, k) => (out[`l1_${k + 1}`].data as Float32Array)[0]),
    };
  }

  /**
   * Computes loss and gradients at `params` for one batch; writes the flat gradient into `grad`
   * (float32, length params.size).
   * @param z0 fixed-point start state [B,N,D] float32, N(0, I).
   * @throws Error when a conditional model gets no labels, or onnxruntime rejects the feeds.
   */
  async step(params: ParamStore, data: TrainBatch, z0: Float32Array, grad: Float32Array): Promise<StepResult> {
    const out = await this.session.run(this.feeds(params, data, z0));
    for (const s of this.specs) {
      const o = params.offsets.get(s.name)!;
      grad.set(out[`grad:${s.name}`].data as Float32Array, o.offset);
    }
    return this.stepResult(out);
  }

  /**
   * The training graph's forward pass at `params`: loss, per-iteration L1, and every state z_k and
   * decoding x̂_k (k = 1..K). Gradients are not fetched. Feeds as in {@link step}.
   * @throws Error when the engine was created without `iterates: true`, or as {@link step}.
   */
  async forward(params: ParamStore, data: TrainBatch, z0: Float32Array): Promise<ForwardResult> {
    if (!this.iterates) throw new Error('OrtTrainingEngine.forward needs an engine created with { iterates: true }');
    const K = this.iterations;
    const names = [
      'loss',
      ...Array.from({ length: K }, (_, k) => [`l1_${k + 1}`, `z_${k + 1}`, `x_hat_${k + 1}`]).flat(),
    ];
    const out = await this.session.run(this.feeds(params, data, z0), names);
    return {
      ...this.stepResult(out),
      states: Array.from({ length: K }, (_, k) => out[`z_${k + 1}`].data as Float32Array),
      images: Array.from({ length: K }, (_, k) => out[`x_hat_${k + 1}`].data as Float32Array),
    };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** 2·m·k·n summed over the MatMul nodes of a graph with static shapes (the dominant cost of GET); NaN with symbolic dims. */
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
