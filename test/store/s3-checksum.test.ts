/**
 * The S3 checksum mode is the standard variables' (AWS_REQUEST_CHECKSUM_CALCULATION,
 * AWS_RESPONSE_CHECKSUM_VALIDATION), WHEN_REQUIRED by default; an unknown value is a Config error naming
 * the variable. The operator passes its chart values on to every stage and endpoint pod.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createS3Client, StoreError } from '../../src/store/index.js';
import { storeEnv } from '../../src/operator/controllers/pod.js';

async function modes(env: Record<string, string | undefined>): Promise<[string, string]> {
  const saved = { ...process.env };
  try {
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    const c = createS3Client({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1' });
    const r = [await c.config.requestChecksumCalculation(), await c.config.responseChecksumValidation()] as [
      string,
      string,
    ];
    c.destroy();
    return r;
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

test('checksum modes: WHEN_REQUIRED by default, the standard variables when set (any case)', async () => {
  const none = { AWS_REQUEST_CHECKSUM_CALCULATION: undefined, AWS_RESPONSE_CHECKSUM_VALIDATION: undefined };
  assert.deepEqual(await modes(none), ['WHEN_REQUIRED', 'WHEN_REQUIRED']);
  assert.deepEqual(
    await modes({ AWS_REQUEST_CHECKSUM_CALCULATION: 'when_supported', AWS_RESPONSE_CHECKSUM_VALIDATION: undefined }),
    ['WHEN_SUPPORTED', 'WHEN_REQUIRED'],
  );
  assert.deepEqual(
    await modes({ AWS_REQUEST_CHECKSUM_CALCULATION: undefined, AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_SUPPORTED' }),
    ['WHEN_REQUIRED', 'WHEN_SUPPORTED'],
  );
  await assert.rejects(
    modes({ AWS_REQUEST_CHECKSUM_CALCULATION: 'always' }),
    (e: Error) =>
      e instanceof StoreError &&
      e.code === 'Config' &&
      e.message === 'AWS_REQUEST_CHECKSUM_CALCULATION: must be WHEN_REQUIRED or WHEN_SUPPORTED, got "always"',
  );
});

test('the operator gives stage and endpoint pods the chart’s checksum modes, and nothing when unset', () => {
  const env = storeEnv(undefined, {
    s3Endpoint: 'http://rgw:7480',
    s3RequestChecksumCalculation: 'WHEN_SUPPORTED',
    s3ResponseChecksumValidation: 'WHEN_SUPPORTED',
  });
  assert.deepEqual(
    env.filter((e) => e.name.startsWith('AWS_')),
    [
      { name: 'AWS_REQUEST_CHECKSUM_CALCULATION', value: 'WHEN_SUPPORTED' },
      { name: 'AWS_RESPONSE_CHECKSUM_VALIDATION', value: 'WHEN_SUPPORTED' },
    ],
  );
  assert.deepEqual(
    storeEnv(undefined, { s3Endpoint: undefined }).filter((e) => e.name.startsWith('AWS_')),
    [],
  );
});
