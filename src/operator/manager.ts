/**
 * The operator process: informers (read caches) for our two kinds and every child type, one work
 * queue + controller per kind, and Lease-based leader election. Every replica keeps its caches warm;
 * only the leader runs the controllers, so two replicas never write the same object (peers.md §2d–2e:
 * controller-runtime's manager). Informer events map children to their owner's key: Jobs, MPIJobs and
 * endpoints by controller ownerReference, pods by the run label, and runs to the endpoints serving them.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  CoordinationV1Api,
  type KubeConfig,
  type KubernetesObject,
  type ListPromise,
  type V1Deployment,
  type V1Job,
  type V1Pod,
  type V1Service,
  type V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { API_VERSION, ENDPOINT, GROUP, LABELS, MANAGER, RUN, VERSION } from './api/v1alpha1/group.js';
import type { OperatorConfig } from './config.js';
import { MPIJOB, MPI_API_VERSION, MPI_GROUP, MPI_VERSION, type MpiJob } from './api/mpi.js';
import {
  type Caches,
  type ControllerContext,
  type CustomObject,
  type ReadCache,
  eventRecorder,
  makeApis,
} from './controllers/context.js';
import { reconcileRun } from './controllers/run/reconcile.js';
import { ProgressPoller, httpProgressProbe } from './controllers/progress.js';
import { endpointsForRun, reconcileEndpoint } from './controllers/endpoint/reconcile.js';
import { SupervisedInformer, enqueueHandlers, ownerHandlers } from './runtime/informer.js';
import { WorkQueue } from './runtime/workqueue.js';
import { runController, type RunningController } from './runtime/controller.js';
import { LeaderElector } from './runtime/leader-election.js';
import { OperatorMetrics } from './runtime/metrics.js';
import { objectKey } from './runtime/keys.js';

/** Timing knobs (tests shorten them). */
export interface OperatorTiming {
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  informerBackoffInitialMs?: number;
  informerBackoffMaxMs?: number;
}

export interface OperatorOptions {
  kubeConfig: KubeConfig;
  cfg: OperatorConfig;
  log: Logger;
  registry: Registry;
  /** Leader-election identity (default: POD_NAME or hostname, plus a random suffix). */
  identity?: string;
  now?: () => Date;
  timing?: OperatorTiming;
  /** Port of the stage pods' job-mode server for progress probes (default 8080; tests use another). */
  progressPort?: number;
}

type Lister<T extends KubernetesObject> = (namespace: string | undefined) => ListPromise<T>;

/** Informers over one resource in each watched namespace (or cluster-wide), read as one cache. */
class NamespacedInformers<T extends KubernetesObject> implements ReadCache<T> {
  readonly informers: SupervisedInformer<T>[];
  constructor(
    o: OperatorOptions,
    metrics: OperatorMetrics,
    namespaces: (string | undefined)[],
    resource: string,
    path: (ns?: string) => string,
    list: Lister<T>,
    labelSelector?: string,
  ) {
    this.informers = namespaces.map(
      (ns) =>
        new SupervisedInformer<T>({
          kubeConfig: o.kubeConfig,
          path: path(ns),
          list: list(ns),
          labelSelector,
          resource,
          resyncMs: o.cfg.resyncSeconds * 1000,
          backoffInitialMs: o.timing?.informerBackoffInitialMs,
          backoffMaxMs: o.timing?.informerBackoffMaxMs,
          // A 403 (RBAC), a missing CRD or an unreachable API server must show in the logs and metrics.
          log: o.log,
          metrics,
        }),
    );
  }
  get(name: string, namespace?: string): T | undefined {
    for (const i of this.informers) {
      const v = i.get(name, namespace);
      if (v) return v;
    }
    return undefined;
  }
  list(namespace?: string): readonly T[] {
    return this.informers.flatMap((i) => [...i.list(namespace)]);
  }
  on(h: Parameters<SupervisedInformer<T>['addHandlers']>[0]): void {
    for (const i of this.informers) i.addHandlers(h);
  }
}

/** See the file header. `start()` resolves once the caches synced; `stop()` releases the Lease. */
export class Operator {
  readonly metrics: OperatorMetrics;
  private readonly caches: Caches;
  private readonly all: { informers: Pick<SupervisedInformer<KubernetesObject>, 'start' | 'stop'>[] }[] = [];
  private readonly ctx: ControllerContext;
  private readonly progress: ProgressPoller;
  private readonly elector?: LeaderElector;
  private controllers: RunningController[] = [];
  private queues?: { runs: WorkQueue; endpoints: WorkQueue };
  private synced = false;

