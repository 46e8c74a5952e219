/**
 * Service mode's job manager: runs a stage's jobs in this process, at most `concurrency` at a time
 * (default 1: one GPU, one job), and keeps their records for `GET /v1/jobs`. A busy worker refuses new
 * jobs with 409 instead of queueing them: the queue belongs in front of the workers (the operator or a
 * Kubernetes Job), where it survives a pod restart. Job mode (src/jobs/run-job.ts) runs its single job
 * through the same manager, so records, logs and metrics are the same in both modes.
 *
 * Routes ({@link mountJobRoutes}), errors as `{ "error": { "code", "message" } }`:
 * - `POST /v1/jobs` (body: the stage's spec) → 202 `{job}` + `Location: /v1/jobs/{id}`; 400 naming the
 *   field (unknown fields too: the schemas are strict); 409 `busy`; 503 `draining`.
 * - `GET /v1/jobs` → `{busy, running, concurrency, jobs}` newest first.
 * - `GET /v1/jobs/{id}` → `{job}`; 404 for an unknown (or pruned) id.
 * - `DELETE /v1/jobs/{id}` → 202 `{job}` while it stops at its next safe point (it ends `cancelled`), 200
 *   `{job}` when already finished (idempotent), 404 unknown.
 */
import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { ServiceState, RouteKit } from '../service/app.js';
import { HttpError, zodBadRequest } from '../service/errors.js';
import type { Logger } from '../service/logging.js';
import { classifyError, type ErrorClass } from '../service/error-class.js';
import { jobMetrics, type JobMetrics } from './metrics.js';
import type { JobContext, JobState, StageJob, StageKind } from './types.js';

/** Why a job failed: `code` says whether the same spec may succeed on a retry. */
export interface JobError {
  readonly code: ErrorClass;
  /** StoreError code, `usage`, `spec`, `interrupted`, `network` or `internal` (src/service/error-class.ts). */
  readonly reason: string;
  readonly message: string;
}

/** What `GET /v1/jobs/{id}` shows. Timestamps are ISO 8601 (UTC). */
export interface JobRecord {
  readonly id: string;
  readonly kind: StageKind;
  readonly state: JobState;
  /** The validated spec (URIs and numbers; URI credentials and secret-named fields are redacted). */
  readonly spec: unknown;
  readonly progress: Readonly<Record<string, number | string>>;
  readonly artifacts: Readonly<Record<string, string>>;
  readonly summary?: Readonly<Record<string, unknown>>;
  readonly error?: JobError;
  /** True once DELETE (or shutdown) asked the job to stop. */
  readonly cancelRequested: boolean;
  readonly createdAt: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
}

export interface JobManagerOptions {
  readonly logger: Logger;
  readonly registry: Registry;
  /** Jobs run at once (default 1). */
  readonly concurrency?: number;
  /** Finished jobs kept for GET (default 100; the oldest go first). */
  readonly keepFinished?: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
interface Entry {
  readonly rec: Mutable<JobRecord> & { progress: Record<string, number | string> };
  readonly seq: number;
  readonly controller: AbortController;
  readonly done: Promise<JobRecord>;
}

const FINAL: ReadonlySet<JobState> = new Set(['succeeded', 'failed', 'cancelled']);
const now = (): string => new Date().toISOString();

/** Copies a spec with URI userinfo (`s3://key:secret@…`) and secret-named fields replaced. */
export function redactSpec(v: unknown, key = ''): unknown {
  if (/secret|password|token|credential|access.?key/i.test(key)) return '[redacted]';
  if (typeof v === 'string') return v.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1[redacted]@');
  if (Array.isArray(v)) return v.map((x) => redactSpec(x));
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redactSpec(x, k)]));
  return v;
}

/** Runs and tracks the jobs of one stage (see the file header). */
export class JobManager<Spec> {
  readonly concurrency: number;
  /** Finished records kept. */
  readonly keepFinished: number;
  private readonly jobs = new Map<string, Entry>();
  private readonly metrics: JobMetrics;
  private seq = 0;
  private active = 0;
  private closed = false;

