// Multi-pod training: a DistillationRun with more than one training rank trains in a Kubeflow MPIJob
// (kubeflow.org/v2beta1). The real operator and client-node against the in-memory API server, where the
// MPIJob CRD's own schema (test/fixtures/mpi-operator) validates what the operator creates; the test plays
// the MPI Operator (launcher Job, launcher and worker pods, MPIJob status), the kubelet and the user.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import pino from 'pino';
import { z } from 'zod';
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { kubeConfigFor, type FakeApiServer, type KObj } from '../k8s/api-server.js';
import { validateStructural } from '../k8s/structural-schema.js';
import { ANNOTATIONS, GROUP, LABELS, VERSION } from '../../src/operator/api/v1alpha1/group.js';
import { DistillationRunSpecSchema } from '../../src/operator/api/v1alpha1/run.js';
import { MPI_IMAGE, MPI_LABELS } from '../../src/operator/api/mpi.js';
import { buildStageJob } from '../../src/operator/controllers/run/jobs.js';
import { buildTrainMpiJob } from '../../src/operator/controllers/run/mpijob.js';
import { trainingTopology } from '../../src/operator/controllers/run/plan.js';
import { mpiJobState, mpiPodsOf } from '../../src/operator/controllers/mpijob-state.js';
import { runJobMode } from '../../src/jobs/run-job.js';
import type { StageJob } from '../../src/jobs/types.js';
import {
  MPIJOB_SCHEMA,
  NS,
  addMpiPod,
  completeJob,
  condition,
  createRun,
  getJob,
  getMpiJob,
  getRun,
  message,
  mpiCondition,
  operatorConfig,
  runSpec,
  setMpiStatus,
  settle,
  startCluster,
  startOperator,
  ungranted,
  waitFor,
} from './harness.js';
import { validateCreated } from './validate.js';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function cluster() {
  const c = await startCluster();
  cleanup.push(() => c.srv.close());
  return c;
}
async function operator(srv: FakeApiServer, over: Record<string, unknown> = { mpiOperator: true }, port?: number) {
  const { op, started } = startOperator(srv, 'op-mpi', over, port);
  cleanup.push(() => op.stop());
  await started;
  return op;
}
const training = (over: KObj = {}) => ({ training: { steps: 600, batch: 32, ...over } });
const envOf = (c: KObj, name: string) => c.env?.find((e: { name: string }) => e.name === name);
const launcherOf = (mj: KObj) => mj.spec.mpiReplicaSpecs.Launcher.template.spec.containers[0];
const workerOf = (mj: KObj) => mj.spec.mpiReplicaSpecs.Worker.template.spec.containers[0];
const RUN_META = { apiVersion: `${GROUP}/${VERSION}`, kind: 'DistillationRun' };

/** Creates run `name` and finishes its datagen Job: the run is at the train stage. */
async function toTraining(srv: FakeApiServer, user: Parameters<typeof createRun>[0], name: string, spec: KObj) {
  await createRun(user, name, spec);
  await waitFor('datagen Job', () => getJob(srv, `${name}-datagen`));
  await completeJob(srv, `${name}-datagen`);
}

test('topology: one rank per GPU; one worker without gpusPerWorker stays a trainer Job', () => {
  const topo = (training: KObj, gpu = 1) =>
    trainingTopology(DistillationRunSpecSchema.parse(runSpec({ training, resources: { gpu: { count: gpu } } })));
  assert.deepEqual(topo({ steps: 1 }), {
    distributed: false,
    workers: 1,
    gpusPerWorker: 1,
    slotsPerWorker: 1,
    ranks: 1,
  });
  // A 2-GPU single pod was one process before these fields existed, and stays one.
  assert.equal(topo({ steps: 1 }, 2).distributed, false);
  assert.deepEqual(topo({ steps: 1, gpusPerWorker: 2 }), {
    distributed: true,
    workers: 1,
    gpusPerWorker: 2,
    slotsPerWorker: 2,
    ranks: 2,
  });
  assert.deepEqual(topo({ steps: 1, workers: 3 }, 4), {
    distributed: true,
    workers: 3,
    gpusPerWorker: 4,
    slotsPerWorker: 4,
    ranks: 12,
  });
  // CPU workers: one rank each.
  assert.deepEqual(topo({ steps: 1, workers: 2, gpusPerWorker: 0 }), {
    distributed: true,
    workers: 2,
    gpusPerWorker: 0,
    slotsPerWorker: 1,
    ranks: 2,
  });
  assert.equal(topo({ steps: 1, gpusPerWorker: 1 }).distributed, false);
  for (const bad of [{ workers: 0 }, { workers: 129 }, { workers: 1.5 }, { gpusPerWorker: 17 }, { gpusPerWorker: -1 }])
    assert.equal(DistillationRunSpecSchema.safeParse(runSpec(training(bad))).success, false, JSON.stringify(bad));
});

