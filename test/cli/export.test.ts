/**
 * `get-distill export` as a user runs it (child processes) on a tiny checkpoint written with
 * saveCheckpoint: a folder export (also in S3, against the gateway `npm test` starts) and the
 * bad-input contract (exit 2, one line on stderr, no stack trace).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/get/config.js';
import { paramSpecs } from '../../src/get/model.js';
import { type ObjectStore, S3Store, joinUri, storeFor } from '../../src/store/index.js';
import { type CheckpointState, saveCheckpoint } from '../../src/train/checkpoint.js';
import { REFERENCE_ADAMW, REFERENCE_EMA } from '../../src/train/optim.js';
import { initParams } from '../../src/train/params.js';
import { sha256Hex } from '../../src/util/fsutil.js';
import { loadS3Env, uniqueBucket } from '../store/s3-env.js';

const root = mkdtempSync(join(tmpdir(), 'get-export-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    timeout: 300_000, // a hang guard, not a time bound
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A GET-CPU-XS/8 (10 classes) checkpoint at step 12 in the folder `dir` of `store`. */
async function tinyCheckpoint(store: ObjectStore, dir: string): Promise<void> {
  const cfg = resolveConfig('GET-CPU-XS/8', { numClasses: 10 });
  const params = initParams(paramSpecs(cfg), 0);
  const state: CheckpointState = {
    step: 12,
    imagesSeen: 96,
    adamSteps: 12,
    config: cfg,
    optimizer: REFERENCE_ADAMW,
    ema: REFERENCE_EMA,
    batch: 8,
    iterations: 6,
    seed: 0,
    dataManifestSha256: 'cd'.repeat(32),
    loss: null,
  };
  await saveCheckpoint(
    store,
    dir,
    { state, params, ema: params.clone(), adamM: params.clone(), adamV: params.clone() },
    1,
  );
}

test('export of a checkpoint folder writes model.onnx and model.json and prints a summary', async () => {
  const ck = join(root, 'run', 'checkpoints');
  await tinyCheckpoint(storeFor(ck), ck);
  const out = join(root, 'model');
  const r = cli(['export', '--checkpoint', ck, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const bytes = readFileSync(join(out, 'model.onnx'));
  const card = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
  assert.equal(card.sha256, sha256Hex(bytes));
  assert.equal(card.bytes, bytes.length);
  assert.equal(card.step, 12);
  assert.equal(card.format, 'get-distill/model@1');
  assert.match(r.stdout, new RegExp(`^model +${join(out, 'model.onnx')}$`, 'm'));
  assert.match(r.stdout, new RegExp(`^sha256 +${card.sha256}$`, 'm'));
  assert.match(r.stdout, new RegExp(`^size +${bytes.length.toLocaleString('en-US')} bytes`, 'm'));
  assert.match(
    r.stdout,
    new RegExp(
      `^parameters +${card.parameterCount.toLocaleString('en-US')} \\(GET-CPU-XS/8, 10 classes, 6 iterations\\)$`,
      'm',
    ),
  );
  assert.match(r.stdout, /^step +12$/m);
  const help = cli(['export', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /get-distill export --checkpoint runs\/distill\/checkpoints --out runs\/distill/);
});

function expectUsage(args: string[], pattern: RegExp): void {
  const r = cli(args);
  assert.equal(r.code, 2, `exit ${r.code}; stderr: ${r.stderr}`);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('(run with --help'));
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0], pattern);
}

test('bad input exits 2 with one line naming the problem, and writes nothing', () => {
  const out = join(root, 'never');
  const missing = join(root, 'no-such-run', 'checkpoints');
  expectUsage(
    ['export', '--checkpoint', missing, '--out', out],
    new RegExp(`^get-distill: ${missing}: no checkpoint there`),
  );
  const text = join(root, 'readme.txt');
  writeFileSync(text, 'hello');
  expectUsage(['export', '--checkpoint', text, '--out', out], /^get-distill: .*readme\.txt: not a checkpoint/);
  expectUsage(
    ['export', '--checkpoint', 'gs://bucket/ck', '--out', out],
    /--checkpoint gs:\/\/bucket\/ck: unknown URI scheme "gs:\/\/"/,
  );
  expectUsage(['export', '--out', out], /required option '--checkpoint <uri>' not specified/);
  expectUsage(['export', '--checkpoint', text], /required option '--out <uri>' not specified/);
  assert.throws(() => statSync(out), /ENOENT/);
});

test('export from and to S3 (the local gateway)', async () => {
  loadS3Env();
  const bucket = uniqueBucket('export');
  const store = new S3Store(`s3://${bucket}`);
  try {
    await store.ensureBucket();
    const run = `s3://${bucket}/run`;
    await tinyCheckpoint(store, joinUri(run, 'checkpoints'));
    const r = cli(['export', '--checkpoint', joinUri(run, 'checkpoints'), '--out', run]);
    assert.equal(r.code, 0, r.stderr);
    const card = JSON.parse(new TextDecoder().decode(await store.get(joinUri(run, 'model.json'))));
    assert.equal(card.sha256, sha256Hex(await store.get(joinUri(run, 'model.onnx'))));
    assert.equal(card.step, 12);
    assert.match(r.stdout, new RegExp(`^model +s3://${bucket}/run/model\\.onnx$`, 'm'));
  } finally {
    store.client.destroy();
  }
});
