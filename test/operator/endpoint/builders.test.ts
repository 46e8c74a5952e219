// Pure builders of the GenerationEndpoint's children: exact fields, and every object validates
// against the Kubernetes / KEDA OpenAPI schemas (kubernetes-models).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Service } from 'kubernetes-models/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import type { V1Deployment } from '@kubernetes/client-node';
import { GenerationEndpointSpecSchema } from '../../../src/operator/api/v1alpha1/endpoint.js';
import { ANNOTATIONS, LABELS } from '../../../src/operator/api/v1alpha1/group.js';
import {
  buildDeployment,
  buildHpa,
  buildScaledObject,
  buildService,
  defaultKedaQuery,
  deploymentPatch,
  endpointUrl,
  quantity,
  replaceWith,
  rolloutDigest,
  TERMINATION_GRACE_S,
} from '../../../src/operator/controllers/endpoint/builders.js';
import { cfgOf, endpointObject, DIGEST_A, DIGEST_B, MODEL_URI, NS } from './helpers.js';
import type { JsonObject } from '../../json.js';

const spec = (o: Record<string, unknown> = {}) =>
  GenerationEndpointSpecSchema.parse({ model: { uri: MODEL_URI }, ...o });
const EP = endpointObject({});
const cfg = cfgOf({ gpuResourceName: 'amd.com/gpu', s3Endpoint: 'http://rgw.ceph:8080' });
const validDeployment = (d: unknown) => new Deployment(structuredClone(d) as never).validate();
const envMap = (d: V1Deployment) =>
  Object.fromEntries(d.spec!.template.spec!.containers[0].env!.map((e) => [e.name, e.value ?? e.valueFrom]));