test('workers=1: the trainer Job is the object it was before multi-pod training existed', () => {
  // test/fixtures/operator/train-job-r1.json: buildStageJob's Job for runSpec() before training.workers existed.
  const golden = JSON.parse(
    readFileSync(join(import.meta.dirname, '..', 'fixtures', 'operator', 'train-job-r1.json'), 'utf8'),
  );
  const run = { ...RUN_META, metadata: { name: 'r1', namespace: 'team-a', uid: 'u-1', generation: 1 } };
  for (const spec of [runSpec(), runSpec(training({ workers: 1 }))]) {
    const job = buildStageJob(
      run,
      DistillationRunSpecSchema.parse(spec),
      operatorConfig({ mpiOperator: true }),
      'train',
    );
    assert.deepEqual(JSON.parse(JSON.stringify(job)), golden);
  }
  assert.equal(golden.metadata.annotations[ANNOTATIONS.specHash].length, 64);
});

test('workers=1 with the MPI Operator on: a trainer Job as today, no MPIJob', async () => {
  const { srv, user } = await cluster();
  const op = await operator(srv);
  await toTraining(srv, user, 'one', runSpec(training({ workers: 1 })));
  const tr = await waitFor('train Job', () => getJob(srv, 'one-train'));
  assert.deepEqual(tr.spec.template.spec.containers[0].args, ['--mode', 'job']);
  assert.equal(JSON.parse(envOf(tr.spec.template.spec.containers[0], 'GET_DISTILL_JOB_SPEC').value).workers, undefined);
  await settle(srv, op);
  assert.equal(getMpiJob(srv, 'one-train'), undefined);
  assert.equal(srv.count('create', 'kubeflow.org/mpijobs'), 0);
});

