/**
 * Scenario harness: the in-memory API server (test/k8s/api-server.ts) with our CRDs registered, the
 * REAL @kubernetes/client-node pointed at it, and Operator instances (src/operator/manager.ts) with
 * short timings. The test plays the parts a cluster would: the user (creates runs over HTTP with its own
 * token), the Job controller and kubelet (Job status, pods with termination messages, via test hooks).
 */
import { CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { FakeApiServer, kubeConfigFor, type KObj, type RecordedRequest } from '../k8s/api-server.js';
import { crdSchema, validateStructural } from '../k8s/structural-schema.js';
import type { JsonObject } from '../json.js';
import { MPIJOB, MPI_GROUP, MPI_LABELS, MPI_VERSION } from '../../src/operator/api/mpi.js';
import { ENDPOINT, GROUP, LABELS, MANAGER, RUN, VERSION } from '../../src/operator/api/v1alpha1/group.js';
import { OperatorConfigSchema, type OperatorConfig } from '../../src/operator/config.js';
import { Operator } from '../../src/operator/manager.js';
import { encodeTerminationMessage } from '../../src/service/termination.js';
import { operatorRules, LEADER_ELECTION_RULES } from '../../src/operator/rbac.js';
import type { SupervisedInformer } from '../../src/operator/runtime/informer.js';
import type { WorkQueue } from '../../src/operator/runtime/workqueue.js';

export const NS = 'team-a';
export const OPERATOR_TOKEN = 'operator-token';

const kubeConfig = kubeConfigFor;

/** The MPI Operator's MPIJob CRD (test/fixtures/mpi-operator: the v0.8.0 release's, unmodified). */
export const MPIJOB_CRD: JsonObject = parse(
  readFileSync(join(import.meta.dirname, '..', 'fixtures', 'mpi-operator', 'kubeflow.org_mpijobs.yaml'), 'utf8'),
);
/** Its v2beta1 openAPIV3Schema: the API server validates every MPIJob create and update against it. */
export const MPIJOB_SCHEMA = crdSchema(MPIJOB_CRD, MPI_VERSION);

/**
 * Serves our two kinds, KEDA's ScaledObject and the MPI Operator's MPIJob, as their installed CRDs would;
 * MPIJobs are checked against the MPIJob CRD's structural schema (422 Invalid otherwise).
 */
export function registerOperatorCrds(srv: FakeApiServer): void {
  srv.registerCustomResource({ group: GROUP, version: VERSION, plural: RUN.plural, kind: RUN.kind });
  srv.registerCustomResource({ group: GROUP, version: VERSION, plural: ENDPOINT.plural, kind: ENDPOINT.kind });
  srv.registerCustomResource({ group: 'keda.sh', version: 'v1alpha1', plural: 'scaledobjects', kind: 'ScaledObject' });
  srv.registerCustomResource({
    group: MPI_GROUP,
    version: MPI_VERSION,
    plural: MPIJOB.plural,
    kind: MPIJOB.kind,
    validate: (o) => validateStructural(o, MPIJOB_SCHEMA),
  });
}

export async function startCluster(): Promise<{ srv: FakeApiServer; user: CustomObjectsApi }> {
  const srv = await FakeApiServer.start();
  registerOperatorCrds(srv);
  return { srv, user: kubeConfig(srv.url, 'user-token').makeApiClient(CustomObjectsApi) };
}

export function operatorConfig(over: Partial<Record<keyof OperatorConfig, unknown>> = {}): OperatorConfig {
  return OperatorConfigSchema.parse({
    leaseNamespace: 'get-distill-system',
    metricsPort: 0,
    s3Endpoint: 'http://rgw.storage:7480',
    logLevel: 'silent',
    ...over,
  });
}

export function startOperator(
  srv: FakeApiServer,
  identity: string,
  over: Partial<Record<keyof OperatorConfig, unknown>> = {},
  progressPort?: number,
): { op: Operator; started: Promise<void>; registry: Registry } {
  const registry = new Registry();
  const op = new Operator({
    kubeConfig: kubeConfig(srv.url, OPERATOR_TOKEN),
    cfg: operatorConfig(over),
    log: pino({ level: 'silent' }),
    registry,
    identity,
    progressPort,
    timing: {
      leaseDurationMs: 1000,
      renewDeadlineMs: 700,
      retryPeriodMs: 100,
      informerBackoffInitialMs: 50,
      informerBackoffMaxMs: 200,
    },
  });
  return { op, started: op.start(), registry };
}

export async function waitFor<T>(what: string, f: () => T | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Like waitFor, for an async condition (e.g. one read from a metrics registry). */
export async function waitForAsync(what: string, f: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** What the API server holds for an informer's watch path and `k=v[,k2=v2]` label selector, as 'ns/name@rv'. */
function serverView(srv: FakeApiServer, path: string, labelSelector?: string): string[] {
  const m = /^\/(?:api|apis\/([^/]+))\/[^/]+(?:\/namespaces\/([^/]+))?\/([^/]+)$/.exec(path);
  if (!m) throw new Error(`settle: cannot parse the informer path ${path}`);
  const [, group = '', namespace, plural] = m;
  const sel = (labelSelector ?? '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('='));
  return srv
    .listObjects({ group, plural: plural!, namespace })
    .filter((o) => sel.every(([k, v]) => o.metadata.labels?.[k!] === v))
    .map((o) => `${o.metadata.namespace}/${o.metadata.name}@${o.metadata.resourceVersion}`)
    .sort();
}

/**
 * Resolves once `op` has processed everything the cluster holds: every informer's cache shows exactly
 * what the server holds for its path (same objects, same resourceVersions), the leader's work queues
 * have nothing queued or processing, and the server saw no write meanwhile (so no event is on its way).
 * After it, the operator does nothing more without a new event, a resync or a timed requeue: the
 * signal to wait for before asserting that something did NOT happen, instead of sleeping.
 */
export async function settle(srv: FakeApiServer, op: Operator, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  const informers = (op['all'] as { informers: SupervisedInformer<KubernetesObject>[] }[]).flatMap((c) => c.informers);
  const serverRv = () => srv['rv'] as number;
  for (;;) {
    const rv0 = serverRv();
    await waitFor(
      'informer caches to catch up with the server',
      () =>
        informers.every((inf) => {
          const { path, labelSelector } = inf['opts'];
          const cached = inf
            .list()
            .map((o) => `${o.metadata?.namespace}/${o.metadata?.name}@${o.metadata?.resourceVersion}`)
            .sort();
          return JSON.stringify(cached) === JSON.stringify(serverView(srv, path, labelSelector));
        }),
      Math.max(1, end - Date.now()),
    );
    const queues = op['queues'] as { runs: WorkQueue; endpoints: WorkQueue } | undefined;
    if (queues) await Promise.all([queues.runs.whenIdle(), queues.endpoints.whenIdle()]);
    if (serverRv() === rv0) return;
    if (Date.now() > end) throw new Error('timed out waiting for the operator to settle');
  }
}

/** A run spec as a user would write it (S3 store, small seed range: 4 shards of 256). */
export function runSpec(over: Record<string, unknown> = {}): KObj {
  return {
    store: { uri: 's3://runs/r1', credentialsSecret: 's3-credentials' },
    teacher: { dataset: 'mnist' },
    datagen: { seeds: { start: 0, end: 1024 }, shardSize: 256, parallelism: 2 },
    training: { steps: 600, batch: 32 },
    evaluation: { samples: 1000 },
    resources: {
      gpu: { count: 1 },
      nodeSelector: { 'nvidia.com/gpu.present': 'true' },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
    },
    ...over,
  };
}

export async function createRun(user: CustomObjectsApi, name: string, spec: KObj): Promise<void> {
  await user.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: NS,
    plural: RUN.plural,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: RUN.kind, metadata: { name, namespace: NS }, spec },
  });
}

export const getRun = (srv: FakeApiServer, name: string): KObj | undefined =>
  srv.getObject({ group: GROUP, plural: RUN.plural, namespace: NS, name });
export const condition = (o: KObj | undefined, type: string): KObj | undefined =>
  o?.status?.conditions?.find((c: KObj) => c.type === type);
export const getJob = (srv: FakeApiServer, name: string): KObj | undefined =>
  srv.getObject({ group: 'batch', plural: 'jobs', namespace: NS, name });

let podSeq = 0;
/** A pod of `job` as the Job controller + kubelet leave it: template labels, job-name label, a terminated container. */
export async function addPod(
  srv: FakeApiServer,
  job: KObj,
  phase: 'Running' | 'Succeeded' | 'Failed' | 'Pending',
  term?: { exitCode: number; message?: unknown },
  waiting?: { reason: string; message: string },
): Promise<string> {
  const name = `${job.metadata.name}-${podSeq++}`;
  const container = job.spec.template.spec.containers[0].name;
  const state = term
    ? {
        terminated: {
          exitCode: term.exitCode,
          reason: term.exitCode === 0 ? 'Completed' : 'Error',
          message: typeof term.message === 'string' ? term.message : JSON.stringify(term.message),
        },
      }
    : waiting
      ? { waiting }
      : { running: {} };
  const core = kubeConfig(srv.url, 'kubelet').makeApiClient((await import('@kubernetes/client-node')).CoreV1Api);
  await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: {
        name,
        namespace: NS,
        labels: {
          ...job.spec.template.metadata.labels,
          'batch.kubernetes.io/job-name': job.metadata.name,
          'job-name': job.metadata.name,
        },
      },
      spec: job.spec.template.spec,
    },
  });
  srv.setStatus(
    { plural: 'pods', namespace: NS, name },
    { phase, containerStatuses: [{ name: container, ready: false, restartCount: 0, image: 'x', imageID: '', state }] },
  );
  return name;
}

