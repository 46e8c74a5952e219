// DistillationRun scenarios: the real operator (src/operator/manager.ts) and the real
// @kubernetes/client-node against the in-memory API server; the test plays user, Job controller and kubelet.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { FakeApiServer, KObj } from '../k8s/api-server.js';
import type { Operator } from '../../src/operator/manager.js';
import { ANNOTATIONS, ENDPOINT, GROUP, LABELS, VERSION } from '../../src/operator/api/v1alpha1/group.js';
import {
  NS,
  addPod,
  completeJob,
  condition,
  createRun,
  getJob,
  getRun,
  message,
  runSpec,
  settle,
  startCluster,
  startOperator,
  ungranted,
  waitFor,
  waitForAsync,
} from './harness.js';
import { validateCreated } from './validate.js';
import { createServer, type AddressInfo } from 'node:net';
import { z } from 'zod';
import pino from 'pino';
import { runJobMode } from '../../src/jobs/run-job.js';
import type { StageJob } from '../../src/jobs/types.js';
import type { LeaderElector } from '../../src/operator/runtime/leader-election.js';

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
async function operator(srv: FakeApiServer, id = 'op-1', over = {}): Promise<Operator> {
  const { op, started } = startOperator(srv, id, over);
  cleanup.push(() => op.stop());
  await started;
  return op;
}
const jobNames = (srv: FakeApiServer) =>
  srv
    .listObjects({ group: 'batch', plural: 'jobs', namespace: NS })
    .map((j) => j.metadata.name)
    .sort();
const envOf = (job: KObj, name: string) =>
  job.spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === name);