test('workers=2: an MPIJob the MPIJob CRD schema accepts; RBAC covers it only with mpiOperator.enabled', async () => {
  const { srv, user } = await cluster();
  const op = await operator(srv);
  await toTraining(
    srv,
    user,
    'mp',
    runSpec({
      ...training({ workers: 2, gpusPerWorker: 4, backoffLimit: 3 }),
      resources: {
        gpu: { count: 1 },
        cpu: '8',
        memory: '32Gi',
        nodeSelector: { 'nvidia.com/gpu.present': 'true' },
        tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      },
    }),
  );
  const mj = await waitFor('MPIJob', () => getMpiJob(srv, 'mp-train'));
  assert.equal(getJob(srv, 'mp-train'), undefined, 'no trainer Job beside the MPIJob');
  assert.deepEqual(
    validateStructural({ apiVersion: 'kubeflow.org/v2beta1', kind: 'MPIJob', ...mj }, MPIJOB_SCHEMA),
    [],
  );
  assert.equal(mj.metadata.ownerReferences[0].kind, 'DistillationRun');
  assert.equal(mj.metadata.ownerReferences[0].controller, true);
  assert.equal(mj.metadata.labels[LABELS.run], 'mp');
  assert.equal(mj.metadata.labels[LABELS.managedBy], 'get-distill-operator');
  assert.deepEqual(
    {
      slotsPerWorker: mj.spec.slotsPerWorker,
      runPolicy: mj.spec.runPolicy,
      sshAuthMountPath: mj.spec.sshAuthMountPath,
      mpiImplementation: mj.spec.mpiImplementation,
      launcherCreationPolicy: mj.spec.launcherCreationPolicy,
      launcher: [mj.spec.mpiReplicaSpecs.Launcher.replicas, mj.spec.mpiReplicaSpecs.Launcher.restartPolicy],
      worker: [mj.spec.mpiReplicaSpecs.Worker.replicas, mj.spec.mpiReplicaSpecs.Worker.restartPolicy],
    },
    {
      slotsPerWorker: 4,
      runPolicy: { backoffLimit: 3, cleanPodPolicy: 'Running' },
      sshAuthMountPath: '/home/distill/.ssh',
      mpiImplementation: 'OpenMPI',
      launcherCreationPolicy: 'WaitForWorkersReady',
      launcher: [1, 'Never'],
      worker: [2, 'OnFailure'],
    },
  );
  // The launcher: the trainer image's entry point with --ranks workers × slots, today's trainer env, no GPU.
  const l = launcherOf(mj);
  assert.equal(l.image, 'ghcr.io/get-distill/get-distill-trainer:0.1.0');
  assert.deepEqual(l.args, ['--mode', 'job', '--ranks', '8']);
  assert.equal(l.command, undefined);
  const jobSpec = JSON.parse(envOf(l, 'GET_DISTILL_JOB_SPEC').value);
  assert.deepEqual(
    [jobSpec.steps, jobSpec.pairs, jobSpec.out, jobSpec.workers, jobSpec.gpusPerWorker, jobSpec.backoffLimit],
    [600, 's3://runs/r1/pairs', 's3://runs/r1', undefined, undefined, undefined],
  );
  assert.deepEqual(envOf(l, 'AWS_ACCESS_KEY_ID').valueFrom, {
    secretKeyRef: { name: 's3-credentials', key: 'AWS_ACCESS_KEY_ID' },
  });
  assert.equal(envOf(l, 'GET_DISTILL_S3_ENDPOINT').value, 'http://rgw.storage:7480');
  assert.equal(envOf(l, 'GET_DISTILL_TERMINATION_LOG').value, '/dev/termination-log');
  assert.deepEqual(l.resources.limits, { cpu: '1', memory: '1Gi' });
  // The workers: sshd as the image's non-root user, the run's resources with gpusPerWorker GPUs.
  const w = workerOf(mj);
  assert.equal(w.image, l.image);
  assert.deepEqual([w.command, w.args], [['/usr/sbin/sshd'], ['-De', '-f', MPI_IMAGE.sshdConfig]]);
  assert.deepEqual(w.resources.limits, { cpu: '8', memory: '32Gi', 'nvidia.com/gpu': '4' });
  assert.deepEqual(w.readinessProbe.tcpSocket, { port: 2222 });
  assert.equal(envOf(w, 'AWS_ACCESS_KEY_ID'), undefined, 'the ranks get the credentials from mpirun, not sshd');
  for (const c of [l, w]) {
    assert.equal(c.securityContext.runAsUser, 10001);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  }
  for (const role of ['Launcher', 'Worker']) {
    const t = mj.spec.mpiReplicaSpecs[role].template;
    assert.equal(t.spec.restartPolicy, undefined, `${role}: the replica's restartPolicy, not the template's`);
    assert.deepEqual(t.spec.tolerations, [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    assert.equal(t.spec.terminationGracePeriodSeconds, 45);
    assert.equal(t.metadata.labels[LABELS.managedBy], 'get-distill-operator', 'the pods reach the pod informer');
    assert.equal(t.metadata.labels[LABELS.run], 'mp');
    assert.match(t.metadata.labels[LABELS.mpiJobInstance], /^[0-9a-f]{12}$/);
  }
  await settle(srv, op);
  const run = getRun(srv, 'mp')!;
  assert.equal(condition(run, 'Progressing')!.reason, 'TrainingRunning');
  assert.equal(
    condition(run, 'Progressing')!.message,
    'training to step 600, 8 ranks on 2 worker pods (MPIJob mp-train)',
  );
  const started = srv.listObjects({ plural: 'events', namespace: NS }).filter((e) => e.reason === 'TrainingStarted');
  assert.deepEqual(
    started.map((e) => e.message),
    ['created MPIJob mp-train'],
  );
  assert.equal(srv.listObjects({ group: 'kubeflow.org', plural: 'mpijobs' }).length, 1);
  assert.ok(validateCreated(srv) >= 3);
  // What the operator did is granted with the value on, and the MPIJob part of it only then.
  assert.deepEqual(ungranted(srv.requests, false, true), []);
  assert.deepEqual(ungranted(srv.requests, false, false).sort(), [
    'create kubeflow.org/mpijobs',
    'list kubeflow.org/mpijobs',
    'watch kubeflow.org/mpijobs',
  ]);
});

test('the launcher succeeds: rank 0 reports the step, then the run goes on to export with its result', async () => {
  const port = await new Promise<number>((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => ok(p));
    });
  });
  // Rank 0's job-mode server (on worker-0; here on 127.0.0.1).
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  const rank0: StageJob<{ steps: number }> = {
    kind: 'train',
    schema: z.object({ steps: z.number() }),
    async run(spec, ctx) {
      ctx.progress({ step: 211, steps: spec.steps, loss: 0.0321 });
      await held;
      return { artifacts: {}, interrupted: false, summary: { step: spec.steps } };
    },
  };
  const job = runJobMode(
    rank0,
    { steps: 600 },
    { logger: pino({ level: 'silent' }), port, host: '127.0.0.1', env: {}, stderr: () => {}, signals: [] },
  );
  cleanup.push(async () => {
    release();
    await job;
  });
  const { srv, user } = await cluster();
  await operator(srv, { mpiOperator: true }, port);
  await toTraining(srv, user, 'ok', runSpec(training({ workers: 2 })));
  const mj = await waitFor('MPIJob', () => getMpiJob(srv, 'ok-train'));
  // A worker waits for a GPU: Degraded, as for a trainer pod.
  await addMpiPod(srv, mj, 'worker', 'Pending', {
    index: 1,
    status: {
      conditions: [
        { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes: 3 Insufficient gpu.' },
      ],
    },
  });
  let run = await waitFor(
    'Unschedulable',
    () => condition(getRun(srv, 'ok'), 'Degraded')?.reason === 'Unschedulable' && getRun(srv, 'ok'),
  );
  assert.match(condition(run, 'Degraded')!.message, /^pod ok-train-worker-1: 0\/3 nodes: 3 Insufficient gpu\.$/);
  await addMpiPod(srv, mj, 'worker', 'Running', { index: 0, status: { podIP: '127.0.0.1' } });
  srv.setStatus({ plural: 'pods', namespace: NS, name: 'ok-train-worker-1' }, { phase: 'Running', podIP: '10.0.0.2' });
  const launcher = await addMpiPod(srv, mj, 'launcher', 'Running');
  setMpiStatus(srv, 'ok-train', {
    conditions: [mpiCondition('Created', 'MPIJobCreated'), mpiCondition('Running', 'MPIJobRunning')],
    replicaStatuses: { Launcher: { active: 1 }, Worker: { active: 2 } },
    startTime: '2026-01-01T00:00:00Z',
  });
  run = await waitFor(
    'step 211, all pods up',
    () =>
      getRun(srv, 'ok')?.status?.progress?.step === 211 &&
      condition(getRun(srv, 'ok'), 'Degraded')?.status === 'False' &&
      getRun(srv, 'ok'),
  );
  assert.equal(run.status.progress.loss, 0.0321);
  assert.equal(condition(run, 'Degraded')?.status, 'False');
  assert.equal(
    condition(run, 'Progressing')!.message,
    'training to step 600 (last reported 211), 2 ranks on 2 worker pods (MPIJob ok-train)',
  );
  // The launcher Job completes: its pod's termination message has the final step and loss.
  srv.setStatus(
    { plural: 'pods', namespace: NS, name: launcher },
    {
      phase: 'Succeeded',
      containerStatuses: [
        {
          name: 'launcher',
          ready: false,
          restartCount: 0,
          image: 'x',
          imageID: '',
          state: {
            terminated: {
              exitCode: 0,
              reason: 'Completed',
              message: message('train', 'done', 0, { step: 600, loss: 0.012 }),
            },
          },
        },
      ],
    },
  );
  setMpiStatus(srv, 'ok-train', {
    conditions: [mpiCondition('Created', 'MPIJobCreated'), mpiCondition('Succeeded', 'MPIJobSucceeded')],
    replicaStatuses: { Launcher: { succeeded: 1 }, Worker: {} },
    startTime: '2026-01-01T00:00:00Z',
    completionTime: '2026-01-01T01:00:00Z',
  });
  const ex = await waitFor('export Job', () => getJob(srv, 'ok-export'));
  assert.equal(ex.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu'], undefined);
  // The MPIJob's Succeeded and the launcher pod's message may reach the operator in either order.
  run = await waitFor(
    "Exporting with the launcher's result",
    () => getRun(srv, 'ok')?.status?.progress?.loss === 0.012 && getRun(srv, 'ok'),
  );
  assert.equal(run.status.stage, 'Exporting');
  assert.deepEqual([run.status.progress.step, run.status.progress.loss], [600, 0.012]);
  assert.ok(validateCreated(srv) >= 4);
  assert.deepEqual(ungranted(srv.requests, false, true), []);
});

test('the launcher exits 2: the run fails at once with its message, and the MPIJob is suspended', async () => {
  const { srv, user } = await cluster();
  const op = await operator(srv);
  await toTraining(srv, user, 'p2', runSpec(training({ workers: 2 })));
  const mj = await waitFor('MPIJob', () => getMpiJob(srv, 'p2-train'));
  await addMpiPod(srv, mj, 'worker', 'Running', { index: 0 });
  await addMpiPod(srv, mj, 'worker', 'Running', { index: 1 });
  // The launcher Job has no pod failure policy: without the operator it would start the launcher again.
  await addMpiPod(srv, mj, 'launcher', 'Failed', {
    term: {
      exitCode: 2,
      message: message(
        'train',
        'failed',
        2,
        {},
        { kind: 'permanent', message: 'pairs: manifest.json of s3://runs/r1/pairs is corrupt (sha256 mismatch)' },
      ),
    },
  });
  setMpiStatus(srv, 'p2-train', {
    conditions: [mpiCondition('Created', 'MPIJobCreated'), mpiCondition('Running', 'MPIJobRunning')],
    replicaStatuses: { Launcher: { failed: 1 }, Worker: { active: 2 } },
  });
  const run = await waitFor('Failed', () => getRun(srv, 'p2')?.status?.stage === 'Failed' && getRun(srv, 'p2'));
  const failed = condition(run, 'Failed')!;
  assert.equal(failed.reason, 'TrainingFailed');
  assert.equal(
    failed.message,
    'train MPIJob p2-train failed (PermanentError): pairs: manifest.json of s3://runs/r1/pairs is corrupt ' +
      '(sha256 mismatch)',
  );
  assert.equal(condition(run, 'Ready')?.status, 'False');
  assert.equal(condition(run, 'Progressing')?.status, 'False');
  const stopped = await waitFor(
    'MPIJob suspended',
    () => getMpiJob(srv, 'p2-train')?.spec.runPolicy.suspend && getMpiJob(srv, 'p2-train'),
  );
  assert.equal(stopped.metadata.annotations[ANNOTATIONS.failure], failed.message.replace(/^.*?PermanentError\): /, ''));
  await settle(srv, op);
  // Suspended (a reconcile on a cache without the note yet may send the same patch again: harmless).
  assert.ok(srv.count('patch', 'kubeflow.org/mpijobs') >= 1);
  assert.equal(getMpiJob(srv, 'p2-train')!.spec.runPolicy.suspend, true);
  assert.equal(getJob(srv, 'p2-export'), undefined);
  const events = srv.listObjects({ plural: 'events', namespace: NS }).filter((e) => e.reason === 'TrainingFailed');
  assert.equal(events.length, 1);
  // Once the MPI Operator removed the pods, the note on the MPIJob keeps the verdict.
  const core = kubeConfigFor(srv.url, 'mpi-operator').makeApiClient(CoreV1Api);
  for (const p of srv.listObjects({ plural: 'pods', namespace: NS }))
    await core.deleteNamespacedPod({ namespace: NS, name: p.metadata.name });
  await settle(srv, op);
  assert.equal(condition(getRun(srv, 'p2'), 'Failed')!.message, failed.message);
  assert.equal(getRun(srv, 'p2')!.status.stage, 'Failed');
  assert.ok(validateCreated(srv) >= 3);
  assert.deepEqual(ungranted(srv.requests, false, true), []);
});

