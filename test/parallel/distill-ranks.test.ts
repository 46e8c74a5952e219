/**
 * `get-distill distill --ranks N` as a user runs it (a child process, real mpirun): the run on 2 ranks
 * gives the single-process run's student to float32 rounding, resumes on another number of ranks, and
 * refuses an uneven batch or a machine without Open MPI with one line, exit 2 and nothing written.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noMpi } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'get-distill-ranks-'));
const SMALL = [
  '--fid-samples',
  '0',
  '--pairs',
  '256',
  '--heldout',
  '40',
  '--shard-size',
  '128',
  '--steps',
  '12',
  '--checkpoint-every',
  '6',
  '--teacher-components',
  '3',
  '--teacher-rank',
  '8',
  '--threads',
  '1',
  '--cache-dir',
  join(root, 'cache'),
];
after(() => rmSync(root, { recursive: true, force: true }));

function cli(args: string[], env: NodeJS.ProcessEnv = process.env): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    env,
    timeout: 600_000, // a hang guard, not a time bound
  });
  return { code: r.status, stderr: r.stderr };
}

const report = (dir: string) =>
  JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as {
    heldoutL1: { student: number };
    steps: number;
    resumedFromStep: number | null;
  };

test(
  '--ranks 2 trains the student of one process (held-out L1 to 1e-5), and resumes on 1 rank',
  { skip: noMpi, timeout: 900_000 },
  () => {
    const one = join(root, 'one');
    const two = join(root, 'two');
    let r = cli(['distill', '--out', one, ...SMALL]);
    assert.equal(r.code, 0, r.stderr);
    r = cli(['distill', '--out', two, '--ranks', '2', ...SMALL]);
    assert.equal(r.code, 0, r.stderr);
    const a = report(one).heldoutL1.student;
    const b = report(two).heldoutL1.student;
    assert.ok(Math.abs(a - b) / a <= 1e-5, `held-out L1: 1 process ${a}, 2 ranks ${b}`);
    assert.equal(JSON.parse(readFileSync(join(two, 'options.json'), 'utf8')).ranks, 2);
    // Checkpoints do not record the ranks: the 2-rank run continues in one process.
    r = cli(['distill', '--out', two, '--resume', '--ranks', '1', '--steps', '18']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(report(two).steps, 18);
    assert.equal(report(two).resumedFromStep, 12);
  },
);

function expectUsage(args: string[], env: NodeJS.ProcessEnv, pattern: RegExp, out: string): void {
  const r = cli(args, env);
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], pattern);
  assert.ok(!existsSync(out), `${out} was not created`);
}

test('--ranks with a batch it does not divide exits 2 with one line before any work', () => {
  const out = join(root, 'uneven');
  expectUsage(
    ['distill', '--out', out, '--ranks', '3', '--batch', '32'],
    process.env,
    /^get-distill: --batch 32 is not divisible by the 3 ranks; use a multiple of 3/,
    out,
  );
});

test('--ranks without Open MPI exits 2 naming the Debian packages', () => {
  const out = join(root, 'no-mpi');
  expectUsage(
    ['distill', '--out', out, '--ranks', '2'],
    { ...process.env, GET_DISTILL_MPIRUN: join(root, 'no-such-mpirun') },
    /^get-distill: --ranks 2 needs Open MPI .*apt-get install openmpi-bin libopenmpi-dev/,
    out,
  );
});
