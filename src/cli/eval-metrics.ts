/**
 * The eval job's metrics wired to the service edge: the eval gauges (src/eval/metrics.ts) pushed to a
 * Pushgateway (src/service/pushgateway.ts) and served on /metrics while the job runs
 * (src/service/metrics-server.ts). Used by `get-distill eval` (src/cli/eval.ts).
 */
import { EVAL_JOB, EvalMetrics, type EvalMetricsOptions } from '../eval/metrics.js';
import { createLogger, type Logger } from '../service/logging.js';
import { type MetricsServer, serveMetrics } from '../service/metrics-server.js';
import { PUSHGATEWAY_URL_ENV, PushgatewayClient, pushgatewayFromEnv } from '../service/pushgateway.js';

export interface EvalMetricsSetup extends Omit<EvalMetricsOptions, 'push'> {
  /** Pushgateway base URL; default $GET_DISTILL_PUSHGATEWAY_URL (pushgatewayFromEnv); empty string: never push. */
  readonly pushgateway?: string;
  /** Default `process.env` (read for the Pushgateway URL only). */
  readonly env?: NodeJS.ProcessEnv;
  /** Receives push failures (the first as a warning); default a pino logger named `eval`. */
  readonly logger?: Logger;
  /** Per-push HTTP timeout in milliseconds (default 5,000). */
  readonly pushTimeoutMs?: number;
}

/**
 * The metrics of one eval run, pushed under job `get_eval` and grouping {instance: run id} when a
 * Pushgateway is configured (option, else the env var).
 * @throws UsageError naming the option or the env var when the Pushgateway URL is invalid.
 */
export function createEvalMetrics(o: EvalMetricsSetup): EvalMetrics {
  const { pushgateway, env, logger = createLogger('eval'), pushTimeoutMs, ...rest } = o;
  const url = (pushgateway ?? pushgatewayFromEnv(env) ?? '').trim();
  const source = pushgateway === undefined ? PUSHGATEWAY_URL_ENV : 'pushgateway';
  return new EvalMetrics({
    ...rest,
    push:
      url === ''
        ? undefined
        : (registry, runId) =>
            new PushgatewayClient(registry, {
              url,
              source,
              job: EVAL_JOB,
              groupings: { instance: runId },
              logger,
              timeoutMs: pushTimeoutMs,
            }),
  });
}

/**
 * Serves the run's gauges on /metrics (plus process and HTTP metrics), /healthz and /readyz.
 * @param port 0 picks a free port (read it from the returned `url`).
 * @throws UsageError when the address cannot be bound.
 */
export function serveEvalMetrics(
  metrics: EvalMetrics,
  port: number,
  host = '127.0.0.1',
  logger: Logger = createLogger('eval'),
): Promise<MetricsServer> {
  return serveMetrics(metrics.registry, { name: 'eval', logger, port, host });
}
