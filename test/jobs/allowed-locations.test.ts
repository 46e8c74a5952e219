/**
 * GET_DISTILL_ALLOWED_LOCATIONS confines every URI of a stage spec: local paths are resolved first, so
 * `..` and `%2e%2e` in file:// URLs cannot leave the allowed folders; S3 prefixes match whole segments.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALLOWED_LOCATIONS_ENV, locationAllowed } from '../../src/jobs/stages/common.js';
import { ExportSpecSchema } from '../../src/jobs/stages/export.js';

const env = (v: string) => ({ [ALLOWED_LOCATIONS_ENV]: v });

test('unset: every location is allowed', () => {
  assert.equal(locationAllowed('/etc/x', {}), true);
});

test('local paths are resolved before the prefix check', () => {
  const e = env('/srv/runs, s3://bucket/runs');
  assert.equal(locationAllowed('/srv/runs/a/model.onnx', e), true);
  assert.equal(locationAllowed('/srv/runs', e), true);
  assert.equal(locationAllowed('/srv/runs/../etc', e), false);
  assert.equal(locationAllowed('file:///srv/runs/%2e%2e/etc', e), false);
  assert.equal(locationAllowed('/srv/runs2/x', e), false);
  assert.equal(locationAllowed('s3://bucket/runs/r1/checkpoints', e), true);
  assert.equal(locationAllowed('s3://bucket/runs2/x', e), false);
  assert.equal(locationAllowed('s3://other/runs/x', e), false);
});

test('a spec field outside the allowed locations is a 400-style schema error naming the field', () => {
  process.env[ALLOWED_LOCATIONS_ENV] = '/srv/runs';
  try {
    const r = ExportSpecSchema.safeParse({ checkpoint: '/srv/runs/c', out: '../../tmp/x' });
    assert.equal(r.success, false);
    assert.deepEqual(
      r.error!.issues.map((i) => i.path.join('.')),
      ['out'],
    );
    assert.match(r.error!.issues[0].message, /is outside the locations this worker may use/);
    assert.equal(ExportSpecSchema.safeParse({ checkpoint: '/srv/runs/c', out: '/srv/runs/m' }).success, true);
  } finally {
    delete process.env[ALLOWED_LOCATIONS_ENV];
  }
});
