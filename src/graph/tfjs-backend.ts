/**
 * Loads TensorFlow.js (an optional dependency) for the tfjs training engine, picking the fastest
 * backend installed: `@tensorflow/tfjs-node-gpu` (CUDA, trainer GPU image) → `@tensorflow/tfjs-node`
 * (libtensorflow on CPU) → `@tensorflow/tfjs-core` + `@tensorflow/tfjs-backend-wasm`. The plain-JS
 * `cpu` backend is the slow reference and is used only when asked for.
 *
 * Everything is imported dynamically so the project runs without any tfjs package installed.
 * tfjs keeps one global engine per process, so the runtime is cached (one backend per process).
 * Source: tensorflow/tfjs (tfjs-core `engine.ts`, `register_all_gradients.ts`; tfjs-backend-wasm).
 */
import { createRequire } from 'node:module';
import { UsageError } from '../util/errors.js';

// Which backend to load (`auto` = the fastest installed one, never `cpu`): src/spec/names.ts.
import { TFJS_BACKENDS, type TfjsBackendChoice } from '../spec/names.js';
export type { TfjsBackendChoice };

/** A loaded TensorFlow.js with an active backend. */
export interface TfjsRuntime {
  /** The tfjs namespace (tfjs-core's API; tfjs-node's superset when it provided it). */
  readonly tf: typeof import('@tensorflow/tfjs-core');
  /** The active backend, `tf.getBackend()`: 'tensorflow' (tfjs-node / -gpu), 'wasm' or 'cpu'. */
  readonly backend: string;
  /** The npm package that provided the backend, e.g. '@tensorflow/tfjs-backend-wasm'. */
  readonly source: string;
}

export const TFJS_BACKEND_CHOICES: readonly TfjsBackendChoice[] = TFJS_BACKENDS;

type Tf = typeof import('@tensorflow/tfjs-core');

const PACKAGES = {
  'node-gpu': '@tensorflow/tfjs-node-gpu',
  node: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
} as const;

const NOT_INSTALLED = new Set(['ERR_MODULE_NOT_FOUND', 'MODULE_NOT_FOUND']);

/** Imports a package; undefined when it is not installed (other load errors propagate). */
async function tryImport(pkg: string): Promise<unknown> {
  try {
    return await import(pkg);
  } catch (e) {
    const code = (e as { code?: string }).code;
    // Only "this package is missing" counts; a missing *dependency* inside it is a broken install.
    if (code && NOT_INSTALLED.has(code) && String((e as Error).message).includes(pkg)) return undefined;
    throw e;
  }
}

/** ESM namespace or CJS default export → the module object. */
const unwrap = (m: unknown): Tf => {
  const mod = m as { default?: unknown; getBackend?: unknown };
  return (typeof mod.getBackend === 'function' ? mod : mod.default) as Tf;
};

/**
 * tfjs-core's own bundle registers no gradients (the `@tensorflow/tfjs` union package does). Its
 * `dist/register_all_gradients.js` is ES-module syntax with extensionless imports, which Node's ESM
 * resolver rejects; loaded through `require` (tsx's CJS hook compiles it) it registers every gradient
 * into tfjs's global gradient registry, shared by all module copies.
 */
function registerAllGradients(tf: Tf): void {
  if (tf.getGradient('Sum') && tf.getGradient('BatchMatMul')) return;
  const require = createRequire(import.meta.url);
  try {
    require('@tensorflow/tfjs-core/dist/register_all_gradients');
  } catch (e) {
    throw new Error(
      `cannot register the tfjs gradients (@tensorflow/tfjs-core/dist/register_all_gradients): ` +
        `${(e as Error).message}; run under tsx (node --import tsx) or install @tensorflow/tfjs`,
      { cause: e },
    );
  }
  if (!tf.getGradient('Sum'))
    throw new Error(
      'tfjs gradients are still missing after loading register_all_gradients ' +
        '(two tfjs-core copies with separate registries?)',
    );
}

/** Whether a package resolves from here (without loading it). */
function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

let cached: { runtime: TfjsRuntime; choice: TfjsBackendChoice } | undefined;

