/**
 * The embedded feature networks of the evaluation (FID, IS, precision/recall on MNIST-like data): a
 * small CNN classifier per dataset, built on the graph IR, trained by this project's own autodiff and
 * onnxruntime (as GET is: src/train/engine.ts), and shipped as ONNX in assets/feature-nets/ with a
 * model card (`get-distill/feature-net@1`).
 *
 *   image [B,1,32,32] in [0,1] ─conv 5×5 1→16 pad 2, ReLU, avg-pool 2─▶ [B,16,16,16]
 *     ─conv 5×5 16→32 pad 2, ReLU, avg-pool 2─▶ [B,32,8,8] ─flatten, fc 2048→128─▶ features [B,128]
 *     ─ReLU, fc 128→10─▶ logits [B,10]
 *
 * `features` are taken before the last ReLU, so no unit is ever constant zero and their covariance
 * has full rank (FID needs its square root). The input is the GET/EDM evaluation quantisation
 * (get-reference.md §7): u8 = clip(⌊x·127.5 + 128⌋, 0, 255), then u8/255.
 */
import { toUint8 } from '../data/png.js';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { z } from 'zod';
import { featureStats } from './stats.js';
import type { ImageDataset } from '../data/datasets.js';
import type { ParamSpec } from '../get/model.js';
import { gradients } from '../graph/autodiff.js';
import { type Dim, Graph, type Value } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import * as op from '../graph/ops.js';
import { type HostTensor, OrtSession } from '../graph/session.js';
import { AdamW, type AdamWConfig } from '../train/optim.js';
import { ParamStore, initParams } from '../train/params.js';
import { DATASETS, type DatasetName } from '../spec/names.js';
import { sha256Hex } from '../util/fsutil.js';
import { Rng } from '../util/rng.js';

/** Datasets with a shipped feature network (assets/feature-nets/<name>.onnx and .json): every dataset. */
export const EMBEDDED_FEATURE_NETS = DATASETS;
export type FeatureNetDataset = DatasetName;
/** The model card's `format`. */
export const FEATURE_NET_FORMAT = 'get-distill/feature-net@1';

/** Layer widths of the classifier. */
export interface FeatureNetArch {
  readonly conv1: number;
  readonly conv2: number;
  /** Square conv kernel side (padding keeps the spatial size: pad = (kernel − 1)/2). */
  readonly kernel: number;
  /** Width of the feature layer F. */
  readonly hidden: number;
  readonly classes: number;
}
/** The shipped architecture: 276,810 parameters (~1.1 MB of float32). */
export const FEATURE_NET_ARCH: FeatureNetArch = { conv1: 16, conv2: 32, kernel: 5, hidden: 128, classes: 10 };

/**
 * Parameter shapes in PyTorch layout (conv [O, C, k, k]; fc weights [in, out] as in src/get/model.ts),
 * Xavier-uniform weights, zero biases.
 */
export function featureNetSpecs(a: FeatureNetArch = FEATURE_NET_ARCH): ParamSpec[] {
  const k2 = a.kernel * a.kernel;
  const flat = a.conv2 * 8 * 8;
  const w = (name: string, shape: number[], fanIn: number, fanOut: number): ParamSpec => ({
    name,
    shape,
    init: { kind: 'xavier', fanIn, fanOut },
  });
  const b = (name: string, n: number): ParamSpec => ({ name, shape: [n], init: { kind: 'zeros' } });
  return [
    w('conv1.weight', [a.conv1, 1, a.kernel, a.kernel], k2, a.conv1 * k2),
    b('conv1.bias', a.conv1),
    w('conv2.weight', [a.conv2, a.conv1, a.kernel, a.kernel], a.conv1 * k2, a.conv2 * k2),
    b('conv2.bias', a.conv2),
    w('fc1.weight', [flat, a.hidden], flat, a.hidden),
    b('fc1.bias', a.hidden),
    w('fc2.weight', [a.hidden, a.classes], a.hidden, a.classes),
    b('fc2.bias', a.classes),
  ];
}

