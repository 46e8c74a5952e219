/**
 * Error classification for stage jobs and the eval job (in the service kit: the CLI and the services both
 * use it): is a failure worth a retry? The answer becomes the job's `error.code` in service mode and
 * the exit code in job mode, which a Kubernetes Job's podFailurePolicy keys on
 * (https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy):
 * `onExitCodes {operator: In, values: [2]} → FailJob` (permanent), exit 75 counts against backoffLimit
 * (retryable: the pod is recreated and the stage resumes from its shards or checkpoint).
 *
 * Rules, first match wins (an error's `cause` chain is searched for a StoreError first, so a stage that
 * wraps a storage failure keeps its class):
 * - StoreError Unreachable, Aborted, and Io that looks transient (HTTP 5xx/429 or a network/busy errno
 *   in its cause) → retryable; every other StoreError (NotFound, NoSuchBucket, AccessDenied, Config,
 *   BadUri, UnknownScheme, OutsideRoot, other Io) → permanent: retrying cannot create a bucket or a key.
 * - An interrupted or aborted run (`Interrupted`, `AbortError`) → retryable (it stopped at a safe point).
 * - UsageError, ZodError (bad spec, corrupt input) → permanent.
 * - A bare Node network error (ECONNRESET, ETIMEDOUT, …) outside the store → retryable.
 * - Anything else is a bug (TypeError, RangeError, …) → permanent, reason `internal`: a retry would
 *   fail the same way and burn the Job's backoffLimit (and GPU hours) in a loop. The stack goes to the
 *   JSON log; the one-line message says it is a bug.
 */
import { ZodError } from 'zod';
import { StoreError } from '../store/types.js';
import { EXIT_PERMANENT, EXIT_RETRYABLE, Interrupted, UsageError } from '../util/errors.js';
import { formatZodError } from './errors.js';

/** Whether retrying the same spec can succeed. */
export type ErrorClass = 'permanent' | 'retryable';

/** A classified failure: its class, exit code, a stable reason and a one-line message. */
export interface ClassifiedError {
  readonly class: ErrorClass;
  /** {@link EXIT_PERMANENT} (2) or {@link EXIT_RETRYABLE} (75). */
  readonly exitCode: number;
  /**
   * Machine-readable: the StoreError code (`Unreachable`, …), `usage`, `spec`, `interrupted`, `network` or `internal`.
   */
  readonly reason: string;
  /** One line for people (stderr, the job record): names the problem and, where known, the fix. */
  readonly message: string;
}

/** Errnos that say "try again later" (network, DNS, busy resources). */
const TRANSIENT_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EBUSY',
  'EAGAIN',
  'EMFILE',
  'ENFILE',
]);
/** SDK error names that say the same. */
const TRANSIENT_NAMES = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'SlowDown',
  'ThrottlingException',
  'ServiceUnavailable',
  'InternalError',
]);

/** The exit code of a class. */
export const exitCodeOf = (c: ErrorClass): number => (c === 'permanent' ? EXIT_PERMANENT : EXIT_RETRYABLE);

/** The error and its causes, outermost first (at most 8 deep, cycles cut). */
function causes(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (
    let e = err;
    e !== undefined && e !== null && out.length < 8 && !out.includes(e);
    e = (e as { cause?: unknown }).cause
  )
    out.push(e);
  return out;
}

/** Whether an Io StoreError's cause looks transient (5xx/429 answer, busy or network errno, timeout). */
function transientIo(e: StoreError): boolean {
  return causes(e.cause).some((c) => {
    const x = c as { code?: unknown; name?: unknown; $metadata?: { httpStatusCode?: number } };
    const http = x?.$metadata?.httpStatusCode;
    return (
      (http !== undefined && (http >= 500 || http === 429)) ||
      TRANSIENT_ERRNOS.has(String(x?.code)) ||
      TRANSIENT_NAMES.has(String(x?.name))
    );
  });
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();
const make = (c: ErrorClass, reason: string, message: string): ClassifiedError => ({
  class: c,
  exitCode: exitCodeOf(c),
  reason,
  message: oneLine(message),
});

/**
 * Classifies any thrown value (see the file header for the rules).
 * @param specRoot how a ZodError's empty path is named (`spec`, `body`).
 */
export function classifyError(err: unknown, specRoot = 'spec'): ClassifiedError {
  const chain = causes(err);
  const store = chain.find((e): e is StoreError => e instanceof StoreError);
  const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));
  if (store) {
    // Keep the outer message when a stage added context around the store's line.
    const text = err instanceof Error && err !== store ? err.message : store.message;
    if (store.code === 'Unreachable' || store.code === 'Aborted' || (store.code === 'Io' && transientIo(store)))
      return make('retryable', store.code, text);
    return make('permanent', store.code, text);
  }
  const e = err as { name?: unknown; code?: unknown } | null;
  // AbortError comes from Node and the SDKs as a name only (DOMException or not), so it is matched by name.
  if (err instanceof Interrupted || e?.name === 'AbortError')
    return make('retryable', 'interrupted', msg(err) || 'interrupted');
  if (err instanceof ZodError) return make('permanent', 'spec', `invalid spec: ${formatZodError(err, specRoot)}`);
  if (err instanceof UsageError) return make('permanent', 'usage', err.message);
  if (TRANSIENT_ERRNOS.has(String(e?.code))) return make('retryable', 'network', msg(err));
  const name = err instanceof Error ? err.name : typeof err;
  return make('permanent', 'internal', `internal error (a bug; the log has the stack): ${name}: ${msg(err)}`);
}
