/**
 * Job-level Prometheus metrics (both modes, on the process registry) and the get-or-create helpers
 * stage adapters register their own gauges with. Get-or-create because tests build several apps in one
 * process and a service runs many jobs on one registry: registering a name twice throws in prom-client.
 *
 * Job metrics (this file):
 * - `get_job_state{stage,state}`: one-hot state of the job that changed state last (running,
 *   succeeded, failed, cancelled); absent before the first job.
 * - `get_jobs_total{stage,outcome}`: finished jobs, outcome ∈ succeeded, cancelled, failed_permanent,
 *   failed_retryable.
 * - `get_job_duration_seconds{stage}`: wall seconds of the latest finished job.
 * - `get_jobs_running{stage}` and `get_job_slots{stage}`: busy when running = slots (service mode
 *   answers 409 then); the signal for a queue in front of the workers.
 *
 * Stage metrics (registered by src/jobs/stages/* with {@link stageGauge} / {@link stageCounter} /
 * {@link ageGauge}; names follow https://prometheus.io/docs/practices/naming — base units, `_total`):
 * - datagen: `get_datagen_pairs_total` (counter), `get_datagen_pairs_per_second`,
 *   `get_datagen_shards_done`, `get_datagen_shards_total`.
 * - train: `get_train_step`, `get_train_loss`, `get_train_images_per_second`, `get_train_step_seconds`,
 *   `get_train_checkpoint_age_seconds` (an {@link ageGauge}: computed at scrape time).
 * - export: `get_export_duration_seconds`.
 */
import {
  Counter,
  Gauge,
  type CounterConfiguration,
  type GaugeConfiguration,
  type Metric,
  type Registry,
} from 'prom-client';
import type { ErrorClass } from '../service/error-class.js';
import type { JobState, StageKind } from './types.js';

/** Every job state, in life order (the one-hot label values). */
export const JOB_STATES: readonly JobState[] = ['running', 'succeeded', 'failed', 'cancelled'];

/** How a job ended, for `get_jobs_total{outcome}`. */
export type JobOutcomeLabel = 'succeeded' | 'cancelled' | `failed_${ErrorClass}`;

/**
 * The metric called `name` in `registry`, made by `make` the first time.
 * @throws Error when a metric of that name exists with another type (two stages disagreeing on a name).
 */
export function getOrCreate<M extends Metric>(
  registry: Registry,
  name: string,
  type: 'gauge' | 'counter' | 'histogram' | 'summary',
  make: () => M,
): M {
  const existing = registry.getSingleMetric(name) as (Metric & { type?: string }) | undefined;
  if (existing) {
    if (existing.type !== undefined && existing.type !== type)
      throw new Error(`metric ${name} is already registered as a ${existing.type}, not a ${type}`);
    return existing as unknown as M;
  }
  return make();
}

/**
 * A gauge registered once per registry. Note: a `collect` callback is bound by the FIRST call; a later
 * job on the same registry gets that same gauge, so `collect` must not close over per-job state (use
 * {@link ageGauge} for "seconds since").
 */
export function stageGauge<T extends string = string>(
  registry: Registry,
  cfg: Omit<GaugeConfiguration<T>, 'registers'>,
): Gauge<T> {
  return getOrCreate(registry, cfg.name, 'gauge', () => new Gauge<T>({ ...cfg, registers: [registry] }));
}

/** A counter registered once per registry (see {@link stageGauge}). */
export function stageCounter<T extends string = string>(
  registry: Registry,
  cfg: Omit<CounterConfiguration<T>, 'registers'>,
): Counter<T> {
  return getOrCreate(registry, cfg.name, 'counter', () => new Counter<T>({ ...cfg, registers: [registry] }));
}

/** "Seconds since" a moment, computed at scrape time; absent until {@link AgeGauge.touch}. */
export interface AgeGauge {
  /** Marks the moment (ms since the epoch; default now), e.g. a checkpoint was written. */
  touch(atMs?: number): void;
  /** Back to "never" (the series disappears), e.g. when a new job starts. */
  reset(): void;
}

const ages = new WeakMap<Registry, Map<string, { at: number | null }>>();

/**
 * An {@link AgeGauge} named `name` (e.g. `get_train_checkpoint_age_seconds`), one per registry: every
 * call for the same registry and name shares the moment, so collect() never reads a finished job's state.
 */
export function ageGauge(registry: Registry, name: string, help: string): AgeGauge {
  let byName = ages.get(registry);
  if (!byName) ages.set(registry, (byName = new Map()));
  let holder = byName.get(name);
  if (!holder) {
    const h = { at: null as number | null };
    byName.set(name, (holder = h));
    stageGauge(registry, {
      name,
      help,
      collect() {
        if (h.at === null) this.reset();
        else this.set((Date.now() - h.at) / 1000);
      },
    });
  }
  const h = holder;
  return { touch: (atMs = Date.now()) => void (h.at = atMs), reset: () => void (h.at = null) };
}

/** The job-level metrics of one stage (see the file header). */
export interface JobMetrics {
  /** Sets the one-hot state of the latest job. */
  state(s: JobState): void;
  /** Running jobs now (0 … slots). */
  running(n: number): void;
  /** Counts a finished job and records its duration. */
  finished(outcome: JobOutcomeLabel, seconds: number): void;
}

/** Registers (or finds) the job metrics of `stage` in `registry`; `slots` is the configured concurrency. */
export function jobMetrics(registry: Registry, stage: StageKind, slots = 1): JobMetrics {
  const state = stageGauge(registry, {
    name: 'get_job_state',
    help: 'One-hot state of the latest job of this stage',
    labelNames: ['stage', 'state'],
  });
  const total = stageCounter(registry, {
    name: 'get_jobs_total',
    help: 'Finished jobs by stage and outcome (succeeded, cancelled, failed_permanent, failed_retryable)',
    labelNames: ['stage', 'outcome'],
  });
  const duration = stageGauge(registry, {
    name: 'get_job_duration_seconds',
    help: 'Wall seconds of the latest finished job',
    labelNames: ['stage'],
  });
  const running = stageGauge(registry, {
    name: 'get_jobs_running',
    help: 'Jobs running now; busy (409 on submit) when equal to get_job_slots',
    labelNames: ['stage'],
  });
  stageGauge(registry, {
    name: 'get_job_slots',
    help: 'Jobs this worker runs at once (--concurrency)',
    labelNames: ['stage'],
  }).set({ stage }, slots);
  running.set({ stage }, 0);
  for (const o of ['succeeded', 'cancelled', 'failed_permanent', 'failed_retryable'] as const)
    total.inc({ stage, outcome: o }, 0);
  return {
    state(s) {
      for (const x of JOB_STATES) state.set({ stage, state: x }, x === s ? 1 : 0);
    },
    running: (n) => running.set({ stage }, n),
    finished(outcome, seconds) {
      total.inc({ stage, outcome });
      duration.set({ stage }, seconds);
    },
  };
}
