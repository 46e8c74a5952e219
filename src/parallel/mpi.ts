/**
 * The Open MPI {@link Communicator}: MPI_COMM_WORLD through the thin N-API addon of native/mpi
 * (docs/parallel.md). The addon is optional: it is built at install only where Open MPI's headers exist
 * (scripts/build-mpi.mjs), so loading it can fail, and that failure is a {@link UsageError} naming what to
 * install. Nothing here reduces or moves numbers itself: that is MPI_Allreduce / MPI_Bcast.
 *
 * A process started by `mpirun` sees OMPI_COMM_WORLD_SIZE and OMPI_COMM_WORLD_RANK; without them it is
 * a world of one, {@link SINGLE_PROCESS}, and MPI is never initialised (a singleton MPI_Init would start
 * an orted daemon for nothing).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../util/errors.js';
import { SINGLE_PROCESS, type Communicator } from './comm.js';

/** What to do when the addon or Open MPI is missing (one line, for UsageError messages). */
export const MPI_INSTALL_HINT = 'apt-get install openmpi-bin libopenmpi-dev, then npm run build:mpi';

/** Where scripts/build-mpi.mjs (node-gyp) puts the addon. */
export const MPI_ADDON_PATH = fileURLToPath(new URL('../../native/mpi/build/Release/mpi_addon.node', import.meta.url));

/**
 * The signal that asks a rank to stop at its next safe point. `mpirun` cannot forward SIGTERM or SIGINT
 * (it kills the job instead, SIGKILL one second after SIGTERM, and exits 1), but it forwards SIGUSR2 to
 * every rank; a rank loaded by {@link loadMpi} under mpirun turns SIGUSR2 into a SIGTERM to itself, so the
 * trainer's ordinary SIGTERM handling runs. src/parallel/launch.ts sends it on the parent's SIGTERM/SIGINT.
 */
export const MPI_STOP_SIGNAL = 'SIGUSR2';

/** The thread support MPI_Init_thread granted: the addon needs serialized at least. */
export type MpiThreadLevel = 'serialized' | 'multiple';

/** The MPI world, with what the addon reports beyond {@link Communicator}. */
export interface MpiCommunicator extends Communicator {
  /** MPI_Init_thread's `provided` level (asked: multiple; serialized is enough, see docs/parallel.md). */
  readonly threadLevel: MpiThreadLevel;
}

/** The addon's exports (native/mpi/mpi_addon.cc). */
interface MpiAddon {
  init(): { rank: number; size: number; localRank: number; threadLevel: string };
  allreduceSum(buf: Float32Array): Promise<void>;
  broadcast(buf: ArrayBufferView, root: number): Promise<void>;
  barrier(): Promise<void>;
  finalize(): Promise<void>;
  abort(code: number): never;
}

/** True in a process that mpirun (or the MPI Operator's launcher, through mpirun) started. */
export function underMpirun(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.OMPI_COMM_WORLD_SIZE !== undefined && env.OMPI_COMM_WORLD_RANK !== undefined;
}

/** Ranks in this process's world: OMPI_COMM_WORLD_SIZE under mpirun, else 1 (a plain `node` run). */
export function mpiWorldSize(env: NodeJS.ProcessEnv = process.env): number {
  if (!underMpirun(env)) return 1;
  const n = Number(env.OMPI_COMM_WORLD_SIZE);
  return Number.isSafeInteger(n) && n >= 1 ? n : 1;
}

export interface LoadMpiOptions {
  /** The addon file (default {@link MPI_ADDON_PATH}); tests point it elsewhere. */
  readonly addonPath?: string;
}

/** One world per process: MPI_Init_thread may run once, so every caller shares it. */
let loaded: { path: string; comm: MpiCommunicator } | undefined;

/**
 * Loads the addon and joins MPI_COMM_WORLD (MPI_Init_thread, once per process; later calls return the
 * same communicator). Under mpirun it also installs the {@link MPI_STOP_SIGNAL} → SIGTERM bridge.
 * @throws UsageError (exit 2) when the addon is not built, libmpi cannot be loaded or MPI cannot start.
 */
export function loadMpi(options: LoadMpiOptions = {}): MpiCommunicator {
  const path = options.addonPath ?? MPI_ADDON_PATH;
  if (loaded) {
    if (loaded.path !== path) throw new Error(`MPI was already loaded from ${loaded.path}`);
    return loaded.comm;
  }
  let addon: MpiAddon;
  try {
    addon = createRequire(import.meta.url)(path) as MpiAddon;
  } catch (e) {
    throw new UsageError(
      `data-parallel training needs the Open MPI addon (${loadFailure(e, path)}): ${MPI_INSTALL_HINT}`,
      {
        cause: e,
      },
    );
  }
  let world: ReturnType<MpiAddon['init']>;
  try {
    world = addon.init();
  } catch (e) {
    throw new UsageError(`Open MPI could not start: ${firstLine(e)}`, { cause: e });
  }
  const comm = communicator(addon, world);
  if (underMpirun()) process.on(MPI_STOP_SIGNAL, () => process.kill(process.pid, 'SIGTERM'));
  loaded = { path, comm };
  return comm;
}

