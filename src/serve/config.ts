/**
 * The inference service's configuration: ONE zod schema for flags, environment variables and
 * programmatic use, each field with its bounds, default and --help line (`.describe()`). Each option
 * has a flag (`--max-batch-size`) and an environment variable
 * (`GET_DISTILL_MAX_BATCH_SIZE`; the model also as `GET_DISTILL_MODEL`); a flag wins over the
 * environment, the environment over the default (the service kit's resolveConfig). Strings from
 * flags and env are coerced; numbers given in code pass through the same checks.
 */
import { z } from 'zod';
import { LOG_LEVELS } from '../service/logging.js';
import { parseUri } from '../store/index.js';
import { resolveConfig } from '../service/config.js';

/** Parses a byte size: `8mb`, `512kb`, `1gb`, `1048576` (1024-based, as body-parser's `limit`). */
export function parseBytes(v: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(v);
  if (!m) return null;
  const mult = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[(m[2] ?? 'b').toLowerCase() as 'b'];
  return Math.floor(Number(m[1]) * mult);
}

/** Integer strings → numbers (other strings stay strings, so the number check names them). */
const intString = (v: unknown): unknown => (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v);
const int = (lo: number, hi: number) => {
  const msg = `must be an integer in [${lo}, ${hi}]`;
  return z.preprocess(
    intString,
    z.number({ error: msg }).int({ error: msg }).min(lo, { error: msg }).max(hi, { error: msg }),
  );
};

const uri = z
  .string({
    error: 'is required: a path, file:///… or s3://bucket/key of a model.onnx exported by `get-distill export`',
  })
  .superRefine((v, ctx) => {
    try {
      if (v.trim() === '') throw new Error('must not be empty');
      parseUri(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
    }
  });

export const ServeConfigSchema = z
  .object({
    model: uri.describe('model.onnx exported by `get-distill export`: a path, file:///… or s3://bucket/key'),
    modelName: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, {
        error: 'must be 1–64 letters, digits, "_", "." or "-", starting with a letter or digit',
      })
      .default('get')
      .describe('name in URLs (/v2/models/{name}) and in the `model` field of OpenAI requests'),
    host: z
      .string()
      .min(1, { error: 'must not be empty' })
      .default('127.0.0.1')
      .describe('address to bind (0.0.0.0 in a container)'),
    port: int(0, 65535).default(8080).describe('TCP port (0 = any free port, logged)'),
    maxBatchSize: int(1, 4096).default(32).describe('most images in one onnxruntime run'),
    // Triton's max_queue_delay.
    maxQueueDelayMs: int(0, 60_000).default(5).describe('longest a request waits for a fuller batch'),
    maxQueueSize: int(1, 1_000_000).default(256).describe('waiting requests beyond this get 429 with Retry-After'),
    maxImagesPerRequest: int(1, 4096)
      .default(16)
      .describe('largest n of POST /v1/images/generations (≤ --max-batch-size)'),
    requestTimeoutMs: int(1, 3_600_000).default(30_000).describe('deadline of a request; past it the client gets 504'),
    sessions: int(1, 256)
      .default(1)
      .describe('onnxruntime sessions (worker threads), each with floor(cores / n) threads'),
    // 1024-based, as body-parser's `limit`.
    bodyLimit: z
      .preprocess(
        (v) => (typeof v === 'string' ? (parseBytes(v) ?? v) : v),
        z
          .number({ error: 'must be a size such as 8mb, 512kb or a byte count' })
          .int()
          .min(1024, { error: 'must be at least 1kb' })
          .max(1024 ** 3, { error: 'must be at most 1gb' }),
      )
      .default(8 * 1024 ** 2)
      .describe('largest JSON body, e.g. 8mb, 512kb'),
    shutdownGraceMs: int(0, 3_600_000)
      .default(30_000)
      .describe('on SIGTERM, how long to finish queued requests before cutting connections'),
    logLevel: z
      .enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` })
      .default('info')
      .describe(`${LOG_LEVELS.slice(0, -1).join(', ')} or ${LOG_LEVELS[LOG_LEVELS.length - 1]}`),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.maxImagesPerRequest > c.maxBatchSize) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxImagesPerRequest'],
        message: `exceeds --max-batch-size ${c.maxBatchSize}: one request must fit in one onnxruntime run`,
      });
    }
  });

/** The resolved configuration (defaults applied, values checked). */
export type ServeConfig = z.infer<typeof ServeConfigSchema>;
/** What callers may give: any subset, strings or numbers, `model` required. */
export type ServeConfigInput = z.input<typeof ServeConfigSchema>;

export { envOf, flagOf } from '../service/config.js';

/** Every option key, in schema order. */
export const SERVE_OPTION_KEYS = Object.keys(ServeConfigSchema.shape) as (keyof ServeConfig)[];

/**
 * Resolves flags over environment over defaults and validates everything (src/service/config.ts).
 * @param flags option values by key (commander's camelCase), strings or numbers; undefined = not given.
 * @param env usually `process.env`.
 * @throws UsageError, one line naming the flag or variable, the problem and the value given (not for
 *   `model`: the store's URI errors already quote the URI).
 */
export function resolveServeConfig(
  flags: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> = {},
): ServeConfig {
  return resolveConfig(ServeConfigSchema, flags, env, { noEcho: ['model'] });
}
