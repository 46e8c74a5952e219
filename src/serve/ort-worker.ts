/**
 * One onnxruntime session in a worker thread (started by {@link OrtWorkerPool} through
 * ort-worker-boot.mjs). onnxruntime-node 1.30 runs `InferenceSession.run` synchronously on the calling
 * thread (its JS wrapper only defers the call with setImmediate), so a run on the main thread would
 * freeze HTTP, probes, metrics and the batcher's timers for the whole run; here it freezes only this
 * worker.
 *
 * Protocol: workerData {model: Uint8Array, threads: number}; the worker posts {type: 'ready'} or
 * {type: 'failed', message}; then for each {id, feeds, outputs?} it posts {id, outputs} or {id, error}.
 * Tensor buffers travel as transferables in both directions (no copies on the way in).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type HostTensor, OrtSession } from '../graph/session.js';

/** A run request from the pool. */
export interface RunMessage {
  readonly id: number;
  readonly feeds: Record<string, HostTensor>;
  readonly outputs?: readonly string[];
}

/** What the worker posts back. */
export type WorkerReply =
  | { readonly type: 'ready' }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'result'; readonly id: number; readonly outputs: Record<string, HostTensor> }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

const port = parentPort!;
const { model, threads } = workerData as { model: Uint8Array; threads: number };

let session: OrtSession;
try {
  session = await OrtSession.create(model, { threads });
  port.postMessage({ type: 'ready' } satisfies WorkerReply);
} catch (e) {
  port.postMessage({ type: 'failed', message: (e as Error).message } satisfies WorkerReply);
  process.exit(1);
}

port.on('message', async (m: RunMessage) => {
  try {
    const res = await session.run(m.feeds, m.outputs);
    const transfer: ArrayBuffer[] = [];
    const outputs: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(res)) {
      // onnxruntime may hand out views of memory it owns; copy into our own buffer before transferring.
      const data = t.data.slice();
      transfer.push(data.buffer as ArrayBuffer);
      outputs[name] = { dtype: t.dtype, dims: t.dims, data };
    }
    port.postMessage({ type: 'result', id: m.id, outputs } satisfies WorkerReply, transfer);
  } catch (e) {
    port.postMessage({ type: 'error', id: m.id, message: (e as Error).message } satisfies WorkerReply);
  }
});
