/**
 * Structured logs (pino, JSON lines on stdout): one logger per service, named after it. Services log
 * what they do and how long it took, never request bodies, headers or credentials.
 */
import { destination, pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

/** Log levels accepted by `--log-level` / `GET_DISTILL_LOG_LEVEL`. */
export const LOG_LEVELS = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
] as const satisfies readonly LevelWithSilent[];

/**
 * A JSON-lines logger for service `name` (field `service` on every line), ISO timestamps.
 * `level: 'silent'` for tests.
 * @param o.sync write each line synchronously: for short-lived processes that end with process.exit
 *   (job mode), where pino's default asynchronous stream can drop or reorder the last lines.
 * @param o.stderr write to stderr: for a CLI whose stdout carries its result.
 */
export function createLogger(
  name: string,
  level: LevelWithSilent = 'info',
  o: { sync?: boolean; stderr?: boolean } = {},
): Logger {
  return pino(
    {
      level,
      base: { service: name, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Defence in depth: these never reach a log call, but a careless `log.info({ req })` must not leak them.
      redact: {
        paths: [
          'headers.authorization',
          'headers.cookie',
          '*.headers.authorization',
          '*.headers.cookie',
          'credentials',
          '*.credentials',
          'secretAccessKey',
          '*.secretAccessKey',
        ],
        censor: '[redacted]',
      },
    },
    o.sync || o.stderr ? destination({ dest: o.stderr ? 2 : 1, sync: o.sync ?? false }) : undefined,
  );
}
