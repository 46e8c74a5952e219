/**
 * One onnxruntime session in a worker thread (started by {@link OrtWorkerPool} through
 * ort-worker-boot.mjs). onnxruntime-node 1.30 runs `InferenceSession.run` synchronously on the calling
 * thread (its JS wrapper only defers the call with setImmediate), so a run on the main thread would
 * freeze HTTP, probes, metrics and the batcher's timers for the whole run; here it freezes only this
 * worker. The per-image work around the run (seed → noise and z_0, PNG encoding: ~0.4 ms per
 * GET-CPU-S/4 image) happens here too, so the main thread keeps only HTTP and JSON.
 *
 * Protocol: workerData {@link WorkerData}; the worker posts {type: 'ready', providers, fallback?} or {type: 'failed',
 * message}; then for each {id, jobs} it posts {id, outputs} (one per job) or {id, error}. Tensor
 * buffers travel as transferables in both directions.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ModelInfo } from '../get/export.js';
import type { ProviderFallback } from '../graph/providers.js';
import { OrtSession } from '../graph/session.js';
import { mergeSamples } from '../get/seeded.js';
import { encodeOutputs, type GenerateJob, type SampleOutputs, splitOutputs } from './samples.js';

/** What a worker starts with. */
export interface WorkerData {
  /** model.onnx bytes. */
  readonly model: Uint8Array;
  /** Its contract (readModelInfo): shapes for merging and splitting. */
  readonly info: ModelInfo;
  /** Intra-op threads of the session. */
  readonly threads: number;
  /** onnxruntime execution providers (resolved once in the main thread: GET_DISTILL_EXECUTION_PROVIDERS). */
  readonly executionProviders: readonly string[];
}

/** A run request from the pool: the jobs of one batch, in order. */
export interface RunMessage {
  readonly id: number;
  readonly jobs: readonly GenerateJob[];
}

/** What the worker posts back. */
export type WorkerReply =
  | { readonly type: 'ready'; readonly providers: readonly string[]; readonly fallback?: ProviderFallback }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'result'; readonly id: number; readonly outputs: SampleOutputs[] }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

const port = parentPort!;
const { model, info, threads, executionProviders } = workerData as WorkerData;

let session: OrtSession;
try {
  // A GPU → CPU fallback is reported to the main thread, which logs it once per process.
  let fallback: ProviderFallback | undefined;
  session = await OrtSession.create(model, { threads, executionProviders, onProviderFallback: (f) => (fallback = f) });
  port.postMessage({ type: 'ready', providers: session.executionProviders, fallback } satisfies WorkerReply);
} catch (e) {
  port.postMessage({ type: 'failed', message: (e as Error).message } satisfies WorkerReply);
  process.exit(1);
}

port.on('message', async (m: RunMessage) => {
  try {
    const out = await session.run(
      mergeSamples(
        info,
        m.jobs.map((j) => j.samples),
      ),
      ['image', 'residual2'],
    );
    // splitOutputs copies each share out of onnxruntime's buffers, so every share owns its memory.
    const outputs = encodeOutputs(
      info,
      splitOutputs(
        info,
        out,
        m.jobs.map((j) => j.samples.n),
      ),
      m.jobs,
    );
    const transfer: ArrayBuffer[] = [];
    for (const o of outputs) {
      for (const a of [o.image, o.residual2, ...(o.png ?? [])]) {
        // Only a buffer that holds nothing else may be moved (a pooled one would be cloned whole).
        if (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength) transfer.push(a.buffer as ArrayBuffer);
      }
    }
    port.postMessage({ type: 'result', id: m.id, outputs } satisfies WorkerReply, transfer);
  } catch (e) {
    port.postMessage({ type: 'error', id: m.id, message: (e as Error).message } satisfies WorkerReply);
  }
});
