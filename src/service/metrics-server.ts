/**
 * A /metrics endpoint for a batch job while it runs (the eval job): the job's registry plus process and
 * HTTP metrics, with /healthz and /readyz, on the service kit's Express app.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { createServiceApp, listen } from './app.js';
import type { Logger } from './logging.js';
import { createRegistry } from './metrics.js';

export interface MetricsServerOptions {
  /** The service name in /healthz and in logs (e.g. `eval`). */
  readonly name: string;
  readonly logger: Logger;
  /** TCP port; 0 picks a free one (read it from `url`). */
  readonly port: number;
  /** Address to bind (default 127.0.0.1). */
  readonly host?: string;
}

export interface MetricsServer {
  /** The base URL, `http://host:port`. */
  readonly url: string;
  /** Closes the server (idle connections at once). Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves `registry` on /metrics, live (the endpoint shares its metrics, not copies), beside process
 * and HTTP metrics that stay out of `registry` (so a registry that is also pushed stays per-job).
 * @throws UsageError when the address cannot be bound.
 */
export async function serveMetrics(registry: Registry, o: MetricsServerOptions): Promise<MetricsServer> {
  const host = o.host ?? '127.0.0.1';
  const svc = createServiceApp({
    name: o.name,
    logger: o.logger,
    bodyLimitBytes: 1024,
    registry: Registry.merge([registry, createRegistry(true)]),
    routes: () => {},
  });
  svc.state.markReady();
  let server: Server | undefined = await listen(svc.app, o.port, host);
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    async close() {
      const s = server;
      server = undefined;
      if (!s) return;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      s.closeIdleConnections();
      await closed;
    },
  };
}
