/**
 * A DistillationRun's plan: where each artifact goes under spec.store.uri and the job spec of each
 * stage service (the same specs services/{datagen,trainer,exporter} take in job mode: src/jobs/stages).
 * Pure functions of the parsed spec: equal specs give equal plans, so a stage's hash says whether a
 * Job was built from the current spec.
 */
import {
  type DatagenSpec,
  type ExportSpec,
  type TrainSpec,
  shardCount as seedRangeShards,
} from '../../../spec/index.js';
import type { DistillationRunSpec } from '../../api/v1alpha1/run.js';
import type { OperatorConfig } from '../../config.js';

/** The stages that run as Jobs, in order. */
export const JOB_STAGES = ['datagen', 'train', 'export', 'eval'] as const;
export type JobStage = (typeof JOB_STAGES)[number];

/** Artifact locations of a run (docs/data-contracts.md: pairs folder, run folder, model folder). */
export interface RunArtifacts {
  root: string;
  pairs: string;
  checkpoints: string;
  modelDir: string;
  model: string;
  eval: string;
  cache: string;
}

export function runArtifacts(spec: DistillationRunSpec): RunArtifacts {
  const root = spec.store.uri.replace(/\/+$/, '');
  return {
    root,
    pairs: `${root}/pairs`,
    checkpoints: `${root}/checkpoints`,
    modelDir: `${root}/model`,
    model: `${root}/model/model.onnx`,
    eval: `${root}/eval/eval.json`,
    cache: `${root}/cache`,
  };
}

/** Pair shards of the run (= the datagen Indexed Job's completions: one shard per index). */
export const shardCount = (spec: DistillationRunSpec): number =>
  seedRangeShards(spec.datagen.seeds, spec.datagen.shardSize);

/** services/datagen's job spec: parallelism = shards, so JOB_COMPLETION_INDEX i generates shard i. */
export function datagenJobSpec(spec: DistillationRunSpec): DatagenSpec {
  const a = runArtifacts(spec);
  const t = spec.teacher;
  return {
    out: a.pairs,
    teacher: t.uri ?? 'mixture',
    dataset: t.dataset,
    teacherComponents: t.components,
    teacherRank: t.rank,
    cacheDir: a.cache,
    samplerSteps: t.samplerSteps,
    seeds: { ...spec.datagen.seeds },
    shardSize: spec.datagen.shardSize,
    parallelism: shardCount(spec),
  };
}

/**
 * services/trainer's job spec: the training settings minus what the operator itself acts on (the retry
 * budget and the pod topology), so a run with one worker gets the same spec as before those fields.
 */
export function trainJobSpec(spec: DistillationRunSpec): TrainSpec {
  const a = runArtifacts(spec);
  const { backoffLimit: _, workers: __, gpusPerWorker: ___, ...training } = spec.training;
  return { ...training, pairs: a.pairs, out: a.root } as TrainSpec;
}

/** How the trainer is laid out on pods (docs/operator.md, "Multi-pod training"). */
export interface TrainingTopology {
  /** More than one MPI rank: an MPIJob (launcher + workers) instead of the trainer Job. */
  distributed: boolean;
  /** Worker pods (training.workers). */
  workers: number;
  /** GPUs of each worker pod (training.gpusPerWorker, else resources.gpu.count). */
  gpusPerWorker: number;
  /** MPI slots of each worker = its ranks: one per GPU, one on a CPU worker. */
  slotsPerWorker: number;
  /** workers × slotsPerWorker: the launcher's `--ranks`. */
  ranks: number;
}

/**
 * The run's trainer topology. One rank per GPU; a single worker without an explicit gpusPerWorker keeps
 * the one-process trainer Job with all of resources.gpu (what such a run did before these fields).
 */
export function trainingTopology(spec: DistillationRunSpec): TrainingTopology {
  const { workers, gpusPerWorker: given } = spec.training;
  const gpusPerWorker = given ?? spec.resources.gpu.count;
  const slotsPerWorker = Math.max(1, gpusPerWorker);
  const ranks = workers * slotsPerWorker;
  return {
    distributed: workers > 1 || (given !== undefined && ranks > 1),
    workers,
    gpusPerWorker,
    slotsPerWorker,
    ranks,
  };
}

/** services/exporter's job spec: the EMA weights of the latest checkpoint → <root>/model/model.onnx. */
export function exportJobSpec(spec: DistillationRunSpec): ExportSpec {
  const a = runArtifacts(spec);
  return { checkpoint: a.checkpoints, out: a.modelDir };
}

/** `get-distill eval` arguments of the eval Job (the eval image's entry prepends `eval`). */
export function evalArgs(spec: DistillationRunSpec, cfg: Pick<OperatorConfig, 'pushgateway'>): string[] {
  const a = runArtifacts(spec);
  const e = spec.evaluation;
  const args = [
    '--model',
    a.model,
    '--samples',
    String(e.samples),
    '--dataset',
    spec.teacher.dataset,
    '--out',
    a.eval,
    '--cache-dir',
    a.cache,
  ];
  if (e.features) args.push('--features', e.features);
  if (e.reference) args.push('--reference', e.reference);
  const push = e.pushgateway ?? cfg.pushgateway;
  if (push) args.push('--pushgateway', push);
  return args;
}