test('the launcher exits 75: Degraded and retried by the MPIJob, not failed; retries spent: Failed', async () => {
  const { srv, user } = await cluster();
  const op = await operator(srv);
  await toTraining(srv, user, 'r75', runSpec(training({ workers: 2, backoffLimit: 1 })));
  const mj = await waitFor('MPIJob', () => getMpiJob(srv, 'r75-train'));
  for (const index of [0, 1]) await addMpiPod(srv, mj, 'worker', 'Running', { index });
  const interrupted = (step: number, why: string) => ({
    exitCode: 75,
    message: message('train', 'interrupted', 75, { step }, { kind: 'retryable', message: why }),
  });
  await addMpiPod(srv, mj, 'launcher', 'Failed', {
    term: interrupted(200, 'rank 1 (pid 31, host r75-train-worker-1) was lost: killed by signal 9 (SIGKILL)'),
  });
  await addMpiPod(srv, mj, 'launcher', 'Running');
  setMpiStatus(srv, 'r75-train', {
    conditions: [mpiCondition('Created', 'MPIJobCreated'), mpiCondition('Running', 'MPIJobRunning')],
    replicaStatuses: { Launcher: { active: 1, failed: 1 }, Worker: { active: 2 } },
  });
  const run = await waitFor(
    'TrainingRetrying',
    () => condition(getRun(srv, 'r75'), 'Degraded')?.reason === 'TrainingRetrying' && getRun(srv, 'r75'),
  );
  assert.equal(
    condition(run, 'Degraded')!.message,
    '1 launcher pod failed and will be retried from the latest checkpoint; last: rank 1 (pid 31, host ' +
      'r75-train-worker-1) was lost: killed by signal 9 (SIGKILL)',
  );
  assert.equal(condition(run, 'Failed')?.status, 'False');
  assert.equal(run.status.stage, 'Training');
  assert.equal(condition(run, 'Progressing')?.reason, 'TrainingRunning');
  await settle(srv, op);
  assert.equal(srv.count('patch', 'kubeflow.org/mpijobs'), 0, 'a retryable failure does not stop the MPIJob');
  assert.equal(srv.count('delete', 'kubeflow.org/mpijobs'), 0);
  assert.equal(getMpiJob(srv, 'r75-train')!.spec.runPolicy.suspend, undefined);
  // The second launcher fails too: backoffLimit 1 is spent, the launcher Job and the MPIJob fail.
  const second = mpiPodsOf(
    srv.listObjects({ plural: 'pods', namespace: NS }),
    getMpiJob(srv, 'r75-train')! as never,
  ).launchers.find((p) => p.status?.phase === 'Running')!;
  srv.setStatus(
    { plural: 'pods', namespace: NS, name: second.metadata!.name! },
    {
      phase: 'Failed',
      containerStatuses: [
        {
          name: 'launcher',
          ready: false,
          restartCount: 0,
          image: 'x',
          imageID: '',
          state: {
            terminated: {
              exitCode: 75,
              reason: 'Error',
              message: interrupted(400, 'S3 SlowDown after 10 retries').message,
              finishedAt: '2026-01-01T00:30:00Z',
            },
          },
        },
      ],
    },
  );
  setMpiStatus(srv, 'r75-train', {
    conditions: [
      mpiCondition('Created', 'MPIJobCreated'),
      { ...mpiCondition('Running', 'MPIJobRunning'), status: 'False' },
      mpiCondition('Failed', 'BackoffLimitExceeded/', 'Job has reached the specified backoff limit: '),
    ],
    replicaStatuses: { Launcher: { failed: 2 }, Worker: {} },
    completionTime: '2026-01-01T01:00:00Z',
  });
  // The MPIJob's Failed and the last launcher's pod may reach the operator in either order: the message
  // settles on the last launcher's error.
  const last = 'train MPIJob r75-train failed (BackoffLimitExceeded/): S3 SlowDown after 10 retries';
  const failed = await waitFor(
    'Failed with the last launcher’s error',
    () => condition(getRun(srv, 'r75'), 'Failed')?.message === last && getRun(srv, 'r75'),
  );
  assert.equal(failed.status.stage, 'Failed');
  assert.equal(condition(failed, 'Failed')!.reason, 'TrainingFailed');
  await settle(srv, op);
  assert.equal(srv.count('patch', 'kubeflow.org/mpijobs'), 0, 'a finished MPIJob needs no stopping');
  assert.ok(validateCreated(srv) >= 3);
});

