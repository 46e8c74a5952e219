/**
 * The operator's configuration: ONE zod schema → flags (`--datagen-image`), environment variables
 * (`GET_DISTILL_DATAGEN_IMAGE`, what the Helm chart sets) and defaults, through the service kit
 * (src/service/config.ts). Images, the stage defaults a run does not give, and the controller knobs.
 */
import { z } from 'zod';
import { intIn } from '../service/config.js';
import { LOG_LEVELS } from '../service/logging.js';
import { S3_CHECKSUM_ENV, S3_CHECKSUM_MODES } from '../spec/names.js';

const image = (what: string, def: string) =>
  z
    .string()
    .min(1)
    .regex(/^[^\s]+$/, 'must be an image reference without spaces')
    .default(def)
    .describe(what);
const url = z.string().regex(/^https?:\/\/\S+$/, 'must be an http(s) URL');
const csv = z.string().regex(/^[a-z0-9-]+(,[a-z0-9-]+)*$/, 'must be comma-separated namespace names');

export const OperatorConfigSchema = z
  .object({
    namespaces: csv
      .optional()
      .describe('namespaces to watch (comma-separated); default: all (needs cluster-wide RBAC)'),
    datagenImage: image('image of services/datagen', 'ghcr.io/get-distill/get-distill-datagen:0.1.0'),
    trainerImage: image(
      "image of services/trainer: Dockerfile.ort's (ort engine, CUDA EP) or Dockerfile.trainer-gpu's (tfjs-node-gpu)",
      'ghcr.io/get-distill/get-distill-trainer:0.1.0',
    ),
    exporterImage: image('image of services/exporter', 'ghcr.io/get-distill/get-distill-exporter:0.1.0'),
    evalImage: image('image of the eval job (get-distill eval)', 'ghcr.io/get-distill/get-distill-eval:0.1.0'),
    inferenceImage: image('image of services/inference', 'ghcr.io/get-distill/get-distill-inference:0.1.0'),
    imagePullPolicy: z
      .enum(['Always', 'IfNotPresent', 'Never'])
      .default('IfNotPresent')
      .describe('pull policy of every stage pod'),
    imagePullSecret: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
      .optional()
      .describe("Secret for pulling the stage images (in each run's namespace)"),
    serviceAccount: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
      .optional()
      .describe(
        "ServiceAccount of the stage pods (e.g. one with an IAM role for S3); default: the namespace's default",
      ),
    s3Endpoint: url.optional().describe('S3 endpoint for runs that give none (Ceph RGW, MinIO); unset: AWS'),
    s3RequestChecksumCalculation: z
      .enum(S3_CHECKSUM_MODES, { error: `must be one of ${S3_CHECKSUM_MODES.join(', ')}` })
      .optional()
      .describe(`${S3_CHECKSUM_ENV.request} of the stage and endpoint pods; unset: WHEN_REQUIRED`),
    s3ResponseChecksumValidation: z
      .enum(S3_CHECKSUM_MODES, { error: `must be one of ${S3_CHECKSUM_MODES.join(', ')}` })
      .optional()
      .describe(`${S3_CHECKSUM_ENV.response} of the stage and endpoint pods; unset: WHEN_REQUIRED`),
    pushgateway: url
      .optional()
      .describe('Pushgateway the eval jobs push get_eval_* metrics to, unless a run gives one'),
    keda: z
      .boolean()
      .default(false)
      .describe(
        'KEDA is installed: endpoints with autoscaling.keda get ' +
          'a ScaledObject (else they are refused with a condition)',
      ),
    mpiOperator: z
      .boolean()
      .default(false)
      .describe(
        'the Kubeflow MPI Operator (kubeflow.org/v2beta1 MPIJob) is installed: runs with more than one ' +
          'training rank get an MPIJob (else they fail with a condition naming the chart value mpiOperator.enabled)',
      ),
    gpuResourceName: z
      .string()
      .min(1)
      .default('nvidia.com/gpu')
      .describe('GPU extended resource of runs and endpoints that give none'),
    leaderElection: z.boolean().default(true).describe('take a Lease before reconciling (run 2+ replicas for HA)'),
    leaseName: z.string().min(1).default('get-distill-operator').describe('Lease name of the leader election'),
    leaseNamespace: z
      .string()
      .min(1)
      .default('default')
      .describe("namespace of the Lease (the operator's own; POD_NAMESPACE in the chart)"),
    workers: intIn(1, 64).default(2).describe('concurrent reconciles per controller (never two for one object)'),
    resyncSeconds: intIn(10, 86400).default(600).describe('full resync period of the informers'),
    metricsPort: intIn(0, 65535).default(8080).describe('port of /metrics, /healthz and /readyz'),
    host: z.string().min(1).default('0.0.0.0').describe('address of the metrics server'),
    logLevel: z
      .enum(LOG_LEVELS)
      .default('info')
      .describe(`log level: ${LOG_LEVELS.join(', ')}`),
  })
  .strict();

export type OperatorConfig = z.output<typeof OperatorConfigSchema>;
