/**
 * The Kubernetes Jobs of a run. Datagen is an Indexed Job (completions = shards, each index one shard's
 * seed range, backoffLimitPerIndex so one bad shard cannot spend the whole Job's retries); the trainer,
 * exporter and eval are single-pod Jobs. Every Job maps the services' exit codes (services/README.md)
 * onto a podFailurePolicy: 2 (permanent: bad spec or input) fails the Job at once, 75 (retryable) and
 * crashes count against the backoff limit, and evictions/preemptions (DisruptionTarget) are not counted.
 * Retries resume: datagen keeps finished shards, the trainer restarts from its latest checkpoint.
 */
import type { V1Job, V1PodFailurePolicy } from '@kubernetes/client-node';
import { EXIT_PERMANENT } from '../../../util/errors.js';
import { ANNOTATIONS, LABELS, MANAGER, RUN } from '../../api/v1alpha1/group.js';
import type { DistillationRunSpec } from '../../api/v1alpha1/run.js';
import type { ResourcesSpec } from '../../api/v1alpha1/common.js';
import type { OperatorConfig } from '../../config.js';
import { childMeta, specHash, type Owned } from '../meta.js';
import { podSpec, serviceContainer, storeEnv } from '../pod.js';
import { type JobStage, datagenJobSpec, evalArgs, exportJobSpec, shardCount, trainJobSpec } from './plan.js';

/** Seconds a stage pod gets between SIGTERM and SIGKILL (> the job mode's 30 s safe-point grace). */
export const STAGE_GRACE_SECONDS = 45;

/** Name of a stage's Job (deterministic: a restarted operator finds, never duplicates, it). */
export const jobName = (run: string, stage: JobStage): string => `${run}-${stage}`;

function failurePolicy(container: string): V1PodFailurePolicy {
  return {
    rules: [
      { action: 'FailJob', onExitCodes: { containerName: container, operator: 'In', values: [EXIT_PERMANENT] } },
      { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
    ],
  };
}

interface StageJobInput {
  stage: JobStage;
  image: string;
  container: string;
  env?: Record<string, string>;
  args: string[];
  resources: ResourcesSpec;
}

function stageJob(
  run: Owned,
  spec: DistillationRunSpec,
  cfg: OperatorConfig,
  s: StageJobInput,
  jobSpec: Partial<NonNullable<V1Job['spec']>>,
): V1Job {
  const runName = run.metadata!.name!;
  const labels = { [LABELS.run]: runName, [LABELS.stage]: s.stage, [LABELS.component]: s.stage };
  const env = [...Object.entries(s.env ?? {}).map(([name, value]) => ({ name, value })), ...storeEnv(spec.store, cfg)];
  const container = serviceContainer(s.container, s.image, env, s.resources, cfg, { args: s.args });
  const body: V1Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: childMeta(run, RUN.kind, jobName(runName, s.stage), labels),
    spec: {
      ...jobSpec,
      podFailurePolicy: failurePolicy(s.container),
      template: {
        metadata: {
          labels: { ...labels, [LABELS.name]: 'get-distill', [LABELS.instance]: runName, [LABELS.managedBy]: MANAGER },
        },
        // 45 s: the services' 30 s shutdown grace (SIGTERM → checkpoint → exit 75) plus the upload.
        spec: podSpec(container, s.resources, cfg, {
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: STAGE_GRACE_SECONDS,
        }),
      },
    },
  };
  // The hash covers what the run's spec decides for this stage (not the operator's images: an operator
  // upgrade must not read as a spec change), so a later spec edit that would alter the Job is visible.
  body.metadata!.annotations = {
    [ANNOTATIONS.specHash]: specHash({
      env: s.env,
      args: s.args,
      resources: s.resources,
      store: spec.store,
      job: jobSpec,
    }),
  };
  return body;
}

/** The Job of `stage` for this run and operator configuration. */
export function buildStageJob(run: Owned, spec: DistillationRunSpec, cfg: OperatorConfig, stage: JobStage): V1Job {
  const [container, jobSpec] = STAGE_PARTS[stage](spec, cfg);
  return stageJob(run, spec, cfg, container, jobSpec);
}

/** A stage's container, and the Job spec fields that differ between stages. */
type StageParts = [StageJobInput, Partial<NonNullable<V1Job['spec']>>];

const json = (v: unknown) => JSON.stringify(v);

const STAGE_PARTS: Record<JobStage, (spec: DistillationRunSpec, cfg: OperatorConfig) => StageParts> = {
  datagen: (spec, cfg) => {
    const shards = shardCount(spec);
    return [
      {
        stage: 'datagen',
        image: cfg.datagenImage,
        container: 'datagen',
        args: ['--mode', 'job'],
        env: { GET_DISTILL_JOB_SPEC: json(datagenJobSpec(spec)) },
        resources: spec.datagen.resources ?? spec.resources,
      },
      {
        completionMode: 'Indexed',
        completions: shards,
        parallelism: Math.min(spec.datagen.parallelism, shards),
        backoffLimitPerIndex: spec.datagen.backoffLimitPerIndex,
      },
    ];
  },
  train: (spec, cfg) => [
    {
      stage: 'train',
      image: cfg.trainerImage,
      container: 'trainer',
      args: ['--mode', 'job'],
      env: { GET_DISTILL_JOB_SPEC: json(trainJobSpec(spec)) },
      resources: spec.resources,
    },
    { backoffLimit: spec.training.backoffLimit, completions: 1, parallelism: 1 },
  ],
  // Export needs no GPU: it reads a checkpoint and writes ONNX.
  export: (spec, cfg) => [
    {
      stage: 'export',
      image: cfg.exporterImage,
      container: 'exporter',
      args: ['--mode', 'job'],
      env: { GET_DISTILL_JOB_SPEC: json(exportJobSpec(spec)) },
      resources: { ...spec.resources, gpu: { ...spec.resources.gpu, count: 0 } },
    },
    { backoffLimit: 3, completions: 1, parallelism: 1 },
  ],
  eval: (spec, cfg) => [
    {
      stage: 'eval',
      image: cfg.evalImage,
      container: 'eval',
      args: evalArgs(spec, cfg),
      resources: spec.evaluation.resources ?? spec.resources,
    },
    { backoffLimit: 3, completions: 1, parallelism: 1 },
  ],
};

/** The spec hash a Job (or the trainer's MPIJob) was built from (its annotation), if any. */
export const jobHash = (job: Owned): string | undefined => job.metadata?.annotations?.[ANNOTATIONS.specHash];
