/**
 * Trains the embedded feature networks of the evaluation (src/eval/feature-net.ts) and writes
 * assets/feature-nets/<dataset>.onnx and <dataset>.json (model card). Deterministic: the same command
 * on the same machine writes the same bytes.
 *
 * Usage: node --import tsx scripts/train-feature-nets.ts [--dataset mnist|fashion-mnist|all] [--epochs N] [--out DIR]
 */
import { parseArgs } from 'node:util';
import { loadDataset } from '../src/data/datasets.js';
import {
  EMBEDDED_FEATURE_NETS,
  FEATURE_NET_ARCH,
  FEATURE_NET_FORMAT,
  FEATURE_NET_TRAINING,
  type FeatureNetCard,
  type FeatureNetDataset,
  FeatureNetCardSchema,
  covarianceEigenRange,
  exportFeatureNet,
  featureNetAssetDir,
  runFeatureNet,
  trainFeatureNet,
} from '../src/eval/feature-net.js';
import { joinUri, storeFor } from '../src/store/index.js';
import { sha256Hex } from '../src/util/fsutil.js';
import { Progress } from '../src/util/progress.js';

const { values } = parseArgs({
  options: { dataset: { type: 'string', default: 'all' }, epochs: { type: 'string' }, out: { type: 'string' } },
});
const names = values.dataset === 'all' ? [...EMBEDDED_FEATURE_NETS] : [values.dataset as FeatureNetDataset];
if (!names.every((d) => EMBEDDED_FEATURE_NETS.includes(d))) {
  console.error(`--dataset must be ${EMBEDDED_FEATURE_NETS.join(', ')} or all, got ${values.dataset}`);
  process.exit(2);
}
const epochs = values.epochs === undefined ? FEATURE_NET_TRAINING.epochs : Number(values.epochs);
if (!Number.isInteger(epochs) || epochs < 1) {
  console.error(`--epochs must be a positive integer, got ${values.epochs}`);
  process.exit(2);
}
const outDir = values.out ?? featureNetAssetDir();
const store = storeFor(outDir);
const progress = new Progress();

for (const dataset of names) {
  const train = await loadDataset(dataset, 'train');
  const opts = { ...FEATURE_NET_TRAINING, epochs };
  const bar = progress.bar(`feature net ${dataset}`, 'steps');
  const t0 = performance.now();
  const { params, steps, lastEpochLoss } = await trainFeatureNet(train, {
    ...opts,
    onStep: (s, total, loss) => {
      if (s % 10 === 0 || s === total) bar.update(s, total, { loss: loss.toFixed(4) });
    },
  });
  bar.stop();
  const seconds = Math.round((performance.now() - t0) / 100) / 10;
  const onnx = exportFeatureNet(params, dataset);
  const trainRun = await runFeatureNet(onnx, train);
  const testRun = await runFeatureNet(onnx, await loadDataset(dataset, 'test'));
  const eig = await covarianceEigenRange(testRun.features, testRun.n);
  const a = FEATURE_NET_ARCH;
  const card: FeatureNetCard = FeatureNetCardSchema.parse({
    format: FEATURE_NET_FORMAT,
    dataset,
    input: {
      name: 'image',
      shape: ['B', 1, 32, 32],
      dtype: 'float32',
      range: [0, 1],
      preprocessing: 'u8/255 of the EDM quantization: u8 = clip(floor(x*127.5 + 128), 0, 255) for x in [-1, 1]',
    },
    outputs: {
      features: { name: 'features', dim: a.hidden, note: 'fc1 output before its ReLU' },
      logits: { name: 'logits', classes: a.classes },
    },
    architecture: {
      summary:
        `conv ${a.kernel}x${a.kernel} 1->${a.conv1} pad 2, ReLU, avgpool 2; conv ${a.kernel}x${a.kernel} ` +
        `${a.conv1}->${a.conv2} pad 2, ReLU, avgpool 2; fc ${a.conv2 * 64}->${a.hidden} (features); ReLU; fc ` +
        `${a.hidden}->${a.classes} (logits)`,
      ...a,
    },
    parameterCount: params.size,
    training: {
      epochs,
      batch: opts.batch,
      lr: opts.lr,
      warmupSteps: opts.warmupSteps,
      schedule: 'linear warm-up, cosine decay to 0',
      weightDecay: opts.weightDecay,
      seed: opts.seed,
      optimizer: 'AdamW (betas 0.9, 0.999, eps 1e-8), src/train/optim.ts',
      loss: 'mean softmax cross-entropy',
      threads: opts.threads,
      steps,
      seconds,
      command:
        `node --import tsx scripts/train-feature-nets.ts --dataset ${dataset}` +
        (values.epochs === undefined ? '' : ` --epochs ${epochs}`),
    },
    testAccuracy: testRun.correct / testRun.n,
    trainAccuracy: trainRun.correct / trainRun.n,
    testFeatureCovariance: { minEigenvalue: eig.min, maxEigenvalue: eig.max },
    sha256: sha256Hex(onnx),
    bytes: onnx.length,
  });
  // The card names the ONNX bytes, so write them first: a card on disk always describes its model.
  await store.put(joinUri(outDir, `${dataset}.onnx`), onnx);
  await store.put(joinUri(outDir, `${dataset}.json`), new TextEncoder().encode(`${JSON.stringify(card, null, 2)}\n`));
  progress.summary([
    ['dataset', dataset],
    ['train time', `${seconds} s (${steps} steps, last-epoch loss ${lastEpochLoss.toFixed(4)})`],
    ['train accuracy', `${trainRun.correct}/${trainRun.n}`],
    ['test accuracy', `${testRun.correct}/${testRun.n}`],
    ['feature covariance eigenvalues', `${eig.min.toExponential(3)} … ${eig.max.toExponential(3)}`],
    ['onnx', `${joinUri(outDir, `${dataset}.onnx`)} ${onnx.length} bytes sha256 ${card.sha256}`],
  ]);
}
