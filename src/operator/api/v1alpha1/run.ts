/**
 * DistillationRun: the whole pipeline on a cluster — teacher pairs (datagen, an Indexed Job), GET
 * training, ONNX export, evaluation and optionally a GenerationEndpoint — with artifacts under one S3
 * folder. The stage settings reuse the stage services' own spec schemas (src/spec), so a field means
 * the same here as in a job spec and a `distill` flag, default included.
 */
import { z } from 'zod';
// The pure spec module only: the stage modules would load the ML stack into the operator.
import {
  DATASETS,
  DATASET_SPLITS,
  DatagenSpecSchema,
  SEED_LIMIT,
  TrainSpecSchema,
  defaultOf,
  distributedFields,
  evalFields,
  teacherDefaults,
} from '../../../spec/index.js';
import { ResourcesSchema, S3_URI, StoreSchema, conditionsField } from './common.js';
import { ServingSchema } from './endpoint.js';

const dg = DatagenSpecSchema.shape;
/** Most shards (= Indexed Job completions) per run; the datagen spec's parallelism cap. */
export const MAX_SHARDS = 10_000;

export const TeacherSchema = z
  .object({
    dataset: dg.dataset.default(teacherDefaults.dataset),
    uri: StoreSchema.shape.uri
      .describe(
        's3:// URI of an EDM-preconditioned ONNX teacher; default: the embedded mixture teacher fitted to dataset',
      )
      .optional(),
    components: dg.teacherComponents,
    rank: dg.teacherRank,
    samplerSteps: dg.samplerSteps,
  })
  .strict();

export const DatagenSchema = z
  .object({
    seeds: z
      .object({
        start: z
          .number()
          .int()
          .min(0)
          .max(SEED_LIMIT - 1),
        end: z.number().int().min(1).max(SEED_LIMIT),
      })
      .strict()
      .describe('seed range [start, end): one pair per seed'),
    // The datagen service's field, capped so the shard-count CEL rule's int arithmetic cannot overflow.
    shardSize: dg.shardSize
      .unwrap()
      .max(1 << 20)
      .default(defaultOf(dg.shardSize))
      .describe(dg.shardSize.description ?? 'pairs per shard'),
    parallelism: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(4)
      .describe("datagen pods running at once (the Indexed Job's parallelism); completions = shards"),
    backoffLimitPerIndex: z
      .number()
      .int()
      .min(0)
      .max(100)
      .default(3)
      .describe('retries of one failing shard before it fails the run'),
    resources: ResourcesSchema.optional().describe(
      'datagen pod resources (default: spec.resources); the embedded mixture teacher needs no GPU',
    ),
  })
  .strict()
  .superRefine((d, ctx) => {
    // The same rules as the CEL below, for API servers (and tests) that do not run CEL.
    if (d.seeds.end <= d.seeds.start)
      ctx.addIssue({
        code: 'custom',
        path: ['seeds', 'end'],
        message: `must exceed seeds.start ${d.seeds.start} (end is exclusive)`,
      });
    else if (Math.ceil((d.seeds.end - d.seeds.start) / d.shardSize) > MAX_SHARDS)
      ctx.addIssue({ code: 'custom', path: ['shardSize'], message: `gives more than ${MAX_SHARDS} shards: raise it` });
  })
  .meta({
    'x-kubernetes-validations': [
      { rule: 'self.seeds.end > self.seeds.start', message: 'seeds.end must exceed seeds.start (end is exclusive)' },
      {
        rule: `(self.seeds.end - self.seeds.start + self.shardSize - 1) / self.shardSize <= ${MAX_SHARDS}`,
        message: `at most ${MAX_SHARDS} shards: raise shardSize`,
      },
    ],
  });

export const TrainingSchema = TrainSpecSchema.omit({ pairs: true, out: true, threads: true })
  .extend({
    backoffLimit: z
      .number()
      .int()
      .min(0)
      .max(100)
      .default(6)
      .describe(
        'retryable trainer failures (exit 75, evictions) before the ' +
          "run fails; each retry resumes from the latest checkpoint (an MPIJob's runPolicy.backoffLimit)",
      ),
    ...distributedFields,
  })
  .strict();

