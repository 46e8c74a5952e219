/**
 * GenerationEndpoint: a one-step GET generator served over HTTP (services/inference: Open Inference
 * Protocol v2 + OpenAI-style images) as a Deployment + Service + autoscaler. Modelled on KServe's
 * InferenceService in raw deployment mode (peers.md §1: readiness, HPA or KEDA, batcher settings).
 */
import { z } from 'zod';
import { ConditionSchema, ResourcesSchema, StoreSchema, conditionsField, dnsSubdomain } from './common.js';

const int = (lo: number, hi: number) => z.number().int().min(lo).max(hi);

/** Which model to serve: a model.onnx URI, or the model a DistillationRun exported. */
export const ModelRefSchema = z
  .object({
    uri: StoreSchema.shape.uri.describe('s3:// URI of a model.onnx exported by get-distill export').optional(),
    run: dnsSubdomain
      .describe('a DistillationRun in this namespace: serve its exported model once it has one')
      .optional(),
    digest: z
      .string()
      .regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex digits>')
      .optional()
      .describe(
        "the model's sha256; with model.run the run's exported digest is used; a new digest rolls the pods " +
          '(status.modelDigest shows the one served)',
      ),
  })
  .strict()
  .meta({
    'x-kubernetes-validations': [
      { rule: 'has(self.uri) != has(self.run)', message: 'give exactly one of model.uri and model.run' },
    ],
  });

/** KEDA ScaledObject on a Prometheus query of the queue depth (peers.md: KEDA; allows scale to zero). */
export const KedaSchema = z
  .object({
    serverAddress: z
      .string()
      .regex(/^https?:\/\/\S+$/, 'must be an http(s) URL')
      .max(1024)
      .describe('Prometheus URL KEDA queries'),
    query: z
      .string()
      .max(4096)
      .optional()
      .describe("PromQL giving the load; default: the sum of get_queue_depth over this endpoint's pods"),
    threshold: z.number().positive().default(8).describe('target value of the query per replica'),
    activationThreshold: z.number().min(0).default(0).describe('above this the endpoint scales up from zero'),
    pollingInterval: int(1, 3600).default(15).describe('seconds between queries'),
    cooldownPeriod: int(0, 86400).default(300).describe('seconds without load before scaling to zero'),
  })
  .strict();

/** Replica bounds and the autoscaler; keda replaces the HorizontalPodAutoscaler. */
export const AutoscalingSchema = z
  .object({
    minReplicas: int(0, 1000).default(1).describe('fewest replicas (0 only with keda: scale to zero)'),
    maxReplicas: int(1, 1000).default(4).describe('most replicas'),
    targetCPUUtilizationPercentage: int(1, 100).default(80).describe('HPA target of average CPU utilisation'),
    targetQueueDepth: z
      .number()
      .positive()
      .optional()
      .describe(
        'HPA target of average get_queue_depth per pod (needs a custom-metrics adapter such as prometheus-adapter)',
      ),
    keda: KedaSchema.optional().describe('scale with KEDA on Prometheus instead of an HPA'),
  })
  .strict()
  .meta({
    'x-kubernetes-validations': [
      { rule: 'self.minReplicas <= self.maxReplicas', message: 'minReplicas must not exceed maxReplicas' },
      { rule: 'self.minReplicas >= 1 || has(self.keda)', message: 'minReplicas 0 (scale to zero) needs keda' },
    ],
  });

/** The inference service's dynamic batching (its --max-batch-size, --max-queue-delay-ms, --max-queue-size). */
export const BatchingSchema = z
  .object({
    maxBatchSize: int(1, 4096).default(32).describe('most images per onnxruntime run'),
    maxQueueDelayMs: int(0, 60000).default(5).describe('longest a request waits for its batch to fill (ms)'),
    maxQueueSize: int(1, 1000000).default(256).describe('queued requests beyond this get 429'),
  })
  .strict();

/** What serving needs besides the model: shared by GenerationEndpoint and a run's spec.serve. */
export const ServingSchema = z
  .object({
    modelName: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/)
      .default('get')
      .describe('name in /v2/models/{name}'),
    replicas: int(0, 1000).default(1).describe('replicas when autoscaling is not given'),
    autoscaling: AutoscalingSchema.optional(),
    batching: BatchingSchema.default({ maxBatchSize: 32, maxQueueDelayMs: 5, maxQueueSize: 256 }),
    resources: ResourcesSchema.optional().describe(
      "pod resources and placement (default: 1 GPU, 2 CPUs, 8Gi; in a run's spec.serve: the run's spec.resources)",
    ),
  })
  .strict();

export const GenerationEndpointSpecSchema = ServingSchema.extend({
  model: ModelRefSchema,
  store: StoreSchema.omit({ uri: true })
    .optional()
    .describe('how pods reach S3 (endpoint, region, credentials Secret)'),
}).strict();

export type GenerationEndpointSpec = z.output<typeof GenerationEndpointSpecSchema>;
export type ServingSpec = z.output<typeof ServingSchema>;

export const GenerationEndpointStatusSchema = z
  .object({
    observedGeneration: z.number().int().optional(),
    url: z.string().optional().describe('in-cluster base URL of the Service'),
    model: z.string().optional().describe('the model.onnx URI being served'),
    modelDigest: z.string().optional(),
    replicas: z.number().int().optional(),
    readyReplicas: z.number().int().optional(),
    conditions: conditionsField.optional(),
  })
  .strict();
export type GenerationEndpointStatus = z.output<typeof GenerationEndpointStatusSchema>;
export { ConditionSchema };