  constructor(
    readonly stage: StageJob<Spec>,
    private readonly o: JobManagerOptions,
  ) {
    this.concurrency = o.concurrency ?? 1;
    this.keepFinished = o.keepFinished ?? 100;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1)
      throw new RangeError(`concurrency must be an integer ≥ 1, got ${this.concurrency}`);
    this.metrics = jobMetrics(o.registry, stage.kind, this.concurrency);
  }

  /** Jobs running now. */
  get running(): number {
    return this.active;
  }

  /** True when a submit would get 409. */
  get busy(): boolean {
    return this.active >= this.concurrency;
  }

  /**
   * Validates `input` with the stage's schema and starts a job.
   * @param o.completionIndex passed to the stage as `ctx.completionIndex` (job mode).
   * @throws HttpError 400 naming the bad or unknown field, 409 `busy`, 503 `draining` after {@link shutdown}.
   */
  /**
   * Validates `input` and runs the stage's preflight (inputs exist) before {@link submit}.
   * @throws HttpError 400 naming the field (schema or a missing input), 503 when the store is unreachable.
   */
  async check(input: unknown): Promise<void> {
    const parsed = this.stage.schema.safeParse(input);
    if (!parsed.success) throw zodBadRequest(parsed.error, 'body');
    if (!this.stage.preflight) return;
    try {
      await this.stage.preflight(parsed.data);
    } catch (e) {
      const c = classifyError(e);
      if (c.class === 'permanent') throw new HttpError(400, 'bad_request', c.message, {}, { cause: e });
      throw new HttpError(
        503,
        'unavailable',
        `cannot check the job's inputs now (${c.message}); retry later`,
        { 'Retry-After': '5' },
        { cause: e },
      );
    }
  }

  submit(input: unknown, o: { completionIndex?: number } = {}): JobRecord {
    if (this.closed)
      throw new HttpError(
        503,
        'draining',
        'the worker is shutting down and takes no new jobs; submit to another replica',
      );
    const parsed = this.stage.schema.safeParse(input);
    if (!parsed.success) throw zodBadRequest(parsed.error, 'body');
    if (this.busy) {
      const ids = [...this.jobs.values()].filter((e) => e.rec.state === 'running').map((e) => e.rec.id);
      throw new HttpError(
        409,
        'busy',
        `busy: ${this.active} of ${this.concurrency} job slot(s) in use (${ids.join(', ')}); retry once GET ` +
          `/v1/jobs shows busy: false, or cancel with DELETE /v1/jobs/{id}`,
      );
    }
    const id = randomUUID();
    const controller = new AbortController();
    const rec: Entry['rec'] = {
      id,
      kind: this.stage.kind,
      state: 'running',
      spec: redactSpec(parsed.data),
      progress: {},
      artifacts: {},
      cancelRequested: false,
      createdAt: now(),
      startedAt: now(),
    };
    this.active++;
    this.metrics.running(this.active);
    this.metrics.state('running');
    const log = this.o.logger.child({ job: id, stage: this.stage.kind });
    const ctx: JobContext = {
      signal: controller.signal,
      progress: (p) => void Object.assign(rec.progress, p),
      log,
      registry: this.o.registry,
      ...(o.completionIndex !== undefined ? { completionIndex: o.completionIndex } : {}),
    };
    log.info({ spec: rec.spec, completionIndex: o.completionIndex }, 'job started');
    const t0 = performance.now();
    // Promise.resolve().then: a stage that throws synchronously fails its job, not submit().
    const done = Promise.resolve()
      .then(() => this.stage.run(parsed.data, ctx))
      .then(
        (out) => {
          rec.artifacts = { ...out.artifacts };
          if (out.summary) rec.summary = { ...out.summary };
          rec.state = out.interrupted ? 'cancelled' : 'succeeded';
          log.info(
            { artifacts: rec.artifacts, summary: rec.summary, interrupted: out.interrupted },
            out.interrupted ? 'job stopped at a safe point' : 'job succeeded',
          );
        },
        (err: unknown) => {
          const c = classifyError(err);
          // Stopped on request: an abort surfacing as an error is still a cancellation.
          const stopped = controller.signal.aborted && (c.reason === 'interrupted' || c.reason === 'Aborted');
          rec.state = stopped ? 'cancelled' : 'failed';
          rec.error = { code: c.class, reason: c.reason, message: c.message };
          if (stopped) log.info({ reason: c.reason, message: c.message }, 'job stopped');
          else log.error({ err, class: c.class, reason: c.reason }, `job failed (${c.class}): ${c.message}`);
        },
      )
      .then(() => {
        rec.finishedAt = now();
        const seconds = (performance.now() - t0) / 1000;
        this.active--;
        this.metrics.running(this.active);
        this.metrics.state(rec.state);
        this.metrics.finished(
          rec.state === 'failed' ? `failed_${rec.error!.code}` : (rec.state as 'succeeded' | 'cancelled'),
          seconds,
        );
        this.prune();
        return snapshot(rec);
      });
    this.jobs.set(id, { rec, seq: ++this.seq, controller, done });
    return snapshot(rec);
  }

  /** A copy of the job's record, or undefined for an unknown id. */
  get(id: string): JobRecord | undefined {
    const e = this.jobs.get(id);
    return e && snapshot(e.rec);
  }

  /** All kept records, newest first. */
  list(): JobRecord[] {
    return [...this.jobs.values()].sort((a, b) => b.seq - a.seq).map((e) => snapshot(e.rec));
  }

  /** Resolves with the final record once the job has finished (undefined for an unknown id). */
  settled(id: string): Promise<JobRecord> | undefined {
    return this.jobs.get(id)?.done;
  }

  /**
   * Asks a running job to stop at its next safe point (aborts its signal); idempotent.
   * @returns the record and whether it is still stopping, or undefined for an unknown id.
   */
  cancel(id: string, reason = 'cancel requested'): { job: JobRecord; stopping: boolean } | undefined {
    const e = this.jobs.get(id);
    if (!e) return undefined;
    if (FINAL.has(e.rec.state)) return { job: snapshot(e.rec), stopping: false };
    if (!e.rec.cancelRequested) {
      e.rec.cancelRequested = true;
      this.o.logger.info({ job: id, reason }, 'stopping job at its next safe point');
      e.controller.abort();
    }
    return { job: snapshot(e.rec), stopping: true };
  }

  /**
   * Takes no new jobs, stops the running ones and waits up to `graceMs` for their safe points.
   * @returns true when every job finished in time (false: their checkpoints may be older).
   */
  async shutdown(graceMs: number, reason = 'shutting down'): Promise<boolean> {
    this.closed = true;
    const running = [...this.jobs.values()].filter((e) => !FINAL.has(e.rec.state));
    for (const e of running) this.cancel(e.rec.id, reason);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), graceMs)));
    const ok = await Promise.race([Promise.all(running.map((e) => e.done)).then(() => true), timeout]);
    clearTimeout(timer);
    if (!ok)
      this.o.logger.warn(
        { graceMs, jobs: running.filter((e) => !FINAL.has(e.rec.state)).map((e) => e.rec.id) },
        'grace period over before the safe point: the last checkpoint may be older',
      );
    return ok;
  }

  /** Drops the oldest finished records beyond `keepFinished`. */
  private prune(): void {
    const finished = [...this.jobs.values()].filter((e) => FINAL.has(e.rec.state));
    for (const e of finished.slice(0, Math.max(0, finished.length - this.keepFinished))) this.jobs.delete(e.rec.id);
  }
}

