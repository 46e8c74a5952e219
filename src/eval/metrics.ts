/**
 * The eval job's Prometheus metrics (DESIGN.md: eval → "report + Prometheus metrics"; docs/monitoring.md):
 * progress while it runs and FID / IS / precision / recall when it ends, on a registry of its own.
 * A batch job may end before any scrape, so the metrics are also pushed (PUT, the whole group) to a
 * Pushgateway under job `get_eval` and grouping {instance: <run id>}: at phase changes and at the end,
 * and progress at most once per `minPushIntervalMs`. A push never fails the eval: the first failure is
 * logged as a warning (URL without credentials), later ones at debug level.
 * While the job runs, {@link EvalMetrics.serve} exposes /metrics (plus process and HTTP metrics),
 * /healthz and /readyz with the service kit (src/service).
 *
 * Label values come from users (model URIs can carry keys in userinfo or presigned query strings), so
 * every one goes through {@link safeLabel}: userinfo, query and fragment removed, length capped.
 */
import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Pushgateway, Registry } from 'prom-client';
import { createLogger, createRegistry, createServiceApp, listen, type Logger } from '../service/index.js';
import { UsageError } from '../util/errors.js';

/** Env var naming the Pushgateway (e.g. `http://pushgateway.monitoring:9091`); unset or empty: no pushes. */
export const PUSHGATEWAY_URL_ENV = 'GET_DISTILL_PUSHGATEWAY_URL';
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
 * `http://user:pw@host/x` → `http://host/x`, also for strings `URL` cannot parse. A password pasted
 * unescaped may hold `/` (AWS secret keys do): `user:` followed by anything up to an `@` before the
 * query counts as userinfo too, unless the colon starts a port (`host:8080/m@v2` is kept). The cost:
 * a rare path like `s3://bucket/a:b@c` loses `bucket/a:b@`, which beats leaking a key.
 */
export function withoutUserinfo(raw: string): string {
  return raw
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@:]*:(?!\d{1,5}(?:\/|$))[^?#@]*@/i, '$1')
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
}

/**
 * A user string made safe as a label value: for `scheme://` URIs the userinfo (`key:secret@`), query
 * (`?X-Amz-Signature=…`) and fragment are removed; control characters become spaces; values longer than
 * {@link MAX_LABEL_LENGTH} keep their first characters plus `…` and 8 hex digits of their SHA-256.
 * Plain paths keep `?`/`#` (legal in file names). Example: `s3://AK:SK@bucket/m?sig=x` → `s3://bucket/m`.
 */
