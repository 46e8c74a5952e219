/** The error function elementwise (ONNX Erf), with a float64 kernel accurate to ~1e-16. */
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Value, fail } from '../ir.js';
import { mul, sub } from './binary.js';
import { type OpDef, type RefTensor, emit, g0, mapFloats, unaryShape } from './core.js';
import { scalar } from './scalar.js';
import { exp } from './unary.js';

/**
 * erf(x) to ~1e-16 absolute (float64): the Maclaurin series Σ (−1)ⁿ x^(2n+1) / (n!(2n+1)) · 2/√π for
 * |x| < 1 (at most 0.84 of cancellation), else 1 − erfc(x) with erfc from its continued fraction
 * e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))) evaluated by the modified Lentz method.
 * Source: Abramowitz & Stegun 7.1.5 and 7.1.14.
 */
export function erfNumber(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 1) {
    const x2 = x * x;
    let term = x; // (−1)ⁿ x^(2n+1) / n!
    let s = x;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      s += t;
      if (Math.abs(t) < 1e-17 * Math.abs(s)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * s;
  }
  const e = erfc(ax);
  return x > 0 ? 1 - e : e - 1;
}

/** erfc(x) for x ≥ 1 by the continued fraction above (relative error ~1e-15). */
function erfc(x: number): number {
  if (x > 27) return 0; // e^(−729) underflows
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? 1 / tiny : 1 / d;
    c = x + a / c;
    if (Math.abs(c) < tiny) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
  }
  return fail('erf', `continued fraction did not converge at x = ${x}`);
}

export const Erf: OpDef = {
  type: 'Erf',
  shape: unaryShape('Erf'),
  grad: (n, gys) => {
    const x = n.inputs[0];
    // d erf(x)/dx = 2/√π·exp(−x²) = exp(ln(2/√π) − x²)
    const c = scalar(x, Math.log(2 / Math.sqrt(Math.PI)));
    return [mul(g0(gys), exp(sub(c, mul(x, x))))];
  },
  reference: (ins) => [mapFloats(ins[0] as RefTensor, erfNumber)],
  tfjs: (tf, ins) => [tf.erf(ins[0] as Tensor)],
};

export const erf = (x: Value) => emit(Erf, [x])[0];
