import assert from 'node:assert/strict';
import { test } from 'node:test';
import { heunNfe, karrasSigmas } from '../../src/edm/schedule.js';

test('karrasSigmas: EDM defaults, 18 levels + 0', () => {
  const s = karrasSigmas();
  assert.equal(s.length, 19);
  assert.equal(s[0], 80);
  // (80^(1/7) + (0.002^(1/7) − 80^(1/7))/17)^7 = 57.5859847212481578 (50-digit decimal arithmetic); sigma_2 =
  // 40.78557379650795825. The literals below are those values' nearest doubles (the same numbers).
  assert.ok(Math.abs(s[1] - 57.58598472124816) < 1e-12, `sigma_1 = ${s[1]}`);
  assert.ok(Math.abs(s[2] - 40.78557379650796) < 1e-12, `sigma_2 = ${s[2]}`);
  assert.ok(Math.abs(s[16] - 0.00752801996278407) < 1e-15, `sigma_16 = ${s[16]}`);
  assert.equal(s[17], 0.002);
  assert.equal(s[18], 0);
  for (let i = 0; i < 18; i++) assert.ok(s[i] > s[i + 1]);
  assert.equal(heunNfe(18), 35);
});

test('karrasSigmas: rho = 1 gives a linear ramp', () => {
  const s = karrasSigmas({ steps: 5, sigmaMin: 1, sigmaMax: 5, rho: 1 });
  assert.deepEqual(Array.from(s), [5, 4, 3, 2, 1, 0]);
});

test('karrasSigmas: rejects bad options', () => {
  assert.throws(() => karrasSigmas({ steps: 1 }), /steps must be an integer ≥ 2/);
  assert.throws(() => karrasSigmas({ sigmaMin: 90 }), /0 < sigmaMin < sigmaMax/);
  assert.throws(() => karrasSigmas({ rho: 0 }), /rho must be > 0/);
});