/** The classifier's values in a graph. */
export interface FeatureNetGraph {
  /** Input `image` float32 [batch, 1, 32, 32] in [0, 1]. */
  readonly image: Value;
  /** float32 [batch, hidden]: the fc1 output before its ReLU. */
  readonly features: Value;
  /** float32 [batch, classes]. */
  readonly logits: Value;
  readonly specs: readonly ParamSpec[];
}

/** Declares the input and parameters in `g` and builds the forward pass (see the file comment). */
export function buildFeatureNet(g: Graph, batch: Dim, a: FeatureNetArch = FEATURE_NET_ARCH): FeatureNetGraph {
  const specs = featureNetSpecs(a);
  const p = Object.fromEntries(specs.map((s) => [s.name, g.param(s.name, s.shape)]));
  const image = g.input('image', 'float32', [batch, 1, 32, 32]);
  const pads = (a.kernel - 1) / 2;
  const block = (x: Value, name: string) =>
    op.avgPool2d(op.relu(op.conv2d(x, p[`${name}.weight`], p[`${name}.bias`], { pads })), 2);
  const h = op.reshape(block(block(image, 'conv1'), 'conv2'), [batch, a.conv2 * 64]);
  const features = op.gemm(h, p['fc1.weight'], {}, p['fc1.bias']);
  const logits = op.gemm(op.relu(features), p['fc2.weight'], {}, p['fc2.bias']);
  return { image, features, logits, specs };
}

/**
 * The evaluation quantisation of images in [−1, 1]: u8 as section 5 of docs/data-contracts.md
 * (toUint8, EDM's float32 arithmetic), v = u8/255 (get-reference.md §7). For a dataset image
 * x = u8/127.5 − 1 (float32) it gives u8/255 exactly.
 * @param x float32 [n·1·32·32]; @returns float32 of the same length in [0, 1] (written into `out`).
 */
export function toUnitRange(x: Float32Array, out = new Float32Array(x.length)): Float32Array {
  const u8 = toUint8(x);
  for (let i = 0; i < x.length; i++) out[i] = u8[i] / 255;
  return out;
}

/** Options of {@link trainFeatureNet}. */
export interface FeatureNetTrainOptions {
  readonly epochs: number;
  readonly batch: number;
  /** Peak AdamW learning rate (linear warm-up over `warmupSteps`, then cosine decay to 0). */
  readonly lr: number;
  readonly warmupSteps: number;
  /** AdamW decoupled weight decay (PyTorch convention: θ ← θ·(1 − lr·wd)). */
  readonly weightDecay: number;
  /** Seeds the initialisation (seed) and the per-epoch shuffles (seed + 1). */
  readonly seed: number;
  /** onnxruntime intra-op threads; fixed, because the float sums (and so the bytes) may depend on it. */
  readonly threads: number;
  /** Train on the first `limit` images only (tests). */
  readonly limit?: number;
  /** Stop after this many steps (tests); default epochs × ⌊n / batch⌋. */
  readonly maxSteps?: number;
  /** Called after every step with the step count (1-based), the total and the batch loss. */
  readonly onStep?: (step: number, total: number, loss: number) => void;
}

/**
 * The shipped networks' training settings (both datasets). Measured on this 2-core CPU: ~21 steps/s,
 * 12 epochs in ~4.4 min per network; test accuracy MNIST 99.26% (99.18% after 6 epochs), Fashion-MNIST
 * 92.32% (90.90% after 6 epochs).
 */
export const FEATURE_NET_TRAINING = {
  epochs: 12,
  batch: 128,
  lr: 2e-3,
  warmupSteps: 200,
  weightDecay: 0.01,
  seed: 1,
  threads: 2,
} as const satisfies FeatureNetTrainOptions;

