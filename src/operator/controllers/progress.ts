/**
 * Live progress of a running stage pod: its job-mode server's `GET /v1/job` (src/jobs/run-job.ts:
 * `{job: {state, progress: {step, steps, loss, …}}}`) on the pod IP. Best effort — a pod that is not
 * reachable (NetworkPolicy, still starting) just reports nothing; the Job's own status stays the truth.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { SERVICE_PORT } from './pod.js';

/** A stage's progress numbers (training: step, steps, loss), or undefined when the pod did not answer. */
export type ProgressProbe = (pod: V1Pod) => Promise<Record<string, number> | undefined>;

/** Probes `http://<podIP>:<port>/v1/job` with a timeout (ms). Never throws. */
export function httpProgressProbe(port = SERVICE_PORT, timeoutMs = 2000): ProgressProbe {
  return async (pod) => {
    const ip = pod.status?.podIP;
    if (!ip || pod.status?.phase !== 'Running') return undefined;
    try {
      const host = ip.includes(':') ? `[${ip}]` : ip;
      const res = await fetch(`http://${host}:${port}/v1/job`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) return undefined;
      const body = (await res.json()) as { job?: { progress?: Record<string, unknown> } };
      const p = body.job?.progress ?? {};
      return Object.fromEntries(
        Object.entries(p).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1])),
      );
    } catch {
      return undefined;
    }
  };
}
