// reconcileEndpoint against the in-memory API server, through the real @kubernetes/client-node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ANNOTATIONS, GROUP, RUN, API_VERSION } from '../../../src/operator/api/v1alpha1/group.js';
import { endpointsForRun, SETTLING_POLL_MS } from '../../../src/operator/controllers/endpoint/reconcile.js';
import {
  availableStatus,
  cfgOf,
  conditionOf,
  DIGEST_A,
  DIGEST_B,
  harness,
  MODEL_URI,
  NS,
  type Harness,
} from './helpers.js';
import type { JsonObject } from '../../json.js';

const HPA = { group: 'autoscaling', plural: 'horizontalpodautoscalers', namespace: NS };
const SO = { group: 'keda.sh', plural: 'scaledobjects', namespace: NS };
const DEP = { group: 'apps', plural: 'deployments', namespace: NS };
const cond = (h: Harness, name: string, type: string) => {
  const c = conditionOf(h.endpoint(name), type);
  return c && `${c.status} ${c.reason}`;
};
const envOf = (d: JsonObject, k: string) =>
  d.spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === k)?.value;

async function withHarness(cfg: ReturnType<typeof cfgOf>, fn: (h: Harness) => Promise<void>): Promise<void> {
  const h = await harness(cfg);
  try {
    await fn(h);
    assert.deepEqual(h.unauthorized(), [], 'every request the controller made is allowed by operatorRules');
  } finally {
    await h.close();
  }
}

test('create → owned Deployment, Service, Creating; available Deployment → Ready; a second pass writes nothing', () =>
  withHarness(cfgOf(), async (h) => {
    await h.createEndpoint('mnist', { model: { uri: MODEL_URI, digest: DIGEST_A }, replicas: 2 });
    const uid = h.endpoint('mnist').metadata.uid;
    assert.deepEqual(await h.reconcile('mnist'), { requeueAfterMs: SETTLING_POLL_MS });
    const d = h.deployment('mnist')!;
    assert.equal(d.spec.replicas, 2);
    assert.equal(d.metadata.ownerReferences[0].uid, uid);
    assert.equal(d.spec.template.metadata.annotations[ANNOTATIONS.modelDigest], DIGEST_A);
    const svc = h.srv.getObject({ plural: 'services', namespace: NS, name: 'mnist' })!;
    assert.equal(svc.metadata.ownerReferences[0].uid, uid);
    assert.equal(svc.spec.ports[0].port, 8080);
    assert.equal(h.srv.listObjects(HPA).length, 0, 'no autoscaling → no HPA');
    let st = h.endpoint('mnist').status;
    assert.equal(st.url, 'http://mnist.ml.svc:8080');
    assert.equal(st.model, MODEL_URI);
    assert.equal(st.modelDigest, DIGEST_A);
    assert.equal(st.observedGeneration, 1);
    assert.equal(cond(h, 'mnist', 'Ready'), 'False Creating');
    assert.equal(cond(h, 'mnist', 'Progressing'), 'True Creating');
    assert.equal(cond(h, 'mnist', 'Degraded'), 'False AsExpected');

    h.srv.setStatus({ ...DEP, name: 'mnist' }, availableStatus(1, 2));
    assert.equal(await h.reconcile('mnist'), undefined, 'nothing to poll once rolled out');
    st = h.endpoint('mnist').status;
    assert.equal(cond(h, 'mnist', 'Ready'), 'True Available');
    assert.equal(cond(h, 'mnist', 'Progressing'), 'False RolloutComplete');
    assert.deepEqual([st.replicas, st.readyReplicas], [2, 2]);
    assert.equal(conditionOf(h.endpoint('mnist'), 'Ready')!.lastTransitionTime, '2026-11-30T12:00:00Z');

    const mark = h.srv.requests.length;
    await h.reconcile('mnist');
    assert.deepEqual(h.writesSince(mark), [], 'idempotent: no writes when nothing changed');
    assert.equal(h.srv.requests.length, mark, 'and no reads either (everything came from the caches)');
  }));

