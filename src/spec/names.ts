/**
 * The named choices every option, job spec and CRD field draws from, each defined once: datasets,
 * presets, training engines, tfjs backends, seed limits, and the variables the engine fields default
 * to. Pure data (imports only pure zod/data modules), so the operator and the CLI's help load it cheaply.
 */
import { DEFAULT_CPU_PRESET, PRESETS } from '../get/config.js';

/** The embedded datasets (training images of the mixture teacher, embedded feature networks). */
export const DATASETS = ['mnist', 'fashion-mnist'] as const;
export type DatasetName = (typeof DATASETS)[number];
/** Splits of an embedded dataset (`mnist:test`). */
export const DATASET_SPLITS = ['train', 'test'] as const;
export type DatasetSplit = (typeof DATASET_SPLITS)[number];
/** The default dataset of a run. */
export const DEFAULT_DATASET: DatasetName = 'mnist';
/** Every dataset split spec, `mnist:train` … `fashion-mnist:test`. */
export const DATASET_SPLIT_SPECS = DATASETS.flatMap((d) => DATASET_SPLITS.map((s) => `${d}:${s}`));

/** `mnist:test` → its dataset and split; null for anything else (other case, unknown split). */
export function parseDatasetSplit(spec: string): { dataset: DatasetName; split: DatasetSplit } | null {
  const at = spec.lastIndexOf(':');
  const dataset = DATASETS.find((d) => d === spec.slice(0, at));
  const split = DATASET_SPLITS.find((s) => s === spec.slice(at + 1));
  return at > 0 && dataset && split ? { dataset, split } : null;
}

/** Whether `spec` starts like a dataset split (`MNIST:val`): a mistyped split rather than a location. */
export const looksLikeDatasetSplit = (spec: string): boolean =>
  DATASETS.some((d) => spec.toLowerCase().startsWith(`${d}:`));

/** GET presets by name (the registry lives with the model configs in src/get/config.ts). */
export const PRESET_NAMES = Object.keys(PRESETS) as [string, ...string[]];
export { DEFAULT_CPU_PRESET };

/** The training engines (src/train/engine.ts builds them). */
export const TRAINING_ENGINES = ['ort', 'tfjs'] as const;
export type TrainingEngineKind = (typeof TRAINING_ENGINES)[number];
/** The tfjs backends a caller may force (`auto`: tfjs-node-gpu, then tfjs-node, then wasm, then cpu). */
export const TFJS_BACKENDS = ['auto', 'node-gpu', 'node', 'wasm', 'cpu'] as const;
export type TfjsBackendChoice = (typeof TFJS_BACKENDS)[number];

/**
 * Variables the engine fields of a train job default to (the trainer-gpu image sets tfjs / node-gpu).
 * Job mode maps them onto the fields through the config kit; a service reads them per job.
 */
export const ENGINE_ENV = 'GET_DISTILL_ENGINE';
export const TFJS_BACKEND_ENV = 'GET_DISTILL_TFJS_BACKEND';

/** Exclusive upper bound of valid seeds (2^31; src/data/seeds.ts holds the data contract). */
export const SEED_LIMIT = 2 ** 31;
/**
 * Shards of a seed range [start, end) at `shardSize` seeds each: contiguous, the last one shorter
 * (the count of src/data/seeds.ts's splitSeedRange, which a test keeps equal to this).
 */
export const shardCount = (seeds: { start: number; end: number }, shardSize: number): number =>
  Math.ceil((seeds.end - seeds.start) / shardSize);

/** First seed of the held-out pairs: far from any training seed range the CLI can make. */
export const HELDOUT_SEED_START = 2 ** 30;
/** First seed of evaluation samples: apart from training seeds (< 2^30) and held-out ones (2^30 + …). */
export const EVAL_SEED_START = 3 * 2 ** 29;

/** The reference's EMA: a constant decay (locuslab/get train.py), quoted by --ema-decay's help. */
/**
 * The AWS SDK's checksum modes and the standard variables that choose them for every S3 client of the
 * project (src/store/s3.ts): WHEN_REQUIRED (our default: Ceph and other S3-compatible servers reject
 * the SDK's default CRC32 trailers) or WHEN_SUPPORTED (AWS S3's default).
 */
export const S3_CHECKSUM_MODES = ['WHEN_REQUIRED', 'WHEN_SUPPORTED'] as const;
export type S3ChecksumMode = (typeof S3_CHECKSUM_MODES)[number];
export const S3_CHECKSUM_ENV = {
  request: 'AWS_REQUEST_CHECKSUM_CALCULATION',
  response: 'AWS_RESPONSE_CHECKSUM_VALIDATION',
} as const;

export const REFERENCE_EMA = { kind: 'constant', decay: 0.9999 } as const;
