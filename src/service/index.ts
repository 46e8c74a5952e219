/**
 * The service kit: what every GET Distill HTTP service shares (the inference service now; datagen,
 * trainer and exporter services next). Express 5 app factory with JSON errors, request metrics,
 * `/healthz`, `/readyz`, `/metrics`, pino logs, and graceful SIGTERM handling.
 */
export {
  createServiceApp,
  listen,
  toHttpError,
  ServiceState,
  type Phase,
  type RouteKit,
  type ServiceApp,
  type ServiceAppOptions,
} from './app.js';
export { HttpError, badRequest, formatZodError, issuePath, zodBadRequest, type ErrorCode } from './errors.js';
export { createLogger, LOG_LEVELS, type Logger } from './logging.js';
export { createRegistry, httpMetrics, LATENCY_BUCKETS, UNMATCHED_ROUTE } from './metrics.js';
export { installGracefulShutdown, type GracefulShutdown, type GracefulShutdownOptions } from './shutdown.js';