/**
 * Trains the classifier with mean softmax cross-entropy: one onnxruntime session runs the forward
 * pass and the generated backward graph; AdamW (src/train/optim.ts) updates the flat parameters.
 * Deterministic: the same data and options give the same weights (bit for bit on one machine).
 * @param data the training split (images in [−1, 1], quantised here as for evaluation).
 * @returns the trained parameters and the mean loss of the last epoch's steps.
 * @throws when the batch is larger than the training set.
 */
export async function trainFeatureNet(
  data: ImageDataset,
  o: FeatureNetTrainOptions,
  a: FeatureNetArch = FEATURE_NET_ARCH,
): Promise<{ params: ParamStore; steps: number; lastEpochLoss: number }> {
  const n = Math.min(data.n, o.limit ?? data.n);
  const perEpoch = Math.floor(n / o.batch);
  if (perEpoch < 1) throw new Error(`trainFeatureNet: batch ${o.batch} is larger than the ${n} training images`);
  const total = Math.min(o.maxSteps ?? Infinity, o.epochs * perEpoch);

  const g = new Graph('feature_net_train');
  const net = buildFeatureNet(g, o.batch, a);
  const labels = g.input('labels', 'int64', [o.batch]);
  const nll = op.neg(op.reduceSum(op.mul(op.oneHot(labels, a.classes), op.logSoftmax(net.logits)), [1]));
  const loss = op.reduceMean(nll, [0]);
  const grads = gradients(loss, g.params);
  const outputs: Record<string, Value> = { loss };
  g.params.forEach((p, i) => (outputs[`grad:${p.name}`] = grads[i]));
  const session = await OrtSession.create(toOnnx(g, { outputs }), { threads: o.threads });

  const params = initParams(net.specs, o.seed);
  const cfg: AdamWConfig = { lr: o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: o.weightDecay };
  const adam = new AdamW(cfg, params.size);
  const grad = new Float32Array(params.size);
  const shuffle = new Rng(o.seed + 1);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const images = new Float32Array(o.batch * 1024);
  const y = new BigInt64Array(o.batch);
  const feeds: Record<string, HostTensor> = {
    image: { dtype: 'float32', dims: [o.batch, 1, 32, 32], data: images },
    labels: { dtype: 'int64', dims: [o.batch], data: y },
  };
  for (const s of net.specs) feeds[s.name] = { dtype: 'float32', dims: s.shape, data: params.view(s.name) };

  let lossSum = 0;
  try {
    for (let step = 0; step < total; step++) {
      const k = step % perEpoch;
      if (k === 0) {
        lossSum = 0;
        for (let i = n - 1; i > 0; i--) {
          // Fisher–Yates
          const j = shuffle.int(i + 1);
          [order[i], order[j]] = [order[j], order[i]];
        }
      }
      for (let b = 0; b < o.batch; b++) {
        const idx = order[k * o.batch + b];
        toUnitRange(data.images.subarray(idx * 1024, (idx + 1) * 1024), images.subarray(b * 1024, (b + 1) * 1024));
        y[b] = BigInt(data.labels[idx]);
      }
      const out = await session.run(feeds);
      for (const s of net.specs)
        grad.set(out[`grad:${s.name}`].data as Float32Array, params.offsets.get(s.name)!.offset);
      // The schedule sets the lr AdamW reads on each step (its config object is ours).
      cfg.lr =
        o.lr * Math.min(1, (step + 1) / Math.max(1, o.warmupSteps)) * 0.5 * (1 + Math.cos((Math.PI * step) / total));
      adam.step(params.flat, grad);
      const l = (out.loss.data as Float32Array)[0];
      lossSum += l;
      o.onStep?.(step + 1, total, l);
    }
  } finally {
    await session.release();
  }
  return { params, steps: total, lastEpochLoss: lossSum / (((total - 1) % perEpoch) + 1) };
}

/**
 * The inference model: `image` [B,1,32,32] → `features` [B,F], `logits` [B,10]; opset 17, weights as
 * initialisers, symbolic batch `B`.
 */
