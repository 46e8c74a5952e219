/**
 * The exported one-step generator (DATA CONTRACT `get-distill/model@1`, docs/data-contracts.md):
 * `model.onnx` built from the same GET definition as training (src/get/model.ts), EMA weights as
 * initialisers, opset 17, symbolic batch `batch`, K fixed-point iterations unrolled with the per-sample
 * lowest-residual choice (no data-dependent control flow), and a model card JSON beside it.
 *
 * Inputs:  `noise` float32 [batch, C, H, W] (N(0, I); noiseForSeed(seed) for reproducible images),
 *          `class_labels` int64 [batch] (conditional models only, in [0, num_classes)),
 *          `z0` float32 [batch, N, D] (the fixed-point start state; z0ForSeed(seed)).
 * Outputs: `image` float32 [batch, C, H, W] (about [−1, 1]; to uint8 as clip(x·127.5 + 128, 0, 255)),
 *          `residual2` float32 [batch] (‖f(z) − z‖² of the chosen iterate).
 * metadata_props: `format`, `config` (GetConfig JSON), `iterations`, `num_classes`, `step`,
 * `data_manifest_sha256`.
 */
import { readOnnxSignature, type TensorSignature } from '../graph/onnx-inspect.js';
import { sha256Hex } from '../util/fsutil.js';
import { type GetConfig, GetConfigSchema, numTokens, referenceParamCount } from './config.js';
import { inferenceModel } from './sampler.js';

export const MODEL_FORMAT = 'get-distill/model@1';

/** How a caller makes the inputs of one reproducible sample from its seed. */
export const SEED_CONTRACT = {
  noise: 'noiseForSeed(seed, [C, H, W]) from src/data/seeds.ts: NumPy RandomState(seed).standard_normal, as float32',
  z0: 'z0ForSeed(seed, N·D) from src/get/sampler.ts: Rng(fmix32(seed ^ 0x5eed0000)).fillNormal',
} as const;

/** What an exported model says about itself: read from model.onnx, and repeated in its model card. */
export interface ModelDescription {
  readonly config: GetConfig;
  readonly iterations: number;
  /** Training step of the exported EMA weights. */
  readonly step: number;
  /** Digest of the pair dataset the weights were trained on (datasetDigest of its manifest). */
  readonly dataManifestSha256: string;
  readonly inputs: readonly TensorSignature[];
  readonly outputs: readonly TensorSignature[];
}

/** The model card written beside model.onnx (`model.json`). */
export interface ModelCard extends ModelDescription {
  readonly format: typeof MODEL_FORMAT;
  readonly preset: string;
  /** Reference convention: trainable parameters + the frozen positional embedding (N·D). */
  readonly parameterCount: number;
  readonly seedContract: typeof SEED_CONTRACT;
  /** sha256 (lowercase hex) and size in bytes of model.onnx. */
  readonly sha256: string;
  readonly bytes: number;
  readonly createdAt: string;
}

/** What a loaded model.onnx says about itself (from its signature and metadata_props). */
export interface ModelInfo extends ModelDescription {
  /** Tokens N: z0 is [batch, N, D] with D = config.hiddenSize. */
  readonly tokens: number;
}

/**
 * Builds model.onnx with `weights(name)` (float32, each parameter's shape as in the checkpoint) baked
 * in, and its model card.
 * @throws Error when a parameter is missing from `weights` or the config is inconsistent.
 */
export function exportModel(
  cfg: GetConfig,
  weights: (name: string) => Float32Array,
  o: { iterations: number; step: number; dataManifestSha256: string; createdAt?: string },
): { onnx: Uint8Array; card: ModelCard } {
  const metadata = {
    format: MODEL_FORMAT,
    config: JSON.stringify(cfg),
    iterations: String(o.iterations),
    num_classes: String(cfg.numClasses),
    step: String(o.step),
    data_manifest_sha256: o.dataManifestSha256,
  };
  const onnx = inferenceModel(cfg, weights, o.iterations, metadata);
  const sig = readOnnxSignature(onnx, 'model.onnx');
  return {
    onnx,
    card: {
      format: MODEL_FORMAT,
      preset: cfg.name,
      config: cfg,
      iterations: o.iterations,
      parameterCount: referenceParamCount(cfg),
      step: o.step,
      dataManifestSha256: o.dataManifestSha256,
      inputs: sig.inputs,
      outputs: sig.outputs,
      seedContract: SEED_CONTRACT,
      sha256: sha256Hex(onnx),
      bytes: onnx.length,
      createdAt: o.createdAt ?? new Date().toISOString(),
    },
  };
}

/**
 * Reads an exported model's config and signature.
 * @throws Error `<source>: …` when the bytes are not ONNX, or not a `get-distill/model@1` export
 *   (missing or invalid metadata, or inputs/outputs other than the contract's).
 */
export function readModelInfo(bytes: Uint8Array, source: string): ModelInfo {
  const sig = readOnnxSignature(bytes, source);
  const m = sig.metadata;
  if (m.format !== MODEL_FORMAT) {
    throw new Error(
      `${source}: not a GET Distill export (metadata format ${JSON.stringify(m.format ?? null)}, expected ` +
        `"${MODEL_FORMAT}"); export one with \`get-distill export\``,
    );
  }
  let config: GetConfig;
  try {
    config = GetConfigSchema.parse(JSON.parse(m.config ?? ''));
  } catch (e) {
    throw new Error(`${source}: metadata config is not a valid GET config (${(e as Error).message.split('\n')[0]})`, {
      cause: e,
    });
  }
  const iterations = Number(m.iterations);
  const step = Number(m.step);
  if (!Number.isInteger(iterations) || iterations < 1)
    throw new Error(`${source}: metadata iterations ${JSON.stringify(m.iterations)} is not a positive integer`);
  if (!Number.isInteger(step) || step < 0)
    throw new Error(`${source}: metadata step ${JSON.stringify(m.step)} is not a non-negative integer`);
  const { channels: C, imageSize: H, hiddenSize: D, numClasses } = config;
  const N = numTokens(config);
  const want: TensorSignature[] = [
    { name: 'noise', dtype: 'float32', dims: ['batch', C, H, H] },
    ...(numClasses > 0 ? [{ name: 'class_labels', dtype: 'int64', dims: ['batch'] }] : []),
    { name: 'z0', dtype: 'float32', dims: ['batch', N, D] },
  ];
  const same = (a: readonly TensorSignature[], b: readonly TensorSignature[]) =>
    JSON.stringify(a) === JSON.stringify(b);
  if (!same(sig.inputs, want)) {
    throw new Error(`${source}: inputs ${JSON.stringify(sig.inputs)} differ from the contract ${JSON.stringify(want)}`);
  }
  if (!sig.outputs.some((o) => o.name === 'image' && o.dtype === 'float32'))
    throw new Error(`${source}: no float32 output 'image'`);
  return {
    config,
    iterations,
    step,
    dataManifestSha256: m.data_manifest_sha256 ?? '',
    inputs: sig.inputs,
    outputs: sig.outputs,
    tokens: N,
  };
}
