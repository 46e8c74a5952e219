import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EigenvalueDecomposition, Matrix, QrDecomposition } from 'ml-matrix';
import { type FidStats, frechetDistance } from '../../src/eval/fid.js';
import { FeatureStatsAccumulator, featureStats } from '../../src/eval/stats.js';
import { UsageError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';

const rng = new Rng(20240531);
const toM = (d: number, a: Float64Array): Matrix => Matrix.from1DArray(d, d, a);
const fromM = (m: Matrix): Float64Array => Float64Array.from(m.to1DArray());
const randn = (n: number): Float64Array => rng.fillNormal(new Float64Array(n));

/** A random symmetric positive definite d×d matrix A·Aᵀ/d + floor·I. */
function randomSpd(d: number, floor = 0.1): Float64Array {
  const a = toM(d, randn(d * d));
  return fromM(a.mmul(a.transpose()).div(d).add(Matrix.eye(d).mul(floor)));
}

/** A random orthogonal d×d matrix (Q of a Gaussian matrix). */
const randomOrthogonal = (d: number): Matrix => new QrDecomposition(toM(d, randn(d * d))).orthogonalMatrix;

/** Independent route: Σ √λᵢ(Σ₁Σ₂) from the non-symmetric eigensolver (Hessenberg QR) on the product itself. */
function traceSqrtByProductEig(d: number, s1: Float64Array, s2: Float64Array): number {
  const e = new EigenvalueDecomposition(toM(d, s1).mmul(toM(d, s2)));
  return e.realEigenvalues.reduce((t, l) => t + Math.sqrt(Math.max(l, 0)), 0);
}

const trace = (d: number, s: Float64Array): number =>
  Array.from({ length: d }, (_, i) => s[i * d + i]).reduce((a, b) => a + b, 0);
const sqDist = (a: Float64Array, b: Float64Array): number => a.reduce((t, x, i) => t + (x - b[i]) ** 2, 0);

/** Plain float64 two-pass mean and unbiased covariance (numpy.cov(x, rowvar=False)). */
function naiveStats(x: ArrayLike<number>, n: number, d: number): FidStats {
  const mu = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mu[j] += x[r * d + j] / n;
  const sigma = new Float64Array(d * d);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++) sigma[i * d + j] += ((x[r * d + i] - mu[i]) * (x[r * d + j] - mu[j])) / (n - 1);
  }
  return { mu, sigma };
}

const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void => {
  assert.equal(got.length, want.length);
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= tol, `[${i}]: ${got[i]} vs ${want[i]}`);
};

test('featureStats: hand-computed mean and unbiased covariance', async () => {
  // Centred rows (−2, 0), (0, 2), (2, −2): var = 8/2 = 4 each, cov = −4/2 = −2.
  const s = await featureStats(new Float32Array([1, 2, 3, 4, 5, 0]), 3, 2);
  assert.equal(s.n, 3);
  assert.deepEqual([...s.mu], [3, 2]);
  close(s.sigma, [4, -2, -2, 4], 1e-12);
});

test('featureStats and the streaming accumulator agree with a plain two-pass covariance', async () => {
  const n = 203;
  const d = 7;
  const x = new Float32Array(n * d);
  for (let i = 0; i < x.length; i++) x[i] = 100 + 3 * rng.normal() + (i % d); // offset: tests the centring
  const want = naiveStats(x, n, d);
  const one = await featureStats(x, n, d);
  close(one.mu, want.mu, 1e-11);
  close(one.sigma, want.sigma, 1e-10);
  const acc = new FeatureStatsAccumulator(d, { chunkRows: 16 });
  for (let r = 0; r < n;) {
    const rows = Math.min(n - r, 1 + (r % 37)); // ragged batches across chunk boundaries
    await acc.add(x.subarray(r * d, (r + rows) * d), rows);
    r += rows;
  }
  const streamed = await acc.finish();
  assert.equal(streamed.n, n);
  close(streamed.mu, want.mu, 1e-11);
  close(streamed.sigma, want.sigma, 1e-10);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) assert.equal(streamed.sigma[i * d + j], streamed.sigma[j * d + i]);
});

