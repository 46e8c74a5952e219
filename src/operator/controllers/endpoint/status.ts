/**
 * Pure status logic of a GenerationEndpoint: its Ready / Progressing / Degraded conditions from the
 * Deployment (KServe raw mode derives readiness from the Deployment's Available and Progressing
 * conditions, peers.md §1a) and from the pods' container states, and the spec checks the CRD's CEL
 * rules make (repeated here: a spec may predate the rules, and tests run without an apiserver).
 */
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { GenerationEndpointSpecSchema, type GenerationEndpointSpec } from '../../api/v1alpha1/endpoint.js';
import type { ConditionUpdate } from '../../conditions.js';
import type { ScalingMode } from './builders.js';

/** A parsed spec, or the reason it is invalid (`spec.<field>: <problem>`). */
export type ParsedSpec = { ok: true; spec: GenerationEndpointSpec } | { ok: false; message: string };

/** Parses and checks an endpoint's spec (zod schema + the CRD's cross-field rules). */
export function parseEndpointSpec(raw: unknown): ParsedSpec {
  const r = GenerationEndpointSpecSchema.safeParse(raw ?? {});
  if (!r.success) {
    const msg = r.error.issues
      .slice(0, 3)
      .map((i) => `spec.${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    return { ok: false, message: msg };
  }
  const s = r.data;
  if ((s.model.uri === undefined) === (s.model.run === undefined))
    return { ok: false, message: 'spec.model: give exactly one of model.uri and model.run' };
  const a = s.autoscaling;
  if (a && a.minReplicas > a.maxReplicas)
    return {
      ok: false,
      message: `spec.autoscaling.minReplicas: ${a.minReplicas} exceeds maxReplicas ${a.maxReplicas}`,
    };
  if (a && a.minReplicas === 0 && !a.keda)
    return { ok: false, message: 'spec.autoscaling.minReplicas: 0 (scale to zero) needs autoscaling.keda' };
  return { ok: true, spec: s };
}

/** The three conditions a reconcile writes, plus replica counts for status. */
export interface ServingState {
  ready: ConditionUpdate;
  progressing: ConditionUpdate;
  degraded: ConditionUpdate;
  replicas: number;
  readyReplicas: number;
  /** The Deployment is still converging (only a poll notices pods failing meanwhile). */
  settling: boolean;
}

/** Container waiting reasons that will not resolve by waiting. */
const FAILING = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

/** The first failing container of `pods` as `pod/container: Reason (message)`, else undefined. */
export function podFailure(pods: readonly V1Pod[]): string | undefined {
  for (const p of pods) {
    if (p.metadata?.deletionTimestamp) continue;
    for (const c of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
      const w = c.state?.waiting;
      if (w?.reason && FAILING.has(w.reason)) {
        const last = c.lastState?.terminated;
        const why =
          w.message ??
          (last
            ? `last exit ${last.exitCode}${last.reason ? ` ${last.reason}` : ''}` +
              (last.message ? `: ${last.message}` : '')
            : '');
        return `${p.metadata?.name}/${c.name}: ${w.reason}${why ? ` (${why.slice(0, 300)})` : ''}`;
      }
    }
  }
  return undefined;
}

/** Pods that cannot be scheduled (e.g. no node with a free GPU), as `name: message`. */
function unschedulable(pods: readonly V1Pod[]): string | undefined {
  for (const p of pods) {
    const c = p.status?.conditions?.find(
      (x) => x.type === 'PodScheduled' && x.status === 'False' && x.reason === 'Unschedulable',
    );
    if (c && !p.metadata?.deletionTimestamp) return `${p.metadata?.name}: ${c.message ?? 'unschedulable'}`;
  }
  return undefined;
}

/**
 * Conditions from the Deployment (`dep`: as last written or read) and its pods. Ready needs the
 * Deployment Available, ≥ 1 ready replica and the rollout done (kubectl rollout status's test:
 * observedGeneration ≥ generation, updated = desired, no old replicas left, updated all available);
 * a keda endpoint scaled to 0 is Ready (ScaledToZero). Degraded on ProgressDeadlineExceeded,
 * ReplicaFailure or a failing container.
 */
export function servingState(dep: V1Deployment, mode: ScalingMode, pods: readonly V1Pod[]): ServingState {
  const st = dep.status ?? {};
  const cond = (t: string) => st.conditions?.find((c) => c.type === t);
  const want = dep.spec?.replicas ?? 1;
  const updated = st.updatedReplicas ?? 0,
    total = st.replicas ?? 0,
    avail = st.availableReplicas ?? 0,
    ready = st.readyReplicas ?? 0;
  const seen = st.observedGeneration !== undefined;
  const observed = seen && st.observedGeneration! >= (dep.metadata?.generation ?? 0);
  const done = observed && updated >= want && total <= updated && avail >= updated;
  const available = cond('Available')?.status === 'True';
  const prog = cond('Progressing');
  const deadline = prog?.status === 'False' && prog.reason === 'ProgressDeadlineExceeded';
  const rf = cond('ReplicaFailure');
  const failing = podFailure(pods);
  const base = { replicas: total, readyReplicas: ready };

  let degraded: ConditionUpdate = {
    type: 'Degraded',
    status: 'False',
    reason: 'AsExpected',
    message: 'no problems seen',
  };
  if (deadline)
    degraded = {
      type: 'Degraded',
      status: 'True',
      reason: 'ProgressDeadlineExceeded',
      message: `rollout made no progress within progressDeadlineSeconds: ${prog?.message ?? ''}`.trim(),
    };
  else if (rf?.status === 'True')
    degraded = {
      type: 'Degraded',
      status: 'True',
      reason: 'ReplicaFailure',
      message: rf.message ?? 'the ReplicaSet cannot create pods',
    };
  else if (failing) degraded = { type: 'Degraded', status: 'True', reason: 'PodsFailing', message: failing };

  if (want === 0 && done) {
    const keda = mode === 'keda';
    return {
      ...base,
      settling: false,
      degraded,
      ready: keda
        ? {
            type: 'Ready',
            status: 'True',
            reason: 'ScaledToZero',
            message: 'scaled to zero by KEDA; the first request load scales it up',
          }
        : { type: 'Ready', status: 'False', reason: 'ScaledToZero', message: 'spec.replicas is 0: no pods serve' },
      progressing: { type: 'Progressing', status: 'False', reason: 'ScaledToZero', message: 'no replicas' },
    };
  }
  if (done && available && ready >= 1) {
    return {
      ...base,
      settling: false,
      degraded,
      ready: { type: 'Ready', status: 'True', reason: 'Available', message: `${ready}/${want} replicas ready` },
      progressing: {
        type: 'Progressing',
        status: 'False',
        reason: 'RolloutComplete',
        message: `all ${want} replicas serve the current model`,
      },
    };
  }
  const creating = !seen;
  const why = unschedulable(pods);
  const detail = `${updated}/${want} replicas updated, ${avail} available${why ? `; unschedulable: ${why}` : ''}`;
  const reason = creating ? 'Creating' : done ? 'Unavailable' : 'RollingOut';
  return {
    ...base,
    settling: !deadline,
    degraded,
    ready: {
      type: 'Ready',
      status: 'False',
      reason,
      message: creating
        ? 'the Deployment was just created'
        : done
          ? `no available replica (${ready} ready)`
          : `rolling out: ${detail}${ready ? ` (old replicas still serve: ${ready} ready)` : ''}`,
    },
    progressing: deadline
      ? { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: detail }
      : { type: 'Progressing', status: 'True', reason, message: creating ? 'waiting for the first pods' : detail },
  };
}
