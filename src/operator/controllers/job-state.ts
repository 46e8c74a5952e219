/**
 * Reading Jobs and their pods: whether a Job finished, why it failed, how many indexes are done, what
 * its pod reported in its termination message (src/service/termination.ts writes it), and why a pod
 * cannot start (image pull, missing Secret, no node with a free GPU).
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { TerminationMessageSchema, type TerminationMessage } from '../../service/termination.js';

export type JobPhase = 'Running' | 'Complete' | 'Failed';

/** A Job's phase from its conditions (Complete / Failed with reason and message). */
export function jobPhase(job: V1Job): { phase: JobPhase; reason?: string; message?: string } {
  for (const c of job.status?.conditions ?? []) {
    if (c.status !== 'True') continue;
    if (c.type === 'Complete') return { phase: 'Complete' };
    if (c.type === 'Failed') return { phase: 'Failed', reason: c.reason, message: c.message };
  }
  return { phase: 'Running' };
}

/** Count of indexes in a completedIndexes string such as "0-3,5,7-8". */
export function countIndexes(s: string | undefined): number {
  if (!s) return 0;
  return s
    .split(',')
    .filter(Boolean)
    .reduce((n, part) => {
      const [a, b] = part.split('-').map(Number);
      return n + (b === undefined ? 1 : b - a + 1);
    }, 0);
}

/** Pods of a Job (the Job controller labels them with batch.kubernetes.io/job-name), newest first. */
export function podsOf(pods: readonly V1Pod[], jobName: string): V1Pod[] {
  return pods
    .filter(
      (p) => (p.metadata?.labels?.['batch.kubernetes.io/job-name'] ?? p.metadata?.labels?.['job-name']) === jobName,
    )
    .sort((a, b) => time(b) - time(a));
}
const time = (p: V1Pod): number => new Date(p.metadata?.creationTimestamp ?? 0).getTime();

/** What a stage pod reported in its termination message (src/service/termination.ts; docs/data-contracts.md §13). */
export type StageResult = TerminationMessage;

/** The parsed termination message of a pod's first terminated container, or undefined (none, or not our JSON). */
export function podResult(pod: V1Pod): StageResult | undefined {
  for (const cs of pod.status?.containerStatuses ?? []) {
    const msg = cs.state?.terminated?.message;
    if (!msg) continue;
    try {
      const r = TerminationMessageSchema.safeParse(JSON.parse(msg));
      return r.success ? r.data : undefined;
    } catch {
      return undefined; // FallbackToLogsOnError: the log tail of a crash, not JSON
    }
  }
  return undefined;
}

/** The newest result of a Job's pods that succeeded (phase Succeeded). */
export function succeededResult(pods: readonly V1Pod[]): StageResult | undefined {
  for (const p of pods)
    if (p.status?.phase === 'Succeeded') {
      const r = podResult(p);
      if (r) return r;
    }
  return undefined;
}

/**
 * Why the Job's pods failed: the pod the Job's Failed condition names (the Job controller's pod failure
 * policy message says "… for pod <ns>/<name> failed with exit code …"), else the newest failed pod; its
 * error message, else its exit code and the log tail.
 */
export function failureMessage(pods: readonly V1Pod[], jobMessage?: string): string | undefined {
  const named = /for pod [^/\s]+\/(\S+) failed/.exec(jobMessage ?? '')?.[1];
  const ordered = named
    ? [...pods.filter((p) => p.metadata?.name === named), ...pods.filter((p) => p.metadata?.name !== named)]
    : pods;
  for (const p of ordered) {
    if (p.status?.phase !== 'Failed') continue;
    const r = podResult(p);
    if (r?.error?.message) return r.error.message;
    const t = p.status?.containerStatuses?.find((c) => c.state?.terminated)?.state?.terminated;
    if (t) {
      const tail = t.message ? `: ${t.message.trim().split('\n').slice(-3).join(' | ')}` : '';
      return `exit code ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}${tail}`;
    }
  }
  return undefined;
}

/** Waiting reasons that will not fix themselves without a change (a retry loop, not progress). */
const STUCK = new Set([
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'CrashLoopBackOff',
]);

/** Why a pod of the Job cannot run, or undefined: unschedulable (e.g. no free GPU) or a stuck container. */
export function podProblem(pods: readonly V1Pod[]): { reason: string; message: string } | undefined {
  for (const p of pods) {
    const name = p.metadata?.name;
    const sched = p.status?.conditions?.find(
      (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
    );
    if (sched) return { reason: 'Unschedulable', message: `pod ${name}: ${sched.message ?? 'no node fits'}` };
    for (const cs of p.status?.containerStatuses ?? []) {
      const w = cs.state?.waiting;
      if (w?.reason && STUCK.has(w.reason))
        return { reason: w.reason, message: `pod ${name}: ${w.reason}${w.message ? `: ${w.message}` : ''}` };
    }
  }
  return undefined;
}
