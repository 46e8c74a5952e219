/**
 * The train stage on N local ranks (`get-distill distill --ranks N`): the parent starts
 * `mpirun -np N` over src/cli/train-rank.ts, each rank runs {@link trainStage} in the MPI world
 * (src/parallel), and rank 0 reports its steps to the parent as JSON lines on stdout; the parent then
 * reads the trained state back from the checkpoint rank 0 wrote at the last step.
 *
 * Rank protocol (stdout of rank 0, one JSON object a line, `{"event": …}`):
 *   {"event":"note","msg":…}                  a one-line note (engine in use …)
 *   {"event":"step","step":…,"loss":…,"l1Last":…,"stepSeconds":…}
 *   {"event":"done", …TrainResult without params/ema}
 * Any other line is passed on as a note. A rank that fails prints one line on stderr and exits 2
 * (bad input, e.g. a corrupt shard) or 1 (a bug).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PairStream } from '../data/pair-stream.js';
import type { GetConfig } from '../get/config.js';
import { paramSpecs } from '../get/model.js';
import { loadLatestCheckpoint } from '../train/checkpoint.js';
import { AdamWConfigSchema, EmaConfigSchema } from '../train/optim.js';
import { TFJS_BACKENDS, TRAINING_ENGINES } from '../spec/names.js';
import { storeFor } from '../store/index.js';
import { EXIT_USAGE, Interrupted, UsageError } from '../util/errors.js';
import { existsSync } from 'node:fs';
import { findMpirun, forwardedEnvNames, runMpirun } from '../parallel/launch.js';
import { MPI_ADDON_PATH, MPI_INSTALL_HINT, worldCommunicator } from '../parallel/mpi.js';
import { perRankBatch } from '../train/data-parallel.js';
import { streamSource, trainStage, type TrainOptions, type TrainResult } from './train.js';

/** What the parent hands every rank (a JSON file): the data options of {@link TrainOptions} and the pairs. */
export const RankJobSchema = z
  .object({
    pairs: z.string().min(1),
    config: z.record(z.string(), z.unknown()),
    steps: z.number().int().positive(),
    batch: z.number().int().positive(),
    iterations: z.number().int().positive(),
    optimizer: AdamWConfigSchema,
    ema: EmaConfigSchema,
    seed: z.number().int().nonnegative(),
    checkpointDir: z.string().min(1),
    checkpointEvery: z.number().int().positive(),
    keep: z.number().int().positive(),
    resume: z.boolean(),
    dataManifestSha256: z.string(),
    threads: z.number().int().positive().optional(),
    engine: z.enum(TRAINING_ENGINES).optional(),
    tfjsBackend: z.enum(TFJS_BACKENDS).optional(),
  })
  .strict();
export type RankJob = z.infer<typeof RankJobSchema>;

/** The rank entry point (src/cli/train-rank.ts), run by `node --import tsx`. */
export const RANK_ENTRY = fileURLToPath(new URL('../cli/train-rank.ts', import.meta.url));

/** One step as rank 0 reports it. */
export interface RankStep {
  step: number;
  loss: number;
  l1Last: number;
  stepSeconds: number;
  /** Seconds of the step in the allreduce. */
  commSeconds: number;
}

export interface TrainOnRanksOptions {
  readonly ranks: number;
  /** Receives every step of rank 0. */
  readonly onStep?: (s: RankStep) => void;
  /** One-line notes (rank 0's engine note, other ranks' warnings). */
  readonly log?: (msg: string) => void;
}

/**
 * Runs the train stage of `job` on `o.ranks` local ranks and returns what {@link trainStage} returns
 * (params and EMA read back from the last checkpoint).
 * @throws UsageError (exit 2) with the ranks' one line for bad input; Interrupted (exit 130) naming the
 *   lost rank when a rank died, or when SIGINT/SIGTERM stopped the ranks (a checkpoint was saved; the run
 *   continues with --resume).
 */
export async function trainOnRanks(job: RankJob, o: TrainOnRanksOptions): Promise<TrainResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'get-distill-ranks-'));
  const file = path.join(dir, 'job.json');
  await writeFile(file, JSON.stringify(job));
  let done: Omit<TrainResult, 'params' | 'ema'> | null = null;
  const errors: string[] = [];
  try {
    const r = await runMpirun({
      ranks: o.ranks,
      command: [process.execPath, '--import', 'tsx', RANK_ENTRY, file],
      forwardEnv: forwardedEnvNames(process.env),
      // Local ranks may outnumber the cores (each rank's onnxruntime threads are set by --threads).
      oversubscribe: true,
      // This process's SIGINT/SIGTERM reach the ranks as a graceful stop (they checkpoint and return).
      forwardSignals: true,
      onLine: (line, { stream }) => {
        const ev = parseEvent(line);
        if (ev?.event === 'step') o.onStep?.(ev as unknown as RankStep);
        else if (ev?.event === 'done') done = ev as never;
        else if (ev?.event === 'note') o.log?.(String(ev.msg));
        else if (stream === 'stderr' && line.trim()) errors.push(line.trim());
        else if (line.trim()) o.log?.(line.trim());
      },
    });
    if (r.code !== 0 || done === null) throw rankFailure(r, errors);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const d = done as Omit<TrainResult, 'params' | 'ema'>;
  if (d.interrupted)
    throw new Interrupted(
      `stopped at step ${d.step}: checkpoint saved in ${job.checkpointDir}; continue with --resume`,
    );
  const ck = await loadLatestCheckpoint(
    storeFor(job.checkpointDir),
    job.checkpointDir,
    paramSpecs(job.config as unknown as GetConfig),
  );
  return { ...d, engine: `${d.engine} on ${o.ranks} ranks (Open MPI)`, params: ck.params, ema: ck.ema };
}

