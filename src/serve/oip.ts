/**
 * Open Inference Protocol v2 (KServe / Triton REST; kserve/open-inference-protocol
 * `specification/protocol/inference_rest.md`): tensor metadata and the parsing of JSON inference
 * requests into the model's inputs. Every check names the field (`inputs[1].shape`), so a client
 * mistake is a 400 that says what to fix.
 */
import { z } from 'zod';
import type { TensorSignature } from '../graph/onnx-inspect.js';
import { HttpError, badRequest, zodBadRequest } from '../service/errors.js';
import type { LoadedModel } from './model.js';
import type { Samples } from '../get/seeded.js';

/** onnxruntime dtype → OIP datatype. */
export const OIP_DATATYPES: Readonly<Record<string, string>> = {
  float32: 'FP32',
  float64: 'FP64',
  float16: 'FP16',
  int64: 'INT64',
  int32: 'INT32',
  int8: 'INT8',
  uint8: 'UINT8',
  bool: 'BOOL',
};

/** OIP tensor metadata `{name, datatype, shape}`; symbolic dims (the batch) become -1. */
export interface OipTensorMetadata {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

export function tensorMetadata(sig: TensorSignature): OipTensorMetadata {
  return {
    name: sig.name,
    datatype: OIP_DATATYPES[sig.dtype] ?? sig.dtype.toUpperCase(),
    shape: sig.dims.map((d) => (typeof d === 'number' ? d : -1)),
  };
}

const parameters = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional();

/** The request body (`$inference_request`); tensor data is checked against the model afterwards. */
export const InferRequestSchema = z
  .object({
    id: z.string().optional(),
    parameters,
    inputs: z
      .array(
        z
          .object({
            name: z.string(),
            shape: z.array(z.number().int().nonnegative()),
            datatype: z.string(),
            parameters,
            data: z.array(z.unknown()),
          })
          .strict(),
      )
      .min(1, { error: 'needs at least one input tensor' }),
    outputs: z.array(z.object({ name: z.string(), parameters }).strict()).optional(),
  })
  .strict();

/** A parsed inference request. */
export interface InferRequest {
  readonly id?: string;
  readonly samples: Samples;
  /** Outputs to return, in model order (all when the request names none). */
  readonly outputs: readonly string[];
}

const product = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);
/** Largest finite float32; JSON numbers beyond it (or 1e999 = Infinity) would become ±Infinity. */
const FP32_MAX = 3.4028234663852886e38;

/**
 * Flattens flat or fully nested row-major data of `shape` (nested arrays must match the shape exactly).
 * @throws HttpError 400 naming `field` for a wrong length, ragged nesting or non-number elements.
 */
export function flattenData(data: readonly unknown[], shape: readonly number[], field: string): number[] {
  const want = product(shape);
  if (!data.some((v) => Array.isArray(v))) {
    const bad = data.findIndex((v) => typeof v !== 'number');
    if (bad >= 0)
      throw badRequest(`${field}[${bad}]`, `must be a number, got ${JSON.stringify(data[bad])?.slice(0, 40)}`);
    if (data.length !== want)
      throw badRequest(field, `holds ${data.length} values; shape [${shape.join(', ')}] needs ${want}`);
    return data as number[];
  }
  const out: number[] = [];
  const walk = (v: unknown, level: number, path: string): void => {
    if (level === shape.length) {
      if (typeof v !== 'number') throw badRequest(path, `must be a number, got ${JSON.stringify(v)?.slice(0, 40)}`);
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[level]) {
      throw badRequest(
        path,
        Array.isArray(v)
          ? `must be ${shape[level]} entries long (shape [${shape.join(', ')}]), got ${v.length}`
          : `must be an array (nested data follows the shape [${shape.join(', ')}]) or all data flat`,
      );
    }
    v.forEach((x, i) => walk(x, level + 1, `${path}[${i}]`));
  };
  walk(data, 0, field);
  return out;
}

/**
 * Checks an inference request against the model's signature and builds its samples.
 * @param body the parsed JSON body.
 * @param maxBatchSize the largest batch one request may carry.
 * @throws HttpError 400 naming the field: unknown or duplicate or missing input, wrong datatype,
 *   shape or data length, batches that disagree, a batch above maxBatchSize, a class label outside
 *   [0, num_classes), an unknown requested output.
 */
