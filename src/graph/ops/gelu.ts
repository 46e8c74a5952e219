/**
 * Exact GELU, built from Erf (opset 17 has no Gelu), and its fused gradient: autodiff recognises the
 * nodes `gelu` emits and differentiates them as one function.
 */
import { type Node, type Value } from '../ir.js';
import { add, mul, sub } from './binary.js';
import { isFloat } from './core.js';
import { erf } from './erf.js';
import { scalar } from './scalar.js';
import { exp } from './unary.js';

/** Exact GELU, x·Φ(x) = 0.5·x·(1 + erf(x/√2)), built from Erf (opset 17 has no Gelu). */
export function gelu(x: Value): Value {
  const inner = erf(mul(x, scalar(x, Math.SQRT1_2)));
  return mul(mul(x, scalar(x, 0.5)), add(inner, scalar(x, 1)));
}

const isScalarConst = (v: Value, c: number) =>
  v.kind === 'const' &&
  v.data !== undefined &&
  v.data.data.length === 1 &&
  isFloat(v.dtype) &&
  Math.abs(Number(v.data.data[0]) - c) < 1e-6;

/** The values of a GELU that `gelu` built: y = (x·½)·a with a = erf(m) + 1, m = x·√½. */
export interface GeluMatch {
  readonly x: Value;
  readonly a: Value;
  readonly m: Value;
}

/** Matches gelu's nodes at their last Mul `n`; undefined when `n` is not one. */
export function matchGelu(n: Node): GeluMatch | undefined {
  if (n.op !== 'Mul') return undefined;
  const [h, a] = n.inputs;
  const hp = h.producer;
  const ap = a.producer;
  if (hp?.op !== 'Mul' || ap?.op !== 'Add' || !isScalarConst(hp.inputs[1], 0.5) || !isScalarConst(ap.inputs[1], 1))
    return undefined;
  const x = hp.inputs[0];
  const ep = ap.inputs[0].producer;
  const mp = ep?.op === 'Erf' ? ep.inputs[0].producer : undefined;
  if (mp?.op !== 'Mul' || mp.inputs[0] !== x || !isScalarConst(mp.inputs[1], Math.SQRT1_2)) return undefined;
  return { x, a, m: mp.outputs[0] };
}

/** d gelu / dx · g = ½·g·(a + x·√(2/π)·e^(−m²)): 7 elementwise passes instead of the per-node rules' 9. */
export function geluGrad(g: Value, { x, a, m }: GeluMatch): Value {
  const c = scalar(x, Math.log(Math.sqrt(2 / Math.PI))); // 2·φ(x) = exp(c − m²), m = x/√2
  const inner = add(a, mul(x, exp(sub(c, mul(m, m)))));
  return mul(mul(g, scalar(g, 0.5)), inner);
}