function snapshot(r: JobRecord): JobRecord {
  return {
    ...r,
    progress: { ...r.progress },
    artifacts: { ...r.artifacts },
    ...(r.error ? { error: { ...r.error } } : {}),
  };
}

/** Mounts `/v1/jobs` and `/v1/jobs/:id` (see the file header) on a service kit app. */
export function mountJobRoutes<Spec>(kit: RouteKit, manager: JobManager<Spec>, state?: ServiceState): void {
  const find = (id: string): JobRecord => {
    const job = manager.get(id);
    if (!job)
      throw new HttpError(
        404,
        'not_found',
        `no job ${JSON.stringify(id)}: unknown, or pruned (the newest ${manager.keepFinished} finished jobs ` +
          `are kept); list them with GET /v1/jobs`,
      );
    return job;
  };
  kit.route('/v1/jobs', {
    post: [
      ...kit.json,
      async (req, res) => {
        if (state?.draining) throw state.notReadyError();
        await manager.check(req.body);
        const job = manager.submit(req.body);
        res.status(202).location(`/v1/jobs/${job.id}`).json({ job });
      },
    ],
    get: (_req, res) =>
      void res.json({
        busy: manager.busy,
        running: manager.running,
        concurrency: manager.concurrency,
        jobs: manager.list(),
      }),
  });
  kit.route('/v1/jobs/:id', {
    get: (req, res) => void res.json({ job: find(String(req.params.id)) }),
    delete: (req, res) => {
      const r = manager.cancel(String(req.params.id));
      if (!r) find(String(req.params.id));
      res.status(r!.stopping ? 202 : 200).json({ job: r!.job });
    },
  });
}