test('a worker pod lost for good: the MPIJob is deleted and created again, the run is not failed', async () => {
  const { srv, user } = await cluster();
  const op = await operator(srv);
  await toTraining(srv, user, 'ev', runSpec(training({ workers: 2 })));
  const first = await waitFor('MPIJob', () => getMpiJob(srv, 'ev-train'));
  await addMpiPod(srv, first, 'worker', 'Running', { index: 0 });
  await addMpiPod(srv, first, 'launcher', 'Running');
  // Node pressure evicted worker 1: the pod stays Failed, and the MPI Operator never recreates a failed worker.
  await addMpiPod(srv, first, 'worker', 'Failed', {
    index: 1,
    status: { reason: 'Evicted', message: 'The node was low on resource: memory.' },
  });
  setMpiStatus(srv, 'ev-train', {
    conditions: [
      mpiCondition('Created', 'MPIJobCreated'),
      mpiCondition('Failed', 'MPIJobEvicted', '1/2 workers are evicted'),
    ],
    replicaStatuses: { Launcher: { active: 1 }, Worker: { active: 1, failed: 1 } },
  });
  const second = await waitFor(
    'a new MPIJob',
    () => getMpiJob(srv, 'ev-train')?.metadata.uid !== first.metadata.uid && getMpiJob(srv, 'ev-train'),
  );
  const instance = (mj: KObj) => mj.spec.mpiReplicaSpecs.Worker.template.metadata.labels[LABELS.mpiJobInstance];
  assert.notEqual(instance(second), instance(first));
  assert.equal(second.metadata.annotations[ANNOTATIONS.specHash], first.metadata.annotations[ANNOTATIONS.specHash]);
  // The old MPIJob's launcher Job and pods went with it (foreground deletion).
  assert.deepEqual(
    srv
      .listObjects({ plural: 'pods', namespace: NS })
      .filter((p) => p.metadata.labels[MPI_LABELS.jobName] === 'ev-train'),
    [],
  );
  // A reconcile on a cache that still shows the old MPIJob may delete it again: its uid precondition makes
  // that a 404/409, never the deletion of the new one.
  assert.ok(srv.count('delete', 'kubeflow.org/mpijobs') >= 1);
  await settle(srv, op);
  assert.equal(getMpiJob(srv, 'ev-train')!.metadata.uid, second.metadata.uid, 'started over once');
  const run = getRun(srv, 'ev')!;
  assert.equal(condition(run, 'Failed')?.status, 'False');
  assert.equal(run.status.stage, 'Training');
  assert.equal(condition(run, 'Progressing')?.reason, 'TrainingRunning');
  assert.equal(condition(run, 'Degraded')?.status, 'False');
  const events = srv.listObjects({ plural: 'events', namespace: NS }).filter((e) => e.reason === 'TrainingRestarted');
  assert.equal(events.length, 1);
  assert.equal(
    events[0].message,
    'worker pod ev-train-worker-1 was lost (Evicted: The node was low on resource: memory.); the MPIJob starts ' +
      'over from the latest checkpoint',
  );
  assert.deepEqual(ungranted(srv.requests, false, true), []);
});

