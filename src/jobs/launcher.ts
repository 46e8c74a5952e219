/**
 * The launcher of a data-parallel train job (`--mode job --ranks N` started outside mpirun: the MPIJob's
 * launcher pod, or a person on one machine). It runs `mpirun -np N` over this very command line — each
 * rank then finds itself under mpirun and trains as one rank of the world — and ends as a job-mode
 * process does: exit 0 / 2 (permanent) / 75 (retryable, e.g. a lost rank: a retry resumes from
 * latest.json) and a termination message. Rank 0 prints its termination message on stdout
 * ({@link RANK_TERMINATION_PREFIX}); the launcher keeps it, so the operator reads the trainer's summary
 * from the launcher pod as it reads it from a trainer Job's pod.
 */
import type { Logger } from '../service/logging.js';
import {
  encodeTerminationMessage,
  TerminationMessageSchema,
  type TerminationMessage,
  writeTerminationMessageFromEnv,
} from '../service/termination.js';
import { forwardedEnvNames, runMpirun } from '../parallel/launch.js';
import { EXIT_PERMANENT, EXIT_RETRYABLE } from '../util/errors.js';

/** Rank 0's stdout line carrying its termination message (JSON follows the prefix). */
export const RANK_TERMINATION_PREFIX = 'get-distill-termination-message ';

/** The line rank 0 prints for `msg` (see {@link RANK_TERMINATION_PREFIX}). */
export const rankTerminationLine = (msg: TerminationMessage): string =>
  `${RANK_TERMINATION_PREFIX}${encodeTerminationMessage(msg)}\n`;

/**
 * Runs mpirun over this process's own command line and returns the job-mode exit code.
 * @param name the service name (`trainer`): the prefix of the ranks' one-line errors.
 */
export async function launchRanks(
  name: string,
  ranks: number,
  env: Readonly<Record<string, string | undefined>>,
  log: Logger,
): Promise<number> {
  let rankMessage: TerminationMessage | undefined;
  let lastError: string | undefined;
  const errPrefix = `get-distill-${name}: `;
  log.info({ ranks }, `launching ${ranks} ranks with mpirun`);
  const r = await runMpirun({
    ranks,
    command: [process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    // The termination log is the launcher's own file; the ranks print theirs instead.
    forwardEnv: forwardedEnvNames(env).filter((n) => n !== 'GET_DISTILL_TERMINATION_LOG'),
    // On one machine (no hostfile: not an MPIJob) more ranks than cores are allowed, as in distill
    // --ranks; with a hostfile its slots decide, unless GET_DISTILL_MPI_OVERSUBSCRIBE=1.
    oversubscribe: env.GET_DISTILL_MPI_OVERSUBSCRIBE === '1' || !env.OMPI_MCA_orte_default_hostfile,
    onLine: (line, { stream }) => {
      if (line.startsWith(RANK_TERMINATION_PREFIX)) {
        const parsed = TerminationMessageSchema.safeParse(safeJson(line.slice(RANK_TERMINATION_PREFIX.length)));
        if (parsed.success) rankMessage = parsed.data;
        return;
      }
      if (stream === 'stderr' && line.startsWith(errPrefix)) lastError = line.slice(errPrefix.length);
      (stream === 'stderr' ? process.stderr : process.stdout).write(`${line}\n`);
    },
  });
  // A lost rank or host, or mpirun itself killed (128 + signal), is retryable: the retry resumes.
  const lost = r.lostRank !== undefined || r.lostHost !== undefined || r.code >= 128;
  const code = lost ? EXIT_RETRYABLE : r.code;
  // The ranks' own error line names the cause; mpirun's says only which rank exited how.
  const line = lost ? (r.line ?? `mpirun ended with status ${r.code}`) : (lastError ?? r.line);
  const message = launcherMessage(code, rankMessage, line);
  if (code !== 0) process.stderr.write(`${errPrefix}${message.error?.message ?? `ranks exited ${code}`}\n`);
  writeTerminationMessageFromEnv(env, message, (why) => log.warn(why));
  return code;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * The launcher's termination message: rank 0's when it printed one and the world ended as it said,
 * else one built from the world's end (a lost rank, or another rank's error line).
 */
function launcherMessage(
  code: number,
  fromRank0: TerminationMessage | undefined,
  line: string | undefined,
): TerminationMessage {
  if (fromRank0 && fromRank0.exitCode === code) return fromRank0;
  return {
    v: 1,
    stage: 'train',
    outcome: code === 0 ? 'done' : 'failed',
    exitCode: code,
    summary: { ...fromRank0?.summary },
    artifacts: { ...fromRank0?.artifacts },
    ...(code === 0
      ? {}
      : {
          error: {
            kind: code === EXIT_PERMANENT ? 'permanent' : 'retryable',
            message: line ?? `the ranks ended with exit status ${code}`,
          },
        }),
  };
}
