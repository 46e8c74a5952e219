/**
 * The termination message: how a finished stage pod tells the operator its result. Kubernetes copies
 * the file at the container's `terminationMessagePath` (default /dev/termination-log) into
 * `status.containerStatuses[].state.terminated.message`, cut at 4096 bytes
 * (https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/). Job mode
 * (src/jobs/run-job.ts) and `get-distill eval` write ONE compact JSON object there when
 * GET_DISTILL_TERMINATION_LOG names the path; the operator parses it with
 * {@link TerminationMessageSchema}. Contract: docs/data-contracts.md (termination message).
 *
 * Size: the encoding never exceeds {@link TERMINATION_MESSAGE_MAX_BYTES} and is always valid JSON: the
 * error message is cut first (ending in `…`); when even an empty message does not fit, the largest
 * summary/artifact entries are dropped and named in `truncated`.
 */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';

/** The variable naming the file to write (the operator sets /dev/termination-log). */
export const TERMINATION_LOG_ENV = 'GET_DISTILL_TERMINATION_LOG';

/** Kubernetes keeps at most this many bytes of a termination message. */
export const TERMINATION_MESSAGE_MAX_BYTES = 4096;

/**
 * The message, version 1. Unknown fields are ignored when parsing, so later versions may add some.
 * - `stage`: datagen, train, export (job mode) or eval (the eval CLI).
 * - `outcome`: done (exit 0), failed (exit 2 permanent, 75 retryable; the eval CLI: 2, or 1 for a bug),
 *   interrupted (stopped at a safe point by SIGTERM: exit 75; the eval CLI: 130).
 * - `summary`: the stage's facts (train: step, loss; export: sha256 (of model.onnx); eval: fid, inceptionScore,
 *   precision, recall, samples; datagen: pairs, generated …).
 * - `artifacts`: URIs by name (`model`, `card`, `manifest`, `checkpoints`, `report` …).
 * - `error`: on failure; `kind` says whether a retry of the same spec can succeed.
 * - `truncated`: entries dropped to fit 4096 bytes (`summary.<key>`, `artifacts.<key>`, `error.message`).
 */
export const TerminationMessageSchema = z.object({
  v: z.literal(1),
  stage: z.enum(['datagen', 'train', 'export', 'eval']),
  outcome: z.enum(['done', 'failed', 'interrupted']),
  exitCode: z.number().int().min(0).max(255),
  summary: z.record(z.string(), z.unknown()),
  artifacts: z.record(z.string(), z.string()),
  error: z.object({ kind: z.enum(['permanent', 'retryable']), message: z.string() }).optional(),
  truncated: z.array(z.string()).optional(),
});

export type TerminationMessage = z.infer<typeof TerminationMessageSchema>;

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');
/** JSON with bigints as decimal strings (a summary may hold one); NaN/±Infinity become null as usual. */
const bigints = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);
const json = (m: TerminationMessage): string => JSON.stringify(m, bigints);
/** Bytes an entry `"key":value` takes. */
const entryBytes = (k: string, v: unknown): number =>
  bytes(JSON.stringify(k)) + 1 + bytes(JSON.stringify(v, bigints) ?? '');

/** `message` cut to its first `n` code points, with `…` when cut. */
function cut(chars: readonly string[], n: number): string {
  return n >= chars.length ? chars.join('') : `${chars.slice(0, n).join('')}…`;
}

/**
 * Encodes `msg` as compact JSON of at most `maxBytes` UTF-8 bytes (see the file header for what is
 * cut). Never throws for a message of the schema's shape; maxBytes must be ≥ 1024.
 */
export function encodeTerminationMessage(msg: TerminationMessage, maxBytes = TERMINATION_MESSAGE_MAX_BYTES): string {
  const full = json(msg);
  if (bytes(full) <= maxBytes) return full;
  const summary: Record<string, unknown> = { ...msg.summary };
  const artifacts: Record<string, string> = { ...msg.artifacts };
  const truncated: string[] = [];
  const chars = msg.error ? Array.from(msg.error.message) : [];
  // At most 8 names of 64 characters, so the list itself stays small.
  const names = (): string[] => [
    ...truncated.slice(0, 8).map((t) => t.slice(0, 64)),
    ...(truncated.length > 8 ? [`+${truncated.length - 8} more`] : []),
  ];
  const withMessage = (n: number): TerminationMessage => ({
    ...msg,
    summary,
    artifacts,
    ...(msg.error ? { error: { kind: msg.error.kind, message: cut(chars, n) } } : {}),
    truncated: [...(msg.error && n < chars.length ? ['error.message'] : []), ...names()],
  });
  // Entries go, largest first, only while even an empty error message does not fit.
  while (bytes(json(withMessage(0))) > maxBytes) {
    const entries = [
      ...Object.keys(summary).map((k) => ({
        name: `summary.${k}`,
        size: entryBytes(k, summary[k]),
        drop: () => delete summary[k],
      })),
      ...Object.keys(artifacts).map((k) => ({
        name: `artifacts.${k}`,
        size: entryBytes(k, artifacts[k]),
        drop: () => delete artifacts[k],
      })),
    ];
    if (entries.length === 0) break;
    const largest = entries.reduce((a, b) => (b.size > a.size ? b : a));
    largest.drop();
    truncated.push(largest.name);
  }
  // The longest prefix of the error message that fits (binary search over code points).
  let lo = 0;
  let hi = chars.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (bytes(json(withMessage(mid))) <= maxBytes) lo = mid;
    else hi = mid - 1;
  }
  const out = withMessage(lo);
  const text = json(out.truncated!.length > 0 ? out : { ...out, truncated: undefined });
  if (bytes(text) <= maxBytes) return text;
  // Unreachable for maxBytes ≥ 1024 (every field left is short); still never more than maxBytes.
  return json({
    v: 1,
    stage: msg.stage,
    outcome: msg.outcome,
    exitCode: msg.exitCode,
    summary: {},
    artifacts: {},
    truncated: ['all'],
  });
}

/**
 * Writes `msg` (encoded by {@link encodeTerminationMessage}) to `path` synchronously, so it is on disk
 * before the process.exit that follows.
 * @throws Error naming the path and the errno when the file cannot be written.
 */
export function writeTerminationMessage(path: string, msg: TerminationMessage): void {
  try {
    writeFileSync(path, encodeTerminationMessage(msg));
  } catch (e) {
    throw new Error(
      `${TERMINATION_LOG_ENV}=${path}: cannot write the termination message ` +
        `(${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      { cause: e },
    );
  }
}

/**
 * Writes the message when `env` sets {@link TERMINATION_LOG_ENV}; a failed write is handed to `warn`
 * (the exit code matters more than the message). @returns whether it was written.
 */
export function writeTerminationMessageFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  msg: TerminationMessage,
  warn: (message: string) => void,
): boolean {
  const path = env[TERMINATION_LOG_ENV];
  if (path === undefined || path.trim() === '') return false;
  try {
    writeTerminationMessage(path, msg);
    return true;
  } catch (e) {
    warn((e as Error).message);
    return false;
  }
}
