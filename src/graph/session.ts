/**
 * Runs emitted ONNX graphs in onnxruntime-node (CPU here; the CUDA execution provider in GPU images,
 * chosen by GET_DISTILL_EXECUTION_PROVIDERS through providers.ts, with a CPU fallback).
 * Source: onnxruntime `js/common/lib/inference-session.ts` (InferenceSession.create / run).
 */
import * as ort from 'onnxruntime-node';
import type { DType, TensorArray } from './ir.js';
import { createWithProviderFallback, type ProviderFallback, resolveExecutionProviders } from './providers.js';

/** A host tensor: row-major data with its dims. */
export interface HostTensor {
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly data: TensorArray;
}

export interface SessionOptions {
  /** Intra-op threads; default: all cores of this machine (onnxruntime's default). */
  readonly threads?: number;
  /**
   * Execution providers in order of preference, e.g. `['cuda', 'cpu']`; default
   * {@link resolveExecutionProviders} (GET_DISTILL_EXECUTION_PROVIDERS, else `['cpu']`).
   */
  readonly executionProviders?: readonly string[];
  /**
   * Receives a GPU → CPU fallback instead of the process's once-only warning (worker threads pass one
   * and report to the main thread). See providers.ts.
   */
  readonly onProviderFallback?: (f: ProviderFallback) => void;
}

/** An onnxruntime session over one model, fed and read as host tensors. */
export class OrtSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    /** The providers the session was created with (`['cpu']` after a fallback). */
    readonly executionProviders: readonly string[],
  ) {}

  /**
   * Creates a session on the requested providers, falling back to CPU when a GPU provider cannot be
   * loaded (one warning per process; see providers.ts).
   * @throws UsageError for a bad GET_DISTILL_EXECUTION_PROVIDERS; onnxruntime's error when it rejects
   *   the model (the message names the node).
   */
  static async create(model: Uint8Array, opts: SessionOptions = {}): Promise<OrtSession> {
    const requested = opts.executionProviders ?? resolveExecutionProviders();
    const { value, providers } = await createWithProviderFallback(
      requested,
      (eps) => OrtSession.open(model, eps, opts.threads),
      opts.onProviderFallback,
    );
    return new OrtSession(value, providers);
  }

  private static open(
    model: Uint8Array,
    providers: readonly string[],
    threads: number | undefined,
  ): Promise<ort.InferenceSession> {
    return ort.InferenceSession.create(model, {
      executionProviders: [...providers] as ort.InferenceSession.ExecutionProviderConfig[],
      intraOpNumThreads: threads ?? 0,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      // The memory-pattern planner allocates a second arena beside the first run's: it doubled peak RSS
      // of training (GET-CPU-S/4 797 → 474 MB, GET-T/2 batch 32 15.2 → 8.6 GB) at the same speed.
      enableMemPattern: false,
    });
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /**
   * Runs the model; returns every requested output (default: all) as host tensors.
   * @throws onnxruntime's error (it names the input or node) for a missing feed or a wrong shape/dtype.
   */
  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      ortFeeds[name] = new ort.Tensor(t.dtype, t.data as never, [...t.dims]); // our DType names are onnxruntime's
    }
    const res = outputs ? await this.session.run(ortFeeds, [...outputs]) : await this.session.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(res)) {
      out[name] = { dtype: t.type as DType, dims: [...t.dims], data: t.data as TensorArray };
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** float32 host tensor helper. */
export const f32 = (dims: readonly number[], data: Float32Array): HostTensor => ({ dtype: 'float32', dims, data });
/** float64 host tensor helper. */
export const f64 = (dims: readonly number[], data: Float64Array): HostTensor => ({ dtype: 'float64', dims, data });
/** int64 host tensor helper. */
export const i64 = (dims: readonly number[], data: BigInt64Array): HostTensor => ({ dtype: 'int64', dims, data });
