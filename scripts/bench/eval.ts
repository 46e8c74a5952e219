/**
 * Section `eval`: feature extraction throughput of the embedded MNIST feature network (images/s and
 * achieved GFLOP/s beside a large MatMul measured in the same section), and the time of the metrics on
 * 10,000 samples: FID statistics and Fréchet distance at 128-d (the embedded network) and 2,048-d
 * (Inception-v3 pool3, what CIFAR-10 FID uses), improved precision/recall at 128-d.
 */
import { loadDataset } from '../../src/data/datasets.js';
import { benchFid, benchPrecisionRecall } from '../../src/eval/bench-metrics.js';
import { FeatureExtractor, resolveFeatureNet } from '../../src/eval/features.js';
import { measureMatmul } from './matmul.js';
import { type BenchContext, type Row, best, fmt, median, timeRuns } from './util.js';

/**
 * MatMul/Conv FLOPs of the embedded network per 1×32×32 image (conv 5×5 1→16, pool, 5×5 16→32, pool,
 * fc 2048→128→10).
 */
const FLOPS_PER_IMAGE = 2 * (32 * 32 * 16 * 25 + 16 * 16 * 32 * 16 * 25 + 2048 * 128 + 128 * 10);

export async function runEval(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const test = await loadDataset('mnist', 'test');
  const shape = { channels: 1, height: 32, width: 32 };
  const net = await FeatureExtractor.create(await resolveFeatureNet({ features: 'mnist' }), shape);
  const roof = await measureMatmul(1024, 1024, 1024, 2, ctx.quick ? 5 : 20);
  try {
    for (const batch of ctx.quick ? [128] : [32, 128, 512]) {
      const n = ctx.quick ? 1024 : 10_000;
      const runs = await timeRuns(
        async () => {
          for (let i = 0; i < n; i += batch) {
            const m = Math.min(batch, n - i);
            await net.extract(test.images.subarray(i * 1024, (i + m) * 1024), m, shape);
          }
        },
        1,
        ctx.quick ? 2 : 4,
      );
      const ips = n / (best(runs) / 1000);
      const gflops = (ips * FLOPS_PER_IMAGE) / 1e9;
      rows.push({
        section: 'eval',
        what: `Embedded MNIST feature network, ${n.toLocaleString('en-US')} MNIST test images, batch ${batch}`,
        value: `${fmt(ips)} images/s`,
        note:
          `best of ${runs.length} after 1 warm-up, median ${fmt(n / (median(runs) / 1000))} images/s; includes ` +
          `u8 quantisation; ${fmt(gflops, 1)} GFLOP/s = ${fmt((100 * gflops) / roof.gflops)}% of MatMul 1024³ ` +
          `(${fmt(roof.gflops, 1)} GFLOP/s, same section); ${fmt(FLOPS_PER_IMAGE / 1e6, 2)} MFLOP/image`,
      });
      ctx.log(rows.at(-1)!.value);
    }
  } finally {
    await net.close();
  }
  for (const dim of ctx.quick ? [128] : [128, 2048]) {
    const r = await benchFid(dim);
    rows.push({
      section: 'eval',
      what: `FID of two sets of ${r.n.toLocaleString('en-US')} × ${dim} features`,
      value: `${fmt(2 * r.statsSeconds + r.fidSeconds, 2)} s`,
      note:
        `statistics (float64 mean and covariance, onnxruntime Gram) ${fmt(r.statsSeconds, 2)} s per set; ` +
        `Fréchet distance (Cholesky, ml-matrix SVD) ${fmt(r.fidSeconds, 2)} s; factorisations ` +
        `${r.factorizations.join('/')}`,
    });
    ctx.log(rows.at(-1)!.value);
  }
  const pr = await benchPrecisionRecall(128, ctx.quick ? 2000 : 10_000);
  rows.push({
    section: 'eval',
    what:
      `Improved precision/recall (k = 3), ${pr.n.toLocaleString('en-US')} real × ` +
      `${pr.n.toLocaleString('en-US')} generated, 128-d`,
    value: `${fmt(pr.seconds, 2)} s`,
    note: 'three pairwise-distance passes (onnxruntime MatMul, float32), k-th neighbour radii',
  });
  return rows;
}