/**
 * Checks, before any work, that `ranks` data-parallel ranks can run here: the global batch splits evenly,
 * and Open MPI (mpirun) and the addon are installed.
 * @throws UsageError (one line) naming the batch, or the Debian packages to install.
 */
export function checkRanks(ranks: number, batch: number): void {
  if (ranks <= 1) return;
  perRankBatch(batch, ranks, '--batch');
  if (findMpirun() === null || !existsSync(MPI_ADDON_PATH)) {
    const override = process.env.GET_DISTILL_MPIRUN;
    const what =
      findMpirun() !== null ? MPI_ADDON_PATH : override !== undefined ? `GET_DISTILL_MPIRUN=${override}` : 'mpirun';
    throw new UsageError(
      `--ranks ${ranks} needs Open MPI and the project's MPI addon (${what} is missing): ${MPI_INSTALL_HINT}`,
    );
  }
}

/** A JSON event line of rank 0, or null. */
function parseEvent(line: string): Record<string, unknown> | null {
  if (!line.startsWith('{"event":')) return null;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** The error of a failed world: the lost rank's line, else the ranks' distinct error lines. */
function rankFailure(r: Awaited<ReturnType<typeof runMpirun>>, errors: readonly string[]): Error {
  // Like a signal, a lost rank (a killed process, a preempted node) interrupts the run: finished work
  // (the last checkpoint) is kept and --resume continues.
  if (r.lostRank || r.lostHost)
    return new Interrupted(`${r.line ?? `rank ${r.lostRank?.rank} was lost`}; continue with --resume`);
  if (r.code >= 128)
    return new Interrupted(
      `mpirun ended by signal ${r.code - 128} and took the ranks with it; continue with --resume ` +
        '(from the last checkpoint)',
    );
  const distinct = [...new Set(errors.map((l) => l.replace(/^get-distill: /, '')))];
  const msg = distinct[0] ?? r.line ?? `the ranks exited with status ${r.code}`;
  if (r.code === EXIT_USAGE) return new UsageError(msg);
  return new Error(`training on ${distinct.length ? 'the ranks failed' : 'mpirun failed'}: ${msg}`);
}

/**
 * One rank's work: `job`'s train stage in the MPI world this process was started in. Rank 0 prints the
 * protocol's events on stdout. Returns the process exit code.
 */
export async function trainRankMain(
  file: string,
  o: { stopRequested?: () => boolean; out?: NodeJS.WritableStream; err?: NodeJS.WritableStream } = {},
): Promise<number> {
  const { out = process.stdout, err = process.stderr } = o;
  const comm = worldCommunicator();
  const say = (ev: Record<string, unknown>) => {
    if (comm.rank === 0) out.write(`${JSON.stringify(ev)}\n`);
  };
  let stop = false;
  const onStop = () => (stop = true);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGUSR1'] as const) process.on(sig, onStop);
  try {
    const job = RankJobSchema.parse(JSON.parse(await readFile(file, 'utf8')));
    const stream = await PairStream.open(storeFor(job.pairs), job.pairs, {
      batchSize: job.batch,
      seed: job.seed,
      dropLast: true,
    });
    const { pairs: _pairs, ...train } = job;
    const result = await trainStage(streamSource(stream, corruptShardIsUsage), {
      ...train,
      config: train.config as unknown as GetConfig,
      store: storeFor(job.checkpointDir),
      comm,
      log: (msg) => say({ event: 'note', msg }),
      onStep: (s) => say({ event: 'step', ...s }),
      shouldStop: () => stop || (o.stopRequested?.() ?? false),
    } satisfies TrainOptions);
    const { params: _p, ema: _e, ...rest } = result;
    say({ event: 'done', ...rest });
    await comm.finalize();
    return 0;
  } catch (e) {
    const usage = e instanceof UsageError;
    err.write(usage ? `${(e as Error).message}\n` : `${(e as Error).stack ?? String(e)}\n`);
    return usage ? EXIT_USAGE : 1;
  }
}

/** A shard that fails its checks while training is bad input (exit 2), as in the single-process run. */
async function corruptShardIsUsage<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${(e as Error).message}; regenerate the pairs (a new --out)`, { cause: e });
  }
}
