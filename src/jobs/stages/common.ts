/**
 * Pieces the stage adapters share: spec field schemas (URIs, integers) and the rewrite of a stage's
 * CLI-worded errors (`--steps`) into spec field names (`steps`). Metrics: src/jobs/metrics.ts.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { joinUri, parentUri, parseUri, StoreError, storeFor } from '../../store/index.js';
import { UsageError } from '../../util/errors.js';

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
 * A location field: a plain path, file:///… or s3://bucket/prefix (checked by the store's URI parser),
 * and under GET_DISTILL_ALLOWED_LOCATIONS when that is set (a service reachable by others should set it).
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
          message: `${v} is outside the locations this worker may use (${ALLOWED_LOCATIONS_ENV}=${process.env[ALLOWED_LOCATIONS_ENV]})`,
        });
    })
    .describe(what);
}

/** An integer field in [min, max]. */
export const intField = (min: number, max = Number.MAX_SAFE_INTEGER): z.ZodNumber =>
  z.number().int('must be an integer').min(min).max(max);

/** `--teacher-rank` → `teacherRank`. */
const fieldOf = (flag: string): string => flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/**
 * Rewrites the CLI flags a stage names in a UsageError (`--steps 5 is below …`) as spec fields
 * (`steps 5 is below …`); a StoreError is returned unchanged (its code tells retryable from permanent).
 * Other errors pass through.
 */
export function asSpecError(e: unknown): unknown {
  if (!(e instanceof UsageError) || e instanceof StoreError) return e;
  const message = e.message.replace(/--([a-z][a-z-]*)/g, (_m, flag: string) => fieldOf(flag));
  return message === e.message ? e : new UsageError(message, { cause: e });
}

/** A permanent error naming a spec field: `field: problem`. */
export const fieldError = (field: string, problem: string): UsageError => new UsageError(`${field}: ${problem}`);

/**
 * Preflight: `field` names an input that must exist, as the object `uri` itself or, for a folder, one
 * of `inside` (e.g. `manifest.json`).
 * @throws UsageError `field: no … at <uri>`; StoreError when the store cannot be reached.
 */
export async function requireInput(
  field: string,
  uri: string,
  what: string,
  inside: readonly string[] = [],
): Promise<void> {
  const store = storeFor(parentUri(uri));
  if ((await store.head(uri)) !== null) return;
  for (const name of inside) if ((await store.head(joinUri(uri, name))) !== null) return;
  throw fieldError(field, `no ${what} at ${uri}${inside.length ? ` (nor its ${inside.join(' or ')})` : ''}`);
}
