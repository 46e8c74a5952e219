/**
 * The contract between the stage services' job machinery (src/jobs: service mode with /v1/jobs, job
 * mode for Kubernetes Jobs, exit codes, metrics) and the stages it runs (datagen, train, export;
 * src/jobs/stages/*). A stage job wraps the SAME stage function the local executor
 * (src/stages/pipeline.ts) calls; it only maps a validated spec onto it.
 */
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type { Logger } from '../service/logging.js';

/** The stages that run as services/jobs. */
export type StageKind = 'datagen' | 'train' | 'export';

/**
 * Job states (service mode's `GET /v1/jobs/{id}` and the `get_job_state` gauge); no queue: a busy worker answers 409.
 */
export type JobState = 'running' | 'succeeded' | 'failed' | 'cancelled';

/**
 * Exit codes of job mode, what a Kubernetes Job's podFailurePolicy keys on:
 * 0 succeeded; 2 permanent (bad spec, corrupt input, missing teacher/dataset: retrying cannot help);
 * 75 retryable (EX_TEMPFAIL: store unreachable, SIGTERM/preemption after a checkpoint).
 */
export const EXIT_OK = 0;
export { EXIT_PERMANENT, EXIT_RETRYABLE } from '../util/errors.js';

/** What a stage sees while it runs. */
export interface JobContext {
  /** Aborted on DELETE /v1/jobs/{id} or SIGTERM: stop at the next safe point (training: checkpoint). */
  readonly signal: AbortSignal;
  /** Progress for GET /v1/jobs/{id} (merged into the job's progress object; numbers and strings). */
  progress(p: Readonly<Record<string, number | string>>): void;
  readonly log: Logger;
  /** The process registry: a stage registers its gauges here once (see StageJob.metrics). */
  readonly registry: Registry;
  /** Kubernetes Indexed Job: JOB_COMPLETION_INDEX, when set (datagen maps it to a seed range). */
  readonly completionIndex?: number;
}

/** A finished (or stopped) stage run. */
export interface JobOutcome {
  /** Artifact URIs by name, e.g. `{ manifest: 's3://b/run/pairs/manifest.json' }`. */
  readonly artifacts: Readonly<Record<string, string>>;
  /** True when the signal stopped it at a safe point before the end (state cancelled, or exit 75). */
  readonly interrupted: boolean;
  /** Stage-specific facts for the job record (pairs generated, final step, loss …). */
  readonly summary?: Readonly<Record<string, unknown>>;
}

/** One stage as a job: its spec schema (strict: unknown fields are errors) and how to run it. */
export interface StageJob<Spec> {
  readonly kind: StageKind;
  readonly schema: z.ZodType<Spec>;
  /**
   * Runs the stage once. Resolves `{interrupted: true}` when `ctx.signal` stopped it at a safe point.
   * @throws UsageError for permanent problems (named field or URI), StoreError for storage ones
   *   (classified by src/service/error-class.ts).
   */
  run(spec: Spec, ctx: JobContext): Promise<JobOutcome>;
  /**
   * Cheap checks of what the spec names (the teacher, pairs or checkpoint exists) before a service
   * accepts the job, so a missing input is a 400, not a job that fails later. Job mode skips it: run()
   * fails the same way (exit 2).
   * @throws UsageError naming the field; StoreError when the store cannot be reached.
   */
  preflight?(spec: Spec): Promise<void>;
  /**
   * Checks a service's own defaults (environment) once at start, so a misconfigured worker exits 2 at
   * once instead of reporting ready and failing every job (job mode checks its one spec instead).
   * @throws UsageError naming the variable and the fix.
   */
  startupCheck?(env: Readonly<Record<string, string | undefined>>): Promise<void>;
  /**
   * Whether job mode may run under mpirun as one rank of a data-parallel world (`--ranks N`; only the
   * train stage). `run` then trains with the world's communicator.
   */
  readonly dataParallel?: boolean;
}
