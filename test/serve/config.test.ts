/**
 * The serve configuration (src/serve/config.ts): defaults, flags over environment, one-line errors
 * naming the flag or variable, and the session/thread plan (no oversubscription).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envOf, flagOf, parseBytes, resolveServeConfig } from '../../src/serve/config.js';
import { threadsPerSession } from '../../src/serve/pool.js';
import { UsageError } from '../../src/util/errors.js';

test('defaults: port 8080 on 127.0.0.1, batch 32, delay 5 ms, queue 256, 16 images, 30 s, 1 session, 8 MiB', () => {
  assert.deepEqual(resolveServeConfig({ model: 'm.onnx' }), {
    model: 'm.onnx',
    modelName: 'get',
    host: '127.0.0.1',
    port: 8080,
    maxBatchSize: 32,
    maxQueueDelayMs: 5,
    maxQueueSize: 256,
    maxImagesPerRequest: 16,
    requestTimeoutMs: 30000,
    sessions: 1,
    bodyLimit: 8 * 1024 * 1024,
    shutdownGraceMs: 30000,
    logLevel: 'info',
  });
});

test('flags beat environment variables, which beat defaults; strings are coerced', () => {
  const env = {
    GET_DISTILL_MODEL: 's3://bucket/run/model.onnx',
    GET_DISTILL_PORT: '9000',
    GET_DISTILL_MAX_BATCH_SIZE: '64',
    GET_DISTILL_HOST: '0.0.0.0',
  };
  const c = resolveServeConfig({ port: '9100', bodyLimit: '512kb' }, env);
  assert.equal(c.model, 's3://bucket/run/model.onnx');
  assert.equal(c.port, 9100);
  assert.equal(c.maxBatchSize, 64);
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.bodyLimit, 512 * 1024);
  assert.equal(flagOf('maxQueueDelayMs'), '--max-queue-delay-ms');
  assert.equal(envOf('maxQueueDelayMs'), 'GET_DISTILL_MAX_QUEUE_DELAY_MS');
});

test('bad values → UsageError, one line naming the flag or variable and the value', () => {
  const cases: [Record<string, unknown>, Record<string, string>, RegExp][] = [
    [{}, {}, /^--model \(or GET_DISTILL_MODEL\) is required/],
    [{ model: 'ftp://x/m.onnx' }, {}, /^--model .*unknown URI scheme "ftp:\/\/"/],
    [{ model: 'm', port: 'http' }, {}, /^--port must be an integer in \[0, 65535\] \(got "http"\)$/],
    [
      { model: 'm' },
      { GET_DISTILL_MAX_BATCH_SIZE: '0' },
      /^GET_DISTILL_MAX_BATCH_SIZE must be an integer in \[1, 4096\] \(got "0"\)$/,
    ],
    [{ model: 'm', maxImagesPerRequest: '64' }, {}, /^--max-images-per-request exceeds --max-batch-size 32/],
    [{ model: 'm', bodyLimit: 'lots' }, {}, /^--body-limit must be a size such as 8mb/],
    [{ model: 'm', sessions: '1.5' }, {}, /^--sessions must be an integer/],
    [{ model: 'm', logLevel: 'loud' }, {}, /^--log-level must be one of fatal, error/],
    [{ model: 'm', modelName: 'a/b' }, {}, /^--model-name must be 1–64 letters/],
    [{ model: 'm', colour: 'red' }, {}, /^unknown option --colour$/],
  ];
  for (const [flags, env, re] of cases) {
    assert.throws(
      () => resolveServeConfig(flags, env),
      (e: Error) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n'),
      `${JSON.stringify(flags)} ${JSON.stringify(env)}`,
    );
  }
});

test('parseBytes: 1024-based units, plain byte counts, garbage → null', () => {
  assert.equal(parseBytes('8mb'), 8388608);
  assert.equal(parseBytes('1.5KB'), 1536);
  assert.equal(parseBytes('1gb'), 1073741824);
  assert.equal(parseBytes('4096'), 4096);
  assert.equal(parseBytes('8 mb'), 8388608);
  assert.equal(parseBytes('8m'), null);
  assert.equal(parseBytes('-1kb'), null);
});

test('sessions × threads never exceeds the cores: floor(cores / sessions); more sessions than cores is refused', () => {
  assert.equal(threadsPerSession(1, 2), 2);
  assert.equal(threadsPerSession(2, 2), 1);
  assert.equal(threadsPerSession(3, 16), 5);
  assert.equal(threadsPerSession(4, 64), 16);
  assert.throws(() => threadsPerSession(3, 2), /--sessions 3 exceeds the 2 usable CPU cores .* use --sessions ≤ 2/);
});