export function exportFeatureNet(
  params: ParamStore,
  dataset: FeatureNetDataset,
  a: FeatureNetArch = FEATURE_NET_ARCH,
): Uint8Array {
  const g = new Graph(`feature_net_${dataset.replace('-', '_')}`);
  const net = buildFeatureNet(g, 'B', a);
  return toOnnx(g, {
    outputs: { features: net.features, logits: net.logits },
    paramValues: (p) => params.view(p.name),
    docString: `${dataset} classifier of get-distill's evaluation (features before the last ReLU)`,
    metadata: { format: FEATURE_NET_FORMAT, dataset },
  });
}

/** Features, logits and accuracy of a feature network over a labelled dataset. */
export interface FeatureNetRun {
  /** float32 [n, F]. */
  readonly features: Float32Array;
  /** float32 [n, classes]. */
  readonly logits: Float32Array;
  /** Images whose largest logit is their label (first maximum on ties). */
  readonly correct: number;
  readonly n: number;
}

/**
 * Runs an exported feature network (onnxruntime) over every image of `data`, in batches of `batch`.
 * @throws onnxruntime's error when the model does not take `image` [B,1,32,32].
 */
export async function runFeatureNet(
  onnx: Uint8Array,
  data: ImageDataset,
  batch = 1000,
  threads?: number,
): Promise<FeatureNetRun> {
  const s = await OrtSession.create(onnx, { threads });
  let features = new Float32Array(0);
  let logits = new Float32Array(0);
  let correct = 0;
  try {
    for (let i = 0; i < data.n; i += batch) {
      const m = Math.min(batch, data.n - i);
      const image = toUnitRange(data.images.subarray(i * 1024, (i + m) * 1024));
      const out = await s.run({ image: { dtype: 'float32', dims: [m, 1, 32, 32], data: image } }, [
        'features',
        'logits',
      ]);
      const f = out.features.data as Float32Array;
      const l = out.logits.data as Float32Array;
      if (i === 0) {
        features = new Float32Array(data.n * (f.length / m));
        logits = new Float32Array(data.n * (l.length / m));
      }
      features.set(f, i * (f.length / m));
      logits.set(l, i * (l.length / m));
      const k = l.length / m;
      for (let r = 0; r < m; r++) {
        let best = 0;
        for (let c = 1; c < k; c++) if (l[r * k + c] > l[r * k + best]) best = c;
        if (best === data.labels[i + r]) correct++;
      }
    }
  } finally {
    await s.release();
  }
  return { features, logits, correct, n: data.n };
}

/**
 * Smallest and largest eigenvalue of the covariance (unbiased, float64; the statistics FID uses,
 * featureStats) of `rows` float32 [n, d]: FID needs the smallest to be > 0 (no dead feature units).
 * @throws UsageError as featureStats (non-finite rows, n ≤ d).
 */
export async function covarianceEigenRange(rows: Float32Array, n: number): Promise<{ min: number; max: number }> {
  const d = rows.length / n;
  const { sigma } = await featureStats(rows, n, d, 'feature-net features');
  const ev = new EigenvalueDecomposition(Matrix.from1DArray(d, d, sigma), { assumeSymmetric: true }).realEigenvalues;
  return { min: Math.min(...ev), max: Math.max(...ev) };
}