/** The termination message a stage service writes (src/service/termination.ts). */
export const message = (stage: string, outcome: string, exitCode: number, summary: KObj = {}, error?: KObj): string =>
  encodeTerminationMessage({
    v: 1,
    stage: stage as 'train',
    outcome: outcome as 'done',
    exitCode,
    summary,
    artifacts: {},
    ...(error ? { error: error as { kind: 'permanent'; message: string } } : {}),
  });

/** Finish a Job successfully as the Job controller would (a Succeeded pod with its message, then Complete). */
export async function completeJob(srv: FakeApiServer, name: string, summary: KObj = {}): Promise<void> {
  const job = getJob(srv, name)!;
  const stage = job.metadata.labels[LABELS.stage];
  await addPod(srv, job, 'Succeeded', { exitCode: 0, message: message(stage, 'done', 0, summary) });
  const n = job.spec.completions ?? 1;
  srv.setStatus(
    { group: 'batch', plural: 'jobs', namespace: NS, name },
    {
      succeeded: n,
      ...(job.spec.completionMode === 'Indexed' ? { completedIndexes: n > 1 ? `0-${n - 1}` : '0' } : {}),
      conditions: [
        { type: 'SuccessCriteriaMet', status: 'True' },
        { type: 'Complete', status: 'True' },
      ],
    },
  );
}

