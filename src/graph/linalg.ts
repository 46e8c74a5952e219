/**
 * Dense float64 matrix products on onnxruntime (its MatMul kernel runs ~100 GFLOP/s here, against
 * ~1 GFLOP/s for a plain JS loop), for fitting and baselines outside the model graphs.
 */
import { Graph } from './ir.js';
import * as op from './ops.js';
import { toOnnx } from './onnx.js';
import { OrtSession } from './session.js';

let session: Promise<OrtSession> | null = null;

function matmulSession(): Promise<OrtSession> {
  if (!session) {
    const g = new Graph('matmul_f64');
    const a = g.input('a', 'float64', ['m', 'k']);
    const b = g.input('b', 'float64', ['k', 'n']);
    session = OrtSession.create(toOnnx(g, { outputs: { c: op.matmul(a, b) } }));
  }
  return session;
}

/**
 * C = A·B for row-major float64 A [m,k] and B [k,n] → C [m,n].
 * @throws when the array lengths do not match the dims.
 */
export async function matmulF64(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Promise<Float64Array> {
  if (a.length !== m * k || b.length !== k * n) throw new Error(`matmulF64: A has ${a.length} values for [${m},${k}], B ${b.length} for [${k},${n}]`);
  const s = await matmulSession();
  const out = await s.run({ a: { dtype: 'float64', dims: [m, k], data: a }, b: { dtype: 'float64', dims: [k, n], data: b } });
  return out.c.data as Float64Array;
}

/** Aᵀ for row-major A [m,n] → [n,m]. */
export function transposeF64(a: Float64Array, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}
