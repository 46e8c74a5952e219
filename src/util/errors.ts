/**
 * Errors a user can fix (bad flags, bad input files, a non-empty output folder …). The CLI prints
 * their message on one line and exits with code 2; anything else is a bug and keeps its stack.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Exit code for a UsageError (commander uses 1 for its own errors; we map those to 2 as well). */
export const EXIT_USAGE = 2;
