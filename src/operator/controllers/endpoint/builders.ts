/**
 * Pure builders of a GenerationEndpoint's children: the inference Deployment, its ClusterIP Service,
 * and the autoscaler (an autoscaling/v2 HPA, or a KEDA ScaledObject on a Prometheus queue-depth query).
 * Same inputs → same objects (and the same spec hash), so reconciles are idempotent. Modelled on
 * KServe's raw deployment mode (../shared/reference/peers.md §1a KServe, KEDA).
 */
import { createHash } from 'node:crypto';
import type {
  V1Deployment,
  V1EnvVar,
  V1Probe,
  V1Service,
  V2HorizontalPodAutoscaler,
  V2MetricSpec,
} from '@kubernetes/client-node';
import { ANNOTATIONS, ENDPOINT, LABELS, MANAGER } from '../../api/v1alpha1/group.js';
import { ResourcesSchema, type ResourcesSpec } from '../../api/v1alpha1/common.js';
import type { GenerationEndpointSpec } from '../../api/v1alpha1/endpoint.js';
import type { OperatorConfig } from '../../config.js';
import { replaceWith, childMeta, specHash, type Owned } from '../meta.js';

export { replaceWith };
import { SERVICE_PORT, podSpec, serviceContainer, storeEnv } from '../pod.js';

/** app.kubernetes.io/component of every endpoint child. */
export const COMPONENT = 'inference';
/** Seconds the preStop hook sleeps: the endpoints controller takes the pod out of the Service first. */
export const PRESTOP_SLEEP_S = 5;
/** GET_DISTILL_SHUTDOWN_GRACE_MS: how long SIGTERM lets queued and running requests finish. */
export const SHUTDOWN_GRACE_MS = 20_000;
/** Pod terminationGracePeriodSeconds: preStop sleep + shutdown grace + 5 s margin before SIGKILL. */
export const TERMINATION_GRACE_S = PRESTOP_SLEEP_S + SHUTDOWN_GRACE_MS / 1000 + 5;
/** Most images in one request (the service default), capped by maxBatchSize as the service requires. */
const MAX_IMAGES_PER_REQUEST = 16;

/** The model a Deployment serves: its URI and, when known, its sha256 digest (`sha256:<hex>`). */
export interface ResolvedModel {
  uri: string;
  digest?: string;
}

/** How the endpoint is scaled: fixed replicas, an HPA, or a KEDA ScaledObject. */
export type ScalingMode = 'fixed' | 'hpa' | 'keda';

/** The scaling mode of a spec (keda whenever autoscaling.keda is given, enabled or not). */
export const scalingMode = (spec: GenerationEndpointSpec): ScalingMode =>
  !spec.autoscaling ? 'fixed' : spec.autoscaling.keda ? 'keda' : 'hpa';

/** Labels selecting the endpoint's pods: stable for its lifetime (a Deployment selector is immutable). */
export function selectorLabels(name: string): Record<string, string> {
  return { [LABELS.instance]: name, [LABELS.component]: COMPONENT, [LABELS.endpoint]: name };
}

/** Labels of every child (childMeta adds name, instance, managed-by). */
const childLabels = (name: string) => ({ [LABELS.component]: COMPONENT, [LABELS.endpoint]: name });

/**
 * The pod-template annotation that rolls the Deployment: the model digest, or `sha256:` of the URI
 * string when no digest is known (so a new URI rolls too).
 */
export function rolloutDigest(m: ResolvedModel): string {
  return m.digest ?? `sha256:${createHash('sha256').update(m.uri).digest('hex')}`;
}

/** spec.resources, else the schema defaults (1 GPU of cfg.gpuResourceName, 2 CPU, 8Gi). */
export const endpointResources = (spec: GenerationEndpointSpec): ResourcesSpec =>
  spec.resources ?? ResourcesSchema.parse({});

/**
 * Replicas a new Deployment starts with: spec.replicas, or minReplicas (at least 1: scale-from-zero proves the model
 * loads).
 */
export function initialReplicas(spec: GenerationEndpointSpec): number {
  return spec.autoscaling ? Math.max(1, spec.autoscaling.minReplicas) : spec.replicas;
}

