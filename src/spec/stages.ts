/**
 * Every stage's options, each field with its bounds, default and description written once: the
 * `distill` command's flags are generated from {@link DistillSpecSchema}, and the stage services' job
 * specs (src/spec/jobs.ts) and the operator's CRD fields (src/operator/api) narrow the same fields.
 * Descriptions are the `distill --help` lines; job specs re-describe a field where a job means it
 * differently. Pure: zod and pure data only.
 */
import { z } from 'zod';
import { defaultOf, intIn, locationField, numAbove } from './fields.js';
import {
  DATASETS,
  DEFAULT_CPU_PRESET,
  DEFAULT_DATASET,
  HELDOUT_SEED_START,
  PRESET_NAMES,
  REFERENCE_EMA,
  TFJS_BACKENDS,
  TRAINING_ENGINES,
} from './names.js';

/** The dataset field: one of {@link DATASETS}; required where it has no default. */
export const datasetField = z.enum(DATASETS, {
  error: (iss) =>
    iss.input === undefined ? `is required: ${DATASETS.join(' or ')}` : `must be ${DATASETS.join(' or ')}`,
});

/** Where fitted teachers are cached by default: $XDG_CACHE_HOME/get-distill, else .cache/get-distill. */
const defaultCacheDir = (): string =>
  process.env.XDG_CACHE_HOME ? `${process.env.XDG_CACHE_HOME}/get-distill` : '.cache/get-distill';

/** The teacher and its sampler (datagen's teacher fields). */
export const teacherFields = {
  dataset: datasetField.default(DEFAULT_DATASET).describe('training images for the embedded teacher'),
  teacher: locationField()
    .default('mixture')
    .describe(
      '"mixture" (embedded Gaussian-mixture teacher fitted to --dataset) or the path / s3:// URI of an ' +
        'EDM-preconditioned ONNX network',
    ),
  teacherComponents: intIn(1, 1000).default(10).describe('mixture components per class'),
  teacherRank: intIn(1, 1024).default(32).describe('factors per mixture component'),
  samplerSteps: intIn(2, 1000).default(18).describe('Heun steps on the Karras schedule (NFE = 2n − 1)'),
  cacheDir: locationField()
    .default(defaultCacheDir)
    .describe('where fitted teachers are cached (a folder or s3:// prefix)'),
};

/** The pairs the teacher generates. Training seeds stay below the held-out seeds, never trained on. */
export const pairFields = {
  pairs: intIn(1, HELDOUT_SEED_START).default(32768).describe('training pairs (seeds 0 … n−1)'),
  heldout: intIn(1, 1_000_000)
    .default(500)
    .describe('held-out pairs for the report (seeds from 2^30, never trained on)'),
  shardSize: intIn(1)
    .default(2048)
    .describe('pairs per shard (training shuffles within two shards at a time, so it shapes the batch order)'),
};

/** GET training (the train stage's fields, locations aside). */
export const trainingFields = {
  preset: z.enum(PRESET_NAMES).default(DEFAULT_CPU_PRESET).describe('GET preset'),
  patchSize: intIn(1).optional().describe("override the preset's patch size (must divide the image size)"),
  steps: intIn(1).default(6000).describe('training steps'),
  batch: intIn(1).default(32).describe('batch size'),
  lr: numAbove(0).default(1e-3).describe('AdamW learning rate (reference presets: 1e-4)'),
  emaHalflifeKimg: numAbove(0).default(20).describe('EMA half-life in thousands of images (EDM style, with ramp-up)'),
  emaRampup: numAbove(0).default(0.05).describe('EMA ramp-up ratio (half-life ≤ images seen × r)'),
  emaDecay: numAbove(0, { inclusive: true, below: 1 })
    .optional()
    .describe(`constant EMA decay instead (the reference: ${REFERENCE_EMA.decay})`),
  iterations: intIn(1, 100).default(6).describe('fixed-point iterations in training and sampling'),
  checkpointEvery: intIn(1).default(200).describe('steps between checkpoints'),
  keep: intIn(1).default(3).describe('checkpoints kept'),
  seed: intIn(0).default(0).describe('seed for initialisation, batch order and fixed-point start states'),
  threads: intIn(1, 256).optional().describe('onnxruntime intra-op threads (default: all cores)'),
  engine: z
    .enum(TRAINING_ENGINES, { error: `must be one of ${TRAINING_ENGINES.join(', ')}` })
    .default('ort')
    .describe(
      `training engine (${TRAINING_ENGINES.join('|')}): ort = onnxruntime CPU/CUDA, the fast default; ` +
        'tfjs = TensorFlow.js, the engine of ' +
        'the tfjs-node-gpu trainer image (same model, same checkpoints: a run may resume on the other engine)',
    ),
  tfjsBackend: z
    .enum(TFJS_BACKENDS, { error: `must be one of ${TFJS_BACKENDS.join(', ')}` })
    .default('auto')
    .describe(
      `backend of --engine tfjs (${TFJS_BACKENDS.join('|')}): node-gpu = @tensorflow/tfjs-node-gpu (CUDA), ` +
        'node = @tensorflow/tfjs-node ' +
        '(native CPU), wasm = @tensorflow/tfjs-backend-wasm (installed here; slow), cpu = plain JavaScript ' +
        '(slowest), auto = the first installed of node-gpu, node, wasm',
    ),
};

