/**
 * Inception Score (Salimans et al. 2016), as pytorch-gan-metrics `core.py` calculate_inception_score (and the
 * original improved-gan code) computes it: split the samples into `splits` consecutive parts (part i holds
 * samples ⌊i·n/splits⌋ … ⌊(i+1)·n/splits⌋ − 1); per part, IS = exp(mean_x KL(p(y|x) ‖ p(y))) with p(y) the
 * part's mean of p(y|x); report the mean and the population std (numpy `std`, ddof = 0) over the parts.
 *
 * p(y|x) = softmax(logits) in float64 via log-softmax, so log p is exact where float32 probabilities would
 * underflow to 0 (numpy's 0·log 0 = NaN); terms with p = 0 contribute their limit 0.
 */
import { UsageError } from '../util/errors.js';

export interface InceptionScoreResult {
  /** Mean IS over the splits (1 ≤ IS ≤ classes). */
  readonly mean: number;
  /** Population standard deviation (ddof 0) of the per-split scores. */
  readonly std: number;
  /** The per-split scores, in split order. */
  readonly splits: readonly number[];
}

/**
 * @param logits float32/float64 [n, classes] row-major: classifier logits (pre-softmax) of n samples.
 * @param splits number of parts (default 10, as GET / pytorch-gan-metrics).
 * @throws UsageError for a non-finite logit (names sample and class), n < splits, splits < 1, or classes < 2.
 */
export function inceptionScore(
  logits: Float32Array | Float64Array,
  n: number,
  classes: number,
  splits = 10,
): InceptionScoreResult {
  if (logits.length !== n * classes)
    throw new RangeError(`inceptionScore: ${logits.length} logits do not fill ${n}×${classes}`);
  if (!Number.isInteger(splits) || splits < 1)
    throw new UsageError(`Inception Score: splits must be a positive integer, got ${splits}`);
  if (classes < 2) throw new UsageError(`Inception Score: needs at least 2 classes, got ${classes}`);
  if (n < splits)
    throw new UsageError(
      `Inception Score: ${n} samples cannot fill ${splits} splits; use at least ${splits} samples or fewer splits`,
    );
  for (let i = 0; i < logits.length; i++) {
    if (!Number.isFinite(logits[i])) {
      throw new UsageError(
        `Inception Score: sample ${Math.floor(i / classes)}, class ${i % classes} has logit ${logits[i]}; ` +
          `the classifier produced non-finite values`,
      );
    }
  }
  const logp = new Float64Array(logits.length); // log p(y|x)
  for (let r = 0; r < n; r++) {
    const o = r * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[o + c]);
    let z = 0;
    for (let c = 0; c < classes; c++) z += Math.exp(logits[o + c] - max);
    const lse = max + Math.log(z);
    for (let c = 0; c < classes; c++) logp[o + c] = logits[o + c] - lse;
  }
  const scores: number[] = [];
  const py = new Float64Array(classes);
  for (let s = 0; s < splits; s++) {
    const lo = Math.floor((s * n) / splits);
    const hi = Math.floor(((s + 1) * n) / splits);
    py.fill(0);
    for (let r = lo; r < hi; r++) for (let c = 0; c < classes; c++) py[c] += Math.exp(logp[r * classes + c]);
    for (let c = 0; c < classes; c++) py[c] /= hi - lo;
    let kl = 0;
    for (let r = lo; r < hi; r++) {
      for (let c = 0; c < classes; c++) {
        const lp = logp[r * classes + c];
        const p = Math.exp(lp);
        if (p > 0) kl += p * (lp - Math.log(py[c]));
      }
    }
    scores.push(Math.exp(kl / (hi - lo)));
  }
  const mean = scores.reduce((a, b) => a + b, 0) / splits;
  const std = Math.sqrt(scores.reduce((a, b) => a + (b - mean) ** 2, 0) / splits);
  return { mean, std, splits: scores };
}
