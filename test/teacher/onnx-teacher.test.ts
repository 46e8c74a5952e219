import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Denoiser } from '../../src/edm/denoiser.js';
import { heunSample } from '../../src/edm/heun.js';
import { type Dim, Graph } from '../../src/graph/ir.js';
import { toOnnx } from '../../src/graph/onnx.js';
import * as op from '../../src/graph/ops.js';
import { storeFor } from '../../src/store/index.js';
import { OnnxEdmTeacher, inspectEdmModel } from '../../src/teacher/onnx-teacher.js';

const SHAPE = { channels: 2, height: 2, width: 3 };
const P = 12;
const A = 0.7; // F = A·x_in + B·c_noise + table[y]
const B = -0.3;
const TABLE = [0.25, -0.5, 1.5];

interface ModelSpec {
  conditional?: boolean;
  batch?: Dim;
  xName?: string;
  outName?: string;
  xType?: 'float32' | 'float64';
  dims?: Dim[];
  metadata?: Record<string, string>;
}

/** A tiny EDM-style network in the project IR: F(x_in; c_noise, y) = A·x_in + B·c_noise + TABLE[y]. */
function buildModel(spec: ModelSpec = {}): Uint8Array {
  const g = new Graph('toy_edm');
  const batch = spec.batch ?? 'batch';
  const x = g.input(spec.xName ?? 'x', spec.xType ?? 'float32', spec.dims ?? [batch, 2, 2, 3]);
  const cn = g.input('c_noise', 'float32', [batch]);
  const xf = spec.xType === 'float64' ? op.cast(x, 'float32') : x;
  let f = op.add(op.mul(xf, op.scalar(xf, A)), op.mul(op.reshape(cn, [batch, 1, 1, 1]), op.scalar(xf, B)));
  if (spec.conditional) {
    const y = g.input('class_labels', 'int64', [batch]);
    const table = g.constant({ dtype: 'float32', dims: [3, 1], data: Float32Array.from(TABLE) }, 'table');
    f = op.add(f, op.reshape(op.matmul(op.oneHot(y, 3), table), [batch, 1, 1, 1]));
  }
  return toOnnx(g, { outputs: { [spec.outName ?? 'F']: f }, metadata: spec.metadata });
}

/** The same D in float64: c_skip·x + c_out·(A·c_in·x + B·ln(σ)/4 + TABLE[y]), σ_data = 0.5. */
function closedForm(conditional: boolean): Denoiser {
  return {
    id: 'closed-form',
    shape: SHAPE,
    numClasses: conditional ? 3 : 0,
    async denoise(x, sigma, labels) {
      const s2 = sigma * sigma;
      const [cSkip, cOut, cIn] = [0.25 / (s2 + 0.25), (sigma * 0.5) / Math.sqrt(s2 + 0.25), 1 / Math.sqrt(s2 + 0.25)];
      return x.map(
        (v, j) =>
          cSkip * v +
          cOut * (A * cIn * v + (B * Math.log(sigma)) / 4 + (conditional ? TABLE[labels![Math.floor(j / P)]] : 0)),
      );
    },
  };
}

const ramp = (n: number, scale: number) => Float64Array.from({ length: n }, (_, i) => scale * Math.sin(1.3 * i + 0.4));

function assertClose(got: Float64Array, want: Float64Array, tol: number, what: string): void {
  assert.equal(got.length, want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++)
    worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  assert.ok(worst < tol, `${what}: worst error ${worst}`);
}

test('OnnxEdmTeacher unconditional [B=3, 2×2×3]: D equals the EDM-preconditioned closed form', async () => {
  const t = await OnnxEdmTeacher.fromBytes(buildModel());
  try {
    assert.deepEqual(t.shape, SHAPE);
    assert.equal(t.numClasses, 0);
    assert.match(t.id, /^onnx-edm-[0-9a-f]{12}$/);
    const ref = closedForm(false);
    for (const sigma of [80, 1, 0.002]) {
      const x = ramp(3 * P, sigma + 0.5);
      assertClose(await t.denoise(x, sigma, null, 3), await ref.denoise(x, sigma, null, 3), 1e-6, `sigma ${sigma}`);
    }
  } finally {
    await t.close();
  }
});

