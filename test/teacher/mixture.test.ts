import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Matrix, determinant, inverse } from 'ml-matrix';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { Denoiser } from '../../src/edm/denoiser.js';
import { heunSample } from '../../src/edm/heun.js';
import { type MixtureParams, MixtureDenoiser, loadMixture, saveMixture } from '../../src/teacher/mixture.js';
import { storeFor } from '../../src/store/index.js';

const rng = xoroshiro128plus(42);
const uni = (lo: number, hi: number) => lo + (hi - lo) * uniformFloat64(rng);
const normal = () => Math.sqrt(-2 * Math.log(1 - uniformFloat64(rng))) * Math.cos(2 * Math.PI * uniformFloat64(rng));

/** Random parameters: G groups, K components, rank r, P = 6 pixels (shape 1×2×3). */
function randomParams(G: number, K: number, r: number): MixtureParams {
  const P = 6;
  const weights = new Float64Array(G * K);
  for (let g = 0; g < G; g++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += weights[g * K + k] = uni(0.2, 1);
    for (let k = 0; k < K; k++) weights[g * K + k] /= s;
  }
  return {
    config: {
      version: 1,
      shape: { channels: 1, height: 2, width: 3 },
      numClasses: G,
      components: K,
      rank: r,
      psiFloor: 1e-4,
      seed: 0,
      trainCount: 0,
    },
    weights,
    means: Float64Array.from({ length: G * K * P }, () => uni(-1, 1)),
    factors: Float64Array.from({ length: G * K * r * P }, () => 0.5 * normal()),
    psi: Float64Array.from({ length: G * K * P }, () => uni(1e-4, 0.3)),
  };
}

/** E[x0 | x] with dense (C_k + σ²I)⁻¹ and determinants (ml-matrix), straight from the definition. */
function densePosteriorMean(p: MixtureParams, x: Float64Array, sigma: number, g: number): Float64Array {
  const { components: K, rank: r } = p.config;
  const P = x.length;
  const logits: number[] = [];
  const corr: number[][] = [];
  for (let k = 0; k < K; k++) {
    const C = Matrix.zeros(P, P);
    const base = (g * K + k) * P;
    for (let i = 0; i < P; i++) {
      for (let j = 0; j < P; j++) {
        let v = 0;
        for (let f = 0; f < r; f++)
          v += p.factors[((g * K + k) * r + f) * P + i] * p.factors[((g * K + k) * r + f) * P + j];
        C.set(i, j, v + (i === j ? p.psi[base + i] + sigma * sigma : 0));
      }
    }
    const u = Matrix.columnVector(Array.from(x, (v, i) => v - p.means[base + i]));
    const iu = inverse(C).mmul(u);
    logits.push(Math.log(p.weights[g * K + k]) - 0.5 * (u.transpose().mmul(iu).get(0, 0) + Math.log(determinant(C))));
    corr.push(iu.getColumn(0));
  }
  const mx = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - mx));
  const z = e.reduce((a, b) => a + b, 0);
  return Float64Array.from(x, (v, i) => v - sigma * sigma * corr.reduce((s, c, k) => s + (e[k] / z) * c[i], 0));
}

const maxRelErr = (a: Float64Array, b: Float64Array) => {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
};

const open: Denoiser[] = [];
after(async () => {
  for (const d of open) await d.close?.();
});

test('MixtureDenoiser [P=6, K=3, r=2, 2 classes] equals the dense posterior mean', async () => {
  const p = randomParams(2, 3, 2);
  const d = await MixtureDenoiser.create(p);
  open.push(d);
  assert.match(d.id, /^mixture-K3-r2-[0-9a-f]{12}$/);
  const B = 7;
  const labels = Int32Array.of(1, 0, 0, 1, 1, 0, 1);
  for (const sigma of [80, 5, 1, 0.3, 0.05, 0.002]) {
    // x = x0 + σε around a random component of the sample's class, so responsibilities are not all one-hot.
    const x = new Float64Array(B * 6);
    for (let b = 0; b < B; b++) {
      const k = b % 3;
      for (let i = 0; i < 6; i++)
        x[b * 6 + i] = p.means[(labels[b] * 3 + k) * 6 + i] + 0.4 * normal() + sigma * normal();
    }
    const out = await d.denoise(x, sigma, labels, B);
    for (let b = 0; b < B; b++) {
      const want = densePosteriorMean(p, x.subarray(b * 6, b * 6 + 6), sigma, labels[b]);
      const err = maxRelErr(out.subarray(b * 6, b * 6 + 6), want);
      assert.ok(err < 1e-8, `sigma ${sigma}, sample ${b}: relative error ${err}`);
    }
  }
});