export function parseInferRequest(body: unknown, model: LoadedModel, maxBatchSize: number): InferRequest {
  const r = InferRequestSchema.safeParse(body);
  if (!r.success) throw zodBadRequest(r.error, 'body');
  const req = r.data;
  const sigs = new Map(model.info.inputs.map((s) => [s.name, s]));
  const known = [...sigs.keys()].join(', ');
  const tensors = new Map<string, { values: number[]; batch: number; field: string }>();
  let batch: { n: number; from: string } | null = null;
  req.inputs.forEach((t, i) => {
    const field = `inputs[${i}]`;
    const sig = sigs.get(t.name);
    if (!sig)
      throw badRequest(`${field}.name`, `unknown input ${JSON.stringify(t.name)}; model ${model.name} takes ${known}`);
    if (tensors.has(t.name)) throw badRequest(`${field}.name`, `input ${JSON.stringify(t.name)} is given twice`);
    const meta = tensorMetadata(sig);
    if (t.datatype !== meta.datatype)
      throw badRequest(`${field}.datatype`, `${t.name} must be ${meta.datatype}, got ${JSON.stringify(t.datatype)}`);
    const expect = `[${meta.shape.join(', ')}] (-1 = the batch)`;
    if (
      t.shape.length !== meta.shape.length ||
      t.shape.some((d, k) => (meta.shape[k] === -1 ? d < 1 : d !== meta.shape[k]))
    ) {
      throw badRequest(`${field}.shape`, `${t.name} must have shape ${expect}, got [${t.shape.join(', ')}]`);
    }
    const n = t.shape[meta.shape.indexOf(-1)];
    if (n > maxBatchSize)
      throw badRequest(`${field}.shape`, `batch ${n} exceeds the max batch size ${maxBatchSize}; split the request`);
    if (batch && batch.n !== n)
      throw badRequest(`${field}.shape`, `batch ${n} of ${t.name} differs from batch ${batch.n} of ${batch.from}`);
    batch ??= { n, from: t.name };
    const values = flattenData(t.data, t.shape, `${field}.data`);
    if (sig.dtype === 'float32') {
      const bad = values.findIndex((v) => !(Math.abs(v) <= FP32_MAX));
      if (bad >= 0) throw badRequest(`${field}.data[${bad}]`, `must be a finite FP32 value, got ${values[bad]}`);
    }
    if (sig.dtype === 'int64') {
      const K = model.info.config.numClasses;
      values.forEach((v, j) => {
        if (!Number.isSafeInteger(v)) throw badRequest(`${field}.data[${j}]`, `must be an integer, got ${v}`);
        if (t.name === 'class_labels' && (v < 0 || v >= K))
          throw badRequest(`${field}.data[${j}]`, `class label ${v} is outside [0, ${K})`);
      });
    }
    tensors.set(t.name, { values, batch: n, field });
  });
  const missing = [...sigs.keys()].filter((k) => !tensors.has(k));
  if (missing.length > 0)
    throw badRequest(
      'inputs',
      `missing ${missing.map((m) => JSON.stringify(m)).join(', ')}; model ${model.name} takes ${known}`,
    );

  const outputNames = model.info.outputs.map((o) => o.name);
  const outputs =
    req.outputs?.map((o, i) => {
      if (!outputNames.includes(o.name))
        throw badRequest(
          `outputs[${i}].name`,
          `unknown output ${JSON.stringify(o.name)}; model ${model.name} has ${outputNames.join(', ')}`,
        );
      return o.name;
    }) ?? outputNames;
  const labels = tensors.get('class_labels');
  const samples: Samples = {
    n: batch!.n,
    noise: Float32Array.from(tensors.get('noise')!.values),
    labels: labels ? BigInt64Array.from(labels.values, (v) => BigInt(v)) : null,
    z0: Float32Array.from(tensors.get('z0')!.values),
  };
  return {
    ...(req.id !== undefined && { id: req.id }),
    samples,
    outputs: outputNames.filter((o) => outputs.includes(o)),
  };
}

/** @throws HttpError 404 when `name` is not the served model's name. */
export function checkModelName(name: string, served: string): void {
  if (name !== served)
    throw new HttpError(
      404,
      'not_found',
      `unknown model ${JSON.stringify(name)}; this server serves ${JSON.stringify(served)}`,
    );
}

/** @throws HttpError 404 when a version is given and is not the served one. */
export function checkModelVersion(model: LoadedModel, version: string | undefined): void {
  if (version !== undefined && version !== model.version) {
    throw new HttpError(
      404,
      'not_found',
      `model ${model.name} has no version ${JSON.stringify(version)}; the served version is ` +
        `${JSON.stringify(model.version)}`,
    );
  }
}
