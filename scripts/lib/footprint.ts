/**
 * Import footprint of a set of modules, measured in a fresh child process: how many files the import
 * loads (ESM URLs seen by a module.register load hook, plus CommonJS files in require.cache), which npm
 * packages they come from, the wall time of the import, RSS after it, and the native libraries of
 * onnxruntime / TensorFlow mapped into the process (/proc/self/maps). Used by scripts/operator-footprint.ts
 * and test/operator/footprint.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** One measurement. `importMs` is wall milliseconds; `rssMiB` the resident set after the import. */
export interface Footprint {
  readonly modules: number;
  /** Of those, the project's own files (outside node_modules). */
  readonly projectModules: number;
  /** Top-level npm packages (`@scope/name` or `name`) with at least one loaded file, sorted. */
  readonly packages: readonly string[];
  readonly importMs: number;
  readonly rssMiB: number;
  /** Mapped files whose path names onnxruntime or tensorflow (shared objects, .node addons). */
  readonly nativeMaps: readonly string[];
}

const ROLE = 'GET_DISTILL_FOOTPRINT_CHILD';

/** The load hook (runs on the loader thread): records every file: URL, hands the list over on request. */
const HOOKS = `
const urls = new Set();
export function initialize({ port }) {
  port.on('message', () => port.postMessage([...urls]));
  port.unref();
}
export async function load(url, context, nextLoad) {
  if (url.startsWith('file:')) urls.add(url);
  return nextLoad(url, context);
}`;

/** Top-level package of a file path inside node_modules (the last node_modules segment), else undefined. */
export function packageOf(path: string): string | undefined {
  const i = path.lastIndexOf('/node_modules/');
  if (i < 0) return undefined;
  const parts = path.slice(i + '/node_modules/'.length).split('/');
  return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
}

/** Child side: import `targets` with the hook installed, print one JSON line. */
async function child(targets: string[]): Promise<void> {
  const { register, createRequire } = await import('node:module');
  const { MessageChannel } = await import('node:worker_threads');
  const { readFileSync } = await import('node:fs');
  const { port1, port2 } = new MessageChannel();
  register(`data:text/javascript,${encodeURIComponent(HOOKS)}`, {
    data: { port: port2 },
    transferList: [port2],
  });
  const cache = createRequire(import.meta.url).cache;
  const before = new Set(Object.keys(cache)); // tsx's own files, loaded before the measurement
  const t0 = performance.now();
  for (const t of targets) await import(pathToFileURL(t).href);
  const importMs = performance.now() - t0;
  const rssMiB = process.memoryUsage().rss / 2 ** 20;
  port1.postMessage('dump');
  const urls: string[] = await new Promise((res) => port1.once('message', res));
  port1.close();
  const files = new Set(urls.map((u) => fileURLToPath(u)));
  for (const f of Object.keys(cache)) if (!before.has(f)) files.add(f);
  files.delete(fileURLToPath(import.meta.url));
  const packages = [...new Set([...files].map(packageOf).filter((p): p is string => p !== undefined))].sort();
  const nativeMaps = [
    ...new Set(
      readFileSync('/proc/self/maps', 'utf8')
        .split('\n')
        .map((l) => l.split(/\s+/).slice(5).join(' '))
        .filter((p) => /onnxruntime|tensorflow/i.test(p)),
    ),
  ];
  const r: Footprint = {
    modules: files.size,
    projectModules: [...files].filter((f) => packageOf(f) === undefined).length,
    packages,
    importMs: Math.round(importMs),
    rssMiB: Math.round(rssMiB * 10) / 10,
    nativeMaps,
  };
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0); // modules may hold handles (timers, sockets); the measurement is done
}

/**
 * Measures importing `targets` (absolute .ts/.js paths, imported in order) in a fresh
 * `node --import tsx` process.
 * @throws Error with the child's stderr when it fails.
 */
export function measureFootprint(targets: readonly string[]): Footprint {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...targets], {
    encoding: 'utf8',
    env: { ...process.env, [ROLE]: '1' },
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`footprint child exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Footprint;
}

if (process.env[ROLE] === '1' && process.argv[1] === fileURLToPath(import.meta.url)) {
  delete process.env[ROLE];
  await child(process.argv.slice(2));
}
