/**
 * The eval job's Prometheus metrics (DESIGN.md: eval → "report + Prometheus metrics"; docs/monitoring.md):
 * progress while it runs and FID / IS / precision / recall when it ends, on a registry of its own.
 * A batch job may end before any scrape, so the metrics are also pushed (PUT, the whole group) to a
 * Pushgateway under job `get_eval` and grouping {instance: <run id>}: at phase changes and at the end,
 * and progress at most once per `minPushIntervalMs`. This module decides what and when; the push itself
 * ({@link MetricsPush}: src/service/pushgateway.ts) and the /metrics server while the job runs
 * (src/service/metrics-server.ts) are the service kit's, wired by the eval CLI (src/cli/eval-metrics.ts).
 *
 * Label values come from users (model URIs can carry keys in userinfo or presigned query strings), so
 * every one goes through {@link safeLabel}: userinfo, query and fragment removed, length capped.
 */
import { createHash } from 'node:crypto';
import { Gauge, Registry } from 'prom-client';
import { withoutUserinfo } from '../util/redact.js';

/** Pushgateway job label of every eval run. */
export const EVAL_JOB = 'get_eval';
/** Longest label value kept; longer ones are cut and tagged with a hash so they stay distinct. */
export const MAX_LABEL_LENGTH = 200;

/** Eval phases with a progress count: the reference set's features, then samples (drawn and featurised per batch). */
export const EVAL_PHASES = ['reference', 'sample'] as const;
export type EvalPhase = (typeof EVAL_PHASES)[number];
export const EVAL_STATES = ['running', 'succeeded', 'failed'] as const;
export type EvalState = (typeof EVAL_STATES)[number];

/**
 * A user string made safe as a label value: for `scheme://` URIs the userinfo (`key:secret@`), query
 * (`?X-Amz-Signature=…`) and fragment are removed; control characters become spaces; values longer than
 * {@link MAX_LABEL_LENGTH} keep their first characters plus `…` and 8 hex digits of their SHA-256.
 * Plain paths keep `?`/`#` (legal in file names). Example: `s3://AK:SK@bucket/m?sig=x` → `s3://bucket/m`.
 */
