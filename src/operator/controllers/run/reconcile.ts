/**
 * The DistillationRun reconcile: level-triggered and idempotent. From the run, its Jobs and their pods
 * (informer caches) it derives where the pipeline is — datagen → train → export → eval (→ endpoint) —
 * creates the next Job when the previous one completed, and writes status (stage, progress, artifacts,
 * FID, conditions). Job names are deterministic, so a restarted operator or a stale cache can never
 * create a second Job for a stage (the API answers 409 and the existing one is used).
 *
 * No finalizer: deleting a run deletes its Jobs and endpoint by ownerReference (garbage collection),
 * and its S3 artifacts are deliberately kept. Spec edits to a stage whose Job exists cannot apply (a
 * Job's pod template is immutable, and its half-written artifacts came from the old spec): they are
 * refused with Degraded=True reason SpecChangeRejected; edits to stages not started yet apply.
 *
 * A run with more than one training rank trains in an MPIJob (run/mpijob.ts, read by ../mpijob-state.ts)
 * instead of the trainer Job, under the same name and with the same failure semantics.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import {
  ANNOTATIONS,
  ENDPOINT,
  GROUP,
  LABELS,
  MAX_RUN_NAME,
  RUN,
  VERSION,
  nameProblem,
} from '../../api/v1alpha1/group.js';
import {
  DistillationRunSpecSchema,
  type DistillationRunSpec,
  type DistillationRunStatus,
  type RunStage,
} from '../../api/v1alpha1/run.js';
import { GenerationEndpointSpecSchema } from '../../api/v1alpha1/endpoint.js';
import { findCondition, rfc3339, setCondition, type Condition, type ConditionUpdate } from '../../conditions.js';
import {
  MERGE_PATCH,
  apiMessage,
  createIfAbsent,
  patchCustomStatus,
  splitKey,
  statusOf,
  type ControllerContext,
  type CustomObject,
  type ReconcileResult,
} from '../context.js';
import { childMeta, ownedBy, replaceWith, specHash } from '../meta.js';
import { countIndexes, failureMessage, jobPhase, podProblem, podsOf, succeededResult } from '../job-state.js';
import { mpiJobState, mpiPodsOf, rankZeroPod, type MpiJobState, type MpiPods } from '../mpijob-state.js';
import { TRAIN_POLL_MS } from '../progress.js';
import { MPIJOB, MPI_GROUP, MPI_VERSION, type MpiJob } from '../../api/mpi.js';
import { objectKey } from '../../runtime/keys.js';
import { buildStageJob, jobHash, jobName } from './jobs.js';
import { buildTrainMpiJob } from './mpijob.js';
import { JOB_STAGES, type JobStage, runArtifacts, shardCount, trainingTopology } from './plan.js';

export { TRAIN_POLL_MS } from '../progress.js';
/** How soon a Job the API server refused is tried again (RBAC or a quota may have been fixed meanwhile). */
export const REJECTED_RETRY_MS = 60_000;

const STAGE_OF: Record<JobStage, RunStage> = {
  datagen: 'Datagen',
  train: 'Training',
  export: 'Exporting',
  eval: 'Evaluating',
};
const TITLE: Record<JobStage, string> = { datagen: 'Datagen', train: 'Training', export: 'Export', eval: 'Eval' };

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * Reconciles one DistillationRun `namespace/name` in four steps: observe (the run and its children, from
 * the caches) → ensure the current stage's Job → sync the endpoint → write status (only on change). The
 * trainer's live step and loss come from the progress poller's cache (ctx.progress), never from a call
 * made here. Throws API errors (the queue retries with backoff).
 */
