/**
 * Error classification (src/service/error-class.ts): which failures a Kubernetes Job should retry (exit 75)
 * and which are permanent (exit 2), on real errors from the stores, zod and the abort machinery.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { classifyError, exitCodeOf } from '../../src/service/error-class.js';
import { EXIT_PERMANENT, EXIT_RETRYABLE } from '../../src/jobs/types.js';
import { Interrupted } from '../../src/util/errors.js';
import { StoreError, storeFor, type StoreErrorCode } from '../../src/store/index.js';
import { UsageError } from '../../src/util/errors.js';
import { unreachableS3Env } from './helpers.js';

const brief = (e: unknown) => {
  const c = classifyError(e);
  return [c.class, c.exitCode, c.reason] as const;
};

test('exit codes: permanent → 2, retryable → 75', () => {
  assert.equal(exitCodeOf('permanent'), EXIT_PERMANENT);
  assert.equal(exitCodeOf('retryable'), EXIT_RETRYABLE);
  assert.deepEqual([EXIT_PERMANENT, EXIT_RETRYABLE], [2, 75]);
});

test('StoreError codes: Unreachable and Aborted retry; missing, denied, misconfigured and bad URIs do not', () => {
  const want: Record<StoreErrorCode, 'permanent' | 'retryable'> = {
    Unreachable: 'retryable',
    Aborted: 'retryable',
    NotFound: 'permanent',
    NoSuchBucket: 'permanent',
    AccessDenied: 'permanent',
    Config: 'permanent',
    BadUri: 'permanent',
    UnknownScheme: 'permanent',
    OutsideRoot: 'permanent',
    Io: 'permanent',
  };
  for (const [code, cls] of Object.entries(want) as [StoreErrorCode, string][]) {
    const c = classifyError(new StoreError(code, 's3://b/run/x.bin', 'something'));
    assert.deepEqual([c.class, c.reason, c.message], [cls, code, 's3://b/run/x.bin: something'], code);
  }
});

test('Io: a 5xx/429 answer, a timeout or a reset in the cause → retryable; a folder-not-object → permanent', () => {
  const withCause = (cause: unknown) => new StoreError('Io', 's3://b/k', 'put failed', { cause });
  assert.deepEqual(
    brief(withCause(Object.assign(new Error('busy'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }))),
    ['retryable', 75, 'Io'],
  );
  assert.deepEqual(brief(withCause(Object.assign(new Error('x'), { $metadata: { httpStatusCode: 429 } }))), [
    'retryable',
    75,
    'Io',
  ]);
  assert.deepEqual(brief(withCause(Object.assign(new Error('x'), { $metadata: { httpStatusCode: 500 } }))), [
    'retryable',
    75,
    'Io',
  ]);
  assert.deepEqual(brief(withCause(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))), [
    'retryable',
    75,
    'Io',
  ]);
  assert.deepEqual(brief(withCause(Object.assign(new Error('x'), { $metadata: { httpStatusCode: 400 } }))), [
    'permanent',
    2,
    'Io',
  ]);
  assert.deepEqual(brief(withCause(Object.assign(new Error('is a folder'), { code: 'EISDIR' }))), [
    'permanent',
    2,
    'Io',
  ]);
});

test('real store errors: an S3 endpoint that refuses → retryable; a missing local object → permanent', async () => {
  Object.assign(process.env, await unreachableS3Env());
  const s3 = await storeFor('s3://bucket/run')
    .get('s3://bucket/run/a.bin')
    .catch((e: unknown) => e);
  assert.ok(s3 instanceof StoreError && s3.code === 'Unreachable', String(s3));
  assert.deepEqual(brief(s3), ['retryable', 75, 'Unreachable']);
  const dir = mkdtempSync(join(tmpdir(), 'get-errors-'));
  try {
    const local = await storeFor(dir)
      .get(join(dir, 'absent.bin'))
      .catch((e: unknown) => e);
    assert.deepEqual(brief(local), ['permanent', 2, 'NotFound']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a StoreError inside a cause chain keeps its class and the outer message', () => {
  const inner = new StoreError(
    'Unreachable',
    's3://b/teacher.onnx',
    'cannot reach S3 endpoint http://s3:7480 (ECONNREFUSED)',
  );
  const outer = new UsageError('loading the teacher: s3://b/teacher.onnx unreachable', { cause: inner });
  const c = classifyError(new Error('datagen failed', { cause: outer }));
  assert.deepEqual([c.class, c.reason, c.message], ['retryable', 'Unreachable', 'datagen failed']);
});

test('interrupted or aborted runs retry; UsageError, ZodError are permanent; unknown errors: bugs (permanent)', () => {
  assert.deepEqual(brief(new Interrupted('SIGTERM at step 40: checkpoint saved')), ['retryable', 75, 'interrupted']);
  const ac = new AbortController();
  ac.abort();
  let aborted: unknown;
  try {
    ac.signal.throwIfAborted();
  } catch (e) {
    aborted = e;
  }
  assert.deepEqual(brief(aborted), ['retryable', 75, 'interrupted']);
  assert.deepEqual(brief(new UsageError('--teacher: not an EDM denoiser')), ['permanent', 2, 'usage']);
  const zod = z
    .object({ seeds: z.object({ end: z.number() }) })
    .strict()
    .safeParse({ seeds: { end: 'x' }, extra: 1 }).error!;
  const c = classifyError(zod);
  assert.deepEqual([c.class, c.reason], ['permanent', 'spec']);
  assert.equal(
    c.message,
    'invalid spec: seeds.end: Invalid input: expected number, received string; spec: unknown field "extra"',
  );
  assert.deepEqual(brief(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), [
    'retryable',
    75,
    'network',
  ]);
  const bug = classifyError(new TypeError('x.shape is undefined\n    at f (a.ts:1:1)'));
  assert.deepEqual([bug.class, bug.exitCode, bug.reason], ['permanent', 2, 'internal']);
  assert.equal(
    bug.message,
    'internal error (a bug; the log has the stack): TypeError: x.shape is undefined at f (a.ts:1:1)',
    'one line',
  );
  assert.deepEqual(brief('a thrown string'), ['permanent', 2, 'internal']);
  assert.deepEqual(brief(undefined), ['permanent', 2, 'internal']);
});
