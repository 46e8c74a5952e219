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

/** How often a training run's trainer pod is asked for its step and loss (ms). */
export const TRAIN_POLL_MS = 30_000;

/** The reconcile's side of live progress: it names the pod to poll and reads what that pod last reported. */
export interface ProgressTracker {
  /** Polls `pod` for the run `key` from now on (another pod, or the same one with a new IP, replaces it). */
  watch(key: string, pod: V1Pod): void;
  /** What the watched pod of `key` last reported with a step (undefined before its first such answer). */
  latest(key: string): Record<string, number> | undefined;
  /** Stops polling for `key` and drops what it reported. */
  forget(key: string): void;
}

export interface ProgressPollerOptions {
  readonly probe: ProgressProbe;
  /** Called with the run's key when its pod reports another step or loss (the operator enqueues the run). */
  readonly onChange: (key: string) => void;
  /** Between the end of one probe of a pod and the next (default {@link TRAIN_POLL_MS}). */
  readonly intervalMs?: number;
}

interface Target {
  readonly pod: V1Pod;
  readonly id: string;
  timer?: ReturnType<typeof setTimeout>;
  last?: Record<string, number>;
}

/**
 * Polls the trainer pods of running trainings off the reconcile's path: one probe loop per run key
 * (first probe at once, then every `intervalMs`), the last answer cached for the reconcile to read, and
 * the run enqueued when its step or loss changes. The reconcile starts and stops the loops
 * ({@link ProgressTracker}); `stop()` ends them all (leadership lost).
 */
export class ProgressPoller implements ProgressTracker {
  private readonly targets = new Map<string, Target>();
  constructor(private readonly o: ProgressPollerOptions) {}

  watch(key: string, pod: V1Pod): void {
    const id = `${pod.metadata?.uid ?? pod.metadata?.name}@${pod.status?.podIP ?? ''}`;
    if (this.targets.get(key)?.id === id) return;
    this.forget(key);
    const t: Target = { pod, id };
    this.targets.set(key, t);
    void this.poll(key, t);
  }

  latest(key: string): Record<string, number> | undefined {
    return this.targets.get(key)?.last;
  }

  forget(key: string): void {
    clearTimeout(this.targets.get(key)?.timer);
    this.targets.delete(key);
  }

  stop(): void {
    for (const key of [...this.targets.keys()]) this.forget(key);
  }

  private async poll(key: string, t: Target): Promise<void> {
    const p = await this.o.probe(t.pod).catch(() => undefined); // best effort, like the probe itself
    if (this.targets.get(key) !== t) return; // forgotten or replaced while the probe ran
    if (p?.step !== undefined && (p.step !== t.last?.step || p.loss !== t.last?.loss)) {
      t.last = p;
      this.o.onChange(key);
    }
    t.timer = setTimeout(() => void this.poll(key, t), this.o.intervalMs ?? TRAIN_POLL_MS);
    t.timer.unref?.(); // a poll never keeps the process alive
  }
}