test('success: datagen → train → export → eval → endpoint; status, children and RBAC as specified', async () => {
  const { srv, user } = await cluster();
  await operator(srv);
  await createRun(user, 'r1', runSpec({ serve: { enabled: true, autoscaling: { minReplicas: 1, maxReplicas: 3 } } }));

  const dg = await waitFor('datagen Job', () => getJob(srv, 'r1-datagen'));
  assert.equal(dg.spec.completionMode, 'Indexed');
  assert.equal(dg.spec.completions, 4); // 1024 seeds / 256 per shard
  assert.equal(dg.spec.parallelism, 2);
  assert.equal(dg.spec.backoffLimitPerIndex, 3);
  assert.deepEqual(dg.spec.podFailurePolicy.rules[0], {
    action: 'FailJob',
    onExitCodes: { containerName: 'datagen', operator: 'In', values: [2] },
  });
  const c = dg.spec.template.spec.containers[0];
  assert.deepEqual(c.args, ['--mode', 'job']);
  assert.deepEqual(JSON.parse(envOf(dg, 'GET_DISTILL_JOB_SPEC').value), {
    out: 's3://runs/r1/pairs',
    teacher: 'mixture',
    dataset: 'mnist',
    teacherComponents: 10,
    teacherRank: 32,
    cacheDir: 's3://runs/r1/cache',
    samplerSteps: 18,
    seeds: { start: 0, end: 1024 },
    shardSize: 256,
    parallelism: 4,
  });
  assert.deepEqual(envOf(dg, 'AWS_ACCESS_KEY_ID').valueFrom, {
    secretKeyRef: { name: 's3-credentials', key: 'AWS_ACCESS_KEY_ID' },
  });
  assert.equal(envOf(dg, 'GET_DISTILL_S3_ENDPOINT').value, 'http://rgw.storage:7480');
  assert.deepEqual(c.resources.limits, { cpu: '2', memory: '8Gi', 'nvidia.com/gpu': '1' });
  assert.deepEqual(dg.spec.template.spec.tolerations, [
    { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
  ]);
  assert.equal(dg.metadata.ownerReferences[0].kind, 'DistillationRun');
  assert.equal(dg.metadata.ownerReferences[0].controller, true);
  let run = await waitFor('Datagen stage', () => getRun(srv, 'r1')?.status?.stage === 'Datagen' && getRun(srv, 'r1'));
  assert.equal(condition(run, 'Progressing')?.status, 'True');
  assert.equal(condition(run, 'Ready')?.status, 'False');
  assert.equal(run.status.observedGeneration, 1);

  // Two of four shards done: progress from completedIndexes.
  srv.setStatus(
    { group: 'batch', plural: 'jobs', namespace: NS, name: 'r1-datagen' },
    { active: 2, succeeded: 2, completedIndexes: '0,2' },
  );
  run = await waitFor('shards 2/4', () => getRun(srv, 'r1')?.status?.progress?.shardsDone === 2 && getRun(srv, 'r1'));
  assert.equal(run.status.progress.shardsTotal, 4);

  await completeJob(srv, 'r1-datagen');
  const tr = await waitFor('train Job', () => getJob(srv, 'r1-train'));
  assert.equal(tr.spec.backoffLimit, 6);
  assert.equal(JSON.parse(envOf(tr, 'GET_DISTILL_JOB_SPEC').value).steps, 600);
  assert.equal(JSON.parse(envOf(tr, 'GET_DISTILL_JOB_SPEC').value).pairs, 's3://runs/r1/pairs');
  await completeJob(srv, 'r1-train', { step: 600, loss: 0.0123 });
  const ex = await waitFor('export Job', () => getJob(srv, 'r1-export'));
  // Export needs no GPU.
  assert.equal(ex.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu'], undefined);
  run = await waitFor('Exporting', () => getRun(srv, 'r1')?.status?.stage === 'Exporting' && getRun(srv, 'r1'));
  assert.deepEqual([run.status.progress.step, run.status.progress.loss], [600, 0.0123]);

  const sha = 'ab'.repeat(32);
  await completeJob(srv, 'r1-export', { sha256: sha, bytes: 1234 });
  const ev = await waitFor('eval Job', () => getJob(srv, 'r1-eval'));
  assert.deepEqual(ev.spec.template.spec.containers[0].args.slice(0, 6), [
    '--model',
    's3://runs/r1/model/model.onnx',
    '--samples',
    '1000',
    '--dataset',
    'mnist',
  ]);
  const ep = await waitFor('GenerationEndpoint', () =>
    srv.getObject({ group: GROUP, plural: ENDPOINT.plural, namespace: NS, name: 'r1' }),
  );
  assert.deepEqual(ep.spec.model, { run: 'r1' });
  const dep = await waitFor('Deployment', () =>
    srv.getObject({ group: 'apps', plural: 'deployments', namespace: NS, name: 'r1' }),
  );
  assert.equal(dep.spec.template.metadata.annotations[ANNOTATIONS.modelDigest], `sha256:${sha}`);
  assert.equal(dep.spec.template.spec.containers[0].readinessProbe.httpGet.path, '/v2/health/ready');

  await completeJob(srv, 'r1-eval', { fid: 12.5, inceptionScore: 9.1, precision: 0.8, recall: 0.6, samples: 1000 });
  run = await waitFor('Serving', () => getRun(srv, 'r1')?.status?.stage === 'Serving' && getRun(srv, 'r1'));
  assert.equal(condition(run, 'Complete')?.status, 'True');
  assert.equal(condition(run, 'Ready')?.reason, 'WaitingForEndpoint');
  // The Deployment becomes available → the endpoint is Ready → the run is Ready.
  const d = srv.getObject({ group: 'apps', plural: 'deployments', namespace: NS, name: 'r1' })!;
  srv.setStatus(
    { group: 'apps', plural: 'deployments', namespace: NS, name: 'r1' },
    {
      observedGeneration: d.metadata.generation,
      replicas: 1,
      readyReplicas: 1,
      updatedReplicas: 1,
      availableReplicas: 1,
      conditions: [
        { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' },
        { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' },
      ],
    },
  );
  run = await waitFor('Succeeded', () => getRun(srv, 'r1')?.status?.stage === 'Succeeded' && getRun(srv, 'r1'));
  assert.equal(condition(run, 'Ready')?.status, 'True');
  assert.equal(condition(run, 'Failed')?.status, 'False');
  assert.equal(condition(run, 'Degraded')?.status, 'False');
  assert.equal(run.status.fid, 12.5);
  assert.equal(run.status.endpoint, 'r1');
  assert.deepEqual(run.status.artifacts, {
    pairs: 's3://runs/r1/pairs',
    checkpoints: 's3://runs/r1/checkpoints',
    model: 's3://runs/r1/model/model.onnx',
    modelDigest: `sha256:${sha}`,
    eval: 's3://runs/r1/eval/eval.json',
  });
  assert.deepEqual(jobNames(srv), ['r1-datagen', 'r1-eval', 'r1-export', 'r1-train']);
  assert.ok(validateCreated(srv) >= 9);
  assert.deepEqual(ungranted(srv.requests), []);
});

test('a datagen index fails and is retried: Degraded while retrying, then on to training', async () => {
  const { srv, user } = await cluster();
  await operator(srv);
  await createRun(user, 'r2', runSpec());
  const dg = await waitFor('datagen Job', () => getJob(srv, 'r2-datagen'));
  await addPod(srv, dg, 'Failed', {
    exitCode: 75,
    message: message(
      'datagen',
      'failed',
      75,
      {},
      { kind: 'retryable', message: 's3://runs/r1/pairs: store unreachable (SlowDown)' },
    ),
  });
  srv.setStatus(
    { group: 'batch', plural: 'jobs', namespace: NS, name: 'r2-datagen' },
    { active: 2, failed: 1, succeeded: 1, completedIndexes: '1' },
  );
  const run = await waitFor(
    'DatagenRetrying',
    () => condition(getRun(srv, 'r2'), 'Degraded')?.reason === 'DatagenRetrying' && getRun(srv, 'r2'),
  );
  assert.match(
    condition(run, 'Degraded')!.message,
    /1 datagen pod failed and will be retried; last: .*store unreachable/,
  );
  assert.equal(condition(run, 'Failed')?.status, 'False');
  await completeJob(srv, 'r2-datagen');
  await waitFor('train Job', () => getJob(srv, 'r2-train'));
  await waitFor('Degraded cleared', () => condition(getRun(srv, 'r2'), 'Degraded')?.status === 'False');
});

test("trainer fails retryably (75), then permanently (2): Degraded, then Failed, pod's reason; no more", async () => {
  const { srv, user } = await cluster();
  const op = await operator(srv);
  await createRun(user, 'r3', runSpec());
  await waitFor('datagen Job', () => getJob(srv, 'r3-datagen'));
  await completeJob(srv, 'r3-datagen');
  const tr = await waitFor('train Job', () => getJob(srv, 'r3-train'));
  await addPod(srv, tr, 'Failed', {
    exitCode: 75,
    message: message(
      'train',
      'interrupted',
      75,
      { step: 200 },
      { kind: 'retryable', message: 'SIGTERM after the checkpoint at step 200' },
    ),
  });
  srv.setStatus({ group: 'batch', plural: 'jobs', namespace: NS, name: 'r3-train' }, { active: 1, failed: 1 });
  let run = await waitFor(
    'TrainingRetrying',
    () => condition(getRun(srv, 'r3'), 'Degraded')?.reason === 'TrainingRetrying' && getRun(srv, 'r3'),
  );
  assert.match(condition(run, 'Degraded')!.message, /retried from the latest checkpoint/);
  await settle(srv, op); // the retry is fully handled before the permanent failure arrives
  const pod = await addPod(srv, tr, 'Failed', {
    exitCode: 2,
    message: message(
      'train',
      'failed',
      2,
      {},
      { kind: 'permanent', message: 'pairs: manifest.json of s3://runs/r1/pairs is corrupt (sha256 mismatch)' },
    ),
  });
  srv.setStatus(
    { group: 'batch', plural: 'jobs', namespace: NS, name: 'r3-train' },
    {
      failed: 2,
      conditions: [
        { type: 'FailureTarget', status: 'True', reason: 'PodFailurePolicy' },
        {
          type: 'Failed',
          status: 'True',
          reason: 'PodFailurePolicy',
          message: `Container trainer for pod team-a/${pod} failed with exit code 2 matching FailJob rule at index 0`,
        },
      ],
    },
  );
  run = await waitFor('Failed', () => getRun(srv, 'r3')?.status?.stage === 'Failed' && getRun(srv, 'r3'));
  const failed = condition(run, 'Failed')!;
  assert.equal(failed.status, 'True');
  assert.equal(failed.reason, 'TrainingFailed');
  assert.match(failed.message, /^train Job r3-train failed \(PodFailurePolicy\): pairs: manifest\.json .* is corrupt/);
  assert.equal(condition(run, 'Ready')?.status, 'False');
  assert.equal(condition(run, 'Progressing')?.status, 'False');
  assert.ok(run.status.completionTime);
  await settle(srv, op);
  assert.deepEqual(jobNames(srv), ['r3-datagen', 'r3-train']); // no export after a failure
  const events = srv.listObjects({ plural: 'events', namespace: NS }).filter((e) => e.reason === 'TrainingFailed');
  assert.equal(events.length, 1);
  assert.equal(events[0].type, 'Warning');
});

test('deleting a run mid-run: its Jobs go by garbage collection and the operator creates nothing more', async () => {
  const { srv, user } = await cluster();
  const op = await operator(srv);
  await createRun(user, 'r4', runSpec());
  await waitFor('datagen Job', () => getJob(srv, 'r4-datagen'));
  await user.deleteNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: NS,
    plural: 'distillationruns',
    name: 'r4',
  });
  await waitFor('Jobs gone', () => jobNames(srv).length === 0);
  const creates = srv.count('create', 'batch/jobs');
  await settle(srv, op);
  assert.equal(srv.count('create', 'batch/jobs'), creates);
  assert.deepEqual(jobNames(srv), []);
  assert.equal(getRun(srv, 'r4'), undefined); // no finalizer held it
});

test('an operator restarted mid-run picks up where it was: no duplicate Jobs', async () => {
  const { srv, user } = await cluster();
  const { op, started } = startOperator(srv, 'op-a');
  await started;
  await createRun(user, 'r5', runSpec());
  await waitFor('datagen Job', () => getJob(srv, 'r5-datagen'));
  await op.stop();
  await completeJob(srv, 'r5-datagen'); // finishes while no operator runs
  const before = srv.count('create', 'batch/jobs');
  const opB = await operator(srv, 'op-b');
  await waitFor('train Job', () => getJob(srv, 'r5-train'));
  await settle(srv, opB);
  assert.deepEqual(jobNames(srv), ['r5-datagen', 'r5-train']);
  // Only the train Job: the datagen Job was found in the cache.
  assert.equal(srv.count('create', 'batch/jobs'), before + 1);
});

test('two operator replicas: one leader reconciles; when it stops the other takes over', async () => {
  const { srv, user } = await cluster();
  const a = await operator(srv, 'op-a');
  const b = await operator(srv, 'op-b');
  await waitFor('a leader', () => a.leading || b.leading);
  // More election rounds run against the held Lease (each round reads it); then both candidates park
  // between rounds, so the state is stable when asserted: exactly one leads.
  const electors = [a, b].map((o) => o['elector'] as LeaderElector);
  const reads = srv.count('get', 'coordination.k8s.io/leases');
  await waitFor('a further election round of both', () => srv.count('get', 'coordination.k8s.io/leases') >= reads + 3);
  await Promise.all(electors.map((e) => e.whenIdle()));
  assert.notEqual(a.leading, b.leading);
  const [leader, standby] = a.leading ? [a, b] : [b, a];
  await createRun(user, 'r6', runSpec());
  await waitFor('datagen Job', () => getJob(srv, 'r6-datagen'));
  await leader.stop(); // releases the Lease
  await waitFor('standby leads', () => standby.leading, 3000);
  await completeJob(srv, 'r6-datagen');
  await waitFor('train Job by the new leader', () => getJob(srv, 'r6-train'));
  assert.deepEqual(jobNames(srv), ['r6-datagen', 'r6-train']);
  const lease = srv.getObject({
    group: 'coordination.k8s.io',
    plural: 'leases',
    namespace: 'get-distill-system',
    name: 'get-distill-operator',
  })!;
  assert.match(lease.spec.holderIdentity, /^op-[ab]$/);
  assert.ok(lease.spec.leaseTransitions >= 1);
});

test('spec changes: a started stage refuses them with a condition; a stage not started yet takes them', async () => {
  const { srv, user } = await cluster();
  await operator(srv);
  await createRun(user, 'r7', runSpec());
  await waitFor('datagen Job', () => getJob(srv, 'r7-datagen'));
  const patch = (spec: object) =>
    user.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace: NS, plural: 'distillationruns', name: 'r7', body: { spec } },
      (async () => {
        const m = await import('@kubernetes/client-node');
        return m.setHeaderOptions('Content-Type', m.PatchStrategy.MergePatch);
      })() as never,
    );
  const { setHeaderOptions, PatchStrategy } = await import('@kubernetes/client-node');
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  void patch;
  await user.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: 'distillationruns',
      name: 'r7',
      body: { spec: { datagen: { shardSize: 128 }, training: { steps: 900 } } },
    },
    merge,
  );
  let run = await waitFor(
    'SpecChangeRejected',
    () => condition(getRun(srv, 'r7'), 'Degraded')?.reason === 'SpecChangeRejected' && getRun(srv, 'r7'),
  );
  assert.match(condition(run, 'Degraded')!.message, /spec changes to the datagen stage cannot apply/);
  assert.equal(run.status.observedGeneration, 2);
  assert.equal(getJob(srv, 'r7-datagen')!.spec.completions, 4); // unchanged
  // Revert datagen; keep the training change (its Job does not exist yet).
  await user.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: 'distillationruns',
      name: 'r7',
      body: { spec: { datagen: { shardSize: 256 } } },
    },
    merge,
  );
  run = await waitFor(
    'Degraded cleared',
    () => condition(getRun(srv, 'r7'), 'Degraded')?.status === 'False' && getRun(srv, 'r7'),
  );
  assert.equal(run.status.observedGeneration, 3);
  await completeJob(srv, 'r7-datagen');
  const tr = await waitFor('train Job', () => getJob(srv, 'r7-train'));
  assert.equal(
    JSON.parse(
      tr.spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === 'GET_DISTILL_JOB_SPEC').value,
    ).steps,
    900,
  );
});