/** Data-parallel training of the distill CLI (Open MPI; docs/parallel.md). */
export const parallelFields = {
  ranks: intIn(1, 256)
    .default(1)
    .describe(
      'data-parallel training processes on this machine (mpirun -np N; needs Open MPI): each takes a ' +
        'contiguous 1/N of every --batch, gradients are averaged by an allreduce, results equal one process',
    ),
};

/** Evaluation of a run (the embedded feature network's scores). */
export const evalFields = {
  fidSamples: intIn(0, 1_000_000)
    .default(10_000)
    .describe(
      'teacher and student samples scored against the test split with the embedded feature network ' +
        '(FID, IS, precision/recall; 0 skips)',
    ),
};

/** What a run writes besides checkpoints and the model. */
export const outputFields = {
  gridColumns: intIn(1, 64).default(8).describe('samples per class in samples.png'),
};

/**
 * Options of `get-distill distill`, in --help (and --dry-run JSON) order. `resume` is the CLI's own
 * switch (options.json of the run in `out` supplies the rest).
 */
export const DistillSpecSchema = z.object({
  out: locationField()
    .default('runs/distill')
    .describe(
      'where the run lives: a folder, file:///… or s3://bucket/prefix (shards, checkpoints, samples.png, report.json)',
    ),
  resume: z.boolean().optional(),
  ...teacherFields,
  ...pairFields,
  ...trainingFields,
  ...parallelFields,
  ...evalFields,
  ...outputFields,
});

type DistillOutput = z.output<typeof DistillSpecSchema>;
/**
 * Options of `get-distill distill`, resolved (see {@link DistillSpecSchema} for meaning and defaults).
 * `engine` (default ort), `tfjsBackend` (default auto) and `ranks` (default 1) may be absent in an older
 * run's options.json; the engine and the ranks may change on --resume (checkpoints are engine- and
 * rank-agnostic).
 */
export type DistillOptions = Omit<DistillOutput, 'engine' | 'tfjsBackend' | 'ranks'> &
  Partial<Pick<DistillOutput, 'engine' | 'tfjsBackend' | 'ranks'>>;

/** Defaults of the fields (for the operator's defaulted objects). */
export const teacherDefaults = {
  dataset: defaultOf(teacherFields.dataset),
  teacherComponents: defaultOf(teacherFields.teacherComponents),
  teacherRank: defaultOf(teacherFields.teacherRank),
  samplerSteps: defaultOf(teacherFields.samplerSteps),
};

/**
 * Options of `get-distill export` (src/cli/export.ts generates its flags from it). The export job spec
 * (src/spec/jobs.ts) takes the same two locations, checked against the worker's allowed locations.
 */
export const ExportOptionsSchema = z.object({
  checkpoint: locationField().describe(
    'a checkpoints folder (its latest.json is used) or one checkpoint-*.safetensors object: ' +
      'a path, file:///… or s3://…',
  ),
  out: locationField().describe('folder that receives model.onnx and model.json (replaced if present)'),
});