export function safeLabel(value: string): string {
  let v = value.replace(/[\u0000-\u001f\u007f]/g, ' ');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) v = withoutUserinfo(v).replace(/[?#].*$/s, '');
  if (v.length <= MAX_LABEL_LENGTH) return v;
  const tag = createHash('sha256').update(v).digest('hex').slice(0, 8);
  return `${v.slice(0, MAX_LABEL_LENGTH - 9)}…${tag}`;
}

/** A validated Pushgateway address: `url` (may carry basic-auth userinfo, used for requests only) and `display` (for logs). */
export interface PushgatewayTarget {
  readonly url: string;
  readonly display: string;
}

/**
 * Checks a Pushgateway URL: http or https, a host, no query or fragment (the push path is appended to
 * it). Userinfo is allowed (sent as basic auth) and never appears in `display` or in error messages.
 * @param source where the value came from, named in errors (an option name or the env var).
 * @throws UsageError naming the problem and the expected form.
 */
export function parsePushgatewayUrl(raw: string, source = PUSHGATEWAY_URL_ENV): PushgatewayTarget {
  const shown = JSON.stringify(withoutUserinfo(raw).replace(/[?#].*$/, '')); // a query may hold a token
  const fix = 'expected e.g. http://pushgateway:9091';
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`${source}: ${shown} is not a URL; ${fix}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new UsageError(
      `${source}: ${shown} uses ${u.protocol.slice(0, -1)}; the Pushgateway is reached over http or https, ${fix}`,
    );
  if (!u.hostname) throw new UsageError(`${source}: ${shown} has no host; ${fix}`);
  if (u.search || u.hash)
    throw new UsageError(
      `${source}: ${shown} has a query or fragment, which a push cannot use; give the gateway's base URL, ${fix}`,
    );
  const clean = new URL(u);
  clean.username = '';
  clean.password = '';
  return { url: u.href, display: clean.href };
}

/** The Pushgateway URL from the environment ($GET_DISTILL_PUSHGATEWAY_URL), or undefined when unset or blank. */
export function pushgatewayFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env[PUSHGATEWAY_URL_ENV]?.trim();
  return v ? v : undefined;
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
  /** Pushgateway base URL; default {@link pushgatewayFromEnv}; empty string: never push. */
  readonly pushgateway?: string;
  /** Default `process.env` (read for the Pushgateway URL only). */
  readonly env?: NodeJS.ProcessEnv;
  /** Default a pino logger named `eval`. */
  readonly logger?: Logger;
  /** Least time between two progress pushes in milliseconds (default 2,000); phase changes and results push at once. */
  readonly minPushIntervalMs?: number;
  /** Per-push HTTP timeout in milliseconds (default 5,000). */
  readonly pushTimeoutMs?: number;
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
  /** Only the eval gauges (what is pushed); `serve()` adds process and HTTP metrics beside them. */
  readonly registry = new Registry();
  /** The model label value (after {@link safeLabel}). */
  readonly model: string;
  /** The grouping label `instance`. */
  readonly runId: string;
  /** Pushgateway URL for logs (no credentials); undefined when pushes are off. */
  readonly pushTarget: string | undefined;
  /** Failed pushes so far (each one logged; only the first as a warning). */
  pushFailures = 0;
  /** Pushes that reached the gateway. */
  pushes = 0;

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

  private readonly logger: Logger;
  private readonly gateway: Pushgateway<'text/plain; version=0.0.4; charset=utf-8'> | undefined;
  /** The gateway URL's userinfo parts (raw and decoded), masked in logged error messages. */
  private readonly secrets: string[] = [];
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
  private server: Server | undefined;

  /** @throws UsageError when the Pushgateway URL (option or env) is invalid. */
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
    this.logger = o.logger ?? createLogger('eval');
    this.minPushIntervalMs = o.minPushIntervalMs ?? 2000;
    const raw = o.pushgateway ?? pushgatewayFromEnv(o.env) ?? '';
    if (raw.trim() !== '') {
      const target = parsePushgatewayUrl(raw.trim(), o.pushgateway === undefined ? PUSHGATEWAY_URL_ENV : 'pushgateway');
      this.pushTarget = target.display;
      const u = new URL(target.url);
      // The password is the secret; a username alone only when it looks like a token (a short user
      // name such as "e" would otherwise mask every "e" of every logged message).
      const secret = u.password || (u.username.length >= 8 ? u.username : '');
      if (secret) this.secrets.push(secret, decodeURIComponent(secret));
      this.gateway = new Pushgateway(target.url, { timeout: o.pushTimeoutMs ?? 5000 }, this.registry);
    }

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
    const self = this;
    new Gauge({
      name: 'get_eval_duration_seconds',
      help: 'Wall time of the eval run in seconds (live while running)',
      labelNames: ['model'],
      registers,
      collect() {
        if (self.startedAt !== undefined)
          this.set({ model: self.model }, ((self.endedAt ?? Date.now()) - self.startedAt) / 1000);
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

  /**
   * Serves /metrics (eval gauges + process and HTTP metrics), /healthz and /readyz while the job runs.
   * @param port 0 picks a free port (read it from the returned URL).
   * @returns the base URL, `http://host:port`.
   * @throws UsageError when the address cannot be bound; Error when already serving.
   */
  async serve(port: number, host = '127.0.0.1'): Promise<string> {
    if (this.server) throw new Error('EvalMetrics.serve: already serving; call close() first');
    // A registry for the endpoint that shares the eval gauges (not copies), so /metrics is live,
    // while the pushed registry stays free of per-process series.
    const registry = Registry.merge([this.registry, createRegistry(true)]);
    const svc = createServiceApp({
      name: 'eval',
      logger: this.logger,
      bodyLimitBytes: 1024,
      registry,
      routes: () => {},
    });
    svc.state.markReady();
    this.server = await listen(svc.app, port, host);
    const bound = (this.server.address() as AddressInfo).port;
    return `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  }

  /** Cancels the trailing progress push, waits for pushes in flight, closes the /metrics server. Idempotent. */
  async close(): Promise<void> {
    clearTimeout(this.trailing);
    this.trailing = undefined;
    await this.tail;
    const server = this.server;
    this.server = undefined;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await closed;
    }
  }

  private async pushNow(): Promise<boolean> {
    this.lastPushAt = Date.now();
    try {
      await this.gateway!.push({ jobName: EVAL_JOB, groupings: { instance: this.runId } });
      this.pushes++;
      return true;
    } catch (err) {
      this.pushFailures++;
      const line = { pushgateway: this.pushTarget, job: EVAL_JOB, instance: this.runId, error: this.scrub(err) };
      if (this.pushFailures === 1)
        this.logger.warn(
          line,
          'metrics push to the Pushgateway failed; the eval goes on (later failures are logged at debug level)',
        );
      else this.logger.debug(line, 'metrics push failed again');
      return false;
    } finally {
      this.lastPushAt = Date.now();
    }
  }

  /** An error message with the gateway URL's credentials masked (Node's errors name host:port only, but be sure). */
  private scrub(err: unknown): string {
    let msg = err instanceof Error ? err.message || (err as { code?: string }).code || err.name : String(err);
    for (const s of this.secrets) msg = msg.split(s).join('***');
    return msg.slice(0, 500);
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
