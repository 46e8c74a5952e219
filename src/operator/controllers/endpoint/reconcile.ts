/**
 * The GenerationEndpoint controller: level-triggered and idempotent. It reads the endpoint, its model
 * source (a URI, or a DistillationRun's exported model) and its children from the informer caches,
 * writes the Deployment, Service and autoscaler through the API only when their spec hash differs,
 * and merge-patches status only when it changed. Children carry the endpoint's controller
 * ownerReference, so deleting the endpoint garbage-collects them (peers.md §2d–2e).
 */
import type { V1Deployment, V1ObjectMeta, V1Service, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { ANNOTATIONS, ENDPOINT, MAX_ENDPOINT_NAME, nameProblem } from '../../api/v1alpha1/group.js';
import type { GenerationEndpointSpec } from '../../api/v1alpha1/endpoint.js';
import { setCondition, rfc3339, type Condition, type ConditionUpdate } from '../../conditions.js';
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
import { ownedBy, specHash } from '../meta.js';
import {
  KEDA,
  buildDeployment,
  buildHpa,
  buildScaledObject,
  buildService,
  deploymentPatch,
  endpointUrl,
  rolloutDigest,
  scalingMode,
  selectorLabels,
  type ResolvedModel,
  type ScalingMode,
} from './builders.js';
import { parseEndpointSpec, servingState } from './status.js';

/** How often a converging Deployment is looked at again: pod failures (CrashLoopBackOff) reach no watch of ours. */
export const SETTLING_POLL_MS = 30_000;

/** An object with metadata, as a cache or the API returns it. */
interface Meta {
  metadata?: V1ObjectMeta;
}

/** A problem that stops a child from being written: a Degraded reason and message. */
interface Problem {
  reason: string;
  message: string;
}

/** The model.run of a raw (unparsed) endpoint spec, if any. */
const runOf = (ep: CustomObject): string | undefined => {
  const run = (ep.spec as { model?: { run?: unknown } } | undefined)?.model?.run;
  return typeof run === 'string' ? run : undefined;
};

/**
 * Keys (`namespace/name`) of the endpoints in `namespace` whose spec.model.run is `runName`: the
 * manager maps a DistillationRun event to these (its exported model is what they serve).
 */
export function endpointsForRun(ctx: Pick<ControllerContext, 'caches'>, namespace: string, runName: string): string[] {
  return ctx.caches.endpoints
    .list(namespace)
    .filter((ep) => runOf(ep) === runName)
    .map((ep) => `${namespace}/${ep.metadata!.name}`);
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** The model to serve: spec.model.uri (+ digest), or the run's status.artifacts; undefined while the run has none. */
export function resolveModel(
  ctx: Pick<ControllerContext, 'caches'>,
  namespace: string,
  spec: GenerationEndpointSpec,
): ResolvedModel | undefined {
  if (spec.model.uri) return { uri: spec.model.uri, digest: spec.model.digest };
  const run = ctx.caches.runs.get(spec.model.run!, namespace);
  const art = run?.status?.artifacts as { model?: unknown; modelDigest?: unknown } | undefined;
  if (typeof art?.model !== 'string' || art.model === '') return undefined;
  const d = typeof art.modelDigest === 'string' && DIGEST.test(art.modelDigest) ? art.modelDigest : spec.model.digest;
  return { uri: art.model, digest: d };
}

/** What ensureChild needs to write one kind of child. */
interface ChildOps<T> {
  kind: string;
  create(): Promise<T>;
  read(): Promise<T>;
  patch(current: T): Promise<T>;
}

/**
 * Creates `desired` when absent, else patches it when its spec-hash annotation differs. Returns the
 * object as written or read, or a Problem: a same-named object we do not control, or a 422 (the
 * apiserver refused what we built — retrying cannot help; a spec change requeues). Other errors throw.
 */
async function ensureChild<T extends Meta>(
  ep: Meta,
  desired: Meta,
  current: T | undefined,
  ops: ChildOps<T>,
): Promise<{ obj: T; action: 'created' | 'patched' | 'unchanged' } | Problem> {
  const name = desired.metadata!.name!;
  try {
    let cur = current;
    if (!cur) {
      let made: T | undefined;
      if (
        (await createIfAbsent(async () => {
          made = await ops.create();
        })) === 'created'
      )
        return { obj: made!, action: 'created' };
      cur = await ops.read(); // AlreadyExists: the cache is behind, or someone else's object has the name
    }
    if (!ownedBy(cur, ep))
      return {
        reason: 'NameConflict',
        message: `a ${ops.kind} named ${name} exists that this endpoint does not control: delete or rename it`,
      };
    if (cur.metadata?.annotations?.[ANNOTATIONS.specHash] === desired.metadata!.annotations![ANNOTATIONS.specHash])
      return { obj: cur, action: 'unchanged' };
    return { obj: await ops.patch(cur), action: 'patched' };
  } catch (e) {
    if (statusOf(e) === 422)
      return { reason: 'ChildRejected', message: `the API server rejected ${ops.kind} ${name}: ${apiMessage(e)}` };
    throw e;
  }
}

/** Merge patch of a whole-spec child: labels + the spec-hash annotation (other annotations and owners kept), spec. */
const patchOf = (d: Meta & { spec?: unknown }) => ({
  metadata: { labels: d.metadata!.labels, annotations: d.metadata!.annotations },
  spec: d.spec,
});

const isProblem = (r: object): r is Problem => 'reason' in r;

/** Deletes a child we control, ignoring NotFound (a cache behind the API). */
async function deleteOwned(ep: Meta, obj: Meta | undefined, del: () => Promise<unknown>): Promise<void> {
  if (!obj || !ownedBy(obj, ep)) return;
  try {
    await del();
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
}

/** Status fields besides conditions; undefined clears a field. */
interface StatusFields {
  model?: string;
  modelDigest?: string;
  replicas?: number;
  readyReplicas?: number;
}

/**
 * Applies the condition updates and merge-patches status when anything differs from the cached
 * status (no write otherwise: a write triggers a watch event, which would loop). Records a Warning
 * Event when Degraded turns True or changes reason. Returns whether it wrote.
 */
async function writeStatus(
  ctx: ControllerContext,
  ep: CustomObject,
  fields: StatusFields,
  updates: ConditionUpdate[],
): Promise<boolean> {
  const { name, namespace } = ep.metadata! as { name: string; namespace: string };
  const gen = ep.metadata?.generation ?? 0;
  const cur = (ep.status ?? {}) as Record<string, unknown> & { conditions?: Condition[] };
  const now = rfc3339(ctx.now());
  const conditions = updates.reduce((cs, u) => setCondition(cs, u, gen, now), cur.conditions ?? []);
  const next: Record<string, unknown> = {
    observedGeneration: gen,
    url: endpointUrl(name, namespace),
    model: fields.model ?? null,
    modelDigest: fields.modelDigest ?? null,
    replicas: fields.replicas ?? null,
    readyReplicas: fields.readyReplicas ?? null,
    conditions,
  };
  const differs = Object.entries(next).some(([k, v]) => specHash(v ?? null) !== specHash(cur[k] ?? null));
  if (!differs) return false;
  await patchCustomStatus(ctx.apis, ENDPOINT.plural, namespace, name, next);
  const was = cur.conditions?.find((c) => c.type === 'Degraded');
  const deg = updates.find((u) => u.type === 'Degraded');
  if (deg?.status === 'True' && (was?.status !== 'True' || was.reason !== deg.reason))
    await ctx.event(ep, 'Warning', deg.reason, deg.message);
  return true;
}

/** Ready/Progressing/Degraded for a state that stops before the children (invalid spec, waiting). */
const stopped = (reason: string, msg: string, progressing: boolean, degraded: boolean): ConditionUpdate[] => [
  { type: 'Ready', status: 'False', reason, message: msg },
  { type: 'Progressing', status: progressing ? 'True' : 'False', reason, message: msg },
  degraded
    ? { type: 'Degraded', status: 'True', reason, message: msg }
    : { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'no problems seen' },
];

/**
 * Reconciles the GenerationEndpoint `key` (`namespace/name`): Deployment + Service + autoscaler, then
 * status. Returns a requeue delay only while the Deployment converges (pod failures reach no watch);
 * a run's new model arrives through the run watch ({@link endpointsForRun}), child changes through
 * the owner mapping. @throws the API's errors other than 409 on create / 404 on delete / 422 on write
 * (the work queue retries with backoff).
 */
export async function reconcileEndpoint(ctx: ControllerContext, key: string): Promise<ReconcileResult | void> {
  const { namespace, name } = splitKey(key);
  const ep = ctx.caches.endpoints.get(name, namespace);
  if (!ep || ep.metadata?.deletionTimestamp) return; // gone or going: ownerReferences GC the children

  const badName = nameProblem(name, MAX_ENDPOINT_NAME);
  if (badName) {
    await writeStatus(ctx, ep, {}, stopped('InvalidName', badName, false, true));
    return;
  }
  const parsed = parseEndpointSpec(ep.spec);
  if (!parsed.ok) {
    await writeStatus(ctx, ep, {}, stopped('InvalidSpec', parsed.message, false, true));
    return;
  }
  const spec = parsed.spec;
  const cachedDep = ctx.caches.deployments.get(name, namespace);
  const model = resolveModel(ctx, namespace, spec);
  if (!model) {
    const msg = `waiting for DistillationRun ${spec.model.run} to export a model (status.artifacts.model)`;
    await writeStatus(
      ctx,
      ep,
      { replicas: cachedDep?.status?.replicas, readyReplicas: cachedDep?.status?.readyReplicas },
      stopped('WaitingForModel', msg, true, false),
    );
    return;
  }

  const mode: ScalingMode = scalingMode(spec);
  const problems: Problem[] = [];
  const { apps, core, autoscaling, custom } = ctx.apis;

  // Deployment
  const desiredDep = buildDeployment(ep, spec, model, ctx.cfg);
  const oldDigest = cachedDep?.spec?.template?.metadata?.annotations?.[ANNOTATIONS.modelDigest];
  const dep = await ensureChild<V1Deployment>(ep, desiredDep, cachedDep, {
    kind: 'Deployment',
    create: () => apps.createNamespacedDeployment({ namespace, body: desiredDep }),
    read: () => apps.readNamespacedDeployment({ namespace, name }),
    patch: (cur) =>
      apps.patchNamespacedDeployment(
        { namespace, name, body: deploymentPatch(cur, desiredDep, mode !== 'fixed') },
        MERGE_PATCH,
      ),
  });
  if (isProblem(dep)) problems.push(dep);
  else if (dep.action === 'patched' && oldDigest && oldDigest !== rolloutDigest(model)) {
    await ctx.event(
      ep,
      'Normal',
      'ModelRollout',
      `rolling out model ${model.uri}${model.digest ? ` (${model.digest})` : ''}; ` +
        'pods of the previous model serve until new ones are ready',
    );
  }

  // Service
  const desiredSvc = buildService(ep);
  const svc = await ensureChild<V1Service>(ep, desiredSvc, ctx.caches.services.get(name, namespace), {
    kind: 'Service',
    create: () => core.createNamespacedService({ namespace, body: desiredSvc }),
    read: () => core.readNamespacedService({ namespace, name }),
    patch: () => core.patchNamespacedService({ namespace, name, body: patchOf(desiredSvc) }, MERGE_PATCH),
  });
  if (isProblem(svc)) problems.push(svc);

  // Autoscaler: exactly one of HPA / ScaledObject, or none.
  const cachedHpa = ctx.caches.hpas.get(name, namespace);
  const kedaOn = ctx.cfg.keda;
  if (mode === 'hpa') {
    const desiredHpa = buildHpa(ep, spec);
    const hpa = await ensureChild<V2HorizontalPodAutoscaler>(ep, desiredHpa, cachedHpa, {
      kind: 'HorizontalPodAutoscaler',
      create: () => autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace, body: desiredHpa }),
      read: () => autoscaling.readNamespacedHorizontalPodAutoscaler({ namespace, name }),
      patch: () =>
        autoscaling.patchNamespacedHorizontalPodAutoscaler({ namespace, name, body: patchOf(desiredHpa) }, MERGE_PATCH),
    });
    if (isProblem(hpa)) problems.push(hpa);
  } else {
    await deleteOwned(ep, cachedHpa, () => autoscaling.deleteNamespacedHorizontalPodAutoscaler({ namespace, name }));
  }
  const so = { group: KEDA.group, version: KEDA.version, plural: KEDA.plural, namespace, name };
  if (mode === 'keda' && kedaOn) {
    const desiredSo = buildScaledObject(ep, spec);
    const r = await ensureChild<CustomObject>(ep, desiredSo, ctx.caches.scaledObjects?.get(name, namespace), {
      kind: 'ScaledObject',
      create: () => custom.createNamespacedCustomObject({ ...so, body: desiredSo }),
      read: () => custom.getNamespacedCustomObject(so),
      patch: () => custom.patchNamespacedCustomObject({ ...so, body: patchOf(desiredSo) }, MERGE_PATCH),
    });
    if (isProblem(r)) problems.push(r);
  } else if (kedaOn) {
    await deleteOwned(ep, ctx.caches.scaledObjects?.get(name, namespace), () =>
      custom.deleteNamespacedCustomObject(so),
    );
  } else if (mode === 'keda') {
    problems.push({
      reason: 'KedaNotEnabled',
      message:
        "spec.autoscaling.keda needs KEDA: install KEDA in the cluster and set the chart's keda.enabled=true " +
        '(operator flag --keda); no autoscaler was created',
    });
  }

  // Status
  // The Deployment as just written (the cache lags our own writes), else as read.
  const pods = ctx.caches.pods
    .list(namespace)
    .filter((p) => Object.entries(selectorLabels(name)).every(([k, v]) => p.metadata?.labels?.[k] === v));
  const s = isProblem(dep) ? undefined : servingState(dep.obj, mode, pods);
  const updates: ConditionUpdate[] = s
    ? [s.ready, s.progressing, s.degraded]
    : [
        { type: 'Ready', status: 'False', reason: problems[0].reason, message: problems[0].message },
        { type: 'Progressing', status: 'False', reason: problems[0].reason, message: problems[0].message },
      ];
  // A child problem outranks what the Deployment says (it is why the endpoint is not what the spec asks).
  if (problems.length)
    updates.push({
      type: 'Degraded',
      status: 'True',
      reason: problems[0].reason,
      message: problems.map((p) => p.message).join('; '),
    });
  else if (!s) updates.push({ type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'no problems seen' });
  await writeStatus(
    ctx,
    ep,
    {
      model: model.uri,
      modelDigest: model.digest,
      replicas: s?.replicas,
      readyReplicas: s?.readyReplicas,
    },
    dedupe(updates),
  );
  return s?.settling ? { requeueAfterMs: SETTLING_POLL_MS } : undefined;
}

/** The last update of each condition type wins. */
function dedupe(updates: ConditionUpdate[]): ConditionUpdate[] {
  const by = new Map(updates.map((u) => [u.type, u]));
  return [...by.values()];
}