test('MPI Operator off: workers=2 fails with a condition naming mpiOperator.enabled; 1 worker starts', async () => {
  const { srv, user } = await cluster();
  const op = await operator(srv, {});
  await createRun(user, 'off', runSpec(training({ workers: 2 })));
  const run = await waitFor(
    'MPIOperatorDisabled',
    () => condition(getRun(srv, 'off'), 'Failed')?.reason === 'MPIOperatorDisabled' && getRun(srv, 'off'),
  );
  assert.equal(condition(run, 'Failed')!.status, 'True');
  assert.equal(
    condition(run, 'Failed')!.message,
    'training.workers 2 × 1 rank per worker = 2 ranks need an MPIJob, and this operator runs without the Kubeflow ' +
      'MPI Operator: install it and set mpiOperator.enabled=true in the get-distill Helm release ' +
      '(GET_DISTILL_MPI_OPERATOR=true), or train in one trainer Job (training.workers: 1 without gpusPerWorker)',
  );
  assert.equal(run.status.stage, 'Failed');
  assert.equal(condition(run, 'Ready')?.status, 'False');
  await settle(srv, op);
  assert.deepEqual(srv.listObjects({ group: 'batch', plural: 'jobs' }), [], 'nothing runs (no datagen either)');
  // Without the value the operator never touches MPIJobs: no watch, and the chart's default RBAC suffices.
  assert.equal(srv.requests.filter((r) => r.resource === 'kubeflow.org/mpijobs').length, 0);
  assert.deepEqual(ungranted(srv.requests), []);
  const warnings = srv
    .listObjects({ plural: 'events', namespace: NS })
    .filter((e) => e.reason === 'MPIOperatorDisabled');
  assert.equal(warnings.length, 1);
  // Back to one worker: the run starts and the Failed condition clears.
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  await user.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: 'distillationruns',
      name: 'off',
      body: { spec: { training: { workers: 1 } } },
    },
    merge,
  );
  await waitFor('datagen Job', () => getJob(srv, 'off-datagen'));
  await waitFor('Failed cleared', () => condition(getRun(srv, 'off'), 'Failed')?.status === 'False');
  assert.equal(getRun(srv, 'off')!.status.stage, 'Datagen');
});

