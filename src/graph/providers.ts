/**
 * onnxruntime execution providers: the ONE place that decides where sessions run. Every session of the
 * project (training graphs, teachers, eval networks, the inference service's workers) is created by
 * {@link OrtSession.create}, which asks {@link resolveExecutionProviders} for the list
 * (GET_DISTILL_EXECUTION_PROVIDERS, e.g. `cuda,cpu` in the CUDA image) and creates through
 * {@link createWithProviderFallback}.
 *
 * Fallback: onnxruntime-node does not skip a provider it cannot load; creating a session with
 * `['cuda', 'cpu']` throws (1.30 without the CUDA libraries: `OrtSessionOptionsAppendExecutionProvider_Cuda:
 * Failed to load shared library`; with the libraries but no visible GPU it throws a CUDA error). So a
 * failed GPU attempt is retried on `['cpu']` when the list allows CPU, with ONE warning per process
 * (which provider failed, the first line of why, that CPU is used); later sessions of the same list go
 * straight to CPU. Nodes a GPU provider has no kernel for (float64 ops in CUDA) are onnxruntime's
 * concern: it places them on its CPU provider within the same session.
 * Source: onnxruntime `js/common/lib/inference-session.ts` (executionProviders), onnxruntime-node
 * `listSupportedBackends()` (cpu, webgpu bundled; cuda, tensorrt need their libraries).
 */
import { UsageError } from '../util/errors.js';

/** The variable that lists the providers, in order of preference. */
export const EXECUTION_PROVIDERS_ENV = 'GET_DISTILL_EXECUTION_PROVIDERS';

/** Provider names accepted in {@link EXECUTION_PROVIDERS_ENV} (onnxruntime-node's names). */
export const EXECUTION_PROVIDER_NAMES = ['cuda', 'tensorrt', 'cpu'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDER_NAMES)[number];

/** The list when the variable is unset or blank. */
export const DEFAULT_EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ['cpu'];

/**
 * Parses a comma list such as `cuda,cpu` (case and spaces ignored, repeats dropped).
 * @param source names the setting in errors (the variable, or a flag).
 * @throws UsageError naming `source`, the bad entry and the allowed names, for an unknown or empty entry.
 */
export function parseExecutionProviders(text: string, source = EXECUTION_PROVIDERS_ENV): ExecutionProvider[] {
  const out: ExecutionProvider[] = [];
  for (const raw of text.split(',')) {
    const name = raw.trim().toLowerCase();
    if (!(EXECUTION_PROVIDER_NAMES as readonly string[]).includes(name)) {
      const what = name === '' ? 'an empty entry' : `unknown provider "${raw.trim()}"`;
      throw new UsageError(
        `${source}=${JSON.stringify(text)}: ${what}; give a comma list of ` +
          `${EXECUTION_PROVIDER_NAMES.join(', ')} in order of preference, e.g. cuda,cpu`,
      );
    }
    if (!out.includes(name as ExecutionProvider)) out.push(name as ExecutionProvider);
  }
  return out;
}

/**
 * The providers sessions use: {@link EXECUTION_PROVIDERS_ENV} of `env`, default `['cpu']` when unset or blank.
 * @throws UsageError (see {@link parseExecutionProviders}).
 */
export function resolveExecutionProviders(
  env: Readonly<Record<string, string | undefined>> = process.env,
): ExecutionProvider[] {
  const text = env[EXECUTION_PROVIDERS_ENV];
  return text === undefined || text.trim() === '' ? [...DEFAULT_EXECUTION_PROVIDERS] : parseExecutionProviders(text);
}

/** A GPU provider that could not be used: the session runs on CPU instead. */
export interface ProviderFallback {
  /** The list that was asked for, e.g. `['cuda', 'cpu']`. */
  readonly requested: readonly string[];
  /** The provider(s) that failed, e.g. `cuda`. */
  readonly failed: string;
  /** The first line of onnxruntime's error. */
  readonly reason: string;
  /** The one-line warning (names provider, reason, that CPU is used, and how to skip the attempt). */
  readonly message: string;
}

/** Receives the one fallback warning of a process. */
export type ProviderWarningSink = (f: ProviderFallback) => void;

