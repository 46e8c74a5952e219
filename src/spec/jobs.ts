/**
 * The stage services' job specs (strict: unknown fields are errors): the distill options of each stage
 * (src/spec/stages.ts) plus the job's locations, so a field means the same in `distill`, a job spec and
 * the operator's CRD. Pure: zod and pure data only.
 */
import { z } from 'zod';
import { intIn, numAbove, uriField } from './fields.js';
import { ENGINE_ENV, SEED_LIMIT, TFJS_BACKEND_ENV, shardCount } from './names.js';
import { datasetField, pairFields, teacherFields, trainingFields } from './stages.js';

const seedsField = z
  .object({
    start: intIn(0, SEED_LIMIT - 1).describe('first seed'),
    end: intIn(0, SEED_LIMIT).describe('one past the last seed (exclusive)'),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.end === s.start)
      ctx.addIssue({
        code: 'custom',
        path: ['end'],
        message:
          `equals seeds.start ${s.start}: the range [${s.start}, ${s.end}) is empty (end is exclusive); ` +
          'give end > start',
      });
    else if (s.end < s.start)
      ctx.addIssue({
        code: 'custom',
        path: ['end'],
        message:
          `${s.end} is below seeds.start ${s.start}: the range is reversed (end is exclusive); ` + 'give end > start',
      });
  })
  .describe('seed range {start, end}, end exclusive: one pair per seed');

/** The datagen job spec. */
export const DatagenSpecSchema = z
  .object({
    out: uriField('pairs folder URI (shards + manifest.json)'),
    teacher: z
      .string()
      .min(1, 'must not be empty')
      .superRefine((v, ctx) => {
        if (v === 'mixture') return;
        const r = uriField('teacher').safeParse(v);
        if (!r.success)
          ctx.addIssue({
            code: 'custom',
            message: `must be "mixture" or the URI of an EDM ONNX network: ${r.error.issues[0].message}`,
          });
      })
      .describe(
        '"mixture" (the embedded Gaussian-mixture teacher fitted to dataset) or the URI of an ' +
          'EDM-preconditioned ONNX network',
      ),
    dataset: datasetField.describe(
      'training images of the mixture teacher (mnist or fashion-mnist); recorded in the manifest',
    ),
    teacherComponents: teacherFields.teacherComponents,
    teacherRank: teacherFields.teacherRank,
    cacheDir: uriField('folder URI of the fitted-teacher cache (required for the mixture teacher)').optional(),
    samplerSteps: teacherFields.samplerSteps,
    seeds: seedsField,
    shardSize: pairFields.shardSize.describe('pairs per shard'),
    parallelism: intIn(1, 10_000)
      .default(1)
      .describe("indexed workers sharing the seed range (an Indexed Job's completions)"),
    threads: trainingFields.threads.describe(
      'onnxruntime intra-op threads (default: all cores; give cores / workers per node)',
    ),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.teacher === 'mixture' && s.cacheDir === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['cacheDir'],
        message: 'is required for the mixture teacher (where its fit is cached, e.g. s3://bucket/cache)',
      });
    }
    // The seed and shardSize fields may have failed their own checks: only well-formed ranges count here.
    const inRange = (v: unknown, hi: number) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= hi;
    if (
      s.seeds &&
      inRange(s.seeds.start, SEED_LIMIT - 1) &&
      inRange(s.seeds.end, SEED_LIMIT) &&
      s.seeds.end > s.seeds.start &&
      Number.isInteger(s.shardSize) &&
      s.shardSize > 0
    ) {
      const shards = shardCount(s.seeds, s.shardSize);
      if (s.parallelism > shards) {
        ctx.addIssue({
          code: 'custom',
          path: ['parallelism'],
          message:
            `${s.parallelism} exceeds the ${shards} shard${shards > 1 ? 's' : ''} of seeds ` +
            `[${s.seeds.start}, ${s.seeds.end}) at shardSize ${s.shardSize}; lower parallelism or shardSize`,
        });
      }
    }
  });

export type DatagenSpec = z.output<typeof DatagenSpecSchema>;

const t = trainingFields;

/** The train job spec: distill's training fields, the pairs to read and the run folder to write. */
export const TrainSpecSchema = z
  .object({
    pairs: uriField("URI of a pair folder with manifest.json (a datagen job's out)"),
    out: uriField('run folder URI; checkpoints go to <out>/checkpoints'),
    preset: t.preset,
    patchSize: t.patchSize,
    // A job names its target: no default step count.
    steps: t.steps.unwrap().describe('total optimizer steps to reach (a resumed job continues up to it)'),
    batch: t.batch.describe('pairs per step'),
    lr: t.lr.describe('AdamW learning rate'),
    emaHalflifeKimg: t.emaHalflifeKimg.describe('EMA half-life in thousands of images (with ramp-up)'),
    emaRampup: t.emaRampup.describe('EMA ramp-up ratio'),
    // A job's constant decay is in (0, 1): 0 (no averaging) is refused here, as it always was.
    emaDecay: numAbove(0, { below: 1 }).optional().describe('constant EMA decay instead of the half-life'),
    iterations: t.iterations.describe('fixed-point iterations K'),
    checkpointEvery: t.checkpointEvery,
    keep: t.keep,
    seed: t.seed.describe('seed of initialisation, batch order and z_0'),
    threads: t.threads,
    // Absent: the server's ENGINE_ENV / TFJS_BACKEND_ENV, else distill's default (resolveEngine).
    engine: t.engine
      .unwrap()
      .optional()
      .describe(
        'training engine: ort = onnxruntime CPU/CUDA (the fast default), tfjs = TensorFlow.js ' +
          `(the trainer-gpu image's engine); default ${ENGINE_ENV}, else ort`,
      ),
    tfjsBackend: t.tfjsBackend
      .unwrap()
      .optional()
      .describe(
        'tfjs backend: node-gpu (@tensorflow/tfjs-node-gpu), node (@tensorflow/tfjs-node), wasm (slow), ' +
          `cpu (slowest), auto = the first installed of node-gpu, node, wasm; default ${TFJS_BACKEND_ENV}, else auto`,
      ),
  })
  .strict();

export type TrainSpec = z.output<typeof TrainSpecSchema>;

/** The export job spec. */
export const ExportSpecSchema = z
  .object({
    checkpoint: uriField('a checkpoints folder (with latest.json) or one checkpoint-<step>.safetensors object'),
    out: uriField('folder URI that receives model.onnx and model.json'),
  })
  .strict();

export type ExportSpec = z.output<typeof ExportSpecSchema>;
