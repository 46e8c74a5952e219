/**
 * Job mode: one stage run as a Kubernetes Job's pod. While it runs, the process serves `/healthz`,
 * `/readyz`, `/metrics` (Prometheus scrapes progress) and `GET /v1/job` (the record). The exit code is
 * what the Job's podFailurePolicy keys on (src/jobs/types.ts):
 * - 0: the stage finished; its artifacts are logged.
 * - 2 (permanent): bad spec, bad JOB_COMPLETION_INDEX, missing input, access denied, a bug.
 * - 75 (retryable): store unreachable, or SIGTERM/SIGINT (preemption, node drain, `kubectl delete`):
 *   the signal is aborted, the stage stops at its next safe point (datagen: the current shard is
 *   dropped, finished ones stay; train: a checkpoint is written) and the retry resumes from there. When
 *   the safe point does not come within the grace period the exit is 75 all the same, and the log says
 *   the checkpoint may be older. A second signal exits 75 at once.
 * Every non-zero exit writes ONE line on stderr (kubectl logs; `terminationMessagePolicy:
 * FallbackToLogsOnError` shows it as the termination message) besides the JSON log line. When
 * GET_DISTILL_TERMINATION_LOG names a file (the operator sets /dev/termination-log), every exit first
 * writes the JSON termination message there (src/service/termination.ts: stage, outcome, exit code,
 * summary, artifacts, error), which Kubernetes shows as `state.terminated.message`.
 *
 * onnxruntime's GPU → CPU fallback warning (src/graph/providers.ts) goes to the job's logger; a bad
 * GET_DISTILL_EXECUTION_PROVIDERS fails the job at once (exit 2).
 *
 * Indexed Jobs (https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode) set
 * JOB_COMPLETION_INDEX per pod; it reaches the stage as `ctx.completionIndex`.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServiceApp, listen, ServiceState } from '../service/app.js';
import { HttpError } from '../service/errors.js';
import type { Logger } from '../service/logging.js';
import { createRegistry } from '../service/metrics.js';
import { loggerWarningSink, resolveExecutionProviders, setProviderWarningSink } from '../graph/providers.js';
import { UsageError } from '../util/errors.js';
import { classifyError, type ErrorClass, exitCodeOf } from '../service/error-class.js';
import { JobManager, type JobRecord } from './manager.js';
import { type TerminationMessage, writeTerminationMessageFromEnv } from '../service/termination.js';
import { rankTerminationLine } from './launcher.js';
import { underMpirun, worldRankOf } from '../parallel/mpi.js';
import { EXIT_OK, EXIT_RETRYABLE, type StageJob } from './types.js';

export interface JobModeOptions {
  readonly logger: Logger;
  /** Port of /metrics and the probes (0: any free port, logged as `listening`). Default 8080. */
  readonly port?: number;
  /** Default 127.0.0.1; use 0.0.0.0 in a pod so Prometheus can scrape it. */
  readonly host?: string;
  /**
   * Milliseconds a signal waits for the stage's safe point (default 30,000: Kubernetes' default
   * terminationGracePeriodSeconds; leave a few seconds of margin).
   */
  readonly graceMs?: number;
  /** Service name for /healthz and the stderr prefix (`get-distill-<name>: …`); default the stage kind. */
  readonly name?: string;
  /**
   * Where JOB_COMPLETION_INDEX, GET_DISTILL_TERMINATION_LOG and GET_DISTILL_EXECUTION_PROVIDERS are read; default
   * process.env.
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Receives the one-line error (with its newline); default process.stderr. */
  readonly stderr?: (line: string) => void;
  /** Default SIGTERM and SIGINT. */
  readonly signals?: readonly NodeJS.Signals[];
}

/**
 * JOB_COMPLETION_INDEX → a non-negative integer, or undefined when unset or empty.
 * @throws UsageError naming JOB_COMPLETION_INDEX for anything else.
 */
export function parseCompletionIndex(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(Number(raw)))
    throw new UsageError(
      `JOB_COMPLETION_INDEX must be a non-negative integer (got ${JSON.stringify(raw)}); it is set by an ` +
        `Indexed Job (completionMode: Indexed)`,
    );
  return Number(raw);
}

/** What the termination message needs to know about how a job-mode run ended. */
interface Ending {
  record?: JobRecord;
  interrupted: boolean;
  error?: { kind: ErrorClass; message: string };
}

/**
 * Runs `stage` once on `input` (the spec, merged from flags, env and GET_DISTILL_JOB_SPEC; validated
 * here) and resolves with the exit code; the entry point calls process.exit with it. Writes the
 * termination message first when GET_DISTILL_TERMINATION_LOG is set. Never throws.
 */