/**
 * Every request the operator made is granted by the chart's RBAC (src/operator/rbac.ts) for these values of
 * keda.enabled and mpiOperator.enabled; returns the ungranted `verb group/resource`s.
 */
export function ungranted(requests: readonly RecordedRequest[], keda = false, mpiOperator = false): string[] {
  const rules = [...operatorRules({ keda, mpiOperator }), ...LEADER_ELECTION_RULES];
  const bad = new Set<string>();
  for (const r of requests) {
    if (r.authorization !== `Bearer ${OPERATOR_TOKEN}` || r.verb === 'discovery' || !r.resource) continue;
    const [verb, sub] = r.verb.split('/');
    const [group, plural] = [
      r.resource.slice(0, r.resource.indexOf('/')),
      r.resource.slice(r.resource.indexOf('/') + 1),
    ];
    const res = sub ? `${plural}/${sub}` : plural;
    if (
      !rules.some((rule) => rule.apiGroups.includes(group) && rule.resources.includes(res) && rule.verbs.includes(verb))
    )
      bad.add(`${verb} ${group}/${res}`);
  }
  return [...bad];
}

export { MANAGER };

/** The MPIJob `name` in the test namespace, as stored. */
export const getMpiJob = (srv: FakeApiServer, name: string): KObj | undefined =>
  srv.getObject({ group: MPI_GROUP, plural: MPIJOB.plural, namespace: NS, name });

/** Sets an MPIJob's status as the MPI Operator would (conditions, replicaStatuses, times). */
export function setMpiStatus(srv: FakeApiServer, name: string, status: KObj): void {
  srv.setStatus({ group: MPI_GROUP, plural: MPIJOB.plural, namespace: NS, name }, status);
}

/** An MPIJob condition with the MPI Operator's reason and message. */
export const mpiCondition = (type: string, reason: string, message = `MPIJob ${NS}/x ${type}`): KObj => ({
  type,
  status: 'True',
  reason,
  message,
  lastTransitionTime: '2026-01-01T00:00:00Z',
  lastUpdateTime: '2026-01-01T00:00:00Z',
});