export function safeLabel(value: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point: they become spaces
  let v = value.replace(/[\u0000-\u001f\u007f]/g, ' ');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) v = withoutUserinfo(v).replace(/[?#].*$/s, '');
  if (v.length <= MAX_LABEL_LENGTH) return v;
  const tag = createHash('sha256').update(v).digest('hex').slice(0, 8);
  return `${v.slice(0, MAX_LABEL_LENGTH - 9)}…${tag}`;
}

/**
 * Where the gauges are pushed: one push of the whole registry, e.g. PushgatewayClient
 * (src/service/pushgateway.ts). It never rejects: false when the push failed (and was logged).
 */
export interface MetricsPush {
  /** The target for logs (no credentials). */
  readonly display: string;
  /** Pushes that reached the target. */
  readonly pushes: number;
  /** Failed pushes so far. */
  readonly pushFailures: number;
  push(): Promise<boolean>;
}

export interface EvalMetricsOptions {
  /** The evaluated model (URI or name); label `model`, passed through {@link safeLabel}. */
  readonly model: string;
  /** Default label `reference` of the results (e.g. `mnist:test` or an .npz URI). Default `unknown`. */
  readonly reference?: string;
  /** Default label `features` of the results (the feature network, e.g. `mnist`). Default `unknown`. */
  readonly features?: string;
  /**
   * Run id: the Pushgateway grouping label `instance` (characters outside [A-Za-z0-9_.:-] become `_`,
   * at most 128). Default `eval-` + 12 hex digits of the SHA-256 of model, reference and features, so
   * re-evaluating the same thing replaces its group on the gateway instead of adding one per run.
   */
  readonly runId?: string;
  /**
   * Makes the push target for this run's registry and grouping label `instance` (the run id); called
   * once by the constructor, whose errors (a bad URL: UsageError) it passes on. Omitted: never push.
   */
  readonly push?: (registry: Registry, runId: string) => MetricsPush;
  /** Least time between two progress pushes in milliseconds (default 2,000); phase changes and results push at once. */
  readonly minPushIntervalMs?: number;
}

/** What {@link EvalMetrics.succeed} reads from a finished eval (src/stages/eval.ts EvalReport fits). */
export interface EvalOutcome {
  readonly scores: {
    readonly fid: number;
    readonly inceptionScore: { readonly mean: number; readonly std: number } | null;
    readonly precision: number | null;
    readonly recall: number | null;
  };
  /** Sample generation throughput over the whole run. */
  readonly samplesPerSecond?: number;
}

type ResultLabels = Record<'model' | 'reference' | 'features', string>;
/** Optional per-call overrides of the constructor's `reference` / `features` labels. */
export interface LabelOverrides {
  readonly reference?: string;
  readonly features?: string;
}

/**
 * The metrics of one eval run (one model against one reference with one feature network). Usage:
 * `start()`; `progress(phase, done, total)` per batch (a new phase pushes at once); `succeed(report)`
 * or `fail()`; `close()`. The single setters (`setFid`, …) exist for callers without a report.
 * Units: seconds, samples (images), samples per second; scores are unitless.
 */
export class EvalMetrics {
  /** Only the eval gauges (what is pushed; a /metrics server adds process and HTTP metrics beside them). */
  readonly registry = new Registry();
  /** The model label value (after {@link safeLabel}). */
  readonly model: string;
  /** The grouping label `instance`. */
  readonly runId: string;
  /** Pushgateway URL for logs (no credentials); undefined when pushes are off. */
  readonly pushTarget: string | undefined;

  private readonly reference: string;
  private readonly features: string;
  private readonly fid: Gauge<'model' | 'reference' | 'features'>;
  private readonly is: Gauge<'model' | 'features'>;
  private readonly isStd: Gauge<'model' | 'features'>;
  private readonly precision: Gauge<'model' | 'reference' | 'features'>;
  private readonly recall: Gauge<'model' | 'reference' | 'features'>;
  private readonly sps: Gauge<'model'>;
  private readonly done: Gauge<'model' | 'phase'>;
  private readonly total: Gauge<'model' | 'phase'>;
  private readonly state: Gauge<'model' | 'state'>;
  private readonly lastSuccess: Gauge<'model'>;

  private readonly gateway: MetricsPush | undefined;
  private readonly minPushIntervalMs: number;
  private startedAt: number | undefined;
  private endedAt: number | undefined;
  private currentPhase: EvalPhase | undefined;
  /** First progress report of the sample phase: [ms, done], the base of the live throughput. */
  private sampleBase: [number, number] | undefined;
  private lastPushAt = -Infinity;
  private trailing: NodeJS.Timeout | undefined;
  /** A push requested but not started yet: later requests share it (it reads the registry when it starts). */
  private queued: Promise<boolean> | null = null;
  private tail: Promise<unknown> = Promise.resolve();

  /** @throws what `o.push` throws (UsageError for an invalid Pushgateway URL). */
  constructor(o: EvalMetricsOptions) {
    this.model = safeLabel(o.model);
    this.reference = safeLabel(o.reference ?? 'unknown');
    this.features = safeLabel(o.features ?? 'unknown');
    const id =
      o.runId ??
      `eval-${createHash('sha256')
        .update(JSON.stringify([this.model, this.reference, this.features]))
        .digest('hex')
        .slice(0, 12)}`;
    this.runId = id.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 128) || 'unnamed';
    this.minPushIntervalMs = o.minPushIntervalMs ?? 2000;
    this.gateway = o.push?.(this.registry, this.runId);
    this.pushTarget = this.gateway?.display;

    const registers = [this.registry];
    const g = <K extends string>(name: string, help: string, labelNames: readonly K[]): Gauge<K> =>
      new Gauge({ name, help, labelNames, registers });
    const res = ['model', 'reference', 'features'] as const;
    this.fid = g(
      'get_eval_fid',
      "Fréchet Inception Distance of the model's samples to the reference statistics (lower is better)",
      res,
    );
    this.is = g(
      'get_eval_inception_score',
      "Inception Score of the model's samples, mean over splits (higher is better)",
      ['model', 'features'],
    );
    this.isStd = g('get_eval_inception_score_std', 'Standard deviation of the Inception Score over splits', [
      'model',
      'features',
    ]);
    this.precision = g(
      'get_eval_precision',
      'Improved precision (Kynkäänniemi et al. 2019): share of samples inside the reference manifold, in [0, 1]',
      res,
    );
    this.recall = g(
      'get_eval_recall',
      "Improved recall: share of reference images inside the samples' manifold, in [0, 1]",
      res,
    );
    this.sps = g(
      'get_eval_samples_per_second',
      'Sample throughput in samples per second (live during the sample phase, the run average at the end)',
      ['model'],
    );
    // Inside collect() `this` is the gauge, so the run's times come through this arrow.
    const elapsedS = (): number | undefined =>
      this.startedAt === undefined ? undefined : ((this.endedAt ?? Date.now()) - this.startedAt) / 1000;
    const model = this.model;
    new Gauge({
      name: 'get_eval_duration_seconds',
      help: 'Wall time of the eval run in seconds (live while running)',
      labelNames: ['model'],
      registers,
      collect() {
        const s = elapsedS();
        if (s !== undefined) this.set({ model }, s);
      },
    });
    this.done = g(
      'get_eval_samples_done',
      'Images processed so far in the phase (sample: generated and embedded; reference: reference images embedded)',
      ['model', 'phase'],
    );
    this.total = g('get_eval_samples_total', 'Images the phase will process', ['model', 'phase']);
    this.state = g(
      'get_eval_state',
      'Run state: 1 for the current state (running, succeeded, failed), 0 for the others',
      ['model', 'state'],
    );
    this.lastSuccess = g(
      'get_eval_last_success_timestamp_seconds',
      'Unix time in seconds when the last eval run of the model succeeded',
      ['model'],
    );
  }

  /** Marks the run `running` (starts the duration clock) and pushes. Never rejects. */
  start(): Promise<boolean> {
    this.startedAt = Date.now();
    this.endedAt = undefined;
    this.setState('running');
    return this.push();
  }

  /**
   * Progress of a phase (call per batch). Sets the gauges; the first call of a new phase pushes at once,
   * later ones at most once per `minPushIntervalMs`, with one trailing push so the last count arrives.
   */
  progress(phase: EvalPhase, done: number, total?: number): void {
    const labels = { model: this.model, phase };
    this.done.set(labels, done);
    if (total !== undefined) this.total.set(labels, total);
    if (phase === 'sample') {
      const now = Date.now();
      this.sampleBase ??= [now, done];
      const [t0, d0] = this.sampleBase;
      if (now > t0 && done > d0) this.sps.set({ model: this.model }, ((done - d0) * 1000) / (now - t0));
    }
    if (phase !== this.currentPhase) {
      this.currentPhase = phase;
      void this.push();
      return;
    }
    if (!this.gateway || this.trailing) return;
    const wait = this.lastPushAt + this.minPushIntervalMs - Date.now();
    if (wait <= 0) {
      void this.push();
      return;
    }
    this.trailing = setTimeout(() => {
      this.trailing = undefined;
      void this.push();
    }, wait);
    this.trailing.unref();
  }

  /** FID against the reference statistics (labels default to the constructor's). */
  setFid(fid: number, l: LabelOverrides = {}): void {
    this.fid.set(this.resultLabels(l), fid);
  }

  /** Inception Score mean and standard deviation over splits. */
  setInceptionScore(mean: number, std: number, l: Pick<LabelOverrides, 'features'> = {}): void {
    const labels = { model: this.model, features: l.features === undefined ? this.features : safeLabel(l.features) };
    this.is.set(labels, mean);
    this.isStd.set(labels, std);
  }

  /** Improved precision and recall, each in [0, 1]. */
  setPrecisionRecall(precision: number, recall: number, l: LabelOverrides = {}): void {
    this.precision.set(this.resultLabels(l), precision);
    this.recall.set(this.resultLabels(l), recall);
  }

  /** Sample throughput (samples per second). */
  setSamplesPerSecond(sps: number): void {
    this.sps.set({ model: this.model }, sps);
  }

  /**
   * The run succeeded: sets the scores the outcome has (IS and precision/recall may be null), the
   * throughput, state `succeeded`, the last-success timestamp; freezes the duration; pushes.
   * Resolves with whether the push reached the gateway (false when pushes are off). Never rejects.
   */
  succeed(r?: EvalOutcome): Promise<boolean> {
    if (r) {
      this.setFid(r.scores.fid);
      if (r.scores.inceptionScore) this.setInceptionScore(r.scores.inceptionScore.mean, r.scores.inceptionScore.std);
      if (r.scores.precision !== null && r.scores.recall !== null)
        this.setPrecisionRecall(r.scores.precision, r.scores.recall);
      if (r.samplesPerSecond !== undefined) this.setSamplesPerSecond(r.samplesPerSecond);
    }
    this.end('succeeded');
    this.lastSuccess.set({ model: this.model }, this.endedAt! / 1000);
    return this.push();
  }

  /** The run failed: state `failed`, duration frozen, pushed (scores already set stay). Never rejects. */
  fail(): Promise<boolean> {
    this.end('failed');
    return this.push();
  }

  /**
   * Pushes the registry to the Pushgateway (PUT: replaces the run's group). Never rejects: resolves
   * true when the gateway took it, false when pushes are off or it failed (logged). Pushes run one at a
   * time, in order; requests made while one waits share it.
   */
  push(): Promise<boolean> {
    if (!this.gateway) return Promise.resolve(false);
    if (this.queued) return this.queued;
    const run = this.tail.then(() => {
      this.queued = null;
      return this.pushNow();
    });
    this.queued = run;
    this.tail = run;
    return run;
  }

  /** Failed pushes so far (each one logged by the push target; only the first as a warning). */
  get pushFailures(): number {
    return this.gateway?.pushFailures ?? 0;
  }

  /** Pushes that reached the gateway. */
  get pushes(): number {
    return this.gateway?.pushes ?? 0;
  }

  /** Cancels the trailing progress push and waits for pushes in flight. Idempotent. */
  async close(): Promise<void> {
    clearTimeout(this.trailing);
    this.trailing = undefined;
    await this.tail;
  }

  private async pushNow(): Promise<boolean> {
    this.lastPushAt = Date.now();
    try {
      return await this.gateway!.push();
    } finally {
      this.lastPushAt = Date.now();
    }
  }

  private end(state: Exclude<EvalState, 'running'>): void {
    clearTimeout(this.trailing);
    this.trailing = undefined;
    this.endedAt = Date.now();
    this.startedAt ??= this.endedAt;
    this.setState(state);
  }

  private setState(state: EvalState): void {
    for (const s of EVAL_STATES) this.state.set({ model: this.model, state: s }, s === state ? 1 : 0);
  }

  private resultLabels(l: LabelOverrides): ResultLabels {
    return {
      model: this.model,
      reference: l.reference === undefined ? this.reference : safeLabel(l.reference),
      features: l.features === undefined ? this.features : safeLabel(l.features),
    };
  }
}