export const EvaluationSchema = z
  .object({
    enabled: z.boolean().default(true),
    samples: z
      .number()
      .int()
      .min(2)
      .max(1_000_000)
      .default(defaultOf(evalFields.fidSamples))
      .describe('student samples scored'),
    features: z
      .string()
      .max(1024)
      .regex(
        new RegExp(`^(${DATASETS.join('|')})$|${S3_URI.source}`),
        `must be ${DATASETS.join(', ')} or the s3:// URI of an ONNX network`,
      )
      .optional()
      .describe(
        "feature network: mnist, fashion-mnist (embedded) or an s3:// ONNX URI; default: the teacher dataset's",
      ),
    reference: z
      .string()
      .max(1024)
      .regex(
        new RegExp(`^(${DATASETS.join('|')}):(${DATASET_SPLITS.join('|')})$|${S3_URI.source}`),
        'must be a split such as mnist:test or the s3:// URI of an .npz',
      )
      .optional()
      .describe(
        "reference statistics: an s3:// .npz or a split such as mnist:test; default: the teacher dataset's test split",
      ),
    pushgateway: z
      .string()
      .regex(/^https?:\/\/\S+$/)
      .max(1024)
      .optional()
      .describe("Prometheus Pushgateway for get_eval_* metrics (default: the operator's)"),
    resources: ResourcesSchema.optional().describe('eval pod resources (default: spec.resources)'),
  })
  .strict();

export const ServeSchema = ServingSchema.extend({
  enabled: z
    .boolean()
    .default(false)
    .describe('create a GenerationEndpoint named after the run once the model is exported'),
}).strict();

export const DistillationRunSpecSchema = z
  .object({
    store: StoreSchema.meta({
      'x-kubernetes-validations': [
        { rule: 'self.uri == oldSelf.uri', message: 'store.uri is immutable: create a new run' },
      ],
    }),
    teacher: TeacherSchema.default({
      dataset: teacherDefaults.dataset,
      components: teacherDefaults.teacherComponents,
      rank: teacherDefaults.teacherRank,
      samplerSteps: teacherDefaults.samplerSteps,
    }),
    datagen: DatagenSchema,
    training: TrainingSchema,
    evaluation: EvaluationSchema.default({ enabled: true, samples: defaultOf(evalFields.fidSamples) }),
    serve: ServeSchema.optional(),
    resources: ResourcesSchema.default({ gpu: { count: 1 }, cpu: '2', memory: '8Gi' }),
  })
  .strict();

export type DistillationRunSpec = z.output<typeof DistillationRunSpecSchema>;

/** The stages a run walks through, in order (status.stage). */
export const RUN_STAGES = [
  'Pending',
  'Datagen',
  'Training',
  'Exporting',
  'Evaluating',
  'Serving',
  'Succeeded',
  'Failed',
] as const;
export type RunStage = (typeof RUN_STAGES)[number];

export const DistillationRunStatusSchema = z
  .object({
    observedGeneration: z.number().int().optional(),
    stage: z.enum(RUN_STAGES).optional(),
    progress: z
      .object({
        shardsDone: z.number().int().optional(),
        shardsTotal: z.number().int().optional(),
        step: z.number().int().optional(),
        steps: z.number().int().optional(),
        loss: z.number().optional(),
      })
      .strict()
      .optional(),
    artifacts: z
      .object({
        pairs: z.string().optional(),
        checkpoints: z.string().optional(),
        model: z.string().optional(),
        modelDigest: z.string().optional(),
        eval: z.string().optional(),
      })
      .strict()
      .optional(),
    fid: z.number().optional().describe('FID of the student against the reference'),
    inceptionScore: z.number().optional(),
    precision: z.number().optional(),
    recall: z.number().optional(),
    endpoint: z.string().optional().describe('the GenerationEndpoint serving the result'),
    startTime: z.string().meta({ format: 'date-time' }).optional(),
    completionTime: z.string().meta({ format: 'date-time' }).optional(),
    conditions: conditionsField.optional(),
  })
  .strict();
export type DistillationRunStatus = z.output<typeof DistillationRunStatusSchema>;