const missing = (choice: Exclude<TfjsBackendChoice, 'auto'>): UsageError => {
  const pkg = PACKAGES[choice];
  const how =
    choice === 'node-gpu' || choice === 'node'
      ? `npm install ${pkg}@4.22.0 (its install downloads ` +
        `libtensorflow), or run in the trainer GPU image, which ships it`
      : `npm install ${pkg}@4.22.0 (an optional dependency of this project)`;
  return new UsageError(
    `tfjs backend '${choice}' needs ${pkg}, which is not installed: ${how}; or choose the backend auto ` +
      `(--tfjs-backend auto, "tfjsBackend": "auto")`,
  );
};

async function loadNode(choice: 'node-gpu' | 'node'): Promise<TfjsRuntime | undefined> {
  const m = await tryImport(PACKAGES[choice]);
  if (!m) return undefined;
  const tf = unwrap(m);
  await tf.setBackend('tensorflow');
  await tf.ready();
  registerAllGradients(tf);
  return { tf, backend: tf.getBackend(), source: PACKAGES[choice] };
}

async function loadCore(choice: 'wasm' | 'cpu'): Promise<TfjsRuntime> {
  const core = await tryImport('@tensorflow/tfjs-core');
  if (!core) {
    throw new UsageError(
      'TensorFlow.js is not installed (@tensorflow/tfjs-core is missing): the optional dependencies were not ' +
        'installed; run npm install without --omit=optional, or use the ort engine',
    );
  }
  const tf = unwrap(core);
  if (!(await tryImport(PACKAGES[choice]))) throw missing(choice);
  if (!(await tf.setBackend(choice)))
    throw new Error(`tfjs backend ${choice} failed to initialise (see the warning above)`);
  await tf.ready();
  registerAllGradients(tf);
  return { tf, backend: tf.getBackend(), source: PACKAGES[choice] };
}

/**
 * Loads TensorFlow.js with the requested backend (default `auto`) and registers all gradients.
 * Logs one line naming the backend and the package. Cached per process: later calls return the same
 * runtime; asking for a different backend afterwards is an error (tfjs has one global engine).
 * @throws UsageError when a forced backend's package is not installed (naming the package and how to
 *   get it), or when tfjs-core itself is missing; Error when a second call asks for another backend.
 */
export async function loadTfjs(
  o: { backend?: TfjsBackendChoice; log?: (msg: string) => void } = {},
): Promise<TfjsRuntime> {
  const choice = o.backend ?? 'auto';
  if (!TFJS_BACKEND_CHOICES.includes(choice))
    throw new UsageError(`unknown tfjs backend '${String(choice)}'; choose one of ${TFJS_BACKEND_CHOICES.join(', ')}`);
  if (cached) {
    if (choice !== 'auto' && !installed(PACKAGES[choice])) throw missing(choice);
    const same = choice === 'auto' || choice === cached.choice || PACKAGES[choice] === cached.runtime.source;
    if (!same)
      throw new UsageError(
        `tfjs is already loaded with backend ${cached.runtime.backend} (${cached.runtime.source}); one ` +
          `backend per process, cannot switch to '${choice}': run it in another process`,
      );
    return cached.runtime;
  }
  let rt: TfjsRuntime | undefined;
  if (choice === 'auto') rt = (await loadNode('node-gpu')) ?? (await loadNode('node')) ?? (await loadCore('wasm'));
  else if (choice === 'node-gpu' || choice === 'node') rt = await loadNode(choice);
  else rt = await loadCore(choice);
  if (!rt) throw missing(choice as Exclude<TfjsBackendChoice, 'auto'>);
  cached = { runtime: rt, choice };
  const log = o.log ?? ((m: string) => console.error(m));
  log(`tfjs: backend ${rt.backend} from ${rt.source}`);
  if (choice === 'auto' && rt.backend !== 'tensorflow') {
    // auto ended on wasm: fine for checking, not for training (tens of times slower than ort or tfjs-node).
    log(
      `tfjs: warning: neither ${PACKAGES['node-gpu']} nor ${PACKAGES.node} is installed, so tfjs runs on ` +
        `${rt.backend}, far slower than the ort engine; use the trainer GPU image ` +
        `(docker/Dockerfile.trainer-gpu) or --engine ort`,
    );
  }
  return rt;
}
