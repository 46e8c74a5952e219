/**
 * Options of `get-distill eval` (src/cli/eval.ts generates its flags from {@link EvalSpecSchema}): each
 * field's bounds, default and --help line written once. The teacher fields are distill's
 * (src/spec/stages.ts). Pure: zod and pure data only.
 */
import { z } from 'zod';
import { intIn, locationField } from './fields.js';
import {
  DATASETS,
  DATASET_SPLIT_SPECS,
  DEFAULT_DATASET,
  EVAL_SEED_START,
  SEED_LIMIT,
  looksLikeDatasetSplit,
  parseDatasetSplit,
} from './names.js';
import { teacherFields, trainingFields } from './stages.js';

/** `a, b, c or d`. */
const orList = (xs: readonly string[]): string => `${xs.slice(0, -1).join(', ')} or ${xs[xs.length - 1]}`;

/**
 * An image spec of eval (--model, --reference, --features): a dataset split (`mnist:test`), `teacher`,
 * or a location (a path, file:///… or s3://…). Errors read `<spec>: unknown dataset split; use …` for
 * a mistyped split, else as {@link locationField}.
 */
export function evalSourceField(): z.ZodString {
  const location = locationField();
  return z.string().superRefine((v, ctx) => {
    if (v === 'teacher' || parseDatasetSplit(v)) return;
    if (looksLikeDatasetSplit(v))
      return void ctx.addIssue({
        code: 'custom',
        message: `${v}: unknown dataset split; use ${orList(DATASET_SPLIT_SPECS)}`,
      });
    const r = location.safeParse(v);
    if (!r.success) ctx.addIssue({ code: 'custom', message: r.error.issues[0].message });
  });
}

const RANGE_ERROR = 'must be two numbers lo,hi with lo < hi (e.g. 0,1 or -1,1)';
/** `lo,hi` → [lo, hi] (NaN for a part that is no number); other text and non-strings stay as given. */
const rangeText = (v: unknown): unknown => {
  if (typeof v !== 'string') return v;
  const parts = v.split(',').map((s) => s.trim());
  return parts.length === 2 && parts.every((s) => s !== '') ? parts.map(Number) : v;
};
/** A value range [lo, hi], lo < hi, both finite; from text `lo,hi`. Every error reads {@link RANGE_ERROR}. */
const rangeField = z.preprocess(
  rangeText,
  z
    .tuple([z.number({ error: RANGE_ERROR }), z.number({ error: RANGE_ERROR })], { error: RANGE_ERROR })
    .refine(([lo, hi]) => lo < hi, { error: RANGE_ERROR }),
);

/** Options of `get-distill eval`, in --help order. */
export const EvalSpecSchema = z.object({
  model: evalSourceField().describe(
    'model.onnx of a student (get-distill export), an EDM teacher ONNX network or "teacher" (the embedded ' +
      'mixture, Heun sampler), a pair folder, or a split such as mnist:train',
  ),
  samples: intIn(2, 1_000_000)
    .default(10_000)
    .describe('samples to draw (seeded models use seeds --seed-start … + n − 1)'),
  seedStart: intIn(0, SEED_LIMIT - 1)
    .default(EVAL_SEED_START)
    .describe('first seed of seeded models (noise, label and z₀ per the seed contract)'),
  features: evalSourceField()
    .default(DEFAULT_DATASET)
    .describe(
      `embedded classifier (${DATASETS.join(', ')}) or the URI of an ONNX image network ` +
        '(default: the one of --dataset)',
    ),
  layer: z
    .string()
    .optional()
    .describe(
      'with an ONNX URI: the graph value whose activations are the features (e.g. an Inception-v3 pool3 output)',
    ),
  logitsLayer: z
    .string()
    .optional()
    .describe('with an ONNX URI: the graph value holding class logits (for the Inception Score)'),
  inputRange: rangeField
    .optional()
    .describe('with an ONNX URI: the value range its input expects (images are quantised to u8, then mapped here)'),
  reference: evalSourceField()
    .default(`${DEFAULT_DATASET}:test`)
    .describe(
      'reference statistics: an .npz of mu and sigma (pytorch-fid layout), a split such as mnist:test, a pair ' +
        'folder or a model (default: the test split of --dataset)',
    ),
  referenceSamples: intIn(2, 1_000_000)
    .optional()
    .describe('images of a computed reference (default: all of a split or pair folder, else --samples)'),
  saveReference: locationField().optional().describe('write the reference statistics here as .npz (mu, sigma float64)'),
  dataset: teacherFields.dataset.describe(
    'dataset of the embedded teacher; also picks the default --features and --reference',
  ),
  teacherComponents: teacherFields.teacherComponents,
  teacherRank: teacherFields.teacherRank,
  samplerSteps: teacherFields.samplerSteps,
  cacheDir: teacherFields.cacheDir,
  splits: intIn(1, 1000).default(10).describe('Inception Score splits'),
  k: intIn(1, 100).default(3).describe('nearest neighbours of the precision/recall manifolds'),
  batch: intIn(1, 4096).default(128).describe('images per feature-network run'),
  threads: trainingFields.threads,
  out: locationField()
    .optional()
    .describe('write the report (JSON) here (a file or object name; an existing one is replaced)'),
  // The URL is checked at the CLI edge (the service kit's parsePushgatewayUrl; errors never echo credentials).
  pushgateway: z.string().optional().describe('push progress and results to this Prometheus Pushgateway'),
  metricsPort: intIn(0, 65535).optional().describe('serve /metrics on this port while running (0: any free port)'),
  metricsHost: z.string().default('127.0.0.1').describe('address for --metrics-port'),
});

/** `get-distill eval`'s options, resolved (see {@link EvalSpecSchema}). */
export type EvalSpec = z.output<typeof EvalSpecSchema>;
