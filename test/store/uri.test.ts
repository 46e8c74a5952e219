/** parentUri and joinUri: the key arithmetic every stage uses to name objects under a run. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { StoreError, joinUri, parentUri, parseUri } from '../../src/store/index.js';

test('parentUri gives the folder or prefix holding an object, in the style it was given', () => {
  assert.equal(parentUri('s3://bkt/run1/model.onnx'), 's3://bkt/run1');
  assert.equal(parentUri('s3://bkt/model.onnx'), 's3://bkt');
  assert.equal(parentUri('file:///data/t.onnx'), 'file:///data');
  assert.equal(parentUri('file:///t.onnx'), 'file:///');
  assert.equal(parentUri('runs/a/b.onnx'), 'runs/a');
  assert.equal(parentUri('model.onnx'), '.');
  assert.equal(resolve(parentUri('model.onnx')), process.cwd());
  for (const bad of ['s3://bkt', 's3://bkt/', 'file:///']) {
    assert.throws(
      () => parentUri(bad),
      (e: unknown) => e instanceof StoreError && e.code === 'BadUri' && e.message.startsWith(bad),
    );
  }
});

test('joinUri appends keys and refuses absolute parts and ".." segments', () => {
  assert.equal(joinUri('s3://bkt/run1', 'pairs', 'manifest.json'), 's3://bkt/run1/pairs/manifest.json');
  assert.equal(joinUri('s3://bkt/run1/', 'x'), 's3://bkt/run1/x');
  assert.equal(joinUri('runs/a', ''), 'runs/a');
  assert.throws(
    () => joinUri('runs/a', '../b'),
    (e: unknown) => e instanceof StoreError && e.code === 'OutsideRoot',
  );
  assert.throws(
    () => joinUri('runs/a', '/etc/passwd'),
    (e: unknown) => e instanceof StoreError && e.code === 'BadUri',
  );
  assert.throws(
    () => joinUri('runs/a', 's3://other/x'),
    (e: unknown) => e instanceof StoreError && e.code === 'BadUri',
  );
});

test('scheme typos, invalid bucket names and empty key segments are refused, naming the URI', () => {
  const bad = (uri: string, re: RegExp) =>
    assert.throws(
      () => parseUri(uri),
      (e: unknown) => e instanceof StoreError && e.code === 'BadUri' && e.message.startsWith(uri) && re.test(e.message),
      uri,
    );
  bad('s3:/bucket/x', /has the scheme "s3:" but no '\/\/'/);
  bad('s3:bucket/x', /has the scheme "s3:"/);
  bad('file:/tmp/x', /has the scheme "file:"/);
  for (const b of ['1.2.3.4', 'a..b', 'xn--abc', 'Bucket', 'ab', 'my_bucket'])
    bad(`s3://${b}/x`, /is not a valid S3 bucket name/);
  bad('s3://bucket//x', /empty segments/);
  bad(`s3://bucket/${'k'.repeat(1000)}`, /the key is 1000 bytes/);
  assert.deepEqual(parseUri('s3://bucket/x/'), { scheme: 's3', bucket: 'bucket', key: 'x/' });
  assert.equal(parseUri('./s3:x').scheme, 'file'); // a local name with a colon stays possible
});
