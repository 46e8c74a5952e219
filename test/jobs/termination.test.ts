/**
 * The Kubernetes termination message (src/service/termination.ts): the 4096-byte cap keeps valid JSON
 * (the error message is cut first, then the largest entries go); the exporter's job mode writes it
 * (done with the model's sha256, and failed with a permanent error and exit 2) to
 * GET_DISTILL_TERMINATION_LOG on a local file store; job mode in-process (the fake stage) writes
 * interrupted on a signal and failed for a bad spec or GET_DISTILL_EXECUTION_PROVIDERS; `get-distill
 * eval` writes the same shape.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { resolveConfig } from '../../src/get/config.js';
import { PairStream } from '../../src/data/pair-stream.js';
import {
  encodeTerminationMessage,
  TERMINATION_LOG_ENV,
  TERMINATION_MESSAGE_MAX_BYTES,
  type TerminationMessage,
  TerminationMessageSchema,
  writeTerminationMessage,
} from '../../src/service/termination.js';
import { datasetDigest } from '../../src/stages/datagen.js';
import { streamSource, trainStage } from '../../src/stages/train.js';
import { storeFor } from '../../src/store/index.js';
import { REFERENCE_ADAMW } from '../../src/train/optim.js';
import { sha256Hex } from '../../src/util/fsutil.js';
import { runJobMode } from '../../src/jobs/run-job.js';
import { createLogger } from '../../src/service/logging.js';
import { fakeStage } from './fake-stage.js';
import { ROOT, seedPairs, startJob } from './stage-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'get-termination-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const base: TerminationMessage = {
  v: 1,
  stage: 'train',
  outcome: 'failed',
  exitCode: 75,
  summary: { step: 120, loss: 0.0123 },
  artifacts: { checkpoints: 's3://bucket/run/checkpoints' },
};
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const read = (path: string) => TerminationMessageSchema.parse(JSON.parse(readFileSync(path, 'utf8')));

test('a small message is written as is: compact JSON the schema parses', () => {
  const path = join(dir, 'small.log');
  writeTerminationMessage(path, { ...base, error: { kind: 'retryable', message: 'store unreachable' } });
  const text = readFileSync(path, 'utf8');
  assert.equal(
    text,
    '{"v":1,"stage":"train","outcome":"failed","exitCode":75,"summary":{"step":120,"loss":0.0123},"artifacts":{"checkpoints":"s3://bucket/run/checkpoints"},"error":{"kind":"retryable","message":"store unreachable"}}',
  );
  assert.throws(
    () => writeTerminationMessage(join(dir, 'no/such/dir/x'), base),
    /GET_DISTILL_TERMINATION_LOG=.*no\/such\/dir\/x: cannot write the termination message \(ENOENT\)/,
  );
});

test('a huge error message is cut first: ≤ 4096 bytes, valid JSON, summary and artifacts kept', () => {
  // 1 MB of text that JSON escapes (quotes, newlines) and multi-byte characters (σ: 2 bytes, 😀: 4).
  const message = `first "line"\nσ😀 ${'x'.repeat(1_000_000)}`;
  const text = encodeTerminationMessage({ ...base, error: { kind: 'permanent', message } });
  assert.ok(bytes(text) <= TERMINATION_MESSAGE_MAX_BYTES, `${bytes(text)} bytes`);
  assert.ok(bytes(text) > TERMINATION_MESSAGE_MAX_BYTES - 8, 'the message fills the room it has');
  const m = TerminationMessageSchema.parse(JSON.parse(text));
  assert.deepEqual([m.summary, m.artifacts, m.truncated], [base.summary, base.artifacts, ['error.message']]);
  assert.ok(m.error!.message.startsWith('first "line"\nσ😀 xxx'));
  assert.ok(m.error!.message.endsWith('x…'));
});

test('empty message does not fit: the largest entries go (named in truncated); the message gets the rest', () => {
  const summary = { step: 7, loss: 0.5, notes: 'n'.repeat(5000), log: 'l'.repeat(3000) };
  const text = encodeTerminationMessage({
    ...base,
    summary,
    error: { kind: 'permanent', message: 'e'.repeat(10_000) },
  });
  assert.ok(bytes(text) <= TERMINATION_MESSAGE_MAX_BYTES);
  const m = TerminationMessageSchema.parse(JSON.parse(text));
  assert.deepEqual(m.summary, { step: 7, loss: 0.5, log: 'l'.repeat(3000) }, 'only the 5000-byte entry had to go');
  assert.deepEqual(m.truncated, ['error.message', 'summary.notes']);
  assert.ok(m.error!.message.length > 500 && m.error!.message.endsWith('…'));
  // Many entries: the truncated list stays short.
  const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 'v'.repeat(40)]));
  const m2 = TerminationMessageSchema.parse(JSON.parse(encodeTerminationMessage({ ...base, summary: many })));
  assert.equal(m2.truncated!.length, 9);
  assert.match(m2.truncated![8], /^\+\d+ more$/);
  assert.ok(Object.keys(m2.summary).length > 50);
});

test("job mode in-process: signal → interrupted, 75, safe point's summary; bad spec/providers → failed 2", async () => {
  const logger = createLogger('fake', 'silent');
  const job = (spec: unknown, log: string, env: Record<string, string> = {}) =>
    runJobMode(fakeStage(), spec, {
      logger,
      port: 0,
      env: { [TERMINATION_LOG_ENV]: log, ...env },
      signals: ['SIGUSR2'],
      stderr: () => {},
    });
  const stopLog = join(dir, 'stop.log');
  // Signal once the stage reported its first step (so the interrupted summary has a step > 0).
  let stepped!: () => void;
  const firstStep = new Promise<void>((r) => (stepped = r));
  const stage = fakeStage();
  const run = stage.run.bind(stage);
  stage.run = (spec, ctx) =>
    run(
      spec,
      Object.assign(Object.create(ctx) as typeof ctx, {
        progress: (p: Parameters<typeof ctx.progress>[0]) => {
          ctx.progress(p);
          stepped();
        },
      }),
    );
  const running = runJobMode(
    stage,
    { out: dir, steps: 100_000, stepMs: 2 },
    {
      logger,
      port: 0,
      env: { [TERMINATION_LOG_ENV]: stopLog },
      signals: ['SIGUSR2'],
      stderr: () => {},
    },
  );
  await firstStep;
  process.emit('SIGUSR2', 'SIGUSR2');
  assert.equal(await running, 75);
  const m = read(stopLog);
  assert.deepEqual([m.stage, m.outcome, m.exitCode, m.error], ['train', 'interrupted', 75, undefined]);
  const step = m.summary.step as number;
  assert.ok(step > 0 && step < 100_000, `step ${step}`);
  assert.deepEqual(m.artifacts, { checkpoint: `${dir}/ckpt-${step}` });

  const badLog = join(dir, 'bad.log');
  assert.equal(await job({ out: dir, steps: -1 }, badLog), 2);
  const b = read(badLog);
  assert.deepEqual([b.outcome, b.exitCode, b.error?.kind, b.summary, b.artifacts], ['failed', 2, 'permanent', {}, {}]);
  assert.match(b.error!.message, /^invalid spec: steps/);
  assert.equal(await job({ out: dir }, badLog, { GET_DISTILL_EXECUTION_PROVIDERS: 'cuda,gpu' }), 2);
  assert.match(read(badLog).error!.message, /^GET_DISTILL_EXECUTION_PROVIDERS="cuda,gpu": unknown provider "gpu"/);
});

test('exporter job mode: done with the model sha256; a missing checkpoint: failed, permanent, exit 2', async () => {
  const store = storeFor(dir);
  const run = join(dir, 'run');
  await seedPairs(store, join(run, 'pairs'), 64, 32);
  const stream = await PairStream.open(store, join(run, 'pairs'), { batchSize: 16, seed: 0, dropLast: true });
  await trainStage(streamSource(stream), {
    config: resolveConfig('GET-CPU-XS/8', { numClasses: 10 }),
    steps: 2,
    batch: 16,
    iterations: 2,
    optimizer: REFERENCE_ADAMW,
    ema: { kind: 'constant', decay: 0.9 },
    seed: 0,
    store,
    checkpointDir: join(run, 'checkpoints'),
    checkpointEvery: 2,
    keep: 1,
    resume: false,
    dataManifestSha256: datasetDigest(stream.manifest),
    threads: 1,
  });
  const okLog = join(dir, 'export-ok.log');
  const failLog = join(dir, 'export-fail.log');
  const [ok, bad] = [
    startJob(
      'exporter',
      { checkpoint: join(run, 'checkpoints'), out: join(run, 'model') },
      { [TERMINATION_LOG_ENV]: okLog },
    ),
    startJob(
      'exporter',
      { checkpoint: join(run, 'nothing'), out: join(run, 'model2') },
      { [TERMINATION_LOG_ENV]: failLog },
    ),
  ];
  assert.equal(await ok.exited, 0, ok.stderr());
  const m = read(okLog);
  assert.deepEqual([m.stage, m.outcome, m.exitCode, m.error], ['export', 'done', 0, undefined]);
  assert.equal(m.summary.sha256, sha256Hex(readFileSync(join(run, 'model', 'model.onnx'))));
  assert.equal(m.summary.step, 2);
  assert.deepEqual(m.artifacts, { model: join(run, 'model', 'model.onnx'), card: join(run, 'model', 'model.json') });

  assert.equal(await bad.exited, 2, bad.stderr());
  const f = read(failLog);
  assert.deepEqual(
    [f.stage, f.outcome, f.exitCode, f.error?.kind, f.summary, f.artifacts],
    ['export', 'failed', 2, 'permanent', {}, {}],
  );
  assert.match(f.error!.message, /^checkpoint: .*nothing: no checkpoint there/);
});

test('get-distill eval: stage eval with fid, inceptionScore, precision, recall, samples; bad input: failed, 2', () => {
  const cli = (args: string[], log: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'eval', ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, GET_DISTILL_PUSHGATEWAY_URL: '', [TERMINATION_LOG_ENV]: log },
    });
  const log = join(dir, 'eval.log');
  const out = join(dir, 'eval.json');
  const r = cli(
    [
      '--model',
      'mnist:test',
      '--reference',
      'mnist:test',
      '--samples',
      '200',
      '--reference-samples',
      '200',
      '--splits',
      '2',
      '--out',
      out,
    ],
    log,
  );
  assert.equal(r.status, 0, r.stderr);
  const m = read(log);
  const rep = JSON.parse(readFileSync(out, 'utf8'));
  assert.deepEqual([m.stage, m.outcome, m.exitCode, m.artifacts], ['eval', 'done', 0, { report: out }]);
  assert.deepEqual(m.summary, {
    fid: rep.scores.fid,
    inceptionScore: rep.scores.inceptionScore.mean,
    precision: 1,
    recall: 1,
    samples: 200,
  });
  assert.ok(Math.abs(m.summary.fid as number) < 1e-6, 'a split against itself');

  const badLog = join(dir, 'eval-bad.log');
  const bad = cli(['--model', join(dir, 'missing.onnx'), '--samples', '200'], badLog);
  assert.equal(bad.status, 2, bad.stderr);
  const f = read(badLog);
  assert.deepEqual([f.stage, f.outcome, f.exitCode, f.error?.kind, f.summary], ['eval', 'failed', 2, 'permanent', {}]);
  assert.ok(bad.stderr.includes(f.error!.message.slice(0, 40)), `${bad.stderr} vs ${f.error!.message}`);
});