test('featureStats errors: non-finite values, too few samples', async () => {
  const x = new Float32Array(5 * 3).fill(1);
  x[1 * 3 + 2] = NaN;
  await assert.rejects(featureStats(x, 5, 3), {
    name: 'UsageError',
    message:
      'features: sample 1, feature 2 is NaN; the feature network produced non-finite values (check that the ' +
      'images are finite and in range)',
  });
  const acc = new FeatureStatsAccumulator(3, { what: 'gen' });
  await acc.add(new Float32Array(12), 4);
  await assert.rejects(acc.add(new Float32Array([0, 0, 0, 0, -Infinity, 0]), 2), {
    message: /^gen: sample 5, feature 1 is -Infinity;/,
  });
  await acc.release();
  await assert.rejects(featureStats(new Float32Array(3), 1, 3), {
    message: 'features: a covariance needs at least 2 samples, got 1',
  });
  await assert.rejects(featureStats(new Float32Array(16), 4, 4, 'mnist:test'), {
    name: 'UsageError',
    message:
      'mnist:test: 4 samples of dimension 4 give a singular covariance; use at least 5 samples (FID needs ' +
      'more samples than feature dimensions)',
  });
});

test('FID of statistics with themselves is 0; also from a sample set against itself', async () => {
  const d = 8;
  const s = { mu: randn(d), sigma: randomSpd(d) };
  const r = await frechetDistance(s, s);
  assert.ok(Math.abs(r.fid) < 1e-9, `${r.fid}`);
  assert.equal(r.offsetApplied, false);
  assert.deepEqual(r.factorizations, ['cholesky', 'cholesky']);
  const n = 300;
  const x = new Float32Array(n * d).map(() => rng.normal() * 2 + 1);
  const fs = await featureStats(x, n, d);
  const self = await frechetDistance(fs, await featureStats(x, n, d));
  assert.ok(Math.abs(self.fid) < 1e-6, `${self.fid}`);
  assert.ok(Math.abs(self.traceSqrt - trace(d, fs.sigma)) < 1e-9);
});

test('FID of diagonal covariances: Tr √(Σ₁Σ₂) = Σ √(d1ᵢ·d2ᵢ)', async () => {
  const d1 = [0.5, 1, 2, 3, 0.01];
  const d2 = [4, 0.25, 2, 1, 9];
  const diag = (v: number[]) => fromM(Matrix.diag(v));
  const a = { mu: new Float64Array([1, 0, 0, 0, 0]), sigma: diag(d1) };
  const b = { mu: new Float64Array([0, 0, 2, 0, 0]), sigma: diag(d2) };
  const r = await frechetDistance(a, b);
  const want = 1 + 4 + d1.reduce((t, x, i) => t + x + d2[i] - 2 * Math.sqrt(x * d2[i]), 0);
  assert.ok(Math.abs(r.fid - want) < 1e-12, `${r.fid} vs ${want}`);
  assert.equal(r.meanTerm, 5);
});

test('FID of commuting covariances (shared eigenbasis) matches the closed form', async () => {
  const d = 6;
  const q = randomOrthogonal(d);
  const l1 = [3, 1, 0.5, 0.2, 0.05, 2];
  const l2 = [0.1, 2, 0.5, 4, 1, 1];
  const rot = (l: number[]) => fromM(q.mmul(Matrix.diag(l)).mmul(q.transpose()));
  const mu = randn(d);
  const r = await frechetDistance({ mu, sigma: rot(l1) }, { mu, sigma: rot(l2) });
  const want = l1.reduce((t, x, i) => t + x + l2[i] - 2 * Math.sqrt(x * l2[i]), 0);
  assert.ok(Math.abs(r.fid - want) < 1e-10, `${r.fid} vs ${want}`);
});

test('FID of general random Gaussians matches an eigensolver on the non-symmetric product Σ₁Σ₂', async () => {
  for (const d of [4, 7]) {
    const a = { mu: randn(d), sigma: randomSpd(d) };
    const b = { mu: randn(d), sigma: randomSpd(d, 0.5) };
    const r = await frechetDistance(a, b);
    const ts = traceSqrtByProductEig(d, a.sigma, b.sigma);
    assert.ok(Math.abs(r.traceSqrt - ts) < 1e-10, `${r.traceSqrt} vs ${ts}`);
    const want = sqDist(a.mu, b.mu) + trace(d, a.sigma) + trace(d, b.sigma) - 2 * ts;
    assert.ok(Math.abs(r.fid - want) < 1e-9, `${r.fid} vs ${want}`);
    assert.ok(r.fid > 0);
    // Symmetric in its arguments.
    assert.ok(Math.abs((await frechetDistance(b, a)).fid - r.fid) < 1e-10);
  }
});