test('spec edits: a run whose MPIJob exists refuses a topology change to its train stage', async () => {
  const { srv, user } = await cluster();
  await operator(srv);
  await toTraining(srv, user, 'ed', runSpec(training({ workers: 2 })));
  await waitFor('MPIJob', () => getMpiJob(srv, 'ed-train'));
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  await user.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: 'distillationruns',
      name: 'ed',
      body: { spec: { training: { workers: 4 } } },
    },
    merge,
  );
  const run = await waitFor(
    'SpecChangeRejected',
    () => condition(getRun(srv, 'ed'), 'Degraded')?.reason === 'SpecChangeRejected' && getRun(srv, 'ed'),
  );
  assert.match(condition(run, 'Degraded')!.message, /spec changes to the train stage cannot apply/);
  assert.equal(getMpiJob(srv, 'ed-train')!.spec.mpiReplicaSpecs.Worker.replicas, 2);
  // A changed operator image is not a spec change (the hash covers what the run decides).
  const spec = DistillationRunSpecSchema.parse(runSpec(training({ workers: 2 })));
  const owner = { ...RUN_META, metadata: { name: 'ed', namespace: NS, uid: 'u' } };
  const a = buildTrainMpiJob(owner, spec, operatorConfig({ mpiOperator: true }));
  const b = buildTrainMpiJob(owner, spec, operatorConfig({ mpiOperator: true, trainerImage: 'other/trainer:9.9.9' }));
  assert.equal(a.metadata!.annotations![ANNOTATIONS.specHash], b.metadata!.annotations![ANNOTATIONS.specHash]);
});