/** The inference service's environment (src/serve/config.ts option names via envOf). */
export function inferenceEnv(spec: GenerationEndpointSpec, model: ResolvedModel, cfg: OperatorConfig): V1EnvVar[] {
  const b = spec.batching;
  return [
    { name: 'GET_DISTILL_MODEL', value: model.uri },
    { name: 'GET_DISTILL_MODEL_NAME', value: spec.modelName },
    { name: 'GET_DISTILL_HOST', value: '0.0.0.0' },
    { name: 'GET_DISTILL_PORT', value: String(SERVICE_PORT) },
    { name: 'GET_DISTILL_MAX_BATCH_SIZE', value: String(b.maxBatchSize) },
    { name: 'GET_DISTILL_MAX_QUEUE_DELAY_MS', value: String(b.maxQueueDelayMs) },
    { name: 'GET_DISTILL_MAX_QUEUE_SIZE', value: String(b.maxQueueSize) },
    // The service refuses maxImagesPerRequest > maxBatchSize; its default 16 would break small batches.
    { name: 'GET_DISTILL_MAX_IMAGES_PER_REQUEST', value: String(Math.min(MAX_IMAGES_PER_REQUEST, b.maxBatchSize)) },
    { name: 'GET_DISTILL_SHUTDOWN_GRACE_MS', value: String(SHUTDOWN_GRACE_MS) },
    ...storeEnv(spec.store, cfg),
  ];
}

const httpGet = (path: string, p: Omit<V1Probe, 'httpGet'>): V1Probe => ({ httpGet: { path, port: 'http' }, ...p });

/**
 * The Deployment `<name>`. Rolling update with maxUnavailable 0 / maxSurge 1: old pods serve until a
 * pod of the new model is ready. `replicas` is spec.replicas, or with autoscaling the count to create
 * with ({@link initialReplicas}; patches leave it out: the HPA/KEDA owns it, and it is not hashed).
 */
export function buildDeployment(
  ep: Owned,
  spec: GenerationEndpointSpec,
  model: ResolvedModel,
  cfg: OperatorConfig,
): V1Deployment {
  const name = ep.metadata!.name!;
  const r = endpointResources(spec);
  const container = serviceContainer(COMPONENT, cfg.inferenceImage, inferenceEnv(spec, model, cfg), r, cfg, {
    ports: [{ name: 'http', containerPort: SERVICE_PORT, protocol: 'TCP' }],
    // Startup covers the model download + session creation + warm-up (up to 10 min) before liveness applies.
    startupProbe: httpGet('/v2/health/live', { periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 120 }),
    livenessProbe: httpGet('/v2/health/live', {
      initialDelaySeconds: 30,
      periodSeconds: 10,
      timeoutSeconds: 10,
      failureThreshold: 6,
    }),
    readinessProbe: httpGet('/v2/health/ready', { periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3 }),
    lifecycle: { preStop: { exec: { command: ['sleep', String(PRESTOP_SLEEP_S)] } } },
  });
  const podLabels = { [LABELS.name]: 'get-distill', [LABELS.managedBy]: MANAGER, ...selectorLabels(name) };
  const body = {
    selector: { matchLabels: selectorLabels(name) },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
    minReadySeconds: 5,
    progressDeadlineSeconds: 600,
    revisionHistoryLimit: 5,
    template: {
      metadata: {
        labels: podLabels,
        annotations: {
          [ANNOTATIONS.modelDigest]: rolloutDigest(model),
          'prometheus.io/scrape': 'true',
          'prometheus.io/port': String(SERVICE_PORT),
          'prometheus.io/path': '/metrics',
        },
      },
      spec: podSpec(container, r, cfg, { terminationGracePeriodSeconds: TERMINATION_GRACE_S }),
    },
  };
  // The replica count is part of the hash only when the operator (not an autoscaler) owns it.
  const hashed = spec.autoscaling ? body : { ...body, replicas: spec.replicas };
  const hash = specHash(hashed);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: childMeta(ep, ENDPOINT.kind, name, childLabels(name), hash),
    spec: { replicas: initialReplicas(spec), ...body },
  };
}

/** The Service `<name>`: ClusterIP port 8080 `http` → the pods' `http` port. */
export function buildService(ep: Owned): V1Service {
  const name = ep.metadata!.name!;
  const spec = {
    type: 'ClusterIP',
    selector: selectorLabels(name),
    ports: [{ name: 'http', port: SERVICE_PORT, targetPort: 'http', protocol: 'TCP' }],
  };
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(ep, ENDPOINT.kind, name, childLabels(name), specHash(spec)),
    spec: spec as V1Service['spec'],
  };
}

/** A Kubernetes quantity for a positive number: integers as is, fractions in milli-units (rounded up). */
export const quantity = (v: number): string => (Number.isInteger(v) ? String(v) : `${Math.ceil(v * 1000)}m`);

/**
 * The autoscaling/v2 HPA `<name>` on the Deployment: CPU utilisation, plus average get_queue_depth per
 * pod when targetQueueDepth is set (a Pods metric: needs a custom-metrics adapter). Scale-down waits
 * 300 s (pods are slow to start: the model loads). @throws Error when spec.autoscaling is absent.
 */