test('an invalid spec is reported as InvalidSpec, creates nothing; a pod that cannot start is Degraded', async () => {
  const { srv, user } = await cluster();
  await operator(srv);
  await createRun(user, 'bad', runSpec({ datagen: { seeds: { start: 10, end: 10 }, shardSize: 256 } }));
  const run = await waitFor(
    'InvalidSpec',
    () => condition(getRun(srv, 'bad'), 'Degraded')?.reason === 'InvalidSpec' && getRun(srv, 'bad'),
  );
  assert.equal(condition(run, 'Ready')?.reason, 'InvalidSpec');
  assert.deepEqual(jobNames(srv), []);

  await createRun(user, 'r8', runSpec({ store: { uri: 's3://runs/r8', credentialsSecret: 'missing' } }));
  const dg = await waitFor('datagen Job', () => getJob(srv, 'r8-datagen'));
  await addPod(srv, dg, 'Pending', undefined, {
    reason: 'CreateContainerConfigError',
    message: 'secret "missing" not found',
  });
  const r8 = await waitFor(
    'Degraded',
    () => condition(getRun(srv, 'r8'), 'Degraded')?.reason === 'CreateContainerConfigError' && getRun(srv, 'r8'),
  );
  assert.match(condition(r8, 'Degraded')!.message, /secret "missing" not found/);
  assert.equal(getRun(srv, 'r8')!.metadata.labels?.[LABELS.run], undefined);
});

