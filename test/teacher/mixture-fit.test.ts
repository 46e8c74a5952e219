import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { type MixtureParams, fitMixtureTeacher } from '../../src/teacher/mixture.js';

const P = 8; // shape 1×2×4; pixel 7 is constant background (−1)
const shape = { channels: 1, height: 2, width: 4 };
const PER_CLUSTER = 100;

/**
 * 2 classes × 3 well-separated clusters of 100 images each. Cluster (c, j) has its mean at +4 on pixel
 * 3c + j (elsewhere 0), a rank-2 spread along two fixed directions plus small per-pixel noise, and
 * pixel 7 always −1. Images are interleaved so cluster membership is not contiguous.
 */
function dataset(): { images: Float32Array; labels: Int32Array; cluster: Int32Array } {
  const rng = xoroshiro128plus(7);
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniformFloat64(rng))) * Math.cos(2 * Math.PI * uniformFloat64(rng));
  const n = 2 * 3 * PER_CLUSTER;
  const images = new Float32Array(n * P);
  const labels = new Int32Array(n);
  const cluster = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    const j = Math.floor(i / 2) % 3;
    labels[i] = c;
    cluster[i] = 3 * c + j;
    const [z1, z2] = [normal(), normal()];
    for (let p = 0; p < 7; p++) {
      const mean = p === 3 * c + j ? 4 : 0;
      images[i * P + p] = mean + 0.8 * z1 * Math.cos(p + j) + 0.5 * z2 * Math.sin(2 * p - c) + 0.05 * normal();
    }
    images[i * P + 7] = -1;
  }
  return { images, labels, cluster };
}

const opts = { shape, numClasses: 2, componentsPerClass: 3, rank: 2, seed: 3, psiFloor: 1e-4 };

test('fitMixtureTeacher is deterministic (same parameters bit for bit)', async () => {
  const { images, labels } = dataset();
  const a = await fitMixtureTeacher(images, labels, opts);
  const b = await fitMixtureTeacher(images, labels, opts);
  assert.deepEqual(a, b);
  assert.deepEqual(a.config, {
    version: 1,
    shape,
    numClasses: 2,
    components: 3,
    rank: 2,
    psiFloor: 1e-4,
    seed: 3,
    trainCount: 600,
  });
});

test('fitMixtureTeacher [2 classes, K=3, r=2, P=8]: clusters, means, factors and per-pixel Ψ', async () => {
  const { images, labels, cluster } = dataset();
  const p: MixtureParams = await fitMixtureTeacher(images, labels, opts);
  for (let g = 0; g < 2; g++) {
    for (let k = 0; k < 3; k++) {
      const off = (g * 3 + k) * P;
      // Each component is one true cluster: weight exactly 1/3, mean = that cluster's sample mean.
      assert.equal(p.weights[g * 3 + k], 1 / 3);
      const hot = [...p.means.subarray(off, off + 7)].findIndex((v) => v > 2);
      assert.ok(hot >= 3 * g && hot < 3 * g + 3, `class ${g} component ${k}: mean peak at pixel ${hot}`);
      const rows = [...cluster.keys()].filter((i) => cluster[i] === hot);
      assert.equal(rows.length, PER_CLUSTER);
      const S = Matrix.zeros(P, P);
      for (let q = 0; q < P; q++) {
        let m = 0;
        for (const i of rows) m += images[i * P + q] / rows.length;
        assert.ok(Math.abs(p.means[off + q] - m) < 1e-12, `mean pixel ${q}`);
      }
      for (const i of rows) {
        for (let q = 0; q < P; q++) {
          for (let s = 0; s < P; s++)
            S.set(
              q,
              s,
              S.get(q, s) +
                ((images[i * P + q] - p.means[off + q]) * (images[i * P + s] - p.means[off + s])) / rows.length,
            );
        }
      }
      // W's columns are the top-2 eigenpairs of the cluster covariance S: ‖W_j‖² = λ_j, S·W_j = λ_j·W_j.
      const lambda = new EigenvalueDecomposition(S, { assumeSymmetric: true }).realEigenvalues.sort((x, y) => y - x);
      const W = [0, 1].map((j) => p.factors.subarray(((g * 3 + k) * 2 + j) * P, ((g * 3 + k) * 2 + j + 1) * P));
      for (let j = 0; j < 2; j++) {
        const norm2 = W[j].reduce((s, v) => s + v * v, 0);
        assert.ok(Math.abs(norm2 - lambda[j]) < 1e-9 * lambda[0], `lambda_${j}: ${norm2} vs ${lambda[j]}`);
        const sw = S.mmul(Matrix.columnVector([...W[j]])).getColumn(0);
        for (let q = 0; q < P; q++) assert.ok(Math.abs(sw[q] - lambda[j] * W[j][q]) < 1e-8, 'S·W_j = λ_j·W_j');
      }
      // Ψ = diag(S − WWᵀ) where that is above the floor; the constant pixel sits exactly on the floor.
      for (let q = 0; q < 7; q++) {
        const want = S.get(q, q) - W[0][q] ** 2 - W[1][q] ** 2;
        assert.ok(
          want > 1e-4 && Math.abs(p.psi[off + q] - want) < 1e-10,
          `psi pixel ${q}: ${p.psi[off + q]} vs ${want}`,
        );
      }
      assert.equal(p.psi[off + 7], 1e-4);
      assert.equal(p.means[off + 7], -1);
    }
  }
});

