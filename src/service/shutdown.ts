/**
 * Graceful shutdown on SIGTERM (Kubernetes' stop signal) and SIGINT: mark not ready, stop accepting
 * connections, let accepted work finish, release resources, exit 0. Past the grace period (Kubernetes'
 * terminationGracePeriodSeconds defaults to 30 s), open connections are cut and the exit code is 1.
 *
 * The listener closes at once, so new connections are refused: on Kubernetes, give the pod a short
 * preStop sleep so the endpoint is removed before SIGTERM arrives.
 */
import type { Server } from 'node:http';
import type { ServiceState } from './app.js';
import type { Logger } from './logging.js';
import { realClock, type Clock } from '../util/clock.js';

export interface GracefulShutdownOptions {
  readonly server: Server;
  readonly state: ServiceState;
  readonly logger: Logger;
  /** Finishes accepted work (e.g. a batcher's queue); runs after the listener has closed. */
  readonly drain?: () => Promise<void>;
  /** Releases resources (worker threads, sessions) once every response has been sent. */
  readonly close?: () => Promise<void>;
  /** Milliseconds before open connections are cut (default 30,000). */
  readonly graceMs?: number;
  /** Default `process.exit`; tests pass a spy. */
  readonly exit?: (code: number) => void;
  /** Default SIGTERM and SIGINT. A second signal during shutdown exits at once with code 1. */
  readonly signals?: readonly NodeJS.Signals[];
  /**
   * Time source for the grace timer and the logged duration (default: the real clock). The idle-connection
   * sweep stays on real timers: it only polls sockets and decides nothing.
   */
  readonly clock?: Clock;
}

export interface GracefulShutdown {
  /** Runs the shutdown (idempotent); resolves with the exit code after calling `exit`. */
  shutdown(reason: string): Promise<number>;
  /** Removes the signal handlers (for tests and embedders). */
  dispose(): void;
}

/** Installs the signal handlers; see the file header for the sequence. */
export function installGracefulShutdown(o: GracefulShutdownOptions): GracefulShutdown {
  const exit = o.exit ?? ((code: number) => process.exit(code));
  const graceMs = o.graceMs ?? 30_000;
  const signals = o.signals ?? ['SIGTERM', 'SIGINT'];
  const clock = o.clock ?? realClock;
  let running: Promise<number> | null = null;

  const shutdown = (reason: string): Promise<number> => {
    if (running) return running;
    running = (async () => {
      const t0 = clock.now();
      o.state.markDraining();
      o.logger.info({ reason, graceMs }, 'shutting down: not ready, listener closed, draining');
      const closed = new Promise<void>((resolve) => o.server.close(() => resolve()));
      // Keep-alive sockets that go idle after their last response would hold close() open until their
      // keep-alive timeout, so idle ones are closed, but only once the queue has drained: Node counts a
      // connection whose request has arrived but is not parsed yet as idle, and closing it then would
      // reset a request the client already sent (while draining it gets an answer: 200 or 503).
      let sweep: NodeJS.Timeout | undefined;
      let timedOut = false;
      const timer = clock.setTimeout(() => {
        timedOut = true;
        o.logger.error({ graceMs }, 'grace period over: closing open connections');
        o.server.closeAllConnections();
      }, graceMs);
      // The grace timer alone must not keep the process alive once everything else has closed.
      (timer as { unref?(): unknown }).unref?.();
      let code = 0;
      try {
        await o.drain?.();
        o.server.closeIdleConnections();
        sweep = setInterval(() => o.server.closeIdleConnections(), 50);
        await closed;
        await o.close?.();
      } catch (err) {
        o.logger.error({ err }, 'error while shutting down');
        code = 1;
      } finally {
        clearInterval(sweep);
        clock.clearTimeout(timer);
      }
      if (timedOut) code = 1;
      o.logger.info({ code, ms: clock.now() - t0 }, 'shut down');
      exit(code);
      return code;
    })();
    return running;
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (running) {
      o.logger.warn({ signal }, 'second signal during shutdown: exiting now');
      exit(1);
      return;
    }
    void shutdown(signal);
  };
  for (const s of signals) process.on(s, onSignal);
  return {
    shutdown,
    dispose: () => {
      for (const s of signals) process.off(s, onSignal);
    },
  };
}
