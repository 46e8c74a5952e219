/**
 * The collective-communication contract of data-parallel training: what a trainer needs from the
 * world of ranks it belongs to. Two implementations: {@link SINGLE_PROCESS} (size 1, every collective
 * is the identity) and the Open MPI one (src/parallel/mpi.ts, a thin N-API addon over MPI_COMM_WORLD,
 * native/mpi/). No transport or reduction of our own: the arithmetic of a sum is MPI's.
 *
 * Every collective must be called by every rank, in the same order, with buffers of the same length
 * (MPI's rule). Calls are serialised: a rank must await one collective before starting the next.
 */
export interface Communicator {
  /** This process's rank in [0, size). */
  readonly rank: number;
  /** Ranks in the world (1 without MPI). */
  readonly size: number;
  /** The rank's index among the ranks of its own host (a pod), for per-host resources such as a port. */
  readonly localRank: number;
  /**
   * Elementwise sum over all ranks, in place: afterwards `buf` holds the same sum on every rank
   * (MPI_Allreduce, MPI_FLOAT, MPI_SUM). Runs off the JavaScript thread.
   * @throws Error when MPI reports a failure.
   */
  allreduceSum(buf: Float32Array): Promise<void>;
  /**
   * Copies `root`'s bytes of `buf` into `buf` on every other rank (MPI_Bcast of the view's bytes).
   * Runs off the JavaScript thread.
   */
  broadcast(buf: ArrayBufferView, root?: number): Promise<void>;
  /** Returns once every rank has called it (MPI_Barrier). Runs off the JavaScript thread. */
  barrier(): Promise<void>;
  /** Ends every rank of the world with exit status `code` (MPI_Abort); does not return. */
  abort(code: number): never;
  /**
   * Leaves the world (MPI_Finalize). No collective may follow. Under mpirun every rank must call it before
   * exiting 0, else mpirun ends the job as failed ("exiting improperly").
   */
  finalize(): Promise<void>;
}

/** The world of one process: rank 0 of 1; every collective leaves its buffer as it is. */
export const SINGLE_PROCESS: Communicator = Object.freeze({
  rank: 0,
  size: 1,
  localRank: 0,
  allreduceSum: async () => {},
  broadcast: async () => {},
  barrier: async () => {},
  abort: (code: number): never => process.exit(code),
  finalize: async () => {},
});
