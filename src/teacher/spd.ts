/**
 * Inverse and log-determinant of a small symmetric positive-definite matrix by Cholesky (A = L Lᵀ).
 * Used per mixture component and σ on r×r matrices (r ≈ 32), where plain loops over a Float64Array
 * are ~100× faster than going through ml-matrix objects.
 */

/**
 * @param a float64 [n, n] row-major, symmetric positive definite (only the lower triangle is read).
 * @param n the order.
 * @returns inv float64 [n, n] (= A⁻¹, exactly symmetric) and logdet = log det A.
 * @throws Error when A is not positive definite (a pivot ≤ 0).
 */
export function spdInverse(a: Float64Array, n: number): { inv: Float64Array; logdet: number } {
  const L = new Float64Array(n * n);
  let logdet = 0;
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= L[j * n + k] * L[j * n + k];
    if (!(d > 0)) throw new Error(`spdInverse: matrix is not positive definite (pivot ${j} is ${d})`);
    const ljj = Math.sqrt(d);
    L[j * n + j] = ljj;
    logdet += 2 * Math.log(ljj);
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = s / ljj;
    }
  }
  // Li = L⁻¹ (lower triangular), then A⁻¹ = Liᵀ Li.
  const Li = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    Li[j * n + j] = 1 / L[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s -= L[i * n + k] * Li[k * n + j];
      Li[i * n + j] = s / L[i * n + i];
    }
  }
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += Li[k * n + i] * Li[k * n + j];
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  return { inv, logdet };
}
