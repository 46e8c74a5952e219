/**
 * One rank of `get-distill distill --ranks N` (started by mpirun; src/stages/train-ranks.ts):
 * `node --import tsx src/cli/train-rank.ts <job.json>`. Not a user command.
 *
 * A stop request (SIGUSR2 relayed by mpirun, or SIGTERM) may come while the stage modules still load;
 * it is recorded here first, so an early Ctrl-C stops the rank gracefully instead of killing it.
 */
let early = false;
const onEarly = (): void => void (early = true);
for (const sig of ['SIGUSR2', 'SIGTERM', 'SIGINT'] as const) process.on(sig, onEarly);

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: train-rank.ts <job.json> (started by get-distill distill --ranks N)\n');
  process.exit(2);
}
const { assignLocalGpu } = await import('../parallel/mpi.js');
assignLocalGpu(process.env); // several ranks on one machine with GPUs: one each
const { trainRankMain } = await import('../stages/train-ranks.js');
// The listeners stay: a request during the rest of the start is seen too.
process.exit(await trainRankMain(file, { stopRequested: () => early }));
