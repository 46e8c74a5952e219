/** stats.jsonl: rewritten whole (object stores cannot append), continued on resume without repeated steps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StatsLog } from '../../src/stages/stats-log.js';
import { storeFor } from '../../src/store/index.js';

test('a resumed run keeps earlier lines and drops the training steps it repeats', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stats-log-'));
  try {
    const uri = join(dir, 'stats.jsonl');
    const first = await StatsLog.open(storeFor(dir), uri, false, assert.fail);
    for (const step of [10, 20, 30]) await first.log({ stage: 'train', step });
    const steps = () =>
      readFileSync(uri, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).step);
    assert.deepEqual(steps(), [10, 20, 30]);
    // Killed after step 30 with its last checkpoint at 20: the resumed run trains 21, 22, …
    const resumed = await StatsLog.open(storeFor(dir), uri, true, assert.fail);
    resumed.forgetTrainStepsFrom(21);
    await resumed.log({ stage: 'train', step: 30 });
    await resumed.log({ stage: 'report', student: 0.1 });
    assert.deepEqual(steps(), [10, 20, 30, undefined]);
    // A fresh log starts empty even when an old object exists.
    const fresh = await StatsLog.open(storeFor(dir), uri, false, assert.fail);
    await fresh.log({ stage: 'train', step: 1 });
    assert.deepEqual(steps(), [1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