test('MixtureDenoiser unconditional [K=4, r=3]: labels ignored, equals the dense posterior mean', async () => {
  const p = randomParams(1, 4, 3);
  const d = await MixtureDenoiser.create({ ...p, config: { ...p.config, numClasses: 0 } });
  open.push(d);
  const x = Float64Array.from({ length: 2 * 6 }, () => 2 * normal());
  const out = await d.denoise(x, 0.7, null, 2);
  for (let b = 0; b < 2; b++)
    assert.ok(
      maxRelErr(out.subarray(b * 6, b * 6 + 6), densePosteriorMean(p, x.subarray(b * 6, b * 6 + 6), 0.7, 0)) < 1e-8,
    );
});

test('MixtureDenoiser K=1 with a diagonal covariance is the per-pixel Gaussian denoiser; Heun agrees', async () => {
  // C = diag(Ψ) + w²·e_0e_0ᵀ, so c_p = Ψ_p (+ w² at pixel 0) and D(x; σ) = μ + c/(c + σ²)·(x − μ).
  const mu = [0.5, -0.2, -1, 0.3];
  const psi = [0.04, 0.25, 1e-4, 0.01];
  const w = 0.6;
  const c = psi.map((v, i) => v + (i === 0 ? w * w : 0));
  const p: MixtureParams = {
    config: {
      version: 1,
      shape: { channels: 1, height: 2, width: 2 },
      numClasses: 0,
      components: 1,
      rank: 1,
      psiFloor: 1e-4,
      seed: 0,
      trainCount: 0,
    },
    weights: Float64Array.of(1),
    means: Float64Array.from(mu),
    factors: Float64Array.of(w, 0, 0, 0),
    psi: Float64Array.from(psi),
  };
  const d = await MixtureDenoiser.create(p);
  open.push(d);
  const gauss: Denoiser = {
    id: 'gauss',
    shape: d.shape,
    numClasses: 0,
    async denoise(x, sigma) {
      return x.map((v, i) => mu[i % 4] + (c[i % 4] / (c[i % 4] + sigma * sigma)) * (v - mu[i % 4]));
    },
  };
  const x = Float64Array.from({ length: 3 * 4 }, () => 3 * normal());
  for (const sigma of [80, 1, 0.002])
    assert.ok(maxRelErr(await d.denoise(x, sigma, null, 3), await gauss.denoise(x, sigma, null, 3)) < 1e-12);
  const noise = Float64Array.from({ length: 3 * 4 }, () => normal());
  const a = await heunSample(d, noise, null, 3);
  const b = await heunSample(gauss, noise, null, 3);
  assert.ok(maxRelErr(a, b) < 1e-10, `Heun on mixture vs Gaussian: ${maxRelErr(a, b)}`);
});

test('MixtureDenoiser: rank 0 (diagonal components) and argument errors', async () => {
  const p = randomParams(2, 2, 0);
  const d = await MixtureDenoiser.create(p);
  open.push(d);
  const x = Float64Array.from({ length: 6 }, () => normal());
  assert.ok(maxRelErr(await d.denoise(x, 0.5, Int32Array.of(1), 1), densePosteriorMean(p, x, 0.5, 1)) < 1e-10);
  await assert.rejects(d.denoise(x, 0.5, null, 1), /needs labels/);
  await assert.rejects(d.denoise(x, 0.5, Int32Array.of(2), 1), /label 2 at index 0 is outside \[0, 2\)/);
  await assert.rejects(d.denoise(x, 0, Int32Array.of(0), 1), /sigma must be finite and > 0/);
  await assert.rejects(d.denoise(x, 1, Int32Array.of(0, 0), 2), /x has 6 values, expected batch 2/);
  await assert.rejects(
    MixtureDenoiser.create({ ...p, psi: new Float64Array(p.psi.length) }),
    /psi\[0\] = 0 must be > 0/,
  );
});

test('saveMixture/loadMixture round-trip exactly; a foreign file is refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mixture-'));
  try {
    const p = randomParams(2, 3, 2);
    const path = join(dir, 'sub', 'teacher.safetensors');
    await saveMixture(p, storeFor(dir), path);
    const q = await loadMixture(storeFor(dir), path);
    assert.deepEqual(q.config, p.config);
    for (const k of ['weights', 'means', 'factors', 'psi'] as const) assert.deepEqual(q[k], p[k]);
    await writeFile(join(dir, 'bad.safetensors'), new Uint8Array(4));
    await assert.rejects(
      loadMixture(storeFor(dir), join(dir, 'bad.safetensors')),
      /corrupt safetensors file: truncated/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