/**
 * The launcher Job the MPI Operator creates for `mj` (`<mj>-launcher`, owned by the MPIJob, labelled
 * app=<mj>: not the operator's, so its Job informer never sees it), created once.
 */
async function launcherJob(srv: FakeApiServer, mj: KObj): Promise<KObj> {
  const name = `${mj.metadata.name}-launcher`;
  const have = getJob(srv, name);
  if (have) return have;
  const batch = kubeConfig(srv.url, 'mpi-operator').makeApiClient((await import('@kubernetes/client-node')).BatchV1Api);
  const launcher = mj.spec.mpiReplicaSpecs.Launcher;
  await batch.createNamespacedJob({
    namespace: NS,
    body: {
      metadata: {
        name,
        labels: { app: mj.metadata.name },
        ownerReferences: [
          {
            apiVersion: 'kubeflow.org/v2beta1',
            kind: 'MPIJob',
            name: mj.metadata.name,
            uid: mj.metadata.uid,
            controller: true,
          },
        ],
      },
      spec: {
        backoffLimit: mj.spec.runPolicy.backoffLimit,
        template: { ...launcher.template, spec: { ...launcher.template.spec, restartPolicy: launcher.restartPolicy } },
      },
    },
  });
  return getJob(srv, name)!;
}

let mpiPodSeq = 0;
/**
 * A pod the MPI Operator (workers) or its launcher Job (launchers) would create for `mj`, in `phase`:
 * the template's labels plus the MPI Operator's job-name/role labels, worker pods named `<mj>-worker-<i>`
 * and owned by the MPIJob, launcher pods `<mj>-launcher-<n>` owned by the launcher Job. `term` gives the
 * container's exit code and termination message, `status` extra pod status (reason, podIP, conditions).
 */
export async function addMpiPod(
  srv: FakeApiServer,
  mj: KObj,
  role: 'launcher' | 'worker',
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed',
  o: { index?: number; term?: { exitCode: number; message?: unknown }; status?: KObj } = {},
): Promise<string> {
  const spec = mj.spec.mpiReplicaSpecs[role === 'launcher' ? 'Launcher' : 'Worker'];
  const owner = role === 'launcher' ? await launcherJob(srv, mj) : mj;
  const name =
    role === 'launcher' ? `${mj.metadata.name}-launcher-${mpiPodSeq++}` : `${mj.metadata.name}-worker-${o.index ?? 0}`;
  const labels: Record<string, string> = {
    ...spec.template.metadata.labels,
    'training.kubeflow.org/operator-name': 'mpi-operator',
    [MPI_LABELS.jobName]: mj.metadata.name,
    [MPI_LABELS.jobRole]: role,
    ...(role === 'worker'
      ? { [MPI_LABELS.replicaIndex]: String(o.index ?? 0) }
      : { 'batch.kubernetes.io/job-name': owner.metadata.name, 'job-name': owner.metadata.name }),
  };
  const core = kubeConfig(srv.url, 'kubelet').makeApiClient((await import('@kubernetes/client-node')).CoreV1Api);
  await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: {
        name,
        namespace: NS,
        labels,
        ownerReferences: [
          {
            apiVersion: owner.apiVersion ?? (role === 'launcher' ? 'batch/v1' : 'kubeflow.org/v2beta1'),
            kind: role === 'launcher' ? 'Job' : 'MPIJob',
            name: owner.metadata.name,
            uid: owner.metadata.uid,
            controller: true,
          },
        ],
      },
      spec: spec.template.spec,
    },
  });
  const term = o.term;
  const state = term
    ? {
        terminated: {
          exitCode: term.exitCode,
          reason: term.exitCode === 0 ? 'Completed' : 'Error',
          message: typeof term.message === 'string' ? term.message : JSON.stringify(term.message),
          finishedAt: `2026-01-01T00:00:${String(mpiPodSeq % 60).padStart(2, '0')}Z`,
        },
      }
    : phase === 'Running'
      ? { running: {} }
      : { waiting: { reason: 'ContainerCreating' } };
  const container = spec.template.spec.containers[0].name;
  srv.setStatus(
    { plural: 'pods', namespace: NS, name },
    {
      phase,
      containerStatuses: [
        { name: container, ready: phase === 'Running', restartCount: 0, image: 'x', imageID: '', state },
      ],
      ...o.status,
    },
  );
  return name;
}
