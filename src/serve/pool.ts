/**
 * A pool of S onnxruntime sessions, each in its own worker thread (see ort-worker.ts for why), with
 * T = floor(cores / S) intra-op threads each, so S·T ≤ cores: every core works and none is
 * oversubscribed (onnxruntime's pool threads spin while they wait for work, so two pools on one core
 * steal each other's time slices). A worker runs a whole batch of jobs: it expands seeds into noise and
 * z_0, runs the model and encodes PNGs, so the main thread keeps only HTTP and JSON.
 *
 * Default S = 1: GET's runs are large batched MatMuls that onnxruntime already spreads over all cores,
 * the dynamic batcher keeps that one session fed with full batches, and every extra session costs a
 * copy of the weights and activations. S > 1 helps when batches are small (light traffic, tiny
 * models) and per-op parallelism is poor: then several runs overlap instead of one wide run.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ModelInfo } from '../get/export.js';
import { loggerWarningSink, resolveExecutionProviders, warnProviderFallback } from '../graph/providers.js';
import type { Logger } from '../service/logging.js';
import { UsageError } from '../util/errors.js';
import type { RunMessage, WorkerData, WorkerReply } from './ort-worker.js';
import { isSeedSamples } from '../get/seeded.js';
import type { GenerateJob, SampleOutputs } from './samples.js';

/** The CPU quota of this process's cgroup in whole CPUs (v2 `cpu.max`, v1 `cfs_quota_us`), or null. */
function cgroupCpus(): number | null {
  const read = (p: string): string | null => {
    try {
      return readFileSync(p, 'utf8').trim();
    } catch {
      return null;
    }
  };
  const v2 = read('/sys/fs/cgroup/cpu.max')?.split(/\s+/);
  if (v2 && v2[0] !== 'max' && Number(v2[0]) > 0 && Number(v2[1]) > 0) return Number(v2[0]) / Number(v2[1]);
  const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
  return quota > 0 && period > 0 ? quota / period : null;
}

/**
 * Cores this process may use: the CPUs it may run on (affinity), capped by a container's CPU limit
 * (rounded down, at least 1), since Node 20's availableParallelism ignores cgroup quotas.
 */
export function usableCores(): number {
  const quota = cgroupCpus();
  return Math.max(1, Math.min(availableParallelism(), quota === null ? Infinity : Math.floor(quota)));
}

/**
 * Intra-op threads per session: floor(cores / sessions).
 * @throws UsageError when sessions > cores (each session needs at least one thread of its own).
 */
export function threadsPerSession(sessions: number, cores: number): number {
  if (!Number.isInteger(sessions) || sessions < 1)
    throw new UsageError(`--sessions must be a positive integer, got ${sessions}`);
  if (sessions > cores)
    throw new UsageError(
      `--sessions ${sessions} exceeds the ${cores} usable CPU ` +
        `cores and would oversubscribe them; use --sessions ≤ ${cores}`,
    );
  return Math.floor(cores / sessions);
}

interface Job {
  readonly msg: RunMessage;
  readonly transfer: ArrayBuffer[];
  resolve(out: SampleOutputs[]): void;
  reject(e: Error): void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
  alive: boolean;
}

const BOOT = new URL('./ort-worker-boot.mjs', import.meta.url);

/**
 * Starts one worker and waits for its session; a GPU → CPU fallback in it is warned about once per
 * process (on `logger` when given).
 * @throws Error with onnxruntime's message.
 */
function spawn(data: WorkerData, logger?: Logger): Promise<Worker> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(BOOT, { workerData: data });
    const onReply = (r: WorkerReply): void => {
      if (r.type === 'ready') {
        cleanup();
        if (r.fallback) warnProviderFallback(r.fallback, logger && loggerWarningSink(logger));
        resolve(worker);
      } else if (r.type === 'failed') {
        cleanup();
        reject(new Error(`onnxruntime could not load the model: ${r.message}`));
      }
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const onExit = (code: number): void => {
      cleanup();
      reject(new Error(`onnxruntime worker exited with code ${code} while loading the model`));
    };
    const cleanup = (): void => {
      worker.off('message', onReply);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onReply);
    worker.once('error', onError);
    worker.once('exit', onExit);
  });
}

/** See the file header. All methods are safe to call from the main thread's event loop. */
export class OrtWorkerPool {
  private readonly slots: Slot[] = [];
  private readonly waiting: Job[] = [];
  private nextId = 1;
  private closed = false;

  private constructor(
    private readonly data: WorkerData,
    private readonly logger?: Logger,
  ) {}

  /** Intra-op threads of each session. */
  get threads(): number {
    return this.data.threads;
  }