test("training progress: the run shows the step and loss the trainer pod's job-mode server reports", async () => {
  // A free port for the job-mode server (the operator probes <podIP>:<port>/v1/job; here the pod IP is 127.0.0.1).
  const port = await new Promise<number>((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => ok(p));
    });
  });
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  const training: StageJob<{ steps: number }> = {
    kind: 'train',
    schema: z.object({ steps: z.number() }),
    async run(spec, ctx) {
      ctx.progress({ step: 317, steps: spec.steps, loss: 0.0456 });
      await held;
      return { artifacts: {}, interrupted: false, summary: { step: spec.steps } };
    },
  };
  const job = runJobMode(
    training,
    { steps: 600 },
    { logger: pino({ level: 'silent' }), port, host: '127.0.0.1', env: {}, stderr: () => {}, signals: [] },
  );
  cleanup.push(async () => {
    release();
    await job;
  });
  const { srv, user } = await cluster();
  const { op, started } = startOperator(srv, 'op-p', {}, port);
  cleanup.push(() => op.stop());
  await started;
  await createRun(user, 'r9', runSpec());
  await waitFor('datagen Job', () => getJob(srv, 'r9-datagen'));
  await completeJob(srv, 'r9-datagen');
  const tr = await waitFor('train Job', () => getJob(srv, 'r9-train'));
  const pod = await addPod(srv, tr, 'Running');
  srv.setStatus({ plural: 'pods', namespace: NS, name: pod }, { phase: 'Running', podIP: '127.0.0.1' });
  const run = await waitFor('step 317', () => getRun(srv, 'r9')?.status?.progress?.step === 317 && getRun(srv, 'r9'));
  assert.equal(run.status.progress.loss, 0.0456);
  assert.match(condition(run, 'Progressing')!.message, /training to step 600 \(last reported 317\)/);
});

