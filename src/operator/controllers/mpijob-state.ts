/**
 * Reading a trainer MPIJob (kubeflow.org/v2beta1) and its pods: where the training stands, and what the
 * reconcile must do about it. The failure semantics are the trainer Job's (jobs.ts):
 *
 * - the launcher exits 2 (or reports a permanent error): the run fails at once with the launcher's message.
 *   The MPI Operator's launcher Job has no pod failure policy and would retry, so the operator suspends the
 *   MPIJob (its workers go, the launcher stops) and notes why on it (annotation), which keeps the verdict
 *   level-triggered even once the pods are gone;
 * - the launcher exits 75 or crashes: its Job retries (runPolicy.backoffLimit); each retry resumes from the
 *   latest checkpoint; the run is Degraded meanwhile. Retries spent: the MPIJob's Failed condition → Failed;
 * - a worker pod is lost for good (evicted: phase Failed; the MPI Operator recreates deleted workers but
 *   not failed ones, and marks the MPIJob Failed/MPIJobEvicted without finishing it): the MPIJob cannot
 *   recover, so it is deleted and created again, resuming from the latest checkpoint. Like an evicted
 *   trainer pod (DisruptionTarget), this does not count against the retries.
 *
 * Status conditions (MPI Operator v0.8): Created, Running, Restarting, Succeeded, Suspended, Failed.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { EXIT_PERMANENT } from '../../util/errors.js';
import { ANNOTATIONS, LABELS } from '../api/v1alpha1/group.js';
import { MPI_LABELS, firstWorkerName, type MpiJob, type MpiRole } from '../api/mpi.js';
import { failureMessage, podResult } from './job-state.js';

/** An MPIJob's pods by role (the MPI Operator's labels), newest first. */
export interface MpiPods {
  launchers: V1Pod[];
  workers: V1Pod[];
}

const ms = (t: Date | string | undefined): number => (t ? new Date(t).getTime() : 0);
const finished = (p: V1Pod): number =>
  Math.max(0, ...(p.status?.containerStatuses ?? []).map((c) => ms(c.state?.terminated?.finishedAt)));
/** Newer first: a later creation (whole seconds), then a later finish of its container. */
const newestFirst = (a: V1Pod, b: V1Pod): number =>
  ms(b.metadata?.creationTimestamp) - ms(a.metadata?.creationTimestamp) || finished(b) - finished(a);

/**
 * The launcher and worker pods of `mj` among `pods`: the MPI Operator's job-name and role labels, and the
 * instance label of `mj`'s templates (pods of an earlier MPIJob of the same name may linger in a cache).
 */
export function mpiPodsOf(pods: readonly V1Pod[], mj: MpiJob): MpiPods {
  const name = mj.metadata?.name;
  const instance = mj.spec?.mpiReplicaSpecs?.Launcher?.template?.metadata?.labels?.[LABELS.mpiJobInstance];
  const of = (role: MpiRole) =>
    pods
      .filter((p) => {
        const l = p.metadata?.labels ?? {};
        return (
          l[MPI_LABELS.jobName] === name && l[MPI_LABELS.jobRole] === role && l[LABELS.mpiJobInstance] === instance
        );
      })
      .sort(newestFirst);
  return { launchers: of('launcher'), workers: of('worker') };
}

/** The running worker pod of rank 0 (its job-mode server reports the step), if any. */
export function rankZeroPod(pods: MpiPods, name: string): V1Pod | undefined {
  return pods.workers.find((p) => p.metadata?.name === firstWorkerName(name) && p.status?.phase === 'Running');
}

/** Where a trainer MPIJob stands. */
export type MpiJobState =
  | {
      phase: 'Running';
      /** Launcher pods that failed (retryable) and were or will be retried. */
      failed: number;
      /** The newest failed launcher's error. */
      last?: string;
      /** The MPIJob's Restarting condition (True), if set: its message. */
      restarting?: string;
    }
  | { phase: 'Complete' }
  | {
      phase: 'Failed';
      reason: string;
      message: string;
      /** The MPIJob still runs and must be stopped (suspended, with `message` noted on it). */
      stop: boolean;
    }
  | {
      phase: 'Restart';
      message: string;
      /** Already being deleted: wait until it is gone, then create it again. */
      deleting: boolean;
    };

const isTrue = (mj: MpiJob, type: string) => mj.status?.conditions?.find((c) => c.type === type && c.status === 'True');

/** Whether a failed launcher pod failed permanently: exit code 2, or a permanent error in its message. */
function permanent(p: V1Pod): boolean {
  const t = p.status?.containerStatuses?.find((c) => c.state?.terminated)?.state?.terminated;
  return t?.exitCode === EXIT_PERMANENT || podResult(p)?.error?.kind === 'permanent';
}

/** See the file header. Pure. */
export function mpiJobState(mj: MpiJob, pods: MpiPods): MpiJobState {
  const name = mj.metadata?.name ?? '';
  if (mj.metadata?.deletionTimestamp)
    return { phase: 'Restart', deleting: true, message: `MPIJob ${name} is being deleted to start over` };
  const noted = mj.metadata?.annotations?.[ANNOTATIONS.failure];
  if (noted) return { phase: 'Failed', reason: 'PermanentError', message: noted, stop: false };
  if (isTrue(mj, 'Succeeded')) return { phase: 'Complete' };
  const failedLaunchers = pods.launchers.filter((p) => p.status?.phase === 'Failed');
  const perm = failedLaunchers.find(permanent);
  if (perm) {
    const why = failureMessage([perm]) ?? `launcher pod ${perm.metadata?.name} exited ${EXIT_PERMANENT}`;
    return { phase: 'Failed', reason: 'PermanentError', message: why, stop: true };
  }
  const failed = isTrue(mj, 'Failed');
  // MPIJobEvicted without a completion time: the MPI Operator flags evicted workers but keeps the job going.
  const evictedOnly = failed?.reason === 'MPIJobEvicted' && !mj.status?.completionTime;
  if (failed && !evictedOnly) {
    const why = failureMessage(failedLaunchers) ?? failed.message ?? 'the launcher reported no reason';
    return { phase: 'Failed', reason: failed.reason || 'Failed', message: why, stop: false };
  }
  const lost = pods.workers.find((p) => p.status?.phase === 'Failed');
  if (lost || failed) {
    const why = [lost?.status?.reason, lost?.status?.message].filter(Boolean).join(': ') || 'Failed';
    const what = lost
      ? `worker pod ${lost.metadata?.name} was lost (${why})`
      : `workers were lost (${failed!.message ?? failed!.reason})`;
    return { phase: 'Restart', deleting: false, message: what };
  }
  const count = Math.max(mj.status?.replicaStatuses?.Launcher?.failed ?? 0, failedLaunchers.length);
  const restarting = isTrue(mj, 'Restarting');
  return {
    phase: 'Running',
    failed: count,
    last: failureMessage(failedLaunchers),
    ...(restarting ? { restarting: restarting.message || restarting.reason || 'Restarting' } : {}),
  };
}
