/**
 * Fixtures for the stage-service tests (datagen, trainer, exporter): the entry points of
 * services/<name>/main.ts as real child processes (service mode on 127.0.0.1:0, or job mode with a spec
 * in GET_DISTILL_JOB_SPEC), their JSON log lines, job polling, and small teacher caches / pair datasets
 * in S3. HTTP calls and Prometheus samples: ./helpers.ts.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadDataset } from '../../src/data/datasets.js';
import { datagenStage } from '../../src/stages/datagen.js';
import { type ObjectStore, joinUri } from '../../src/store/index.js';
import { MixtureDenoiser, fitMixtureTeacher, saveMixture } from '../../src/teacher/mixture.js';
import { sha256Hex } from '../../src/util/fsutil.js';
import { call } from './helpers.js';
import type { JsonObject } from '../json.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export type ServiceName = 'datagen' | 'trainer' | 'exporter';
const main = (name: ServiceName) => `services/${name}/main.ts`;

/** A child process with its stdout JSON log lines and stderr collected. */
export interface Child {
  readonly proc: ChildProcessWithoutNullStreams;
  /** Parsed JSON lines of stdout so far. */
  readonly lines: Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the exit code once it exits. */
  readonly exited: Promise<number | null>;
  /** Resolves with the first log line matching `pred`. */
  waitLine(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** Spawns `services/<name>/main.ts` with `args`, the test's env plus `env`. */
export function spawnService(name: ServiceName, args: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', main(name), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] =
    [];
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    let nl;
    while ((nl = out.indexOf('\n')) >= 0) {
      const text = out.slice(0, nl);
      out = out.slice(nl + 1);
      try {
        const l = JSON.parse(text) as Record<string, unknown>;
        lines.push(l);
        for (const w of [...waiters])
          if (w.pred(l)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(l);
          }
      } catch {
        // not a log line
      }
    }
  });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return {
    proc,
    lines,
    exited,
    stderr: () => err,
    waitLine(pred, timeoutMs = 60_000) {
      const found = lines.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () =>
            reject(
              new Error(
                `no matching log line within ${timeoutMs} ms; stderr: ${err}\nstdout: ` +
                  `${JSON.stringify(lines.slice(-5))}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
        });
        void exited.then((code) => {
          clearTimeout(t);
          reject(new Error(`exited ${code} before a matching log line; stderr: ${err}`));
        });
      });
    },
  };
}

/** A service-mode child and its base URL. */
export interface Service extends Child {
  readonly url: string;
  /** SIGTERM, then waits for the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `name` in service mode on 127.0.0.1, a free port. */
export async function startService(name: ServiceName, env: Record<string, string> = {}): Promise<Service> {
  const c = spawnService(name, ['--mode', 'service', '--port', '0', '--host', '127.0.0.1'], env);
  const l = await c.waitLine((x) => x.msg === 'listening', 30_000);
  return {
    ...c,
    url: `http://127.0.0.1:${l.port as number}`,
    stop: async () => {
      c.proc.kill('SIGTERM');
      return c.exited;
    },
  };
}

/** Runs `name` in job mode with `spec` (GET_DISTILL_JOB_SPEC) and resolves when it exits. */
export function startJob(
  name: ServiceName,
  spec: unknown,
  env: Record<string, string> = {},
  args: string[] = [],
): Child {
  return spawnService(name, ['--mode', 'job', '--port', '0', ...args], {
    GET_DISTILL_JOB_SPEC: JSON.stringify(spec),
    ...env,
  });
}

/** Polls GET `url` every `everyMs` until `until(job)`; @returns that job record. */
export async function pollJob(
  url: string,
  until: (job: JsonObject) => boolean,
  timeoutMs = 60_000,
  everyMs = 50,
): Promise<JsonObject> {
  const t0 = Date.now();
  for (;;) {
    const r = await call('GET', url);
    const job = r.body.job;
    if (job && until(job)) return job;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out polling ${url}: ${JSON.stringify(r.body)}`);
    await new Promise((res) => setTimeout(res, everyMs));
  }
}

/** Polls until the job is in a final state. */
export const settled = (url: string, timeoutMs?: number) =>
  pollJob(url, (j) => ['succeeded', 'failed', 'cancelled'].includes(j.state), timeoutMs);

/**
 * Seeds a mixture-teacher cache under `cacheDir` as prepareTeacher names it for MNIST (60,000 images, K,
 * r), fitted on the first 600 images only: the stage loads it as a cached fit, so no test pays for the
 * ~20 s fit on the full split. @returns the fitted parameters.
 */
export async function seedTeacherCache(store: ObjectStore, cacheDir: string, K: number, r: number) {
  const mnist = await loadDataset('mnist', 'train');
  const n = 600;
  const params = await fitMixtureTeacher(mnist.images.subarray(0, n * 1024), mnist.labels.subarray(0, n), {
    shape: { channels: 1, height: 32, width: 32 },
    numClasses: 10,
    componentsPerClass: K,
    rank: r,
    seed: 0,
  });
  const path = joinUri(cacheDir, `mixture-mnist-n${mnist.n}-K${K}-r${r}.safetensors`);
  const bytes = await saveMixture(params, store, path);
  await store.put(`${path}.sha256`, new TextEncoder().encode(`${sha256Hex(bytes)}\n`));
  return params;
}

/** Writes `pairs` pairs (seeds 0…pairs−1) of a small mixture teacher to `dir` in-process. */
export async function seedPairs(store: ObjectStore, dir: string, pairs: number, shardSize: number): Promise<void> {
  const mnist = await loadDataset('mnist', 'train');
  const n = 300;
  const params = await fitMixtureTeacher(mnist.images.subarray(0, n * 1024), mnist.labels.subarray(0, n), {
    shape: { channels: 1, height: 32, width: 32 },
    numClasses: 10,
    componentsPerClass: 1,
    rank: 2,
    seed: 0,
  });
  const teacher = await MixtureDenoiser.create(params, { threads: 1 });
  try {
    await datagenStage({
      teacher,
      dataset: 'mnist',
      seeds: { start: 0, end: pairs },
      shardSize,
      store,
      outDir: dir,
      samplerSteps: 4,
    });
  } finally {
    await teacher.close();
  }
}