test('Deployment: env, probes, lifecycle, rollout strategy, labels, owner, default GPU resources', () => {
  const s = spec({
    modelName: 'mnist-get',
    replicas: 3,
    batching: { maxBatchSize: 8, maxQueueDelayMs: 2, maxQueueSize: 100 },
    store: { region: 'eu-1', credentialsSecret: 's3-creds' },
  });
  const d = buildDeployment(EP, s, { uri: MODEL_URI, digest: DIGEST_A }, cfg);
  validDeployment(d);
  assert.equal(d.metadata!.name, 'mnist');
  assert.equal(d.metadata!.namespace, NS);
  assert.deepEqual(d.metadata!.ownerReferences, [
    {
      apiVersion: 'distill.getdistill.dev/v1alpha1',
      kind: 'GenerationEndpoint',
      name: 'mnist',
      uid: 'uid-mnist',
      controller: true,
      blockOwnerDeletion: true,
    },
  ]);
  assert.equal(d.metadata!.labels![LABELS.endpoint], 'mnist');
  assert.equal(d.metadata!.labels![LABELS.component], 'inference');
  assert.match(d.metadata!.annotations![ANNOTATIONS.specHash], /^[0-9a-f]{64}$/);
  const sp = d.spec!;
  assert.equal(sp.replicas, 3);
  assert.deepEqual(sp.selector.matchLabels, {
    [LABELS.instance]: 'mnist',
    [LABELS.component]: 'inference',
    [LABELS.endpoint]: 'mnist',
  });
  for (const [k, v] of Object.entries(sp.selector.matchLabels!)) assert.equal(sp.template.metadata!.labels![k], v);
  assert.deepEqual(sp.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
  assert.equal(sp.minReadySeconds, 5);
  assert.equal(sp.progressDeadlineSeconds, 600);
  assert.equal(sp.template.metadata!.annotations![ANNOTATIONS.modelDigest], DIGEST_A);

  const c = sp.template.spec!.containers[0];
  assert.equal(c.name, 'inference');
  assert.equal(c.image, 'ghcr.io/get-distill/get-distill-inference:0.1.0');
  assert.deepEqual(c.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
  assert.deepEqual(envMap(d), {
    GET_DISTILL_MODEL: MODEL_URI,
    GET_DISTILL_MODEL_NAME: 'mnist-get',
    GET_DISTILL_HOST: '0.0.0.0',
    GET_DISTILL_PORT: '8080',
    GET_DISTILL_MAX_BATCH_SIZE: '8',
    GET_DISTILL_MAX_QUEUE_DELAY_MS: '2',
    GET_DISTILL_MAX_QUEUE_SIZE: '100',
    GET_DISTILL_MAX_IMAGES_PER_REQUEST: '8',
    GET_DISTILL_SHUTDOWN_GRACE_MS: '20000',
    GET_DISTILL_S3_ENDPOINT: 'http://rgw.ceph:8080',
    AWS_REGION: 'eu-1',
    AWS_ACCESS_KEY_ID: { secretKeyRef: { name: 's3-creds', key: 'AWS_ACCESS_KEY_ID' } },
    AWS_SECRET_ACCESS_KEY: { secretKeyRef: { name: 's3-creds', key: 'AWS_SECRET_ACCESS_KEY' } },
    GET_DISTILL_TERMINATION_LOG: '/dev/termination-log',
    GET_DISTILL_LOG_LEVEL: 'info',
  });
  assert.deepEqual(c.readinessProbe, {
    httpGet: { path: '/v2/health/ready', port: 'http' },
    periodSeconds: 5,
    timeoutSeconds: 3,
    failureThreshold: 3,
  });
  assert.equal(c.livenessProbe!.httpGet!.path, '/v2/health/live');
  assert.ok(c.livenessProbe!.initialDelaySeconds! >= 30 && c.livenessProbe!.timeoutSeconds! >= 10);
  // The startup probe allows 10 minutes of model download + warm-up before liveness applies.
  assert.equal(c.startupProbe!.httpGet!.path, '/v2/health/live');
  assert.equal(c.startupProbe!.periodSeconds! * c.startupProbe!.failureThreshold!, 600);
  assert.deepEqual(c.lifecycle, { preStop: { exec: { command: ['sleep', '5'] } } });
  // SIGKILL only after preStop (5 s) + the service's shutdown grace (20 s).
  assert.equal(sp.template.spec!.terminationGracePeriodSeconds, TERMINATION_GRACE_S);
  assert.ok(TERMINATION_GRACE_S > 5 + 20);
  // Default resources: 1 GPU of the operator's resource name; requests = limits.
  assert.deepEqual(c.resources, {
    requests: { cpu: '2', memory: '8Gi', 'amd.com/gpu': '1' },
    limits: { cpu: '2', memory: '8Gi', 'amd.com/gpu': '1' },
  });
});

test('Deployment: explicit resources, placement; max images per request = service default (large batches)', () => {
  const s = spec({ resources: { gpu: { count: 0 }, cpu: '4', memory: '2Gi', nodeSelector: { pool: 'cpu' } } });
  const d = buildDeployment(EP, s, { uri: MODEL_URI }, cfg);
  validDeployment(d);
  assert.deepEqual(d.spec!.template.spec!.containers[0].resources!.limits, { cpu: '4', memory: '2Gi' });
  assert.deepEqual(d.spec!.template.spec!.nodeSelector, { pool: 'cpu' });
  assert.equal(envMap(d).GET_DISTILL_MAX_IMAGES_PER_REQUEST, '16');
  assert.equal(envMap(d).GET_DISTILL_MAX_BATCH_SIZE, '32');
});

test('Deployment: the model digest annotation rolls; without a digest it is the sha256 of the URI', () => {
  const s = spec();
  const a = buildDeployment(EP, s, { uri: MODEL_URI, digest: DIGEST_A }, cfg);
  const b = buildDeployment(EP, s, { uri: MODEL_URI, digest: DIGEST_B }, cfg);
  assert.equal(b.spec!.template.metadata!.annotations![ANNOTATIONS.modelDigest], DIGEST_B);
  assert.notEqual(a.metadata!.annotations![ANNOTATIONS.specHash], b.metadata!.annotations![ANNOTATIONS.specHash]);
  assert.deepEqual(buildDeployment(EP, s, { uri: MODEL_URI, digest: DIGEST_A }, cfg), a, 'same inputs, same object');

  const uriHash = `sha256:${createHash('sha256').update(MODEL_URI).digest('hex')}`;
  assert.equal(rolloutDigest({ uri: MODEL_URI }), uriHash);
  const u1 = buildDeployment(EP, s, { uri: MODEL_URI }, cfg);
  const u2 = buildDeployment(EP, s, { uri: 's3://models/v2/model.onnx' }, cfg);
  assert.equal(u1.spec!.template.metadata!.annotations![ANNOTATIONS.modelDigest], uriHash);
  assert.notEqual(u2.spec!.template.metadata!.annotations![ANNOTATIONS.modelDigest], uriHash);
});

test('Deployment replicas: spec.replicas, or minReplicas (≥ 1) with autoscaling, which is then not hashed', () => {
  const m = { uri: MODEL_URI };
  assert.equal(buildDeployment(EP, spec({ replicas: 0 }), m, cfg).spec!.replicas, 0);
  assert.equal(
    buildDeployment(EP, spec({ autoscaling: { minReplicas: 3, maxReplicas: 6 } }), m, cfg).spec!.replicas,
    3,
  );
  const keda = { serverAddress: 'http://prom:9090' };
  assert.equal(
    buildDeployment(EP, spec({ autoscaling: { minReplicas: 0, maxReplicas: 6, keda } }), m, cfg).spec!.replicas,
    1,
  );
  const hash = (o: Record<string, unknown>) =>
    buildDeployment(EP, spec(o), m, cfg).metadata!.annotations![ANNOTATIONS.specHash];
  assert.notEqual(hash({ replicas: 1 }), hash({ replicas: 2 }));
  // An autoscaled Deployment's hash ignores spec.replicas (the HPA owns the count).
  assert.equal(
    hash({ replicas: 1, autoscaling: { minReplicas: 2 } }),
    hash({ replicas: 5, autoscaling: { minReplicas: 2 } }),
  );
});

test("Service: ClusterIP 8080 http → the pods' http port, selecting the pod labels", () => {
  const s = buildService(EP);
  new Service(structuredClone(s) as never).validate();
  assert.deepEqual(s.spec, {
    type: 'ClusterIP',
    ports: [{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }],
    selector: { [LABELS.instance]: 'mnist', [LABELS.component]: 'inference', [LABELS.endpoint]: 'mnist' },
  });
  assert.equal(s.metadata!.ownerReferences![0].uid, 'uid-mnist');
  assert.equal(endpointUrl('mnist', NS), 'http://mnist.ml.svc:8080');
});

test('HPA: CPU utilisation, plus average queue depth per pod when targetQueueDepth is set', () => {
  const plain = buildHpa(
    EP,
    spec({ autoscaling: { minReplicas: 2, maxReplicas: 7, targetCPUUtilizationPercentage: 60 } }),
  );
  new HorizontalPodAutoscaler(structuredClone(plain) as never).validate();
  assert.deepEqual(plain.spec, {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'mnist' },
    minReplicas: 2,
    maxReplicas: 7,
    metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } } }],
    behavior: { scaleDown: { stabilizationWindowSeconds: 300 } },
  });
  const q = buildHpa(EP, spec({ autoscaling: { targetQueueDepth: 2.5 } }));
  new HorizontalPodAutoscaler(structuredClone(q) as never).validate();
  assert.deepEqual(q.spec!.metrics![1], {
    type: 'Pods',
    pods: { metric: { name: 'get_queue_depth' }, target: { type: 'AverageValue', averageValue: '2500m' } },
  });
  assert.equal(q.spec!.minReplicas, 1);
  assert.equal(quantity(4), '4');
  assert.equal(quantity(0.1234), '124m');
  assert.throws(() => buildHpa(EP, spec()), /autoscaling is not set/);
});

