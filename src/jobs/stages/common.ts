/**
 * Pieces the stage adapters share: spec field schemas (URIs, integers) and the rewrite of a stage's
 * CLI-worded errors (`--steps`) into spec field names (`steps`). Metrics: src/jobs/metrics.ts.
 */
import { joinUri, parentUri, StoreError, storeFor } from '../../store/index.js';
import { UsageError } from '../../util/errors.js';

// The spec field pieces live in src/spec (pure, so the operator and CLI load them without the stages).
export { ALLOWED_LOCATIONS_ENV, intIn as intField, locationAllowed, uriField } from '../../spec/fields.js';

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
