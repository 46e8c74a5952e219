/**
 * What a reconcile sees: typed API clients, the informer caches (read side; level-triggered
 * reconciles read the cache, write through the API), the operator's config, a logger, an event
 * recorder and a clock. Plus the few write helpers both controllers share.
 */
import {
  ApiException,
  AppsV1Api,
  AutoscalingV2Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1Deployment,
  type V1Job,
  type V1Pod,
  type V1Service,
  type V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../api/v1alpha1/group.js';
import type { MpiJob } from '../api/mpi.js';
import type { OperatorConfig } from '../config.js';
import type { ProgressTracker } from './progress.js';

/** Read side of an informer: objects by name and namespace. */
export interface ReadCache<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
}

/** A custom object as the API returns it (spec and status unparsed). */
export interface CustomObject extends KubernetesObject {
  spec?: unknown;
  status?: Record<string, unknown>;
}

/** Typed clients. client-node 1.4.0 sends JSON patch by default: {@link MERGE_PATCH} switches to merge patch. */
export interface Apis {
  batch: BatchV1Api;
  core: CoreV1Api;
  apps: AppsV1Api;
  autoscaling: AutoscalingV2Api;
  custom: CustomObjectsApi;
}

export function makeApis(kc: KubeConfig): Apis {
  return {
    batch: kc.makeApiClient(BatchV1Api),
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    autoscaling: kc.makeApiClient(AutoscalingV2Api),
    custom: kc.makeApiClient(CustomObjectsApi),
  };
}

/** Request options making a typed patch call send `application/merge-patch+json`. */
export const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/**
 * The informer caches the controllers read. scaledObjects only when KEDA is enabled, mpiJobs only when
 * the MPI Operator is (their CRDs must exist for the watch).
 */
export interface Caches {
  runs: ReadCache<CustomObject>;
  endpoints: ReadCache<CustomObject>;
  jobs: ReadCache<V1Job>;
  pods: ReadCache<V1Pod>;
  deployments: ReadCache<V1Deployment>;
  services: ReadCache<V1Service>;
  hpas: ReadCache<V2HorizontalPodAutoscaler>;
  scaledObjects?: ReadCache<CustomObject>;
  mpiJobs?: ReadCache<MpiJob>;
}

/** Records a Kubernetes Event on an object (best effort: a failed Event never fails a reconcile). */
export type EventRecorder = (
  obj: KubernetesObject,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
) => Promise<void>;

export interface ControllerContext {
  cfg: OperatorConfig;
  apis: Apis;
  caches: Caches;
  log: Logger;
  event: EventRecorder;
  now: () => Date;
  /** Live progress of running trainer pods (their step and loss), polled off the reconcile's path. */
  progress?: ProgressTracker;
}

/** What a reconcile returns: nothing, or when to look again (polling what no watch reports). */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** Work-queue keys `namespace/name` (one definition: the runtime's). */
export { splitKey } from '../runtime/keys.js';

/** HTTP status of a client-node error (ApiException.code), else undefined. */
export const statusOf = (e: unknown): number | undefined => (e instanceof ApiException ? e.code : undefined);

/** The `message` of an API error (the API server's Status body), else the error's text. */
export function apiMessage(e: unknown): string {
  if (e instanceof ApiException) {
    try {
      return String(JSON.parse(String(e.body)).message ?? e.message);
    } catch {
      return e.message;
    }
  }
  return (e as Error).message;
}

/** Creates an object; an AlreadyExists (409: a stale cache, or another reconcile got there first) is success. */
export async function createIfAbsent(create: () => Promise<unknown>): Promise<'created' | 'exists'> {
  try {
    await create();
    return 'created';
  } catch (e) {
    if (statusOf(e) === 409) return 'exists';
    throw e;
  }
}

/** Merge-patches the status subresource of one of our custom objects. */
export async function patchCustomStatus(
  apis: Apis,
  plural: string,
  namespace: string,
  name: string,
  status: Record<string, unknown>,
): Promise<void> {
  await apis.custom.patchNamespacedCustomObjectStatus(
    { group: GROUP, version: VERSION, namespace, plural, name, body: { status } },
    MERGE_PATCH,
  );
}

/** An EventRecorder writing core/v1 Events (reportingController get-distill-operator). */
export function eventRecorder(apis: Apis, log: Logger, now: () => Date): EventRecorder {
  return async (obj, type, reason, message) => {
    const m = obj.metadata!;
    const t = now();
    try {
      // One Event per object, reason and generation: a reconcile repeated on a stale cache (or by a new
      // leader) finds it (409) instead of recording the same transition twice.
      const name = `${m.name}.${(m.uid ?? '').slice(0, 8)}.${m.generation ?? 0}.${reason.toLowerCase()}`.slice(0, 253);
      await createIfAbsent(() =>
        apis.core.createNamespacedEvent({
          namespace: m.namespace!,
          body: {
            metadata: { name, namespace: m.namespace },
            involvedObject: {
              apiVersion: obj.apiVersion,
              kind: obj.kind,
              name: m.name,
              namespace: m.namespace,
              uid: m.uid,
            },
            type,
            reason,
            message: message.slice(0, 1024),
            count: 1,
            firstTimestamp: t,
            lastTimestamp: t,
            source: { component: 'get-distill-operator' },
            reportingComponent: 'get-distill-operator',
          },
        }),
      );
    } catch (e) {
      log.warn({ err: (e as Error).message, reason }, 'could not record an event');
    }
  };
}
