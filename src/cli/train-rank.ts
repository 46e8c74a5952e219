/**
 * One rank of `get-distill distill --ranks N` (started by mpirun; src/stages/train-ranks.ts):
 * `node --import tsx src/cli/train-rank.ts <job.json>`. Not a user command.
 */
import { trainRankMain } from '../stages/train-ranks.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: train-rank.ts <job.json> (started by get-distill distill --ranks N)\n');
  process.exit(2);
}
process.exit(await trainRankMain(file));