test('HPA; a new digest patches the template without fighting the autoscaler; Ready reflects the rollout', () =>
  withHarness(cfgOf(), async (h) => {
    await h.createEndpoint('ep', {
      model: { uri: MODEL_URI, digest: DIGEST_A },
      autoscaling: { minReplicas: 2, maxReplicas: 5, targetQueueDepth: 4 },
    });
    await h.reconcile('ep');
    const hpa = h.srv.getObject({ ...HPA, name: 'ep' })!;
    assert.equal(hpa.metadata.ownerReferences[0].kind, 'GenerationEndpoint');
    assert.deepEqual([hpa.spec.minReplicas, hpa.spec.maxReplicas, hpa.spec.metrics.length], [2, 5, 2]);
    assert.equal(h.deployment('ep')!.spec.replicas, 2);
    h.srv.setStatus({ ...DEP, name: 'ep' }, availableStatus(1, 2));
    // The HPA scales the Deployment to 4.
    await h.ctx.apis.apps.patchNamespacedDeployment({
      namespace: NS,
      name: 'ep',
      body: [{ op: 'replace', path: '/spec/replicas', value: 4 }],
    });
    const gen = h.deployment('ep')!.metadata.generation;
    h.srv.setStatus({ ...DEP, name: 'ep' }, availableStatus(gen, 4));
    await h.reconcile('ep');
    assert.equal(cond(h, 'ep', 'Ready'), 'True Available');

    await h.patchEndpoint('ep', { model: { digest: DIGEST_B } });
    const mark = h.srv.requests.length;
    assert.deepEqual(await h.reconcile('ep'), { requeueAfterMs: SETTLING_POLL_MS });
    assert.deepEqual(h.writesSince(mark), [
      'patch apps/deployments',
      'patch/status distill.getdistill.dev/generationendpoints',
    ]);
    const d = h.deployment('ep')!;
    assert.equal(d.spec.template.metadata.annotations[ANNOTATIONS.modelDigest], DIGEST_B);
    assert.equal(d.spec.replicas, 4, 'replicas left to the HPA');
    assert.equal(d.metadata.generation, gen + 1);
    assert.deepEqual(
      h.events.map((e) => e.reason),
      ['ModelRollout'],
    );
    assert.equal(cond(h, 'ep', 'Ready'), 'False RollingOut');
    assert.equal(cond(h, 'ep', 'Progressing'), 'True RollingOut');
    assert.equal(h.endpoint('ep').status.modelDigest, DIGEST_B);

    h.srv.setStatus({ ...DEP, name: 'ep' }, availableStatus(gen + 1, 4));
    await h.reconcile('ep');
    assert.equal(cond(h, 'ep', 'Ready'), 'True Available');
  }));

test('switching to KEDA creates the ScaledObject and deletes the HPA; scaled to zero is Ready', () =>
  withHarness(cfgOf({ keda: true }), async (h) => {
    await h.createEndpoint('ep', { model: { uri: MODEL_URI }, autoscaling: { minReplicas: 1, maxReplicas: 3 } });
    await h.reconcile('ep');
    assert.equal(h.srv.listObjects(HPA).length, 1);
    await h.patchEndpoint('ep', { autoscaling: { minReplicas: 0, keda: { serverAddress: 'http://prom:9090' } } });
    await h.reconcile('ep');
    assert.equal(h.srv.listObjects(HPA).length, 0, 'the HPA is deleted');
    const so = h.srv.getObject({ ...SO, name: 'ep' })!;
    assert.equal(so.metadata.ownerReferences[0].uid, h.endpoint('ep').metadata.uid);
    assert.deepEqual([so.spec.minReplicaCount, so.spec.maxReplicaCount], [0, 3]);
    assert.equal(so.spec.triggers[0].metadata.query, 'sum(get_queue_depth{namespace="ml",pod=~"ep-.*"}) or vector(0)');
    // KEDA scales the Deployment to zero.
    await h.ctx.apis.apps.patchNamespacedDeployment({
      namespace: NS,
      name: 'ep',
      body: [{ op: 'replace', path: '/spec/replicas', value: 0 }],
    });
    h.srv.setStatus(
      { ...DEP, name: 'ep' },
      { observedGeneration: h.deployment('ep')!.metadata.generation, replicas: 0 },
    );
    assert.equal(await h.reconcile('ep'), undefined);
    assert.equal(cond(h, 'ep', 'Ready'), 'True ScaledToZero');
    assert.equal(h.deployment('ep')!.spec.replicas, 0, "KEDA's count kept");
    // Back to a plain HPA: the ScaledObject goes.
    await h.patchEndpoint('ep', { autoscaling: { minReplicas: 1, keda: null } });
    await h.reconcile('ep');
    assert.equal(h.srv.listObjects(SO).length, 0);
    assert.equal(h.srv.listObjects(HPA).length, 1);
  }));

test("keda without the operator's keda flag → Degraded KedaNotEnabled, no autoscaler, the Deployment served", () =>
  withHarness(cfgOf(), async (h) => {
    await h.createEndpoint('ep', {
      model: { uri: MODEL_URI },
      autoscaling: { minReplicas: 0, keda: { serverAddress: 'http://prom:9090' } },
    });
    await h.reconcile('ep');
    assert.equal(cond(h, 'ep', 'Degraded'), 'True KedaNotEnabled');
    assert.match(conditionOf(h.endpoint('ep'), 'Degraded')!.message, /install KEDA.*keda\.enabled/);
    assert.equal(h.srv.listObjects(SO).length + h.srv.listObjects(HPA).length, 0);
    assert.equal(h.deployment('ep')!.spec.replicas, 1);
    assert.deepEqual(
      h.events.map((e) => `${e.type} ${e.reason}`),
      ['Warning KedaNotEnabled'],
    );
    assert.equal(h.srv.count('create', 'keda.sh/scaledobjects'), 0);
  }));

