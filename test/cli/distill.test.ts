/**
 * End-to-end: the `get-distill distill` CLI as a user runs it (a child process), on a smoke-sized run,
 * plus its bad-input contract (one line on stderr, exit code 2, nothing already written destroyed).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';

const root = mkdtempSync(join(tmpdir(), 'get-distill-cli-'));
const cache = join(root, 'cache');
const run = join(root, 'run');
const SMALL = [
  '--fid-samples',
  '200',
  '--pairs',
  '256',
  '--heldout',
  '40',
  '--shard-size',
  '128',
  '--steps',
  '20',
  '--checkpoint-every',
  '10',
  '--grid-columns',
  '4',
  '--teacher-components',
  '3',
  '--teacher-rank',
  '8',
  '--cache-dir',
  cache,
];

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    timeout: 600_000, // a hang guard, not a time bound
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  const r = cli(['distill', '--out', run, ...SMALL]);
  assert.equal(r.code, 0, r.stderr);
});
after(() => rmSync(root, { recursive: true, force: true }));

test('smoke run: samples.png, report.json, shards with a manifest, checkpoints, and model.onnx + model.json', () => {
  const files = readdirSync(run).sort();
  for (const f of [
    'checkpoints',
    'heldout',
    'model.json',
    'model.onnx',
    'options.json',
    'pairs',
    'report.json',
    'samples.png',
    'stats.jsonl',
  ])
    assert.ok(files.includes(f), `missing ${f}`);
  const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
  assert.equal(report.dataset, 'mnist');
  assert.equal(report.preset, 'GET-CPU-S/4');
  assert.equal(report.steps, 20);
  assert.equal(report.pairs.train, 256);
  assert.equal(report.sampler.nfe, 35);
  assert.equal(report.parameterCount, report.trainableParameters + 64 * 64); // + frozen pos-embed N·D
  for (const k of ['student', 'classMean', 'ridge'])
    assert.ok(report.heldoutL1[k] > 0 && report.heldoutL1[k] < 2, `${k} = ${report.heldoutL1[k]}`);
  for (const k of ['dataset', 'teacher', 'datagen', 'train', 'sample', 'total'])
    assert.ok(report.wallSeconds[k] >= 0, k);
  assert.ok(report.trainImagesPerSecond > 0);
  const manifest = JSON.parse(readFileSync(join(run, 'pairs', 'manifest.json'), 'utf8'));
  assert.equal(manifest.totalPairs, 256);
  assert.equal(manifest.shards.length, 2);
  const latest = JSON.parse(readFileSync(join(run, 'checkpoints', 'latest.json'), 'utf8'));
  assert.equal(latest.step, 20);
  const card = JSON.parse(readFileSync(join(run, 'model.json'), 'utf8'));
  assert.equal(card.step, report.steps);
  assert.equal(card.parameterCount, report.parameterCount);
  assert.equal(
    card.sha256,
    createHash('sha256')
      .update(readFileSync(join(run, 'model.onnx')))
      .digest('hex'),
  );
  assert.equal(report.artifacts.model, 'model.onnx');
  assert.ok(report.wallSeconds.export >= 0);
  // FID of teacher and student samples on the same 200 evaluation seeds, against the MNIST test split.
  assert.equal(report.fid.samples, 200);
  assert.equal(report.fid.reference, 'mnist:test');
  assert.equal(report.fid.features, 'mnist');
  assert.ok(
    report.fid.teacher.fid > 0 && report.fid.student.fid > report.fid.teacher.fid,
    `teacher ${report.fid.teacher.fid}, student after 20 steps ${report.fid.student.fid}`,
  );
  assert.equal(report.fid.studentOverTeacher, report.fid.student.fid / report.fid.teacher.fid);
  for (const who of ['teacher', 'student']) {
    assert.ok(
      report.fid[who].precision >= 0 &&
        report.fid[who].precision <= 1 &&
        report.fid[who].recall >= 0 &&
        report.fid[who].recall <= 1,
    );
    assert.ok(report.fid[who].inceptionScore.mean >= 1 && report.fid[who].inceptionScore.mean <= 10);
  }
  assert.equal(JSON.parse(readFileSync(join(run, 'eval', 'teacher-200', 'manifest.json'), 'utf8')).totalPairs, 200);
  assert.ok(readFileSync(join(run, 'eval', 'mnist-test.npz')).length > 128 * 128 * 8);
  // Two panels of 4 columns × 10 class rows of 32×32 images at 2× scale.
  const png = PNG.sync.read(readFileSync(join(run, 'samples.png')));
  assert.ok(png.width > 2 * 4 * 64 && png.height > 10 * 64, `${png.width}×${png.height}`);
});

test('--resume with more steps continues from the latest checkpoint, taking the other options from the run', () => {
  const r = cli(['distill', '--out', run, '--resume', '--steps', '30']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
  assert.equal(report.resumedFromStep, 20);
  assert.equal(report.steps, 30);
  assert.equal(
    JSON.parse(readFileSync(join(run, 'model.json'), 'utf8')).step,
    30,
    'the model is re-exported from the new checkpoint',
  );
});

function expectUsage(args: string[], pattern: RegExp): void {
  const r = cli(args);
  assert.equal(r.code, 2, `exit ${r.code}; stderr: ${r.stderr}`);
  // Progress lines may come first; the error itself is one line, last, with no stack trace.
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('(run with --help'));
  assert.match(lines[lines.length - 1], pattern);
  assert.equal(
    lines.filter((l) => /^(get-distill: |error: )/.test(l)).length,
    1,
    `expected one error line, got:\n${r.stderr}`,
  );
  assert.ok(!/^\s+at /m.test(r.stderr), `stack trace in:\n${r.stderr}`);
}

test('bad flags and values exit 2 with one line naming the problem', () => {
  expectUsage(['distill', '--no-such-flag'], /unknown option '--no-such-flag'/);
  expectUsage(['distill', '--preset', 'GET-Z/2'], /GET-Z\/2/);
  expectUsage(['distill', '--pairs', '0'], /--pairs must be an integer in \[1, 1073741824\], got "0"/);
  expectUsage(['distill', '--steps', '-3'], /--steps must be an integer ≥ 1/);
  expectUsage(['distill', '--lr', 'fast'], /--lr must be a number > 0, got "fast"/);
  expectUsage(['distill', '--out', ''], /--out must not be empty/);
  expectUsage(['distill', '--sampler-steps', '1'], /--sampler-steps must be an integer in \[2, 1000\]/);
  expectUsage(['distill', '--pairs', '3000000000'], /--pairs must be an integer in \[1, 1073741824\]/);
  expectUsage(['distill', '--ema-decay', '1'], /--ema-decay must be a number ≥ 0 and < 1/);
  expectUsage(['distill', '--batch', '64', '--pairs', '32', '--out', join(root, 'b')], /--batch 64 exceeds --pairs 32/);
  expectUsage(
    ['distill', '--preset', 'GET-T/2', '--out', join(root, 't2')],
    /GET-T\/2 is for 3×32×32 images, the embedded teacher makes 1×32×32/,
  );
  expectUsage(['distill', '--resume', '--out', join(root, 'nothing-here')], /holds no run to resume/);
  for (const d of ['b', 't2', 'nothing-here'])
    assert.throws(() => statSync(join(root, d)), /ENOENT/, `${d} was created`);
  expectUsage(
    ['distill', '--patch-size', '5', '--out', join(root, 'p5')],
    /patch size 5 does not divide the image size 32/,
  );
});

test('--resume with fewer --steps than the checkpoint is refused', () => {
  expectUsage(
    ['distill', '--out', run, ...SMALL.map((v) => (v === '20' ? '5' : v)), '--resume'],
    /--steps 5 is below the checkpoint's step 30/,
  );
});

test('a non-empty --out without --resume is refused and left untouched', () => {
  const dir = join(root, 'occupied');
  rmSync(dir, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', dir]);
  writeFileSync(join(dir, 'thesis.txt'), 'precious');
  expectUsage(['distill', '--out', dir, ...SMALL], /--out .* is not empty; pass --resume/);
  assert.deepEqual(readdirSync(dir), ['thesis.txt']);
  assert.equal(readFileSync(join(dir, 'thesis.txt'), 'utf8'), 'precious');
  // The file-system root is a folder like any other.
  expectUsage(['distill', '--out', '/', ...SMALL], /--out \/ is not empty/);
});

test('--resume regenerates a truncated shard byte-identically, then continues', () => {
  const shard = readdirSync(join(run, 'pairs')).find((f) => f.endsWith('.safetensors'))!;
  const path = join(run, 'pairs', shard);
  const original = createHash('sha256').update(readFileSync(path)).digest('hex');
  truncateSync(path, 1000);
  const r = cli(['distill', '--out', run, ...SMALL.map((v) => (v === '20' ? '40' : v)), '--resume']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`regenerating .*${shard}: .*truncated`));
  assert.equal(createHash('sha256').update(readFileSync(path)).digest('hex'), original);
  assert.equal(JSON.parse(readFileSync(join(run, 'report.json'), 'utf8')).steps, 40);
});

test('a truncated checkpoint on --resume exits 2 naming the file, and deletes nothing', () => {
  const ckDir = join(run, 'checkpoints');
  const latest = JSON.parse(readFileSync(join(ckDir, 'latest.json'), 'utf8'));
  const ckPath = join(ckDir, latest.file);
  const size = statSync(ckPath).size;
  truncateSync(ckPath, size - 100);
  expectUsage(
    ['distill', '--out', run, ...SMALL.map((v) => (v === '20' ? '50' : v)), '--resume'],
    new RegExp(`${latest.file}: checkpoint is corrupt or truncated`),
  );
  assert.equal(statSync(ckPath).size, size - 100);
});

test('SIGINT during training writes a checkpoint, exits 130, and --resume finishes the run', async () => {
  const dir = join(root, 'interrupted');
  const args = ['distill', '--out', dir, ...SMALL.map((v) => (v === '20' ? '3000' : v)), '--checkpoint-every', '1000'];
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    if (/train GET-CPU-S\/4/.test(stderr) && !child.killed) child.kill('SIGINT');
  });
  const code = await new Promise<number | null>((res) => child.on('exit', res));
  assert.equal(code, 130, stderr);
  assert.match(stderr, /SIGINT at step \d+: checkpoint saved in .*; continue with --resume/);
  const latest = JSON.parse(readFileSync(join(dir, 'checkpoints', 'latest.json'), 'utf8'));
  assert.ok(latest.step > 0 && latest.step < 3000, `checkpoint at step ${latest.step}`);
  const r = cli([
    'distill',
    '--out',
    dir,
    ...SMALL.map((v) => (v === '20' ? String(latest.step + 5) : v)),
    '--checkpoint-every',
    '1000',
    '--resume',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
  assert.equal(report.resumedFromStep, latest.step);
  assert.equal(report.steps, latest.step + 5);
});
