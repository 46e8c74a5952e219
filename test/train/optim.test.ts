import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, REFERENCE_ADAMW, emaDecay, emaUpdate } from '../../src/train/optim.js';

test('AdamW first step moves each weight by lr·g/(|g|+eps) (bias-corrected moments equal g and g²)', () => {
  const p = Float32Array.of(1, -2, 0.5);
  const g = Float32Array.of(0.1, -3, 0);
  new AdamW({ ...REFERENCE_ADAMW, lr: 0.01 }, 3).step(p, g);
  const expected = [1 - 0.01 * (0.1 / (0.1 + 1e-8)), -2 + 0.01 * (3 / (3 + 1e-8)), 0.5];
  expected.forEach((e, i) => assert.ok(Math.abs(p[i] - e) < 1e-7, `${p[i]} vs ${e}`));
});

test('AdamW decoupled weight decay: θ(1 − lr·wd) before the Adam step; two steps = float64 hand computation', () => {
  const cfg = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5 };
  const p = Float32Array.of(2);
  const opt = new AdamW(cfg, 1);
  opt.step(p, Float32Array.of(1));
  opt.step(p, Float32Array.of(-1));
  // Hand computation in float64.
  let th = 2,
    m = 0,
    v = 0;
  for (const [t, g] of [
    [1, 1],
    [2, -1],
  ]) {
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    th = th * (1 - 0.1 * 0.5) - (0.1 * (m / (1 - 0.9 ** t))) / (Math.sqrt(v / (1 - 0.999 ** t)) + 1e-8);
  }
  assert.ok(Math.abs(p[0] - th) < 1e-6, `${p[0]} vs ${th}`);
  assert.equal(opt.t, 2);
});

test('EMA: constant decay is the reference 0.9999; half-life form follows EDM with ramp-up', () => {
  assert.equal(emaDecay({ kind: 'constant', decay: 0.9999 }, 12345, 128), 0.9999);
  // Half-life 20k images, batch 32: after ramp-up (seen·0.05 ≥ 20k), β = 0.5^(32/20000).
  assert.equal(
    emaDecay({ kind: 'halflife', halflifeImages: 20000, rampupRatio: 0.05 }, 1_000_000, 32),
    0.5 ** (32 / 20000),
  );
  // During ramp-up after 3,200 images: half-life 160 images → β = 0.5^(32/160).
  assert.equal(emaDecay({ kind: 'halflife', halflifeImages: 20000, rampupRatio: 0.05 }, 3200, 32), 0.5 ** 0.2);
  const ema = Float32Array.of(0, 10);
  emaUpdate(ema, Float32Array.of(1, 0), 0.75);
  assert.deepEqual([...ema], [0.25, 7.5]);
});
