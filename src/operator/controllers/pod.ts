/**
 * The pod template every stage pod and endpoint pod shares: S3 access by env (credentials by
 * secretKeyRef — the operator never reads the Secret), GPU requests and placement, the hardened
 * security context the images are built for (non-root 10001, read-only root fs, /tmp an emptyDir),
 * and the termination message the stage services write for the operator (src/service/termination.ts).
 */
import type { V1Container, V1EnvVar, V1PodSpec, V1ResourceRequirements, V1Toleration } from '@kubernetes/client-node';
import type { ResourcesSpec, StoreSpec } from '../api/v1alpha1/common.js';
import type { OperatorConfig } from '../config.js';
import { S3_CHECKSUM_ENV } from '../../spec/names.js';

/** Where the stage services write their result JSON (Kubernetes' default terminationMessagePath). */
export const TERMINATION_LOG = '/dev/termination-log';
/** The port every service image listens on (GET_DISTILL_PORT in docker/Dockerfile.ort). */
export const SERVICE_PORT = 8080;

/** S3 settings of a pod: endpoint/region/path style as env, keys from the run's Secret. */
export function storeEnv(
  store: Omit<StoreSpec, 'uri'> | undefined,
  cfg: Pick<OperatorConfig, 's3Endpoint' | 's3RequestChecksumCalculation' | 's3ResponseChecksumValidation'>,
): V1EnvVar[] {
  const env: V1EnvVar[] = [];
  const endpoint = store?.endpoint ?? cfg.s3Endpoint;
  if (endpoint) env.push({ name: 'GET_DISTILL_S3_ENDPOINT', value: endpoint });
  if (cfg.s3RequestChecksumCalculation)
    env.push({ name: S3_CHECKSUM_ENV.request, value: cfg.s3RequestChecksumCalculation });
  if (cfg.s3ResponseChecksumValidation)
    env.push({ name: S3_CHECKSUM_ENV.response, value: cfg.s3ResponseChecksumValidation });
  if (store?.region) env.push({ name: 'AWS_REGION', value: store.region });
  if (store?.forcePathStyle !== undefined)
    env.push({ name: 'GET_DISTILL_S3_FORCE_PATH_STYLE', value: String(store.forcePathStyle) });
  if (store?.credentialsSecret) {
    for (const key of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
      env.push({ name: key, valueFrom: { secretKeyRef: { name: store.credentialsSecret, key } } });
    }
  }
  return env;
}

/** Requests = limits (a GPU can only be requested as a limit; equal CPU/memory give Guaranteed QoS). */
export function resourceRequirements(
  r: ResourcesSpec,
  cfg: Pick<OperatorConfig, 'gpuResourceName'>,
): V1ResourceRequirements {
  const amounts: Record<string, string> = { cpu: r.cpu, memory: r.memory };
  if (r.gpu.count > 0) amounts[r.gpu.resourceName ?? cfg.gpuResourceName] = String(r.gpu.count);
  return { requests: { ...amounts }, limits: { ...amounts } };
}

/** One hardened container running a service image. */
export function serviceContainer(
  name: string,
  image: string,
  env: V1EnvVar[],
  r: ResourcesSpec,
  cfg: OperatorConfig,
  extra: Partial<V1Container> = {},
): V1Container {
  return {
    name,
    image,
    imagePullPolicy: cfg.imagePullPolicy,
    env: [
      ...env,
      { name: 'GET_DISTILL_TERMINATION_LOG', value: TERMINATION_LOG },
      { name: 'GET_DISTILL_LOG_LEVEL', value: 'info' },
    ],
    resources: resourceRequirements(r, cfg),
    terminationMessagePath: TERMINATION_LOG,
    terminationMessagePolicy: 'FallbackToLogsOnError',
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
    ...extra,
  };
}

/** Pod spec around one container: placement from the resources block, /tmp, pull secret, service account. */
export function podSpec(
  container: V1Container,
  r: ResourcesSpec,
  cfg: OperatorConfig,
  extra: Partial<V1PodSpec> = {},
): V1PodSpec {
  const spec: V1PodSpec = {
    containers: [container],
    volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '8Gi' } }],
    securityContext: { runAsNonRoot: true, fsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } },
    enableServiceLinks: false,
    automountServiceAccountToken: false,
    ...extra,
  };
  if (r.nodeSelector) spec.nodeSelector = { ...r.nodeSelector };
  if (r.tolerations?.length) spec.tolerations = r.tolerations.map((t) => ({ ...t }) as V1Toleration);
  if (r.runtimeClassName) spec.runtimeClassName = r.runtimeClassName;
  if (r.priorityClassName) spec.priorityClassName = r.priorityClassName;
  if (cfg.serviceAccount) spec.serviceAccountName = cfg.serviceAccount;
  if (cfg.imagePullSecret) spec.imagePullSecrets = [{ name: cfg.imagePullSecret }];
  return spec;
}
