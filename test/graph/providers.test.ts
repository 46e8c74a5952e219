/**
 * onnxruntime execution providers (src/graph/providers.ts): GET_DISTILL_EXECUTION_PROVIDERS parsing and
 * its errors; the GPU → CPU fallback with one warning per process, on a stub and for real on this
 * CPU-only machine (onnxruntime-node 1.30 without its CUDA libraries throws "Failed to load shared
 * library"); float64 graphs on the fallback session; the inference pool's worker threads reporting the
 * fallback once on the service's pino logger.
 */
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { pino } from 'pino';
import { readModelInfo } from '../../src/get/export.js';
import { Graph } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import * as op from '../../src/graph/ops.js';
import {
  createWithProviderFallback,
  EXECUTION_PROVIDERS_ENV,
  parseExecutionProviders,
  type ProviderFallback,
  resetProviderFallbackState,
  resolveExecutionProviders,
  setProviderWarningSink,
} from '../../src/graph/providers.js';
import { f64, OrtSession } from '../../src/graph/session.js';
import { OrtWorkerPool } from '../../src/serve/pool.js';
import { seedSamples } from '../../src/get/seeded.js';
import { UsageError } from '../../src/util/errors.js';
import { CONDITIONAL, modelBytes } from '../serve/helpers.js';

let warnings: ProviderFallback[];
beforeEach(() => {
  resetProviderFallbackState();
  warnings = [];
  setProviderWarningSink((f) => warnings.push(f));
  delete process.env[EXECUTION_PROVIDERS_ENV];
});

test('parsing: comma list, case and spaces ignored, repeats dropped; default cpu when unset or blank', () => {
  assert.deepEqual(parseExecutionProviders('cuda,cpu'), ['cuda', 'cpu']);
  assert.deepEqual(parseExecutionProviders(' CUDA , cpu,cuda '), ['cuda', 'cpu']);
  assert.deepEqual(parseExecutionProviders('tensorrt,cuda,cpu'), ['tensorrt', 'cuda', 'cpu']);
  assert.deepEqual(resolveExecutionProviders({}), ['cpu']);
  assert.deepEqual(resolveExecutionProviders({ [EXECUTION_PROVIDERS_ENV]: '  ' }), ['cpu']);
  assert.deepEqual(resolveExecutionProviders({ [EXECUTION_PROVIDERS_ENV]: 'cuda,cpu' }), ['cuda', 'cpu']);
});

test('invalid names: a UsageError naming the variable, the entry and the allowed values', () => {
  const bad = (v: string, re: RegExp) =>
    assert.throws(
      () => resolveExecutionProviders({ [EXECUTION_PROVIDERS_ENV]: v }),
      (e: Error) => e instanceof UsageError && re.test(e.message),
      v,
    );
  bad(
    'gpu,cpu',
    /^GET_DISTILL_EXECUTION_PROVIDERS="gpu,cpu": unknown provider "gpu"; give a comma list of cuda, tensorrt, cpu/,
  );
  bad('cuda,,cpu', /GET_DISTILL_EXECUTION_PROVIDERS="cuda,,cpu": an empty entry/);
  bad('webgpu', /unknown provider "webgpu"/); // bundled in onnxruntime-node, but not a provider this project supports
  assert.throws(
    () => parseExecutionProviders('dml', '--providers'),
    /^UsageError: --providers="dml": unknown provider "dml"/,
  );
});