test("model.run: WaitingForModel until the run exports, then a Deployment of the run's model", () =>
  withHarness(cfgOf(), async (h) => {
    const runs = { group: GROUP, version: 'v1alpha1', namespace: NS, plural: RUN.plural };
    await h.ctx.apis.custom.createNamespacedCustomObject({
      ...runs,
      body: { apiVersion: API_VERSION, kind: RUN.kind, metadata: { name: 'r1' }, spec: {} },
    });
    await h.createEndpoint('served', { model: { run: 'r1' } });
    await h.createEndpoint('other', { model: { uri: MODEL_URI } });
    assert.deepEqual(endpointsForRun(h.ctx, NS, 'r1'), [`${NS}/served`]);
    assert.deepEqual(endpointsForRun(h.ctx, NS, 'r2'), []);

    assert.equal(await h.reconcile('served'), undefined, 'the run watch requeues, not a poll');
    assert.equal(cond(h, 'served', 'Ready'), 'False WaitingForModel');
    assert.equal(cond(h, 'served', 'Progressing'), 'True WaitingForModel');
    assert.equal(h.srv.listObjects(DEP).length, 0);

    const model = 's3://runs/r1/model.onnx';
    h.srv.setStatus(
      { group: GROUP, plural: RUN.plural, namespace: NS, name: 'r1' },
      { stage: 'Evaluating', artifacts: { model, modelDigest: DIGEST_B } },
    );
    await h.reconcile('served');
    const d = h.deployment('served')!;
    assert.equal(envOf(d, 'GET_DISTILL_MODEL'), model);
    assert.equal(d.spec.template.metadata.annotations[ANNOTATIONS.modelDigest], DIGEST_B);
    assert.deepEqual([h.endpoint('served').status.model, h.endpoint('served').status.modelDigest], [model, DIGEST_B]);
    assert.equal(cond(h, 'served', 'Ready'), 'False Creating');
  }));

test('invalid spec → Degraded InvalidSpec naming the field, no children', () =>
  withHarness(cfgOf(), async (h) => {
    await h.createEndpoint('bad', { model: { uri: MODEL_URI }, batching: { maxBatchSize: 0 } });
    await h.reconcile('bad');
    assert.equal(cond(h, 'bad', 'Degraded'), 'True InvalidSpec');
    assert.equal(cond(h, 'bad', 'Ready'), 'False InvalidSpec');
    assert.match(conditionOf(h.endpoint('bad'), 'Degraded')!.message, /^spec\.batching\.maxBatchSize: /);
    assert.deepEqual(
      h.writesSince(0).filter((w) => !w.includes('generationendpoints')),
      [],
    );
    const mark = h.srv.requests.length;
    await h.reconcile('bad');
    assert.deepEqual(h.writesSince(mark), [], 'the same status is not written twice');
  }));

test('a same-named Deployment not owned is left alone (NameConflict); stale template keys removed on patch', () =>
  withHarness(cfgOf(), async (h) => {
    await h.ctx.apis.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'taken' },
        spec: {
          selector: { matchLabels: { app: 'x' } },
          template: { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'c', image: 'other' }] } },
        },
      },
    });
    await h.createEndpoint('taken', { model: { uri: MODEL_URI } });
    await h.reconcile('taken');
    assert.equal(cond(h, 'taken', 'Degraded'), 'True NameConflict');
    assert.equal(cond(h, 'taken', 'Ready'), 'False NameConflict');
    assert.equal(h.deployment('taken')!.spec.template.spec.containers[0].image, 'other');

    await h.createEndpoint('placed', {
      model: { uri: MODEL_URI },
      resources: { nodeSelector: { pool: 'gpu' }, runtimeClassName: 'nvidia' },
    });
    await h.reconcile('placed');
    assert.deepEqual(h.deployment('placed')!.spec.template.spec.nodeSelector, { pool: 'gpu' });
    await h.patchEndpoint('placed', { resources: null, replicas: 3 });
    await h.reconcile('placed');
    const d = h.deployment('placed')!;
    assert.equal(d.spec.template.spec.nodeSelector, undefined);
    assert.equal(d.spec.template.spec.runtimeClassName, undefined);
    assert.equal(d.spec.replicas, 3);
  }));

test('a cache behind the API: create answers AlreadyExists, the object is read back and left as is', () =>
  withHarness(cfgOf(), async (h) => {
    await h.createEndpoint('lag', { model: { uri: MODEL_URI } });
    await h.reconcile('lag');
    h.ctx.caches.deployments = { get: () => undefined, list: () => [] };
    h.ctx.caches.services = { get: () => undefined, list: () => [] };
    const mark = h.srv.requests.length;
    await h.reconcile('lag');
    assert.deepEqual(
      h.srv.requests.slice(mark).map((r) => `${r.verb} ${r.resource}`),
      ['create apps/deployments', 'get apps/deployments', 'create /services', 'get /services'],
    );
  }));
