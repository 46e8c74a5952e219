/**
 * Field builders of the option specs: integers and numbers whose every error reads the same in a CLI
 * flag, an environment variable or a job spec (`must be an integer in [1, 1000]`), and location fields.
 * Imports zod and the store's pure URI parser only.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseUri } from '../store/uri.js';

/**
 * An integer field in [lo, hi] (hi omitted: no upper bound) whose every error, a wrong type included,
 * reads `must be an integer in [lo, hi]` or `must be an integer ≥ lo`.
 */
export function intIn(lo: number, hi = Number.MAX_SAFE_INTEGER): z.ZodNumber {
  const error = `must be an integer ${hi === Number.MAX_SAFE_INTEGER ? `≥ ${lo}` : `in [${lo}, ${hi}]`}`;
  return z.number({ error }).int({ error }).min(lo, { error }).max(hi, { error });
}

/**
 * A number field above `lo` (or at least `lo` when `inclusive`), and below `below` when given; every
 * error reads `must be a number > lo` (`≥ lo`, `… and < below`).
 */
export function numAbove(lo: number, o: { inclusive?: boolean; below?: number } = {}): z.ZodNumber {
  const error = `must be a number ${o.inclusive ? '≥' : '>'} ${lo}${o.below !== undefined ? ` and < ${o.below}` : ''}`;
  const n = z.number({ error });
  const low = o.inclusive ? n.min(lo, { error }) : n.gt(lo, { error });
  return o.below !== undefined ? low.lt(o.below, { error }) : low;
}

/**
 * A location as the CLI takes it: a plain path, file:///… or s3://bucket/prefix (the store's URI parser
 * decides); errors read `must not be empty`, `must not contain NUL bytes` or the parser's message.
 */
export function locationField(): z.ZodString {
  return z.string().superRefine((v, ctx) => {
    if (v.trim() === '') return void ctx.addIssue({ code: 'custom', message: 'must not be empty' });
    if (v.includes('\0')) return void ctx.addIssue({ code: 'custom', message: 'must not contain NUL bytes' });
    try {
      parseUri(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
    }
  });
}

/** Env var: comma-separated location prefixes every spec URI must lie under (unset: any location). */
export const ALLOWED_LOCATIONS_ENV = 'GET_DISTILL_ALLOWED_LOCATIONS';

/** A location as one comparable string: `s3://bucket/key` or an absolute, normalised local path. */
function canonicalLocation(uri: string): string {
  const p = parseUri(uri);
  return p.scheme === 's3' ? `s3://${p.bucket}/${p.key}`.replace(/\/+$/, '') : resolve(p.path);
}

/**
 * Whether `uri` lies under one of the allowed prefixes of GET_DISTILL_ALLOWED_LOCATIONS (always true
 * when unset). Local paths are resolved first (`..`, and `%2e%2e` in file:// URLs, cannot escape).
 */
export function locationAllowed(uri: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const raw = env[ALLOWED_LOCATIONS_ENV]?.trim();
  if (!raw) return true;
  const here = canonicalLocation(uri);
  return raw
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .some((prefix) => {
      const root = canonicalLocation(prefix);
      return here === root || here.startsWith(root.endsWith('/') ? root : `${root}/`);
    });
}

/**
 * A job spec's location field: a plain path, file:///… or s3://bucket/prefix (checked by the store's URI
 * parser), and under GET_DISTILL_ALLOWED_LOCATIONS when that is set (a service reachable by others should
 * set it).
 */
export function uriField(what: string): z.ZodString {
  return z
    .string()
    .min(1, 'must not be empty')
    .superRefine((v, ctx) => {
      try {
        parseUri(v);
      } catch (e) {
        ctx.addIssue({
          code: 'custom',
          message: `${(e as Error).message} (${what}: a path, file:///… or s3://bucket/prefix)`,
        });
        return;
      }
      if (!locationAllowed(v))
        ctx.addIssue({
          code: 'custom',
          message:
            `${v} is outside the locations this worker may use ` +
            `(${ALLOWED_LOCATIONS_ENV}=${process.env[ALLOWED_LOCATIONS_ENV]})`,
        });
    })
    .describe(what);
}

/** The default of a field with one (`field.parse(undefined)`), for schemas that narrow a shared field. */
export function defaultOf<T>(field: z.ZodType<T>): T {
  return field.parse(undefined);
}