export async function runJobMode<Spec>(stage: StageJob<Spec>, input: unknown, o: JobModeOptions): Promise<number> {
  const env = o.env ?? process.env;
  const ending: Ending = { interrupted: false };
  const code = await runOnce(stage, input, o, ending);
  const outcome = code === EXIT_OK ? 'done' : ending.interrupted ? 'interrupted' : 'failed';
  const message: TerminationMessage = {
    v: 1,
    stage: stage.kind,
    outcome,
    exitCode: code,
    summary: { ...ending.record?.summary },
    artifacts: { ...ending.record?.artifacts },
    ...(outcome === 'failed' && ending.error ? { error: ending.error } : {}),
  };
  writeTerminationMessageFromEnv(env, message, (why) => o.logger.warn(why));
  // Rank 0 of a data-parallel world tells the launcher (src/jobs/launcher.ts), which writes it in its pod.
  if (underMpirun(env) && worldRankOf(env) === 0) process.stdout.write(rankTerminationLine(message));
  return code;
}

async function runOnce<Spec>(
  stage: StageJob<Spec>,
  input: unknown,
  o: JobModeOptions,
  ending: Ending,
): Promise<number> {
  const name = o.name ?? stage.kind;
  const log = o.logger;
  const env = o.env ?? process.env;
  const stderr = o.stderr ?? ((l: string) => void process.stderr.write(l));
  const graceMs = o.graceMs ?? 30_000;
  const fail = (err: unknown): number => {
    const c = classifyError(err);
    log.error({ err, class: c.class, reason: c.reason, exitCode: c.exitCode }, c.message);
    stderr(`get-distill-${name}: ${c.message}\n`);
    ending.error = { kind: c.class, message: c.message };
    return c.exitCode;
  };

  let completionIndex: number | undefined;
  try {
    completionIndex = parseCompletionIndex(env.JOB_COMPLETION_INDEX);
    resolveExecutionProviders(env); // a bad list fails here, before any work
  } catch (e) {
    return fail(e);
  }
  setProviderWarningSink(loggerWarningSink(log));
  const parsed = stage.schema.safeParse(input);
  if (!parsed.success) return fail(parsed.error);

  const registry = createRegistry();
  const state = new ServiceState();
  const manager = new JobManager(stage, { logger: log, registry });
  let current: JobRecord | undefined;
  const { app } = createServiceApp({
    name,
    logger: log,
    bodyLimitBytes: 1024,
    registry,
    state,
    routes: (kit) =>
      kit.route('/v1/job', { get: (_req, res) => void res.json({ job: current && manager.get(current.id) }) }),
  });
  let server: Server;
  try {
    server = await listen(app, o.port ?? 8080, o.host ?? '127.0.0.1');
  } catch (e) {
    return fail(e);
  }
  log.info(
    { host: o.host ?? '127.0.0.1', port: (server.address() as AddressInfo).port, mode: 'job', completionIndex },
    'listening',
  );
  state.markReady();

  let signalled: NodeJS.Signals | null = null;
  let graceTimer: NodeJS.Timeout | undefined;
  let forceStop: (why: 'grace' | 'second signal') => void = () => {};
  const forced = new Promise<'grace' | 'second signal'>((r) => (forceStop = r));
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) {
      log.warn({ signal: sig }, 'second signal: exiting now');
      forceStop('second signal');
      return;
    }
    signalled = sig;
    log.info({ signal: sig, graceMs }, 'signal: stopping the stage at its next safe point');
    if (current) manager.cancel(current.id, sig);
    graceTimer = setTimeout(() => forceStop('grace'), graceMs);
  };
  // Installed in the same tick as submit() below, so `current` is set before any signal is handled.
  const signals = o.signals ?? ['SIGTERM', 'SIGINT'];
  for (const s of signals) process.on(s, onSignal);

  let code: number;
  try {
    current = manager.submit(parsed.data, { completionIndex });
    const end = await Promise.race([manager.settled(current.id)!, forced]);
    if (typeof end === 'string') {
      const why = end === 'grace' ? `grace period of ${graceMs} ms over` : 'second signal';
      const msg =
        `${signalled}: the stage did not reach its safe point (${why}); exiting ${EXIT_RETRYABLE}: ` +
        'the retry resumes from the last checkpoint, which may be older';
      log.warn({ signal: signalled, graceMs }, msg);
      stderr(`get-distill-${name}: ${msg}\n`);
      ending.interrupted = true;
      ending.record = manager.get(current.id);
      code = EXIT_RETRYABLE;
    } else if (end.state === 'succeeded') {
      ending.record = end;
      code = EXIT_OK;
    } else if (end.state === 'cancelled') {
      ending.record = end;
      ending.interrupted = true;
      const msg =
        `${signalled ?? 'stopped'}: the stage stopped at a safe ` +
        `point; exiting ${EXIT_RETRYABLE} so the retry resumes`;
      log.info({ signal: signalled, progress: end.progress }, msg);
      stderr(`get-distill-${name}: ${msg}\n`);
      code = EXIT_RETRYABLE;
    } else {
      // The manager has logged the error (with its stack); one line for people.
      stderr(`get-distill-${name}: ${end.error!.message}\n`);
      ending.record = end;
      ending.error = { kind: end.error!.code, message: end.error!.message };
      code = exitCodeOf(end.error!.code);
    }
  } catch (e) {
    code = e instanceof HttpError ? fail(new UsageError(e.message)) : fail(e);
  } finally {
    clearTimeout(graceTimer);
    for (const s of signals) process.off(s, onSignal);
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
  log.info({ exitCode: code, jobId: current?.id }, 'job mode: exiting');
  return code;
}