test('fitMixtureTeacher: unconditional fit and argument errors', async () => {
  const { images } = dataset();
  const p = await fitMixtureTeacher(images, null, { shape, numClasses: 0, componentsPerClass: 6, rank: 1 });
  assert.equal(p.weights.length, 6);
  assert.ok(Math.abs(p.weights.reduce((s, w) => s + w, 0) - 1) < 1e-12);
  assert.ok(p.psi.every((v) => v >= 1e-4));
  const labels = new Int32Array(600);
  labels[0] = 1; // class 1 has a single image
  await assert.rejects(fitMixtureTeacher(images, labels, opts), /class 1 has 1 images, fewer than K = 3/);
  await assert.rejects(fitMixtureTeacher(images, labels.fill(5), opts), /label 5 at index 0 is outside \[0, 2\)/);
  await assert.rejects(
    fitMixtureTeacher(images.subarray(1), null, { shape, numClasses: 0 }),
    /not a whole number of 8-pixel images/,
  );
  await assert.rejects(
    fitMixtureTeacher(images, null, { shape, numClasses: 0, rank: 9 }),
    /rank must be an integer in \[0, 8\]/,
  );
});

test('fitMixtureTeacher: randomised subspace iteration (l = 8 < P = 64) finds the top-3 eigenpairs', async () => {
  const rng = xoroshiro128plus(11);
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniformFloat64(rng))) * Math.cos(2 * Math.PI * uniformFloat64(rng));
  const n = 400;
  const Q = 64;
  const images = new Float32Array(n * Q);
  for (let i = 0; i < n; i++) {
    const z = [2 * normal(), 1.2 * normal(), 0.7 * normal()];
    for (let q = 0; q < Q; q++)
      images[i * Q + q] =
        z[0] * Math.cos(0.1 * q) + z[1] * Math.sin(0.3 * q) + z[2] * Math.cos(0.7 * q + 1) + 0.05 * normal();
  }
  const p = await fitMixtureTeacher(images, null, {
    shape: { channels: 1, height: 8, width: 8 },
    numClasses: 0,
    componentsPerClass: 1,
    rank: 3,
    oversample: 5,
  });
  const S = Matrix.zeros(Q, Q);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < Q; a++) {
      const da = images[i * Q + a] - p.means[a];
      for (let b = 0; b < Q; b++) S.set(a, b, S.get(a, b) + (da * (images[i * Q + b] - p.means[b])) / n);
    }
  }
  const lambda = new EigenvalueDecomposition(S, { assumeSymmetric: true }).realEigenvalues.sort((x, y) => y - x);
  for (let j = 0; j < 3; j++) {
    const norm2 = p.factors.subarray(j * Q, (j + 1) * Q).reduce((s, v) => s + v * v, 0);
    assert.ok(Math.abs(norm2 - lambda[j]) < 1e-9 * lambda[0], `lambda_${j}: ${norm2} vs ${lambda[j]}`);
  }
});