test('OnnxEdmTeacher conditional (classes from metadata, maxBatch 2 over B=5): D and Heun match float64', async () => {
  const t = await OnnxEdmTeacher.fromBytes(buildModel({ conditional: true, metadata: { num_classes: '3' } }), {
    maxBatch: 2,
  });
  try {
    assert.equal(t.numClasses, 3);
    const ref = closedForm(true);
    const labels = Int32Array.of(2, 0, 1, 1, 2);
    const x = ramp(5 * P, 3);
    assertClose(await t.denoise(x, 0.8, labels, 5), await ref.denoise(x, 0.8, labels, 5), 1e-6, 'D at sigma 0.8');
    const noise = ramp(5 * P, 1);
    // float32 F with 35 NFE: agreement to float32 rounding accumulated over the trajectory.
    assertClose(await heunSample(t, noise, labels, 5), await heunSample(ref, noise, labels, 5), 1e-5, 'Heun 18 steps');
    await assert.rejects(t.denoise(x, 0.8, null, 5), /needs labels/);
  } finally {
    await t.close();
  }
});

test('OnnxEdmTeacher: a fixed-batch model (B=2) serves B=3 in padded chunks; load() reads a file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'onnx-teacher-'));
  try {
    const path = join(dir, 'teacher.onnx');
    await writeFile(path, buildModel({ conditional: true, batch: 2 }));
    const t = await OnnxEdmTeacher.load(storeFor(dir), path, { numClasses: 3, id: 'toy' });
    assert.equal(t.id, 'toy');
    const labels = Int32Array.of(1, 2, 0);
    const x = ramp(3 * P, 2);
    assertClose(
      await t.denoise(x, 2.5, labels, 3),
      await closedForm(true).denoise(x, 2.5, labels, 3),
      1e-6,
      'fixed batch',
    );
    await t.close();
    await assert.rejects(
      OnnxEdmTeacher.load(storeFor(dir), join(dir, 'missing.onnx')),
      /missing\.onnx: no such object/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('OnnxEdmTeacher: the I/O contract is checked at load with errors that name the problem', async () => {
  assert.deepEqual(inspectEdmModel(buildModel({ conditional: true, metadata: { num_classes: '3' } }), 'm'), {
    shape: SHAPE,
    fixedBatch: null,
    conditional: true,
    metadataClasses: 3,
  });
  await assert.rejects(
    OnnxEdmTeacher.fromBytes(buildModel({ xName: 'image' }), {}, 'm.onnx'),
    /m\.onnx: the model has no input 'x' \(float32 \[B, C, H, W\]\); it has inputs \[image, c_noise\]/,
  );
  await assert.rejects(OnnxEdmTeacher.fromBytes(buildModel({ outName: 'out' })), /no output 'F'/);
  await assert.rejects(
    OnnxEdmTeacher.fromBytes(buildModel({ xType: 'float64' })),
    /input 'x' must be float32 \[B, C, H, W\], got elem type DOUBLE/,
  );
  await assert.rejects(
    OnnxEdmTeacher.fromBytes(buildModel({ dims: ['batch', 2, 'h', 3] })),
    /needs static C, H, W, got \[\?, 2, \?, 3\]/,
  );
  await assert.rejects(
    OnnxEdmTeacher.fromBytes(buildModel({ conditional: true })),
    /class count is unknown; pass numClasses/,
  );
  await assert.rejects(
    OnnxEdmTeacher.fromBytes(buildModel(), { numClasses: 10 }),
    /no class_labels input \(unconditional\)/,
  );
  await assert.rejects(
    OnnxEdmTeacher.fromBytes(Uint8Array.of(1, 2, 3), {}, 'junk.onnx'),
    /junk\.onnx: not an ONNX model/,
  );
});
