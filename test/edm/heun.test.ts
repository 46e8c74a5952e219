import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Denoiser } from '../../src/edm/denoiser.js';
import { type HeunStepEvent, heunSample } from '../../src/edm/heun.js';

/**
 * Exact denoiser of per-pixel Gaussian data x0_p ~ N(m_p, s_p²): D(x; σ) = m + s²/(s²+σ²)·(x − m).
 * Its probability-flow ODE dx/dσ = σ/(s²+σ²)·(x − m) has x(σ) = m + (x(σ0) − m)·sqrt((s²+σ²)/(s²+σ0²)).
 */
function gaussianDenoiser(m: number[], s: number[]): Denoiser & { calls: number[] } {
  const calls: number[] = [];
  return {
    id: 'gaussian',
    shape: { channels: 1, height: 1, width: m.length },
    numClasses: 0,
    calls,
    async denoise(x, sigma, _labels, batch) {
      calls.push(sigma);
      assert.equal(x.length, batch * m.length);
      const out = new Float64Array(x.length);
      for (let i = 0; i < x.length; i++) {
        const p = i % m.length;
        out[i] = m[p] + (s[p] ** 2 / (s[p] ** 2 + sigma ** 2)) * (x[i] - m[p]);
      }
      return out;
    },
  };
}

/** max_i |x_i − exact_i| / |exact_i − m|: the error relative to the deviation the ODE transports. */
async function relError(m: number[], s: number[], noise: Float64Array, steps: number): Promise<number> {
  const out = await heunSample(gaussianDenoiser(m, s), noise, null, noise.length / m.length, { steps });
  let worst = 0;
  for (let i = 0; i < noise.length; i++) {
    const p = i % m.length;
    const dev = (noise[i] * 80 - m[p]) * Math.sqrt(s[p] ** 2 / (s[p] ** 2 + 80 ** 2));
    worst = Math.max(worst, Math.abs(out[i] - m[p] - dev) / Math.abs(dev));
  }
  return worst;
}

test('heunSample: 18 steps = 35 NFE at the Karras sigmas, reported by onStep', async () => {
  const d = gaussianDenoiser([0.2], [0.5]);
  const events: HeunStepEvent[] = [];
  await heunSample(d, Float64Array.of(1, -1, 0.5), null, 3, { onStep: (e) => events.push(e) });
  assert.equal(d.calls.length, 35);
  assert.equal(events.length, 18);
  assert.equal(events[17].nfe, 35);
  assert.equal(events[17].sigmaNext, 0);
  assert.equal(d.calls[0], 80);
  assert.equal(d.calls[34], 0.002); // the last step (0.002 → 0) is Euler: one evaluation
});

test('heunSample: point-mass data (s = 0) is integrated exactly', async () => {
  const m = [0.25, -0.75];
  const out = await heunSample(gaussianDenoiser(m, [0, 0]), Float64Array.of(1.5, -0.3, 2, 0.1), null, 2);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(out[i] - m[i % 2]) < 1e-12, `out[${i}] = ${out[i]}`);
});

test('heunSample: Gaussian data N(m, s²), error vs the closed-form ODE solution', async () => {
  const noise = Float64Array.of(1.3, -0.7, 0.2);
  // Heun's global error for this ODE is dominated by the bend of sqrt(s²+σ²) near σ ≈ s, where the
  // 18-step Karras grid has σ ratios of ~1.8: measured 4.481e-2 (s = 1) and 9.017e-2 (s = 0.1).
  const e18 = await relError([0.3], [1], noise, 18);
  assert.ok(Math.abs(e18 - 0.04481) < 2e-4, `18 steps, s = 1: ${e18}`);
  assert.ok((await relError([-0.5], [0.1], noise, 18)) < 0.095);
  // Second order: doubling the steps divides the error by ~4 (Euler alone would give ~2).
  const e72 = await relError([0.3], [1], noise, 72);
  const e144 = await relError([0.3], [1], noise, 144);
  const order = Math.log2(e72 / e144);
  assert.ok(order > 1.9 && order < 2.2, `observed order ${order}`);
  assert.ok((await relError([0.3, -0.5], [1, 0.1], Float64Array.of(1.3, -0.7), 288)) < 2e-4);
});

test('heunSample: explicit schedule and argument errors', async () => {
  const d = gaussianDenoiser([0], [1]);
  const out = await heunSample(d, Float64Array.of(1), null, 1, { sigmas: Float64Array.of(2, 0) });
  assert.ok(Math.abs(out[0] - 2 * (1 / 5)) < 1e-15); // one Euler step lands on D(x0; 2) = x0/(1+4)
  await assert.rejects(heunSample(d, Float64Array.of(1, 2), null, 1), /noise has 2 values, expected batch 1/);
  await assert.rejects(
    heunSample(d, Float64Array.of(1), null, 1, { sigmas: Float64Array.of(1, 2, 0) }),
    /decrease strictly/,
  );
  await assert.rejects(heunSample(d, Float64Array.of(1), null, 1, { sigmas: Float64Array.of(2, 1) }), /end in 0/);
});