test('stub fallback: one warning per process, then cpu directly; cpu-less lists and model errors throw', async () => {
  const tried: string[] = [];
  const create = async (eps: readonly string[]) => {
    tried.push(eps.join(','));
    if (eps.includes('cuda'))
      throw new Error('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library\nsecond line');
    return eps.join(',');
  };
  const a = await createWithProviderFallback(['cuda', 'cpu'], create);
  const b = await createWithProviderFallback(['cuda', 'cpu'], create);
  assert.deepEqual([a.value, a.providers, b.value], ['cpu', ['cpu'], 'cpu']);
  assert.deepEqual(tried, ['cuda,cpu', 'cpu', 'cpu'], 'the second session does not retry cuda');
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].failed, 'cuda');
  assert.equal(warnings[0].reason, 'OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library');
  assert.equal(
    warnings[0].message,
    'onnxruntime execution provider cuda failed (OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to ' +
      'load shared library); using cpu. Set GET_DISTILL_EXECUTION_PROVIDERS=cpu to skip the attempt',
  );
  // A callback (worker threads) receives the fallback instead of the process warning.
  const got: ProviderFallback[] = [];
  await createWithProviderFallback(
    ['tensorrt', 'cpu'],
    async (eps) => {
      if (eps.includes('tensorrt'))
        throw new Error('OrtSessionOptionsAppendExecutionProvider_TensorRT: Failed to load shared library');
      return 1;
    },
    (f) => got.push(f),
  );
  assert.deepEqual([got.length, got[0].failed, warnings.length], [1, 'tensorrt', 1]);
  // `cuda` alone: GPU or nothing.
  await assert.rejects(
    createWithProviderFallback(['cuda'], create),
    new RegExp(
      'onnxruntime session with providers cuda failed \\(OrtSessionOptionsAppendExecutionProvider_Cuda: ' +
        'Failed to load shared library\\); when the provider is unavailable, add cpu to ' +
        'GET_DISTILL_EXECUTION_PROVIDERS \\(e\\.g\\. cuda,cpu\\)',
    ),
  );
  // A model CPU rejects too: CPU's error, no warning.
  resetProviderFallbackState();
  setProviderWarningSink((f) => warnings.push(f));
  await assert.rejects(
    createWithProviderFallback(['cuda', 'cpu'], async () => {
      throw new Error('Load model failed: bad node');
    }),
    /^Error: Load model failed: bad node$/,
  );
  assert.equal(warnings.length, 1);
});

/** y = a·b in float64 (CUDA lacks some float64 kernels; onnxruntime places those nodes on CPU). */
function matmulF64(): Uint8Array {
  const g = new Graph();
  const y = op.matmul(g.input('a', 'float64', [2, 2]), g.input('b', 'float64', [2, 2]));
  return toOnnx(g, { outputs: { y } });
}

test(`${EXECUTION_PROVIDERS_ENV}=cuda,cpu here: a working session, one fallback warning; cpu alone: none`, async () => {
  process.env[EXECUTION_PROVIDERS_ENV] = 'cuda,cpu';
  const model = matmulF64();
  const feeds = {
    a: f64([2, 2], new Float64Array([1, 2, 3, 4])),
    b: f64([2, 2], new Float64Array([0.5, -1, 2, 0.25])),
  };
  for (let i = 0; i < 2; i++) {
    const s = await OrtSession.create(model, { threads: 1 });
    assert.deepEqual(Array.from((await s.run(feeds)).y.data as Float64Array), [4.5, -0.5, 9.5, -2]);
    // With the CUDA libraries present: ['cuda', 'cpu'] and no warning.
    if (warnings.length > 0) assert.deepEqual(s.executionProviders, ['cpu']);
    await s.release();
  }
  assert.equal(warnings.length, 1, 'the CUDA libraries are not installed on the test machine');
  assert.match(warnings[0].message, /^onnxruntime execution provider cuda failed \(.*Cuda.*\); using cpu\./);

  resetProviderFallbackState();
  setProviderWarningSink((f) => warnings.push(f));
  warnings = [];
  process.env[EXECUTION_PROVIDERS_ENV] = 'cpu';
  const s = await OrtSession.create(model, { threads: 1 });
  assert.deepEqual(s.executionProviders, ['cpu']);
  assert.deepEqual(Array.from((await s.run(feeds)).y.data as Float64Array), [4.5, -0.5, 9.5, -2]);
  await s.release();
  assert.equal(warnings.length, 0);
  process.env[EXECUTION_PROVIDERS_ENV] = 'cuda,gpu';
  await assert.rejects(OrtSession.create(model), UsageError);
});

test('inference pool: two worker sessions on cuda,cpu fall back and log ONE pino warning', async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const bytes = modelBytes(CONDITIONAL);
  const pool = await OrtWorkerPool.create(
    { bytes, info: readModelInfo(bytes, 'model.onnx') },
    { sessions: 2, threads: 1, logger, executionProviders: ['cuda', 'cpu'] },
  );
  try {
    const out = await pool.run([{ samples: seedSamples(7, 1, [3]) }]);
    assert.equal(out[0].image.length, 1024);
    assert.ok(Array.from(out[0].image).every(Number.isFinite));
  } finally {
    await pool.close();
  }
  const warn = lines.filter((l) => l.level === 40);
  assert.equal(warn.length, 1, JSON.stringify(lines));
  assert.equal(warn[0].provider, 'cuda');
  assert.match(String(warn[0].msg), /^onnxruntime execution provider cuda failed \(.*\); using cpu/);
  assert.equal(warnings.length, 0, 'the pool logs on its logger, not the default sink');
});