test('mpiJobState: conditions and the launcher decide; pods of another MPIJob instance are not read', () => {
  const spec = DistillationRunSpecSchema.parse(runSpec(training({ workers: 2 })));
  const owner = { ...RUN_META, metadata: { name: 's', namespace: NS, uid: 'u' } };
  const mj = { ...buildTrainMpiJob(owner, spec, operatorConfig({ mpiOperator: true }), 'aaaa'), status: {} };
  const pod = (role: string, phase: string, o: KObj = {}) => ({
    metadata: {
      name: `${role}-${phase}`,
      labels: {
        [MPI_LABELS.jobName]: 's-train',
        [MPI_LABELS.jobRole]: role,
        [LABELS.mpiJobInstance]: o.instance ?? 'aaaa',
      },
    },
    status: {
      phase,
      ...(o.exitCode !== undefined
        ? { containerStatuses: [{ name: role, state: { terminated: { exitCode: o.exitCode } } }] }
        : {}),
    },
  });
  const state = (pods: KObj[], status: KObj = {}) =>
    mpiJobState({ ...mj, status } as never, mpiPodsOf(pods as never, mj as never));
  assert.deepEqual(state([pod('launcher', 'Running')]), { phase: 'Running', failed: 0, last: undefined });
  assert.deepEqual(state([pod('launcher', 'Failed', { exitCode: 75 })]), {
    phase: 'Running',
    failed: 1,
    last: 'exit code 75',
  });
  assert.deepEqual(state([pod('launcher', 'Failed', { exitCode: 2 })]), {
    phase: 'Failed',
    reason: 'PermanentError',
    message: 'exit code 2',
    stop: true,
  });
  // An old MPIJob's exit-2 launcher, still in a cache, is not this MPIJob's.
  assert.equal(state([pod('launcher', 'Failed', { exitCode: 2, instance: 'bbbb' })]).phase, 'Running');
  assert.deepEqual(state([], { conditions: [mpiCondition('Succeeded', 'MPIJobSucceeded')] }), { phase: 'Complete' });
  assert.deepEqual(state([], { conditions: [mpiCondition('Restarting', 'MPIJobRestarting', 'pod restarted')] }), {
    phase: 'Running',
    failed: 0,
    last: undefined,
    restarting: 'pod restarted',
  });
  // Evicted workers with a finished launcher: the launcher's failure wins (the MPIJob is done).
  assert.equal(
    state([], { conditions: [mpiCondition('Failed', 'MPIJobEvicted')], completionTime: '2026-01-01T00:00:00Z' }).phase,
    'Failed',
  );
  assert.equal(state([pod('worker', 'Failed')]).phase, 'Restart');
  assert.deepEqual(
    mpiJobState({ ...mj, metadata: { ...mj.metadata, deletionTimestamp: new Date() } } as never, {
      launchers: [],
      workers: [],
    }),
    {
      phase: 'Restart',
      deleting: true,
      message: 'MPIJob s-train is being deleted to start over',
    },
  );
});

test('a batch the ranks cannot split: InvalidSpec naming training.batch, before datagen', async () => {
  const { srv, user } = await cluster();
  const op = await operator(srv);
  await createRun(user, 'uneven', runSpec(training({ workers: 3, batch: 32 })));
  const run = await waitFor(
    'InvalidSpec',
    () => condition(getRun(srv, 'uneven'), 'Degraded')?.reason === 'InvalidSpec' && getRun(srv, 'uneven'),
  );
  assert.equal(
    condition(run, 'Degraded')!.message,
    "spec.training.batch 32 is not divisible by the run's 3 training ranks (workers × GPUs per worker); " +
      'use a multiple of 3 (kubectl edit distillationrun uneven)',
  );
  await settle(srv, op);
  assert.deepEqual(srv.listObjects({ group: 'batch', plural: 'jobs' }), [], 'no datagen Job');
  assert.deepEqual(srv.listObjects({ group: 'kubeflow.org', plural: 'mpijobs' }), []);
});