/** The model card (`<dataset>.json` beside the ONNX file), validated when loaded. */
export const FeatureNetCardSchema = z
  .object({
    format: z.literal(FEATURE_NET_FORMAT),
    dataset: z.enum(EMBEDDED_FEATURE_NETS),
    input: z.object({
      name: z.literal('image'),
      shape: z.tuple([z.literal('B'), z.literal(1), z.literal(32), z.literal(32)]),
      dtype: z.literal('float32'),
      range: z.tuple([z.literal(0), z.literal(1)]),
      preprocessing: z.string(),
    }),
    outputs: z.object({
      features: z.object({ name: z.string(), dim: z.number().int().positive(), note: z.string() }),
      logits: z.object({ name: z.string(), classes: z.number().int().positive() }),
    }),
    architecture: z.object({
      summary: z.string(),
      conv1: z.number(),
      conv2: z.number(),
      kernel: z.number(),
      hidden: z.number(),
      classes: z.number(),
    }),
    parameterCount: z.number().int().positive(),
    training: z.object({
      epochs: z.number().int(),
      batch: z.number().int(),
      lr: z.number(),
      warmupSteps: z.number().int(),
      schedule: z.string(),
      weightDecay: z.number(),
      seed: z.number().int(),
      optimizer: z.string(),
      loss: z.string(),
      threads: z.number().int(),
      steps: z.number().int(),
      seconds: z.number(),
      command: z.string(),
    }),
    /** Fractions correct/n measured with onnxruntime on the exported ONNX (src/data/datasets.ts splits). */
    testAccuracy: z.number().min(0).max(1),
    trainAccuracy: z.number().min(0).max(1),
    /** Eigenvalue range of the features' covariance over the test split. */
    testFeatureCovariance: z.object({ minEigenvalue: z.number(), maxEigenvalue: z.number() }),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    bytes: z.number().int().positive(),
  })
  .strict();
export type FeatureNetCard = z.infer<typeof FeatureNetCardSchema>;

/** Where the shipped assets live: assets/feature-nets/ of the package (next to src/). */
export function featureNetAssetDir(): string {
  return fileURLToPath(new URL('../../assets/feature-nets/', import.meta.url));
}

/**
 * The shipped network for `dataset`: its ONNX bytes and model card, checked against each other.
 * @param dir the folder holding `<dataset>.onnx` and `<dataset>.json` (ending in /); default the package's assets.
 * @throws Error naming the file when an asset is missing or unreadable, the card does not parse, or
 *   the ONNX bytes do not match the card's size and sha256 (the fix: re-run scripts/train-feature-nets.ts).
 */
export async function embeddedFeatureNet(
  dataset: FeatureNetDataset,
  dir = featureNetAssetDir(),
): Promise<{ onnx: Uint8Array; card: FeatureNetCard }> {
  if (!EMBEDDED_FEATURE_NETS.includes(dataset))
    throw new Error(
      `embeddedFeatureNet: unknown dataset '${String(dataset)}' (use ${EMBEDDED_FEATURE_NETS.join(' or ')})`,
    );
  const fix = `regenerate it with: node --import tsx scripts/train-feature-nets.ts --dataset ${dataset}`;
  const read = async (file: string) => {
    try {
      return new Uint8Array(await readFile(dir + file));
    } catch (e) {
      throw new Error(
        `embedded feature network ${dir}${file} cannot be read ` +
          `(${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ${fix}`,
        { cause: e },
      );
    }
  };
  // One after the other: with both files missing, the error must always name the network first.
  const onnx = await read(`${dataset}.onnx`);
  const cardBytes = await read(`${dataset}.json`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(cardBytes));
  } catch (e) {
    throw new Error(`${dir}${dataset}.json is not JSON (${(e as Error).message}); ${fix}`, { cause: e });
  }
  const parsed = FeatureNetCardSchema.safeParse(json);
  if (!parsed.success)
    throw new Error(
      `${dir}${dataset}.json is not a ${FEATURE_NET_FORMAT} model card: ` +
        `${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}; ${fix}`,
    );
  const card = parsed.data;
  if (card.dataset !== dataset || card.bytes !== onnx.length || card.sha256 !== sha256Hex(onnx)) {
    throw new Error(
      `${dir}${dataset}.onnx (${onnx.length} bytes) does not match its model card ` +
        `(${card.dataset}, ${card.bytes} bytes, sha256 ${card.sha256.slice(0, 12)}…); ${fix}`,
    );
  }
  return { onnx, card };
}
