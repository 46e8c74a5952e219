/**
 * CustomResourceDefinitions (apiextensions.k8s.io/v1) generated from the zod schemas, so the API
 * server validates exactly what the operator parses. The JSON Schema that zod emits (OpenAPI 3.0
 * target) is made structural: every node typed, no `additionalProperties: false` beside `properties`
 * (unknown fields are pruned instead), no int64 sentinel bounds. CEL rules ride along as
 * `x-kubernetes-validations` metadata. `npm run gen-crds` writes charts/get-distill/crds/*.yaml;
 * test/operator/crd.test.ts fails when they are stale.
 */
import { z } from 'zod';
import {
  CATEGORY,
  ENDPOINT,
  GROUP,
  MAX_ENDPOINT_NAME,
  MAX_RUN_NAME,
  NAME_PATTERN,
  RUN,
  VERSION,
  type KindNames,
} from './group.js';
import { DistillationRunSpecSchema, DistillationRunStatusSchema } from './run.js';
import { GenerationEndpointSpecSchema, GenerationEndpointStatusSchema } from './endpoint.js';

/** One JSON Schema node (zod's output, then the structural rewrite). */
type SchemaNode = Record<string, unknown>;
/**
 * A CRD manifest. Callers (the YAML writer, the CRD tests) walk it to any depth by field name; it has no
 * static shape worth spelling out beyond what the API server validates.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON tree read at arbitrary depth
type Json = Record<string, any>;

/** Rewrites one zod-emitted JSON Schema node (recursively) into a structural OpenAPI v3 node. */
export function structural(node: SchemaNode): SchemaNode {
  const out: SchemaNode = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema' || k === 'id') continue;
    if (k === 'additionalProperties' && v === false) continue;
    if ((k === 'maximum' && v === Number.MAX_SAFE_INTEGER) || (k === 'minimum' && v === Number.MIN_SAFE_INTEGER))
      continue;
    if (k === 'properties')
      out[k] = Object.fromEntries(Object.entries(v as SchemaNode).map(([p, s]) => [p, structural(s as SchemaNode)]));
    else if ((k === 'items' || k === 'additionalProperties') && typeof v === 'object')
      out[k] = structural(v as SchemaNode);
    else out[k] = v;
  }
  if (!out.type && !out['x-kubernetes-preserve-unknown-fields'])
    throw new Error(`schema node without a type: ${JSON.stringify(node).slice(0, 200)}`);
  return out;
}

const openApi = (s: z.ZodType, io: 'input' | 'output'): SchemaNode =>
  structural(z.toJSONSchema(s, { target: 'openapi-3.0', io, unrepresentable: 'throw' }) as SchemaNode);

interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
  format?: string;
}

function crd(
  names: KindNames,
  spec: z.ZodType,
  status: z.ZodType,
  columns: PrinterColumn[],
  description: string,
  maxName: number,
): Json {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${names.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'get-distill', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: names.kind,
        listKind: names.listKind,
        plural: names.plural,
        singular: names.singular,
        shortNames: names.shortNames,
        categories: [CATEGORY],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            ...columns,
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description,
              required: ['spec'],
              // The name becomes Job, pod, Service and label values: a DNS-1035 label, short enough for pod names.
              'x-kubernetes-validations': [
                {
                  rule: `self.metadata.name.matches('${NAME_PATTERN}') && size(self.metadata.name) <= ${maxName}`,
                  message:
                    `metadata.name must be a DNS-1035 label (lowercase letters, digits, '-', starting with a ` +
                    `letter) of at most ${maxName} characters`,
                },
              ],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                // Defaults apply on input: the API server stores what the operator would assume.
                spec: openApi(spec, 'input'),
                status: openApi(status, 'output'),
              },
            },
          },
        },
      ],
    },
  };
}

const ready = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' };

/** The DistillationRun CRD. */
export function runCrd(): Json {
  return crd(
    RUN,
    DistillationRunSpecSchema,
    DistillationRunStatusSchema,
    [
      { name: 'Stage', type: 'string', jsonPath: '.status.stage', description: 'current pipeline stage' },
      { name: 'Shards', type: 'integer', jsonPath: '.status.progress.shardsDone', description: 'pair shards written' },
      { name: 'Step', type: 'integer', jsonPath: '.status.progress.step', description: 'training step' },
      { name: 'Loss', type: 'number', jsonPath: '.status.progress.loss', priority: 1 },
      { name: 'FID', type: 'number', jsonPath: '.status.fid', description: 'student FID' },
      { name: 'Endpoint', type: 'string', jsonPath: '.status.endpoint', priority: 1 },
    ],
    'A GET distillation run: teacher pairs, training, ONNX ' +
      'export, evaluation and optional serving, with artifacts in S3.',
    MAX_RUN_NAME,
  );
}

/** The GenerationEndpoint CRD. */
export function endpointCrd(): Json {
  return crd(
    ENDPOINT,
    GenerationEndpointSpecSchema,
    GenerationEndpointStatusSchema,
    [
      ready,
      { name: 'Replicas', type: 'integer', jsonPath: '.status.readyReplicas' },
      { name: 'URL', type: 'string', jsonPath: '.status.url' },
      { name: 'Model', type: 'string', jsonPath: '.status.model', priority: 1 },
    ],
    'A one-step GET image generator served over HTTP (Open Inference Protocol v2), autoscaled.',
    MAX_ENDPOINT_NAME,
  );
}

/** Both CRDs, file name → object. */
export function allCrds(): Record<string, Json> {
  return { [`${GROUP}_${RUN.plural}.yaml`]: runCrd(), [`${GROUP}_${ENDPOINT.plural}.yaml`]: endpointCrd() };
}