test('FID of a translation only is ‖Δμ‖²', async () => {
  const d = 6;
  const sigma = randomSpd(d);
  const mu1 = randn(d);
  const mu2 = mu1.map((x, i) => x + 0.5 * i - 1);
  const r = await frechetDistance({ mu: mu1, sigma }, { mu: mu2, sigma });
  const want = sqDist(mu1, mu2);
  assert.ok(Math.abs(r.fid - want) < 1e-9, `${r.fid} vs ${want}`);
});

test('FID with a rank-deficient covariance is finite and matches the independent route', async () => {
  const d = 6;
  const rank = 3;
  const bm = new Matrix(d, rank);
  for (let i = 0; i < d; i++) for (let j = 0; j < rank; j++) bm.set(i, j, rng.normal());
  const singular = fromM(bm.mmul(bm.transpose()));
  const other = randomSpd(d);
  const r = await frechetDistance(
    { mu: new Float64Array(d), sigma: singular },
    { mu: new Float64Array(d), sigma: other },
  );
  assert.ok(Number.isFinite(r.fid));
  assert.equal(r.offsetApplied, false);
  const ts = traceSqrtByProductEig(d, singular, other);
  assert.ok(Math.abs(r.traceSqrt - ts) < 1e-6, `${r.traceSqrt} vs ${ts}`);
  // Both singular: the product has only rank-3 eigenvalues; still finite.
  const both = await frechetDistance(
    { mu: new Float64Array(d), sigma: singular },
    { mu: new Float64Array(d), sigma: singular },
  );
  assert.deepEqual(both.factorizations, ['eigh', 'eigh']);
  assert.ok(Math.abs(both.fid) < 1e-6, `${both.fid}`);
});

test('FID falls back to eps·I when a covariance is slightly indefinite (pytorch-fid fallback)', async () => {
  const d1 = [1, 2, -1e-8];
  const d2 = [0.5, 1, 3];
  const eps = 1e-6;
  const r = await frechetDistance(
    { mu: new Float64Array(3), sigma: fromM(Matrix.diag(d1)) },
    { mu: new Float64Array(3), sigma: fromM(Matrix.diag(d2)) },
  );
  assert.equal(r.offsetApplied, true);
  assert.equal(r.eps, eps);
  const want = d1.reduce((t, x, i) => t + (x + eps) + (d2[i] + eps) - 2 * Math.sqrt((x + eps) * (d2[i] + eps)), 0);
  assert.ok(Math.abs(r.fid - want) < 1e-12, `${r.fid} vs ${want}`);
});

test('FID errors: dimension mismatch, non-finite statistics, an indefinite covariance', async () => {
  const s = (d: number) => ({ mu: new Float64Array(d), sigma: fromM(Matrix.eye(d)) });
  await assert.rejects(frechetDistance(s(3), s(2)), {
    name: 'UsageError',
    message: 'FID: reference statistics have dim 2, features have dim 3; compute both with the same feature network',
  });
  const bad = s(2);
  bad.sigma[1] = NaN;
  await assert.rejects(frechetDistance(s(2), bad), {
    message: 'FID: reference statistics have sigma[0, 1] = NaN; recompute the statistics from finite features',
  });
  await assert.rejects(frechetDistance({ mu: new Float64Array(2), sigma: new Float64Array(3) }, s(2)), {
    message: 'FID: features have sigma with 3 values, expected 2×2 for mu of length 2',
  });
  await assert.rejects(
    frechetDistance({ mu: new Float64Array(2), sigma: new Float64Array([1, 0, 0, -1]) }, s(2)),
    (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.equal(
        e.message,
        'FID: sigma of the features is not positive semi-definite (eigenvalue -1.000e+0, even after adding ' +
          '1e-6·I); recompute it as a covariance of finite features',
      );
      return true;
    },
  );
});
