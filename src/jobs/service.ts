/**
 * Service mode: a stage as a long-running HTTP worker (Deployment) that takes jobs over `/v1/jobs`
 * (src/jobs/manager.ts), with the kit's `/healthz`, `/readyz`, `/metrics`, JSON errors and logs.
 * Readiness stays 200 while a job runs (the worker is healthy; busy shows as `busy` on GET /v1/jobs and
 * as `get_jobs_running == get_job_slots`). SIGTERM/SIGINT: not ready, listener closed, new jobs 503,
 * running jobs aborted and given `graceMs` to reach their safe point (a checkpoint), then exit 0.
 * Set the pod's terminationGracePeriodSeconds to at least graceMs + 5 s.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import type { Registry } from 'prom-client';
import { loggerWarningSink, resolveExecutionProviders, setProviderWarningSink } from '../graph/providers.js';
import { createServiceApp, listen, ServiceState } from '../service/app.js';
import type { Logger } from '../service/logging.js';
import { installGracefulShutdown, type GracefulShutdown } from '../service/shutdown.js';
import { JobManager, mountJobRoutes } from './manager.js';
import type { StageJob } from './types.js';

/** Extra time the HTTP side of shutdown gets beyond the jobs' grace period (final responses, idle sockets). */
const HTTP_MARGIN_MS = 2000;

export interface StageServiceOptions {
  readonly logger: Logger;
  /** Default 8080; 0 picks a free port (logged as `listening`). */
  readonly port?: number;
  /** Default 127.0.0.1; 0.0.0.0 in a container. */
  readonly host?: string;
  /** Jobs at once (default 1). */
  readonly concurrency?: number;
  /** Finished jobs kept for GET /v1/jobs (default 100). */
  readonly keepFinished?: number;
  /** Milliseconds SIGTERM waits for running jobs' safe points (default 30,000). */
  readonly graceMs?: number;
  /** Service name in /healthz and logs; default the stage kind. */
  readonly name?: string;
  /** Largest spec body in bytes (default 1 MiB). */
  readonly bodyLimitBytes?: number;
  /** Default process.exit; tests pass a spy. */
  readonly exit?: (code: number) => void;
  /** Default SIGTERM and SIGINT. */
  readonly signals?: readonly NodeJS.Signals[];
}

/** The app of a stage service, not listening yet. */
export interface StageService<Spec> {
  readonly app: Express;
  readonly state: ServiceState;
  readonly registry: Registry;
  readonly manager: JobManager<Spec>;
}

/** Builds the app (ready at once: a stage worker loads its inputs per job). */
export function createStageService<Spec>(stage: StageJob<Spec>, o: StageServiceOptions): StageService<Spec> {
  const state = new ServiceState();
  let manager!: JobManager<Spec>;
  const { app, registry } = createServiceApp({
    name: o.name ?? stage.kind,
    logger: o.logger,
    bodyLimitBytes: o.bodyLimitBytes ?? 1024 ** 2,
    state,
    routes: (kit) => {
      manager = new JobManager(stage, {
        logger: o.logger,
        registry: kit.registry,
        concurrency: o.concurrency,
        keepFinished: o.keepFinished,
      });
      mountJobRoutes(kit, manager, state);
    },
  });
  state.markReady();
  return { app, state, registry, manager };
}

/** A listening stage service. */
export interface RunningStageService<Spec> extends StageService<Spec> {
  readonly server: Server;
  /** The bound port (useful with port 0). */
  readonly port: number;
  readonly shutdown: GracefulShutdown;
}

/**
 * Listens and installs the SIGTERM/SIGINT handler (see the file header); resolves once bound.
 * onnxruntime's GPU → CPU fallback warning (src/graph/providers.ts) goes to `o.logger`.
 * @throws UsageError when the address cannot be bound (names host and port), or for a bad
 *   GET_DISTILL_EXECUTION_PROVIDERS (checked before listening).
 */
export async function startStageService<Spec>(
  stage: StageJob<Spec>,
  o: StageServiceOptions,
): Promise<RunningStageService<Spec>> {
  resolveExecutionProviders();
  setProviderWarningSink(loggerWarningSink(o.logger));
  const s = createStageService(stage, o);
  const host = o.host ?? '127.0.0.1';
  const server = await listen(s.app, o.port ?? 8080, host);
  const port = (server.address() as AddressInfo).port;
  const graceMs = o.graceMs ?? 30_000;
  o.logger.info(
    { host, port, mode: 'service', stage: stage.kind, concurrency: s.manager.concurrency, graceMs },
    'listening',
  );
  const shutdown = installGracefulShutdown({
    server,
    state: s.state,
    logger: o.logger,
    drain: async () => void (await s.manager.shutdown(graceMs)),
    graceMs: graceMs + HTTP_MARGIN_MS,
    exit: o.exit,
    signals: o.signals,
  });
  return { ...s, server, port, shutdown };
}
