/**
 * One rank of the `parallel` section's allreduce measurement, run by mpirun (runMpirun) as
 * `node --import tsx scripts/bench/allreduce-rank.ts '<json {floats: number[], warmup, reps}>'`.
 *
 * For each buffer length: `warmup` untimed allreduces, then `reps` timed ones, each after a barrier so
 * every rank starts together; a rank's time runs from leaving the barrier to its allreduce settling (the
 * addon's hop to libuv's thread pool included, as the trainer sees it). The ranks then sum their times
 * into one table (one more allreduce) and rank 0 prints one line per length, `RESULT {"floats":…,"ms":[…]}`,
 * with each repetition's slowest rank. Every rank finalises before it exits (mpirun's rule).
 */
import { worldCommunicator } from '../../src/parallel/mpi.js';

const args = JSON.parse(process.argv[2] ?? '{}') as { floats: number[]; warmup: number; reps: number };
const comm = worldCommunicator();

for (const n of args.floats) {
  // Small values: every allreduce doubles them (2 ranks), which stays far from overflow in 100 rounds.
  const buf = new Float32Array(n).fill(2 ** -100);
  for (let i = 0; i < args.warmup; i++) await comm.allreduceSum(buf);
  const times = new Float32Array(comm.size * args.reps);
  for (let i = 0; i < args.reps; i++) {
    await comm.barrier();
    const t = performance.now();
    await comm.allreduceSum(buf);
    times[comm.rank * args.reps + i] = performance.now() - t;
  }
  await comm.allreduceSum(times);
  const ms = Array.from({ length: args.reps }, (_, i) =>
    Math.max(...Array.from({ length: comm.size }, (_, r) => times[r * args.reps + i])),
  );
  if (comm.rank === 0) process.stdout.write(`RESULT ${JSON.stringify({ floats: n, ms })}\n`);
}
await comm.finalize();