  /**
   * Starts `sessions` workers (in parallel) and resolves once every session is loaded.
   * @param model ONNX bytes (copied into each worker) and the model's contract (readModelInfo).
   * @param o.executionProviders default {@link resolveExecutionProviders} (GET_DISTILL_EXECUTION_PROVIDERS).
   * @throws UsageError for a bad GET_DISTILL_EXECUTION_PROVIDERS; Error when onnxruntime rejects the
   *   model (every started worker is stopped first).
   */
  static async create(
    model: { bytes: Uint8Array; info: ModelInfo },
    o: { sessions: number; threads: number; logger?: Logger; executionProviders?: readonly string[] },
  ): Promise<OrtWorkerPool> {
    const executionProviders = o.executionProviders ?? resolveExecutionProviders();
    const data: WorkerData = { model: model.bytes, info: model.info, threads: o.threads, executionProviders };
    const pool = new OrtWorkerPool(data, o.logger);
    const started = await Promise.allSettled(Array.from({ length: o.sessions }, () => spawn(data, o.logger)));
    for (const s of started) if (s.status === 'fulfilled') pool.adopt(s.value);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await pool.close();
      throw failed.reason as Error;
    }
    return pool;
  }

  /** Sessions in the pool. */
  get size(): number {
    return this.slots.length;
  }

  /**
   * Runs one batch (every job's samples merged, in order) on a free session (FIFO when all are busy).
   * @param jobs client tensors in them that span their whole ArrayBuffer are transferred to the
   *   worker (detached here: do not reuse them), others are copied; seed jobs are cloned.
   * @returns each job's share of the outputs, with PNGs where the job asked for them.
   * @throws Error with onnxruntime's message (a wrong shape or dtype names the input), or when the
   *   worker died or the pool is closed.
   */
  run(jobs: readonly GenerateJob[]): Promise<SampleOutputs[]> {
    if (this.closed) return Promise.reject(new Error('the session pool is closed'));
    const transfer: ArrayBuffer[] = [];
    const move = <T extends Float32Array | BigInt64Array>(a: T): T => {
      const whole =
        a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && !(a.buffer instanceof SharedArrayBuffer);
      const own = whole ? a : (a.slice() as T);
      if (!transfer.includes(own.buffer as ArrayBuffer)) transfer.push(own.buffer as ArrayBuffer);
      return own;
    };
    // Seed jobs are a few numbers (cloned); client tensors can be megabytes (moved).
    const sent = jobs.map((j): GenerateJob => {
      const s = j.samples;
      return isSeedSamples(s)
        ? j
        : { ...j, samples: { ...s, noise: move(s.noise), z0: move(s.z0), labels: s.labels && move(s.labels) } };
    });
    return new Promise((resolve, reject) => {
      this.waiting.push({ msg: { id: this.nextId++, jobs: sent }, transfer, resolve, reject });
      this.dispatch();
    });
  }

  /** Stops every worker; queued and running jobs are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.waiting.splice(0)) j.reject(new Error('the session pool is closed'));
    await Promise.all(
      this.slots.map(async (s) => {
        s.alive = false;
        s.job?.reject(new Error('the session pool is closed'));
        s.job = null;
        await s.worker.terminate();
      }),
    );
  }

  private adopt(worker: Worker, index = this.slots.length): void {
    const slot: Slot = { worker, job: null, alive: true };
    this.slots[index] = slot;
    worker.on('message', (r: WorkerReply) => {
      if ((r.type !== 'result' && r.type !== 'error') || !slot.job || slot.job.msg.id !== r.id) return;
      const job = slot.job;
      slot.job = null;
      if (r.type === 'result') job.resolve(r.outputs);
      else job.reject(new Error(r.message));
      this.dispatch();
    });
    const died = (why: string): void => {
      if (!slot.alive) return;
      slot.alive = false;
      slot.job?.reject(new Error(`onnxruntime worker ${why}`));
      slot.job = null;
      if (this.closed) return;
      this.logger?.error({ session: index, why }, 'onnxruntime worker died; starting a new one');
      spawn(this.data, this.logger).then(
        (w) => {
          if (this.closed) void w.terminate();
          else {
            this.adopt(w, index);
            this.dispatch();
          }
        },
        (e: Error) => this.logger?.error({ session: index, err: e }, 'could not restart the onnxruntime worker'),
      );
    };
    worker.on('error', (e) => died(`failed: ${e.message}`));
    worker.on('exit', (code) => died(`exited with code ${code}`));
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      while (this.waiting.length > 0 && slot.alive && !slot.job) {
        const job = this.waiting.shift()!;
        try {
          slot.worker.postMessage(job.msg, job.transfer);
          slot.job = job;
        } catch (e) {
          job.reject(e as Error); // e.g. a tensor whose buffer was already moved: this job fails, the slot stays free
        }
      }
    }
  }
}