export async function reconcileRun(ctx: ControllerContext, key: string): Promise<ReconcileResult | void> {
  const obs = observe(ctx, key);
  if (!obs) {
    ctx.progress?.forget(key);
    return; // deleted: children go by garbage collection
  }
  const d = new StatusDraft(obs.old, obs.run.metadata?.generation ?? 1, rfc3339(ctx.now()));
  if (!obs.spec) {
    ctx.progress?.forget(key);
    invalidSpecStatus(d, obs.invalid!, obs.old);
    return writeStatus(ctx, obs.run, obs.old, d.status);
  }
  const spec = obs.spec;
  if (trainingTopology(spec).distributed && !ctx.cfg.mpiOperator) {
    ctx.progress?.forget(key);
    await mpiOperatorDisabled(ctx, obs, spec, d);
    return writeStatus(ctx, obs.run, obs.old, d.status);
  }
  const walk = walkStages(ctx, obs, spec, d);
  if (walk.trainerPod) ctx.progress?.watch(key, walk.trainerPod);
  else ctx.progress?.forget(key);
  for (const [type, reason, message] of walk.events) await ctx.event(obs.run, type, reason, message);
  if (walk.mpiAction) await actOnMpiJob(ctx, obs.run, walk.mpiAction);
  const ensured = walk.next ? await ensureStageJob(ctx, obs, spec, walk.next, d) : {};
  const conflict =
    walk.outcome !== 'failed' || !spec.serve?.enabled ? await syncEndpoint(ctx, obs.run, spec, d.st) : undefined;
  summarize(ctx, obs, spec, walk.outcome, d);
  d.set(
    walk.rejected.length ? specChangeRejected(walk.rejected) : (ensured.degraded ?? walk.degraded ?? conflict ?? ok),
  );
  await writeStatus(ctx, obs.run, obs.old, d.status);
  const poll = ensured.poll ?? walk.poll;
  return poll === undefined ? undefined : { requeueAfterMs: poll };
}