  constructor(private readonly o: OperatorOptions) {
    this.metrics = new OperatorMetrics(o.registry);
    const apis = makeApis(o.kubeConfig);
    const nss: (string | undefined)[] = o.cfg.namespaces ? o.cfg.namespaces.split(',') : [undefined];
    const managed = `${LABELS.managedBy}=${MANAGER}`;
    const custom = (plural: string): [(ns?: string) => string, Lister<CustomObject>] => [
      (ns) => `/apis/${GROUP}/${VERSION}${ns ? `/namespaces/${ns}` : ''}/${plural}`,
      (ns) => () =>
        (ns
          ? apis.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural })
          : apis.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as never,
    ];
    const core = (group: string, version: string, plural: string) => (ns?: string) =>
      `${group ? `/apis/${group}` : '/api'}/${version}${ns ? `/namespaces/${ns}` : ''}/${plural}`;
    const mk = <T extends KubernetesObject>(
      resource: string,
      path: (ns?: string) => string,
      list: Lister<T>,
      sel?: string,
    ) => {
      const inf = new NamespacedInformers<T>(o, this.metrics, nss, resource, path, list, sel);
      this.all.push(inf);
      return inf;
    };
    const runs = mk<CustomObject>('distillationruns', ...custom(RUN.plural));
    const endpoints = mk<CustomObject>('generationendpoints', ...custom(ENDPOINT.plural));
    const jobs = mk<V1Job>(
      'jobs',
      core('batch', 'v1', 'jobs'),
      (ns) => () =>
        ns
          ? apis.batch.listNamespacedJob({ namespace: ns, labelSelector: managed })
          : apis.batch.listJobForAllNamespaces({ labelSelector: managed }),
      managed,
    );
    const pods = mk<V1Pod>(
      'pods',
      core('', 'v1', 'pods'),
      (ns) => () =>
        ns
          ? apis.core.listNamespacedPod({ namespace: ns, labelSelector: managed })
          : apis.core.listPodForAllNamespaces({ labelSelector: managed }),
      managed,
    );
    const deployments = mk<V1Deployment>(
      'deployments',
      core('apps', 'v1', 'deployments'),
      (ns) => () =>
        ns
          ? apis.apps.listNamespacedDeployment({ namespace: ns, labelSelector: managed })
          : apis.apps.listDeploymentForAllNamespaces({ labelSelector: managed }),
      managed,
    );
    const services = mk<V1Service>(
      'services',
      core('', 'v1', 'services'),
      (ns) => () =>
        ns
          ? apis.core.listNamespacedService({ namespace: ns, labelSelector: managed })
          : apis.core.listServiceForAllNamespaces({ labelSelector: managed }),
      managed,
    );
    const hpas = mk<V2HorizontalPodAutoscaler>(
      'horizontalpodautoscalers',
      core('autoscaling', 'v2', 'horizontalpodautoscalers'),
      (ns) => () =>
        ns
          ? apis.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: ns, labelSelector: managed })
          : apis.autoscaling.listHorizontalPodAutoscalerForAllNamespaces({ labelSelector: managed }),
      managed,
    );
    let scaledObjects: NamespacedInformers<CustomObject> | undefined;
    if (o.cfg.keda) {
      const path = (ns?: string) => `/apis/keda.sh/v1alpha1${ns ? `/namespaces/${ns}` : ''}/scaledobjects`;
      const list: Lister<CustomObject> = (ns) => () =>
        (ns
          ? apis.custom.listNamespacedCustomObject({
              group: 'keda.sh',
              version: 'v1alpha1',
              namespace: ns,
              plural: 'scaledobjects',
              labelSelector: managed,
            })
          : apis.custom.listClusterCustomObject({
              group: 'keda.sh',
              version: 'v1alpha1',
              plural: 'scaledobjects',
              labelSelector: managed,
            })) as never;
      scaledObjects = mk<CustomObject>('scaledobjects', path, list, managed);
    }
    let mpiJobs: NamespacedInformers<MpiJob> | undefined;
    if (o.cfg.mpiOperator) {
      const mpi = { group: MPI_GROUP, version: MPI_VERSION, plural: MPIJOB.plural, labelSelector: managed };
      const path = (ns?: string) => `/apis/${MPI_API_VERSION}${ns ? `/namespaces/${ns}` : ''}/${MPIJOB.plural}`;
      const list: Lister<MpiJob> = (ns) => () =>
        (ns
          ? apis.custom.listNamespacedCustomObject({ ...mpi, namespace: ns })
          : apis.custom.listClusterCustomObject(mpi)) as never;
      mpiJobs = mk<MpiJob>(MPIJOB.plural, path, list, managed);
    }
    this.caches = { runs, endpoints, jobs, pods, deployments, services, hpas, scaledObjects, mpiJobs };
    const now = o.now ?? (() => new Date());
    // Trainer pods answer on their own time: the poller enqueues a run when its step changes.
    this.progress = new ProgressPoller({
      probe: httpProgressProbe(o.progressPort),
      onChange: (k) => this.queues?.runs.add(k),
    });
    this.ctx = {
      cfg: o.cfg,
      apis,
      caches: this.caches,
      log: o.log,
      event: eventRecorder(apis, o.log, now),
      now,
      progress: this.progress,
    };

    // Events → keys. Handlers run on every replica; only the leader's queues exist to take them.
    const enqueue = (which: 'runs' | 'endpoints') => ({ add: (k: string) => this.queues?.[which].add(k) });
    runs.on(enqueueHandlers(enqueue('runs')));
    runs.on({
      add: (r) => this.runEndpoints(r),
      update: (r) => this.runEndpoints(r),
      delete: (r) => this.runEndpoints(r),
    });
    endpoints.on(enqueueHandlers(enqueue('endpoints')));
    endpoints.on(ownerHandlers(enqueue('runs'), { apiVersion: API_VERSION, kind: RUN.kind }));
    jobs.on(ownerHandlers(enqueue('runs'), { apiVersion: API_VERSION, kind: RUN.kind }));
    mpiJobs?.on(ownerHandlers(enqueue('runs'), { apiVersion: API_VERSION, kind: RUN.kind }));
    // Pods are owned by Jobs and ReplicaSets, not by our objects: map them by label instead.
    const podToOwner = (p: V1Pod) => {
      const l = p.metadata?.labels ?? {};
      if (l[LABELS.run]) this.queues?.runs.add(`${p.metadata!.namespace}/${l[LABELS.run]}`);
      if (l[LABELS.endpoint]) this.queues?.endpoints.add(`${p.metadata!.namespace}/${l[LABELS.endpoint]}`);
    };
    pods.on({ add: podToOwner, update: podToOwner, delete: podToOwner });
    const toEndpoint = { apiVersion: API_VERSION, kind: ENDPOINT.kind };
    deployments.on(ownerHandlers(enqueue('endpoints'), toEndpoint));
    services.on(ownerHandlers(enqueue('endpoints'), toEndpoint));
    hpas.on(ownerHandlers(enqueue('endpoints'), toEndpoint));
    scaledObjects?.on(ownerHandlers(enqueue('endpoints'), toEndpoint));

    if (o.cfg.leaderElection) {
      const identity = o.identity ?? `${process.env.POD_NAME ?? hostname()}_${randomBytes(4).toString('hex')}`;
      this.elector = new LeaderElector({
        api: o.kubeConfig.makeApiClient(CoordinationV1Api),
        namespace: o.cfg.leaseNamespace,
        name: o.cfg.leaseName,
        identity,
        leaseDurationMs: o.timing?.leaseDurationMs,
        renewDeadlineMs: o.timing?.renewDeadlineMs,
        retryPeriodMs: o.timing?.retryPeriodMs,
        onStartedLeading: (signal) => this.lead(signal),
        metrics: this.metrics,
        log: o.log,
        onNewLeader: (id) => o.log.info({ leader: id }, 'leader observed'),
      });
    }
  }

  private runEndpoints(run: CustomObject): void {
    if (!this.queues) return;
    for (const k of endpointsForRun(this.ctx, run.metadata!.namespace!, run.metadata!.name!))
      this.queues.endpoints.add(k);
  }

  /** Whether every informer has listed once (the readiness probe). */
  get ready(): boolean {
    return this.synced;
  }
  /** Whether this replica runs the controllers now. */
  get leading(): boolean {
    return this.queues !== undefined;
  }

  /** Starts the informers (resolves once synced) and the election (or the controllers at once). */
  async start(): Promise<void> {
    await Promise.all(this.all.flatMap((c) => c.informers.map((i) => i.start())));
    this.synced = true;
    this.o.log.info({ namespaces: this.o.cfg.namespaces ?? 'all' }, 'caches synced');
    if (this.elector) this.elector.start();
    else void this.lead(new AbortController().signal);
  }

  /** Runs the controllers until `signal` aborts (leadership lost or released). */
  private async lead(signal: AbortSignal): Promise<void> {
    const m = this.metrics;
    const runs = new WorkQueue({ metrics: m.queueMetrics('distillationrun') });
    const endpoints = new WorkQueue({ metrics: m.queueMetrics('generationendpoint') });
    this.queues = { runs, endpoints };
    this.o.log.info('leading: controllers started');
    const workers = this.o.cfg.workers;
    this.controllers = [
      runController({
        name: 'distillationrun',
        queue: runs,
        reconcile: (k) => reconcileRun(this.ctx, k),
        workers,
        metrics: m,
        log: this.o.log,
      }),
      runController({
        name: 'generationendpoint',
        queue: endpoints,
        reconcile: (k) => reconcileEndpoint(this.ctx, k),
        workers,
        metrics: m,
        log: this.o.log,
      }),
    ];
    // Level-triggered start: every object is looked at once, whatever happened while not leading.
    for (const r of this.caches.runs.list()) runs.add(objectKey(r));
    for (const e of this.caches.endpoints.list()) endpoints.add(objectKey(e));
    if (!this.elector) return;
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    await this.stopControllers();
    this.o.log.warn('not leading: controllers stopped');
  }

  private async stopControllers(): Promise<void> {
    const cs = this.controllers;
    this.controllers = [];
    this.queues = undefined;
    await Promise.all(cs.map((c) => c.stop()));
    this.progress.stop();
  }

  /** Stops the controllers, releases the Lease (so a standby takes over at once) and stops the informers. */
  async stop(): Promise<void> {
    if (this.elector) await this.elector.stop();
    await this.stopControllers();
    await Promise.all(this.all.flatMap((c) => c.informers.map((i) => i.stop())));
  }
}
