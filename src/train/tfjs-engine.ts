/**
 * The tfjs training engine: the SAME forward graph as the ort engine (buildGet + trainingObjective,
 * outputs `loss` and `l1_1..l1_K`), interpreted with TensorFlow.js ops by TfjsGraph; gradients come
 * from tfjs autograd (valueAndGrads) instead of the generated backward graph, and are gathered into
 * the flat gradient in ParamStore order exactly as the ort engine does. So optimizer state, EMA and
 * checkpoints are identical between engines, and each engine is the other's gradient oracle in tests.
 * Backends (src/graph/tfjs-backend.ts): tfjs-node-gpu in the trainer's GPU image, tfjs-node, wasm, cpu.
 */
import type { Value } from '../graph/ir.js';
import type { HostTensor } from '../graph/session.js';
import { loadTfjs, type TfjsBackendChoice, type TfjsRuntime } from '../graph/tfjs-backend.js';
import { TfjsGraph } from '../graph/tfjs.js';
import type { GetConfig } from '../get/config.js';
import type { ParamSpec } from '../get/model.js';
import {
  buildTrainingGraph,
  stepFeeds,
  type StepResult,
  type TrainBatch,
  type TrainingEngine,
} from './training-step.js';
import type { ParamStore } from './params.js';

export interface TfjsEngineOptions {
  /** Backend to load (default `auto`: the fastest one installed). */
  readonly backend?: TfjsBackendChoice;
  /** Receives loadTfjs's one-line notes (which backend, and why faster ones were skipped). */
  readonly log?: (msg: string) => void;
}

export class TfjsTrainingEngine implements TrainingEngine {
  readonly name = 'tfjs' as const;
  private constructor(
    readonly cfg: GetConfig,
    readonly batch: number,
    readonly iterations: number,
    readonly specs: readonly ParamSpec[],
    private readonly runtime: TfjsRuntime,
    private readonly graph: TfjsGraph,
    /** MatMul flops of the forward graph ×3, counted as the ort engine counts them (same graph). */
    readonly flopsPerStep: number,
  ) {}

  /**
   * Loads TensorFlow.js on the chosen backend and prepares the training graph for a fixed batch.
   * @throws UsageError when a forced backend's package is missing (names the package to install);
   *   Error for an inconsistent config (see resolveConfig) or an op the interpreter lacks.
   */
  static async create(
    cfg: GetConfig,
    batch: number,
    iterations = 6,
    o: TfjsEngineOptions = {},
  ): Promise<TfjsTrainingEngine> {
    const { graph, specs, objective, forwardFlops } = buildTrainingGraph(cfg, batch, iterations);
    const outputs: Record<string, Value> = { loss: objective.loss };
    objective.l1.forEach((v, k) => (outputs[`l1_${k + 1}`] = v));
    const runtime = await loadTfjs({ backend: o.backend ?? 'auto', log: o.log });
    return new TfjsTrainingEngine(
      cfg,
      batch,
      iterations,
      specs,
      runtime,
      TfjsGraph.create(runtime, graph, outputs),
      3 * forwardFlops,
    );
  }

  get describe(): string {
    return `tfjs (backend ${this.runtime.backend}, ${this.runtime.source})`;
  }

  /**
   * Loss and gradients at `params` for one batch; writes the flat gradient (float32, ParamStore
   * order) into `grad`. Same contract as OrtTrainingEngine.step.
   * @param z0 fixed-point start state [B,N,D] float32, N(0, I).
   * @throws Error when a conditional model gets no labels, or a parameter gradient is missing.
   */
  async step(params: ParamStore, data: TrainBatch, z0: Float32Array, grad: Float32Array): Promise<StepResult> {
    const feeds: Record<string, HostTensor> = stepFeeds(this.cfg, this.batch, data, z0);
    const values: Record<string, Float32Array> = {};
    for (const s of this.specs) values[s.name] = params.view(s.name);
    const { outputs, grads } = this.graph.valueAndGrads(feeds, values, 'loss');
    for (const s of this.specs) {
      const g = grads[s.name];
      const o = params.offsets.get(s.name)!;
      if (!g || g.length !== o.size)
        throw new Error(`tfjs engine: gradient of ${s.name} has ${g?.length ?? 'no'} values, expected ${o.size}`);
      grad.set(g, o.offset);
    }
    const scalar = (name: string) => Number((outputs[name].data as Float32Array)[0]);
    return { loss: scalar('loss'), l1: Array.from({ length: this.iterations }, (_, k) => scalar(`l1_${k + 1}`)) };
  }

  async close(): Promise<void> {
    this.graph.dispose();
  }
}
