/**
 * Schema pieces both kinds share: where artifacts live (S3 + credentials Secret), how pods are placed
 * on GPU nodes, and metav1.Condition. Each zod schema here is the ONE definition: the operator parses
 * specs with it and the CRD's structural OpenAPI schema is generated from it (crd.ts).
 */
import { z } from 'zod';

/** A Kubernetes object name (RFC 1123 subdomain, as Secrets, ConfigMaps and classes are named). */
export const dnsSubdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase RFC 1123 name');

/**
 * s3://bucket[/prefix]: a bucket name of lowercase letters and digits joined by single dots or hyphens
 * (no `..`, no leading or trailing separator), path segments not empty. RE2-compatible (no lookahead):
 * the API server checks CRD patterns with Go's regexp.
 */
export const S3_URI = /^s3:\/\/[a-z0-9]+((\.|-+)[a-z0-9]+)*(\/[^/]+)*\/?$/;

/** Where a run's artifacts live and how pods reach the store. */
export const StoreSchema = z
  .object({
    uri: z
      .string()
      .regex(S3_URI, 'must be s3://bucket/prefix (a valid bucket name; no empty path segments)')
      .max(1024)
      .describe('S3 folder of the run: pairs/, checkpoints/, model/model.onnx, eval/ and cache/ go under it'),
    endpoint: z
      .string()
      .regex(/^https?:\/\/[^\s/]+(\/.*)?$/, 'must be an http(s) URL')
      .max(1024)
      .optional()
      .describe("S3 endpoint URL for S3-compatible stores (Ceph RGW, MinIO); default: the operator's, else AWS"),
    region: z.string().min(1).max(64).optional().describe('S3 region (AWS_REGION)'),
    forcePathStyle: z
      .boolean()
      .optional()
      .describe('path-style bucket addressing (default true when an endpoint is given)'),
    credentialsSecret: dnsSubdomain
      .optional()
      .describe(
        "Secret in the run's namespace holding AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (given to pods as " +
          "env); default: the pods' own identity (IRSA, instance role)",
      ),
  })
  .strict();

/** A node taint toleration (core/v1 Toleration). */
export const TolerationSchema = z
  .object({
    key: z.string().max(317).optional(),
    operator: z.enum(['Exists', 'Equal']).optional(),
    value: z.string().max(63).optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
    tolerationSeconds: z.number().int().optional(),
  })
  .strict();

/** How stage pods are placed and what they request (GPU pods are the point of the operator). */
export const ResourcesSchema = z
  .object({
    gpu: z
      .object({
        resourceName: z
          .string()
          .regex(
            /^([a-z0-9.-]+\/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$/,
            'must be an extended resource name such as nvidia.com/gpu',
          )
          .max(253)
          .optional()
          .describe(
            'extended resource of the device plugin (nvidia.com/gpu, amd.com/gpu, …); default: the ' +
              "operator's (the chart's gpu.resourceName)",
          ),
        count: z.number().int().min(0).max(16).default(1).describe('GPUs per pod (0: CPU pods)'),
      })
      .strict()
      .default({ count: 1 }),
    cpu: z
      .string()
      .regex(/^\d+(\.\d+)?m?$/, 'must be a CPU quantity such as 2 or 500m')
      .default('2')
      .describe('CPU request and limit per pod'),
    memory: z
      .string()
      .regex(/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$/, 'must be a memory quantity such as 8Gi')
      .default('8Gi')
      .describe('memory request and limit per pod'),
    nodeSelector: z.record(z.string().max(317), z.string().max(63)).optional().describe('node labels the pods require'),
    tolerations: z
      .array(TolerationSchema)
      .max(32)
      .optional()
      .describe('taints the pods tolerate (GPU nodes are usually tainted)'),
    runtimeClassName: dnsSubdomain.optional().describe('RuntimeClass (e.g. nvidia) for the container runtime'),
    priorityClassName: dnsSubdomain.optional().describe('PriorityClass of the pods'),
  })
  .strict();

export type StoreSpec = z.output<typeof StoreSchema>;
export type ResourcesSpec = z.output<typeof ResourcesSchema>;

/** The condition types both kinds report (peers.md §2d: metav1.Condition, listType map on type). */
export const CONDITION_TYPES = ['Ready', 'Progressing', 'Degraded', 'Complete', 'Failed'] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

/** metav1.Condition. */
export const ConditionSchema = z
  .object({
    type: z.string().max(316),
    status: z.enum(['True', 'False', 'Unknown']),
    observedGeneration: z.number().int().min(0).optional(),
    lastTransitionTime: z.string().meta({ format: 'date-time' }),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
    message: z.string().max(32768),
  })
  .strict();
export type Condition = z.output<typeof ConditionSchema>;

/** status.conditions: a map-list keyed on type (server-side apply merges by type). */
export const conditionsField = z
  .array(ConditionSchema)
  .max(16)
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });
