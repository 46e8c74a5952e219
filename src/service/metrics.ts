/**
 * Prometheus metrics of every service (prom-client): one registry per app (so several apps in one
 * process, as in tests, never share series), Node's default process metrics, and per-request HTTP
 * counters and latencies labelled by the route pattern (`/v2/models/:name/infer`, not the raw path, so
 * the label set stays bounded whatever clients send).
 */
import type { RequestHandler } from 'express';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Route label of requests that matched no route (404s): one series however many paths are probed. */
export const UNMATCHED_ROUTE = '<unmatched>';

/** A fresh registry with prom-client's default process metrics (CPU, memory, event-loop lag, GC …). */
export function createRegistry(defaultMetrics = true): Registry {
  const registry = new Registry();
  if (defaultMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}

/** Latency buckets in seconds: 1 ms … 60 s (image generation on CPU spans that range). */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Middleware that counts and times every response: `get_http_requests_total{method,route,code}` and
 * `get_http_request_duration_seconds{method,route,code}` (from the first byte of the request to the last
 * byte of the response). A client that disconnects before the response is counted with code 499.
 */
export function httpMetrics(registry: Registry): RequestHandler {
  const labelNames = ['method', 'route', 'code'] as const;
  const requests = new Counter({
    name: 'get_http_requests_total',
    help: 'HTTP requests by method, route pattern and status code',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'get_http_request_duration_seconds',
    help: 'HTTP request latency in seconds by method, route pattern and status code',
    labelNames,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  return (req, res, next) => {
    const start = process.hrtime.bigint();
    let done = false;
    const record = (): void => {
      if (done) return;
      done = true;
      const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : UNMATCHED_ROUTE;
      const labels = { method: req.method, route, code: String(res.writableFinished ? res.statusCode : 499) };
      requests.inc(labels);
      duration.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
    };
    res.on('finish', record);
    res.on('close', record);
    next();
  };
}
