/**
 * The generation engine: the session pool (worker threads) behind the dynamic batcher, for one loaded
 * model. Routes hand it {@link GenerateJob}s (seeds or tensors, PNGs wanted or not); it merges
 * concurrent requests into one onnxruntime run and hands each request its share of the outputs.
 */
import type { Logger } from '../service/logging.js';
import { DynamicBatcher } from './batcher.js';
import type { InferenceMetrics } from './metrics.js';
import type { LoadedModel } from './model.js';
import { OrtWorkerPool } from './pool.js';
import { seedSamples } from '../get/seeded.js';
import type { GenerateJob, SampleOutputs } from './samples.js';

export interface EngineOptions {
  readonly sessions: number;
  readonly threadsPerSession: number;
  readonly maxBatchSize: number;
  readonly maxQueueDelayMs: number;
  readonly maxQueueSize: number;
  readonly requestTimeoutMs: number;
  /** onnxruntime execution providers; default GET_DISTILL_EXECUTION_PROVIDERS (src/graph/providers.ts). */
  readonly executionProviders?: readonly string[];
}

export class Engine {
  private constructor(
    readonly model: LoadedModel,
    private readonly pool: OrtWorkerPool,
    readonly batcher: DynamicBatcher<GenerateJob, SampleOutputs>,
  ) {}

  /**
   * Starts the sessions and warms each one up with a one-image run (the first run of a session pays
   * for allocations that later runs reuse), so the service is fast from its first request.
   * @throws Error when onnxruntime rejects the model.
   */
  static async start(model: LoadedModel, o: EngineOptions, metrics: InferenceMetrics, logger: Logger): Promise<Engine> {
    const pool = await OrtWorkerPool.create(model, {
      sessions: o.sessions,
      threads: o.threadsPerSession,
      logger,
      executionProviders: o.executionProviders,
    });
    const info = model.info;
    try {
      const t0 = performance.now();
      const warm: GenerateJob = { samples: seedSamples(0, 1, info.config.numClasses > 0 ? [0] : null), pngScale: 1 };
      // One batch per session: the pool hands each idle worker one of them.
      await Promise.all(Array.from({ length: pool.size }, () => pool.run([warm])));
      logger.info({ sessions: pool.size, ms: Math.round(performance.now() - t0) }, 'warm-up done');
    } catch (e) {
      await pool.close();
      throw e;
    }
    const batcher = new DynamicBatcher<GenerateJob, SampleOutputs>(
      { ...o, concurrency: pool.size },
      async (jobs) => {
        const t0 = performance.now();
        const out = await pool.run(jobs);
        metrics.inferenceDuration.observe((performance.now() - t0) / 1000);
        return out;
      },
      {
        onQueueDepth: (d) => metrics.queueDepth.set(d),
        onRun: (images, requests, seconds, ok) => {
          metrics.batchSize.observe(images);
          if (ok) metrics.imagesGenerated.inc(images);
          logger.debug({ images, requests, ms: seconds * 1000, ok }, 'run');
        },
      },
    );
    return new Engine(model, pool, batcher);
  }

  /** Queues one request (see DynamicBatcher.submit for the errors). */
  generate(job: GenerateJob, signal?: AbortSignal): Promise<SampleOutputs> {
    return this.batcher.submit(job, job.samples.n, signal);
  }

  /** Refuses new work and finishes what is queued and running. */
  drain(): Promise<void> {
    return this.batcher.drain();
  }

  /** Stops the worker threads. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
