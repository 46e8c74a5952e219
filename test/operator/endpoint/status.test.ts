// Pure status logic: spec checks and the Ready / Progressing / Degraded conditions from a Deployment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { parseEndpointSpec, podFailure, servingState } from '../../../src/operator/controllers/endpoint/status.js';
import { availableStatus, MODEL_URI } from './helpers.js';

const dep = (replicas: number, generation: number, status?: object): V1Deployment =>
  ({ metadata: { name: 'mnist', generation }, spec: { replicas, selector: {}, template: {} }, status }) as V1Deployment;
const brief = (s: ReturnType<typeof servingState>) =>
  [
    s.ready.status,
    s.ready.reason,
    s.progressing.status,
    s.progressing.reason,
    s.degraded.status,
    s.degraded.reason,
  ].join(' ');

test('parseEndpointSpec: defaults applied; invalid fields and cross-field rules named', () => {
  const ok = parseEndpointSpec({ model: { uri: MODEL_URI } });
  assert.ok(ok.ok);
  if (ok.ok) assert.deepEqual([ok.spec.modelName, ok.spec.replicas, ok.spec.batching.maxBatchSize], ['get', 1, 32]);
  const bad = (raw: unknown) => {
    const r = parseEndpointSpec(raw);
    assert.equal(r.ok, false);
    return r.ok ? '' : r.message;
  };
  assert.match(bad({ model: { uri: MODEL_URI }, batching: { maxBatchSize: 0 } }), /^spec\.batching\.maxBatchSize: /);
  assert.match(bad({ model: { uri: 'http://x/model.onnx' } }), /^spec\.model\.uri: must be s3:\/\/bucket\/prefix/);
  assert.equal(
    bad({ model: { uri: MODEL_URI, run: 'r1' } }),
    'spec.model: give exactly one of model.uri and model.run',
  );
  assert.equal(bad({ model: {} }), 'spec.model: give exactly one of model.uri and model.run');
  assert.equal(
    bad({ model: { run: 'r1' }, autoscaling: { minReplicas: 5, maxReplicas: 2 } }),
    'spec.autoscaling.minReplicas: 5 exceeds maxReplicas 2',
  );
  assert.match(bad({ model: { run: 'r1' }, autoscaling: { minReplicas: 0 } }), /needs autoscaling\.keda/);
  assert.match(bad(undefined), /^spec\.model: /);
});

test('servingState: creating, rolled out, rolling out, scaled to zero, deadline exceeded', () => {
  assert.equal(brief(servingState(dep(2, 1), 'fixed', [])), 'False Creating True Creating False AsExpected');
  const ready = servingState(dep(2, 1, availableStatus(1, 2)), 'fixed', []);
  assert.equal(brief(ready), 'True Available False RolloutComplete False AsExpected');
  assert.deepEqual([ready.replicas, ready.readyReplicas, ready.settling], [2, 2, false]);
  // A new template (generation 2) not yet observed: old pods still serve, but the rollout is not done.
  const rolling = servingState(dep(2, 2, availableStatus(1, 2)), 'hpa', []);
  assert.equal(brief(rolling), 'False RollingOut True RollingOut False AsExpected');
  assert.equal(rolling.settling, true);
  // Observed, one of two updated, the old pod still running (maxSurge 1 → 3 pods).
  const half = servingState(dep(2, 2, { ...availableStatus(2, 2), replicas: 3, updatedReplicas: 1 }), 'hpa', []);
  assert.equal(half.ready.reason, 'RollingOut');
  assert.match(half.progressing.message, /^1\/2 replicas updated, 2 available/);
  const zero = { observedGeneration: 3, conditions: [{ type: 'Available', status: 'True' }] };
  assert.equal(
    brief(servingState(dep(0, 3, zero), 'keda', [])),
    'True ScaledToZero False ScaledToZero False AsExpected',
  );
  assert.equal(
    brief(servingState(dep(0, 3, zero), 'fixed', [])),
    'False ScaledToZero False ScaledToZero False AsExpected',
  );
  const stuck = {
    ...availableStatus(2, 1),
    updatedReplicas: 0,
    conditions: [
      {
        type: 'Progressing',
        status: 'False',
        reason: 'ProgressDeadlineExceeded',
        message: 'ReplicaSet "mnist-x" has timed out progressing.',
      },
    ],
  };
  const s = servingState(dep(1, 2, stuck), 'fixed', []);
  assert.equal(brief(s), 'False RollingOut False ProgressDeadlineExceeded True ProgressDeadlineExceeded');
  assert.equal(s.settling, false, 'nothing to poll for: only a spec change helps');
});

test('podFailure / Degraded PodsFailing from a crash-looping container', () => {
  const pod = (reason: string, deleting = false): V1Pod => ({
    metadata: { name: 'mnist-abc', ...(deleting ? { deletionTimestamp: new Date() } : {}) },
    status: {
      containerStatuses: [
        {
          name: 'inference',
          image: 'i',
          imageID: '',
          ready: false,
          restartCount: 4,
          state: { waiting: { reason } },
          lastState: { terminated: { exitCode: 2, reason: 'Error', message: 'model not found' } },
        },
      ],
    },
  });
  assert.equal(podFailure([pod('ContainerCreating')]), undefined);
  assert.equal(podFailure([pod('CrashLoopBackOff', true)]), undefined, 'terminating pods are ignored');
  assert.equal(
    podFailure([pod('CrashLoopBackOff')]),
    'mnist-abc/inference: CrashLoopBackOff (last exit 2 Error: model not found)',
  );
  const s = servingState(dep(1, 1, { observedGeneration: 1, replicas: 1, updatedReplicas: 1 }), 'fixed', [
    pod('CrashLoopBackOff'),
  ]);
  assert.equal(brief(s), 'False RollingOut True RollingOut True PodsFailing');
});
