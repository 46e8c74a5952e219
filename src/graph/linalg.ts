/**
 * Float64 matrix products on onnxruntime (one cached Gemm session per transpose combination), for the
 * dense linear algebra outside the model graphs: fitting the mixture teacher (covariances XᵀX, k-means
 * scores, subspace iteration) and the ridge baseline.
 * onnxruntime's float64 Gemm runs at ~130–190 GFLOP/s on this 2-core CPU versus ~1 GFLOP/s for JS loops.
 */
import { Graph } from './ir.js';
import { toOnnx } from './onnx.js';
import * as op from './ops.js';
import { OrtSession, f64 } from './session.js';

/** A row-major float64 matrix. */
export interface Mat {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

export const mat = (rows: number, cols: number, data: Float64Array = new Float64Array(rows * cols)): Mat => {
  if (data.length !== rows * cols) throw new RangeError(`mat: ${data.length} values do not fill ${rows}×${cols}`);
  return { rows, cols, data };
};

/** Cached float64 Gemm sessions: op(A) · op(B) with op = identity or transpose. */
export class F64Gemm {
  private readonly sessions = new Map<string, Promise<OrtSession>>();

  constructor(private readonly threads?: number) {}

  private session(transA: boolean, transB: boolean): Promise<OrtSession> {
    const key = `${+transA}${+transB}`;
    let s = this.sessions.get(key);
    if (!s) {
      const g = new Graph(`gemm_${key}`);
      // Symbolic dims named so that the shared inner dim k matches: op(a) [m, k], op(b) [k, n].
      const a = g.input('a', 'float64', transA ? ['k', 'm'] : ['m', 'k']);
      const b = g.input('b', 'float64', transB ? ['n', 'k'] : ['k', 'n']);
      const y = op.gemm(a, b, { transA, transB });
      s = OrtSession.create(toOnnx(g, { outputs: { y } }), { threads: this.threads });
      this.sessions.set(key, s);
    }
    return s;
  }

  /**
   * op(A)·op(B), where op transposes when asked.
   * @throws RangeError when the inner dimensions differ.
   */
  async mul(a: Mat, b: Mat, transA = false, transB = false): Promise<Mat> {
    const [m, k] = transA ? [a.cols, a.rows] : [a.rows, a.cols];
    const [k2, n] = transB ? [b.cols, b.rows] : [b.rows, b.cols];
    if (k !== k2) throw new RangeError(`F64Gemm: inner dims differ (${m}×${k} · ${k2}×${n})`);
    if (m === 0 || n === 0 || k === 0) return mat(m, n);
    const s = await this.session(transA, transB);
    const out = await s.run({ a: f64([a.rows, a.cols], a.data), b: f64([b.rows, b.cols], b.data) });
    return mat(m, n, out.y.data as Float64Array);
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(all.map(async (s) => (await s).release()));
  }
}
