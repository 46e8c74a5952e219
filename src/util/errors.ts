/**
 * Errors and exit codes every layer shares: the CLI, the stage jobs and the eval job map them to exit
 * codes, the stages throw them. Recognise them with `instanceof`, never by their `name` string.
 */

/**
 * Errors a user can fix (bad flags, bad input files, a non-empty output folder …). The CLI prints
 * their message on one line and exits with code 2; anything else is a bug and keeps its stack.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Raised when SIGINT/SIGTERM stopped a run at a safe point (after a checkpoint or a finished shard):
 * the CLI exits {@link EXIT_INTERRUPTED}; a stage job counts it retryable ({@link EXIT_RETRYABLE}).
 */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

/** Exit code for a UsageError (commander uses 1 for its own errors; we map those to 2 as well). */
export const EXIT_USAGE = 2;
/** Exit code of the CLI after SIGINT/SIGTERM (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;
/** Stage jobs: a failure a retry of the same spec cannot fix (the Job's podFailurePolicy → FailJob). */
export const EXIT_PERMANENT = 2;
/** Stage jobs: a failure worth a retry (counts against the Job's backoffLimit; the stage resumes). */
export const EXIT_RETRYABLE = 75;