const ok: ConditionUpdate = { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' };

/** The status a reconcile computes, starting from the run's current one. */
class StatusDraft {
  readonly st: DistillationRunStatus;
  private conds: Condition[];
  constructor(
    old: DistillationRunStatus,
    private readonly generation: number,
    /** RFC 3339, for startTime, completionTime and condition transitions. */
    readonly now: string,
  ) {
    this.conds = [...(old.conditions ?? [])];
    this.st = { ...old, observedGeneration: generation };
  }
  /** Sets a condition (its lastTransitionTime moves only when its status changes). */
  set(u: ConditionUpdate): void {
    this.conds = setCondition(this.conds, u, this.generation, this.now);
  }
  find(type: ConditionUpdate['type']): Condition | undefined {
    return findCondition(this.conds, type);
  }
  get status(): DistillationRunStatus {
    return { ...this.st, conditions: this.conds };
  }
}

/**
 * One stage's Job as the cache shows it (absent until created), and its pods; for a multi-rank train
 * stage its MPIJob and that MPIJob's launcher and worker pods instead.
 */
interface ObservedStage {
  readonly stage: JobStage;
  readonly job?: V1Job;
  readonly pods: V1Pod[];
  readonly mpiJob?: MpiJob;
  readonly mpiPods?: MpiPods;
}

/** What a reconcile reads, all from caches: no API call and no pod probe. */
interface Observed {
  readonly key: string;
  readonly run: CustomObject;
  readonly old: DistillationRunStatus;
  /** The parsed spec, or undefined with `invalid` (the reason and message to report). */
  readonly spec?: DistillationRunSpec;
  readonly invalid?: { reason: 'InvalidName' | 'InvalidSpec'; message: string };
  /** The Jobs of the enabled stages, in pipeline order. */
  readonly stages: ObservedStage[];
  /** The trainer's last reported numbers (step, loss, …), from the progress poller's cache. */
  readonly trainer?: Record<string, number>;
}

/** Reads the run, its Jobs and their pods, and the trainer's cached progress; undefined when the run is gone. */
function observe(ctx: ControllerContext, key: string): Observed | undefined {
  const { namespace, name } = splitKey(key);
  const run = ctx.caches.runs.get(name, namespace);
  if (!run || run.metadata?.deletionTimestamp) return undefined;
  const old = (run.status ?? {}) as DistillationRunStatus;
  const parsed = DistillationRunSpecSchema.safeParse(run.spec);
  const badName = nameProblem(name, MAX_RUN_NAME);
  if (!parsed.success || badName) {
    const issue = parsed.success ? undefined : parsed.error.issues[0];
    const message =
      badName ??
      `spec.${issue!.path.join('.')}: ${issue!.message}; fix the spec (kubectl edit ${RUN.singular} ${name})`;
    return { key, run, old, invalid: { reason: badName ? 'InvalidName' : 'InvalidSpec', message }, stages: [] };
  }
  const spec = parsed.data;
  // The ranks split every global batch evenly (src/train/data-parallel.ts): refuse an uneven one now,
  // before datagen, rather than when the trainer starts.
  const topo = trainingTopology(spec);
  if (topo.distributed && spec.training.batch % topo.ranks !== 0) {
    const message =
      `spec.training.batch ${spec.training.batch} is not divisible by the run's ${topo.ranks} training ranks ` +
      `(workers × GPUs per worker); use a multiple of ${topo.ranks} (kubectl edit ${RUN.singular} ${name})`;
    return { key, run, old, invalid: { reason: 'InvalidSpec', message }, stages: [] };
  }
  const pods = ctx.caches.pods.list(namespace);
  const stages = JOB_STAGES.filter((s) => s !== 'eval' || spec.evaluation.enabled).map((stage): ObservedStage => {
    const job = ctx.caches.jobs.get(jobName(name, stage), namespace);
    // The trainer is a Job or an MPIJob of the same name, whichever exists (a spec edit may ask for the other).
    const mpiJob = stage === 'train' && !job ? ctx.caches.mpiJobs?.get(jobName(name, stage), namespace) : undefined;
    if (mpiJob) return { stage, mpiJob, pods: [], mpiPods: mpiPodsOf(pods, mpiJob) };
    return { stage, job, pods: job ? podsOf(pods, job.metadata!.name!) : [] };
  });
  return { key, run, old, spec, stages, trainer: ctx.progress?.latest(key) };
}

/** An invalid spec or name: Degraded, and (before any stage ran) not Ready nor Progressing. */
function invalidSpecStatus(d: StatusDraft, why: NonNullable<Observed['invalid']>, old: DistillationRunStatus): void {
  d.set({ type: 'Degraded', status: 'True', reason: why.reason, message: why.message });
  if (!old.stage) {
    d.set({ type: 'Ready', status: 'False', reason: why.reason, message: why.message });
    d.set({ type: 'Progressing', status: 'False', reason: why.reason, message: why.message });
  }
}

/** Where the pipeline stands, from its Jobs (see walkStages). */
interface Walk {
  outcome: 'running' | 'failed' | 'done';
  /** The first stage without a Job: the one to create now. */
  next?: JobStage;
  /** Stages whose Job was made from an earlier spec. */
  rejected: JobStage[];
  degraded?: ConditionUpdate;
  /** The running trainer pod, whose progress is polled. */
  trainerPod?: V1Pod;
  /** When to reconcile again without an event (ms). */
  poll?: number;
  /** Events to record: [type, reason, message]. */
  events: ['Normal' | 'Warning', string, string][];
  /** What to do to the trainer's MPIJob (mpijob-state.ts). */
  mpiAction?: MpiAction;
}

/** Stop an MPIJob whose launcher failed permanently, or delete one that lost a worker to start it over. */
type MpiAction =
  { kind: 'stop'; mpiJob: MpiJob; message: string } | { kind: 'restart'; mpiJob: MpiJob; message: string };

/**
 * Walks the stages in order up to the first one not complete, filling the draft's stage, progress,
 * artifacts and (for a running or failed stage) conditions. Pure apart from the draft.
 */
function walkStages(ctx: ControllerContext, obs: Observed, spec: DistillationRunSpec, d: StatusDraft): Walk {
  const art = runArtifacts(spec);
  d.st.startTime ??= d.now;
  d.st.progress = { ...obs.old.progress, shardsTotal: shardCount(spec), steps: spec.training.steps };
  d.st.artifacts = { ...obs.old.artifacts, pairs: art.pairs, checkpoints: art.checkpoints };
  const w: Walk = { outcome: 'done', rejected: [], events: [] };
  for (const { stage, job, pods, mpiJob, mpiPods } of obs.stages) {
    d.st.stage = STAGE_OF[stage];
    if (mpiJob) {
      if (jobHash(mpiJob) !== desiredHash(obs.run, spec, ctx.cfg, stage)) w.rejected.push(stage);
      if (mpiTrainStage(obs, spec, mpiJob, mpiPods!, d, w)) continue;
      break;
    }
    if (!job) {
      w.outcome = 'running';
      w.next = stage;
      break;
    }
    if (jobHash(job) !== desiredHash(obs.run, spec, ctx.cfg, stage)) w.rejected.push(stage);
    const phase = jobPhase(job);
    if (stage === 'datagen')
      d.st.progress.shardsDone =
        phase.phase === 'Complete'
          ? d.st.progress.shardsTotal
          : countIndexes(job.status?.completedIndexes) || (job.status?.succeeded ?? 0);
    if (phase.phase === 'Running') {
      runningStage(obs, stage, job, pods, d, w);
      break;
    }
    if (phase.phase === 'Failed') {
      failedStage(obs, stage, job, pods, phase, d, w);
      break;
    }
    applyResult(stage, d.st, succeededResult(pods), spec);
  }
  return w;
}

/** The hash of what the run's spec decides for `stage` now (a Job's, or the trainer MPIJob's). */
function desiredHash(run: CustomObject, spec: DistillationRunSpec, cfg: ControllerContext['cfg'], stage: JobStage) {
  return stage === 'train' && trainingTopology(spec).distributed
    ? jobHash(buildTrainMpiJob(run, spec, cfg))
    : jobHash(buildStageJob(run, spec, cfg, stage));
}

/** Training runs in `pod` (or none yet): poll it, and show its last reported step and loss. */
function trainingProgress(obs: Observed, pod: V1Pod | undefined, d: StatusDraft, w: Walk): void {
  w.trainerPod = pod;
  const p = pod ? obs.trainer : undefined;
  if (p?.step !== undefined)
    d.st.progress = { ...d.st.progress, step: p.step, ...(p.loss !== undefined ? { loss: p.loss } : {}) };
  w.poll = TRAIN_POLL_MS; // a safety net: the poller also enqueues the run when the step changes
}

/** A stage whose Job runs: Progressing, the trainer's cached progress, and Degraded for pod trouble. */
function runningStage(obs: Observed, stage: JobStage, job: V1Job, pods: V1Pod[], d: StatusDraft, w: Walk): void {
  w.outcome = 'running';
  const running = pods.find((p) => p.status?.phase === 'Running');
  if (stage === 'train') trainingProgress(obs, running, d, w);
  const message = runningMessage(stage, d.st, job);
  d.set({ type: 'Progressing', status: 'True', reason: `${TITLE[stage]}Running`, message });
  const problem = podProblem(pods);
  const failed = job.status?.failed ?? 0;
  if (problem) w.degraded = { type: 'Degraded', status: 'True', reason: problem.reason, message: problem.message };
  else if (failed > 0) {
    const last = failureMessage(pods);
    w.degraded = {
      type: 'Degraded',
      status: 'True',
      reason: `${TITLE[stage]}Retrying`,
      message:
        `${failed} ${stage} pod${failed > 1 ? 's' : ''} failed and will be retried` +
        `${stage === 'train' ? ' from the latest checkpoint' : ''}${last ? `; last: ${last}` : ''}`,
    };
  }
}

/** A stage whose Job failed: Failed, not Progressing, not Ready; a Warning event on the transition. */
function failedStage(
  obs: Observed,
  stage: JobStage,
  job: V1Job,
  pods: V1Pod[],
  phase: ReturnType<typeof jobPhase>,
  d: StatusDraft,
  w: Walk,
): void {
  const why = failureMessage(pods, phase.message) ?? phase.message ?? 'no pod reported why';
  stageFailed(obs, stage, `${stage} Job ${job.metadata!.name} failed (${phase.reason ?? 'Failed'}): ${why}`, d, w);
}

/** Stage `stage` failed for good: Failed, not Progressing, not Ready; a Warning event on the transition. */
function stageFailed(obs: Observed, stage: JobStage, message: string, d: StatusDraft, w: Walk): void {
  w.outcome = 'failed';
  const reason = `${TITLE[stage]}Failed`;
  if (findCondition(obs.old.conditions, 'Failed')?.status !== 'True') w.events.push(['Warning', reason, message]);
  d.set({ type: 'Failed', status: 'True', reason, message });
  d.set({ type: 'Progressing', status: 'False', reason, message });
  d.set({ type: 'Ready', status: 'False', reason, message });
  d.st.stage = 'Failed';
  d.st.completionTime ??= d.now;
}

/**
 * The train stage as an MPIJob (mpijob-state.ts): the same conditions as a trainer Job's, the step of
 * rank 0's worker pod, and the launcher's termination message. Returns true when training completed.
 */
function mpiTrainStage(
  obs: Observed,
  spec: DistillationRunSpec,
  mj: MpiJob,
  pods: MpiPods,
  d: StatusDraft,
  w: Walk,
): boolean {
  const name = mj.metadata!.name!;
  const state: MpiJobState = mpiJobState(mj, pods);
  if (state.phase === 'Complete') {
    applyResult('train', d.st, succeededResult(pods.launchers), spec);
    return true;
  }
  if (state.phase === 'Failed') {
    if (state.stop) w.mpiAction = { kind: 'stop', mpiJob: mj, message: state.message };
    stageFailed(obs, 'train', `train MPIJob ${name} failed (${state.reason}): ${state.message}`, d, w);
    return false;
  }
  w.outcome = 'running';
  if (state.phase === 'Restart') {
    const message = `${state.message}; the MPIJob starts over from the latest checkpoint`;
    if (!state.deleting) {
      w.mpiAction = { kind: 'restart', mpiJob: mj, message };
      w.events.push(['Warning', 'TrainingRestarted', message]);
    }
    d.set({ type: 'Progressing', status: 'True', reason: 'TrainingRestarting', message });
    w.degraded = { type: 'Degraded', status: 'True', reason: 'TrainingRetrying', message };
    return false;
  }
  trainingProgress(obs, rankZeroPod(pods, name), d, w);
  const topo = trainingTopology(spec);
  const layout = `${topo.ranks} ranks on ${topo.workers} worker pod${topo.workers > 1 ? 's' : ''}`;
  const message = `${runningMessage('train', d.st)}, ${layout} (MPIJob ${name})`;
  d.set({ type: 'Progressing', status: 'True', reason: 'TrainingRunning', message });
  const problem = podProblem([...pods.launchers, ...pods.workers]);
  if (problem) w.degraded = { type: 'Degraded', status: 'True', reason: problem.reason, message: problem.message };
  else if (state.failed > 0)
    w.degraded = {
      type: 'Degraded',
      status: 'True',
      reason: 'TrainingRetrying',
      message:
        `${state.failed} launcher pod${state.failed > 1 ? 's' : ''} failed and will be retried from the latest ` +
        `checkpoint${state.last ? `; last: ${state.last}` : ''}`,
    };
  else if (state.restarting)
    w.degraded = {
      type: 'Degraded',
      status: 'True',
      reason: 'TrainingRetrying',
      message: `MPIJob ${name} is restarting (${state.restarting}); training resumes from the latest checkpoint`,
    };
  return false;
}

/**
 * Carries out the walk's MPIJob action: a permanent failure suspends the MPIJob (the MPI Operator deletes
 * its workers and stops retrying the launcher) and notes the message on it; a lost worker deletes it
 * (foreground: its pods go first), so the next reconcile creates it again. Gone already: nothing to do.
 */
async function actOnMpiJob(ctx: ControllerContext, run: CustomObject, a: MpiAction): Promise<void> {
  const { name, namespace, uid } = a.mpiJob.metadata as { name: string; namespace: string; uid?: string };
  const target = { group: MPI_GROUP, version: MPI_VERSION, namespace, plural: MPIJOB.plural, name };
  try {
    if (a.kind === 'stop') {
      const body = {
        metadata: { annotations: { [ANNOTATIONS.failure]: a.message } },
        spec: { runPolicy: { suspend: true } },
      };
      await ctx.apis.custom.patchNamespacedCustomObject({ ...target, body }, MERGE_PATCH);
      ctx.log.info({ run: objectKey(run), mpiJob: name }, 'MPIJob suspended: its launcher failed permanently');
    } else {
      // The uid precondition: never delete a newer MPIJob of the same name that a stale cache does not show.
      const body = { propagationPolicy: 'Foreground', ...(uid ? { preconditions: { uid } } : {}) };
      await ctx.apis.custom.deleteNamespacedCustomObject({ ...target, body });
      ctx.log.warn({ run: objectKey(run), mpiJob: name, why: a.message }, 'MPIJob deleted to start over');
    }
  } catch (e) {
    if (statusOf(e) !== 404 && statusOf(e) !== 409) throw e;
  }
}

/**
 * A multi-rank run while the operator may not create MPIJobs: Failed (reason MPIOperatorDisabled, naming
 * the chart value), nothing created. Not final: enabling the MPI Operator (or one rank) lets the run start.
 */
async function mpiOperatorDisabled(
  ctx: ControllerContext,
  obs: Observed,
  spec: DistillationRunSpec,
  d: StatusDraft,
): Promise<void> {
  const topo = trainingTopology(spec);
  const reason = 'MPIOperatorDisabled';
  const message =
    `training.workers ${topo.workers} × ${topo.slotsPerWorker} rank${topo.slotsPerWorker > 1 ? 's' : ''} per ` +
    `worker = ${topo.ranks} ranks need an MPIJob, and this operator runs without the Kubeflow MPI Operator: ` +
    'install it and set mpiOperator.enabled=true in the get-distill Helm release (GET_DISTILL_MPI_OPERATOR=true), ' +
    'or train in one trainer Job (training.workers: 1 without gpusPerWorker)';
  if (findCondition(obs.old.conditions, 'Failed')?.reason !== reason)
    await ctx.event(obs.run, 'Warning', reason, message);
  d.st.startTime ??= d.now;
  d.st.stage = 'Failed';
  for (const type of ['Failed', 'Degraded'] as const) d.set({ type, status: 'True', reason, message });
  for (const type of ['Ready', 'Progressing'] as const) d.set({ type, status: 'False', reason, message });
}

/**
 * Creates the Job of `stage` (the API's 409 counts as created: names are deterministic). A Job the API
 * server refuses (4xx other than 429) is reported as JobRejected and retried after REJECTED_RETRY_MS.
 * @throws the API error when it is transient (5xx, 429, no answer): the queue retries with backoff.
 */
async function ensureStageJob(
  ctx: ControllerContext,
  obs: Observed,
  spec: DistillationRunSpec,
  stage: JobStage,
  d: StatusDraft,
): Promise<{ degraded?: ConditionUpdate; poll?: number }> {
  const namespace = obs.run.metadata!.namespace!;
  const mpi = stage === 'train' && trainingTopology(spec).distributed;
  const kind = mpi ? MPIJOB.kind : 'Job';
  const desired = mpi ? buildTrainMpiJob(obs.run, spec, ctx.cfg) : buildStageJob(obs.run, spec, ctx.cfg, stage);
  const name = desired.metadata!.name!;
  let created: 'created' | 'exists';
  try {
    created = await createIfAbsent(() =>
      mpi
        ? ctx.apis.custom.createNamespacedCustomObject({
            group: MPI_GROUP,
            version: MPI_VERSION,
            namespace,
            plural: MPIJOB.plural,
            body: desired,
          })
        : ctx.apis.batch.createNamespacedJob({ namespace, body: desired as V1Job }),
    );
  } catch (e) {
    const code = statusOf(e);
    if (code === undefined || code >= 500 || code === 429) throw e;
    // Refused (422 validation or admission, 403 RBAC or quota, 404 no such CRD): say so on the run instead
    // of retrying blind.
    const message = `the API server refused the ${stage} ${kind} (${code}): ${apiMessage(e)}`;
    d.set({ type: 'Progressing', status: 'False', reason: 'JobRejected', message });
    return { degraded: { type: 'Degraded', status: 'True', reason: 'JobRejected', message }, poll: REJECTED_RETRY_MS };
  }
  if (created === 'created') {
    ctx.log.info({ run: obs.key, job: name, kind }, `${stage} ${kind} created`);
    await ctx.event(obs.run, 'Normal', `${TITLE[stage]}Started`, `created ${kind} ${name}`);
  }
  const reason = `${TITLE[stage]}Started`;
  d.set({ type: 'Progressing', status: 'True', reason, message: `${stage} ${kind} ${name} created` });
  return {};
}

/** Complete and Ready once every stage finished (Ready waits for the endpoint), Failed=False unless failed. */
function summarize(
  ctx: ControllerContext,
  obs: Observed,
  spec: DistillationRunSpec,
  outcome: Walk['outcome'],
  d: StatusDraft,
): void {
  const { namespace, name } = obs.run.metadata as { namespace: string; name: string };
  if (outcome === 'done') {
    const endpointReady = !spec.serve?.enabled || endpointIsReady(ctx, namespace, name);
    d.st.stage = endpointReady ? 'Succeeded' : 'Serving';
    d.st.completionTime ??= d.now;
    const summary = d.st.fid !== undefined ? `FID ${d.st.fid.toFixed(2)}` : 'model exported';
    d.set({ type: 'Complete', status: 'True', reason: 'Succeeded', message: `all stages finished: ${summary}` });
    d.set({ type: 'Progressing', status: 'False', reason: 'Succeeded', message: summary });
    d.set(
      endpointReady
        ? {
            type: 'Ready',
            status: 'True',
            reason: 'Succeeded',
            message: spec.serve?.enabled ? `served by GenerationEndpoint ${name}` : summary,
          }
        : {
            type: 'Ready',
            status: 'False',
            reason: 'WaitingForEndpoint',
            message: `GenerationEndpoint ${name} is not ready yet`,
          },
    );
  } else if (outcome === 'running') {
    d.set({ type: 'Ready', status: 'False', reason: 'Running', message: `stage ${d.st.stage}` });
  }
  // A Failed condition is final, except MPIOperatorDisabled: the run starts once the MPI Operator is enabled.
  if (outcome !== 'failed' && (!d.find('Failed') || d.find('Failed')?.reason === 'MPIOperatorDisabled'))
    d.set({ type: 'Failed', status: 'False', reason: 'AsExpected', message: '' });
}

/** Degraded for spec edits to stages whose Jobs exist (their pod templates are immutable). */
function specChangeRejected(rejected: JobStage[]): ConditionUpdate {
  const many = rejected.length > 1;
  return {
    type: 'Degraded',
    status: 'True',
    reason: 'SpecChangeRejected',
    message:
      `spec changes to the ${rejected.join(', ')} stage${many ? 's' : ''} cannot apply: ` +
      `${many ? 'their Jobs' : 'its Job'} already ran or run${many ? '' : 's'} with the earlier spec; ` +
      `revert the change, or create a new ${RUN.kind} for the new settings`,
  };
}

function runningMessage(stage: JobStage, st: DistillationRunStatus, job?: V1Job): string {
  const active = job?.status?.active ?? 0;
  if (stage === 'datagen')
    return (
      `datagen: ${st.progress?.shardsDone ?? 0}/${st.progress?.shardsTotal} shards, ` +
      `${active} pod${active === 1 ? '' : 's'} running`
    );
  if (stage === 'train')
    return `training to step ${st.progress?.steps}${st.progress?.step ? ` (last reported ${st.progress.step})` : ''}`;
  return `${stage} Job ${job?.metadata?.name} running`;
}

/** Copies what a finished stage's pod reported into the status. */
function applyResult(
  stage: JobStage,
  st: DistillationRunStatus,
  r: ReturnType<typeof succeededResult>,
  spec: DistillationRunSpec,
): void {
  const art = runArtifacts(spec);
  const s = r?.summary ?? {};
  if (stage === 'train') {
    st.progress = {
      ...st.progress,
      step: num(s.step) ?? spec.training.steps,
      ...(num(s.loss) !== undefined ? { loss: num(s.loss) } : {}),
    };
  } else if (stage === 'export') {
    // The exporter's model.onnx digest.
    const sha = typeof s.sha256 === 'string' && /^[0-9a-f]{64}$/.test(s.sha256) ? `sha256:${s.sha256}` : undefined;
    st.artifacts = { ...st.artifacts, model: art.model, ...(sha ? { modelDigest: sha } : {}) };
  } else if (stage === 'eval') {
    st.artifacts = { ...st.artifacts, eval: art.eval };
    for (const k of ['fid', 'inceptionScore', 'precision', 'recall'] as const)
      if (num(s[k]) !== undefined) st[k] = num(s[k]);
  }
}

/**
 * Keeps the GenerationEndpoint `<run>` in step with spec.serve: created once the model is exported,
 * patched to exactly the serve settings (removed fields removed), deleted when serve is turned off.
 * A same-named endpoint this run does not control is left alone and reported.
 * @returns a Degraded update for a name conflict, else undefined.
 */
async function syncEndpoint(
  ctx: ControllerContext,
  run: CustomObject,
  spec: DistillationRunSpec,
  st: DistillationRunStatus,
): Promise<ConditionUpdate | undefined> {
  const { namespace, name } = { namespace: run.metadata!.namespace!, name: run.metadata!.name! };
  const existing = ctx.caches.endpoints.get(name, namespace);
  const target = { group: GROUP, version: VERSION, namespace, plural: ENDPOINT.plural };
  if (existing && !ownedBy(existing, run)) {
    delete st.endpoint;
    if (!spec.serve?.enabled) return undefined;
    return {
      type: 'Degraded',
      status: 'True',
      reason: 'NameConflict',
      message:
        `a ${ENDPOINT.kind} named ${name} exists that this run does not control: ` +
        'delete or rename it, or turn serve off',
    };
  }
  if (!spec.serve?.enabled) {
    delete st.endpoint;
    if (existing) {
      try {
        await ctx.apis.custom.deleteNamespacedCustomObject({ ...target, name });
      } catch (e) {
        if (statusOf(e) !== 404) throw e;
      }
      await ctx.event(run, 'Normal', 'EndpointDeleted', `serve was turned off: deleted ${ENDPOINT.kind} ${name}`);
    }
    return undefined;
  }
  if (!st.artifacts?.model) return undefined; // nothing to serve yet
  const desired = desiredEndpoint(spec, name);
  st.endpoint = name;
  if (!existing) {
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: ENDPOINT.kind,
      metadata: childMeta(run, RUN.kind, name, { [LABELS.run]: name }),
      spec: desired,
    };
    if ((await createIfAbsent(() => ctx.apis.custom.createNamespacedCustomObject({ ...target, body }))) === 'created') {
      await ctx.event(run, 'Normal', 'EndpointCreated', `created ${ENDPOINT.kind} ${name}`);
    }
    return undefined;
  }
  const current = GenerationEndpointSpecSchema.safeParse(existing.spec);
  if (!current.success || specHash(current.data) !== specHash(desired)) {
    await ctx.apis.custom.patchNamespacedCustomObject(
      { ...target, name, body: { spec: replaceWith(existing.spec, desired) } },
      MERGE_PATCH,
    );
  }
  return undefined;
}

