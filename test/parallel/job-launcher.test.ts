/**
 * The trainer's job mode on N ranks (`services/trainer/main.ts --mode job --ranks N`, what an MPIJob's
 * launcher pod runs): the launcher runs mpirun over its own command line, rank 0 alone writes checkpoints,
 * the launcher writes rank 0's termination message and exits as job mode does (0 / 2 / 75); SIGTERM to the
 * launcher reaches every rank as a graceful stop (checkpoint, 75) and a rerun resumes from latest.json.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findMpirun } from '../../src/parallel/launch.js';
import { noMpi, writeSyntheticPairs } from './helpers.js';

const TRAINER = fileURLToPath(new URL('../../services/trainer/main.ts', import.meta.url));
let root = '';
let pairs = '';

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'get-launcher-'));
  pairs = join(root, 'pairs');
  await writeSyntheticPairs(pairs, 64, 32, 4);
});
after(() => rm(root, { recursive: true, force: true }));

/** Starts the launcher; resolves its exit code, output and termination message once it ends. */
function launch(out: string, spec: Record<string, unknown>, ranks = 2) {
  const term = join(root, `term-${Date.now()}.json`);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', TRAINER, '--mode', 'job', '--ranks', String(ranks), '--port', '0', '--log-level', 'warn'],
    {
      env: {
        ...process.env,
        GET_DISTILL_TERMINATION_LOG: term,
        GET_DISTILL_JOB_SPEC: JSON.stringify({
          pairs,
          out,
          preset: 'GET-CPU-XS/8',
          batch: 16,
          iterations: 2,
          threads: 1,
          ...spec,
        }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const done = new Promise<{ code: number; output: string; message: Record<string, unknown> | null }>((resolve) =>
    child.on('close', async (code) => {
      const message = existsSync(term) ? (JSON.parse(await readFile(term, 'utf8')) as Record<string, unknown>) : null;
      resolve({ code: code ?? -1, output, message });
    }),
  );
  return { child, done };
}

const latestStep = async (out: string): Promise<number | null> => {
  try {
    const l = JSON.parse(await readFile(join(out, 'checkpoints', 'latest.json'), 'utf8')) as { step: number };
    return l.step;
  } catch {
    return null;
  }
};

test(
  '2 ranks in job mode: exit 0, rank 0 writes the checkpoints, the launcher writes its termination message',
  { skip: noMpi, timeout: 180_000 },
  async () => {
    const out = join(root, 'ok');
    const r = await launch(out, { steps: 6, checkpointEvery: 3 }).done;
    assert.equal(r.code, 0, r.output);
    assert.equal(r.message?.outcome, 'done');
    assert.equal(r.message?.exitCode, 0);
    assert.equal((r.message?.summary as { step: number }).step, 6);
    assert.deepEqual((await readdir(join(out, 'checkpoints'))).sort(), [
      'checkpoint-000000003.safetensors',
      'checkpoint-000000006.safetensors',
      'latest.json',
    ]);
    assert.ok(!r.output.includes('get-distill-termination-message'), 'rank 0’s line is the launcher’s, not output');
  },
);

test(
  'a bad spec exits 2 on every rank: the launcher exits 2 with the field in its message',
  { skip: noMpi, timeout: 180_000 },
  async () => {
    const r = await launch(join(root, 'bad'), { steps: 4, batch: 15 }, 2).done;
    assert.equal(r.code, 2, r.output);
    assert.equal(r.message?.outcome, 'failed');
    assert.match(String((r.message?.error as { message: string }).message), /batch 15 is not divisible by the 2 ranks/);
  },
);

test(
  'SIGTERM to the launcher stops every rank at one step with a checkpoint (75); a rerun resumes',
  { skip: noMpi, timeout: 300_000 },
  async () => {
    const out = join(root, 'term');
    const { child, done } = launch(out, { steps: 100_000, checkpointEvery: 2 });
    // Wait (a hang guard, not a time bound) for the first checkpoint, then ask the launcher to stop.
    while ((await latestStep(out)) === null) {
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    child.kill('SIGTERM');
    const r = await done;
    assert.equal(r.code, 75, r.output);
    assert.equal(r.message?.outcome, 'interrupted');
    const stopped = await latestStep(out);
    assert.ok(stopped !== null && stopped >= 2 && stopped < 100_000, `checkpoint at ${stopped}`);
    assert.equal((r.message?.summary as { step: number }).step, stopped);
    const again = await launch(out, { steps: stopped + 2, checkpointEvery: 2 }).done;
    assert.equal(again.code, 0, again.output);
    assert.equal((again.message?.summary as { resumedFrom: number }).resumedFrom, stopped);
    assert.equal(await latestStep(out), stopped + 2);
  },
);

test(
  'mpirun -np 2 around job mode without --ranks: two ranks of one world, exit 0',
  { skip: noMpi, timeout: 180_000 },
  async () => {
    const out = join(root, 'plain-mpirun');
    const spec = JSON.stringify({ pairs, out, preset: 'GET-CPU-XS/8', batch: 16, iterations: 2, threads: 1, steps: 2 });
    const args = [
      ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []),
      '--oversubscribe',
      '-np',
      '2',
      process.execPath,
      '--import',
      'tsx',
      TRAINER,
      '--mode',
      'job',
      '--port',
      '0',
      '--log-level',
      'warn',
      '--spec',
      spec,
    ];
    const child = spawn(findMpirun()!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? -1)));
    assert.equal(code, 0, output);
    assert.equal(await latestStep(out), 2);
    // Rank 0 printed its termination message for a launcher (none here): that is its only stdout line.
    assert.match(output, /get-distill-termination-message \{"v":1,"stage":"train","outcome":"done"/);
  },
);