test('a Job the API server refuses (422) is reported on the run as JobRejected, not retried blind', async () => {
  const { srv, user } = await cluster();
  await operator(srv);
  srv.failNext('create', 'batch/jobs', 422, 3);
  await createRun(user, 'r10', runSpec());
  const run = await waitFor(
    'JobRejected',
    () => condition(getRun(srv, 'r10'), 'Degraded')?.reason === 'JobRejected' && getRun(srv, 'r10'),
  );
  assert.match(condition(run, 'Degraded')!.message, /^the API server refused the datagen Job \(422\): /);
  assert.equal(condition(run, 'Progressing')?.status, 'False');
  assert.deepEqual(jobNames(srv), []);
});

test('serve follows the spec: removed settings leave the endpoint, off deletes it; a foreign one is kept', async () => {
  const { srv, user } = await cluster();
  const op = await operator(srv, 'op-1', { gpuResourceName: 'amd.com/gpu' });
  const { setHeaderOptions, PatchStrategy } = await import('@kubernetes/client-node');
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const patchRun = (name: string, spec: object) =>
    user.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace: NS, plural: 'distillationruns', name, body: { spec } },
      merge,
    );
  const endpoint = (name: string) => srv.getObject({ group: GROUP, plural: ENDPOINT.plural, namespace: NS, name });
  await createRun(
    user,
    's1',
    runSpec({
      datagen: {
        seeds: { start: 0, end: 512 },
        shardSize: 256,
        parallelism: 2,
        resources: { gpu: { count: 0 }, cpu: '1', memory: '2Gi' },
      },
      serve: { enabled: true, autoscaling: { minReplicas: 2, maxReplicas: 5, targetQueueDepth: 4 } },
    }),
  );
  const dg = await waitFor('datagen Job', () => getJob(srv, 's1-datagen'));
  // Its own resources: no GPU.
  assert.deepEqual(dg.spec.template.spec.containers[0].resources.limits, { cpu: '1', memory: '2Gi' });
  assert.equal(dg.spec.template.spec.terminationGracePeriodSeconds, 45);
  await completeJob(srv, 's1-datagen');
  const tr = await waitFor('train Job', () => getJob(srv, 's1-train'));
  // The operator's GPU resource name.
  assert.equal(tr.spec.template.spec.containers[0].resources.limits['amd.com/gpu'], '1');
  await completeJob(srv, 's1-train', { step: 600, loss: 0.01 });
  await waitFor('export Job', () => getJob(srv, 's1-export'));
  await completeJob(srv, 's1-export', { sha256: 'cd'.repeat(32) });
  const ep = await waitFor('endpoint', () => endpoint('s1'));
  assert.deepEqual(ep.spec.autoscaling, {
    minReplicas: 2,
    maxReplicas: 5,
    targetCPUUtilizationPercentage: 80,
    targetQueueDepth: 4,
  });
  assert.equal(ep.metadata.ownerReferences[0].name, 's1');
  await patchRun('s1', { serve: { autoscaling: null } });
  await waitFor(
    'autoscaling removed from the endpoint',
    () => endpoint('s1') && endpoint('s1')!.spec.autoscaling === undefined,
  );
  const patches = srv.count('patch', `${GROUP}/${ENDPOINT.plural}`);
  await settle(srv, op);
  assert.equal(srv.count('patch', `${GROUP}/${ENDPOINT.plural}`), patches, 'in step: no more patches');
  await patchRun('s1', { serve: { enabled: false } });
  await waitFor('endpoint deleted', () => !endpoint('s1'));
  await waitFor(
    'status.endpoint cleared',
    () => getRun(srv, 's1')?.status && getRun(srv, 's1')!.status.endpoint === undefined,
  );

  // A user's own endpoint with the name a serving run would use.
  await user.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: NS,
    plural: ENDPOINT.plural,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: ENDPOINT.kind,
      metadata: { name: 's2' },
      spec: { model: { uri: 's3://models/mine/model.onnx' } },
    },
  });
  await createRun(user, 's2', runSpec({ serve: { enabled: true } }));
  await waitFor('datagen Job', () => getJob(srv, 's2-datagen'));
  await completeJob(srv, 's2-datagen');
  await waitFor('train Job', () => getJob(srv, 's2-train'));
  await completeJob(srv, 's2-train');
  await waitFor('export Job', () => getJob(srv, 's2-export'));
  await completeJob(srv, 's2-export', { sha256: 'ef'.repeat(32) });
  const r2 = await waitFor(
    'NameConflict',
    () => condition(getRun(srv, 's2'), 'Degraded')?.reason === 'NameConflict' && getRun(srv, 's2'),
  );
  assert.match(condition(r2, 'Degraded')!.message, /GenerationEndpoint named s2 exists that this run does not control/);
  assert.deepEqual(endpoint('s2')!.spec, { model: { uri: 's3://models/mine/model.onnx' } });
  assert.deepEqual(ungranted(srv.requests), []);
});