/** The endpoint spec serving run `name`: spec.serve, the run's resources by default, its store without the URI. */
function desiredEndpoint(spec: DistillationRunSpec, name: string) {
  const { enabled: _, ...serving } = spec.serve!;
  const { uri: __, ...store } = spec.store;
  return GenerationEndpointSpecSchema.parse({
    ...serving,
    resources: serving.resources ?? spec.resources,
    model: { run: name },
    store,
  });
}

function endpointIsReady(ctx: ControllerContext, namespace: string, name: string): boolean {
  const ep = ctx.caches.endpoints.get(name, namespace);
  return (
    findCondition((ep?.status as { conditions?: Condition[] } | undefined)?.conditions, 'Ready')?.status === 'True'
  );
}

/** Writes status when it changed (a no-op reconcile writes nothing, so it cannot loop on its own event). */
async function writeStatus(
  ctx: ControllerContext,
  run: CustomObject,
  old: DistillationRunStatus,
  next: DistillationRunStatus,
): Promise<void> {
  if (specHash(old) === specHash(next)) return;
  // A merge patch that also removes what `next` dropped (e.g. status.endpoint once serve is off).
  await patchCustomStatus(
    ctx.apis,
    RUN.plural,
    run.metadata!.namespace!,
    run.metadata!.name!,
    replaceWith(old, next) as Record<string, unknown>,
  );
}
