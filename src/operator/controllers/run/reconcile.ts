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
 */
import type { V1Job } from '@kubernetes/client-node';
import { ENDPOINT, GROUP, LABELS, MAX_RUN_NAME, RUN, VERSION, nameProblem } from '../../api/v1alpha1/group.js';
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
import { buildStageJob, jobHash } from './jobs.js';
import { JOB_STAGES, type JobStage, runArtifacts, shardCount } from './plan.js';

/** How often a training run's status picks up the trainer's step and loss (ms). */
export const TRAIN_POLL_MS = 30_000;
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

/** Reconciles one DistillationRun `namespace/name`. Throws API errors (the queue retries with backoff). */
export async function reconcileRun(ctx: ControllerContext, key: string): Promise<ReconcileResult | void> {
  const { namespace, name } = splitKey(key);
  const run = ctx.caches.runs.get(name, namespace);
  if (!run || run.metadata?.deletionTimestamp) return; // children go by garbage collection
  const gen = run.metadata?.generation ?? 1;
  const old = (run.status ?? {}) as DistillationRunStatus;
  const now = rfc3339(ctx.now());
  let conds: Condition[] = [...(old.conditions ?? [])];
  const set = (u: ConditionUpdate) => {
    conds = setCondition(conds, u, gen, now);
  };
  const st: DistillationRunStatus = { ...old, observedGeneration: gen };

  const parsed = DistillationRunSpecSchema.safeParse(run.spec);
  const badName = nameProblem(name, MAX_RUN_NAME);
  if (!parsed.success || badName) {
    const issue = parsed.success ? undefined : parsed.error.issues[0];
    const msg =
      badName ??
      `spec.${issue!.path.join('.')}: ${issue!.message}; fix the spec (kubectl edit ${RUN.singular} ${name})`;
    set({ type: 'Degraded', status: 'True', reason: badName ? 'InvalidName' : 'InvalidSpec', message: msg });
    if (!st.stage) {
      set({ type: 'Ready', status: 'False', reason: badName ? 'InvalidName' : 'InvalidSpec', message: msg });
      set({ type: 'Progressing', status: 'False', reason: badName ? 'InvalidName' : 'InvalidSpec', message: msg });
    }
    return writeStatus(ctx, run, old, { ...st, conditions: conds });
  }
  const spec = parsed.data;
  const art = runArtifacts(spec);
  st.startTime ??= now;
  st.progress = { ...old.progress, shardsTotal: shardCount(spec), steps: spec.training.steps };
  st.artifacts = { ...old.artifacts, pairs: art.pairs, checkpoints: art.checkpoints };

  const stages = JOB_STAGES.filter((s) => s !== 'eval' || spec.evaluation.enabled);
  const rejected: JobStage[] = [];
  let outcome: 'running' | 'failed' | 'done' = 'done';
  let degraded: ConditionUpdate | undefined;
  let poll: number | undefined;
  for (const stage of stages) {
    const desired = buildStageJob(run, spec, ctx.cfg, stage);
    const job = ctx.caches.jobs.get(desired.metadata!.name!, namespace);
    st.stage = STAGE_OF[stage];
    if (!job) {
      outcome = 'running';
      let created: 'created' | 'exists';
      try {
        created = await createIfAbsent(() => ctx.apis.batch.createNamespacedJob({ namespace, body: desired }));
      } catch (e) {
        const code = statusOf(e);
        if (code === undefined || code >= 500 || code === 429) throw e; // transient: the queue retries with backoff
        // Refused (422 validation or admission, 403 RBAC or quota): say so on the run instead of retrying blind.
        const message = `the API server refused the ${stage} Job (${code}): ${apiMessage(e)}`;
        degraded = { type: 'Degraded', status: 'True', reason: 'JobRejected', message };
        set({ type: 'Progressing', status: 'False', reason: 'JobRejected', message });
        poll = REJECTED_RETRY_MS;
        break;
      }
      if (created === 'created') {
        ctx.log.info({ run: key, job: desired.metadata!.name }, `${stage} Job created`);
        await ctx.event(run, 'Normal', `${TITLE[stage]}Started`, `created Job ${desired.metadata!.name}`);
      }
      set({
        type: 'Progressing',
        status: 'True',
        reason: `${TITLE[stage]}Started`,
        message: `${stage} Job ${desired.metadata!.name} created`,
      });
      break;
    }
    if (jobHash(job) !== jobHash(desired)) rejected.push(stage);
    const pods = podsOf(ctx.caches.pods.list(namespace), job.metadata!.name!);
    const phase = jobPhase(job);
    if (stage === 'datagen')
      st.progress.shardsDone =
        phase.phase === 'Complete'
          ? st.progress.shardsTotal
          : countIndexes(job.status?.completedIndexes) || (job.status?.succeeded ?? 0);
    if (phase.phase === 'Running') {
      outcome = 'running';
      if (stage === 'train') {
        const live = pods.find((p) => p.status?.phase === 'Running');
        const p = live && ctx.probe ? await ctx.probe(live) : undefined;
        if (p?.step !== undefined)
          st.progress = { ...st.progress, step: p.step, ...(p.loss !== undefined ? { loss: p.loss } : {}) };
        poll = TRAIN_POLL_MS; // no watch event reports a step: look again
      }
      set({
        type: 'Progressing',
        status: 'True',
        reason: `${TITLE[stage]}Running`,
        message: runningMessage(stage, st, job),
      });
      const problem = podProblem(pods);
      const failed = job.status?.failed ?? 0;
      if (problem) degraded = { type: 'Degraded', status: 'True', reason: problem.reason, message: problem.message };
      else if (failed > 0)
        degraded = {
          type: 'Degraded',
          status: 'True',
          reason: `${TITLE[stage]}Retrying`,
          message: `${failed} ${stage} pod${failed > 1 ? 's' : ''} failed and will be retried${stage === 'train' ? ' from the latest checkpoint' : ''}${failureMessage(pods) ? `; last: ${failureMessage(pods)}` : ''}`,
        };
      break;
    }
    if (phase.phase === 'Failed') {
      outcome = 'failed';
      const why = failureMessage(pods, phase.message) ?? phase.message ?? 'no pod reported why';
      const message = `${stage} Job ${job.metadata!.name} failed (${phase.reason ?? 'Failed'}): ${why}`;
      if (findCondition(old.conditions, 'Failed')?.status !== 'True')
        await ctx.event(run, 'Warning', `${TITLE[stage]}Failed`, message);
      set({ type: 'Failed', status: 'True', reason: `${TITLE[stage]}Failed`, message });
      set({ type: 'Progressing', status: 'False', reason: `${TITLE[stage]}Failed`, message });
      set({ type: 'Ready', status: 'False', reason: `${TITLE[stage]}Failed`, message });
      st.stage = 'Failed';
      st.completionTime ??= now;
      break;
    }
    applyResult(stage, st, succeededResult(pods), spec);
  }

  const conflict = outcome !== 'failed' || !spec.serve?.enabled ? await syncEndpoint(ctx, run, spec, st) : undefined;
  if (outcome === 'done') {
    const endpointReady = !spec.serve?.enabled || endpointIsReady(ctx, namespace, name);
    st.stage = endpointReady ? 'Succeeded' : 'Serving';
    st.completionTime ??= now;
    const summary = st.fid !== undefined ? `FID ${st.fid.toFixed(2)}` : 'model exported';
    set({ type: 'Complete', status: 'True', reason: 'Succeeded', message: `all stages finished: ${summary}` });
    set({ type: 'Progressing', status: 'False', reason: 'Succeeded', message: summary });
    set(
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
    set({ type: 'Ready', status: 'False', reason: 'Running', message: `stage ${st.stage}` });
  }
  if (outcome !== 'failed' && !findCondition(conds, 'Failed'))
    set({ type: 'Failed', status: 'False', reason: 'AsExpected', message: '' });
  if (rejected.length) {
    degraded = {
      type: 'Degraded',
      status: 'True',
      reason: 'SpecChangeRejected',
      message: `spec changes to the ${rejected.join(', ')} stage${rejected.length > 1 ? 's' : ''} cannot apply: ${rejected.length > 1 ? 'their Jobs' : 'its Job'} already ran or run${rejected.length > 1 ? '' : 's'} with the earlier spec; revert the change, or create a new ${RUN.kind} for the new settings`,
    };
  }
  set(degraded ?? conflict ?? { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' });
  await writeStatus(ctx, run, old, { ...st, conditions: conds });
  return poll === undefined ? undefined : { requeueAfterMs: poll };
}

function runningMessage(stage: JobStage, st: DistillationRunStatus, job: V1Job): string {
  const active = job.status?.active ?? 0;
  if (stage === 'datagen')
    return `datagen: ${st.progress?.shardsDone ?? 0}/${st.progress?.shardsTotal} shards, ${active} pod${active === 1 ? '' : 's'} running`;
  if (stage === 'train')
    return `training to step ${st.progress?.steps}${st.progress?.step ? ` (last reported ${st.progress.step})` : ''}`;
  return `${stage} Job ${job.metadata!.name} running`;
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
    const sha = typeof s.sha256 === 'string' && /^[0-9a-f]{64}$/.test(s.sha256) ? `sha256:${s.sha256}` : undefined; // the exporter's model.onnx digest
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
      message: `a ${ENDPOINT.kind} named ${name} exists that this run does not control: delete or rename it, or turn serve off`,
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
  const { enabled: _, ...serving } = spec.serve;
  const { uri: __, ...store } = spec.store;
  const desired = GenerationEndpointSpecSchema.parse({
    ...serving,
    resources: serving.resources ?? spec.resources,
    model: { run: name },
    store,
  });
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