test('names: a run name that cannot name its pods is refused with InvalidName', async () => {
  const { srv, user } = await cluster();
  await operator(srv);
  await createRun(user, 'a-run-name-that-is-far-too-long-for-pods-x', runSpec());
  const run = await waitFor(
    'InvalidName',
    () =>
      condition(getRun(srv, 'a-run-name-that-is-far-too-long-for-pods-x'), 'Degraded')?.reason === 'InvalidName' &&
      getRun(srv, 'a-run-name-that-is-far-too-long-for-pods-x'),
  );
  assert.match(condition(run, 'Degraded')!.message, /has 42 characters; at most 40/);
  assert.deepEqual(jobNames(srv), []);
});

test('a failing watch restarts the informer (get_operator_informer_restarts_total); the operator goes on', async () => {
  const { srv, user } = await cluster();
  const { op, started, registry } = startOperator(srv, 'op-w');
  cleanup.push(() => op.stop());
  await started;
  srv.failNext('watch', 'batch/jobs', 500, 1);
  srv.closeWatches(); // every watch reconnects; the jobs one gets a 500, which stops a bare client-node informer
  const restarts = async () =>
    Number(/get_operator_informer_restarts_total\{resource="jobs"\} (\d+)/.exec(await registry.metrics())?.[1] ?? 0);
  await waitForAsync('an informer restart counted', async () => (await restarts()) >= 1);
  await createRun(user, 'r11', runSpec());
  await waitFor('datagen Job', () => getJob(srv, 'r11-datagen'));
  await completeJob(srv, 'r11-datagen'); // seen only through the restarted jobs watch
  await waitFor('train Job', () => getJob(srv, 'r11-train'));
});