const stderrSink: ProviderWarningSink = (f) => void process.stderr.write(`get-distill: warning: ${f.message}\n`);
let sink: ProviderWarningSink = stderrSink;
let warned = false;
/** Requested lists (joined) whose GPU attempt failed in this thread → the fallback: no second attempt. */
const failedLists = new Map<string, ProviderFallback>();

/**
 * Routes the fallback warning to a service's logger (pino: `logger.warn({provider, reason}, message)`);
 * null restores the default (one line on stderr, for the CLI). Call once at startup.
 */
export function setProviderWarningSink(s: ProviderWarningSink | null): void {
  sink = s ?? stderrSink;
}

/** A sink that logs on a pino-style logger at level warn, with the provider and reason as fields. */
export function loggerWarningSink(logger: { warn(obj: object, msg: string): void }): ProviderWarningSink {
  return (f) => logger.warn({ provider: f.failed, reason: f.reason, requested: f.requested, using: 'cpu' }, f.message);
}

/**
 * Emits the fallback warning, once per process (later calls do nothing), through `via` when given
 * (e.g. the inference pool's logger), else the sink of {@link setProviderWarningSink}. Worker threads
 * do not call it: they hand the fallback to the main thread, which does (src/serve/pool.ts).
 */
export function warnProviderFallback(f: ProviderFallback, via?: ProviderWarningSink): void {
  if (warned) return;
  warned = true;
  (via ?? sink)(f);
}

/** Forgets the warning and failed lists of this thread, and restores the default sink. For tests. */
export function resetProviderFallbackState(): void {
  warned = false;
  failedLists.clear();
  sink = stderrSink;
}

/** The fallback record for `requested` after `err`. */
function fallbackOf(requested: readonly string[], err: unknown): ProviderFallback {
  const text = err instanceof Error ? err.message : String(err);
  const reason =
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? 'unknown error';
  const gpu = requested.filter((p) => p !== 'cpu');
  const failed = gpu.filter((p) => reason.toLowerCase().includes(p)).join(',') || gpu.join(',');
  const message =
    `onnxruntime execution provider ${failed} failed (${reason}); using cpu. Set ` +
    `${EXECUTION_PROVIDERS_ENV}=cpu to skip the attempt`;
  return { requested: [...requested], failed, reason, message };
}

/**
 * Creates something (an onnxruntime session) with `requested` providers; when that fails and the list
 * holds a GPU provider and `cpu`, retries with `['cpu']` and reports the fallback: to `onFallback`
 * when given (every time; worker threads pass one), else through {@link warnProviderFallback} (once
 * per process). A list without `cpu` (e.g. `cuda` alone) means "GPU or nothing": its failure is thrown.
 * @param create called with the providers to try.
 * @returns the created value and the providers it runs with.
 * @throws the GPU attempt's error when the list has no `cpu`; the CPU attempt's error when CPU fails too
 *   (then the model itself is at fault, and no fallback is reported).
 */
export async function createWithProviderFallback<T>(
  requested: readonly string[],
  create: (providers: readonly string[]) => Promise<T>,
  onFallback?: ProviderWarningSink,
): Promise<{ value: T; providers: readonly string[]; fallback?: ProviderFallback }> {
  const key = requested.join(',');
  const gpu = requested.some((p) => p !== 'cpu');
  const canFallBack = gpu && requested.includes('cpu');
  const known = failedLists.get(key);
  if (known && canFallBack) {
    const value = await create(['cpu']);
    onFallback?.(known);
    return { value, providers: ['cpu'], fallback: known };
  }
  try {
    return { value: await create(requested), providers: [...requested] };
  } catch (e) {
    if (!canFallBack) {
      if (gpu)
        throw new Error(
          `onnxruntime session with providers ${key} failed (${fallbackOf(requested, e).reason}); when the ` +
            `provider is unavailable, add cpu to ${EXECUTION_PROVIDERS_ENV} (e.g. ${key},cpu) to fall back to it`,
          { cause: e },
        );
      throw e;
    }
    const value = await create(['cpu']);
    const f = fallbackOf(requested, e);
    failedLists.set(key, f);
    if (onFallback) onFallback(f);
    else warnProviderFallback(f);
    return { value, providers: ['cpu'], fallback: f };
  }
}