export function buildHpa(ep: Owned, spec: GenerationEndpointSpec): V2HorizontalPodAutoscaler {
  const a = spec.autoscaling;
  if (!a) throw new Error('buildHpa: spec.autoscaling is not set');
  const name = ep.metadata!.name!;
  const metrics: V2MetricSpec[] = [
    {
      type: 'Resource',
      resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: a.targetCPUUtilizationPercentage } },
    },
  ];
  if (a.targetQueueDepth !== undefined) {
    metrics.push({
      type: 'Pods',
      pods: {
        metric: { name: 'get_queue_depth' },
        target: { type: 'AverageValue', averageValue: quantity(a.targetQueueDepth) as never },
      },
    });
  }
  const hpaSpec = {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
    minReplicas: Math.max(1, a.minReplicas),
    maxReplicas: a.maxReplicas,
    metrics,
    behavior: { scaleDown: { stabilizationWindowSeconds: 300 } },
  };
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: childMeta(ep, ENDPOINT.kind, name, childLabels(name), specHash(hpaSpec)),
    spec: hpaSpec,
  };
}

/** KEDA's API coordinates (ScaledObject, keda.sh/v1alpha1). */
export const KEDA = { group: 'keda.sh', version: 'v1alpha1', plural: 'scaledobjects', kind: 'ScaledObject' } as const;

/** The default KEDA query: the endpoint's total queue depth (0 when no pod reports, so it can scale to zero). */
export function defaultKedaQuery(namespace: string, name: string): string {
  return `sum(get_queue_depth{namespace="${namespace}",pod=~"${name}-.*"}) or vector(0)`;
}

/** A KEDA ScaledObject as a plain object (the custom objects API takes JSON). */
export interface ScaledObjectBody {
  apiVersion: string;
  kind: string;
  metadata: ReturnType<typeof childMeta>;
  spec: Record<string, unknown>;
}

/**
 * The KEDA ScaledObject `<name>` on the Deployment: one Prometheus trigger (threshold per replica,
 * activationThreshold for scaling up from zero). @throws Error when autoscaling.keda is absent.
 */
export function buildScaledObject(ep: Owned, spec: GenerationEndpointSpec): ScaledObjectBody {
  const a = spec.autoscaling,
    k = a?.keda;
  if (!a || !k) throw new Error('buildScaledObject: spec.autoscaling.keda is not set');
  const { name, namespace } = ep.metadata! as { name: string; namespace: string };
  const soSpec = {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
    minReplicaCount: a.minReplicas,
    maxReplicaCount: a.maxReplicas,
    pollingInterval: k.pollingInterval,
    cooldownPeriod: k.cooldownPeriod,
    triggers: [
      {
        type: 'prometheus',
        metadata: {
          serverAddress: k.serverAddress,
          query: k.query ?? defaultKedaQuery(namespace, name),
          threshold: String(k.threshold),
          activationThreshold: String(k.activationThreshold),
        },
      },
    ],
  };
  return {
    apiVersion: `${KEDA.group}/${KEDA.version}`,
    kind: KEDA.kind,
    metadata: childMeta(ep, ENDPOINT.kind, name, childLabels(name), specHash(soSpec)),
    spec: soSpec,
  };
}

/** The in-cluster base URL of an endpoint's Service. */
export const endpointUrl = (name: string, namespace: string): string =>
  `http://${name}.${namespace}.svc:${SERVICE_PORT}`;

/**
 * The merge patch bringing a Deployment to `desired`: labels and the spec-hash annotation (other
 * annotations kept), the rollout settings, the pod template (its spec replaced exactly; its
 * annotations merged, so `kubectl rollout restart` survives), and replicas only when the operator
 * owns the count (`autoscaled` false). The selector is immutable and never patched.
 */
export function deploymentPatch(
  current: V1Deployment,
  desired: V1Deployment,
  autoscaled: boolean,
): Record<string, unknown> {
  const d = desired.spec!,
    c = current.spec;
  return {
    metadata: { labels: desired.metadata!.labels, annotations: desired.metadata!.annotations },
    spec: {
      ...(autoscaled ? {} : { replicas: d.replicas }),
      strategy: replaceWith(c?.strategy, d.strategy),
      minReadySeconds: d.minReadySeconds,
      progressDeadlineSeconds: d.progressDeadlineSeconds,
      revisionHistoryLimit: d.revisionHistoryLimit,
      template: { metadata: d.template.metadata, spec: replaceWith(c?.template?.spec, d.template.spec) },
    },
  };
}