/**
 * The world this process belongs to: {@link SINGLE_PROCESS} when mpirun did not start it (MPI is then
 * never initialised), else the MPI one ({@link loadMpi}).
 */
export function worldCommunicator(env: NodeJS.ProcessEnv = process.env, options: LoadMpiOptions = {}): Communicator {
  return underMpirun(env) ? loadMpi(options) : SINGLE_PROCESS;
}

/**
 * Wraps the addon. Collectives queue on one promise chain, so even calls nobody awaited run one after
 * another (two libuv threads never enter MPI at once, which MPI_THREAD_SERIALIZED forbids), in call
 * order (every rank must issue them in the same order). A failed collective rejects its own promise
 * only; the next one still runs.
 */
function communicator(addon: MpiAddon, world: ReturnType<MpiAddon['init']>): MpiCommunicator {
  let tail: Promise<unknown> = Promise.resolve();
  const serial = (op: () => Promise<void>): Promise<void> => {
    const run = tail.then(op);
    tail = run.catch(() => undefined);
    return run;
  };
  return Object.freeze({
    rank: world.rank,
    size: world.size,
    localRank: world.localRank,
    threadLevel: world.threadLevel as MpiThreadLevel,
    allreduceSum: (buf: Float32Array) =>
      serial(async () => {
        if (!(buf instanceof Float32Array)) throw new TypeError('allreduceSum takes a Float32Array');
        await addon.allreduceSum(buf);
      }),
    broadcast: (buf: ArrayBufferView, root = 0) =>
      serial(async () => {
        if (!Number.isInteger(root) || root < 0 || root >= world.size) {
          throw new RangeError(`broadcast root ${root} is not a rank of a world of ${world.size}`);
        }
        await addon.broadcast(buf, root);
      }),
    barrier: () => serial(() => addon.barrier()),
    abort: (code: number): never => addon.abort(code),
    finalize: () => serial(() => addon.finalize()),
  });
}

/** Why the addon did not load, in a few words: not built, or the loader's first line (libmpi missing). */
function loadFailure(e: unknown, path: string): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'MODULE_NOT_FOUND' || code === 'ENOENT') return `${path} is not built`;
  return firstLine(e).replace(`${path}: `, '');
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.trim();
}

/** This process's rank in its world (OMPI_COMM_WORLD_RANK), 0 when not under mpirun. */
export function worldRankOf(env: NodeJS.ProcessEnv = process.env): number {
  if (!underMpirun(env)) return 0;
  const r = Number(env.OMPI_COMM_WORLD_RANK);
  return Number.isSafeInteger(r) && r >= 0 ? r : 0;
}

/** This process's rank among its host's ranks (OMPI_COMM_WORLD_LOCAL_RANK), 0 when not under mpirun. */
export function localRankOf(env: NodeJS.ProcessEnv = process.env): number {
  if (!underMpirun(env)) return 0;
  const r = Number(env.OMPI_COMM_WORLD_LOCAL_RANK);
  return Number.isSafeInteger(r) && r >= 0 ? r : 0;
}

/**
 * Gives this rank its own GPU when several ranks share a host (a pod with gpusPerWorker > 1): sets
 * CUDA_VISIBLE_DEVICES to the local rank's entry of the devices visible now (the variable's list, else
 * 0..localSize−1), so onnxruntime's CUDA provider and tfjs-node-gpu, which read it when they first touch
 * CUDA, each see one device. A no-op outside mpirun or with one rank per host. Call before loading an engine.
 * @returns the device chosen, or null when nothing was changed.
 */
export function assignLocalGpu(env: NodeJS.ProcessEnv = process.env): string | null {
  if (!underMpirun(env)) return null;
  const localSize = Number(env.OMPI_COMM_WORLD_LOCAL_SIZE ?? '1');
  if (!Number.isSafeInteger(localSize) || localSize <= 1) return null;
  const visible = (env.CUDA_VISIBLE_DEVICES ?? '')
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '');
  const devices = visible.length > 0 ? visible : Array.from({ length: localSize }, (_, i) => String(i));
  const mine = devices[localRankOf(env) % devices.length];
  env.CUDA_VISIBLE_DEVICES = mine;
  return mine;
}
