import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, type Value } from '../../src/graph/ir.js';
import * as op from '../../src/graph/ops.js';
import { evaluate } from '../../src/graph/reference.js';
import { resolveConfig, numTokens } from '../../src/get/config.js';
import { buildGet, inferenceOutput } from '../../src/get/model.js';
import { GetSampler, z0ForSeed } from '../../src/get/sampler.js';
import { initParams } from '../../src/train/params.js';
import { Rng } from '../../src/util/rng.js';

const cfg = resolveConfig('GET-CPU-XS/8', { numClasses: 10 });
const N = numTokens(cfg);
const D = cfg.hiddenSize;
const B = 3;

/** Random (non-zero) weights, so the decoder output and the residuals are non-trivial. */
function randomWeights() {
  const g = new Graph();
  const specs = buildGet(g, cfg, 'batch').specs;
  const p = initParams(specs, 1);
  const r = new Rng(2);
  for (let i = 0; i < p.flat.length; i++) p.flat[i] += 0.05 * r.normal();
  return p;
}

test("one-step sampler = float64 reference of its graph; picks each sample's lowest-residual iterate", async () => {
  const params = randomWeights();
  const rng = new Rng(5);
  const noise = rng.fillNormal(new Float32Array(B * 1024));
  const labels = Int32Array.of(3, 0, 9);
  const seeds = [11, 12, 13];
  const sampler = await GetSampler.create(cfg, (n) => params.view(n), 6, 1);
  const out = await sampler.generate(noise, labels, seeds);
  await sampler.close();

  // Independent check: the float64 interpreter on the inference graph, plus every iterate's residual.
  const g = new Graph();
  const m = buildGet(g, cfg, B);
  const { image, residual2 } = inferenceOutput(m, B, 6);
  let z = m.inputs.z0;
  const residuals: Value[] = [];
  for (let k = 0; k < 6; k++) {
    const fz = m.f(z);
    residuals.push(op.reduceSumSquare(op.sub(fz, z), [1, 2]));
    z = fz;
  }
  const z0 = new Float32Array(B * N * D);
  seeds.forEach((s, i) => z0.set(z0ForSeed(s, N * D), i * N * D));
  const ref = evaluate(
    g,
    { noise, z0, class_labels: BigInt64Array.from(labels, BigInt) },
    [image, residual2, ...residuals],
    (p) => params.view(p.name),
  );
  const refImage = ref[0].data as Float64Array;
  let maxDiff = 0;
  for (let i = 0; i < refImage.length; i++) maxDiff = Math.max(maxDiff, Math.abs(refImage[i] - out.image[i]));
  assert.ok(maxDiff < 1e-4, `max |ORT − float64| = ${maxDiff}`);
  assert.ok(
    refImage.some((v) => Math.abs(v) > 1e-3),
    'non-trivial output',
  );
  for (let b = 0; b < B; b++) {
    const perIter = residuals.map((_, k) => (ref[2 + k].data as Float64Array)[b]);
    assert.equal((ref[1].data as Float64Array)[b], Math.min(...perIter));
    assert.ok(Math.abs(out.residual2[b] - Math.min(...perIter)) <= 1e-4 * Math.min(...perIter));
  }
});

test('same seed, label and noise → byte-identical image; another seed (z0) → another image', async () => {
  const params = randomWeights();
  const noise = new Rng(9).fillNormal(new Float32Array(1024));
  const sampler = await GetSampler.create(cfg, (n) => params.view(n), 6, 1);
  const a = await sampler.generate(noise, Int32Array.of(4), [77]);
  const b = await sampler.generate(noise, Int32Array.of(4), [77]);
  const c = await sampler.generate(noise, Int32Array.of(4), [78]);
  await sampler.close();
  assert.deepEqual(Buffer.from(a.image.buffer), Buffer.from(b.image.buffer));
  assert.notDeepEqual(Buffer.from(a.image.buffer), Buffer.from(c.image.buffer));
  await assert.rejects(
    GetSampler.create(cfg, (n) => params.view(n)).then((s) => s.generate(noise, null, [1])),
    /conditional model needs 1 class labels/,
  );
});
