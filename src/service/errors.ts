/**
 * HTTP errors of the service kit: one class that carries the status, a stable machine-readable code
 * and a message for people, rendered as `{ "error": { "code", "message" } }` (DESIGN.md "Services").
 * Client mistakes are 4xx and name the field; 5xx is reserved for the server's own failures.
 */
import type { ZodError } from 'zod';

/** Codes used across the services (clients branch on these; messages may change). */
export type ErrorCode =
  | 'bad_request' // a field is missing, of the wrong type or out of range
  | 'invalid_json' // the body does not parse as JSON
  | 'not_found' // unknown route or unknown model
  | 'method_not_allowed'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'queue_full' // 429: the batcher's queue is at its limit
  | 'busy' // 409: a stage worker already runs its maximum of jobs (src/jobs/manager.ts)
  | 'not_ready' // 503: loading or warming up
  | 'draining' // 503: shutting down
  | 'unavailable' // 503: a dependency (the object store) cannot be reached now; retry
  | 'deadline_exceeded' // 504: the request waited or ran past its deadline
  | 'client_closed' // 499 (nginx's convention): the client went away; nobody reads the response
  | 'internal';

/** An error that becomes an HTTP response; `headers` (e.g. Retry-After, Allow) are sent with it. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** 400 naming the field: `badRequest('n', 'must be an integer in [1, 16]')` → "n: must be …". */
export const badRequest = (field: string, problem: string): HttpError =>
  new HttpError(400, 'bad_request', `${field}: ${problem}`);

/** `inputs[0].shape`-style path of a zod issue; the root is called `root` (e.g. `body`, `query`). */
export function issuePath(path: readonly PropertyKey[], root: string): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out === '' ? String(k) : `.${String(k)}`;
  return out === '' ? root : out;
}

/**
 * One line from a zod error: `field: problem; field: problem` (at most 5 issues; unknown keys are named).
 * @param root what an empty path means (`body`, `query`, …).
 */
export function formatZodError(err: ZodError, root: string): string {
  const parts = err.issues.slice(0, 5).map((i) => {
    const keys = (i as { keys?: string[] }).keys;
    const expected = (i as { expected?: string }).expected;
    const problem =
      i.code === 'unrecognized_keys' && keys
        ? `unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => JSON.stringify(k)).join(', ')}`
        : i.code === 'invalid_type' && / received undefined$/.test(i.message)
          ? `is required${expected ? ` (${expected})` : ''}`
          : i.message;
    return `${issuePath(i.path, root)}: ${problem}`;
  });
  if (err.issues.length > 5) parts.push(`… ${err.issues.length - 5} more`);
  return parts.join('; ');
}

/** 400 from a zod error (see {@link formatZodError}). */
export const zodBadRequest = (err: ZodError, root: string): HttpError =>
  new HttpError(400, 'bad_request', formatZodError(err, root));
