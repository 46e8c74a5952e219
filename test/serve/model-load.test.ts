/**
 * Loading the served model through the object store: a plain path, a file:// URL and s3:// (the local
 * Ceph RADOS Gateway that `npm test` starts; scripts/s3-server.sh) give the same bytes and version,
 * and a service started from s3:// makes the same PNG as one started from a file. Bad models fail
 * with a UsageError naming the URI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Graph } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import * as op from '../../src/graph/ops.js';
import { loadModel } from '../../src/serve/model.js';
import { S3Store, StoreError } from '../../src/store/index.js';
import { UsageError } from '../../src/util/errors.js';
import { sha256Hex } from '../../src/util/fsutil.js';
import { loadS3Env, uniqueBucket } from '../store/s3-env.js';
import { CONDITIONAL, modelPath, postJson, startServer, writeTemp } from './helpers.js';

test('plain path and file:// URL load the same model: version = sha256[0:12], config from metadata', async () => {
  const path = modelPath('conditional');
  const sha = sha256Hex(readFileSync(path));
  const a = await loadModel(path, 'get');
  const b = await loadModel(pathToFileURL(path).href, 'digits');
  assert.equal(a.sha256, sha);
  assert.equal(a.version, sha.slice(0, 12));
  assert.equal(b.version, a.version);
  assert.equal(b.name, 'digits');
  assert.deepEqual(a.info.config, CONDITIONAL);
  assert.equal(a.info.tokens, 16);
  assert.equal(a.info.step, 1234);
});

test('s3:// model: same version as the file, and the service serves the same PNG from it', async () => {
  loadS3Env();
  const root = `s3://${uniqueBucket('serve')}/models`;
  const store = new S3Store(root);
  await store.ensureBucket();
  const uri = `${root}/model.onnx`;
  await store.put(uri, readFileSync(modelPath('conditional')));
  const m = await loadModel(uri, 'get');
  assert.equal(m.sha256, sha256Hex(readFileSync(modelPath('conditional'))));

  const [fromS3, fromFile] = await Promise.all([startServer({ model: uri }), startServer()]);
  try {
    const body = { seed: 77, class_label: 4 };
    const [x, y] = await Promise.all([
      postJson(`${fromS3.url}/v1/images/generations`, body),
      postJson(`${fromFile.url}/v1/images/generations`, body),
    ]);
    assert.equal(x.status, 200);
    assert.equal(x.body.data[0].b64_json, y.body.data[0].b64_json);
  } finally {
    await Promise.all([fromS3.close(), fromFile.close()]);
  }
});

test('missing, non-ONNX and non-GET models → UsageError naming the URI', async () => {
  await assert.rejects(
    loadModel('/nonexistent/model.onnx', 'get'),
    (e: Error) => e instanceof StoreError && e.code === 'NotFound' && /\/nonexistent\/model\.onnx/.test(e.message),
  );
  const junk = writeTemp(new Uint8Array([8, 1, 2, 3]), 'junk.onnx');
  await assert.rejects(
    loadModel(junk, 'get'),
    (e: Error) => e instanceof UsageError && e.message.startsWith(`${junk}: not an ONNX model`),
  );
  // A valid ONNX model that is not a GET Distill export (y = a + b).
  const g = new Graph('sum');
  const y = op.add(g.input('a', 'float32', [2]), g.input('b', 'float32', [2]));
  const other = writeTemp(toOnnx(g, { outputs: { y } }), 'sum.onnx');
  await assert.rejects(
    loadModel(other, 'get'),
    (e: Error) =>
      e instanceof UsageError &&
      e.message.startsWith(`${other}: not a GET Distill export`) &&
      /get-distill export/.test(e.message),
  );
});
