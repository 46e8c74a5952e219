/**
 * The inference service (`services/inference`, `get-distill serve`): the service kit's app with the
 * Open Inference Protocol v2 and OpenAI image routes, over the engine (session pool in worker threads
 * behind the dynamic batcher). It listens before the model is loaded, so liveness answers during a
 * long download; readiness turns 200 only after load and warm-up, and 503 again while draining.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import type { Registry } from 'prom-client';
import { resolveExecutionProviders } from '../graph/providers.js';
import { createServiceApp, listen, ServiceState } from '../service/app.js';
import { createLogger, type Logger } from '../service/logging.js';
import { installGracefulShutdown, type GracefulShutdown } from '../service/shutdown.js';
import { UsageError } from '../util/errors.js';
import type { ServeConfig } from './config.js';
import { Engine } from './engine.js';
import { inferenceMetrics, type InferenceMetrics } from './metrics.js';
import { loadModel } from './model.js';
import { threadsPerSession, usableCores } from './pool.js';
import { mountImageRoutes } from './routes-images.js';
import { mountOipRoutes } from './routes-oip.js';

export interface InferenceService {
  readonly app: Express;
  readonly state: ServiceState;
  readonly registry: Registry;
  readonly metrics: InferenceMetrics;
  /** The engine once started (null before). */
  readonly engine: Engine | null;
  /**
   * Loads the model, starts the sessions, warms them up and marks the service ready.
   * @throws UsageError for a missing, unreachable or invalid model, or too many sessions for the cores.
   */
  start(): Promise<void>;
  /** Refuses new work (503) and finishes queued and running requests. */
  drain(): Promise<void>;
  /** Stops the worker threads (after {@link drain}). */
  close(): Promise<void>;
}

/**
 * Builds the service; nothing is loaded until {@link InferenceService.start}.
 * @param o.cores CPU cores to plan sessions for (default: {@link usableCores}).
 */
export function createInferenceService(
  cfg: ServeConfig,
  o: { logger?: Logger; cores?: number } = {},
): InferenceService {
  const logger = o.logger ?? createLogger('inference', cfg.logLevel);
  const state = new ServiceState();
  state.starting('loading the model');
  let engine: Engine | null = null;
  let closed = false;
  let metrics!: InferenceMetrics;

  const { app, registry } = createServiceApp({
    name: 'inference',
    logger,
    bodyLimitBytes: cfg.bodyLimit,
    state,
    quietRoutes: ['/v2/health/live', '/v2/health/ready'],
    routes: (kit) => {
      metrics = inferenceMetrics(kit.registry, cfg.maxBatchSize);
      const ctx = {
        modelName: cfg.modelName,
        maxBatchSize: cfg.maxBatchSize,
        maxImagesPerRequest: cfg.maxImagesPerRequest,
        engine: (): Engine => {
          if (!state.ready || !engine) throw state.notReadyError();
          return engine;
        },
      };
      mountOipRoutes(kit, ctx);
      mountImageRoutes(kit, ctx);
    },
  });

  return {
    app,
    state,
    registry,
    get metrics() {
      return metrics;
    },
    get engine() {
      return engine;
    },
    async start() {
      const t0 = performance.now();
      const cores = o.cores ?? usableCores();
      const threads = threadsPerSession(cfg.sessions, cores);
      // a bad GET_DISTILL_EXECUTION_PROVIDERS fails before the download
      const executionProviders = resolveExecutionProviders();
      const model = await loadModel(cfg.model, cfg.modelName);
      if (!model.info.outputs.some((x) => x.name === 'residual2'))
        throw new UsageError(`${cfg.model}: no output 'residual2'; re-export the model with \`get-distill export\``);
      logger.info(
        {
          uri: cfg.model,
          version: model.version,
          preset: model.info.config.name,
          numClasses: model.info.config.numClasses,
          bytes: model.bytes.length,
          fetchMs: Math.round(model.fetchSeconds * 1000),
        },
        'model fetched',
      );
      if (closed) return;
      state.starting('starting onnxruntime sessions and warming up');
      let started: Engine;
      try {
        started = await Engine.start(
          model,
          {
            sessions: cfg.sessions,
            threadsPerSession: threads,
            maxBatchSize: cfg.maxBatchSize,
            maxQueueDelayMs: cfg.maxQueueDelayMs,
            maxQueueSize: cfg.maxQueueSize,
            requestTimeoutMs: cfg.requestTimeoutMs,
            executionProviders,
          },
          metrics,
          logger,
        );
      } catch (e) {
        throw new UsageError(`${cfg.model}: ${(e as Error).message}`, { cause: e });
      }
      if (closed) {
        await started.close();
        return;
      }
      engine = started;
      const seconds = (performance.now() - t0) / 1000;
      metrics.modelLoadSeconds.set(seconds);
      metrics.modelInfo.set({ name: model.name, version: model.version, preset: model.info.config.name }, 1);
      state.markReady();
      logger.info(
        { sessions: cfg.sessions, threadsPerSession: threads, cores, requestedProviders: executionProviders, seconds },
        'ready',
      );
    },
    async drain() {
      state.markDraining();
      await engine?.drain();
    },
    async close() {
      closed = true;
      await engine?.close();
    },
  };
}

/** A running service: its HTTP server and shutdown handle. */
export interface RunningService {
  readonly service: InferenceService;
  readonly server: Server;
  /** The bound port (useful with port 0). */
  readonly port: number;
  readonly shutdown: GracefulShutdown;
}

/**
 * Runs the service as a process: listen, install the SIGTERM/SIGINT handler (drain, then exit 0),
 * load and warm up the model, mark ready.
 * @throws UsageError when the address cannot be bound or the model cannot be loaded (the caller prints
 *   one line and exits 2; the listener is closed first).
 */
export async function runInferenceService(
  cfg: ServeConfig,
  o: { logger?: Logger; exit?: (code: number) => void } = {},
): Promise<RunningService> {
  const logger = o.logger ?? createLogger('inference', cfg.logLevel);
  const service = createInferenceService(cfg, { logger });
  const server = await listen(service.app, cfg.port, cfg.host);
  const port = (server.address() as AddressInfo).port;
  logger.info(
    {
      host: cfg.host,
      port,
      model: cfg.model,
      modelName: cfg.modelName,
      maxBatchSize: cfg.maxBatchSize,
      maxQueueDelayMs: cfg.maxQueueDelayMs,
      maxQueueSize: cfg.maxQueueSize,
      sessions: cfg.sessions,
    },
    'listening',
  );
  const shutdown = installGracefulShutdown({
    server,
    state: service.state,
    logger,
    drain: () => service.drain(),
    close: () => service.close(),
    graceMs: cfg.shutdownGraceMs,
    exit: o.exit,
  });
  try {
    await service.start();
  } catch (e) {
    shutdown.dispose();
    server.close();
    server.closeAllConnections();
    await service.close();
    throw e;
  }
  return { service, server, port, shutdown };
}