test("ScaledObject: one Prometheus trigger on the endpoint's queue depth, thresholds as strings", () => {
  const so = buildScaledObject(
    EP,
    spec({
      autoscaling: {
        minReplicas: 0,
        maxReplicas: 5,
        keda: { serverAddress: 'http://prom.monitoring:9090', threshold: 4, activationThreshold: 0.5 },
      },
    }),
  );
  new ScaledObject(structuredClone(so) as never).validate();
  assert.equal(so.apiVersion, 'keda.sh/v1alpha1');
  assert.equal(so.metadata.ownerReferences![0].kind, 'GenerationEndpoint');
  assert.deepEqual(so.spec, {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'mnist' },
    minReplicaCount: 0,
    maxReplicaCount: 5,
    pollingInterval: 15,
    cooldownPeriod: 300,
    triggers: [
      {
        type: 'prometheus',
        metadata: {
          serverAddress: 'http://prom.monitoring:9090',
          query: 'sum(get_queue_depth{namespace="ml",pod=~"mnist-.*"}) or vector(0)',
          threshold: '4',
          activationThreshold: '0.5',
        },
      },
    ],
  });
  assert.equal(defaultKedaQuery('ns', 'x'), 'sum(get_queue_depth{namespace="ns",pod=~"x-.*"}) or vector(0)');
  const custom = buildScaledObject(
    EP,
    spec({ autoscaling: { keda: { serverAddress: 'http://p:9090', query: 'sum(rate(x[1m]))' } } }),
  );
  assert.equal((custom.spec.triggers as { metadata: { query: string } }[])[0].metadata.query, 'sum(rate(x[1m]))');
});

test('replaceWith nulls removed keys (undefined = absent); deploymentPatch leaves replicas to the autoscaler', () => {
  assert.deepEqual(replaceWith({ a: 1, b: { c: 2, d: 3 }, e: [1], f: undefined }, { a: 1, b: { c: 4 }, e: [2] }), {
    a: 1,
    b: { c: 4, d: null },
    e: [2],
  });
  assert.deepEqual(replaceWith(undefined, { a: 1 }), { a: 1 });
  const m = { uri: MODEL_URI };
  const old = buildDeployment(EP, spec({ resources: { nodeSelector: { pool: 'gpu' } } }), m, cfg);
  const next = buildDeployment(EP, spec({ replicas: 4 }), m, cfg);
  const p = deploymentPatch(old, next, false) as { spec: JsonObject };
  assert.equal(p.spec.replicas, 4);
  assert.equal(p.spec.template.spec.nodeSelector, null);
  assert.equal(p.spec.selector, undefined, 'the selector is immutable');
  assert.equal('replicas' in (deploymentPatch(old, next, true) as { spec: object }).spec, false);
});
